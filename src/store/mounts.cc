// Mounts: a container's writable view of an image (overlayfs over the cached layers, or a
// flattened copy where overlay is not available), recorded in meta.db so that rmi and gc never
// take what a mount uses; and the recovery and check of ROOT/mounts (mounts_internal.h).
// docs/layers.md ("Mounts") has the protocol and what a kill -9 at each step leaves.
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "layers/overlay_mount.h"
#include "layers/tree.h"
#include "store/images_internal.h"
#include "store/layer_cache.h"
#include "store/mounts_internal.h"
#include "store/store.h"

namespace imgstore::store {
namespace mounts {
namespace {

constexpr std::string_view kOverlay = "overlay";
constexpr std::string_view kCopy = "copy";

std::string MountDir(const std::string& root, std::string_view name) {
  return MountsDir(root) + "/" + std::string(name);
}

// A mounts row.
struct Row {
  std::string name;
  std::string image_id;
  std::string manifest_digest;
  std::string image_name;
  std::string kind;
  std::string state;
  int64_t created = 0;
};

constexpr std::string_view kRowColumns =
    "name, image_id, manifest_digest, image_name, kind, state, created";

Row ReadRow(const Statement& st) {
  return Row{st.ColumnText(0), st.ColumnText(1), st.ColumnText(2), st.ColumnText(3),
             st.ColumnText(4), st.ColumnText(5), st.ColumnInt64(6)};
}

Result<std::optional<Row>> FindRow(Transaction& txn, std::string_view name) {
  Result<Statement> st =
      txn.Prepare("SELECT " + std::string(kRowColumns) + " FROM mounts WHERE name = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, name);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<Row>();
  return std::optional<Row>(ReadRow(*st));
}

Result<std::optional<Row>> FindRow(Db& db, std::string_view name) {
  Result<ReadTransaction> txn = db.BeginRead();
  if (!txn.ok()) return txn.status();
  return FindRow(*txn, name);
}

Status DeleteRow(Db& db, std::string_view name) {
  Result<WriteTransaction> txn = db.BeginWrite();
  if (!txn.ok()) return txn.status();
  Result<Statement> st = txn->Prepare("DELETE FROM mounts WHERE name = ?");  // layers: cascade
  if (!st.ok()) return st.status();
  IMGSTORE_RETURN_IF_ERROR(st->Bind(1, name).Run());
  return txn->Commit();
}

Status SetState(Db& db, std::string_view name, std::string_view state) {
  Result<WriteTransaction> txn = db.BeginWrite();
  if (!txn.ok()) return txn.status();
  Result<Statement> st = txn->Prepare("UPDATE mounts SET state = ? WHERE name = ?");
  if (!st.ok()) return st.status();
  IMGSTORE_RETURN_IF_ERROR(st->Bind(1, state).Bind(2, name).Run());
  return txn->Commit();
}

// Unmounts ROOT/mounts/NAME/merged if it is mounted and removes ROOT/mounts/NAME. Never removes
// through a live mount: what is below merged/ would be the container's view, not ours to delete.
Status RemoveMountDir(Env* env, const std::string& root, std::string_view name) {
  const std::string dir = MountDir(root, name);
  const std::string merged = dir + "/merged";
  if (layers::IsMountPoint(merged)) {
    IMGSTORE_RETURN_IF_ERROR(layers::UnmountOverlay(merged));
    if (layers::IsMountPoint(merged)) {
      return Status(Code::kBusy, "unmount " + merged + ": still mounted");
    }
  }
  if (!env->FileExists(dir)) return Status::OK();
  IMGSTORE_RETURN_IF_ERROR(env->RemoveTree(dir));
  return env->SyncDir(MountsDir(root));
}

Result<std::vector<Digest>> ReadChains(Transaction& txn, std::string_view name) {
  Result<Statement> st =
      txn.Prepare("SELECT chain_id FROM mount_layers WHERE mount_name = ? ORDER BY position");
  if (!st.ok()) return st.status();
  st->Bind(1, name);
  std::vector<Digest> out;
  for (;;) {
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    Result<Digest> d = Digest::Parse(st->ColumnText(0));
    if (!d.ok()) return d.status().WithContext("mount_layers row of " + std::string(name));
    out.push_back(std::move(*d));
  }
}

Result<MountInfo> ToInfo(Transaction& txn, const std::string& root, const Row& row) {
  MountInfo info;
  info.name = row.name;
  Result<Digest> id = Digest::Parse(row.image_id);
  if (!id.ok()) return id.status().WithContext("mounts row " + row.name);
  Result<Digest> manifest = Digest::Parse(row.manifest_digest);
  if (!manifest.ok()) return manifest.status().WithContext("mounts row " + row.name);
  info.image_id = std::move(*id);
  info.manifest_digest = std::move(*manifest);
  info.image_name = row.image_name;
  info.path = MountDir(root, row.name) + "/merged";
  info.kind = row.kind;
  info.upper_dir = row.kind == kOverlay ? MountDir(root, row.name) + "/upper" : "";
  // A copy is "mounted" while its tree is there; an overlay only while the kernel has it.
  info.mounted = row.kind == kOverlay ? layers::IsMountPoint(info.path)
                                      : ::access(info.path.c_str(), F_OK) == 0;
  info.created_unix_ns = row.created;
  Result<std::vector<Digest>> chains = ReadChains(txn, row.name);
  if (!chains.ok()) return chains.status();
  info.chain_ids = std::move(*chains);
  return info;
}

// Tries the mount's lock: a guard, or nullopt when its creator or remover is at work.
Result<std::optional<locking::LockGuard>> TryLock(const locking::LockSpace& locks,
                                                  std::string_view name, std::string_view op) {
  Result<locking::Lock> lock = locks.Get(MountLockName(name));
  if (!lock.ok()) return lock.status();
  Result<locking::LockGuard> g = lock->TryAcquire(locking::LockMode::kExclusive, op);
  if (g.ok()) return std::optional<locking::LockGuard>(std::move(*g));
  if (g.status().code() == Code::kBusy) return std::optional<locking::LockGuard>();
  return g.status();
}

// "docker.io/library/alpine:3.19" → "alpine"; characters a name may not hold become '-'.
std::string NameStem(std::string_view image_name) {
  std::string_view s = image_name;
  if (size_t at = s.find('@'); at != std::string_view::npos) s = s.substr(0, at);
  if (size_t slash = s.rfind('/'); slash != std::string_view::npos) s = s.substr(slash + 1);
  if (size_t colon = s.find(':'); colon != std::string_view::npos) s = s.substr(0, colon);
  std::string out;
  for (char c : s.substr(0, 100)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    out += ok ? c : '-';
  }
  if (out.empty() || !ValidMountName(out.substr(0, 1))) out = "mount";
  return out;
}

std::string GeneratedName(std::string_view image_name) {
  thread_local std::mt19937 rng(std::random_device{}());
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(rng()));
  return NameStem(image_name) + "-" + hex;
}

// The mount name that `text` means: a name, or a path to ROOT/mounts/NAME or its merged/.
Result<std::string> NameOf(const std::string& root, std::string_view text) {
  auto unknown = [&] { return Status(Code::kNotFound, "mount not known: " + std::string(text)); };
  if (text.find('/') == std::string_view::npos) {
    if (!ValidMountName(text)) return unknown();
    return std::string(text);
  }
  auto canonical = [](const std::string& path) -> std::string {
    char buf[PATH_MAX];
    if (::realpath(path.c_str(), buf) != nullptr) return buf;
    std::string p = path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    return p;
  };
  const std::string path = canonical(std::string(text));
  const std::string base = canonical(MountsDir(root)) + "/";
  if (!path.starts_with(base)) return unknown();
  std::string rest = path.substr(base.size());
  if (rest.ends_with("/merged")) rest.resize(rest.size() - 7);
  if (!ValidMountName(rest)) return unknown();
  return rest;
}

// Runs `undo` when destroyed unless Dismiss was called: the cleanup of a failed Mount.
class Undo {
 public:
  explicit Undo(std::function<void()> undo) : undo_(std::move(undo)) {}
  ~Undo() {
    if (undo_) undo_();
  }
  Undo(const Undo&) = delete;
  Undo& operator=(const Undo&) = delete;
  void Dismiss() { undo_ = nullptr; }

