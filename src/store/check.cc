// Check and Repair: verifies the store's invariants between meta.db and the files of blobs/ and
// ingest/, and inside meta.db (rows that refer to nothing, dangling names, layer chains,
// indexes), and fixes what can be fixed. Concurrent writers are respected: anything whose
// per-digest lock is held is in progress, not a problem, and every repair is done while holding
// that lock (taken with a try, never waited for) after looking again under it.
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "store/hash_file.h"
#include "store/layer_cache.h"
#include "store/mounts_internal.h"
#include "store/store.h"

namespace imgstore::store {
namespace {

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<std::optional<CheckProblem>> Found(ProblemKind kind, std::string path, std::string message) {
  return std::optional<CheckProblem>(CheckProblem{kind, std::move(path), std::move(message)});
}

// One check of the metadata: a query whose rows are problems (column 0 identifies the row, the
// message is built from the columns), and for the repairable ones the DELETE that fixes a row
// (bound with column 0). The same query runs again inside the repair's write transaction, so a
// row fixed meanwhile by someone else is not touched.
struct RowCheck {
  ProblemKind kind;
  const char* query;
  std::string (*message)(const Statement& st);
  const char* repair;  // nullptr: not repairable here
};

std::string Col(const Statement& st, int i) { return st.ColumnText(i); }

const RowCheck kRowChecks[] = {
    {ProblemKind::kDanglingName,
     "SELECT reference, image_id FROM names WHERE image_id NOT IN (SELECT id FROM images)",
     [](const Statement& st) {
       return "name " + Col(st, 0) + " points to image " + Col(st, 1) + ", which does not exist";
     },
     "DELETE FROM names WHERE reference = ?1 AND image_id NOT IN (SELECT id FROM images)"},
    {ProblemKind::kMissingReference,
     "SELECT id FROM images WHERE id NOT IN (SELECT digest FROM blobs)",
     [](const Statement& st) {
       return "image " + Col(st, 0) + ": its config blob is not recorded; pull the image again";
     },
     nullptr},
    {ProblemKind::kMissingReference,
     "SELECT id, manifest_digest FROM images WHERE manifest_digest NOT IN "
     "(SELECT digest FROM manifests)",
     [](const Statement& st) {
       return "image " + Col(st, 0) + ": its manifest " + Col(st, 1) +
              " is not recorded; pull the image again";
     },
     nullptr},
    {ProblemKind::kMissingReference,
     "SELECT id, index_digest FROM images WHERE index_digest IS NOT NULL AND index_digest NOT IN "
     "(SELECT digest FROM manifests)",
     [](const Statement& st) {
       return "image " + Col(st, 0) + ": its index " + Col(st, 1) + " is not recorded";
     },
     nullptr},
    {ProblemKind::kMissingReference,
     "SELECT digest FROM manifests WHERE digest NOT IN (SELECT digest FROM blobs)",
     [](const Statement& st) {
       return "manifest " + Col(st, 0) + ": its blob is not recorded; pull the image again";
     },
     nullptr},
    {ProblemKind::kMissingReference,
     "SELECT digest, config_digest FROM manifests WHERE config_digest IS NOT NULL AND "
     "config_digest NOT IN (SELECT digest FROM blobs)",
     [](const Statement& st) {
       return "manifest " + Col(st, 0) + ": its config blob " + Col(st, 1) +
              " is not recorded; pull the image again";
     },
     nullptr},
    {ProblemKind::kMissingReference,
     "SELECT DISTINCT image_id, blob_digest FROM image_layers WHERE blob_digest NOT IN "
     "(SELECT digest FROM blobs)",
     [](const Statement& st) {
       return "image " + Col(st, 0) + ": its layer blob " + Col(st, 1) +
              " is not recorded; pull the image again";
     },
     nullptr},
    {ProblemKind::kMissingReference,
     "SELECT DISTINCT index_digest FROM index_entries WHERE index_digest NOT IN "
     "(SELECT digest FROM manifests)",
     [](const Statement& st) {
       return "index entries of " + Col(st, 0) + " remain, but the index is not recorded";
     },
     "DELETE FROM index_entries WHERE index_digest = ?1 AND index_digest NOT IN "
     "(SELECT digest FROM manifests)"},
    {ProblemKind::kMissingReference,
     "SELECT DISTINCT lease_id FROM lease_blobs WHERE lease_id NOT IN (SELECT id FROM leases)",
     [](const Statement& st) {
       return "blobs are pinned by lease " + Col(st, 0) + ", which is not recorded";
     },
     "DELETE FROM lease_blobs WHERE lease_id = ?1 AND lease_id NOT IN (SELECT id FROM leases)"},
    // The foreign key's cascade removes a blob's origins with its row; only a database written
    // with foreign keys off can hold these.
    {ProblemKind::kMissingReference,
     "SELECT DISTINCT digest FROM blob_origins WHERE digest NOT IN (SELECT digest FROM blobs)",
     [](const Statement& st) {
       return "origins of blob " + Col(st, 0) + " remain, but the blob is not recorded";
     },
     "DELETE FROM blob_origins WHERE digest = ?1 AND digest NOT IN (SELECT digest FROM blobs)"},
    {ProblemKind::kLayerChain,
     "SELECT chain_id, parent_chain_id FROM layers WHERE parent_chain_id IS NOT NULL AND "
     "parent_chain_id NOT IN (SELECT chain_id FROM layers)",
     [](const Statement& st) {
       return "layer " + Col(st, 0) + ": its parent " + Col(st, 1) + " is not recorded";
     },
     nullptr},
    {ProblemKind::kImageMismatch,
     "SELECT i.id, m.digest, m.kind, IFNULL(m.config_digest, '') FROM images i "
     "JOIN manifests m ON m.digest = i.manifest_digest "
     "WHERE m.kind != 'manifest' OR m.config_digest IS NOT i.id",
     [](const Statement& st) {
       return "image " + Col(st, 0) + ": its manifest " + Col(st, 1) + " is " +
              (Col(st, 2) == "manifest" ? "the manifest of config " + Col(st, 3)
                                        : "not an image manifest (" + Col(st, 2) + ")");
     },
     nullptr},
    {ProblemKind::kIndexMismatch,
     "SELECT i.id, m.digest FROM images i JOIN manifests m ON m.digest = i.index_digest "
     "WHERE m.kind != 'index'",
     [](const Statement& st) {
       return "image " + Col(st, 0) + ": its index " + Col(st, 1) + " is not an index";
     },
     nullptr},
    {ProblemKind::kIndexMismatch,
     // The index may list the manifest through nested indexes (UNION stops at a cycle).
     "WITH RECURSIVE reach(image, digest) AS ("
     "SELECT i.id, e.manifest_digest FROM images i "
     "JOIN index_entries e ON e.index_digest = i.index_digest "
     "UNION SELECT r.image, e.manifest_digest FROM reach r "
     "JOIN index_entries e ON e.index_digest = r.digest) "
     "SELECT i.id, i.index_digest, i.manifest_digest FROM images i "
     "JOIN manifests m ON m.digest = i.index_digest WHERE m.kind = 'index' AND NOT EXISTS "
     "(SELECT 1 FROM reach r WHERE r.image = i.id AND r.digest = i.manifest_digest)",
     [](const Statement& st) {
       return "image " + Col(st, 0) + ": its index " + Col(st, 1) + " does not list its manifest " +
              Col(st, 2);
     },
     nullptr},
    {ProblemKind::kIndexMismatch,
     "SELECT DISTINCT e.index_digest FROM index_entries e JOIN manifests m ON "
     "m.digest = e.index_digest WHERE m.kind != 'index'",
     [](const Statement& st) {
       return "manifest " + Col(st, 0) + " has index entries but is not an index";
     },
     nullptr},
};

// quick_check, then each RowCheck, then the chains of image_layers (in order, each layer's parent
// the previous one, chainIDs as the OCI rule computes them); with repair, fixes what kRowChecks
// can. One snapshot for the checks; one short write transaction per repaired kind of row.
Status CheckMetadata(Db& db, bool repair, CheckReport* report) {
  const std::string path = db.path();
  struct RepairItem {
    const RowCheck* check;
    std::string key;
    size_t problem;  // its index in report->problems
  };
  std::vector<RepairItem> to_repair;
  {
    Result<ReadTransaction> txn = db.BeginRead();
    if (!txn.ok()) return txn.status();
    {
      Result<Statement> st = txn->Prepare("PRAGMA quick_check");
      if (!st.ok()) return st.status();
      for (;;) {
        Result<bool> row = st->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        std::string line = st->ColumnText(0);
        if (line == "ok") continue;
        report->problems.push_back({ProblemKind::kDatabase, path, "meta.db: " + line});
      }
    }
    for (const RowCheck& check : kRowChecks) {
      Result<Statement> st = txn->Prepare(check.query);
      if (!st.ok()) return st.status();
      for (;;) {
        Result<bool> row = st->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        if (repair && check.repair != nullptr) {
          to_repair.push_back({&check, st->ColumnText(0), report->problems.size()});
        }
        report->problems.push_back({check.kind, path, check.message(*st)});
      }
    }
    // Layer chains of every image, in order.
    Result<Statement> st = txn->Prepare(
        "SELECT il.image_id, il.position, il.chain_id, l.chain_id IS NOT NULL, "
        "IFNULL(l.diff_id, ''), IFNULL(l.parent_chain_id, '') FROM image_layers il "
        "LEFT JOIN layers l ON l.chain_id = il.chain_id ORDER BY il.image_id, il.position");
    if (!st.ok()) return st.status();
    std::string image;
    std::string previous;
    int64_t expected_position = 0;
    bool reported = false;  // one problem per image is enough
    for (;;) {
      Result<bool> row = st->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      std::string id = st->ColumnText(0);
      if (id != image) {
        image = id;
        previous.clear();
        expected_position = 0;
        reported = false;
      }
      const int64_t position = st->ColumnInt64(1);
      const std::string chain = st->ColumnText(2);
      const bool present = st->ColumnInt64(3) != 0;
      const std::string diff_id = st->ColumnText(4);
      const std::string parent = st->ColumnText(5);
      std::string why;
      if (position != expected_position) {
        why = "layer position " + std::to_string(position) + " where " +
              std::to_string(expected_position) + " was expected";
      } else if (!present) {
        why = "layer " + std::to_string(position) + " has chain " + chain + ", not recorded";
      } else if (parent != previous) {
        why = "layer " + std::to_string(position) + " (" + chain + ") has parent " +
              (parent.empty() ? "none" : parent) + ", not " +
              (previous.empty() ? "none" : previous);
      } else {
        std::string computed =
            previous.empty() ? diff_id : Digest::Of(previous + " " + diff_id).ToString();
        if (computed != chain) {
          why = "layer " + std::to_string(position) + " has chain " + chain +
                ", but its parent and diffID give " + computed;
        }
      }
      if (!why.empty() && !reported) {
        reported = true;
        report->problems.push_back({ProblemKind::kLayerChain, path, "image " + id + ": " + why});
      }
      previous = chain;
      expected_position = position + 1;
    }
  }
  if (to_repair.empty()) return Status::OK();
  Result<WriteTransaction> txn = db.BeginWrite();
  if (!txn.ok()) return txn.status();
  for (const RepairItem& item : to_repair) {
    Result<Statement> st = txn->Prepare(item.check->repair);
    if (!st.ok()) return st.status();
    IMGSTORE_RETURN_IF_ERROR(st->Bind(1, item.key).Run());
  }
  IMGSTORE_RETURN_IF_ERROR(txn->Commit());
  // Marked only once the commit is durable.
  for (const RepairItem& item : to_repair) report->problems[item.problem].repaired = true;
  return Status::OK();
}

}  // namespace

Result<CheckReport> Store::Check(bool verify_content) { return CheckImpl(verify_content, false); }

Result<CheckReport> Store::Repair(bool verify_content) { return CheckImpl(verify_content, true); }

Result<CheckReport> Store::CheckImpl(bool verify_content, bool repair) {
  CheckReport report;
  const std::string blobs_dir = BlobsDir(root_);

  // Try-locks a digest: an engaged guard, or nullopt when someone holds it (work in progress).
  auto try_lock = [&](const Digest& d) -> Result<std::optional<locking::LockGuard>> {
    Result<locking::Lock> lock = locks_.Get(BlobLockName(d));
    if (!lock.ok()) return lock.status();
    Result<locking::LockGuard> g = lock->TryAcquire(locking::LockMode::kExclusive, "check");
    if (g.ok()) return std::optional<locking::LockGuard>(std::move(*g));
    if (g.status().code() == Code::kBusy) return std::optional<locking::LockGuard>();
    return g.status();
  };

  // Drops a blob row (used for rows whose file is missing or corrupt). False when something
  // still refers to the blob (a foreign key): the row stays and a re-pull must restore the file.
  auto drop_row = [&](const Digest& d, CheckProblem& p) -> Status {
    Result<WriteTransaction> txn = db_->BeginWrite();
    if (!txn.ok()) return txn.status();
    {
      Result<Statement> st = txn->Prepare("DELETE FROM blobs WHERE digest = ?");
      if (!st.ok()) return st.status();
      Status s = st->Bind(1, d.ToString()).Run();
      if (s.code() == Code::kFailedPrecondition) {
        p.message += "; still referenced, so the row stays: pull the image again to restore it";
        return Status::OK();
      }
      IMGSTORE_RETURN_IF_ERROR(s);
    }
    IMGSTORE_RETURN_IF_ERROR(txn->Commit());
    p.repaired = true;
    return Status::OK();
  };

  // Examines one recorded blob; a problem, if any.
  auto examine = [&](const BlobInfo& row) -> Result<std::optional<CheckProblem>> {
    std::string path = BlobPath(row.digest);
    Result<FileStat> st = env_->Stat(path);
    if (!st.ok()) {
      if (st.status().code() != Code::kNotFound) return st.status();
      return Found(ProblemKind::kMissingFile, path,
                   "blob " + row.digest.ToString() + " is recorded but its file is missing");
    }
    if (st->type != FileType::kRegular) {
      return Found(ProblemKind::kMissingFile, path,
                   "blob " + row.digest.ToString() + " is not a regular file");
    }
    if (st->size != row.size) {
      return Found(ProblemKind::kSizeMismatch, path,
                   "blob " + row.digest.ToString() + " is recorded with " +
                       std::to_string(row.size) + " bytes but its file has " +
                       std::to_string(st->size));
    }
    if (verify_content) {
      Result<FileHash> h = HashFile(env_, path);
      if (!h.ok()) return h.status();
      if (h->digest != row.digest) {
        return Found(ProblemKind::kDigestMismatch, path,
                     "blob " + row.digest.ToString() + " has content " + h->digest.ToString());
      }
    }
    if ((st->mode & 0222) != 0) {
      char mode[16];
      std::snprintf(mode, sizeof mode, "%04o", st->mode);
      return Found(ProblemKind::kWritableBlob, path,
                   "blob " + row.digest.ToString() + " is writable (mode " + mode + ")");
    }
    return std::optional<CheckProblem>();
  };

  // 1. Every row: its file, size, content and mode.
  Result<std::vector<BlobInfo>> rows = ListBlobs();
  if (!rows.ok()) return rows.status();
  report.blobs_checked = rows->size();
  std::set<std::string> recorded;
  for (const BlobInfo& row : *rows) {
    recorded.insert(std::string(row.digest.hex()));
    Result<std::optional<CheckProblem>> p = examine(row);
    if (!p.ok()) return p.status();
    if (!p->has_value()) continue;
    // Confirm under the lock: an ingest may be healing this blob right now.
    Result<std::optional<locking::LockGuard>> guard = try_lock(row.digest);
    if (!guard.ok()) return guard.status();
    if (!guard->has_value()) continue;
    Result<std::optional<BlobInfo>> now = FindBlob(row.digest);
    if (!now.ok()) return now.status();
    if (!now->has_value()) continue;  // removed meanwhile
    p = examine(**now);
    if (!p.ok()) return p.status();
    if (!p->has_value()) continue;
    CheckProblem problem = std::move(**p);
    if (repair) {
      switch (problem.kind) {
        case ProblemKind::kWritableBlob:
          IMGSTORE_RETURN_IF_ERROR(env_->Chmod(problem.path, 0444));
          problem.repaired = true;
          break;
        case ProblemKind::kSizeMismatch:
        case ProblemKind::kDigestMismatch: {
          // Wrong bytes under a content address are worse than none: a re-ingest rewrites them.
          Status s = env_->RemoveFile(problem.path);
          if (!s.ok() && s.code() != Code::kNotFound) return s;
          IMGSTORE_RETURN_IF_ERROR(drop_row(row.digest, problem));
          break;
        }
        default:
          IMGSTORE_RETURN_IF_ERROR(drop_row(row.digest, problem));
          break;
      }
    }
    report.problems.push_back(std::move(problem));
  }

  // 2. Files in blobs/: each must have a row (or be in the middle of an ingest or a removal).
  //    A file that gc_pending lists is a removal in progress, or one of a gc that failed or was
  //    killed after its commit, which the next Store::Open or gc finishes (docs/gc.md): not an
  //    orphan.
  std::set<std::string> pending;  // hex digests
  {
    Result<ReadTransaction> txn = db_->BeginRead();
    if (!txn.ok()) return txn.status();
    Result<std::vector<std::string>> digests =
        txn->SelectColumn("SELECT digest FROM gc_pending WHERE kind = 'blob'");
    if (!digests.ok()) return digests.status();
    for (const std::string& text : *digests) pending.insert(text.substr(text.find(':') + 1));
  }
  Result<std::vector<std::string>> tops = env_->ListDir(root_ + "/blobs");
  if (!tops.ok()) return tops.status();
  for (const std::string& name : *tops) {
    if (name == "sha256") continue;
    CheckProblem p{ProblemKind::kUnknownEntry, root_ + "/blobs/" + name,
                   "unexpected entry in blobs/: " + name};
    if (repair) {
      IMGSTORE_RETURN_IF_ERROR(env_->RemoveTree(p.path));
      p.repaired = true;
    }
    report.problems.push_back(std::move(p));
  }
  Result<std::vector<std::string>> files = env_->ListDir(blobs_dir);
  if (!files.ok()) return files.status();
  for (const std::string& name : *files) {
    std::string path = blobs_dir + "/" + name;
    if (!IsHex64(name)) {
      CheckProblem p{ProblemKind::kUnknownEntry, path, "unexpected entry in blobs/sha256: " + name};
      if (repair) {
        IMGSTORE_RETURN_IF_ERROR(env_->RemoveTree(path));
        p.repaired = true;
      }
      report.problems.push_back(std::move(p));
      continue;
    }
    if (recorded.count(name) != 0 || pending.count(name) != 0) continue;
    Result<Digest> d = Digest::Parse("sha256:" + name);
    if (!d.ok()) return d.status();
    Result<std::optional<locking::LockGuard>> guard = try_lock(*d);
    if (!guard.ok()) return guard.status();
    if (!guard->has_value()) continue;  // being ingested or removed
    Result<std::optional<BlobInfo>> now = FindBlob(*d);
    if (!now.ok()) return now.status();
    if (now->has_value() || !env_->FileExists(path)) continue;  // recorded or removed meanwhile
    CheckProblem p{ProblemKind::kOrphanFile, path,
                   "file blobs/sha256/" + name + " has no row in meta.db"};
    if (repair) {
      Status s = env_->RemoveFile(path);
      if (!s.ok() && s.code() != Code::kNotFound) return s;
      p.repaired = true;
    }
    report.problems.push_back(std::move(p));
  }

  // 3. Metadata: rows that refer to nothing, names without images, chains, indexes.
  {
    Status s = CheckMetadata(*db_, repair, &report);
    if (!s.ok()) return s.WithContext("check " + db_->path());
  }

  // 4. ingest/: only entries of live writers may be there, and kept partial downloads (a pull
  //    resumes them; gc removes them).
  Result<std::vector<std::string>> ingests = env_->ListDir(IngestDir(root_));
  if (!ingests.ok()) return ingests.status();
  for (const std::string& name : *ingests) {
    if (IsPartialIngest(name)) continue;
    std::string path = IngestDir(root_) + "/" + name;
    Digest d = IngestEntryDigest(name);
    CheckProblem p;
    std::optional<locking::LockGuard> held;
    if (d.empty()) {
      p = CheckProblem{ProblemKind::kUnknownEntry, path, "unexpected entry in ingest/: " + name};
    } else {
      Result<std::optional<locking::LockGuard>> guard = try_lock(d);
      if (!guard.ok()) return guard.status();
      if (!guard->has_value()) continue;      // a live writer
      if (!env_->FileExists(path)) continue;  // finished meanwhile
      held = std::move(*guard);
      p = CheckProblem{ProblemKind::kStaleIngest, path,
                       "ingest/" + name + " was left by a writer that is gone"};
    }
    if (repair) {
      IMGSTORE_RETURN_IF_ERROR(env_->RemoveTree(path));
      p.repaired = true;
    }
    report.problems.push_back(std::move(p));
  }

  // 5. The layer cache: layers/ against the layers rows (docs/layers.md).
  Status s = layer_cache::CheckLayers(*db_, env_, locks_, root_, repair, &report);
  if (!s.ok()) return s.WithContext("check " + root_ + "/layers");

  // 6. Mounts: mounts/ against the mounts rows (docs/layers.md "Mounts").
  s = mounts::CheckMounts(*db_, env_, locks_, root_, repair, &report);
  if (!s.ok()) return s.WithContext("check " + root_ + "/mounts");
  return report;
}

}  // namespace imgstore::store
