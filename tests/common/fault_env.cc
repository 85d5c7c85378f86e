// FaultEnv: counting, fault injection and the power-loss model (see fault_env.h).
#include "common/fault_env.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>

namespace imgstore::testing {

std::string_view FsOpName(FsOp op) {
  switch (op) {
    case FsOp::kCreate:
      return "create";
    case FsOp::kWrite:
      return "write";
    case FsOp::kSync:
      return "sync";
    case FsOp::kRename:
      return "rename";
    case FsOp::kLink:
      return "link";
    case FsOp::kRemove:
      return "remove";
    case FsOp::kMkdir:
      return "mkdir";
    case FsOp::kSyncDir:
      return "syncdir";
    case FsOp::kChmod:
      return "chmod";
    case FsOp::kAny:
      return "any";
  }
  return "unknown";
}

// A WritableFile that counts (and may fail) appends and syncs, and reports the length of each
// successful sync to its FaultEnv. It knows its file by inode, so a rename does not lose it.
class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultEnv* env, std::unique_ptr<WritableFile> inner, FaultEnv::Inode inode,
                    uint64_t size)
      : WritableFile(inner->path()),
        env_(env),
        inner_(std::move(inner)),
        inode_(inode),
        size_(size) {}
  using WritableFile::Append;

  Status Append(std::span<const std::byte> data) override {
    {
      std::lock_guard lock(env_->mu_);
      IMGSTORE_RETURN_IF_ERROR(env_->CountAndCheck(FsOp::kWrite, "write " + path()));
    }
    IMGSTORE_RETURN_IF_ERROR(inner_->Append(data));
    size_ += data.size();
    return Status::OK();
  }

  Status Sync() override {
    {
      std::lock_guard lock(env_->mu_);
      IMGSTORE_RETURN_IF_ERROR(env_->CountAndCheck(FsOp::kSync, "sync " + path()));
    }
    IMGSTORE_RETURN_IF_ERROR(inner_->Sync());
    env_->OnSync(inode_, size_);
    return Status::OK();
  }

  Status Close() override { return inner_->Close(); }

 private:
  FaultEnv* env_;
  std::unique_ptr<WritableFile> inner_;
  FaultEnv::Inode inode_;
  // Bytes in the file as far as this handle knows: its length at open plus what it appended.
  // (A failed append may have written a prefix that this does not count: a later sync then
  // counts as durable only the part before it, which errs on the side of losing data.)
  uint64_t size_;
};

// --- Counting and faults ---------------------------------------------------------------------

uint64_t FaultEnv::count(FsOp op) const {
  std::lock_guard lock(mu_);
  return counts_[static_cast<size_t>(op)];
}

void FaultEnv::ResetCounts() {
  std::lock_guard lock(mu_);
  counts_.fill(0);
}

void FaultEnv::FailNth(FsOp op, uint64_t n, int err) {
  std::lock_guard lock(mu_);
  rules_.push_back(Rule{op, n, err, /*sticky=*/false});
}

void FaultEnv::FailNext(FsOp op, int err) {
  std::lock_guard lock(mu_);
  rules_.push_back(Rule{op, counts_[static_cast<size_t>(op)] + 1, err, /*sticky=*/false});
}

void FaultEnv::FailFrom(FsOp op, uint64_t n, int err) {
  std::lock_guard lock(mu_);
  rules_.push_back(Rule{op, n, err, /*sticky=*/true});
}

void FaultEnv::ClearFaults() {
  std::lock_guard lock(mu_);
  rules_.clear();
}

uint64_t FaultEnv::faults_fired() const {
  std::lock_guard lock(mu_);
  return faults_fired_;
}

std::string FaultEnv::last_fault() const {
  std::lock_guard lock(mu_);
  return last_fault_;
}

Status FaultEnv::CountExternal(FsOp op, std::string_view what) {
  std::lock_guard lock(mu_);
  return CountAndCheck(op, what);
}

Status FaultEnv::CountAndCheck(FsOp op, std::string_view what) {
  const uint64_t n_op = ++counts_[static_cast<size_t>(op)];
  const uint64_t n_any = ++counts_[static_cast<size_t>(FsOp::kAny)];
  for (auto it = rules_.begin(); it != rules_.end(); ++it) {
    if (it->op != op && it->op != FsOp::kAny) continue;
    const uint64_t n = it->op == FsOp::kAny ? n_any : n_op;
    if (it->sticky ? n < it->n : n != it->n) continue;
    const int err = it->err;
    ++faults_fired_;
    last_fault_ =
        std::string(what) + " (" + std::string(FsOpName(it->op)) + " #" + std::to_string(n) + ")";
    // A one-shot rule fires once even if the counts are reset later.
    if (!it->sticky) rules_.erase(it);
    return Status::FromErrno(err, what);
  }
  return Status::OK();
}

