// Garbage collection and disk usage: the plan (what no image references and no live lease pins),
// and gc's protocol for acting on it without a store-wide lock: try-lock the candidates, decide
// and delete rows (and log the files to remove in gc_pending) in one short write transaction,
// then remove files, then lock files; and FinishPendingRemovals, which completes the removals of
// a gc that was killed after its commit.
// docs/gc.md explains the order and why a concurrent pull never loses a blob.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/gc_internal.h"
#include "store/store.h"

namespace imgstore::store {

namespace gc_internal {

const char kKeepManifestsCte[] = R"sql(
WITH RECURSIVE keep(d) AS (
  SELECT manifest_digest FROM images
  UNION SELECT index_digest FROM images WHERE index_digest IS NOT NULL
  UNION SELECT manifest_digest FROM mounts
  UNION SELECT e.manifest_digest FROM index_entries e JOIN keep ON e.index_digest = keep.d
) )sql";

namespace {

constexpr std::string_view kUnusedLayers = R"sql(
WITH RECURSIVE used(c) AS (
  SELECT chain_id FROM image_layers UNION SELECT chain_id FROM mount_layers
  UNION SELECT l.parent_chain_id FROM layers l JOIN used ON l.chain_id = used.c
        WHERE l.parent_chain_id IS NOT NULL
)
SELECT chain_id, IFNULL(parent_chain_id, ''), unpack_state, IFNULL(unpacked_size, 0)
FROM layers WHERE chain_id NOT IN (SELECT c FROM used) ORDER BY chain_id)sql";

Result<std::vector<std::string>> Column(Transaction& txn, const std::string& sql) {
  Result<Statement> st = txn.Prepare(sql);
  if (!st.ok()) return st.status();
  std::vector<std::string> out;
  for (;;) {
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    out.push_back(st->ColumnText(0));
  }
}

// A lease may pin chain ids too (an unpack or mount of an image that an rmi removes meanwhile):
// such a layer row stays, and so do its ancestors.
void DropPinnedLayers(const std::set<std::string>& pinned,
                      std::vector<gc_internal::LayerCandidate>* layers) {
  std::set<std::string> keep;
  for (const gc_internal::LayerCandidate& l : *layers) {
    if (pinned.count(l.chain_id.ToString()) != 0) keep.insert(l.chain_id.ToString());
  }
  AddAncestors(*layers, &keep);
  std::erase_if(*layers, [&](const gc_internal::LayerCandidate& l) {
    return keep.count(l.chain_id.ToString()) != 0;
  });
}

}  // namespace

void AddAncestors(const std::vector<LayerCandidate>& layers, std::set<std::string>* keep) {
  std::map<std::string, std::string> parent_of;
  for (const LayerCandidate& l : layers) parent_of[l.chain_id.ToString()] = l.parent;
  for (std::string c : std::set<std::string>(*keep)) {
    for (auto it = parent_of.find(c); it != parent_of.end() && !it->second.empty();
         it = parent_of.find(c)) {
      c = it->second;
      keep->insert(c);
    }
  }
}

Result<std::vector<std::string>> DeadLeases(Transaction& txn, const locking::LockSpace& locks) {
  Result<std::vector<std::string>> ids = Column(txn, "SELECT id FROM leases ORDER BY id");
  if (!ids.ok()) return ids.status();
  std::vector<std::string> dead;
  for (std::string& id : *ids) {
    Result<bool> alive = locks.LeaseAlive(id);
    if (!alive.ok() && alive.status().code() != Code::kInvalidArgument) return alive.status();
    if (!alive.ok() || !*alive) dead.push_back(std::move(id));
  }
  return dead;
}

