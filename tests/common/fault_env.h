// FaultEnv: an Env for tests that fails chosen file-system operations and simulates power loss.
//
// It wraps a real Env (the POSIX one by default) and works on real files, in the spirit of
// LevelDB's fault_injection_test:
//
// 1. Counting and failing. Every mutating call is counted by kind (FsOp). A test runs a scenario
//    once to count, say, the syncs it does, then reruns it failing the 1st, 2nd, ... sync in turn
//    (FailNth), or fails everything from some operation on (FailFrom: a disk that died, or a full
//    disk with ENOSPC). A failed operation does nothing (an injected write failure writes no
//    prefix) and returns the Status the POSIX Env would return for that errno
//    ("sync /x/blobs/..: Input/output error").
//
// 2. Power loss. DropUnsyncedData() turns the directory tree into what a power cut could leave,
//    under this model:
//    - file data: a file's durable content is what it held at its last successful
//      WritableFile::Sync through this Env; bytes appended after it are lost (the file is truncated
//      to that length). A file opened with kTruncate loses its old content at the open (the
//      pessimistic outcome); kAppend to a file that was not written through this Env treats its
//      existing bytes as durable.
//    - directory entries: creating a file, mkdir, rename, link, unlink and rmdir each change one
//      directory (for a rename: the destination's). The change is durable once SyncDir of that
//      directory succeeds after it. Changes that are not durable are undone, newest first:
//      created files and links are removed, created directories are removed with everything in
//      them, renames are moved back (and a replaced target is restored with its durable content),
//      removed files come back with their durable content and mode, removed directories come back
//      (but not inside a directory whose own removal is durable: a synced rm -rf stays done).
//      A rename is atomic: either both names are as before it or both as after it (ext4 and xfs
//      commit both sides in one journal transaction); a rename is not undone if its old name has
//      been taken again since.
//    - anything done outside this Env (SQLite's own I/O, a file that existed before) is durable
//      as it is. Chmod is kept whether or not it was synced. A removed symlink or special file
//      is not brought back.
//    - directories are identified by inode for SyncDir (any spelling of the path works), but
//      files with unsynced data are looked for by the directory names used in the calls (renames
//      through this Env are followed): a file reached only through another spelling is not
//      truncated.
//    What it does not model: torn or reordered writes inside the unsynced tail (the tail is
//    dropped whole, never partly kept or garbled), a failed Sync that leaves some data durable,
//    file systems that make an fsync of one directory durable for the others (ext4 does so in
//    practice; the model is stricter), and metadata such as mtime or mode changes.
//    Close every WritableFile of the "crashed" run before calling DropUnsyncedData; afterwards the
//    tree on disk counts as fully durable and tracking starts afresh. (A kill -9 needs no
//    simulation: everything written before it is visible afterwards, synced or not.)
//
// A FaultEnv must outlive the files it opened.
//
// Thread-safe: one mutex serializes the bookkeeping and the operations it records.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/env.h"
#include "util/status.h"

namespace imgstore::testing {

// The kinds of operation FaultEnv counts and can fail.
enum class FsOp {
  kCreate,   // NewWritableFile (any OpenMode)
  kWrite,    // WritableFile::Append
  kSync,     // WritableFile::Sync
  kRename,   // RenameFile, RenameNoReplace
  kLink,     // LinkFile
  kRemove,   // RemoveFile, RemoveDir
  kMkdir,    // CreateDir (CreateDirs calls it once per missing level, and once for the last)
  kSyncDir,  // SyncDir
  kChmod,    // Chmod
  kAny,      // every operation above: counts all, and a fault on it hits whichever comes
};
inline constexpr size_t kNumFsOps = static_cast<size_t>(FsOp::kAny) + 1;
std::string_view FsOpName(FsOp op);

class FaultEnv : public EnvWrapper {
 public:
  explicit FaultEnv(Env* target = Env::Default()) : EnvWrapper(target) {}

