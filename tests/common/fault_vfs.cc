// FaultVfs: the SQLite VFS shim that counts, fails and power-cuts SQLite's I/O (see fault_vfs.h).
#include "common/fault_vfs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>
#include <string_view>
#include <utility>

#include "util/env.h"

namespace imgstore::testing {

// One open file: SQLite sees `base`; the default VFS's own file object follows in the same
// allocation (vfs_.szOsFile makes room for both).
struct FaultVfs::File {
  sqlite3_file base;
  FaultVfs* vfs;
  std::string* path;  // nullptr: a temporary file, neither tracked nor counted
  bool dir_sync;      // the first successful sync also syncs the directory (UNIXFILE_DIRSYNC)
  sqlite3_file* real;
};

namespace {

constexpr size_t kRealOffset = (sizeof(FaultVfs::File) + 15) & ~size_t{15};

int ErrorCode(const Status& s, int io_error) {
  return s.code() == Code::kNoSpace ? SQLITE_FULL : io_error;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::string ReadAll(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status WriteAllAt(int fd, std::string_view data, uint64_t offset, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "fault vfs: write " + path);
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return Status::OK();
}

}  // namespace

// The sqlite3_vfs and sqlite3_io_methods callbacks.
struct FaultVfsCallbacks {
  using File = FaultVfs::File;
  static FaultVfs* Self(sqlite3_vfs* vfs) { return static_cast<FaultVfs*>(vfs->pAppData); }
  static sqlite3_vfs* Inner(sqlite3_vfs* vfs) { return Self(vfs)->inner_; }
  static File* Of(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
  static sqlite3_file* Real(sqlite3_file* f) { return Of(f)->real; }

  // --- sqlite3_io_methods ------------------------------------------------------------------
  static int Close(sqlite3_file* f) {
    File* p = Of(f);
    int rc = p->real->pMethods != nullptr ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
    delete p->path;
    p->path = nullptr;
    return rc;
  }

  static int Read(sqlite3_file* f, void* buf, int amt, sqlite3_int64 off) {
    return Real(f)->pMethods->xRead(Real(f), buf, amt, off);
  }

  static int Write(sqlite3_file* f, const void* buf, int amt, sqlite3_int64 off) {
    File* p = Of(f);
    if (p->path == nullptr) return p->real->pMethods->xWrite(p->real, buf, amt, off);
    FaultVfs* v = p->vfs;
    std::lock_guard lock(v->mu_);
    Status s = v->Count(FsOp::kWrite, "sqlite write " + *p->path);
    if (!s.ok()) return ErrorCode(s, SQLITE_IOERR_WRITE);
    int rc = v->SaveBeforeChange(p->real, *p->path, static_cast<uint64_t>(off),
                                 static_cast<uint64_t>(amt), /*truncate=*/false);
    if (rc != SQLITE_OK) return rc;
    ++v->writes_;
    return p->real->pMethods->xWrite(p->real, buf, amt, off);
  }

  static int Truncate(sqlite3_file* f, sqlite3_int64 size) {
    File* p = Of(f);
    if (p->path == nullptr) return p->real->pMethods->xTruncate(p->real, size);
    FaultVfs* v = p->vfs;
    std::lock_guard lock(v->mu_);
    Status s = v->Count(FsOp::kWrite, "sqlite truncate " + *p->path);
    if (!s.ok()) return ErrorCode(s, SQLITE_IOERR_TRUNCATE);
    int rc = v->SaveBeforeChange(p->real, *p->path, static_cast<uint64_t>(size), 0,
                                 /*truncate=*/true);
    if (rc != SQLITE_OK) return rc;
    ++v->writes_;
    return p->real->pMethods->xTruncate(p->real, size);
  }

  static int Sync(sqlite3_file* f, int flags) {
    File* p = Of(f);
    if (p->path == nullptr) return p->real->pMethods->xSync(p->real, flags);
    FaultVfs* v = p->vfs;
    std::lock_guard lock(v->mu_);
    Status s = v->Count(FsOp::kSync, "sqlite sync " + *p->path);
    if (!s.ok()) return ErrorCode(s, SQLITE_IOERR_FSYNC);
    int rc = p->real->pMethods->xSync(p->real, flags);
    if (rc != SQLITE_OK) return rc;
    ++v->syncs_;
    if (!v->options_.lying_syncs) {
      v->unsynced_.erase(*p->path);
      if (p->dir_sync) v->DirSynced(DirName(*p->path));
    }
    // The unix VFS syncs the directory once, at the first successful sync, lying or not.
    p->dir_sync = false;
    return SQLITE_OK;
  }

  static int FileSize(sqlite3_file* f, sqlite3_int64* size) {
    return Real(f)->pMethods->xFileSize(Real(f), size);
  }
  static int Lock(sqlite3_file* f, int level) { return Real(f)->pMethods->xLock(Real(f), level); }
  static int Unlock(sqlite3_file* f, int level) {
    return Real(f)->pMethods->xUnlock(Real(f), level);
  }
  static int CheckReservedLock(sqlite3_file* f, int* out) {
    return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
  }
  static int FileControl(sqlite3_file* f, int op, void* arg) {
    return Real(f)->pMethods->xFileControl(Real(f), op, arg);
  }
  static int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
  static int DeviceCharacteristics(sqlite3_file* f) {
    return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
  }
  // Shared memory (the WAL index) is not durable data: passed through, never counted.
  static int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
    if (Real(f)->pMethods->iVersion < 2) return SQLITE_IOERR_SHMMAP;
    return Real(f)->pMethods->xShmMap(Real(f), region, size, extend, out);
  }
  static int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
    return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
  }
  static void ShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
  static int ShmUnmap(sqlite3_file* f, int delete_flag) {
    return Real(f)->pMethods->xShmUnmap(Real(f), delete_flag);
  }
  static int Fetch(sqlite3_file* f, sqlite3_int64 off, int amt, void** out) {
    if (Real(f)->pMethods->iVersion < 3) {
      *out = nullptr;
      return SQLITE_OK;
    }
    return Real(f)->pMethods->xFetch(Real(f), off, amt, out);
  }
  static int Unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
    if (Real(f)->pMethods->iVersion < 3) return SQLITE_OK;
    return Real(f)->pMethods->xUnfetch(Real(f), off, p);
  }