 private:
  std::function<void()> undo_;
};

}  // namespace

std::string MountsDir(const std::string& root) { return root + "/mounts"; }
std::string MountLockName(std::string_view name) { return "mount-" + std::string(name); }

bool ValidMountName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-'))) return false;
  }
  return true;
}

Result<int> RecoverMounts(Db& db, Env* env, const locking::LockSpace& locks,
                          const std::string& root) {
  // The common case, no mounts/ at all (or an empty one), costs a listing and no query.
  Result<std::vector<std::string>> entries = env->ListDir(MountsDir(root));
  if (!entries.ok()) {
    if (entries.status().code() == Code::kNotFound) return 0;
    return entries.status();
  }
  std::map<std::string, std::string> state;  // name → state of the row
  {
    Result<ReadTransaction> txn = db.BeginRead();
    if (!txn.ok()) return txn.status();
    Result<Statement> st = txn->Prepare("SELECT name, state FROM mounts");
    if (!st.ok()) return st.status();
    for (;;) {
      Result<bool> row = st->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      state[st->ColumnText(0)] = st->ColumnText(1);
    }
  }
  std::set<std::string> suspects;
  for (const std::string& name : *entries) {
    if (!ValidMountName(name)) continue;  // not ours to judge here; Check reports it
    auto it = state.find(name);
    if (it == state.end() || it->second != "ready") suspects.insert(name);
  }
  for (const auto& [name, s] : state) {
    if (s != "ready") suspects.insert(name);
  }
  int cleaned = 0;
  for (const std::string& name : suspects) {
    Result<std::optional<locking::LockGuard>> guard = TryLock(locks, name, "recover mount");
    if (!guard.ok()) return guard.status();
    if (!guard->has_value()) continue;  // its creator or remover is alive
    // Under the lock, nobody can make it ready meanwhile: look again.
    Result<std::optional<Row>> row = FindRow(db, name);
    if (!row.ok()) return row.status();
    if (row->has_value() && (*row)->state == "ready") continue;
    // A removal that fails (a mount still busy, a disk error) must not make the store unusable:
    // the row or directory stays, `check` reports it and the next open tries again.
    Status s = RemoveMountDir(env, root, name);
    if (s.ok() && row->has_value()) s = DeleteRow(db, name);
    if (!s.ok()) continue;
    guard->reset();
    (void)locks.RemoveIfUnused(MountLockName(name));  // one lock file per name ever used
    ++cleaned;
  }
  return cleaned;
}

