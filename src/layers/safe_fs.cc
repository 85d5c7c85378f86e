// Root-confined directory resolution (openat2 RESOLVE_IN_ROOT, or an emulated O_NOFOLLOW walk),
// creation of missing directories, and rm -rf relative to a directory descriptor.
#include "layers/safe_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <deque>
#include <string>

namespace imgstore::layers {
namespace {

std::atomic<bool> g_openat2_disabled{false};

constexpr int kMaxSymlinks = 40;  // the kernel's MAXSYMLINKS
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;

std::string Quoted(std::string_view rel) {
  std::string s = "'";
  s += rel;
  s += "'";
  return s;
}

// The error of a failed resolution of `rel`, with the code the extractor's callers branch on.
Status ResolveError(int err, std::string_view rel, std::string_view what,
                    Resolve resolve = Resolve::kInRoot) {
  std::string msg(what);
  msg += ' ';
  msg += Quoted(rel);
  switch (err) {
    case ENOTDIR:
      return Status(Code::kFailedPrecondition, msg + ": a component is not a directory");
    case ELOOP:
      if (resolve == Resolve::kNoSymlinks) {
        return Status(Code::kFailedPrecondition, msg + ": a component is a symbolic link");
      }
      return Status(Code::kInvalidArgument, msg + ": too many levels of symbolic links");
    case EXDEV:
      return Status(Code::kInvalidArgument,
                    msg + ": resolution would cross a mount point or use a magic link");
    default:
      return Status::FromErrno(err, msg);
  }
}

std::vector<std::string_view> SplitComponents(std::string_view rel) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < rel.size()) {
    size_t j = rel.find('/', i);
    if (j == std::string_view::npos) j = rel.size();
    std::string_view c = rel.substr(i, j - i);
    if (!c.empty() && c != ".") out.push_back(c);
    i = j + 1;
  }
  return out;
}

std::string Join(const std::vector<std::string_view>& comps, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    if (i) s += '/';
    s += comps[i];
  }
  return s;
}

// openat2 of a directory below root_fd, confined to it. Returns the fd or -errno.
int Openat2Dir(int root_fd, const std::string& path, Resolve resolve) {
  struct open_how how = {};
  how.flags = kDirFlags;
  how.resolve = resolve == Resolve::kInRoot
                    ? RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
                    : RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV;
  for (int attempt = 0;; ++attempt) {
    long fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    // EAGAIN: a concurrent rename somewhere in the file system made the kernel unsure that the
    // walk stayed inside the root; it asks for a retry.
    if ((errno == EINTR || errno == EAGAIN) && attempt < 64) continue;
    return -errno;
  }
}

Result<UniqueFd> DupDir(int fd, std::string_view rel) {
  int d = ::openat(fd, ".", kDirFlags);
  if (d < 0) return ResolveError(errno, rel, "open directory");
  return UniqueFd(d);
}

