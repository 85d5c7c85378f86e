// Helpers shared by the layer-tree walkers (tree_copy.cc, tree_diff.cc): how overlayfs marks
// whiteouts and opaque directories on disk, and extended attributes read from a descriptor.
// Internal to src/layers.
#pragma once

#include <sys/stat.h>

#include <string>
#include <utility>
#include <vector>

#include "util/status.h"

namespace imgstore::layers::tree_internal {

// An overlay whiteout: a character device with device number 0/0.
inline bool IsWhiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == 0; }

// trusted.overlay.* and user.overlay.* (the userxattr form): overlayfs's own bookkeeping, never
// copied into a layer or a root filesystem.
bool IsOverlayXattr(const std::string& name);

// Whether the directory open as fd carries the opaque mark under either overlay namespace
// (a layer dir written as root uses trusted.*, an unprivileged one or a userxattr upper user.*).
bool IsOpaqueDir(int fd);

// The overlay features a plain walker cannot interpret (redirect_dir, metacopy): kUnsupported
// naming `what` when the entry open as fd carries one of them.
Status CheckNoRedirect(int fd, const std::string& what);

using Xattrs = std::vector<std::pair<std::string, std::string>>;

// The extended attributes of the regular file or directory open as fd (not O_PATH), sorted by
// name, without the overlay ones. ENOTSUP counts as none.
Result<Xattrs> ReadXattrs(int fd, const std::string& what);

}  // namespace imgstore::layers::tree_internal