Status CheckMounts(Db& db, Env* env, const locking::LockSpace& locks, const std::string& root,
                   bool repair, CheckReport* report) {
  std::map<std::string, Row> rows;
  {
    Result<ReadTransaction> txn = db.BeginRead();
    if (!txn.ok()) return txn.status();
    Result<Statement> st = txn->Prepare("SELECT " + std::string(kRowColumns) + " FROM mounts");
    if (!st.ok()) return st.status();
    for (;;) {
      Result<bool> r = st->Step();
      if (!r.ok()) return r.status();
      if (!*r) break;
      Row row = ReadRow(*st);
      rows[row.name] = std::move(row);
    }
  }
  Result<std::vector<std::string>> entries = env->ListDir(MountsDir(root));
  if (!entries.ok() && entries.status().code() != Code::kNotFound) return entries.status();
  std::set<std::string> names;
  if (entries.ok()) names.insert(entries->begin(), entries->end());
  for (const auto& [name, row] : rows) names.insert(name);

  for (const std::string& name : names) {
    const std::string dir = MountDir(root, name);
    if (!ValidMountName(name)) {
      CheckProblem p{ProblemKind::kMount, dir, "unexpected entry in mounts/: " + name};
      if (repair && !layers::IsMountPoint(dir)) {
        IMGSTORE_RETURN_IF_ERROR(env->RemoveTree(dir));
        p.repaired = true;
      }
      report->problems.push_back(std::move(p));
      continue;
    }
    Result<std::optional<locking::LockGuard>> guard = TryLock(locks, name, "check mount");
    if (!guard.ok()) return guard.status();
    if (!guard->has_value()) continue;  // being created or removed right now
    Result<std::optional<Row>> row = FindRow(db, name);
    if (!row.ok()) return row.status();
    std::optional<CheckProblem> problem;
    if (!row->has_value()) {
      if (!env->FileExists(dir)) continue;  // removed meanwhile
      problem = CheckProblem{ProblemKind::kMount, dir,
                             "mounts/" + name + " has no row in meta.db (its creator died)"};
    } else if ((*row)->state != "ready") {
      problem = CheckProblem{
          ProblemKind::kMount, dir,
          "mount " + name + " is still '" + (*row)->state + "' but no process works on it"};
    } else {
      std::vector<std::string> want = {dir + "/merged"};
      if ((*row)->kind == kOverlay) {
        want.push_back(dir + "/upper");
        want.push_back(dir + "/work");
      }
      for (const std::string& d : want) {
        Result<FileStat> st = env->Stat(d);
        if (st.ok() && st->type == FileType::kDirectory) continue;
        if (!st.ok() && st.status().code() != Code::kNotFound) return st.status();
        problem = CheckProblem{ProblemKind::kMount, d,
                               "mount " + name + " is recorded but " + d + " is missing"};
        break;
      }
    }
    if (!problem) continue;
    if (repair) {
      // The view is lost or was never finished: nothing of it can be kept.
      Status s = RemoveMountDir(env, root, name);
      if (s.ok() && row->has_value()) s = DeleteRow(db, name);
      if (s.ok()) {
        problem->repaired = true;
      } else {
        problem->message += "; repair failed: " + s.message();
      }
    }
    report->problems.push_back(std::move(*problem));
  }
  return Status::OK();
}

}  // namespace mounts

