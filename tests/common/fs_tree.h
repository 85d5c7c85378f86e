// FsTree: a snapshot of a directory tree (lstat, never following a symlink) as path → one line
// per entry, so that tests can compare two trees, or one tree before and after; and the small
// file helpers (Exists, ReadFile, WriteFile) the file-system tests share.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace imgstore::testing {

// What an entry's line holds besides "type mode uid:gid payload" (payload: a file's content,
// a symlink's target, a device's major,minor; empty for directories and fifos).
struct SnapshotOptions {
  bool include_root = false;     // the root itself, as "."
  bool file_digests = false;     // "size=N sha=…" instead of a file's content
  bool link_counts = false;      // " links=N" on regular files
  bool hardlink_groups = false;  // " link=FIRST" on a file sharing an inode with FIRST
  bool file_mtimes = false;      // " mtime=…" on regular files
  bool dir_mtimes = false;       // " mtime=…" on directories
  bool mtime_nsec = false;       // mtimes as sec.nsec instead of whole seconds
  bool xattrs = false;           // " [name=value]" per xattr (not overlay.* nor SELinux labels)
  bool overlay_xattrs = false;   // with xattrs: the overlay.* ones too
};

using FsTree = std::map<std::string, std::string>;

// Every entry below root (relative paths); a failure to read the tree is a test failure.
FsTree SnapshotTree(const std::string& root, const SnapshotOptions& options = {});

// One "path: line" row per entry, for failure messages and whole-tree comparisons.
std::string TreeText(const FsTree& tree);

bool Exists(const std::string& path);  // lstat: a dangling symlink exists

// The whole file (not following a final symlink); "<unreadable>" if it cannot be read.
std::string ReadFile(const std::string& path);

// Creates or truncates path in place (an existing file keeps its inode); with mode, chmods it
// too. A failure is a test failure.
void WriteFile(const std::string& path, std::string_view data,
               std::optional<mode_t> mode = std::nullopt);

}  // namespace imgstore::testing
