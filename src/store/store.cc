// Store: opening a root (layout, meta.db, lock space), the default root, and the quiet recovery
// of what crashed writers left behind.
#include "store/store.h"

#include <unistd.h>

#include <cstdlib>
#include <utility>

#include "store/gc_internal.h"
#include "store/layer_cache.h"
#include "store/mounts_internal.h"
#include "store/schema.h"

namespace imgstore::store {
namespace {

constexpr std::string_view kIngestPrefix = "sha256-";

// Makes sure dir exists as a directory; creates it (and makes the creation durable by syncing
// its parent) if it does not.
Status EnsureDir(Env* env, const std::string& dir) {
  Result<FileStat> st = env->Stat(dir);
  if (st.ok()) {
    if (st->type != FileType::kDirectory) {
      return Status(Code::kFailedPrecondition, dir + " exists and is not a directory");
    }
    return Status::OK();
  }
  if (st.status().code() != Code::kNotFound) return st.status();
  Status s = env->CreateDir(dir, 0755);
  // Another process opening the same new store may have made it first.
  if (!s.ok() && s.code() != Code::kAlreadyExists) return s;
  return env->SyncDir(DirName(dir));
}

}  // namespace

std::string BlobsDir(const std::string& root) { return root + "/blobs/sha256"; }
std::string IngestDir(const std::string& root) { return root + "/ingest"; }

std::string BlobLockName(const Digest& digest) {
  return "blob-" + std::string(digest.algorithm()) + "-" + std::string(digest.hex());
}

std::string PartialIngestName(const Digest& digest) {
  return std::string(kIngestPrefix) + std::string(digest.hex()) + ".partial";
}

bool IsPartialIngest(std::string_view name) {
  return name.ends_with(".partial") && !IngestEntryDigest(name).empty();
}

Digest IngestEntryDigest(std::string_view name) {
  if (!name.starts_with(kIngestPrefix)) return Digest();
  size_t dot = name.find('.');
  if (dot == std::string_view::npos) return Digest();
  std::string text =
      "sha256:" + std::string(name.substr(kIngestPrefix.size(), dot - kIngestPrefix.size()));
  Result<Digest> d = Digest::Parse(text);
  if (!d.ok() || !d->IsSha256()) return Digest();
  return *d;
}

std::string_view ProblemKindName(ProblemKind kind) {
  switch (kind) {
    case ProblemKind::kMissingFile:
      return "missing-file";
    case ProblemKind::kSizeMismatch:
      return "size-mismatch";
    case ProblemKind::kDigestMismatch:
      return "digest-mismatch";
    case ProblemKind::kWritableBlob:
      return "writable-blob";
    case ProblemKind::kOrphanFile:
      return "orphan-file";
    case ProblemKind::kStaleIngest:
      return "stale-ingest";
    case ProblemKind::kUnknownEntry:
      return "unknown-entry";
    case ProblemKind::kDatabase:
      return "database";
    case ProblemKind::kLayerDir:
      return "layer-dir";
    case ProblemKind::kMount:
      return "mount";
    case ProblemKind::kDanglingName:
      return "dangling-name";
    case ProblemKind::kMissingReference:
      return "missing-reference";
    case ProblemKind::kLayerChain:
      return "layer-chain";
    case ProblemKind::kImageMismatch:
      return "image-mismatch";
    case ProblemKind::kIndexMismatch:
      return "index-mismatch";
  }
  return "unknown";
}

size_t CheckReport::unresolved() const {
  size_t n = 0;
  for (const CheckProblem& p : problems) n += p.repaired ? 0 : 1;
  return n;
}

Store::Store(std::string root, StoreOptions options, Env* env, std::unique_ptr<Db> db,
             locking::LockSpace locks)
    : root_(std::move(root)),
      options_(std::move(options)),
      env_(env),
      db_(std::move(db)),
      locks_(std::move(locks)) {}

Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(const std::string& root, const StoreOptions& options) {
  if (root.empty()) return Status(Code::kInvalidArgument, "store root is empty");
  Env* env = options.env != nullptr ? options.env : Env::Default();
  Status s = env->CreateDirs(root);
  if (s.ok()) {
    for (const std::string& dir :
         {root + "/blobs", BlobsDir(root), IngestDir(root), root + "/layers", root + "/locks"}) {
      s = EnsureDir(env, dir);
      if (!s.ok()) break;
    }
  }
  if (!s.ok()) return s.WithContext("open store " + root);

  Result<locking::LockSpace> locks = locking::LockSpace::Open(root + "/locks");
  if (!locks.ok()) return locks.status().WithContext("open store " + root);
  DbOptions db_options;
  db_options.busy_timeout = options.db_busy_timeout;
  db_options.vfs = options.sqlite_vfs;
  Result<std::unique_ptr<Db>> db = Db::Open(root + "/meta.db", db_options);
  if (!db.ok()) return db.status().WithContext("open store " + root);
  s = EnsureSchema(**db);
  if (!s.ok()) return s;

  std::unique_ptr<Store> store(new Store(root, options, env, std::move(*db), std::move(*locks)));
  s = store->Recover();
  if (!s.ok()) return s.WithContext("open store " + root + ": recover");
  return store;
}

Result<std::string> Store::DefaultRoot() {
  if (const char* r = std::getenv("IMGSTORE_ROOT"); r != nullptr && *r != '\0')
    return std::string(r);
  if (::geteuid() == 0) return std::string("/var/lib/imgstore");
  if (const char* x = std::getenv("XDG_DATA_HOME"); x != nullptr && *x != '\0') {
    return std::string(x) + "/imgstore";
  }
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    return std::string(h) + "/.local/share/imgstore";
  }
  return Status(Code::kFailedPrecondition,
                "no store root: set IMGSTORE_ROOT, XDG_DATA_HOME or HOME, or pass --root");
}