Result<GcPlan> Plan(Transaction& txn, const locking::LockSpace& locks) {
  GcPlan plan;
  Result<std::vector<std::string>> dead = DeadLeases(txn, locks);
  if (!dead.ok()) return dead.status();
  plan.dead_leases = std::move(*dead);
  const std::set<std::string> dead_set(plan.dead_leases.begin(), plan.dead_leases.end());

  std::set<std::string> pinned;
  {
    Result<Statement> st = txn.Prepare("SELECT lease_id, blob_digest FROM lease_blobs");
    if (!st.ok()) return st.status();
    for (;;) {
      Result<bool> row = st->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (dead_set.count(st->ColumnText(0)) == 0) pinned.insert(st->ColumnText(1));
    }
  }

  Result<std::vector<std::string>> manifests =
      Column(txn, std::string(kKeepManifestsCte) +
                      "SELECT digest FROM manifests WHERE digest NOT IN (SELECT d FROM keep) "
                      "ORDER BY digest");
  if (!manifests.ok()) return manifests.status();
  plan.manifests = std::move(*manifests);

  {
    Result<Statement> st = txn.Prepare(kUnusedLayers);
    if (!st.ok()) return st.status();
    for (;;) {
      Result<bool> row = st->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      Result<Digest> chain = Digest::Parse(st->ColumnText(0));
      if (!chain.ok()) return chain.status().WithContext("layers row");
      plan.layers.push_back({*chain, st->ColumnText(1), st->ColumnText(2),
                             static_cast<uint64_t>(st->ColumnInt64(3))});
    }
    DropPinnedLayers(pinned, &plan.layers);
  }

  {
    Result<Statement> st =
        txn.Prepare(std::string(kKeepManifestsCte) +
                    ", ref(d) AS (SELECT d FROM keep"
                    " UNION SELECT config_digest FROM manifests"
                    "   WHERE config_digest IS NOT NULL AND digest IN (SELECT d FROM keep)"
                    " UNION SELECT id FROM images UNION SELECT blob_digest FROM image_layers"
                    " UNION SELECT blob_digest FROM mount_layers) "
                    "SELECT digest, size, media_type, created FROM blobs "
                    "WHERE digest NOT IN (SELECT d FROM ref) ORDER BY digest");
    if (!st.ok()) return st.status();
    for (;;) {
      Result<bool> row = st->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      std::string text = st->ColumnText(0);
      if (pinned.count(text) != 0) {
        ++plan.pinned_unreferenced;
        continue;
      }
      Result<Digest> d = Digest::Parse(text);
      if (!d.ok()) return d.status().WithContext("blobs row");
      plan.blobs.push_back(
          {*d, static_cast<uint64_t>(st->ColumnInt64(1)), st->ColumnText(2), st->ColumnInt64(3)});
    }
  }
  return plan;
}

}  // namespace gc_internal

namespace {

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Try-locks `name` exclusively: the guard, nullopt when it is in use, or an error.
Result<std::optional<locking::LockGuard>> TryLock(const locking::LockSpace& locks,
                                                  const std::string& name) {
  Result<locking::Lock> lock = locks.Get(name);
  if (!lock.ok()) return lock.status();
  Result<locking::LockGuard> g = lock->TryAcquire(locking::LockMode::kExclusive, "gc");
  if (g.ok()) return std::optional<locking::LockGuard>(std::move(*g));
  if (g.status().code() == Code::kBusy) return std::optional<locking::LockGuard>();
  return g.status();
}

// Makes removals from blobs/ and layers/ durable before the intent log forgets them: after a
// power loss an unlink whose directory was never synced is undone, and the file would be back
// with nothing left to say that it is garbage (docs/power-loss.md).
Status SyncRemovals(Env* env, const std::string& root, bool blobs, bool layers) {
  if (blobs) IMGSTORE_RETURN_IF_ERROR(env->SyncDir(BlobsDir(root)));
  if (layers) IMGSTORE_RETURN_IF_ERROR(env->SyncDir(root + "/layers"));
  return Status::OK();
}

// The partial downloads kept in ingest/ (IngestOptions::resume_at), with their sizes.
struct PartialDownload {
  std::string name;
  Digest digest;
  uint64_t size = 0;
};
Result<std::vector<PartialDownload>> ListPartialDownloads(Env* env, const std::string& root) {
  Result<std::vector<std::string>> names = env->ListDir(IngestDir(root));
  if (!names.ok()) return names.status();
  std::vector<PartialDownload> out;
  for (const std::string& name : *names) {
    if (!IsPartialIngest(name)) continue;
    Result<FileStat> st = env->Stat(IngestDir(root) + "/" + name);
    if (!st.ok()) continue;  // resumed and finished meanwhile
    out.push_back({name, IngestEntryDigest(name), st->size});
  }
  return out;
}

// Keeps the first error of a series of independent steps (each file is removed even when an
// earlier one could not be).
void Keep(Status* first, Status s) {
  if (first->ok() && !s.ok()) *first = std::move(s);
}

}  // namespace

