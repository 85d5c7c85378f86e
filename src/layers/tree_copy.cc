// ApplyLayerDir: copies one cached layer directory (or an overlay upper directory) onto a
// flattened root filesystem, applying its overlay whiteouts and opaque directories
// (docs/commit.md "Flattening").
//
// Both trees are walked with directory descriptors. A target directory is only ever entered by
// openat(O_DIRECTORY | O_NOFOLLOW) from the descriptor of its parent, after checking that it is
// a real directory (a lower layer's symlink at that name is replaced, as overlayfs hides it), so
// no symlink of the target is ever followed. The one lookup by path, the first name of a
// hardlink group, goes through OpenParentInRoot (openat2 RESOLVE_IN_ROOT) from the target root.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "layers/safe_fs.h"
#include "layers/tree.h"
#include "layers/tree_internal.h"

namespace imgstore::layers {
namespace {

using tree_internal::IsOpaqueDir;
using tree_internal::IsWhiteout;

// Deeper trees are refused rather than risking the descriptor limit (two per level).
constexpr int kMaxDepth = 400;
// How often a long file copy looks at the cancel callback.
constexpr uint64_t kCancelCheckBytes = 8 << 20;

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

class Copier {
 public:
  Copier(std::string layer_dir, const CopyOptions& options)
      : layer_dir_(std::move(layer_dir)), options_(options) {
    owners_ = options.preserve_owners.value_or(geteuid() == 0);
  }

  Status Run(const std::string& target) {
    Result<UniqueFd> src = OpenRootDir(layer_dir_);
    if (!src.ok()) return src.status();
    Result<UniqueFd> dst = OpenRootDir(target);
    if (!dst.ok()) return dst.status();
    root_fd_ = dst->get();
    IMGSTORE_RETURN_IF_ERROR(CopyDir(src->get(), dst->get(), "", 0));
    if (skipped_devices_ > 0 && options_.on_warning) {
      options_.on_warning("copy " + layer_dir_ + ": skipped " + std::to_string(skipped_devices_) +
                          " device node(s) or fifo(s): creating them needs root");
    }
    return Status::OK();
  }

  const CopyStats& stats() const { return stats_; }

 private:
  std::string Where(const std::string& rel) const { return layer_dir_ + "/" + rel; }

  Status Cancelled() const {
    if (options_.cancelled && options_.cancelled()) {
      return Status(Code::kCancelled, "copy " + layer_dir_ + ": cancelled");
    }
    return Status::OK();
  }

  void WarnOnce(const std::string& kind, const std::string& line) {
    if (!options_.on_warning || warned_.count(kind) > 0) return;
    warned_[kind] = true;
    options_.on_warning(line);
  }

  // Copies the children of src_fd (the layer's directory `rel`) into dst_fd.
  Status CopyDir(int src_fd, int dst_fd, const std::string& rel, int depth) {
    if (depth > kMaxDepth) {
      return Status(Code::kInvalidArgument, "copy " + Where(rel) + ": deeper than " +
                                                std::to_string(kMaxDepth) + " directories");
    }
    Result<std::vector<std::string>> names = ListDirAt(src_fd);
    if (!names.ok()) return names.status().WithContext("copy " + Where(rel));
    std::sort(names->begin(), names->end());
    for (const std::string& name : *names) {
      IMGSTORE_RETURN_IF_ERROR(Cancelled());
      IMGSTORE_RETURN_IF_ERROR(CopyEntry(src_fd, dst_fd, rel, name, depth));
    }
    return Status::OK();
  }