Result<MountInfo> Store::Mount(std::string_view image, const MountOptions& options) {
  const std::string what = "mount " + std::string(image);
  if (options.kind != "auto" && options.kind != "overlay" && options.kind != "copy") {
    return Status(Code::kInvalidArgument,
                  what + ": the type must be auto, overlay or copy, not \"" + options.kind + "\"");
  }
  if (!options.name.empty() && !mounts::ValidMountName(options.name)) {
    return Status(Code::kInvalidArgument,
                  what + ": the name \"" + options.name +
                      "\" is not valid (letters, digits, '_', '.', '-'; 128 at most; first a "
                      "letter or digit)");
  }

  // 1. What the image is, in one snapshot.
  internal::Resolved resolved;
  std::string manifest_digest;
  std::vector<std::string> layer_blobs;  // base first
  {
    Result<ReadTransaction> txn = db_->BeginRead();
    if (!txn.ok()) return txn.status();
    Result<internal::Resolved> r = internal::ResolveIn(*txn, image);
    if (!r.ok()) return r.status();
    resolved = std::move(*r);
    Result<Statement> st = txn->Prepare("SELECT manifest_digest FROM images WHERE id = ?");
    if (!st.ok()) return st.status();
    st->Bind(1, resolved.id.ToString());
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status(Code::kNotFound, "image not known: " + std::string(image));
    manifest_digest = st->ColumnText(0);
    Result<Statement> l =
        txn->Prepare("SELECT blob_digest FROM image_layers WHERE image_id = ? ORDER BY position");
    if (!l.ok()) return l.status();
    l->Bind(1, resolved.id.ToString());
    for (;;) {
      Result<bool> more = l->Step();
      if (!more.ok()) return more.status();
      if (!*more) break;
      layer_blobs.push_back(l->ColumnText(0));
    }
  }
  const std::string image_name = resolved.name.value_or("");

  // 2. The name, reserved under its lock by the directory (locked first, so that a recovering
  //    process never takes a directory being born for a dead creator's).
  std::string name;
  std::optional<locking::LockGuard> guard;
  IMGSTORE_RETURN_IF_ERROR(env_->CreateDirs(mounts::MountsDir(root_)));
  for (int attempt = 0;; ++attempt) {
    name = options.name.empty() ? mounts::GeneratedName(image_name) : options.name;
    Result<locking::LockGuard> g =
        Lock(mounts::MountLockName(name), locking::LockMode::kExclusive, what);
    if (!g.ok()) return g.status().WithContext(what);
    Status s = env_->CreateDir(mounts::MountDir(root_, name), 0755);
    Result<std::optional<mounts::Row>> row =
        s.ok() ? mounts::FindRow(*db_, name) : Result<std::optional<mounts::Row>>(std::nullopt);
    if (!row.ok()) {
      (void)env_->RemoveDir(mounts::MountDir(root_, name));
      return row.status();
    }
    if (s.ok() && row->has_value()) {  // a row whose directory is gone: check reports it
      (void)env_->RemoveDir(mounts::MountDir(root_, name));
      s = Status(Code::kAlreadyExists, "exists");
    }
    if (s.ok()) {
      guard = std::move(*g);
      break;
    }
    if (s.code() != Code::kAlreadyExists) return s.WithContext(what);
    if (!options.name.empty() || attempt == 8) {
      return Status(Code::kAlreadyExists, what + ": a mount named " + name + " already exists");
    }
  }
  const std::string dir = mounts::MountDir(root_, name);
  const std::string merged = dir + "/merged";
  bool have_row = false;
  mounts::Undo undo([&] {
    // Best effort: what is left (a kill, a failing disk) the next Store::Open removes, since
    // the row is not 'ready' and our lock goes with us.
    if (mounts::RemoveMountDir(env_, root_, name).ok() && have_row) {
      (void)mounts::DeleteRow(*db_, name);
    }
  });

  // 3. The kind.
  std::string kind = options.kind;
  if (kind != "copy") {
    Status s = layers::OverlaySupported(dir);
    if (kind == "overlay" && !s.ok()) return s.WithContext(what);
    kind = s.ok() ? "overlay" : "copy";
  }

  // 4. The layers, in the cache and held: gc cannot take them while we record them.
  Result<LayerSet> set = AcquireLayers(resolved.id.ToString(), options.layers);
  if (!set.ok()) return set.status().WithContext(what);
  if (set->chain_ids().size() != layer_blobs.size()) {
    return Status(Code::kInternal, what + ": the image's layers changed while it was mounted");
  }

  // 5. The rows, before anything is mounted: from this commit on, gc keeps what the mount uses
  //    whatever becomes of the image, and a kill leaves a 'creating' row for Store::Open.
  const int64_t created = internal::NowUnixNs();
  {
    Result<WriteTransaction> txn = db_->BeginWrite();
    if (!txn.ok()) return txn.status();
    // An rmi since step 1 took the manifest row the insert refers to: say so, not "FOREIGN KEY
    // constraint failed".
    Result<Statement> exists = txn->Prepare("SELECT 1 FROM images WHERE id = ?");
    if (!exists.ok()) return exists.status();
    exists->Bind(1, resolved.id.ToString());
    Result<bool> found = exists->Step();
    if (!found.ok()) return found.status();
    if (!*found) {
      return Status(Code::kNotFound, what + ": image not known: " + resolved.id.ToString() +
                                         " (removed while being mounted)");
    }
    Result<Statement> st = txn->Prepare(
        "INSERT INTO mounts (name, image_id, manifest_digest, image_name, kind, state, created) "
        "VALUES (?, ?, ?, ?, ?, 'creating', ?)");
    if (!st.ok()) return st.status();
    Status s = st->Bind(1, name)
                   .Bind(2, resolved.id.ToString())
                   .Bind(3, manifest_digest)
                   .Bind(4, image_name)
                   .Bind(5, kind)
                   .Bind(6, created)
                   .Run();
    for (size_t i = 0; s.ok() && i < layer_blobs.size(); ++i) {
      Result<Statement> l = txn->Prepare(
          "INSERT INTO mount_layers (mount_name, position, chain_id, blob_digest) "
          "VALUES (?, ?, ?, ?)");
      if (!l.ok()) return l.status();
      s = l->Bind(1, name)
              .Bind(2, static_cast<int64_t>(i))
              .Bind(3, set->chain_ids()[i].ToString())
              .Bind(4, layer_blobs[i])
              .Run();
    }
    if (s.ok()) s = txn->Commit();
    // A foreign key failing here: the image was removed (and gc ran) since we resolved it.
    if (!s.ok()) return s.WithContext(what + ": record the mount");
    have_row = true;
  }

  // 6. The view.
  IMGSTORE_RETURN_IF_ERROR(env_->CreateDir(merged, 0755));
  if (kind == "overlay") {
    layers::OverlaySpec spec;
    spec.upper_dir = dir + "/upper";
    spec.work_dir = dir + "/work";
    spec.target = merged;
    IMGSTORE_RETURN_IF_ERROR(env_->CreateDir(spec.upper_dir, 0755));
    IMGSTORE_RETURN_IF_ERROR(env_->CreateDir(spec.work_dir, 0700));
    spec.lower_dirs.assign(set->dirs().rbegin(), set->dirs().rend());
    if (spec.lower_dirs.empty()) {  // an image without layers: an empty root
      IMGSTORE_RETURN_IF_ERROR(env_->CreateDir(dir + "/empty", 0755));
      spec.lower_dirs.push_back(dir + "/empty");
    }
    Status s = layers::MountOverlay(spec);
    if (!s.ok()) return s.WithContext(what);
  } else {
    layers::CopyOptions copy;
    copy.preserve_owners = options.layers.extract.preserve_owners;
    copy.xattrs = options.layers.extract.xattrs;
    copy.on_warning = options.layers.extract.on_warning;
    copy.cancelled = options.layers.extract.cancelled;
    for (const std::string& layer_dir : set->dirs()) {
      Result<layers::CopyStats> c = layers::ApplyLayerDir(layer_dir, merged, copy);
      if (!c.ok()) return c.status().WithContext(what);
    }
    Status s = layer_cache::SyncFileSystem(merged);
    if (!s.ok()) return s.WithContext(what);
  }
  IMGSTORE_RETURN_IF_ERROR(env_->SyncDir(dir));
  Status s = mounts::SetState(*db_, name, "ready");
  if (!s.ok()) return s.WithContext(what);
  undo.Dismiss();

  MountInfo info;
  info.name = name;
  info.image_id = resolved.id;
  Result<Digest> md = Digest::Parse(manifest_digest);
  if (md.ok()) info.manifest_digest = std::move(*md);
  info.image_name = image_name;
  info.path = merged;
  info.upper_dir = kind == "overlay" ? dir + "/upper" : "";
  info.kind = kind;
  info.mounted = true;
  info.created_unix_ns = created;
  info.chain_ids = set->chain_ids();
  return info;
}

