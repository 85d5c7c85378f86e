// Check and Repair: verifies the store's invariants between meta.db and the files of blobs/ and
// ingest/, and fixes what can be fixed. Concurrent writers are respected: anything whose
// per-digest lock is held is in progress, not a problem, and every repair is done while holding
// that lock (taken with a try, never waited for) after looking again under it.
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "store/hash_file.h"
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
    if (recorded.count(name) != 0) continue;
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

  // 3. ingest/: only entries of live writers may be there.
  Result<std::vector<std::string>> ingests = env_->ListDir(IngestDir(root_));
  if (!ingests.ok()) return ingests.status();
  for (const std::string& name : *ingests) {
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
  return report;
}

}  // namespace imgstore::store
