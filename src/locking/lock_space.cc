// LockSpace: a directory of lock files; names, listing, removal of unused lock files, and the
// file-descriptor limit.
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

#include "locking/lock_file.h"
#include "locking/lock_record.h"
#include "locking/locking.h"
#include "util/env.h"

namespace imgstore::locking {
namespace {

constexpr std::string_view kLockSuffix = ".lock";
constexpr size_t kMaxNameLength = 200;  // the file name (+ ".lock") must fit NAME_MAX (255)

// Locks are file descriptors: a process holding many locks needs many of them. The soft limit
// (often 1024) is an accident of history; the hard limit is the real bound (as Go does).
void RaiseFileLimit() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct rlimit rl;
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      (void)::setrlimit(RLIMIT_NOFILE, &rl);
    }
  });
}

bool ValidNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '@' || c == '+' || c == '=' || c == '-';
}

Status CheckName(std::string_view name) {
  bool valid = !name.empty() && name.size() <= kMaxNameLength && name.front() != '.' &&
               std::all_of(name.begin(), name.end(), ValidNameChar);
  if (valid) return Status::OK();
  return Status(Code::kInvalidArgument,
                "invalid lock name \"" + std::string(name) +
                    "\": use 1 to 200 of [A-Za-z0-9._:@+=-], not starting with '.'");
}

}  // namespace

Result<LockSpace> LockSpace::Open(const std::string& dir) {
  RaiseFileLimit();
  IMGSTORE_RETURN_IF_ERROR(Env::Default()->CreateDirs(dir));
  return LockSpace(dir);
}

Result<Lock> LockSpace::Get(std::string_view name) const {
  IMGSTORE_RETURN_IF_ERROR(CheckName(name));
  Result<std::shared_ptr<LockFile>> file =
      LockFile::Open(dir_ + "/" + std::string(name) + std::string(kLockSuffix), name);
  if (!file.ok()) return file.status();
  return Lock(std::move(*file));
}

Result<bool> LockSpace::RemoveIfUnused(std::string_view name) const {
  IMGSTORE_RETURN_IF_ERROR(CheckName(name));
  const std::string path = dir_ + "/" + std::string(name) + std::string(kLockSuffix);
  // Opening would create it: a file that is not there has nothing to remove.
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return Status::FromErrno(errno, "stat lock file " + path);
  }
  Result<std::shared_ptr<LockFile>> file = LockFile::Open(path, name);
  if (!file.ok()) return file.status();
  return (*file)->TryRemove();
}

Result<std::vector<LockInfo>> LockSpace::List(bool only_active) const {
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return Status::FromErrno(errno, "list locks in " + dir_);
  std::vector<LockInfo> out;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view file(e->d_name);
    if (file.size() <= kLockSuffix.size() || !file.ends_with(kLockSuffix)) continue;
    std::string path = dir_ + "/" + std::string(file);
    // A separate read-only description: probing and reading through it cannot disturb the OFD
    // locks this process holds through its registered descriptor.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;  // removed meanwhile
    LockInfo info;
    info.path = path;
    info.name = ReadLockName(fd);
    if (info.name.empty())
      info.name = std::string(file.substr(0, file.size() - kLockSuffix.size()));
    Result<std::vector<SlotState>> slots = ReadLiveSlots(fd, -1);
    ::close(fd);
    if (!slots.ok()) {
      ::closedir(d);
      return slots.status().WithContext("read " + path);
    }
    for (const SlotState& s : *slots) {
      if (s.held != LockMode::kNone) {
        info.holders.push_back({s.pid, s.held, s.held_op, s.held_since_ns, s.held_threads});
      }
      if (s.wanted != LockMode::kNone) {
        info.waiters.push_back({s.pid, s.wanted, s.wait_op, s.wait_since_ns, s.waiting_threads});
      }
    }
    if (only_active && info.holders.empty() && info.waiters.empty()) continue;
    out.push_back(std::move(info));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(),
            [](const LockInfo& a, const LockInfo& b) { return a.name < b.name; });
  return out;
}

}  // namespace imgstore::locking
