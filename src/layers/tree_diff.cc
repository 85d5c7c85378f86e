// The layer writers of tree.h: an overlay upper directory (WriteUpperDirLayer), or a directory
// compared with the flattened view of lower layer directories (WriteDirDiffLayer), become an OCI
// layer tar through LayerWriter (docs/commit.md "Commit").
//
// Both walks use directory descriptors and O_NOFOLLOW throughout: the source may be a running
// container's files, so a symlink is recorded as a symlink and never followed, and a file is
// described by the descriptor that is read (a name swapped between the stat and the open is
// either refused or recorded as what was opened). Entries come out depth first, each
// directory's entries sorted by their name in the tar, so equal trees give equal bytes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "layers/layer_writer.h"
#include "layers/safe_fs.h"
#include "layers/tree.h"
#include "layers/tree_internal.h"

namespace imgstore::layers {
namespace {

using tree_internal::IsOpaqueDir;
using tree_internal::IsWhiteout;
using tree_internal::Xattrs;

constexpr int kMaxDepth = 400;
constexpr const char* kWhiteoutPrefix = ".wh.";
constexpr const char* kOpaqueName = ".wh..wh..opq";

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

Result<std::string> ReadLink(int dir_fd, const std::string& name, const std::string& what) {
  std::string target(256, '\0');
  for (;;) {
    ssize_t n = readlinkat(dir_fd, name.c_str(), target.data(), target.size());
    if (n < 0) return Status::FromErrno(errno, "read link " + what);
    if (static_cast<size_t>(n) < target.size()) {
      target.resize(static_cast<size_t>(n));
      return target;
    }
    target.resize(target.size() * 2);
  }
}

// Whatever describes one file-system entry for a tar header, read through descriptors. `fd` is
// kept open for a regular file's data.
struct Described {
  LayerEntry entry;
  UniqueFd fd;  // regular files (data) and directories (for the walk below)
  bool opaque = false;
};

// Reads the entry `name` of dir_fd (known to exist, not a whiteout) as tar entry `rel`.
Result<Described> Describe(int dir_fd, const std::string& name, const std::string& rel,
                           const std::string& where) {
  Described d;
  struct stat st;
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Status::FromErrno(errno, "stat " + where);
  }
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
    // O_NONBLOCK: a name swapped for a fifo since the stat must not hang the open.
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    if (S_ISDIR(st.st_mode)) flags |= O_DIRECTORY;
    d.fd.reset(openat(dir_fd, name.c_str(), flags));
    if (!d.fd.valid()) return Status::FromErrno(errno, "open " + where);
    struct stat now;
    if (fstat(d.fd.get(), &now) != 0) return Status::FromErrno(errno, "stat " + where);
    if ((now.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
      return Status(Code::kFailedPrecondition, where + " changed type while being read");
    }
    st = now;
    IMGSTORE_RETURN_IF_ERROR(tree_internal::CheckNoRedirect(d.fd.get(), where));
    Result<Xattrs> x = tree_internal::ReadXattrs(d.fd.get(), where);
    if (!x.ok()) return x.status();
    d.entry.xattrs = std::move(*x);
    if (S_ISDIR(st.st_mode)) d.opaque = IsOpaqueDir(d.fd.get());
  } else if (S_ISLNK(st.st_mode)) {
    Result<std::string> target = ReadLink(dir_fd, name, where);
    if (!target.ok()) return target.status();
    d.entry.symlink = std::move(*target);
  }
  d.entry.path = rel;
  d.entry.mode = st.st_mode;
  d.entry.uid = st.st_uid;
  d.entry.gid = st.st_gid;
  d.entry.mtime = st.st_mtim;
  d.entry.size = S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  d.entry.rdev = st.st_rdev;
  return d;
}

// Shared by both walks: the writer, hardlink groups, and the cancel check.
class Emitter {
 public:
  Emitter(std::string root, LayerWriter& writer, const LayerWriteOptions& options)
      : root_(std::move(root)), writer_(writer), options_(options) {}

  std::string Where(const std::string& rel) const { return root_ + "/" + rel; }

  Status Cancelled() const {
    if (options_.cancelled && options_.cancelled()) {
      return Status(Code::kCancelled, "write layer from " + root_ + ": cancelled");
    }
    return Status::OK();
  }

