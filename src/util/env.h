// Env: the one seam through which imgstore touches the file system.
//
// Every file the store writes, syncs, renames or removes goes through an Env, so that a test can
// substitute an Env that fails the Nth write, sync or rename, or that simulates a power loss
// (tests/common/fault_env.h). Env::Default() is the POSIX implementation; EnvWrapper forwards
// everything to another Env so that a test overrides only the calls it cares about.
//
// Conventions of every implementation:
//   - no exceptions: calls return Status or Result<T>; a failed OS call becomes
//     Status::FromErrno with a message that names the operation and the path
//     ("write /root/blobs/sha256/ab..: No space left on device"), so ENOENT is kNotFound,
//     EEXIST kAlreadyExists and ENOSPC/EDQUOT kNoSpace;
//   - descriptors are opened O_CLOEXEC and owned by RAII objects; EINTR is retried (except by
//     close, which must never be retried on Linux);
//   - paths are used as given (relative paths resolve against the working directory); symlinks are
//     followed by open/chmod/stat of a directory to sync, never by Stat, RemoveFile or RemoveTree.
//
// The durable-commit protocol the store relies on is spelled out by TempFile::Commit:
// write → Sync → Close → rename → SyncDir(target's directory). Only after it returns OK is the
// target file guaranteed to survive a power loss with its full content.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace imgstore {

// A file open for appending. Not thread-safe: one writer at a time.
// Writes are not buffered: each Append is one or more write(2) calls, so callers should append in
// large pieces (a pull appends network chunks as they arrive).
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  WritableFile(const WritableFile&) = delete;
  WritableFile& operator=(const WritableFile&) = delete;

  // Appends all of data (short writes are continued; only an error stops early, and then an
  // unknown prefix of data may have been written).
  virtual Status Append(std::span<const std::byte> data) = 0;
  Status Append(std::string_view data) {
    return Append(std::as_bytes(std::span<const char>(data.data(), data.size())));
  }
  // Makes everything appended so far durable (fdatasync, or fsync with
  // WritableFileOptions::sync_metadata). After a failed Sync the file's durable content is
  // unknown and a later Sync may falsely succeed (Linux drops the dirty pages that failed to
  // write): the caller must give up on the file, never retry the Sync.
  virtual Status Sync() = 0;
  // Closes the descriptor. Further calls fail with kFailedPrecondition. The destructor closes a
  // file that was not closed and ignores errors; call Close to see them.
  virtual Status Close() = 0;

  const std::string& path() const { return path_; }

 protected:
  explicit WritableFile(std::string path) : path_(std::move(path)) {}

 private:
  std::string path_;
};

// A file read from start to end (streaming a blob to a registry, hashing it).
class SequentialFile {
 public:
  virtual ~SequentialFile() = default;
  SequentialFile(const SequentialFile&) = delete;
  SequentialFile& operator=(const SequentialFile&) = delete;

  // Fills buf unless the end of the file comes first; returns the number of bytes read (0 at EOF).
  virtual Result<size_t> Read(std::span<std::byte> buf) = 0;
  // Skips n bytes (past the end is allowed; later reads return 0).
  virtual Status Skip(uint64_t n) = 0;

  const std::string& path() const { return path_; }

 protected:
  explicit SequentialFile(std::string path) : path_(std::move(path)) {}

 private:
  std::string path_;
};

// A file read at arbitrary offsets. ReadAt and Size are safe to call from several threads.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  RandomAccessFile(const RandomAccessFile&) = delete;
  RandomAccessFile& operator=(const RandomAccessFile&) = delete;

  // Reads up to buf.size() bytes at offset; fewer only at the end of the file.
  virtual Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> buf) const = 0;
  virtual Result<uint64_t> Size() const = 0;

  const std::string& path() const { return path_; }

 protected:
  explicit RandomAccessFile(std::string path) : path_(std::move(path)) {}

 private:
  std::string path_;
};

enum class OpenMode {
  kCreateNew,  // the file must not exist (O_EXCL): kAlreadyExists otherwise
  kTruncate,   // create or truncate to zero
  kAppend,     // create or keep the content and append at its end
};

struct WritableFileOptions {
  OpenMode mode = OpenMode::kTruncate;
  // Permission bits of a newly created file (before the umask). A file created 0444 is still
  // writable through the descriptor that created it: blobs are born read-only.
  mode_t perm = 0644;
  // Sync with fsync (also inode metadata such as the mode and mtime) instead of fdatasync (data
  // and the size needed to read it back).
  bool sync_metadata = false;
  // Write-behind: after every this many bytes appended, writeback of what is dirty is started
  // (sync_file_range SYNC_FILE_RANGE_WRITE, without waiting), so that the Sync at the end finds
  // little left to write: a large blob's download and its flush to disk overlap. 0: off.
  uint64_t bytes_per_sync = 8 << 20;
};

