// The tree snapshot and file helpers of fs_tree.h.
#include "common/fs_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "util/digest.h"

namespace imgstore::testing {
namespace {

std::string Mtime(const struct stat& st, const SnapshotOptions& o) {
  std::string s = " mtime=" + std::to_string(st.st_mtim.tv_sec);
  if (o.mtime_nsec) s += "." + std::to_string(st.st_mtim.tv_nsec);
  return s;
}

std::string Xattrs(const std::string& path, const SnapshotOptions& o) {
  char names[4096];
  ssize_t len = ::llistxattr(path.c_str(), names, sizeof names);
  std::vector<std::string> xs;
  for (ssize_t i = 0; i < len;) {
    std::string name(names + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    if (!o.overlay_xattrs && name.find(".overlay.") != std::string::npos) continue;
    if (name.starts_with("security.selinux")) continue;
    char v[1024];
    ssize_t vn = ::lgetxattr(path.c_str(), name.c_str(), v, sizeof v);
    xs.push_back(name + "=" + std::string(v, vn > 0 ? static_cast<size_t>(vn) : 0));
  }
  std::sort(xs.begin(), xs.end());
  std::string s;
  for (const std::string& x : xs) s += " [" + x + "]";
  return s;
}

struct Walker {
  const std::string& root;
  const SnapshotOptions& o;
  FsTree* out;
  std::map<std::pair<dev_t, ino_t>, std::string> first_names;

  void Entry(const std::string& rel) {
    const std::string path = rel.empty() ? root : root + "/" + rel;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      ADD_FAILURE() << "lstat " << path << ": " << std::strerror(errno);
      return;
    }
    char head[64];
    std::snprintf(head, sizeof head, " %04o %u:%u ", st.st_mode & 07777, st.st_uid, st.st_gid);
    std::string line;
    if (S_ISDIR(st.st_mode)) {
      line = "dir" + std::string(head);
      if (o.dir_mtimes) line += Mtime(st, o);
    } else if (S_ISREG(st.st_mode)) {
      const std::string content = ReadFile(path);
      line = "file" + std::string(head);
      line += o.file_digests ? "size=" + std::to_string(st.st_size) +
                                   " sha=" + Digest::Of(content).ToString().substr(7, 12)
                             : content;
      if (o.link_counts) line += " links=" + std::to_string(st.st_nlink);
      if (o.hardlink_groups && st.st_nlink > 1) {
        auto [it, fresh] = first_names.try_emplace({st.st_dev, st.st_ino}, rel);
        if (!fresh) line += " link=" + it->second;
      }
      if (o.file_mtimes) line += Mtime(st, o);
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(path.c_str(), target, sizeof target);
      line =
          "symlink" + std::string(head) + std::string(target, n > 0 ? static_cast<size_t>(n) : 0);
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      line = (S_ISCHR(st.st_mode) ? "chr" : "blk") + std::string(head) +
             std::to_string(major(st.st_rdev)) + "," + std::to_string(minor(st.st_rdev));
    } else if (S_ISFIFO(st.st_mode)) {
      line = "fifo" + std::string(head);
    } else {
      line = "other" + std::string(head);
    }
    if (o.xattrs && !S_ISLNK(st.st_mode)) line += Xattrs(path, o);
    if (!rel.empty() || o.include_root) (*out)[rel.empty() ? "." : rel] = line;
    if (!S_ISDIR(st.st_mode)) return;
    // Names first, then recursion: no directory stream stays open while the tree is walked.
    std::vector<std::string> names;
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) {
      ADD_FAILURE() << "opendir " << path << ": " << std::strerror(errno);
      return;
    }
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
    for (const std::string& n : names) Entry(rel.empty() ? n : rel + "/" + n);
  }
};

}  // namespace

FsTree SnapshotTree(const std::string& root, const SnapshotOptions& options) {
  FsTree out;
  Walker{root, options, &out, {}}.Entry("");
  return out;
}

std::string TreeText(const FsTree& tree) {
  std::string s;
  for (const auto& [path, line] : tree) s += path + ": " + line + "\n";
  return s;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return "<unreadable>";
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return n < 0 ? "<unreadable>" : out;
}

void WriteFile(const std::string& path, std::string_view data, std::optional<mode_t> mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    ADD_FAILURE() << "open " << path << ": " << std::strerror(errno);
    return;
  }
  bool ok = true;
  while (ok && !data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    ok = n > 0;
    if (ok) data.remove_prefix(static_cast<size_t>(n));
  }
  if (mode && ::fchmod(fd, *mode) != 0) ok = false;
  if (::close(fd) != 0) ok = false;
  if (!ok) ADD_FAILURE() << "write " << path << ": " << std::strerror(errno);
}

}  // namespace imgstore::testing
