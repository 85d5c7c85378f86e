// Leases: files under DIR/leases whose OFD write lock is held by the lease's owner.
//
// Liveness is the kernel lock, never the file: a killed owner's lock vanishes with it, so the
// lease reads dead at once. The file's text (pid, label, since) is for people and `imgstore
// locks`. The owner removes the file on release; files of dead owners are removed by
// RemoveDeadLeases (the store runs it when it opens).
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <utility>

#include "locking/lock_record.h"
#include "locking/locking.h"
#include "locking/ofd.h"
#include "util/env.h"

namespace imgstore::locking {
namespace {

constexpr std::string_view kLeaseSuffix = ".lease";
constexpr int64_t kLeaseByte = kByteData;

std::string LeaseDir(const std::string& dir) { return dir + "/leases"; }

bool ValidLeaseId(std::string_view id) {
  return id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

Result<std::string> RandomId() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "getrandom");
    }
    got += static_cast<size_t>(n);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char b : bytes) {
    id += kHex[b >> 4];
    id += kHex[b & 15];
  }
  return id;
}

// Parses the "key=value" lines a lease file holds.
LeaseInfo ReadLeaseFile(int fd, std::string id) {
  LeaseInfo info;
  info.id = std::move(id);
  char buf[1024];
  ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return info;
  std::string_view text(buf, static_cast<size_t>(n));
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = line.substr(0, eq);
    std::string value(line.substr(eq + 1));
    if (key == "pid") info.pid = static_cast<pid_t>(std::atoll(value.c_str()));
    if (key == "label") info.label = value;
    if (key == "since") info.since_unix_ns = std::atoll(value.c_str());
  }
  return info;
}

// Calls fn(id, path) for every lease file.
template <typename Fn>
Status ForEachLeaseFile(const std::string& dir, Fn fn) {
  DIR* d = ::opendir(LeaseDir(dir).c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return Status::OK();
    return Status::FromErrno(errno, "list leases in " + LeaseDir(dir));
  }
  std::vector<std::string> ids;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view file(e->d_name);
    if (!file.ends_with(kLeaseSuffix)) continue;
    std::string_view id = file.substr(0, file.size() - kLeaseSuffix.size());
    if (ValidLeaseId(id)) ids.emplace_back(id);
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  for (const std::string& id : ids) {
    IMGSTORE_RETURN_IF_ERROR(fn(id, LeaseDir(dir) + "/" + id + std::string(kLeaseSuffix)));
  }
  return Status::OK();
}

// Descriptors of the leases this process holds. A child forked without exec would share their
// open file descriptions and keep the leases alive after we die: it points them at /dev/null.
std::mutex g_leases_mu;
std::set<int>& HeldLeaseFds() {
  static auto* fds = new std::set<int>();
  return *fds;
}
void LeasesPrepareFork() { g_leases_mu.lock(); }
void LeasesParentAfterFork() { g_leases_mu.unlock(); }
void LeasesChildAfterFork() {
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    for (int fd : HeldLeaseFds()) ::dup2(devnull, fd);
    ::close(devnull);
  }
  HeldLeaseFds().clear();
  new (&g_leases_mu) std::mutex();
}
void TrackLeaseFd(int fd) {
  static std::once_flag once;
  std::call_once(once, [] {
    ::pthread_atfork(LeasesPrepareFork, LeasesParentAfterFork, LeasesChildAfterFork);
  });
  std::lock_guard<std::mutex> l(g_leases_mu);
  HeldLeaseFds().insert(fd);
}
void UntrackLeaseFd(int fd) {
  std::lock_guard<std::mutex> l(g_leases_mu);
  HeldLeaseFds().erase(fd);
}

}  // namespace