enum class FileType { kRegular, kDirectory, kSymlink, kOther };

// What lstat(2) says about a path (a symlink is described, not followed).
struct FileStat {
  FileType type = FileType::kOther;
  uint64_t size = 0;
  uint32_t mode = 0;  // permission bits only (st_mode & 07777)
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t link_count = 0;
  int64_t mtime_ns = 0;  // since the Unix epoch
};

// What statvfs(3) says about the file system holding a path, in bytes.
struct SpaceInfo {
  uint64_t total = 0;
  uint64_t free = 0;       // free blocks, including those reserved for root
  uint64_t available = 0;  // free blocks an unprivileged user may use
};

class Env {
 public:
  Env() = default;
  virtual ~Env() = default;
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  // The POSIX Env. Never destroyed; safe to use from any thread.
  static Env* Default();

  // --- Files -----------------------------------------------------------------------------------
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path, const WritableFileOptions& options) = 0;
  virtual Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) = 0;
  virtual Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) = 0;

  // rename(2): replaces `to` if it exists.
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Renames only if `to` does not exist (kAlreadyExists otherwise), atomically: renameat2
  // RENAME_NOREPLACE, or on a file system without it, link + unlink for a file. For a directory
  // on such a file system, plain rename is used: it refuses a non-empty target (kAlreadyExists)
  // but would replace an empty directory.
  virtual Status RenameNoReplace(const std::string& from, const std::string& to) = 0;
  // link(2): a second name for a file; kAlreadyExists if `to` exists.
  virtual Status LinkFile(const std::string& from, const std::string& to) = 0;
  // unlink(2) (never a directory).
  virtual Status RemoveFile(const std::string& path) = 0;
  // chmod(2), e.g. 0444 for a published blob.
  virtual Status Chmod(const std::string& path, mode_t mode) = 0;
  // lstat(2).
  virtual Result<FileStat> Stat(const std::string& path) = 0;

  // --- Directories -----------------------------------------------------------------------------
  // mkdir(2) of one directory: kAlreadyExists if the path exists, kNotFound if the parent
  // does not. See CreateDirs for "make sure it exists".
  virtual Status CreateDir(const std::string& path, mode_t mode) = 0;
  // rmdir(2): the directory must be empty.
  virtual Status RemoveDir(const std::string& path) = 0;
  // fsync of the directory itself: makes the creations, renames and removals of entries in it
  // durable. Needed after a rename into it before the new name may be relied on.
  virtual Status SyncDir(const std::string& path) = 0;
  // The names in a directory, without "." and "..", sorted.
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
  // Space on the file system that holds path.
  virtual Result<SpaceInfo> GetSpaceInfo(const std::string& path) = 0;

  // --- Helpers built on the calls above (so a wrapper's overrides apply to them too) ------------
  Result<uint64_t> FileSize(const std::string& path);
  // True if there is an entry at path (even a dangling symlink). An error other than "not found"
  // (EACCES on a parent, say) counts as "exists": the caller's next call will report it.
  bool FileExists(const std::string& path);
  // Creates path and its missing parents; OK if path is already a directory.
  Status CreateDirs(const std::string& path, mode_t mode = 0755);
  // Removes path and, if it is a directory, everything below it (like rm -rf: read-only
  // directories are made writable first; symlinks are removed, not followed). OK if path does
  // not exist.
  Status RemoveTree(const std::string& path);
  // The whole file, or kCorruption ("read PATH: file is larger than the limit of N bytes") if it
  // holds more than max_bytes. Use a cap that fits the content (manifests: a few MiB).
  Result<std::string> ReadFileToString(const std::string& path, uint64_t max_bytes);
  // Replaces path with data so that after a crash path holds either the old or the new content,
  // never a mixture: temp file in the same directory, write, sync, rename, directory fsync.
  Status WriteFileAtomically(const std::string& path, std::string_view data, mode_t perm = 0644);
};