  // Writes a described entry; the second name of an inode becomes a tar hardlink.
  Status Emit(Described& d, dev_t dev, ino_t ino, nlink_t nlink) {
    if (S_ISSOCK(d.entry.mode)) return Status::OK();  // not content; tar cannot carry it
    if (S_ISREG(d.entry.mode) && nlink > 1) {
      auto [it, fresh] = links_.try_emplace({dev, ino}, d.entry.path);
      if (!fresh) {
        LayerEntry link = d.entry;
        link.hardlink = it->second;
        link.xattrs.clear();
        return writer_.Add(link);
      }
    }
    return writer_.Add(d.entry, d.fd.get());
  }

  Status EmitWhiteout(const std::string& parent_rel, const std::string& name,
                      const struct stat& st) {
    LayerEntry e;
    e.path = Join(parent_rel, kWhiteoutPrefix + name);
    e.mode = S_IFREG | (st.st_mode & 0777);
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.mtime = st.st_mtim;
    return writer_.Add(e);
  }

  Status EmitOpaque(const LayerEntry& dir) {
    LayerEntry e;
    e.path = Join(dir.path, kOpaqueName);
    e.mode = S_IFREG | (dir.mode & 0777);
    e.uid = dir.uid;
    e.gid = dir.gid;
    e.mtime = dir.mtime;
    return writer_.Add(e);
  }

 private:
  std::string root_;
  LayerWriter& writer_;
  const LayerWriteOptions& options_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

Status CheckDepth(int depth, const std::string& where) {
  if (depth > kMaxDepth) {
    return Status(Code::kInvalidArgument,
                  where + ": deeper than " + std::to_string(kMaxDepth) + " directories");
  }
  return Status::OK();
}

// --- An overlay upper directory ---------------------------------------------------------------

class UpperWalk {
 public:
  explicit UpperWalk(Emitter& emitter) : em_(emitter) {}

  Status Walk(int dir_fd, const std::string& rel, int depth) {
    IMGSTORE_RETURN_IF_ERROR(CheckDepth(depth, em_.Where(rel)));
    Result<std::vector<std::string>> names = ListDirAt(dir_fd);
    if (!names.ok()) return names.status().WithContext("list " + em_.Where(rel));
    // Sorted by the name each entry gets in the tar (a whiteout "x" is ".wh.x").
    std::vector<std::tuple<std::string, std::string, struct stat>> items;
    for (std::string& name : *names) {
      struct stat st;
      if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed meanwhile (a live container)
        return Status::FromErrno(errno, "stat " + em_.Where(Join(rel, name)));
      }
      std::string key = IsWhiteout(st) ? kWhiteoutPrefix + name : name;
      items.emplace_back(std::move(key), std::move(name), st);
    }
    std::sort(items.begin(), items.end(),
              [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
    for (auto& [key, name, st] : items) {
      IMGSTORE_RETURN_IF_ERROR(em_.Cancelled());
      const std::string child = Join(rel, name);
      if (IsWhiteout(st)) {
        IMGSTORE_RETURN_IF_ERROR(em_.EmitWhiteout(rel, name, st));
        continue;
      }
      Result<Described> d = Describe(dir_fd, name, child, em_.Where(child));
      if (!d.ok()) return d.status();
      IMGSTORE_RETURN_IF_ERROR(em_.Emit(*d, st.st_dev, st.st_ino, st.st_nlink));
      if (S_ISDIR(d->entry.mode)) {
        if (d->opaque) IMGSTORE_RETURN_IF_ERROR(em_.EmitOpaque(d->entry));
        IMGSTORE_RETURN_IF_ERROR(Walk(d->fd.get(), child, depth + 1));
      }
    }
    return Status::OK();
  }

 private:
  Emitter& em_;
};

// --- A directory against lower layers -----------------------------------------------------------

// A name as the flattened lower layers show it: the topmost layer's entry, and for a directory
// the directories of every layer that contributes to it (top first, down to an opaque one).
struct LowerEntry {
  struct stat st;
  int parent_fd = -1;  // the layer directory holding the topmost entry
  std::vector<UniqueFd> dirs;
};

class DiffWalk {
 public:
  DiffWalk(Emitter& emitter, std::string lower_desc)
      : em_(emitter), lower_desc_(std::move(lower_desc)) {}

