// Env: the POSIX implementation, the helpers built on the Env interface, and TempFile.
#include "util/env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <utility>

namespace imgstore {
namespace {

// Runs a system call until it does not fail with EINTR (a signal handler installed without
// SA_RESTART, e.g. by an embedding runtime, must not turn into a spurious I/O error).
template <typename F>
auto RetryEintr(F f) {
  decltype(f()) r;
  do {
    r = f();
  } while (r == -1 && errno == EINTR);
  return r;
}

Status Errno(std::string_view op, const std::string& path) {
  int err = errno;
  std::string what(op);
  what += ' ';
  what += path;
  return Status::FromErrno(err, what);
}

Status Errno2(std::string_view op, const std::string& from, const std::string& to) {
  int err = errno;
  std::string what(op);
  what += ' ';
  what += from;
  what += " to ";
  what += to;
  return Status::FromErrno(err, what);
}

// Owns one descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // close(2) once: on Linux the descriptor is gone even when close fails with EINTR, so a retry
  // could close a descriptor another thread has just been given.
  int Close() { return fd_ < 0 ? 0 : ::close(std::exchange(fd_, -1)); }
  void Reset() { (void)Close(); }

 private:
  int fd_ = -1;
};

Result<Fd> OpenFd(const std::string& path, int flags, mode_t mode = 0) {
  int fd = RetryEintr([&] { return ::open(path.c_str(), flags | O_CLOEXEC, mode); });
  if (fd < 0) return Errno("open", path);
  return Fd(fd);
}

FileType TypeOf(mode_t m) {
  if (S_ISREG(m)) return FileType::kRegular;
  if (S_ISDIR(m)) return FileType::kDirectory;
  if (S_ISLNK(m)) return FileType::kSymlink;
  return FileType::kOther;
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, Fd fd, const WritableFileOptions& options)
      : WritableFile(std::move(path)),
        fd_(std::move(fd)),
        sync_metadata_(options.sync_metadata),
        bytes_per_sync_(options.bytes_per_sync) {}
  using WritableFile::Append;

  Status Append(std::span<const std::byte> data) override {
    if (!fd_.valid()) return Closed("write");
    const std::byte* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = RetryEintr([&] { return ::write(fd_.get(), p, left); });
      if (n < 0) return Errno("write", path());
      p += n;
      left -= static_cast<size_t>(n);
    }
    unsynced_ += data.size();
    if (bytes_per_sync_ > 0 && unsynced_ >= bytes_per_sync_) {
      // From offset 0 to the end: pages already clean cost nothing, and an appending file's
      // offsets need no tracking. Only a hint: an error here is the final Sync's to report.
      (void)::sync_file_range(fd_.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
      unsynced_ = 0;
    }
    return Status::OK();
  }

  Status Sync() override {
    if (!fd_.valid()) return Closed("sync");
    int r =
        RetryEintr([&] { return sync_metadata_ ? ::fsync(fd_.get()) : ::fdatasync(fd_.get()); });
    if (r != 0) return Errno("sync", path());
    return Status::OK();
  }

  Status Close() override {
    if (!fd_.valid()) return Closed("close");
    if (fd_.Close() != 0) return Errno("close", path());
    return Status::OK();
  }

 private:
  Status Closed(std::string_view op) const {
    return Status(Code::kFailedPrecondition, std::string(op) + " " + path() + ": file is closed");
  }

  Fd fd_;
  bool sync_metadata_;
  uint64_t bytes_per_sync_;
  uint64_t unsynced_ = 0;  // bytes appended since writeback was last started
};

class PosixSequentialFile final : public SequentialFile {
 public:
  PosixSequentialFile(std::string path, Fd fd)
      : SequentialFile(std::move(path)), fd_(std::move(fd)) {}

