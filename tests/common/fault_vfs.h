// FaultVfs: a SQLite VFS for tests that counts and fails SQLite's own writes and syncs and
// simulates a power loss for the database files (meta.db, meta.db-wal, meta.db-journal): what
// FaultEnv (fault_env.h) does for the files the store writes through its Env.
//
// It wraps SQLite's default VFS ("unix"), is registered under a name of its own (name(); pass it
// as StoreOptions::sqlite_vfs), and works on the real files.
//
// 1. Counting and failing. With a FaultEnv as counter (Options::counter), every operation that
//    changes the disk is counted in that FaultEnv's one sequence, under its rules: xWrite and
//    xTruncate as FsOp::kWrite, xSync as kSync, an xOpen that creates a file as kCreate, xDelete
//    as kRemove. So FaultEnv::FailFrom(FsOp::kAny, n) "stops the machine" at operation n for the
//    Env and SQLite alike (nothing after the crash point reaches the disk), and FailNth(kSync, n)
//    fails the n-th sync whoever does it; a FaultEnv that is not the store's Env counts SQLite's
//    operations alone. A failed operation does nothing and returns SQLITE_FULL for ENOSPC, else
//    SQLITE_IOERR_WRITE, _FSYNC, _TRUNCATE or _DELETE (SQLITE_CANTOPEN for a create).
//
// 2. Power loss. DropUnsyncedData() leaves the database files as a power cut could, under this
//    model (the one of fault_env.h, for SQLite's files):
//    - file data: a file's durable content is what it held at its last successful xSync through
//      this VFS, whatever the flags (SQLITE_SYNC_DATAONLY is fdatasync: data and the size needed
//      to read it, which is all the model knows of). Writes and truncations since are undone: each
//      keeps the bytes it overwrote (an undo log of pre-images) and the file's durable length, and
//      the loss writes them back newest first and truncates to that length. Tracking is by path:
//      SQLite names its files the same way every time.
//    - directory entries: a file created by xOpen, and a file removed by xDelete, change their
//      directory; the change is durable once that directory is synced through this VFS. SQLite
//      asks for it as its unix VFS does: the first successful xSync of a WAL or journal opened
//      with SQLITE_OPEN_CREATE also syncs the directory (UNIXFILE_DIRSYNC), and xDelete with
//      syncDir syncs it after the unlink. Changes not durable are undone newest first: created
//      files are removed, removed files come back with their durable content (mode 0644).
//    - the -shm file of each database is memory shared between connections, not data: a power
//      loss removes it, as a reboot makes SQLite rebuild it from the WAL.
//    - anything done outside this VFS is durable as it is. A FaultEnv::SyncDir of the database's
//      directory does not make this VFS's directory changes durable (stricter than a real file
//      system, where it would).
//    What it does not model: torn or reordered writes inside the unsynced part (undone whole,
//    never partly kept: SQLite's checksummed WAL frames would cope, but that is not tested), a
//    failed xSync that leaves some data durable, sector-sized damage around a write (SQLite's
//    powersafe-overwrite assumption), and inode metadata. With lying_syncs, xSync succeeds but
//    makes nothing durable: a disk that ignores flushes, or synchronous=OFF; the tests use it to
//    prove that their checks notice a lost commit.
//    Close every connection of the "crashed" run before calling DropUnsyncedData; afterwards the
//    files count as fully durable and tracking starts afresh.
//
// A FaultVfs must outlive every connection opened through it; its destructor unregisters it.
// Thread-safe: one mutex serializes the bookkeeping and the operations it records.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/fault_env.h"
#include "util/status.h"

namespace imgstore::testing {

class FaultVfs {
 public:
  struct Options {
    FaultEnv* counter = nullptr;  // counts and fails operations (see above); nullptr: none
    bool lying_syncs = false;     // xSync succeeds and makes nothing durable
  };
  // Registers the VFS (not as the default one).
  explicit FaultVfs(Options options);
  FaultVfs() : FaultVfs(Options{}) {}
  ~FaultVfs();
  FaultVfs(const FaultVfs&) = delete;
  FaultVfs& operator=(const FaultVfs&) = delete;

  // The name to open a database with (StoreOptions::sqlite_vfs, sqlite3_open_v2).
  const std::string& name() const { return name_; }
  void set_lying_syncs(bool lying);

  // Leaves on disk what a power loss now could have left of the database files (the model
  // above), then forgets all tracking. Errors mean the simulation itself failed.
  Status DropUnsyncedData();
  // Treats the files as durable as they are now (forgets tracking without changing files).
  void ForgetUnsyncedData();

  // Operations seen since construction (diagnostics, and tests of the VFS itself).
  uint64_t writes() const;
  uint64_t syncs() const;

  // An open file, as SQLite holds it (defined in fault_vfs.cc).
  struct File;

 private:
  friend struct FaultVfsCallbacks;
  // The bytes a write or truncation overwrote.
  struct PreImage {
    uint64_t offset;
    std::string bytes;
  };
  // A file changed since its last sync: its durable length and the undo log, oldest first.
  struct Unsynced {
    uint64_t durable_size = 0;
    std::vector<PreImage> undo;
  };
  // A directory change that is not yet durable.
  struct DirChange {
    bool created;         // else removed
    std::string path;     // the file
    std::string content;  // of a removed file: its durable content
  };

  Status Count(FsOp op, const std::string& what);
  // Before a write of [offset, offset + length) or a truncation to `offset` (length 0): saves
  // what it changes. `real` is the open file.
  int SaveBeforeChange(sqlite3_file* real, const std::string& path, uint64_t offset,
                       uint64_t length, bool truncate);
  std::string DurableContent(const std::string& path);
  void DirSynced(const std::string& dir);

  Options options_;
  std::string name_;
  sqlite3_vfs vfs_{};
  sqlite3_vfs* inner_ = nullptr;

  mutable std::mutex mu_;
  std::map<std::string, Unsynced> unsynced_;  // by path
  std::vector<DirChange> dir_changes_;        // oldest first
  std::set<std::string> databases_;           // main database files opened (their -shm)
  uint64_t writes_ = 0;
  uint64_t syncs_ = 0;
};

// For tests whose durability is simulated (FaultEnv, FaultVfs): real syncs then only cost time
// (ten times as much on ext4 of a loaded 2-core machine), so unless TMPDIR is set, TempDir goes to
// /dev/shm (tmpfs) when there is one. Call it before the first TempDir, while the test is the
// only thread (it sets an environment variable).
void PreferMemoryForTempDirs();

}  // namespace imgstore::testing
