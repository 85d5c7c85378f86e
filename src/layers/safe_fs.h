// Directory-descriptor file-system primitives for code that writes untrusted trees (layer
// extraction, layer directory copies): every path is resolved inside a root descriptor and never
// through a symlink that could leave it. Internal to src/layers (extract.cc, tree.cc).
//
// Resolution semantics (both implementations): a relative path below `root_fd` is resolved as if
// root_fd were "/": a symlink met on the way is followed but its target is re-rooted at root_fd
// (an absolute target starts again at root_fd, ".." at the root stays at the root). This is the
// kernel's openat2(RESOLVE_IN_ROOT); where openat2 is missing (ENOSYS) a component-by-component
// walk with O_NOFOLLOW and readlinkat emulates it. Magic links (/proc) and mount crossings are
// refused. Nothing here caches a resolution: each call resolves from root_fd again.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace imgstore::layers {

// Owns one descriptor; closes it once (close(2) is never retried on Linux).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }
  // Closes the current descriptor (if any) and owns fd instead.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Opens the directory at `path` (an ordinary path of the caller's, symlinks followed) to serve
// as a root: O_RDONLY | O_DIRECTORY | O_CLOEXEC. kNotFound / kIOError naming the path.
Result<UniqueFd> OpenRootDir(const std::string& path);

// How OpenDirInRoot treats a symlink met on the way.
enum class Resolve {
  kInRoot,      // followed, re-rooted at root_fd (RESOLVE_IN_ROOT): where tar entries go
  kNoSymlinks,  // refused (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), kFailedPrecondition: for
                // whiteouts, which name a path literally and never act through a symlink
};

// Opens the directory `rel` below root_fd with the resolution rules above. `rel` is a relative
// path ("" or "." is the root itself; repeated and trailing slashes are fine). With `create`,
// missing components are made with mkdirat(mode) (the umask applies) as they are met, each
// relative to the descriptor of its resolved parent; `created`, when given, receives how many
// directories were made. Errors name `rel`: kNotFound (a component is missing and !create),
// kFailedPrecondition (a component is not a directory), kInvalidArgument (a symlink loop, a
// magic link or a mount crossing), or the errno of the failing call.
// With Resolve::kNoSymlinks, ".." components are refused too (kInvalidArgument).
Result<UniqueFd> OpenDirInRoot(int root_fd, std::string_view rel, bool create, mode_t mode = 0755,
                               int* created = nullptr, Resolve resolve = Resolve::kInRoot);

// Opens the parent directory of `rel` below root_fd (OpenDirInRoot of everything but the last
// component) and returns it with the last component in *name. `rel` must have a last component
// other than "." and ".." (kInvalidArgument otherwise): entries are created as
// (parent_fd, name) with *at() calls and O_NOFOLLOW / AT_SYMLINK_NOFOLLOW.
Result<UniqueFd> OpenParentInRoot(int root_fd, std::string_view rel, bool create, std::string* name,
                                  mode_t mode = 0755);

// openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC): one existing child
// directory, never through a symlink (kFailedPrecondition if `name` is not a directory).
Result<UniqueFd> OpenChildDir(int dir_fd, const char* name);

// Removes `name` in dir_fd and, if it is a directory, everything below it, like rm -rf but
// relative to dir_fd: symlinks are removed, never followed; a directory without write
// permission for the caller is made writable first (non-root). OK if `name` does not exist.
// Directories are descended with O_NOFOLLOW descriptors, one open descriptor per level.
Status RemoveAllAt(int dir_fd, const char* name);

// The names in the directory dir_fd, without "." and "..", unsorted (dir_fd is not consumed and
// its offset is left alone: a dup is read). `types`, when given, receives the d_type of each
// name in the same order (DT_UNKNOWN is resolved with fstatat(AT_SYMLINK_NOFOLLOW)).
Result<std::vector<std::string>> ListDirAt(int dir_fd, std::vector<unsigned char>* types = nullptr);

// For tests: make OpenDirInRoot behave as if openat2 were missing (the emulated walk). Not
// thread-safe with respect to running extractions; set it before and reset it after.
void SetOpenat2DisabledForTesting(bool disabled);

}  // namespace imgstore::layers