// --- Bookkeeping helpers ---------------------------------------------------------------------

std::optional<FaultEnv::Inode> FaultEnv::InodeOf(const std::string& path) const {
  Result<FileStat> st = target()->Stat(path);
  if (!st.ok()) return std::nullopt;
  return Inode{st->device, st->inode};
}

// The directory is identified by inode, not by name, so "d", "./d" and "/abs/d" are the same
// directory for SyncDir; stat (not lstat) because SyncDir follows a symlink too.
std::optional<FaultEnv::Inode> FaultEnv::ParentOf(const std::string& path) const {
  struct stat st;
  if (::stat(DirName(path).c_str(), &st) != 0) return std::nullopt;
  return Inode{st.st_dev, st.st_ino};
}

std::optional<FaultEnv::Saved> FaultEnv::SaveForUndo(const std::string& path) {
  Result<FileStat> st = target()->Stat(path);
  if (!st.ok()) return std::nullopt;
  Saved saved;
  saved.inode = Inode{st->device, st->inode};
  saved.mode = st->mode;
  saved.last_link = st->link_count <= 1;
  if (st->type == FileType::kDirectory) {
    saved.is_dir = true;
    return saved;
  }
  // Symlinks and special files are never made through the Env; they are not brought back.
  if (st->type != FileType::kRegular) return std::nullopt;
  Result<std::string> content =
      target()->ReadFileToString(path, std::numeric_limits<uint64_t>::max());
  if (!content.ok()) return std::nullopt;
  saved.content = std::move(content).value();
  auto it = synced_size_.find(saved.inode);
  if (it != synced_size_.end() && saved.content.size() > it->second) {
    saved.content.resize(static_cast<size_t>(it->second));
  }
  return saved;
}

// A removed inode may be reused by a file made later; its durable length must not apply there.
void FaultEnv::Untrack(const Saved& saved) {
  if (saved.last_link) synced_size_.erase(saved.inode);
}

void FaultEnv::OnSync(Inode inode, uint64_t size) {
  std::lock_guard lock(mu_);
  auto it = synced_size_.find(inode);
  // Not found: the file was removed, or DropUnsyncedData ran since it was opened.
  if (it != synced_size_.end()) it->second = size;
}

// A user other than root cannot truncate a 0444 file or change entries of a 0555 directory (the
// store makes blobs read-only), but the power cut must still be simulated: lend the owner write
// permission for the step and put the mode back.
Status FaultEnv::WithWrite(const std::string& path, const std::function<Status()>& fn) {
  Result<FileStat> st = target()->Stat(path);
  if (!st.ok() || (st->mode & 0200) != 0) return fn();
  IMGSTORE_RETURN_IF_ERROR(target()->Chmod(path, st->mode | 0200));
  Status s = fn();
  Status back = target()->Chmod(path, st->mode);
  return s.ok() ? back : s;
}

// A renamed file may be a tracked one: look for it in its new directory too. A renamed directory
// (a staging directory moved into place) takes the tracked files below it along.
void FaultEnv::NoteRename(const std::string& from, const std::string& to) {
  data_dirs_.insert(DirName(to));
  std::vector<std::string> moved;
  for (const std::string& d : data_dirs_) {
    if (d == from ||
        (d.size() > from.size() && d.compare(0, from.size(), from) == 0 && d[from.size()] == '/')) {
      moved.push_back(to + d.substr(from.size()));
    }
  }
  data_dirs_.insert(moved.begin(), moved.end());
}

// --- Env operations --------------------------------------------------------------------------

Result<std::unique_ptr<WritableFile>> FaultEnv::NewWritableFile(
    const std::string& path, const WritableFileOptions& options) {
  std::lock_guard lock(mu_);
  IMGSTORE_RETURN_IF_ERROR(CountAndCheck(FsOp::kCreate, "open " + path));
  const bool existed = InodeOf(path).has_value();
  const std::optional<Inode> parent = ParentOf(path);
  Result<std::unique_ptr<WritableFile>> inner = target()->NewWritableFile(path, options);
  if (!inner.ok()) return inner.status();
  Result<FileStat> st = target()->Stat(path);
  if (!st.ok()) return st.status().WithContext("fault env");
  const Inode inode{st->device, st->inode};
  if (!existed) {
    changes_.push_back(Change{Change::kCreateFile, path, "", inode, parent.value_or(Inode{}), {}});
  }
  if (options.mode == OpenMode::kAppend && existed) {
    // Bytes that were there before and not written through us count as durable.
    synced_size_.try_emplace(inode, st->size);
  } else {
    synced_size_[inode] = 0;
  }
  data_dirs_.insert(DirName(path));
  return std::unique_ptr<WritableFile>(
      new FaultWritableFile(this, std::move(inner).value(), inode, st->size));
}

