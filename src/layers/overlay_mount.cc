// overlayfs mounts of cached layer directories (overlay_mount.h): the new mount API where the
// kernel has "lowerdir+" (no bound on the number of layers but overlayfs' own), mount(2) with a
// page-sized option string otherwise, and the probe that tells whether overlay works at all.
#include "layers/overlay_mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <utility>

#include "util/env.h"

namespace imgstore::layers {
namespace {

// One descriptor, closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::atomic<bool> g_force_legacy{false};

Status MountError(int err, const std::string& target, std::string_view detail) {
  std::string msg = "overlay mount on " + target + ": ";
  if (!detail.empty()) {
    msg += std::string(detail) + " (" + std::strerror(err) + ")";
  } else {
    msg += std::strerror(err);
  }
  switch (err) {
    case EPERM:
    case EACCES:
      return Status(Code::kPermissionDenied, msg + "; overlay mounts need root (CAP_SYS_ADMIN)");
    case ENODEV:
      return Status(Code::kUnsupported, msg + "; the kernel has no overlay file system");
    case ENOENT:
      return Status(Code::kNotFound, msg);
    case ENOTDIR:
      return Status(Code::kInvalidArgument, msg);
    default:
      return Status(Code::kIOError, msg);
  }
}

// The messages the kernel queued on a file system context ("e overlayfs: failed to resolve
// 'x': -2"), joined into one line: they say which option failed, errno alone does not.
std::string ContextMessages(int fs_fd) {
  std::string out;
  char buf[512];
  for (int i = 0; i < 8; ++i) {
    ssize_t n = ::read(fs_fd, buf, sizeof buf - 1);
    if (n <= 0) break;
    std::string line(buf, static_cast<size_t>(n));
    while (!line.empty() && line.back() == '\n') line.pop_back();
    if (line.size() > 2 && line[1] == ' ') line = line.substr(2);
    if (!out.empty()) out += "; ";
    out += line;
  }
  return out;
}

// The checks both paths share, so that their errors are the same whatever the kernel.
Status CheckSpec(const OverlaySpec& spec) {
  if (spec.lower_dirs.empty()) {
    return Status(Code::kInvalidArgument, "overlay mount on " + spec.target + ": no lower dir");
  }
  if (spec.upper_dir.empty() && spec.lower_dirs.size() < 2) {
    // overlayfs' own rule (it says so only in the kernel log).
    return Status(Code::kInvalidArgument,
                  "overlay mount on " + spec.target + ": a read-only overlay needs 2 lower dirs");
  }
  if (spec.upper_dir.empty() != spec.work_dir.empty()) {
    return Status(Code::kInvalidArgument,
                  "overlay mount on " + spec.target + ": upper and work dir go together");
  }
  auto must_be_dir = [&](const std::string& path, std::string_view what) -> Status {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      int err = errno;
      return Status::FromErrno(
          err, "overlay mount on " + spec.target + ": " + std::string(what) + " " + path);
    }
    if (!S_ISDIR(st.st_mode)) {
      return Status(Code::kInvalidArgument, "overlay mount on " + spec.target + ": " +
                                                std::string(what) + " " + path +
                                                " is not a directory");
    }
    return Status::OK();
  };
  IMGSTORE_RETURN_IF_ERROR(must_be_dir(spec.target, "mount point"));
  for (const std::string& dir : spec.lower_dirs) {
    IMGSTORE_RETURN_IF_ERROR(must_be_dir(dir, "lower dir"));
  }
  if (!spec.upper_dir.empty()) {
    IMGSTORE_RETURN_IF_ERROR(must_be_dir(spec.upper_dir, "upper dir"));
    IMGSTORE_RETURN_IF_ERROR(must_be_dir(spec.work_dir, "work dir"));
  }
  return Status::OK();
}

// The new mount API. kUnsupported with `legacy_ok` set when the kernel lacks fsopen or
// "lowerdir+": the caller then tries mount(2).
Status MountNewApi(const OverlaySpec& spec, bool* legacy_ok) {
  *legacy_ok = false;
  Fd fs(::fsopen("overlay", FSOPEN_CLOEXEC));
  if (fs.get() < 0) {
    int err = errno;
    if (err == ENOSYS) {
      *legacy_ok = true;
      return Status(Code::kUnsupported, "fsopen is not available");
    }
    return MountError(err, spec.target, "fsopen");
  }
  auto set = [&](const char* key, const std::string& value) -> Status {
    if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, key, value.c_str(), 0) == 0) {
      return Status::OK();
    }
    int err = errno;
    std::string detail = ContextMessages(fs.get());
    return MountError(err, spec.target,
                      std::string(key) + "=" + value + (detail.empty() ? "" : ": " + detail));
  };
  // Kernels before 6.8 do not know the key at all: EINVAL on the first one, which the checks of
  // CheckSpec rule out as a cause otherwise.
  if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, "lowerdir+", spec.lower_dirs[0].c_str(), 0) != 0) {
    int err = errno;
    std::string detail = ContextMessages(fs.get());
    if (err == EINVAL && detail.find("Unknown parameter") != std::string::npos) {
      *legacy_ok = true;
      return Status(Code::kUnsupported, "overlayfs has no lowerdir+");
    }
    return MountError(err, spec.target,
                      "lowerdir+=" + spec.lower_dirs[0] + (detail.empty() ? "" : ": " + detail));
  }
  for (size_t i = 1; i < spec.lower_dirs.size(); ++i) {
    IMGSTORE_RETURN_IF_ERROR(set("lowerdir+", spec.lower_dirs[i]));
  }
  if (!spec.upper_dir.empty()) {
    IMGSTORE_RETURN_IF_ERROR(set("upperdir", spec.upper_dir));
    IMGSTORE_RETURN_IF_ERROR(set("workdir", spec.work_dir));
  }
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    int err = errno;
    std::string detail = ContextMessages(fs.get());
    return MountError(err, spec.target, detail.empty() ? "create" : "create: " + detail);
  }
  Fd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, spec.upper_dir.empty() ? MOUNT_ATTR_RDONLY : 0));
  if (mnt.get() < 0) {
    int err = errno;
    return MountError(err, spec.target, "fsmount");
  }
  if (::move_mount(mnt.get(), "", AT_FDCWD, spec.target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    int err = errno;
    return MountError(err, spec.target, "move_mount");
  }
  return Status::OK();
}