  static constexpr sqlite3_io_methods kMethods = {
      3,
      Close,
      Read,
      Write,
      Truncate,
      Sync,
      FileSize,
      Lock,
      Unlock,
      CheckReservedLock,
      FileControl,
      SectorSize,
      DeviceCharacteristics,
      ShmMap,
      ShmLock,
      ShmBarrier,
      ShmUnmap,
      Fetch,
      Unfetch,
  };

  // --- sqlite3_vfs ----------------------------------------------------------------------------
  static int Open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* f, int flags,
                  int* out_flags) {
    FaultVfs* v = Self(vfs);
    File* p = new (f) File{};
    p->vfs = v;
    p->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + kRealOffset);
    p->real->pMethods = nullptr;
    // Temporary files (no name, or deleted on close) are not state that survives anything.
    const bool track = name != nullptr && (flags & SQLITE_OPEN_DELETEONCLOSE) == 0;
    std::unique_lock lock(v->mu_, std::defer_lock);
    bool creating = false;
    if (track) {
      lock.lock();
      creating = (flags & SQLITE_OPEN_CREATE) != 0 && !Exists(name);
      if (creating && !v->Count(FsOp::kCreate, "sqlite create " + std::string(name)).ok()) {
        return SQLITE_CANTOPEN;
      }
    }
    int rc = v->inner_->xOpen(v->inner_, name, p->real, flags, out_flags);
    if (rc != SQLITE_OK) {
      if (p->real->pMethods != nullptr) p->real->pMethods->xClose(p->real);
      return rc;
    }
    if (track) {
      p->path = new std::string(name);
      if (creating && Exists(*p->path)) v->dir_changes_.push_back({true, *p->path, ""});
      if ((flags & SQLITE_OPEN_MAIN_DB) != 0) v->databases_.insert(*p->path);
      p->dir_sync =
          (flags & SQLITE_OPEN_CREATE) != 0 &&
          (flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_SUPER_JOURNAL)) != 0;
    }
    p->base.pMethods = &kMethods;
    return SQLITE_OK;
  }

  static int Delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
    FaultVfs* v = Self(vfs);
    const std::string path(name);
    std::lock_guard lock(v->mu_);
    Status s = v->Count(FsOp::kRemove, "sqlite delete " + path);
    if (!s.ok()) return SQLITE_IOERR_DELETE;
    const bool existed = Exists(path);
    std::string content = existed && sync_dir == 0 ? v->DurableContent(path) : std::string();
    int rc = v->inner_->xDelete(v->inner_, name, sync_dir);
    if (rc != SQLITE_OK) return rc;
    v->unsynced_.erase(path);
    if (sync_dir != 0) {
      v->DirSynced(DirName(path));
    } else if (existed) {
      v->dir_changes_.push_back({false, path, std::move(content)});
    }
    return SQLITE_OK;
  }

  static int Access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
    return Inner(vfs)->xAccess(Inner(vfs), name, flags, out);
  }
  static int FullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
    return Inner(vfs)->xFullPathname(Inner(vfs), name, n, out);
  }
  static void* DlOpen(sqlite3_vfs* vfs, const char* name) {
    return Inner(vfs)->xDlOpen(Inner(vfs), name);
  }
  static void DlError(sqlite3_vfs* vfs, int n, char* out) {
    Inner(vfs)->xDlError(Inner(vfs), n, out);
  }
  static void (*DlSym(sqlite3_vfs* vfs, void* handle, const char* sym))(void) {
    return Inner(vfs)->xDlSym(Inner(vfs), handle, sym);
  }
  static void DlClose(sqlite3_vfs* vfs, void* handle) { Inner(vfs)->xDlClose(Inner(vfs), handle); }
  static int Randomness(sqlite3_vfs* vfs, int n, char* out) {
    return Inner(vfs)->xRandomness(Inner(vfs), n, out);
  }
  static int Sleep(sqlite3_vfs* vfs, int micros) { return Inner(vfs)->xSleep(Inner(vfs), micros); }
  static int CurrentTime(sqlite3_vfs* vfs, double* out) {
    return Inner(vfs)->xCurrentTime(Inner(vfs), out);
  }
  static int GetLastError(sqlite3_vfs* vfs, int n, char* out) {
    return Inner(vfs)->xGetLastError(Inner(vfs), n, out);
  }
  static int CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
    return Inner(vfs)->xCurrentTimeInt64(Inner(vfs), out);
  }
};