Status FaultEnv::RenameFile(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  IMGSTORE_RETURN_IF_ERROR(CountAndCheck(FsOp::kRename, "rename " + from + " to " + to));
  const std::optional<Inode> inode = InodeOf(from);
  const std::optional<Inode> parent = ParentOf(to);
  std::optional<Saved> replaced;
  if (inode && InodeOf(to) && InodeOf(to) != inode) replaced = SaveForUndo(to);
  IMGSTORE_RETURN_IF_ERROR(target()->RenameFile(from, to));
  if (replaced) Untrack(*replaced);
  changes_.push_back(Change{Change::kRename, to, from, inode.value_or(Inode{}),
                            parent.value_or(Inode{}), std::move(replaced)});
  NoteRename(from, to);
  return Status::OK();
}

Status FaultEnv::RenameNoReplace(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  IMGSTORE_RETURN_IF_ERROR(CountAndCheck(FsOp::kRename, "rename " + from + " to " + to));
  const std::optional<Inode> inode = InodeOf(from);
  const std::optional<Inode> parent = ParentOf(to);
  IMGSTORE_RETURN_IF_ERROR(target()->RenameNoReplace(from, to));
  changes_.push_back(
      Change{Change::kRename, to, from, inode.value_or(Inode{}), parent.value_or(Inode{}), {}});
  NoteRename(from, to);
  return Status::OK();
}

Status FaultEnv::LinkFile(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  IMGSTORE_RETURN_IF_ERROR(CountAndCheck(FsOp::kLink, "link " + from + " to " + to));
  const std::optional<Inode> inode = InodeOf(from);
  const std::optional<Inode> parent = ParentOf(to);
  IMGSTORE_RETURN_IF_ERROR(target()->LinkFile(from, to));
  changes_.push_back(
      Change{Change::kLink, to, "", inode.value_or(Inode{}), parent.value_or(Inode{}), {}});
  data_dirs_.insert(DirName(to));
  return Status::OK();
}

Status FaultEnv::RemoveFile(const std::string& path) {
  std::lock_guard lock(mu_);
  IMGSTORE_RETURN_IF_ERROR(CountAndCheck(FsOp::kRemove, "remove " + path));
  const std::optional<Inode> parent = ParentOf(path);
  std::optional<Saved> saved = SaveForUndo(path);
  IMGSTORE_RETURN_IF_ERROR(target()->RemoveFile(path));
  if (saved) {
    Untrack(*saved);
    const Inode inode = saved->inode;
    changes_.push_back(
        Change{Change::kRemoveFile, path, "", inode, parent.value_or(Inode{}), std::move(saved)});
  }
  return Status::OK();
}

Status FaultEnv::Chmod(const std::string& path, mode_t mode) {
  {
    std::lock_guard lock(mu_);
    IMGSTORE_RETURN_IF_ERROR(CountAndCheck(FsOp::kChmod, "chmod " + path));
  }
  return target()->Chmod(path, mode);
}

Status FaultEnv::CreateDir(const std::string& path, mode_t mode) {
  std::lock_guard lock(mu_);
  IMGSTORE_RETURN_IF_ERROR(CountAndCheck(FsOp::kMkdir, "mkdir " + path));
  const std::optional<Inode> parent = ParentOf(path);
  IMGSTORE_RETURN_IF_ERROR(target()->CreateDir(path, mode));
  const std::optional<Inode> inode = InodeOf(path);
  changes_.push_back(
      Change{Change::kMkdir, path, "", inode.value_or(Inode{}), parent.value_or(Inode{}), {}});
  return Status::OK();
}

Status FaultEnv::RemoveDir(const std::string& path) {
  std::lock_guard lock(mu_);
  IMGSTORE_RETURN_IF_ERROR(CountAndCheck(FsOp::kRemove, "rmdir " + path));
  const std::optional<Inode> parent = ParentOf(path);
  std::optional<Saved> saved = SaveForUndo(path);
  IMGSTORE_RETURN_IF_ERROR(target()->RemoveDir(path));
  if (saved) {
    const Inode inode = saved->inode;
    changes_.push_back(
        Change{Change::kRemoveDir, path, "", inode, parent.value_or(Inode{}), std::move(saved)});
  }
  return Status::OK();
}

Status FaultEnv::SyncDir(const std::string& path) {
  std::lock_guard lock(mu_);
  IMGSTORE_RETURN_IF_ERROR(CountAndCheck(FsOp::kSyncDir, "sync directory " + path));
  IMGSTORE_RETURN_IF_ERROR(target()->SyncDir(path));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "fault env: stat " + path);
  const Inode dir{st.st_dev, st.st_ino};
  std::erase_if(changes_, [&](const Change& c) { return c.dir == dir; });
  return Status::OK();
}

// --- Power loss ------------------------------------------------------------------------------