// mount(2): every lower dir in one option string, which the kernel bounds by a page.
Status MountLegacy(const OverlaySpec& spec) {
  std::string data = "lowerdir=";
  for (size_t i = 0; i < spec.lower_dirs.size(); ++i) {
    const std::string& dir = spec.lower_dirs[i];
    // ':' separates lower dirs and ',' options; the store's paths never hold them.
    if (dir.find_first_of(":,") != std::string::npos) {
      return Status(Code::kInvalidArgument, "overlay mount on " + spec.target + ": lower dir " +
                                                dir +
                                                " holds ':' or ',' (mount(2) cannot pass it)");
    }
    if (i != 0) data += ':';
    data += dir;
  }
  if (!spec.upper_dir.empty()) {
    data += ",upperdir=" + spec.upper_dir + ",workdir=" + spec.work_dir;
  }
  const long page = ::sysconf(_SC_PAGESIZE);
  if (static_cast<long>(data.size()) + 1 > page) {
    return Status(Code::kUnsupported,
                  "overlay mount on " + spec.target + ": " +
                      std::to_string(spec.lower_dirs.size()) +
                      " lower dirs need an option string of " + std::to_string(data.size() + 1) +
                      " bytes, more than mount(2) takes (" + std::to_string(page) +
                      "); this kernel lacks overlayfs' lowerdir+ (Linux 6.8+)");
  }
  unsigned long flags = spec.upper_dir.empty() ? MS_RDONLY : 0;
  if (::mount("overlay", spec.target.c_str(), "overlay", flags, data.c_str()) != 0) {
    int err = errno;
    return MountError(err, spec.target, "mount(2)");
  }
  return Status::OK();
}

}  // namespace