FaultVfs::FaultVfs(Options options) : options_(options) {
  static std::atomic<int> next{0};
  name_ = "imgstore-fault-" + std::to_string(next.fetch_add(1));
  inner_ = sqlite3_vfs_find(nullptr);
  vfs_.iVersion = 2;
  vfs_.szOsFile = static_cast<int>(kRealOffset) + inner_->szOsFile;
  vfs_.mxPathname = inner_->mxPathname;
  vfs_.zName = name_.c_str();
  vfs_.pAppData = this;
  vfs_.xOpen = FaultVfsCallbacks::Open;
  vfs_.xDelete = FaultVfsCallbacks::Delete;
  vfs_.xAccess = FaultVfsCallbacks::Access;
  vfs_.xFullPathname = FaultVfsCallbacks::FullPathname;
  vfs_.xDlOpen = FaultVfsCallbacks::DlOpen;
  vfs_.xDlError = FaultVfsCallbacks::DlError;
  vfs_.xDlSym = FaultVfsCallbacks::DlSym;
  vfs_.xDlClose = FaultVfsCallbacks::DlClose;
  vfs_.xRandomness = FaultVfsCallbacks::Randomness;
  vfs_.xSleep = FaultVfsCallbacks::Sleep;
  vfs_.xCurrentTime = FaultVfsCallbacks::CurrentTime;
  vfs_.xGetLastError = FaultVfsCallbacks::GetLastError;
  vfs_.xCurrentTimeInt64 = FaultVfsCallbacks::CurrentTimeInt64;
  sqlite3_vfs_register(&vfs_, /*makeDflt=*/0);
}

FaultVfs::~FaultVfs() { sqlite3_vfs_unregister(&vfs_); }

void FaultVfs::set_lying_syncs(bool lying) {
  std::lock_guard lock(mu_);
  options_.lying_syncs = lying;
}

uint64_t FaultVfs::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

uint64_t FaultVfs::syncs() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