// Forwards every call to a target Env. Derive from it and override what a test needs.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}
  Env* target() const { return target_; }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path, const WritableFileOptions& options) override {
    return target_->NewWritableFile(path, options);
  }
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    return target_->NewSequentialFile(path);
  }
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override {
    return target_->NewRandomAccessFile(path);
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    return target_->RenameFile(from, to);
  }
  Status RenameNoReplace(const std::string& from, const std::string& to) override {
    return target_->RenameNoReplace(from, to);
  }
  Status LinkFile(const std::string& from, const std::string& to) override {
    return target_->LinkFile(from, to);
  }
  Status RemoveFile(const std::string& path) override { return target_->RemoveFile(path); }
  Status Chmod(const std::string& path, mode_t mode) override { return target_->Chmod(path, mode); }
  Result<FileStat> Stat(const std::string& path) override { return target_->Stat(path); }
  Status CreateDir(const std::string& path, mode_t mode) override {
    return target_->CreateDir(path, mode);
  }
  Status RemoveDir(const std::string& path) override { return target_->RemoveDir(path); }
  Status SyncDir(const std::string& path) override { return target_->SyncDir(path); }
  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    return target_->ListDir(path);
  }
  Result<SpaceInfo> GetSpaceInfo(const std::string& path) override {
    return target_->GetSpaceInfo(path);
  }

 private:
  Env* target_;
};

enum class CommitMode {
  kReplace,    // the target is replaced if it exists
  kNoReplace,  // kAlreadyExists if the target exists (content-addressed: same name, same bytes)
};

// A file written under a fresh temporary name in some directory (the store's ingest/) and then
// published under its final name by Commit. Until Commit succeeds, the final name never shows a
// partial file; if the TempFile is destroyed or abandoned first, the temporary file is removed.
class TempFile {
 public:
  // Creates DIR/PREFIX<owner>-<16 random hex digits> exclusively (O_EXCL), with permission
  // bits perm. <owner> names this process ("PID.STARTTIME", see RemoveDeadTempFiles), so that a
  // file left by a process killed before Commit can be told from one being written.
  static Result<TempFile> Create(Env* env, const std::string& dir,
                                 std::string_view prefix = ".tmp-", mode_t perm = 0644,
                                 bool sync_metadata = false);

  // Opens PATH, a fixed name, to append to what an earlier writer left there (created empty,
  // with permission bits perm, if missing): a download resumed after a failure or a kill
  // (store/blob_store.cc). The caller keeps other writers of PATH away (a lock). Commit and
  // Abandon work as for Create; Keep leaves the file for the next writer.
  static Result<TempFile> OpenToAppend(Env* env, std::string path, mode_t perm = 0644);

  TempFile(TempFile&& other) noexcept;
  TempFile& operator=(TempFile&& other) noexcept;
  ~TempFile();  // Abandon(), ignoring errors

  // The temporary path (empty once committed or abandoned).
  const std::string& path() const { return path_; }
  Status Append(std::span<const std::byte> data);
  Status Append(std::string_view data);

  // Sync, Close, rename to target, SyncDir(target's directory). On OK the target is durable with
  // the full content. On any error before the rename, the temporary file is removed. With
  // kNoReplace and an existing target, the temporary file is removed, the target's directory is
  // still fsynced (so the existing name, maybe renamed there by a writer that has not yet synced
  // the directory, is durable too) and kAlreadyExists is returned. If the final SyncDir fails,
  // the target exists but is not known to be durable: treat the commit as failed.
  Status Commit(const std::string& target, CommitMode mode = CommitMode::kReplace);
  // Closes and removes the temporary file. No-op after Commit, Abandon or Keep.
  Status Abandon();
  // Closes the file and leaves it where it is (OpenToAppend's files: the next writer goes on
  // from its end). No-op after Commit, Abandon or Keep.
  Status Keep();

 private:
  TempFile(Env* env, std::string path, std::unique_ptr<WritableFile> file)
      : env_(env), path_(std::move(path)), file_(std::move(file)) {}

  Env* env_ = nullptr;
  std::string path_;
  std::unique_ptr<WritableFile> file_;
};

// Removes the files of `dir` named PREFIX<owner>-... (TempFile's names) whose owner process is
// gone (killed before its Commit or Abandon); returns how many. A temporary file of a live
// process, or a name without an owner, is left alone. The owner is a pid and its start time
// (field 22 of /proc/PID/stat), so a reused pid does not keep a dead writer's file alive. Only
// meaningful for directories that processes of this machine write (not a layout shared over
// NFS by several hosts: another host's writer would look dead). Writers of directories outside
// the store (an OCI layout, an archive's directory, the auth file's) call it before writing.
Result<int> RemoveDeadTempFiles(Env* env, const std::string& dir, std::string_view prefix);

// The directory part of a path, lexically: "a/b" → "a", "b" → ".", "/b" → "/", "a/b/" → "a".
std::string DirName(std::string_view path);
// The last component of a path, lexically: "a/b" → "b", "a/b/" → "b", "/" → "/".
std::string BaseName(std::string_view path);

}  // namespace imgstore