Status Store::Unmount(std::string_view name_or_path) {
  const std::string what = "umount " + std::string(name_or_path);
  Result<std::string> name = mounts::NameOf(root_, name_or_path);
  if (!name.ok()) return name.status();
  Result<locking::LockGuard> guard =
      Lock(mounts::MountLockName(*name), locking::LockMode::kExclusive, what);
  if (!guard.ok()) return guard.status().WithContext(what);

  Result<std::optional<mounts::Row>> row = mounts::FindRow(*db_, *name);
  if (!row.ok()) return row.status();
  if (!row->has_value()) {
    // A directory without a row is a dead creator's: gone with it, as Store::Open would.
    (void)mounts::RemoveMountDir(env_, root_, *name);
    return Status(Code::kNotFound, "mount not known: " + std::string(name_or_path));
  }
  // 'removing' first: a kill from here on leaves a row that Store::Open finishes removing.
  Status s = mounts::SetState(*db_, *name, "removing");
  if (s.ok()) s = mounts::RemoveMountDir(env_, root_, *name);
  if (s.ok()) s = mounts::DeleteRow(*db_, *name);
  if (!s.ok()) return s.WithContext(what);
  // Otherwise every name ever mounted would leave its lock file (gc removes only those of
  // blobs and layers). Safe against a concurrent Mount of the same name (locking.h).
  guard->Release();
  (void)locks_.RemoveIfUnused(mounts::MountLockName(*name));
  return Status::OK();
}