Status FaultVfs::Count(FsOp op, const std::string& what) {
  if (options_.counter == nullptr) return Status::OK();
  return options_.counter->CountExternal(op, what);
}

int FaultVfs::SaveBeforeChange(sqlite3_file* real, const std::string& path, uint64_t offset,
                               uint64_t length, bool truncate) {
  sqlite3_int64 size = 0;
  int rc = real->pMethods->xFileSize(real, &size);
  if (rc != SQLITE_OK) return rc;
  const uint64_t now = static_cast<uint64_t>(size);
  // The first change since the last sync: what is there now is the durable content.
  auto [it, first] = unsynced_.try_emplace(path);
  if (first) it->second.durable_size = now;
  const uint64_t end = truncate ? now : std::min(now, offset + length);
  if (offset >= end) return SQLITE_OK;
  PreImage pre{offset, std::string(static_cast<size_t>(end - offset), '\0')};
  rc = real->pMethods->xRead(real, pre.bytes.data(), static_cast<int>(pre.bytes.size()),
                             static_cast<sqlite3_int64>(offset));
  if (rc != SQLITE_OK) return rc;
  it->second.undo.push_back(std::move(pre));
  return SQLITE_OK;
}

std::string FaultVfs::DurableContent(const std::string& path) {
  std::string content = ReadAll(path);
  auto it = unsynced_.find(path);
  if (it == unsynced_.end()) return content;
  for (auto pre = it->second.undo.rbegin(); pre != it->second.undo.rend(); ++pre) {
    const size_t off = static_cast<size_t>(pre->offset);
    if (content.size() < off + pre->bytes.size()) content.resize(off + pre->bytes.size());
    content.replace(off, pre->bytes.size(), pre->bytes);
  }
  content.resize(static_cast<size_t>(it->second.durable_size));
  return content;
}

void FaultVfs::DirSynced(const std::string& dir) {
  std::erase_if(dir_changes_, [&](const DirChange& c) { return DirName(c.path) == dir; });
}

void FaultVfs::ForgetUnsyncedData() {
  std::lock_guard lock(mu_);
  unsynced_.clear();
  dir_changes_.clear();
}

Status FaultVfs::DropUnsyncedData() {
  std::lock_guard lock(mu_);
  Status first;
  auto note = [&](Status s) {
    if (first.ok() && !s.ok()) first = std::move(s);
  };
  // 1. File data: back to the last sync.
  for (const auto& [path, unsynced] : unsynced_) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) note(Status::FromErrno(errno, "fault vfs: open " + path));
      continue;
    }
    for (auto pre = unsynced.undo.rbegin(); pre != unsynced.undo.rend(); ++pre) {
      note(WriteAllAt(fd, pre->bytes, pre->offset, path));
    }
    if (::ftruncate(fd, static_cast<off_t>(unsynced.durable_size)) != 0) {
      note(Status::FromErrno(errno, "fault vfs: truncate " + path));
    }
    ::close(fd);
  }
  // 2. Directory entries, newest first.
  for (auto c = dir_changes_.rbegin(); c != dir_changes_.rend(); ++c) {
    if (c->created) {
      if (::unlink(c->path.c_str()) != 0 && errno != ENOENT) {
        note(Status::FromErrno(errno, "fault vfs: remove " + c->path));
      }
      continue;
    }
    if (Exists(c->path)) continue;
    int fd = ::open(c->path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      note(Status::FromErrno(errno, "fault vfs: restore " + c->path));
      continue;
    }
    note(WriteAllAt(fd, c->content, 0, c->path));
    ::close(fd);
  }
  // 3. Shared memory does not survive a reboot.
  for (const std::string& db : databases_) {
    const std::string shm = db + "-shm";
    if (::unlink(shm.c_str()) != 0 && errno != ENOENT) {
      note(Status::FromErrno(errno, "fault vfs: remove " + shm));
    }
  }
  unsynced_.clear();
  dir_changes_.clear();
  return first;
}

void PreferMemoryForTempDirs() {
  if (std::getenv("TMPDIR") == nullptr && ::access("/dev/shm", W_OK) == 0) {
    ::setenv("TMPDIR", "/dev/shm", /*overwrite=*/0);
  }
}

}  // namespace imgstore::testing