  // --- Counting and faults --------------------------------------------------------------------
  // Operations of a kind since construction or the last ResetCounts(), failed ones included.
  uint64_t count(FsOp op) const;
  void ResetCounts();
  // The n-th operation of kind op (1-based, as counted by count(op)) fails with err; once.
  void FailNth(FsOp op, uint64_t n, int err = EIO);
  // The next operation of kind op fails with err; once. (FailNth(op, count(op) + 1, err).)
  void FailNext(FsOp op, int err = EIO);
  // The n-th operation of kind op and every later one fail with err.
  void FailFrom(FsOp op, uint64_t n, int err = EIO);
  void ClearFaults();
  // How many operations failed by injection, and a description of the last one
  // ("sync /tmp/x/a (sync #2)"), for test failure messages.
  uint64_t faults_fired() const;
  std::string last_fault() const;
  // Counts an operation done outside this Env (SQLite's own writes and syncs, through FaultVfs in
  // fault_vfs.h) in the same sequence and under the same rules, so that one count orders both:
  // FailFrom(FsOp::kAny, n) then stops everything from operation n on. Returns the injected
  // fault, or OK (the caller then does the operation).
  Status CountExternal(FsOp op, std::string_view what);

  // --- Power loss -----------------------------------------------------------------------------
  // Leaves on disk what a power loss now could have left (see the model above), then forgets all
  // tracking. Errors mean the simulation itself failed.
  Status DropUnsyncedData();
  // Treats everything on disk as durable from now on (forgets tracking without changing files).
  void ForgetUnsyncedData();

  // --- Env ------------------------------------------------------------------------------------
  Result<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path, const WritableFileOptions& options) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status RenameNoReplace(const std::string& from, const std::string& to) override;
  Status LinkFile(const std::string& from, const std::string& to) override;
  Status RemoveFile(const std::string& path) override;
  Status Chmod(const std::string& path, mode_t mode) override;
  Status CreateDir(const std::string& path, mode_t mode) override;
  Status RemoveDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;

 private:
  friend class FaultWritableFile;
  using Inode = std::pair<uint64_t, uint64_t>;  // device, inode

  struct Rule {
    FsOp op;
    uint64_t n;
    int err;
    bool sticky;
  };
  // Content to bring back when a removal or a replacing rename is undone.
  struct Saved {
    Inode inode{};
    bool is_dir = false;
    uint32_t mode = 0;
    bool last_link = false;  // the removal freed the inode (its tracking goes with it)
    std::string content;     // truncated to its durable length
  };
  // One directory change that is not yet durable.
  struct Change {
    enum Kind { kCreateFile, kMkdir, kRename, kLink, kRemoveFile, kRemoveDir } kind;
    std::string path;  // the name created or removed; for a rename the new name
    std::string from;  // for a rename, the old name
    Inode inode{};     // the inode that was created, renamed or linked
    Inode dir{};       // the directory whose SyncDir makes the change durable
    std::optional<Saved> saved;
  };

  // Counts op and returns the injected failure, if any, for it. Requires mu_.
  Status CountAndCheck(FsOp op, std::string_view what);
  std::optional<Inode> InodeOf(const std::string& path) const;
  std::optional<Inode> ParentOf(const std::string& path) const;
  // Reads what a removal would lose (regular file or directory). Requires mu_.
  std::optional<Saved> SaveForUndo(const std::string& path);
  void Untrack(const Saved& saved);
  void NoteRename(const std::string& from, const std::string& to);
  Status Undo(const Change& c, std::map<Inode, Inode>& remap);
  Status Restore(const std::string& path, const Saved& saved, std::map<Inode, Inode>& remap);
  Status WithWrite(const std::string& path, const std::function<Status()>& fn);
  void OnSync(Inode inode, uint64_t size);

  mutable std::mutex mu_;
  std::array<uint64_t, kNumFsOps> counts_{};
  std::vector<Rule> rules_;
  uint64_t faults_fired_ = 0;
  std::string last_fault_;
  // Durable length of each file written through this Env, by inode.
  std::map<Inode, uint64_t> synced_size_;
  // Directories that held such files: where DropUnsyncedData looks for them.
  std::set<std::string> data_dirs_;
  std::vector<Change> changes_;  // oldest first
};

}  // namespace imgstore::testing