  // dir_fd: the directory `rel` of the new tree; lower: the layers' directories at `rel`, top
  // first.
  Status Walk(int dir_fd, const std::string& rel, const std::vector<int>& lower, int depth) {
    IMGSTORE_RETURN_IF_ERROR(CheckDepth(depth, em_.Where(rel)));
    Result<std::vector<std::string>> names = ListDirAt(dir_fd);
    if (!names.ok()) return names.status().WithContext("list " + em_.Where(rel));
    std::set<std::string> present(names->begin(), names->end());
    std::set<std::string> lower_names;
    for (int fd : lower) {
      Result<std::vector<std::string>> l = ListDirAt(fd);
      if (!l.ok()) return l.status().WithContext("list lower " + lower_desc_ + " at " + rel);
      lower_names.insert(l->begin(), l->end());
    }
    // Each name once, sorted by its name in the tar: a deletion of "x" is ".wh.x".
    std::vector<std::pair<std::string, std::string>> items;
    for (const std::string& n : present) items.emplace_back(n, n);
    for (const std::string& n : lower_names) {
      if (present.count(n) == 0) items.emplace_back(kWhiteoutPrefix + n, n);
    }
    std::sort(items.begin(), items.end());
    for (const auto& [key, name] : items) {
      IMGSTORE_RETURN_IF_ERROR(em_.Cancelled());
      const std::string child = Join(rel, name);
      Result<std::optional<LowerEntry>> low = LookUp(lower, name, child);
      if (!low.ok()) return low.status();
      if (present.count(name) == 0) {
        if (!low->has_value()) continue;  // only whiteouts of lower layers had that name
        IMGSTORE_RETURN_IF_ERROR(Flush());
        IMGSTORE_RETURN_IF_ERROR(em_.EmitWhiteout(rel, name, (*low)->st));
        continue;
      }
      struct stat st;
      if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        return Status::FromErrno(errno, "stat " + em_.Where(child));
      }
      if (S_ISSOCK(st.st_mode)) continue;
      Result<Described> d = Describe(dir_fd, name, child, em_.Where(child));
      if (!d.ok()) return d.status();
      Result<bool> same = low->has_value() ? Same(*d, **low, name, child) : false;
      if (!same.ok()) return same.status();
      if (!S_ISDIR(d->entry.mode)) {
        if (*same) continue;
        IMGSTORE_RETURN_IF_ERROR(Flush());
        IMGSTORE_RETURN_IF_ERROR(em_.Emit(*d, st.st_dev, st.st_ino, st.st_nlink));
        continue;
      }
      // A directory: written now if it is new or its own metadata changed; otherwise held
      // back and written only before the first change below it.
      std::vector<int> below;
      if (low->has_value() && S_ISDIR((*low)->st.st_mode)) {
        for (const UniqueFd& fd : (*low)->dirs) below.push_back(fd.get());
      }
      const int fd = d->fd.get();
      if (!*same) {
        IMGSTORE_RETURN_IF_ERROR(Flush());
        IMGSTORE_RETURN_IF_ERROR(em_.Emit(*d, st.st_dev, st.st_ino, st.st_nlink));
        IMGSTORE_RETURN_IF_ERROR(Walk(fd, child, below, depth + 1));
      } else {
        pending_.push_back(Pending{std::move(*d), false});
        Status s = Walk(fd, child, below, depth + 1);
        // Not written by now: nothing below changed, and the entry is dropped. (The entry owns
        // the descriptor the nested walk used, so it lives until here either way.)
        pending_.pop_back();
        IMGSTORE_RETURN_IF_ERROR(s);
      }
    }
    return Status::OK();
  }

 private:
  // Writes the held-back directories (outermost first) before a change below them.
  Status Flush() {
    for (Pending& p : pending_) {
      if (p.written) continue;
      IMGSTORE_RETURN_IF_ERROR(em_.Emit(p.dir, 0, 0, 1));
      p.written = true;
    }
    return Status::OK();
  }

  Result<std::optional<LowerEntry>> LookUp(const std::vector<int>& lower, const std::string& name,
                                           const std::string& rel) {
    std::optional<LowerEntry> found;
    for (int fd : lower) {
      struct stat st;
      if (fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        return Status::FromErrno(errno, "stat lower " + lower_desc_ + " at " + rel);
      }
      if (IsWhiteout(st)) break;  // deleted here: nothing below shows through
      if (!found) {
        found.emplace();
        found->st = st;
        found->parent_fd = fd;
        if (!S_ISDIR(st.st_mode)) break;
      } else if (!S_ISDIR(st.st_mode)) {
        break;  // a lower non-directory under an upper directory is hidden
      }
      Result<UniqueFd> child = OpenChildDir(fd, name.c_str());
      if (!child.ok()) return child.status().WithContext("lower " + lower_desc_);
      const bool opaque = IsOpaqueDir(child->get());
      found->dirs.push_back(std::move(*child));
      if (opaque) break;
    }
    return found;
  }