void SetForceLegacyOverlayMountForTesting(bool force) { g_force_legacy = force; }

Status MountOverlay(const OverlaySpec& spec) {
  IMGSTORE_RETURN_IF_ERROR(CheckSpec(spec));
  if (!g_force_legacy) {
    bool legacy_ok = false;
    Status s = MountNewApi(spec, &legacy_ok);
    if (s.ok() || !legacy_ok) return s;
  }
  return MountLegacy(spec);
}

Status UnmountOverlay(const std::string& target) {
  if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) == 0) return Status::OK();
  int err = errno;
  // Not mounted (EINVAL) or gone (ENOENT): what the caller wanted.
  if (err == EINVAL || err == ENOENT) return Status::OK();
  if (err == EBUSY) {
    // A process still has a file or its working directory in it: detach now, so that the name
    // is free; the kernel frees the mount when the last user goes.
    if (::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) return Status::OK();
    err = errno;
  }
  std::string msg = "unmount " + target + ": " + std::strerror(err);
  if (err == EPERM) return Status(Code::kPermissionDenied, msg);
  return Status(Code::kIOError, msg);
}

bool IsMountPoint(const std::string& path) {
  struct statx stx;
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS,
              &stx) != 0) {
    return false;
  }
  if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0) {
    return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  }
  // Kernels before 5.8: a mount of another file system has another device than its parent.
  struct stat self, parent;
  if (::lstat(path.c_str(), &self) != 0) return false;
  if (::stat((path + "/..").c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev || self.st_ino == parent.st_ino;
}

Status OverlaySupported(const std::string& scratch_dir) {
  // Per file system (overlayfs refuses some as upper: another overlayfs, for one) and per
  // effective user (a process may drop its privileges).
  static std::mutex mu;
  static std::map<std::pair<dev_t, uid_t>, Status> cache;
  struct stat st;
  if (::stat(scratch_dir.c_str(), &st) != 0) {
    int err = errno;
    return Status::FromErrno(err, "overlay probe in " + scratch_dir);
  }
  std::lock_guard<std::mutex> lock(mu);
  const std::pair<dev_t, uid_t> key(st.st_dev, ::geteuid());
  if (auto it = cache.find(key); it != cache.end()) return it->second;

  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%08x", rd());
  const std::string dir = scratch_dir + "/.overlay-probe-" + suffix;
  // Best effort: overlayfs leaves work/work behind, and a probe dir must not pile up.
  auto cleanup = [&] { (void)Env::Default()->RemoveTree(dir); };
  Status result;
  if (::mkdir(dir.c_str(), 0700) != 0) {
    int err = errno;
    return Status::FromErrno(err, "overlay probe in " + scratch_dir);  // not cached: transient
  }
  for (const char* sub : {"/lower", "/upper", "/work", "/merged"}) {
    if (::mkdir((dir + sub).c_str(), 0700) != 0) {
      int err = errno;
      cleanup();
      return Status::FromErrno(err, "overlay probe in " + scratch_dir);
    }
  }
  result = MountOverlay({{dir + "/lower"}, dir + "/upper", dir + "/work", dir + "/merged"});
  if (result.ok()) {
    Status u = UnmountOverlay(dir + "/merged");
    if (!u.ok()) {
      cleanup();
      return u;
    }
  }
  cleanup();
  if (result.ok() || result.code() == Code::kPermissionDenied ||
      result.code() == Code::kUnsupported || result.code() == Code::kInvalidArgument) {
    if (result.code() == Code::kInvalidArgument) {
      result = Status(Code::kUnsupported, result.message());
    }
    cache[key] = result;
  }
  return result;
}

}  // namespace imgstore::layers