  Result<size_t> Read(std::span<std::byte> buf) override {
    size_t got = 0;
    while (got < buf.size()) {
      ssize_t n = RetryEintr([&] { return ::read(fd_.get(), buf.data() + got, buf.size() - got); });
      if (n < 0) return Errno("read", path());
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    return got;
  }

  Status Skip(uint64_t n) override {
    if (::lseek(fd_.get(), static_cast<off_t>(n), SEEK_CUR) < 0) return Errno("seek", path());
    return Status::OK();
  }

 private:
  Fd fd_;
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, Fd fd)
      : RandomAccessFile(std::move(path)), fd_(std::move(fd)) {}

  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> buf) const override {
    size_t got = 0;
    while (got < buf.size()) {
      ssize_t n = RetryEintr([&] {
        return ::pread(fd_.get(), buf.data() + got, buf.size() - got,
                       static_cast<off_t>(offset + got));
      });
      if (n < 0) return Errno("read", path());
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    return got;
  }

  Result<uint64_t> Size() const override {
    struct stat st;
    if (::fstat(fd_.get(), &st) != 0) return Errno("stat", path());
    return static_cast<uint64_t>(st.st_size);
  }

 private:
  Fd fd_;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path, const WritableFileOptions& options) override {
    int flags = O_WRONLY | O_CREAT;
    switch (options.mode) {
      case OpenMode::kCreateNew:
        flags |= O_EXCL;
        break;
      case OpenMode::kTruncate:
        flags |= O_TRUNC;
        break;
      case OpenMode::kAppend:
        flags |= O_APPEND;
        break;
    }
    Result<Fd> fd = OpenFd(path, flags, options.perm);
    if (!fd.ok()) return fd.status();
    return std::unique_ptr<WritableFile>(
        new PosixWritableFile(path, std::move(fd).value(), options));
  }

  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    Result<Fd> fd = OpenFd(path, O_RDONLY);
    if (!fd.ok()) return fd.status();
    return std::unique_ptr<SequentialFile>(new PosixSequentialFile(path, std::move(fd).value()));
  }

  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override {
    Result<Fd> fd = OpenFd(path, O_RDONLY);
    if (!fd.ok()) return fd.status();
    return std::unique_ptr<RandomAccessFile>(
        new PosixRandomAccessFile(path, std::move(fd).value()));
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return Errno2("rename", from, to);
    return Status::OK();
  }

  Status RenameNoReplace(const std::string& from, const std::string& to) override {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
      return Status::OK();
    }
    // EINVAL: the file system does not support the flag; ENOSYS: a kernel older than 3.15 (or a
    // seccomp filter that does not know the call).
    if (errno != EINVAL && errno != ENOSYS) return Errno2("rename", from, to);
    struct stat st;
    if (::lstat(from.c_str(), &st) != 0) return Errno2("rename", from, to);
    if (S_ISDIR(st.st_mode)) {
      // Directories cannot be hard-linked. rename(2) refuses a non-empty target directory.
      if (::rename(from.c_str(), to.c_str()) != 0) {
        if (errno == ENOTEMPTY) errno = EEXIST;
        return Errno2("rename", from, to);
      }
      return Status::OK();
    }
    // link(2) fails with EEXIST atomically; then the old name goes.
    if (::link(from.c_str(), to.c_str()) != 0) return Errno2("rename", from, to);
    if (::unlink(from.c_str()) != 0) return Errno2("rename (unlink of the old name)", from, to);
    return Status::OK();
  }

  Status LinkFile(const std::string& from, const std::string& to) override {
    if (::link(from.c_str(), to.c_str()) != 0) return Errno2("link", from, to);
    return Status::OK();
  }

  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return Errno("remove", path);
    return Status::OK();
  }

  Status Chmod(const std::string& path, mode_t mode) override {
    if (::chmod(path.c_str(), mode) != 0) return Errno("chmod", path);
    return Status::OK();
  }

  Result<FileStat> Stat(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return Errno("stat", path);
    FileStat fs;
    fs.type = TypeOf(st.st_mode);
    fs.size = static_cast<uint64_t>(st.st_size);
    fs.mode = st.st_mode & 07777;
    fs.device = st.st_dev;
    fs.inode = st.st_ino;
    fs.link_count = st.st_nlink;
    fs.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    return fs;
  }

  Status CreateDir(const std::string& path, mode_t mode) override {
    if (::mkdir(path.c_str(), mode) != 0) return Errno("mkdir", path);
    return Status::OK();
  }

  Status RemoveDir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) return Errno("rmdir", path);
    return Status::OK();
  }

  Status SyncDir(const std::string& path) override {
    int fd = RetryEintr([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
    if (fd < 0) return Errno("sync directory", path);
    Fd dir(fd);
    if (RetryEintr([&] { return ::fsync(dir.get()); }) != 0) return Errno("sync directory", path);
    return Status::OK();
  }

  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    int fd = RetryEintr([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
    if (fd < 0) return Errno("list", path);
    // fdopendir takes ownership of fd only on success.
    DIR* raw = ::fdopendir(fd);
    if (raw == nullptr) {
      Status s = Errno("list", path);
      ::close(fd);
      return s;
    }
    std::unique_ptr<DIR, int (*)(DIR*)> dir(raw, &::closedir);
    std::vector<std::string> names;
    for (;;) {
      errno = 0;
      struct dirent* e = ::readdir(dir.get());
      if (e == nullptr) {
        if (errno != 0) return Errno("list", path);
        break;
      }
      std::string_view name(e->d_name);
      if (name == "." || name == "..") continue;
      names.emplace_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  Result<SpaceInfo> GetSpaceInfo(const std::string& path) override {
    struct statvfs sv;
    if (RetryEintr([&] { return ::statvfs(path.c_str(), &sv); }) != 0)
      return Errno("statvfs", path);
    SpaceInfo info;
    info.total = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
    info.free = static_cast<uint64_t>(sv.f_bfree) * sv.f_frsize;
    info.available = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
    return info;
  }
};

// 16 hex digits from a per-thread generator seeded by the OS: unique enough that a collision
// (handled anyway by O_EXCL and a retry) is practically impossible, even across processes.
std::string RandomSuffix() {
  thread_local std::mt19937_64 gen([] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

// This process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or "" when
// it cannot be read.
std::string StartTimeOf(pid_t pid) {
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
  if (f == nullptr) return "";
  char buf[1024];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return "";
  int field = 2;
  while (*p != '\0' && field < 22) {
    if (*p++ == ' ') ++field;
  }
  std::string out;
  while (*p >= '0' && *p <= '9') out += *p++;
  return out;
}

// "PID.STARTTIME" of this process, computed once (a fork gets its own: the pid is read anew).
std::string OwnerTag() {
  static thread_local pid_t cached_pid = -1;
  static thread_local std::string cached;
  const pid_t pid = ::getpid();
  if (pid != cached_pid) {
    cached_pid = pid;
    cached = std::to_string(pid) + "." + StartTimeOf(pid);
  }
  return cached;
}

}  // namespace

Result<int> RemoveDeadTempFiles(Env* env, const std::string& dir, std::string_view prefix) {
  Result<std::vector<std::string>> names = env->ListDir(dir);
  if (!names.ok()) return names.status();
  int removed = 0;
  for (const std::string& name : *names) {
    if (!name.starts_with(prefix)) continue;
    // PREFIX PID "." STARTTIME "-" RANDOM
    const std::string_view rest = std::string_view(name).substr(prefix.size());
    const size_t dot = rest.find('.');
    const size_t dash = rest.find('-');
    if (dot == std::string_view::npos || dash == std::string_view::npos || dot > dash) continue;
    const std::string pid_text(rest.substr(0, dot));
    const std::string start(rest.substr(dot + 1, dash - dot - 1));
    if (pid_text.empty() || start.empty() ||
        pid_text.find_first_not_of("0123456789") != std::string::npos ||
        start.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) {
      continue;
    }
    if (StartTimeOf(static_cast<pid_t>(std::stol(pid_text))) == start) continue;  // alive
    Status s = env->RemoveFile(dir + "/" + name);
    if (s.ok()) {
      ++removed;
    } else if (s.code() != Code::kNotFound) {  // another sweeper was first
      return s;
    }
  }
  return removed;
}

Env* Env::Default() {
  static Env* const env = new PosixEnv();
  return env;
}

// --- Helpers ---------------------------------------------------------------------------------

Result<uint64_t> Env::FileSize(const std::string& path) {
  Result<FileStat> st = Stat(path);
  if (!st.ok()) return st.status();
  return st->size;
}

bool Env::FileExists(const std::string& path) {
  Result<FileStat> st = Stat(path);
  return st.ok() || st.status().code() != Code::kNotFound;
}

Status Env::CreateDirs(const std::string& path, mode_t mode) {
  Status s = CreateDir(path, mode);
  if (s.code() == Code::kNotFound) {
    // A parent is missing: make it, then retry. Recursion ends at "/" or "." which exist.
    std::string parent = DirName(path);
    if (parent == path) return s;
    IMGSTORE_RETURN_IF_ERROR(CreateDirs(parent, mode));
    s = CreateDir(path, mode);
  }
  if (s.code() == Code::kAlreadyExists) {
    // Existing is fine if it is a directory (maybe made by a concurrent CreateDirs); a symlink
    // to a directory is accepted too, as mkdir -p does.
    Result<FileStat> st = Stat(path);
    if (st.ok() && st->type == FileType::kDirectory) return Status::OK();
    struct stat target;
    if (st.ok() && st->type == FileType::kSymlink && ::stat(path.c_str(), &target) == 0 &&
        S_ISDIR(target.st_mode)) {
      return Status::OK();
    }
    return Status(Code::kAlreadyExists, "mkdir " + path + ": exists and is not a directory");
  }
  return s;
}

Status Env::RemoveTree(const std::string& path) {
  Result<FileStat> st = Stat(path);
  if (!st.ok()) return st.status().code() == Code::kNotFound ? Status::OK() : st.status();
  if (st->type != FileType::kDirectory) {
    Status s = RemoveFile(path);
    return s.code() == Code::kNotFound ? Status::OK() : s;
  }
  // Blob directories may be read-only; entries of a directory can be listed and removed only
  // when it is readable, writable and searchable by us.
  if ((st->mode & 0700) != 0700) IMGSTORE_RETURN_IF_ERROR(Chmod(path, st->mode | 0700));
  Result<std::vector<std::string>> names = ListDir(path);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    IMGSTORE_RETURN_IF_ERROR(RemoveTree(path + "/" + name));
  }
  Status s = RemoveDir(path);
  return s.code() == Code::kNotFound ? Status::OK() : s;
}

Result<std::string> Env::ReadFileToString(const std::string& path, uint64_t max_bytes_arg) {
  // A cap beyond what memory can hold is "no cap"; clamping keeps max_bytes + 1 from wrapping.
  const uint64_t max_bytes =
      std::min<uint64_t>(max_bytes_arg, std::numeric_limits<size_t>::max() / 2);
  auto too_big = [&] {
    return Status(Code::kCorruption, "read " + path + ": file is larger than the limit of " +
                                         std::to_string(max_bytes) + " bytes");
  };
  Result<std::unique_ptr<RandomAccessFile>> file = NewRandomAccessFile(path);
  if (!file.ok()) return file.status();
  Result<uint64_t> size = (*file)->Size();
  if (!size.ok()) return size.status();
  if (*size > max_bytes) return too_big();
  // The size is a hint: the file may grow or shrink while we read. Read until EOF, but never more
  // than one byte past the cap.
  std::string out;
  out.resize(static_cast<size_t>(*size) + 1);
  uint64_t got = 0;
  for (;;) {
    if (got == out.size()) {
      if (got > max_bytes) return too_big();
      out.resize(static_cast<size_t>(std::min<uint64_t>(max_bytes + 1, got * 2 + 4096)));
    }
    auto buf = std::as_writable_bytes(std::span<char>(out.data() + got, out.size() - got));
    Result<size_t> n = (*file)->ReadAt(got, buf);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    got += *n;
  }
  if (got > max_bytes) return too_big();
  out.resize(static_cast<size_t>(got));
  return out;
}

Status Env::WriteFileAtomically(const std::string& path, std::string_view data, mode_t perm) {
  Result<TempFile> tmp =
      TempFile::Create(this, DirName(path), "." + BaseName(path) + ".tmp-", perm);
  if (!tmp.ok()) return tmp.status();
  IMGSTORE_RETURN_IF_ERROR(tmp->Append(data));
  return tmp->Commit(path, CommitMode::kReplace);
}

// --- TempFile --------------------------------------------------------------------------------

Result<TempFile> TempFile::Create(Env* env, const std::string& dir, std::string_view prefix,
                                  mode_t perm, bool sync_metadata) {
  WritableFileOptions options;
  options.mode = OpenMode::kCreateNew;
  options.perm = perm;
  options.sync_metadata = sync_metadata;
  // A name collision means another file took the name first (say, a leftover of a crashed process
  // with the same random state): draw again, a few times.
  Status last;
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string path = dir + "/" + std::string(prefix) + OwnerTag() + "-" + RandomSuffix();
    Result<std::unique_ptr<WritableFile>> file = env->NewWritableFile(path, options);
    if (file.ok()) return TempFile(env, std::move(path), std::move(file).value());
    last = file.status();
    if (last.code() != Code::kAlreadyExists) return last;
  }
  return last;
}

Result<TempFile> TempFile::OpenToAppend(Env* env, std::string path, mode_t perm) {
  WritableFileOptions options;
  options.mode = OpenMode::kAppend;
  options.perm = perm;
  Result<std::unique_ptr<WritableFile>> file = env->NewWritableFile(path, options);
  if (!file.ok()) return file.status();
  return TempFile(env, std::move(path), std::move(file).value());
}

TempFile::TempFile(TempFile&& other) noexcept
    : env_(other.env_), path_(std::move(other.path_)), file_(std::move(other.file_)) {
  other.path_.clear();
}

TempFile& TempFile::operator=(TempFile&& other) noexcept {
  if (this != &other) {
    (void)Abandon();
    env_ = other.env_;
    path_ = std::move(other.path_);
    file_ = std::move(other.file_);
    other.path_.clear();
  }
  return *this;
}

TempFile::~TempFile() { (void)Abandon(); }

Status TempFile::Append(std::span<const std::byte> data) {
  if (!file_) return Status(Code::kFailedPrecondition, "temporary file already committed");
  return file_->Append(data);
}

Status TempFile::Append(std::string_view data) {
  return Append(std::as_bytes(std::span<const char>(data.data(), data.size())));
}

Status TempFile::Commit(const std::string& target, CommitMode mode) {
  if (!file_) return Status(Code::kFailedPrecondition, "temporary file already committed");
  Status s = file_->Sync();
  if (s.ok()) s = file_->Close();
  if (s.ok()) {
    s = mode == CommitMode::kReplace ? env_->RenameFile(path_, target)
                                     : env_->RenameNoReplace(path_, target);
  }
  if (!s.ok()) {
    Status already = s;
    (void)Abandon();
    if (already.code() == Code::kAlreadyExists && mode == CommitMode::kNoReplace) {
      IMGSTORE_RETURN_IF_ERROR(env_->SyncDir(DirName(target)));
    }
    return already;
  }
  file_.reset();
  path_.clear();
  return env_->SyncDir(DirName(target));
}

Status TempFile::Abandon() {
  if (path_.empty()) return Status::OK();
  Status s;
  if (file_) {
    // The close error of a file we discard does not matter; the remove error does.
    (void)file_->Close();
    file_.reset();
  }
  s = env_->RemoveFile(path_);
  path_.clear();
  return s.code() == Code::kNotFound ? Status::OK() : s;
}

Status TempFile::Keep() {
  if (path_.empty()) return Status::OK();
  Status s = file_ ? file_->Close() : Status::OK();
  file_.reset();
  path_.clear();
  return s;
}

// --- Paths -----------------------------------------------------------------------------------

std::string DirName(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  while (slash > 0 && path[slash - 1] == '/') --slash;  // "a//b" → "a"
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string BaseName(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos || path.size() == 1) return std::string(path);
  return std::string(path.substr(slash + 1));
}

}  // namespace imgstore
