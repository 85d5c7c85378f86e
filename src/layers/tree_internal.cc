// Overlay markers and extended attributes for the layer-tree walkers (tree_internal.h).
#include "layers/tree_internal.h"

#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

namespace imgstore::layers::tree_internal {

bool IsOverlayXattr(const std::string& name) {
  return name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
}

bool IsOpaqueDir(int fd) {
  for (const char* name : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    char v[4];
    ssize_t n = fgetxattr(fd, name, v, sizeof v);
    // "y" marks an opaque directory; overlayfs also writes "x" on a merge dir that holds
    // xattr-whiteouts (not opaque) — only "y" hides the lower content.
    if (n == 1 && v[0] == 'y') return true;
  }
  return false;
}

Status CheckNoRedirect(int fd, const std::string& what) {
  for (const char* name : {"trusted.overlay.redirect", "user.overlay.redirect",
                           "trusted.overlay.metacopy", "user.overlay.metacopy"}) {
    if (fgetxattr(fd, name, nullptr, 0) >= 0) {
      return Status(Code::kUnsupported, what + " carries the overlay attribute " +
                                            std::string(name) +
                                            " (redirect_dir/metacopy mounts cannot be committed)");
    }
  }
  return Status::OK();
}

Result<Xattrs> ReadXattrs(int fd, const std::string& what) {
  Xattrs out;
  std::string names;
  for (;;) {
    ssize_t n = flistxattr(fd, nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP) return out;
      return Status::FromErrno(errno, "list xattrs of " + what);
    }
    if (n == 0) return out;
    names.resize(static_cast<size_t>(n));
    n = flistxattr(fd, names.data(), names.size());
    if (n >= 0) {
      names.resize(static_cast<size_t>(n));
      break;
    }
    if (errno != ERANGE) return Status::FromErrno(errno, "list xattrs of " + what);
  }
  for (size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (name.empty() || IsOverlayXattr(name)) continue;
    std::string value;
    for (;;) {
      ssize_t n = fgetxattr(fd, name.c_str(), nullptr, 0);
      if (n < 0) {
        if (errno == ENODATA) break;  // removed meanwhile
        return Status::FromErrno(errno, "read xattr " + name + " of " + what);
      }
      value.resize(static_cast<size_t>(n));
      n = fgetxattr(fd, name.c_str(), value.data(), value.size());
      if (n >= 0) {
        value.resize(static_cast<size_t>(n));
        out.emplace_back(std::move(name), std::move(value));
        break;
      }
      if (errno == ENODATA) break;
      if (errno != ERANGE) return Status::FromErrno(errno, "read xattr " + name + " of " + what);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace imgstore::layers::tree_internal