Result<std::vector<MountInfo>> Store::ListMounts() {
  Result<ReadTransaction> txn = db_->BeginRead();
  if (!txn.ok()) return txn.status();
  Result<Statement> st = txn->Prepare("SELECT " + std::string(mounts::kRowColumns) +
                                      " FROM mounts WHERE state = 'ready' ORDER BY created, name");
  if (!st.ok()) return st.status();
  std::vector<MountInfo> out;
  for (;;) {
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    Result<MountInfo> info = mounts::ToInfo(*txn, root_, mounts::ReadRow(*st));
    if (!info.ok()) return info.status();
    out.push_back(std::move(*info));
  }
}

Result<MountInfo> Store::GetMount(std::string_view name_or_path) {
  Result<std::string> name = mounts::NameOf(root_, name_or_path);
  if (!name.ok()) return name.status();
  Result<ReadTransaction> txn = db_->BeginRead();
  if (!txn.ok()) return txn.status();
  Result<std::optional<mounts::Row>> row = mounts::FindRow(*txn, *name);
  if (!row.ok()) return row.status();
  if (!row->has_value() || (*row)->state != "ready") {
    return Status(Code::kNotFound, "mount not known: " + std::string(name_or_path));
  }
  return mounts::ToInfo(*txn, root_, **row);
}

}  // namespace imgstore::store