Status Store::Recover() {
  // 1. Ingest entries of dead writers. A writer holds the digest's lock for as long as its entry
  //    exists, so a successful try-lock proves the writer is gone; holding the lock while
  //    removing keeps a new writer of that digest from starting meanwhile. A partial download
  //    is kept for the next pull to resume, unless it has waited longer than its TTL.
  Result<std::vector<std::string>> entries = env_->ListDir(IngestDir(root_));
  if (!entries.ok()) return entries.status();
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const int64_t ttl_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.partial_download_ttl).count();
  for (const std::string& name : *entries) {
    Digest digest = IngestEntryDigest(name);
    if (digest.empty()) continue;  // not ours to judge here; Check reports it
    const bool partial = IsPartialIngest(name);
    if (partial) {
      Result<FileStat> st = env_->Stat(IngestDir(root_) + "/" + name);
      if (!st.ok()) continue;  // resumed and finished meanwhile
      if (now_ns - st->mtime_ns < ttl_ns) continue;
    }
    Result<locking::Lock> lock = locks_.Get(BlobLockName(digest));
    if (!lock.ok()) return lock.status();
    Result<locking::LockGuard> guard =
        lock->TryAcquire(locking::LockMode::kExclusive, "recover ingest");
    if (!guard.ok()) {
      if (guard.status().code() == Code::kBusy) continue;  // a live writer
      return guard.status();
    }
    Status s = env_->RemoveTree(IngestDir(root_) + "/" + name);
    if (!s.ok()) return s;
    ++(partial ? recovery_.partial_downloads_removed : recovery_.ingests_removed);
  }

  // 2. Leases of dead holders: rows first (a row names a lease file; the file is the proof of
  //    life), then the files. The write transaction is only begun when there is something to do,
  //    so a normal open takes no write lock.
  std::vector<std::string> dead;
  {
    Result<ReadTransaction> txn = db_->BeginRead();
    if (!txn.ok()) return txn.status();
    Result<Statement> st = txn->Prepare("SELECT id FROM leases");
    if (!st.ok()) return st.status();
    while (true) {
      Result<bool> row = st->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      std::string id = st->ColumnText(0);
      Result<bool> alive = locks_.LeaseAlive(id);
      if (!alive.ok() && alive.status().code() != Code::kInvalidArgument) return alive.status();
      if (!alive.ok() || !*alive) dead.push_back(std::move(id));
    }
  }
  if (!dead.empty()) {
    Result<WriteTransaction> txn = db_->BeginWrite();
    if (!txn.ok()) return txn.status();
    for (const std::string& id : dead) {
      Result<Statement> st = txn->Prepare("DELETE FROM leases WHERE id = ?");
      if (!st.ok()) return st.status();
      IMGSTORE_RETURN_IF_ERROR(st->Bind(1, id).Run());
    }
    IMGSTORE_RETURN_IF_ERROR(txn->Commit());
  }
  Result<int> files = locks_.RemoveDeadLeases();
  if (!files.ok()) return files.status();
  recovery_.leases_removed = static_cast<int>(dead.size()) + *files;

  // 3. Removals of a gc killed between its commit and its unlinks: its intent log, gc_pending
  //    (docs/gc.md). One read of an empty table in the common case, never a listing of blobs/,
  //    so that `imgstore list` stays fast.
  Result<gc_internal::PendingResult> pending =
      gc_internal::FinishPendingRemovals(*db_, env_, locks_, root_);
  if (!pending.ok()) return pending.status().WithContext("finish an interrupted gc");

  // 4. Layer extractions of dead processes: staging dirs and 'incomplete' rows (docs/layers.md).
  Result<int> layers = layer_cache::RecoverLayers(*db_, env_, locks_, root_);
  if (!layers.ok()) return layers.status().WithContext("recover the layer cache");
  recovery_.layer_stagings_removed = *layers;

  // 5. Mounts of dead creators and removers (docs/layers.md "Mounts").
  Result<int> mounts = mounts::RecoverMounts(*db_, env_, locks_, root_);
  if (!mounts.ok()) return mounts.status().WithContext("recover mounts");
  recovery_.mounts_removed = *mounts;
  return Status::OK();
}

Result<locking::LockGuard> Store::Lock(const std::string& lock_name, locking::LockMode mode,
                                       const std::string& operation) {
  Result<locking::Lock> lock = locks_.Get(lock_name);
  if (!lock.ok()) return lock.status();
  locking::LockOptions lo;
  lo.timeout = options_.lock_timeout;
  lo.operation = operation;
  lo.on_wait = options_.on_wait;
  return lock->Acquire(mode, lo);
}

Result<locking::LockGuard> Store::LockBlob(const Digest& digest, const std::string& operation) {
  return Lock(BlobLockName(digest), locking::LockMode::kExclusive, operation);
}

}  // namespace imgstore::store