namespace gc_internal {

Result<PendingResult> FinishPendingRemovals(Db& db, Env* env, const locking::LockSpace& locks,
                                            const std::string& root) {
  PendingResult result;
  Status first_error;
  // In batches, resuming after the last entry seen, so that entries left (busy, or failed) are
  // not read again and the locks held at once stay bounded.
  constexpr int64_t kBatch = 256;
  std::string after_kind;
  std::string after_digest;
  for (;;) {
    struct Entry {
      std::string kind;
      std::string digest;
    };
    std::vector<Entry> entries;
    {
      Result<ReadTransaction> txn = db.BeginRead();
      if (!txn.ok()) return txn.status();
      Result<Statement> st = txn->Prepare(
          "SELECT kind, digest FROM gc_pending WHERE (kind, digest) > (?1, ?2) "
          "ORDER BY kind, digest LIMIT ?3");
      if (!st.ok()) return st.status();
      st->Bind(1, after_kind).Bind(2, after_digest).Bind(3, kBatch);
      for (;;) {
        Result<bool> row = st->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        entries.push_back({st->ColumnText(0), st->ColumnText(1)});
      }
    }
    if (entries.empty()) break;
    after_kind = entries.back().kind;
    after_digest = entries.back().digest;

    // 1. Try-lock each entry's object. A held lock is a gc still at work (it deletes the entry
    //    itself) or an ingest of the digest (after which the row exists): not ours to touch now.
    struct Held {
      const Entry* entry;
      Digest digest;
      locking::LockGuard guard;
      bool remove = false;
    };
    std::vector<Held> held;
    std::vector<const Entry*> done;
    for (const Entry& e : entries) {
      Result<Digest> d = Digest::Parse(e.digest);
      if (!d.ok()) {
        done.push_back(&e);  // nothing gc would write; nothing to remove
        continue;
      }
      const bool blob = e.kind == kPendingBlob;
      Result<std::optional<locking::LockGuard>> g =
          TryLock(locks, blob ? BlobLockName(*d) : LayerLockName(*d));
      if (!g.ok()) return g.status();
      if (!g->has_value()) {
        ++result.skipped_busy;
        continue;
      }
      held.push_back({&e, *d, std::move(**g)});
    }

    // 2. Under the locks, look again at the rows (one snapshot taken after locking): a blob row
    //    can only come back through an ingest, which holds the lock we now hold, so a row seen
    //    here is a complete re-ingested file to keep. A layer row that came back with
    //    unpack_state 'none' has no directory of its own (an unpack marks 'incomplete' first,
    //    under this lock), so what is there is still gc's leftover.
    {
      Result<ReadTransaction> txn = db.BeginRead();
      if (!txn.ok()) return txn.status();
      for (Held& h : held) {
        const bool blob = h.entry->kind == kPendingBlob;
        Result<Statement> st =
            txn->Prepare(blob ? "SELECT 'none' FROM blobs WHERE digest = ?"
                              : "SELECT 'none' FROM layers WHERE chain_id = ? AND "
                                "unpack_state != 'none'");
        if (!st.ok()) return st.status();
        st->Bind(1, h.entry->digest);
        Result<bool> row = st->Step();
        if (!row.ok()) return row.status();
        h.remove = !*row;
      }
    }

    // 3. The files. ENOENT is the common case after a kill: gc had unlinked it already.
    for (Held& h : held) {
      if (h.remove) {
        const bool blob = h.entry->kind == kPendingBlob;
        const std::string path =
            blob ? BlobsDir(root) + "/" + std::string(h.digest.hex()) : LayerDir(root, h.digest);
        const bool there = env->FileExists(path);
        Status s = blob ? env->RemoveFile(path) : env->RemoveTree(path);
        if (!s.ok() && s.code() != Code::kNotFound) {
          Keep(&first_error, s);
          continue;  // the entry stays: the next open or gc tries again
        }
        if (s.ok() && there) ++result.files_removed;
      }
      done.push_back(h.entry);
    }
    bool blobs = false;
    bool layers = false;
    for (const Held& h : held) (h.entry->kind == kPendingBlob ? blobs : layers) = true;
    IMGSTORE_RETURN_IF_ERROR(SyncRemovals(env, root, blobs, layers));

    // 4. The entries, while the locks are still held: a gc of the same object try-locks it
    //    before its transaction, so no new entry for it can appear between the removal and this.
    if (!done.empty()) {
      Result<WriteTransaction> txn = db.BeginWrite();
      if (!txn.ok()) return txn.status();
      for (const Entry* e : done) {
        Result<Statement> st = txn->Prepare("DELETE FROM gc_pending WHERE kind = ? AND digest = ?");
        if (!st.ok()) return st.status();
        IMGSTORE_RETURN_IF_ERROR(st->Bind(1, e->kind).Bind(2, e->digest).Run());
      }
      IMGSTORE_RETURN_IF_ERROR(txn->Commit());
      result.entries_done += static_cast<int>(done.size());
    }
    held.clear();  // releases the locks
    if (static_cast<int64_t>(entries.size()) < kBatch) break;
  }
  if (!first_error.ok()) return first_error;
  return result;
}

}  // namespace gc_internal