// The fallback resolution: one component at a time with O_NOFOLLOW, symlinks read and re-rooted
// by hand, a stack of descriptors for "..".
Result<UniqueFd> EmulatedOpen(int root_fd, std::string_view rel, bool create, mode_t mode,
                              int* created, Resolve resolve) {
  struct stat root_st;
  if (::fstat(root_fd, &root_st) != 0) return ResolveError(errno, rel, "stat root of");
  std::vector<UniqueFd> stack;
  {
    auto d = DupDir(root_fd, rel);
    if (!d.ok()) return d.status();
    stack.push_back(std::move(d).value());
  }
  // Each component, and whether it came from a symlink's target: like the openat2 path, a
  // missing directory is created only where the caller's own path names it, never at the end
  // of a dangling symlink.
  std::deque<std::pair<std::string, bool>> todo;
  for (auto c : SplitComponents(rel)) todo.emplace_back(std::string(c), false);
  int links = 0;
  while (!todo.empty()) {
    auto [comp, from_link] = std::move(todo.front());
    todo.pop_front();
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      if (stack.size() > 1) stack.pop_back();
      continue;
    }
    int top = stack.back().get();
    int fd = ::openat(top, comp.c_str(), kDirFlags | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && create && !from_link) {
      if (::mkdirat(top, comp.c_str(), mode) == 0) {
        if (created) ++*created;
      } else if (errno != EEXIST) {
        return ResolveError(errno, rel, "create directory");
      }
      fd = ::openat(top, comp.c_str(), kDirFlags | O_NOFOLLOW);
    }
    if (fd >= 0) {
      UniqueFd owned(fd);
      struct stat st;
      if (::fstat(fd, &st) != 0) return ResolveError(errno, rel, "stat");
      if (st.st_dev != root_st.st_dev) return ResolveError(EXDEV, rel, "open directory");
      stack.push_back(std::move(owned));
      continue;
    }
    int err = errno;
    if (err != ELOOP && err != ENOTDIR) return ResolveError(err, rel, "open directory");
    struct stat st;
    if (::fstatat(top, comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ResolveError(errno, rel, "stat");
    }
    if (!S_ISLNK(st.st_mode)) return ResolveError(ENOTDIR, rel, "open directory");
    if (resolve == Resolve::kNoSymlinks) return ResolveError(ELOOP, rel, "open directory", resolve);
    if (++links > kMaxSymlinks) return ResolveError(ELOOP, rel, "open directory");
    std::string target(4096, '\0');
    ssize_t n = ::readlinkat(top, comp.c_str(), target.data(), target.size());
    if (n < 0) return ResolveError(errno, rel, "read link");
    target.resize(static_cast<size_t>(n));
    if (!target.empty() && target[0] == '/') stack.resize(1);  // absolute: from the root again
    auto parts = SplitComponents(target);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.emplace_front(*it, true);
  }
  return std::move(stack.back());
}

}  // namespace

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void SetOpenat2DisabledForTesting(bool disabled) { g_openat2_disabled = disabled; }

Result<UniqueFd> OpenRootDir(const std::string& path) {
  int fd = ::open(path.c_str(), kDirFlags);
  if (fd < 0) return Status::FromErrno(errno, "open directory " + path);
  return UniqueFd(fd);
}

Result<UniqueFd> OpenDirInRoot(int root_fd, std::string_view rel, bool create, mode_t mode,
                               int* created, Resolve resolve) {
  auto comps = SplitComponents(rel);
  if (comps.empty()) return DupDir(root_fd, rel);
  if (resolve == Resolve::kNoSymlinks) {
    for (auto c : comps) {
      if (c == "..") {
        return Status(Code::kInvalidArgument, "open directory " + Quoted(rel) + ": '..'");
      }
    }
  }
  if (g_openat2_disabled) return EmulatedOpen(root_fd, rel, create, mode, created, resolve);

  int fd = Openat2Dir(root_fd, Join(comps, comps.size()), resolve);
  if (fd >= 0) return UniqueFd(fd);
  if (fd == -ENOSYS) return EmulatedOpen(root_fd, rel, create, mode, created, resolve);
  if (fd != -ENOENT || !create) return ResolveError(-fd, rel, "open directory", resolve);

  // Some component is missing: resolve prefix by prefix, creating each missing one in its
  // resolved parent. Every prefix is resolved from the root again (no cached resolution).
  UniqueFd parent;
  {
    auto d = DupDir(root_fd, rel);
    if (!d.ok()) return d.status();
    parent = std::move(d).value();
  }
  for (size_t i = 0; i < comps.size(); ++i) {
    std::string prefix = Join(comps, i + 1);
    int cfd = Openat2Dir(root_fd, prefix, resolve);
    if (cfd == -ENOENT) {
      std::string name(comps[i]);
      if (::mkdirat(parent.get(), name.c_str(), mode) == 0) {
        if (created) ++*created;
      } else if (errno != EEXIST) {
        return ResolveError(errno, rel, "create directory");
      }
      // A name that existed (EEXIST) but did not resolve is a dangling symlink (or a race):
      // resolving again reports it.
      cfd = Openat2Dir(root_fd, prefix, resolve);
    }
    if (cfd < 0) return ResolveError(-cfd, rel, "open directory", resolve);
    parent.reset(cfd);
  }
  return parent;
}