void FaultEnv::ForgetUnsyncedData() {
  std::lock_guard lock(mu_);
  synced_size_.clear();
  data_dirs_.clear();
  changes_.clear();
}

Status FaultEnv::DropUnsyncedData() {
  std::lock_guard lock(mu_);
  Status first;
  auto note = [&](Status s) {
    if (first.ok() && !s.ok()) first = std::move(s);
  };

  // 1. File data. Done before the directory undo: the tracked inodes are all alive and reachable
  // here (removed ones were saved already truncated), and no restored file can yet reuse the inode
  // number of a tracked one. Directories are known by the names used in the calls: a tracked file
  // reached only through another spelling of its directory's path (a symlink, "a/../b") or in a
  // directory renamed by something other than this Env is not found.
  for (const std::string& dir : data_dirs_) {
    Result<std::vector<std::string>> names = target()->ListDir(dir);
    if (!names.ok()) continue;  // gone: nothing of it to truncate
    for (const std::string& name : *names) {
      const std::string path = dir + "/" + name;
      Result<FileStat> st = target()->Stat(path);
      if (!st.ok() || st->type != FileType::kRegular) continue;
      auto it = synced_size_.find(Inode{st->device, st->inode});
      if (it == synced_size_.end() || st->size <= it->second) continue;
      const uint64_t size = it->second;
      note(WithWrite(path, [&] {
        if (::truncate(path.c_str(), static_cast<off_t>(size)) == 0) return Status::OK();
        return Status::FromErrno(errno, "fault env: truncate " + path);
      }));
    }
  }

  // 2. Directory changes that were never made durable, newest first. remap follows an inode that
  // an earlier undo step brought back under a new inode number.
  std::map<Inode, Inode> remap;
  for (auto it = changes_.rbegin(); it != changes_.rend(); ++it) note(Undo(*it, remap));

  synced_size_.clear();
  data_dirs_.clear();
  changes_.clear();
  return first;
}

Status FaultEnv::Undo(const Change& c, std::map<Inode, Inode>& remap) {
  auto resolve = [&](Inode i) {
    auto it = remap.find(i);
    return it == remap.end() ? i : it->second;
  };
  // Each step acts only if the name still refers to what the change made; otherwise a later
  // change that is durable has replaced it, and that one wins.
  const std::optional<Inode> now = InodeOf(c.path);
  const bool same = now && *now == resolve(c.inode);
  const std::string dir = DirName(c.path);
  switch (c.kind) {
    case Change::kCreateFile:
    case Change::kLink:
      if (!same) return Status::OK();
      return WithWrite(dir, [&] { return target()->RemoveFile(c.path); })
          .WithContext("fault env undo");
    case Change::kMkdir:
      if (!same) return Status::OK();
      return WithWrite(dir, [&] { return target()->RemoveTree(c.path); })
          .WithContext("fault env undo");
    case Change::kRename:
      // If the old name has been taken again, the rename is kept (see fault_env.h).
      if (!same || InodeOf(c.from)) return Status::OK();
      IMGSTORE_RETURN_IF_ERROR(
          WithWrite(dir, [&] {
            return WithWrite(DirName(c.from), [&] { return target()->RenameFile(c.path, c.from); });
          }).WithContext("fault env undo"));
      if (c.saved) return Restore(c.path, *c.saved, remap);
      return Status::OK();
    case Change::kRemoveFile:
    case Change::kRemoveDir:
      if (now || !c.saved) return Status::OK();
      // The directory it was in is gone for good (its own removal was made durable by a sync of
      // its parent): so is everything that was in it.
      if (!InodeOf(dir)) return Status::OK();
      return Restore(c.path, *c.saved, remap);
  }
  return Status::OK();
}

Status FaultEnv::Restore(const std::string& path, const Saved& saved,
                         std::map<Inode, Inode>& remap) {
  IMGSTORE_RETURN_IF_ERROR(WithWrite(DirName(path), [&]() -> Status {
                             if (saved.is_dir) return target()->CreateDir(path, saved.mode);
                             WritableFileOptions options;
                             options.mode = OpenMode::kCreateNew;
                             // The creating descriptor can write even a 0444 file.
                             options.perm = saved.mode;
                             Result<std::unique_ptr<WritableFile>> file =
                                 target()->NewWritableFile(path, options);
                             if (!file.ok()) return file.status();
                             IMGSTORE_RETURN_IF_ERROR((*file)->Append(saved.content));
                             return (*file)->Close();
                           }).WithContext("fault env undo"));
  // The umask may have cut bits off the mode given to open/mkdir.
  IMGSTORE_RETURN_IF_ERROR(target()->Chmod(path, saved.mode).WithContext("fault env undo"));
  if (std::optional<Inode> inode = InodeOf(path)) remap[saved.inode] = *inode;
  return Status::OK();
}

}  // namespace imgstore::testing