  Status CopyEntry(int src_fd, int dst_fd, const std::string& parent_rel, const std::string& name,
                   int depth) {
    const std::string rel = Join(parent_rel, name);
    const char* n = name.c_str();
    struct stat st;
    if (fstatat(src_fd, n, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno(errno, "stat " + Where(rel));
    }
    ++stats_.entries;
    if (IsWhiteout(st)) {
      ++stats_.whiteouts;
      Status s = RemoveAllAt(dst_fd, n);
      return s.ok() ? s : s.WithContext("apply whiteout " + Where(rel));
    }
    if (S_ISDIR(st.st_mode)) return CopyDirEntry(src_fd, dst_fd, rel, name, st, depth);

    // Every other type replaces whatever the target has at that name.
    struct stat old;
    if (fstatat(dst_fd, n, &old, AT_SYMLINK_NOFOLLOW) == 0) {
      Status s = S_ISDIR(old.st_mode) ? RemoveAllAt(dst_fd, n)
                                      : (unlinkat(dst_fd, n, 0) == 0
                                             ? Status::OK()
                                             : Status::FromErrno(errno, "remove target " + rel));
      if (!s.ok()) return s.WithContext("copy " + Where(rel));
    } else if (errno != ENOENT) {
      return Status::FromErrno(errno, "stat target " + rel);
    }

    if (S_ISREG(st.st_mode)) return CopyFile(src_fd, dst_fd, rel, name, st);
    if (S_ISLNK(st.st_mode)) return CopySymlink(src_fd, dst_fd, rel, name, st);
    // Sockets are not content (tar cannot carry them either).
    if (S_ISSOCK(st.st_mode)) return Status::OK();
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
      // As in extraction: device nodes and fifos only with privileges.
      if (!owners_) {
        ++skipped_devices_;
        return Status::OK();
      }
      if (mknodat(dst_fd, n, (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0) {
        return Status::FromErrno(errno, "create node " + rel + " (from " + Where(rel) + ")");
      }
      return SetMetadataAt(dst_fd, name, rel, st);
    }
    return Status(Code::kUnsupported, "copy " + Where(rel) + ": unknown file type");
  }

  Status CopyDirEntry(int src_fd, int dst_fd, const std::string& rel, const std::string& name,
                      const struct stat& st, int depth) {
    const char* n = name.c_str();
    Result<UniqueFd> src = OpenChildDir(src_fd, n);
    if (!src.ok()) return src.status().WithContext("copy " + Where(rel));
    const bool opaque = IsOpaqueDir(src->get());
    if (opaque) ++stats_.whiteouts;

    struct stat old;
    bool have_dir = false;
    if (fstatat(dst_fd, n, &old, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISDIR(old.st_mode) && !opaque) {
        have_dir = true;
      } else {
        // A non-directory is hidden by this directory; an opaque directory hides all the lower
        // content (removing and recreating the directory is simplest and equivalent).
        Status s = RemoveAllAt(dst_fd, n);
        if (!s.ok()) return s.WithContext("copy " + Where(rel));
      }
    } else if (errno != ENOENT) {
      return Status::FromErrno(errno, "stat target " + rel);
    }
    if (!have_dir && mkdirat(dst_fd, n, 0700) != 0) {
      return Status::FromErrno(errno, "create directory " + rel + " (from " + Where(rel) + ")");
    }
    Result<UniqueFd> dst = OpenChildDir(dst_fd, n);
    if (!dst.ok()) return dst.status().WithContext("copy " + Where(rel));
    if (have_dir && !owners_) {
      // Without privileges a lower directory may be read-only to us (mode 0555 from a layer):
      // make it writable for the copy; its final mode is set below.
      fchmod(dst->get(), (old.st_mode & 07777) | S_IRWXU);
    }
    IMGSTORE_RETURN_IF_ERROR(CopyDir(src->get(), dst->get(), rel, depth + 1));
    // The directory's own metadata last: creating the children changed its times, and a
    // read-only mode would have stopped them.
    return SetMetadataFd(src->get(), dst->get(), rel, st);
  }

  Status CopyFile(int src_fd, int dst_fd, const std::string& rel, const std::string& name,
                  const struct stat& st) {
    const char* n = name.c_str();
    if (st.st_nlink > 1) {
      auto it = links_.find({st.st_dev, st.st_ino});
      if (it != links_.end()) return LinkTo(it->second, dst_fd, rel, name);
    }
    UniqueFd in(openat(src_fd, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
    if (!in.valid()) return Status::FromErrno(errno, "open " + Where(rel));
    UniqueFd out(openat(dst_fd, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!out.valid()) return Status::FromErrno(errno, "create " + rel);
    IMGSTORE_RETURN_IF_ERROR(CopyData(in.get(), out.get(), rel));
    IMGSTORE_RETURN_IF_ERROR(SetMetadataFd(in.get(), out.get(), rel, st));
    if (st.st_nlink > 1) links_[{st.st_dev, st.st_ino}] = rel;
    return Status::OK();
  }

  Status CopyData(int in, int out, const std::string& rel) {
    bool use_cfr = true;
    uint64_t since_check = 0;
    std::vector<char> buf;
    for (;;) {
      ssize_t n = -1;
      if (use_cfr) {
        n = copy_file_range(in, nullptr, out, nullptr, 1 << 30, 0);
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL ||
                      errno == EBADF)) {
          use_cfr = false;
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Status::FromErrno(errno, "copy " + Where(rel) + " to " + rel);
      } else {
        if (buf.empty()) buf.resize(1 << 20);
        n = read(in, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Status::FromErrno(errno, "read " + Where(rel));
        for (ssize_t off = 0; off < n;) {
          ssize_t w = write(out, buf.data() + off, static_cast<size_t>(n - off));
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) return Status::FromErrno(errno, "write " + rel);
          off += w;
        }
      }
      if (n == 0) return Status::OK();
      stats_.file_bytes += static_cast<uint64_t>(n);
      since_check += static_cast<uint64_t>(n);
      if (since_check >= kCancelCheckBytes) {
        since_check = 0;
        IMGSTORE_RETURN_IF_ERROR(Cancelled());
      }
    }
  }

  // The second name of a hardlink group: linked to the first one, found again from the target
  // root (never through a symlink: RESOLVE_IN_ROOT, and the first name was made by this walk).
  Status LinkTo(const std::string& first, int dst_fd, const std::string& rel,
                const std::string& name) {
    std::string first_name;
    Result<UniqueFd> parent = OpenParentInRoot(root_fd_, first, false, &first_name);
    if (!parent.ok()) return parent.status().WithContext("hardlink " + rel + " to " + first);
    if (linkat(parent->get(), first_name.c_str(), dst_fd, name.c_str(), 0) != 0) {
      return Status::FromErrno(errno, "hardlink " + rel + " to " + first);
    }
    return Status::OK();
  }

  Status CopySymlink(int src_fd, int dst_fd, const std::string& rel, const std::string& name,
                     const struct stat& st) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    for (;;) {
      ssize_t n = readlinkat(src_fd, name.c_str(), target.data(), target.size());
      if (n < 0) return Status::FromErrno(errno, "read link " + Where(rel));
      if (static_cast<size_t>(n) < target.size()) {
        target.resize(static_cast<size_t>(n));
        break;
      }
      target.resize(target.size() * 2);
    }
    if (symlinkat(target.c_str(), dst_fd, name.c_str()) != 0) {
      return Status::FromErrno(errno, "create symlink " + rel);
    }
    return SetMetadataAt(dst_fd, name, rel, st);
  }

  // Owner, mode, xattrs and times of a regular file or directory, on descriptors.
  Status SetMetadataFd(int src, int dst, const std::string& rel, const struct stat& st) {
    if (owners_ && fchown(dst, st.st_uid, st.st_gid) != 0) {
      return Status::FromErrno(errno, "chown " + rel);
    }
    // After the chown, which clears set-id bits.
    if (fchmod(dst, st.st_mode & 07777) != 0) return Status::FromErrno(errno, "chmod " + rel);
    if (options_.xattrs) {
      Result<tree_internal::Xattrs> xattrs = tree_internal::ReadXattrs(src, Where(rel));
      if (!xattrs.ok()) return xattrs.status();
      for (const auto& [key, value] : *xattrs) {
        if (fsetxattr(dst, key.c_str(), value.data(), value.size(), 0) != 0) {
          if (errno == EPERM || errno == ENOTSUP || errno == EACCES) {
            WarnOnce("xattr", "copy " + layer_dir_ + ": could not set xattr " + key + " on " + rel +
                                  ": " + std::string(strerror(errno)));
            continue;
          }
          return Status::FromErrno(errno, "set xattr " + key + " on " + rel);
        }
      }
    }
    const struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (futimens(dst, times) != 0) return Status::FromErrno(errno, "set times of " + rel);
    return Status::OK();
  }

  // Owner, mode and times of an entry that cannot be opened for writing metadata (symlinks,
  // devices, fifos), by name in its parent without following it.
  Status SetMetadataAt(int dst_fd, const std::string& name, const std::string& rel,
                       const struct stat& st) {
    const char* n = name.c_str();
    if (owners_ && fchownat(dst_fd, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno(errno, "chown " + rel);
    }
    if (!S_ISLNK(st.st_mode) && fchmodat(dst_fd, n, st.st_mode & 07777, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno(errno, "chmod " + rel);
    }
    const struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (utimensat(dst_fd, n, times, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno(errno, "set times of " + rel);
    }
    return Status::OK();
  }

  std::string layer_dir_;
  const CopyOptions& options_;
  bool owners_ = false;
  int root_fd_ = -1;
  CopyStats stats_;
  uint64_t skipped_devices_ = 0;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;  // first target path of each group
  std::map<std::string, bool> warned_;
};

}  // namespace

Result<CopyStats> ApplyLayerDir(const std::string& layer_dir, const std::string& target,
                                const CopyOptions& options) {
  Copier copier(layer_dir, options);
  IMGSTORE_RETURN_IF_ERROR(copier.Run(target));
  return copier.stats();
}

}  // namespace imgstore::layers