std::string LayerDir(const std::string& root, const Digest& chain_id) {
  return root + "/layers/" + std::string(chain_id.algorithm()) + "-" + std::string(chain_id.hex());
}

std::string LayerLockName(const Digest& chain_id) {
  return "layer-" + std::string(chain_id.algorithm()) + "-" + std::string(chain_id.hex());
}

Result<GcReport> Store::GarbageCollect(const GcOptions& options) {
  using gc_internal::GcPlan;
  GcReport report;
  const std::string what = "gc of " + root_;

  // 1. The plan, from a snapshot: which objects to try-lock.
  GcPlan plan;
  {
    Result<ReadTransaction> txn = db_->BeginRead();
    if (!txn.ok()) return txn.status().WithContext(what);
    Result<GcPlan> p = gc_internal::Plan(*txn, locks_);
    if (!p.ok()) return p.status().WithContext(what);
    plan = std::move(*p);
  }

  // 2. Lock order: file locks before the write transaction, and only tries. An ingest (or
  //    healing) holds a blob's lock; an unpack or a mount holds a layer's lock: skipped.
  std::map<std::string, locking::LockGuard> blob_locks;  // by digest text
  std::map<std::string, BlobInfo> blob_info;
  for (const BlobInfo& b : plan.blobs) {
    Result<std::optional<locking::LockGuard>> g = TryLock(locks_, BlobLockName(b.digest));
    if (!g.ok()) return g.status().WithContext(what);
    if (!g->has_value()) {
      ++report.skipped_busy;
      continue;
    }
    blob_locks.emplace(b.digest.ToString(), std::move(**g));
    blob_info.emplace(b.digest.ToString(), b);
  }
  std::map<std::string, locking::LockGuard> layer_locks;  // by chain id text
  for (const gc_internal::LayerCandidate& l : plan.layers) {
    if (l.unpack_state == "none" && !env_->FileExists(LayerDir(root_, l.chain_id))) continue;
    Result<std::optional<locking::LockGuard>> g = TryLock(locks_, LayerLockName(l.chain_id));
    if (!g.ok()) return g.status().WithContext(what);
    if (!g->has_value()) {
      ++report.skipped_busy;
      continue;
    }
    layer_locks.emplace(l.chain_id.ToString(), std::move(**g));
  }

  if (options.dry_run) {
    // Every kept partial download counts (one being resumed right now would be finished and
    // gone by the time a real gc runs, or kept by it).
    Result<std::vector<PartialDownload>> partials = ListPartialDownloads(env_, root_);
    if (!partials.ok()) return partials.status().WithContext(what);
    for (const PartialDownload& p : *partials) {
      ++report.partial_downloads_removed;
      report.partial_bytes_removed += p.size;
    }
    for (const auto& [text, info] : blob_info) {
      report.blobs_removed.push_back(info.digest);
      report.bytes_removed += info.size;
    }
    report.manifests_removed = static_cast<int>(plan.manifests.size());
    for (const gc_internal::LayerCandidate& l : plan.layers) {
      bool needs_lock = l.unpack_state != "none" || env_->FileExists(LayerDir(root_, l.chain_id));
      if (!needs_lock || layer_locks.count(l.chain_id.ToString()) != 0) ++report.layers_removed;
    }
    report.leases_removed = static_cast<int>(plan.dead_leases.size());
    return report;
  }

  // 3. One short write transaction decides again (rows may have changed since the snapshot;
  //    pins committed since are seen here) and deletes rows. No file I/O and no lock waits.
  std::vector<std::string> removed_blobs;
  std::vector<Digest> removed_layer_dirs;
  int lease_rows = 0;
  {
    Result<WriteTransaction> txn = db_->BeginWrite();
    if (!txn.ok()) return txn.status().WithContext(what);
    // Rows go in any order inside the transaction (a child layer after its parent); the
    // foreign keys are checked at the commit, which fails (and rolls back) on a bug.
    IMGSTORE_RETURN_IF_ERROR(txn->Exec("PRAGMA defer_foreign_keys = ON"));

    Result<std::vector<std::string>> dead = gc_internal::DeadLeases(*txn, locks_);
    if (!dead.ok()) return dead.status().WithContext(what);
    for (const std::string& id : *dead) {
      Result<Statement> st = txn->Prepare("DELETE FROM leases WHERE id = ?");
      if (!st.ok()) return st.status();
      IMGSTORE_RETURN_IF_ERROR(st->Bind(1, id).Run());
      ++lease_rows;
    }

    IMGSTORE_RETURN_IF_ERROR(txn->Exec(std::string(gc_internal::kKeepManifestsCte) +
                                       "DELETE FROM manifests WHERE digest NOT IN "
                                       "(SELECT d FROM keep)"));
    report.manifests_removed = static_cast<int>(txn->Changes());

    Result<GcPlan> now = gc_internal::Plan(*txn, locks_);
    if (!now.ok()) return now.status().WithContext(what);
    // A layer whose directory may be in use and that we could not lock stays, and so do its
    // ancestors (a row's parent must exist).
    std::set<std::string> keep_layers;
    for (const gc_internal::LayerCandidate& l : now->layers) {
      bool needs_lock = l.unpack_state != "none" || env_->FileExists(LayerDir(root_, l.chain_id));
      if (needs_lock && layer_locks.count(l.chain_id.ToString()) == 0) {
        keep_layers.insert(l.chain_id.ToString());
      }
    }
    gc_internal::AddAncestors(now->layers, &keep_layers);
    for (const gc_internal::LayerCandidate& l : now->layers) {
      const std::string c = l.chain_id.ToString();
      if (keep_layers.count(c) != 0) continue;
      Result<Statement> st = txn->Prepare("DELETE FROM layers WHERE chain_id = ?");
      if (!st.ok()) return st.status();
      IMGSTORE_RETURN_IF_ERROR(st->Bind(1, c).Run());
      ++report.layers_removed;
      if (layer_locks.count(c) != 0) removed_layer_dirs.push_back(l.chain_id);
    }

    // Only blobs this call holds locked, and only while nothing refers to them or pins them.
    for (const BlobInfo& b : now->blobs) {
      const std::string d = b.digest.ToString();
      if (blob_locks.count(d) == 0) continue;
      Result<Statement> st = txn->Prepare(
          "DELETE FROM blobs WHERE digest = ?1"
          " AND NOT EXISTS (SELECT 1 FROM manifests WHERE digest = ?1)"
          " AND NOT EXISTS (SELECT 1 FROM manifests WHERE config_digest = ?1)"
          " AND NOT EXISTS (SELECT 1 FROM images WHERE id = ?1)"
          " AND NOT EXISTS (SELECT 1 FROM image_layers WHERE blob_digest = ?1)"
          " AND NOT EXISTS (SELECT 1 FROM mount_layers WHERE blob_digest = ?1)"
          " AND NOT EXISTS (SELECT 1 FROM lease_blobs WHERE blob_digest = ?1)");
      if (!st.ok()) return st.status();
      IMGSTORE_RETURN_IF_ERROR(st->Bind(1, d).Run());
      if (txn->Changes() == 0) continue;
      removed_blobs.push_back(d);
      report.blobs_removed.push_back(b.digest);
      report.bytes_removed += b.size;
    }

    // The intent log: what step 4 will remove, in the transaction that makes it garbage, so
    // that a kill after the commit leaves a list for the next Store::Open to finish rather than
    // unrecorded files. OR IGNORE: an entry of an earlier interrupted gc may still be there.
    auto pending = [&](std::string_view kind, const std::string& digest) -> Status {
      Result<Statement> st =
          txn->Prepare("INSERT OR IGNORE INTO gc_pending (kind, digest) VALUES (?, ?)");
      if (!st.ok()) return st.status();
      return st->Bind(1, kind).Bind(2, digest).Run();
    };
    for (const std::string& d : removed_blobs) {
      IMGSTORE_RETURN_IF_ERROR(pending(gc_internal::kPendingBlob, d));
    }
    for (const Digest& chain : removed_layer_dirs) {
      IMGSTORE_RETURN_IF_ERROR(pending(gc_internal::kPendingLayer, chain.ToString()));
    }
    Status s = txn->Commit();
    if (!s.ok()) return s.WithContext(what);
  }

  // 4. Files, after the commit and while the locks are still held: never a row without its
  //    file. A kill here leaves files whose gc_pending entries name them; the next
  //    Store::Open (or gc, step 5) removes them. Then the entries of the files that are gone go,
  //    still under the locks; a failed removal keeps its entry.
  Status first_error;
  std::vector<std::pair<std::string_view, std::string>> finished;  // gc_pending keys
  for (const std::string& d : removed_blobs) {
    Status s = env_->RemoveFile(BlobPath(blob_info.at(d).digest));
    if (s.ok() || s.code() == Code::kNotFound) {
      finished.emplace_back(gc_internal::kPendingBlob, d);
    } else {
      Keep(&first_error, s);
    }
  }
  for (const Digest& chain : removed_layer_dirs) {
    Status s = env_->RemoveTree(LayerDir(root_, chain));
    if (s.ok()) {
      finished.emplace_back(gc_internal::kPendingLayer, chain.ToString());
    } else {
      Keep(&first_error, s);
    }
  }
  if (!finished.empty()) {
    Status s = SyncRemovals(env_, root_, !removed_blobs.empty(), !removed_layer_dirs.empty());
    Keep(&first_error, s);
    if (!s.ok()) finished.clear();  // the entries stay: the next open removes and syncs again
  }
  if (!finished.empty()) {
    // Bookkeeping only: if it fails, the next open finds the files gone (ENOENT) and drops the
    // entries.
    Status s = [&]() -> Status {
      Result<WriteTransaction> txn = db_->BeginWrite();
      if (!txn.ok()) return txn.status();
      for (const auto& [kind, digest] : finished) {
        Result<Statement> st = txn->Prepare("DELETE FROM gc_pending WHERE kind = ? AND digest = ?");
        if (!st.ok()) return st.status();
        IMGSTORE_RETURN_IF_ERROR(st->Bind(1, kind).Bind(2, digest).Run());
      }
      return txn->Commit();
    }();
    Keep(&first_error, s);
  }
  blob_locks.clear();
  layer_locks.clear();

  // 5. What an earlier gc left: first the entries of its intent log (a gc killed after its
  //    commit, when no open has run since, or a removal that failed above), then orphan files
  //    (a crash of RemoveBlob, or a store of schema version 1): each under its lock, after
  //    looking again for its row.
  Result<gc_internal::PendingResult> finished_pending =
      gc_internal::FinishPendingRemovals(*db_, env_, locks_, root_);
  if (finished_pending.ok()) {
    report.orphan_files_removed += finished_pending->files_removed;
  } else {
    Keep(&first_error, finished_pending.status());
  }
  std::set<std::string> recorded;
  {
    Result<ReadTransaction> txn = db_->BeginRead();
    if (!txn.ok()) return txn.status().WithContext(what);
    Result<std::vector<std::string>> digests = txn->SelectColumn("SELECT digest FROM blobs");
    if (!digests.ok()) return digests.status();
    for (const std::string& text : *digests) recorded.insert(text.substr(text.find(':') + 1));
  }
  Result<std::vector<std::string>> files = env_->ListDir(BlobsDir(root_));
  if (!files.ok()) return files.status().WithContext(what);
  for (const std::string& name : *files) {
    if (!IsHex64(name) || recorded.count(name) != 0) continue;
    Result<Digest> d = Digest::Parse("sha256:" + name);
    if (!d.ok()) continue;
    Result<std::optional<locking::LockGuard>> g = TryLock(locks_, BlobLockName(*d));
    if (!g.ok()) return g.status().WithContext(what);
    if (!g->has_value()) continue;  // being ingested (or adopted) right now
    Result<std::optional<BlobInfo>> row = FindBlob(*d);
    if (!row.ok()) return row.status().WithContext(what);
    if (row->has_value()) continue;
    Status s = env_->RemoveFile(BlobPath(*d));
    if (s.ok()) ++report.orphan_files_removed;
    if (s.code() != Code::kNotFound) Keep(&first_error, s);
  }

  // 5b. Partial downloads kept for resumption that no ingest is resuming now (its lock is free):
  //     gc is the moment a user asks for the space back.
  Result<std::vector<PartialDownload>> partials = ListPartialDownloads(env_, root_);
  if (!partials.ok()) return partials.status().WithContext(what);
  for (const PartialDownload& p : *partials) {
    Result<std::optional<locking::LockGuard>> g = TryLock(locks_, BlobLockName(p.digest));
    if (!g.ok()) return g.status().WithContext(what);
    if (!g->has_value()) continue;  // being resumed right now
    Status s = env_->RemoveFile(IngestDir(root_) + "/" + p.name);
    if (s.ok()) {
      ++report.partial_downloads_removed;
      report.partial_bytes_removed += p.size;
    } else if (s.code() != Code::kNotFound) {
      Keep(&first_error, s);
    }
  }

  // 6. Lock files nobody holds, of blobs and layers (present or not): one is created per
  //    digest ever ingested or layer ever unpacked, and an idle one is only an inode. A lock
  //    file in use (an ingest, an unpack, a mount) is left alone by RemoveIfUnused, and one
  //    removed under an acquirer's feet is noticed by it (locking.h), so this is safe against
  //    every interleaving; the next user simply creates it again.
  Result<std::vector<std::string>> lock_files = env_->ListDir(locks_.dir());
  if (!lock_files.ok()) return lock_files.status().WithContext(what);
  for (const std::string& file : *lock_files) {
    constexpr std::string_view kSuffix = ".lock";
    if (!file.ends_with(kSuffix)) continue;
    std::string_view name(file.data(), file.size() - kSuffix.size());
    if (!name.starts_with("blob-sha256-") && !name.starts_with("layer-sha256-")) continue;
    Result<bool> removed = locks_.RemoveIfUnused(name);
    if (!removed.ok()) {
      Keep(&first_error, removed.status());
      continue;
    }
    if (*removed) ++report.lock_files_removed;
  }

  // 7. Files of dead leases (their rows went in step 3).
  Result<int> lease_files = locks_.RemoveDeadLeases();
  if (!lease_files.ok()) Keep(&first_error, lease_files.status());
  report.leases_removed = std::max(lease_rows, lease_files.ok() ? *lease_files : 0);

  if (!first_error.ok()) {
    return first_error.WithContext(what + " (the rows are gone; the next gc removes the files)");
  }
  return report;
}