  // Whether the new entry equals the lower one: type, mode, owner, mtime (not for directories),
  // and per type the size, link target, device number; xattrs for files and directories. A
  // directory's mtime is not its own change: it moves whenever an entry is added or removed
  // in it (which the entries' own comparison finds), and it differs between two extractions
  // of the same layers (a parent a layer does not list gets the time of its creation), which
  // would make an untouched tree look changed.
  Result<bool> Same(const Described& d, const LowerEntry& low, const std::string& name,
                    const std::string& rel) {
    const LayerEntry& e = d.entry;
    const struct stat& l = low.st;
    if ((e.mode & S_IFMT) != (l.st_mode & S_IFMT) || (e.mode & 07777) != (l.st_mode & 07777) ||
        e.uid != l.st_uid || e.gid != l.st_gid) {
      return false;
    }
    // A lower layer from a tar without sub-second times (ustar, or pax that records them only
    // when needed, as our own writer does) has nsec 0: only the seconds can be compared, or a
    // tree committed and compared again would show every file as changed.
    if (!S_ISDIR(l.st_mode) && (e.mtime.tv_sec != l.st_mtim.tv_sec ||
                                (l.st_mtim.tv_nsec != 0 && e.mtime.tv_nsec != l.st_mtim.tv_nsec))) {
      return false;
    }
    if (S_ISREG(l.st_mode) && e.size != static_cast<uint64_t>(l.st_size)) return false;
    if ((S_ISCHR(l.st_mode) || S_ISBLK(l.st_mode)) && e.rdev != l.st_rdev) return false;
    if (S_ISLNK(l.st_mode)) {
      Result<std::string> target =
          ReadLink(low.parent_fd, name, "lower " + lower_desc_ + " " + rel);
      if (!target.ok()) return target.status();
      return *target == e.symlink;
    }
    if (S_ISREG(l.st_mode) || S_ISDIR(l.st_mode)) {
      int fd = S_ISDIR(l.st_mode) ? low.dirs.front().get() : -1;
      UniqueFd file;
      if (fd < 0) {
        file.reset(openat(low.parent_fd, name.c_str(),
                          O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
        if (!file.valid()) {
          return Status::FromErrno(errno, "open lower " + lower_desc_ + " " + rel);
        }
        fd = file.get();
      }
      Result<Xattrs> x = tree_internal::ReadXattrs(fd, "lower " + rel);
      if (!x.ok()) return x.status();
      if (*x != e.xattrs) return false;
    }
    return true;
  }

  Emitter& em_;
  std::string lower_desc_;
  // Directories, outermost first, whose entries are written only if something below them
  // changes.
  struct Pending {
    Described dir;
    bool written = false;
  };
  std::vector<Pending> pending_;
};

Result<WrittenLayer> Finish(LayerWriter& writer) { return writer.Finish(); }

}  // namespace

Result<WrittenLayer> WriteUpperDirLayer(const std::string& upper_dir, WritableFile& out,
                                        const LayerWriteOptions& options) {
  Result<UniqueFd> root = OpenRootDir(upper_dir);
  if (!root.ok()) return root.status();
  Result<std::unique_ptr<LayerWriter>> writer = LayerWriter::Create(out, options);
  if (!writer.ok()) return writer.status();
  Emitter emitter(upper_dir, **writer, options);
  UpperWalk walk(emitter);
  IMGSTORE_RETURN_IF_ERROR(walk.Walk(root->get(), "", 0));
  return Finish(**writer);
}

Result<WrittenLayer> WriteDirDiffLayer(const std::string& dir,
                                       std::span<const std::string> lower_dirs, WritableFile& out,
                                       const LayerWriteOptions& options) {
  Result<UniqueFd> root = OpenRootDir(dir);
  if (!root.ok()) return root.status();
  std::vector<UniqueFd> lower_fds;
  std::vector<int> top_down;
  for (auto it = lower_dirs.rbegin(); it != lower_dirs.rend(); ++it) {
    Result<UniqueFd> fd = OpenRootDir(*it);
    if (!fd.ok()) return fd.status();
    top_down.push_back(fd->get());
    lower_fds.push_back(std::move(*fd));
  }
  Result<std::unique_ptr<LayerWriter>> writer = LayerWriter::Create(out, options);
  if (!writer.ok()) return writer.status();
  Emitter emitter(dir, **writer, options);
  DiffWalk walk(emitter, lower_dirs.empty() ? std::string("(none)") : lower_dirs.back());
  IMGSTORE_RETURN_IF_ERROR(walk.Walk(root->get(), "", top_down, 0));
  return Finish(**writer);
}

}  // namespace imgstore::layers