Result<UniqueFd> OpenParentInRoot(int root_fd, std::string_view rel, bool create, std::string* name,
                                  mode_t mode) {
  while (!rel.empty() && rel.back() == '/') rel.remove_suffix(1);
  size_t slash = rel.rfind('/');
  std::string_view last = slash == std::string_view::npos ? rel : rel.substr(slash + 1);
  std::string_view dir =
      slash == std::string_view::npos ? std::string_view() : rel.substr(0, slash);
  if (last.empty() || last == "." || last == "..") {
    return Status(Code::kInvalidArgument, "path " + Quoted(rel) + " has no last component");
  }
  *name = std::string(last);
  return OpenDirInRoot(root_fd, dir, create, mode);
}

Result<UniqueFd> OpenChildDir(int dir_fd, const char* name) {
  int fd = ::openat(dir_fd, name, kDirFlags | O_NOFOLLOW);
  if (fd < 0) return ResolveError(errno == ELOOP ? ENOTDIR : errno, name, "open directory");
  return UniqueFd(fd);
}

Status RemoveAllAt(int dir_fd, const char* name) {
  if (::unlinkat(dir_fd, name, 0) == 0) return Status::OK();
  int err = errno;
  if (err == ENOENT) return Status::OK();
  if (err != EISDIR && err != EPERM && err != EACCES) {
    return Status::FromErrno(err, std::string("remove ") + name);
  }
  struct stat st;
  if (::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Status::OK();
    return Status::FromErrno(errno, std::string("stat ") + name);
  }
  if (!S_ISDIR(st.st_mode)) return Status::FromErrno(err, std::string("remove ") + name);
  // Without root, a directory we own but cannot write or search must be opened up first.
  if ((st.st_mode & 0700) != 0700 && ::geteuid() != 0) {
    if (::fchmodat(dir_fd, name, (st.st_mode & 07777) | 0700, AT_SYMLINK_NOFOLLOW) != 0 &&
        errno != ENOTSUP) {
      return Status::FromErrno(errno, std::string("make writable ") + name);
    }
  }
  int fd = ::openat(dir_fd, name, kDirFlags | O_NOFOLLOW);
  if (fd < 0) return Status::FromErrno(errno, std::string("open directory ") + name);
  UniqueFd dir(fd);
  auto names = ListDirAt(dir.get());
  if (!names.ok()) return names.status();
  for (const auto& child : *names) {
    Status s = RemoveAllAt(dir.get(), child.c_str());
    if (!s.ok()) return s.WithContext(name);
  }
  dir.reset();
  if (::unlinkat(dir_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return Status::FromErrno(errno, std::string("remove directory ") + name);
  }
  return Status::OK();
}

Result<std::vector<std::string>> ListDirAt(int dir_fd, std::vector<unsigned char>* types) {
  int fd = ::openat(dir_fd, ".", kDirFlags);
  if (fd < 0) return Status::FromErrno(errno, "open directory to list");
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    int err = errno;
    ::close(fd);
    return Status::FromErrno(err, "list directory");
  }
  std::vector<std::string> names;
  if (types) types->clear();
  while (true) {
    errno = 0;
    struct dirent* e = ::readdir(d);
    if (e == nullptr) break;
    std::string_view n(e->d_name);
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
    if (types) {
      unsigned char t = e->d_type;
      if (t == DT_UNKNOWN) {
        struct stat st;
        if (::fstatat(dir_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
          t = S_ISDIR(st.st_mode)    ? DT_DIR
              : S_ISLNK(st.st_mode)  ? DT_LNK
              : S_ISREG(st.st_mode)  ? DT_REG
              : S_ISCHR(st.st_mode)  ? DT_CHR
              : S_ISBLK(st.st_mode)  ? DT_BLK
              : S_ISFIFO(st.st_mode) ? DT_FIFO
                                     : DT_SOCK;
        }
      }
      types->push_back(t);
    }
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return Status::FromErrno(err, "read directory");
  return names;
}

}  // namespace imgstore::layers