Result<DiskUsage> Store::GetDiskUsage() {
  DiskUsage usage;
  Result<ReadTransaction> txn = db_->BeginRead();
  if (!txn.ok()) return txn.status();
  auto scalar = [&](const char* sql, int column) -> Result<uint64_t> {
    Result<Statement> st = txn->Prepare(sql);
    if (!st.ok()) return st.status();
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    return *row ? static_cast<uint64_t>(st->ColumnInt64(column)) : 0;
  };
  Result<uint64_t> images = scalar("SELECT COUNT(*) FROM images", 0);
  if (!images.ok()) return images.status();
  usage.images = *images;
  Result<uint64_t> blobs = scalar("SELECT COUNT(*), IFNULL(SUM(size), 0) FROM blobs", 0);
  Result<uint64_t> blob_bytes = scalar("SELECT COUNT(*), IFNULL(SUM(size), 0) FROM blobs", 1);
  if (!blobs.ok()) return blobs.status();
  if (!blob_bytes.ok()) return blob_bytes.status();
  usage.blobs = *blobs;
  usage.blob_bytes = *blob_bytes;
  constexpr const char* kUnpacked =
      "SELECT COUNT(*), IFNULL(SUM(unpacked_size), 0) FROM layers WHERE unpack_state = 'complete'";
  Result<uint64_t> layers = scalar(kUnpacked, 0);
  Result<uint64_t> layer_bytes = scalar(kUnpacked, 1);
  if (!layers.ok()) return layers.status();
  if (!layer_bytes.ok()) return layer_bytes.status();
  usage.layers = *layers;
  usage.layer_bytes = *layer_bytes;

  Result<std::vector<PartialDownload>> partials = ListPartialDownloads(env_, root_);
  if (!partials.ok()) return partials.status();
  for (const PartialDownload& p : *partials) {
    ++usage.partial_downloads;
    usage.partial_bytes += p.size;
  }

  Result<gc_internal::GcPlan> plan = gc_internal::Plan(*txn, locks_);
  if (!plan.ok()) return plan.status();
  for (const BlobInfo& b : plan->blobs) {
    ++usage.reclaimable_blobs;
    usage.reclaimable_bytes += b.size;
  }
  for (const gc_internal::LayerCandidate& l : plan->layers) {
    if (l.unpack_state != "complete") continue;
    ++usage.reclaimable_layers;
    usage.reclaimable_layer_bytes += l.unpacked_size;
  }
  return usage;
}

}  // namespace imgstore::store