Result<Lease> LockSpace::CreateLease(std::string_view label) const {
  IMGSTORE_RETURN_IF_ERROR(Env::Default()->CreateDirs(LeaseDir(dir_)));
  for (;;) {
    Result<std::string> id = RandomId();
    if (!id.ok()) return id.status();
    std::string path = LeaseDir(dir_) + "/" + *id + std::string(kLeaseSuffix);
    // The file is locked and written under a name RemoveDeadLeases ignores, then renamed into
    // place: a lease file never exists unlocked while its owner lives.
    std::string temp = LeaseDir(dir_) + "/.new-" + *id;
    int fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
      if (errno == EEXIST) continue;  // 128 random bits collided: draw again
      return Status::FromErrno(errno, "create lease " + temp);
    }
    auto fail = [&](Status st) {
      ::unlink(temp.c_str());
      ::close(fd);
      return st;
    };
    Result<bool> locked = TrySetByte(fd, kLeaseByte, ByteLock::kWrite);
    if (!locked.ok()) return fail(locked.status());
    if (!*locked) return fail(Status(Code::kInternal, "fresh lease file " + temp + " was locked"));
    std::string clean_label(label);
    std::replace(clean_label.begin(), clean_label.end(), '\n', ' ');
    std::string text = "pid=" + std::to_string(::getpid()) + "\nlabel=" + clean_label +
                       "\nsince=" + std::to_string(NowUnixNs()) + "\n";
    if (::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
      return fail(Status::FromErrno(errno, "write lease " + temp));
    }
    if (::rename(temp.c_str(), path.c_str()) != 0) {
      return fail(Status::FromErrno(errno, "create lease " + path));
    }
    TrackLeaseFd(fd);
    return Lease(std::move(*id), std::move(path), fd);
  }
}

Result<bool> LockSpace::LeaseAlive(std::string_view id) const {
  if (!ValidLeaseId(id)) {
    return Status(Code::kInvalidArgument, "invalid lease id \"" + std::string(id) + "\"");
  }
  std::string path = LeaseDir(dir_) + "/" + std::string(id) + std::string(kLeaseSuffix);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    return Status::FromErrno(errno, "open lease " + path);
  }
  Result<ByteLock> probe = ProbeByte(fd, kLeaseByte, ByteLock::kWrite);
  ::close(fd);
  if (!probe.ok()) return probe.status();
  return *probe != ByteLock::kUnlocked;
}

Result<std::vector<LeaseInfo>> LockSpace::ListLeases() const {
  std::vector<LeaseInfo> out;
  Status s = ForEachLeaseFile(dir_, [&](const std::string& id, const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return Status::OK();  // released meanwhile
    LeaseInfo info = ReadLeaseFile(fd, id);
    Result<ByteLock> probe = ProbeByte(fd, kLeaseByte, ByteLock::kWrite);
    ::close(fd);
    if (!probe.ok()) return probe.status();
    info.alive = *probe != ByteLock::kUnlocked;
    out.push_back(std::move(info));
    return Status::OK();
  });
  if (!s.ok()) return s;
  return out;
}

Result<int> LockSpace::RemoveDeadLeases() const {
  int removed = 0;
  Status s = ForEachLeaseFile(dir_, [&](const std::string&, const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return Status::OK();
    // Taking the lock proves the owner is gone; holding it while unlinking keeps the proof.
    Result<bool> got = TrySetByte(fd, kLeaseByte, ByteLock::kWrite);
    Status result = got.ok() ? Status::OK() : got.status();
    if (got.ok() && *got) {
      if (::unlink(path.c_str()) == 0) {
        ++removed;
      } else if (errno != ENOENT) {
        result = Status::FromErrno(errno, "remove dead lease " + path);
      }
    }
    ::close(fd);
    return result;
  });
  if (!s.ok()) return s;
  return removed;
}

Lease::Lease(Lease&& other) noexcept
    : id_(std::move(other.id_)), path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    id_ = std::move(other.id_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Lease::~Lease() { Release(); }

void Lease::Release() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still locked, so nobody sees a live lease without a file
  UntrackLeaseFd(fd_);
  ::close(fd_);
  fd_ = -1;
}

}  // namespace imgstore::locking
