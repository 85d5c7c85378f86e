// `imgstore unpack IMAGE DIR` as a whole process: the tree equals the one `umoci unpack` makes of
// the same OCI layout (whiteouts, opaque directories, hardlinks, symlinks, setuid bits, owners),
// through the cache and without it; and the failures: an existing directory, a malicious layer
// (one error line, exit 1, no directory, nothing written outside, `check` clean); a --limit that
// the layer breaks, and bad --limit values.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/cli_runner.h"
#include "common/fs_tree.h"
#include "common/layer_image.h"
#include "common/tar_builder.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "util/env.h"

namespace imgstore::testing {
namespace {

// What is compared of each entry: type, mode, owner, size, content or link target. Hardlink
// groups are compared separately (inode numbers differ between trees).
struct TreeView {
  std::map<std::string, std::string> entries;
  std::set<std::vector<std::string>> link_groups;  // paths sharing an inode (2 or more)
};

void Walk(const std::string& root, const std::string& rel, TreeView* view,
          std::map<ino_t, std::vector<std::string>>* inodes) {
  const std::string path = rel.empty() ? root : root + "/" + rel;
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
  char head[96];
  std::snprintf(head, sizeof head, "%06o %u:%u size=%lld ", st.st_mode, st.st_uid, st.st_gid,
                S_ISDIR(st.st_mode) ? 0LL : static_cast<long long>(st.st_size));
  std::string desc = head;
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = ::readlink(path.c_str(), target, sizeof target);
    desc += "-> " + std::string(target, n > 0 ? n : 0);
  } else if (S_ISREG(st.st_mode)) {
    Result<std::string> content = Env::Default()->ReadFileToString(path, 64 << 20);
    ASSERT_TRUE(content.ok()) << content.status().ToString();
    desc += Digest::Of(*content).ToString();
    if (st.st_nlink > 1) (*inodes)[st.st_ino].push_back(rel);
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    desc += "dev " + std::to_string(st.st_rdev);
  }
  if (!rel.empty()) view->entries[rel] = desc;  // the root's own mode is the caller's choice
  if (!S_ISDIR(st.st_mode)) return;
  Result<std::vector<std::string>> names = Env::Default()->ListDir(path);
  ASSERT_TRUE(names.ok());
  for (const std::string& n : *names) Walk(root, rel.empty() ? n : rel + "/" + n, view, inodes);
}

TreeView ReadTree(const std::string& dir) {
  TreeView view;
  std::map<ino_t, std::vector<std::string>> inodes;
  Walk(dir, "", &view, &inodes);
  for (auto& [ino, paths] : inodes) {
    std::sort(paths.begin(), paths.end());
    if (paths.size() > 1) view.link_groups.insert(paths);
  }
  return view;
}

std::string Diff(const TreeView& a, const TreeView& b) {
  std::string out;
  for (const auto& [path, desc] : a.entries) {
    auto it = b.entries.find(path);
    if (it == b.entries.end()) {
      out += "only in imgstore: " + path + "\n";
    } else if (it->second != desc) {
      out += path + ": imgstore " + desc + " / umoci " + it->second + "\n";
    }
  }
  for (const auto& [path, desc] : b.entries) {
    if (a.entries.count(path) == 0) out += "only in umoci: " + path + "\n";
  }
  if (a.link_groups != b.link_groups) out += "hardlink groups differ\n";
  return out;
}

// Three layers that exercise everything the issue lists.
std::vector<std::string> Layers() {
  return {
      TarBuilder()
          .Dir("etc")
          .File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
          .File("etc/hosts", "127.0.0.1 localhost\n")
          .Symlink("etc/mtab", "/proc/self/mounts")
          .Dir("usr")
          .Dir("usr/bin")
          .File("usr/bin/tool", std::string(100000, 't'), 04755)
          .Hardlink("usr/bin/tool-again", "usr/bin/tool")
          .File("usr/bin/group-tool", "g", 02755)
          .Owner(0, 50)
          .Symlink("usr/lib64", "lib")
          .Dir("usr/lib")
          .File("usr/lib/libx.so.1", "ELF", 0755)
          .Symlink("usr/lib/libx.so", "libx.so.1")
          .Dir("var")
          .Dir("var/cache", 0700)
          .File("var/cache/a", "a")
          .File("var/cache/b", "b")
          .Dir("home")
          .Dir("home/user", 0750)
          .Owner(1000, 1000)
          .File("home/user/.profile", "export A=1\n", 0600)
          .Owner(1000, 1000)
          .File("empty", "")
          .Dir("tmp", 01777)
          .Finish(),
      TarBuilder()
          .Whiteout("etc/hosts")
          .File("etc/motd", "welcome\n")
          .Owner(1000, 100)
          .Whiteout("home/user")
          .Dir("usr/lib")
          .File("usr/lib/libx.so.2", "ELF2", 0755)
          .Symlink("usr/lib/libx.so", "libx.so.2")
          .Finish(),
      TarBuilder()
          .Dir("var/cache", 0755)
          .Opaque("var/cache")
          .File("var/cache/c", "c")
          .Dir("data")
          .File("data/x", "shared bytes", 0640)
          .Owner(33, 33)
          .Hardlink("data/y", "data/x")
          .Hardlink("data/z", "data/x")
          .Finish(),
  };
}

class UnpackCliTest : public ::testing::Test {
 protected:
  // An OCI layout of `tars` (layout:v1), pulled into the store as "img".
  void Import(const std::vector<std::string>& tars, LayerCompression compression) {
    TestImage image = ImageOfLayers(tars, compression, "unpack-test");
    WriteOciLayout(image, layout_, "v1");
    CliResult r = RunImgstore(root_.path(), {"pull", "oci:" + layout_ + ":v1", "--name", "img"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }
  void ExpectCheckClean() {
    CliResult r = RunImgstore(root_.path(), {"check"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
  }

  TempDir root_;
  TempDir work_;
  const std::string layout_ = work_.Sub("layout");
};

TEST_F(UnpackCliTest, TreeEqualsUmociUnpack) {
  if (::access("/usr/bin/umoci", X_OK) != 0) GTEST_SKIP() << "umoci is not installed";
  if (::geteuid() != 0) GTEST_SKIP() << "the owners of umoci's tree need root (CI runs as root)";
  ASSERT_NO_FATAL_FAILURE(Import(Layers(), LayerCompression::kGzip));

  const std::string bundle = work_.Sub("bundle");
  CliResult u = RunProgram("/usr/bin/umoci", {"unpack", "--image", layout_ + ":v1", bundle});
  ASSERT_EQ(u.exit_code, 0) << u.Describe();
  const TreeView expected = ReadTree(bundle + "/rootfs");
  ASSERT_GT(expected.entries.size(), 10u);
  ASSERT_FALSE(expected.link_groups.empty());

  // Extracted (cache filled on the way), then from the cache, then without the cache.
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, std::vector<std::string>{}, {"--no-cache"}}) {
    const std::string dir = work_.Sub("rootfs-" + std::to_string(::rand()));
    std::vector<std::string> args = {"unpack", "img", dir};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = RunImgstore(root_.path(), args);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.out, "");  // quiet on success
    EXPECT_EQ(r.err, "");
    const TreeView got = ReadTree(dir);
    EXPECT_EQ(got.entries, expected.entries) << Diff(got, expected);
    EXPECT_EQ(got.link_groups, expected.link_groups) << Diff(got, expected);
  }
  ExpectCheckClean();
}

// The tree root gets, as an unprivileged user would get it: every entry owned by that user
// (ownership cannot be given away), and no device nodes or fifos (skipped with a warning, as
// the issue asks: device nodes cannot be made, and a fifo in a rootfs only matters to a
// runtime that runs as root anyway); the rest —
// types, modes with their setuid/setgid/sticky bits, sizes, contents, link targets, hardlink
// groups — the same. Entries are described as ReadTree does ("MODE UID:GID size=…").
TreeView AsUnprivileged(const TreeView& root_tree, unsigned uid, unsigned gid) {
  TreeView out;
  out.link_groups = root_tree.link_groups;
  for (const auto& [path, desc] : root_tree.entries) {
    // S_IFCHR, S_IFBLK, S_IFIFO
    if (desc.starts_with("02") || desc.starts_with("06") || desc.starts_with("01")) continue;
    const size_t owner = desc.find(' ') + 1;
    const size_t size = desc.find(' ', owner);
    out.entries[path] =
        desc.substr(0, owner) + std::to_string(uid) + ":" + std::to_string(gid) + desc.substr(size);
  }
  return out;
}

TEST_F(UnpackCliTest, AnUnprivilegedUserGetsRootsTreeWithoutOwnersOrSpecialFiles) {
  if (::geteuid() != 0) GTEST_SKIP() << "becoming another user needs root (CI runs as root)";
  if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "setpriv (util-linux) is missing";
  constexpr unsigned kUser = 65534;  // nobody
  std::vector<std::string> tars = Layers();
  tars.push_back(TarBuilder()
                     .Dir("dev")
                     .CharDevice("dev/null", 1, 3, 0666)
                     .BlockDevice("dev/loop0", 7, 0, 0660)
                     .Fifo("dev/initctl", 0600)
                     .File("dev/keep", "k")
                     .Finish());
  TestImage image = ImageOfLayers(tars, LayerCompression::kZstd, "unpack-test");
  WriteOciLayout(image, layout_, "v1");

  // What root gets, from its own store.
  CliResult r =
      RunImgstore(root_.path(), {"pull", "-q", "oci:" + layout_ + ":v1", "--name", "img"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const std::string as_root = work_.Sub("as-root");
  r = RunImgstore(root_.path(), {"unpack", "img", as_root});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const TreeView expected = AsUnprivileged(ReadTree(as_root), kUser, kUser);
  ASSERT_EQ(ReadTree(as_root).entries.count("dev/null"), 1u);
  ASSERT_EQ(expected.entries.count("dev/null"), 0u);
  ASSERT_EQ(expected.entries.count("dev/keep"), 1u);

  // The user's own store and directories, in a directory the user owns; every command runs as
  // the user (setpriv), with a HOME and TMPDIR of its own.
  TempDir user;
  const std::string home = user.Sub("home");
  const std::string store = user.Sub("store");
  ASSERT_EQ(RunProgram("/bin/cp", {"-a", layout_, user.Sub("layout")}).exit_code, 0);
  ASSERT_TRUE(Env::Default()->CreateDirs(home + "/tmp").ok());
  ASSERT_EQ(RunProgram("/bin/chown", {"-R", "65534:65534", user.path()}).exit_code, 0);
  auto as_user = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"--reuid=65534",  "--regid=65534", "--clear-groups",
                                     "/usr/bin/env",   "HOME=" + home,  "TMPDIR=" + home + "/tmp",
                                     ImgstoreBinary(), "--root",        store};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram("/usr/bin/setpriv", argv);
  };
  r = as_user({"pull", "-q", "oci:" + user.Sub("layout") + ":v1", "--name", "img"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();

  // Extracted without the cache, then into the cache, then copied from it. An extraction says
  // once what it skipped; the cache holds nothing to skip.
  struct Case {
    std::vector<std::string> flags;
    bool extracts;
  };
  int n = 0;
  for (const Case& c : {Case{{"--no-cache"}, true}, Case{{}, true}, Case{{}, false}}) {
    const std::string dir = user.Sub("rootfs-" + std::to_string(n));
    SCOPED_TRACE("unpack " + std::to_string(n++));
    std::vector<std::string> args = {"unpack", "img", dir};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    r = as_user(args);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.out, "");
    if (c.extracts) {
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      EXPECT_TRUE(r.err.starts_with("imgstore: warning: ")) << r.err;
      EXPECT_NE(r.err.find("dev/"), std::string::npos) << r.err;
    } else {
      EXPECT_EQ(r.err, "");
    }
    const TreeView got = ReadTree(dir);
    EXPECT_EQ(got.entries, expected.entries) << Diff(got, expected);
    EXPECT_EQ(got.link_groups, expected.link_groups) << Diff(got, expected);
  }
  r = as_user({"check", "--verify-content"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "");
}

TEST_F(UnpackCliTest, DebugLogSaysWhatWasExtracted) {
  ASSERT_NO_FATAL_FAILURE(Import(Layers(), LayerCompression::kZstd));
  CliResult r =
      RunImgstore(root_.path(), {"--log-level", "debug", "unpack", "img", work_.Sub("a")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  size_t lines = 0;
  for (size_t at = r.err.find("extracting layer"); at != std::string::npos;
       at = r.err.find("extracting layer", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 3u) << r.err;
  r = RunImgstore(root_.path(), {"--log-level", "debug", "unpack", "img", work_.Sub("b")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.err.find("extracting layer"), std::string::npos) << r.err;
  EXPECT_TRUE(Exists(work_.Sub("b/data/z")));
}

TEST_F(UnpackCliTest, ExistingDirectoryIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Import(Layers(), LayerCompression::kGzip));
  const std::string dir = work_.Sub("exists");
  ASSERT_TRUE(Env::Default()->CreateDir(dir, 0755).ok());
  CliResult r = RunImgstore(root_.path(), {"unpack", "img", dir});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(dir), std::string::npos) << r.err;
  Result<std::vector<std::string>> names = Env::Default()->ListDir(dir);
  ASSERT_TRUE(names.ok());
  EXPECT_TRUE(names->empty());
}

TEST_F(UnpackCliTest, UnknownImageAndUsage) {
  CliResult r = RunImgstore(root_.path(), {"unpack", "nope:1", work_.Sub("x")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
  EXPECT_FALSE(Exists(work_.Sub("x")));
  r = RunImgstore(root_.path(), {"unpack", "img"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
}

TEST_F(UnpackCliTest, MaliciousLayerIsOneErrorAndLeavesNothing) {
  const std::string outside = work_.Sub("outside");
  ASSERT_TRUE(Env::Default()->CreateDir(outside, 0755).ok());
  // A symlink to a directory outside the root, then a file written through it, then "../".
  std::vector<std::string> tars = {
      TarBuilder().Dir("etc").File("etc/ok", "ok").Finish(),
      TarBuilder()
          .Symlink("escape", outside)
          .File("escape/planted", "pwned")
          .File("../../planted2", "pwned")
          .Finish(),
  };
  ASSERT_NO_FATAL_FAILURE(Import(tars, LayerCompression::kGzip));
  for (const char* flag : {"", "--no-cache"}) {
    const std::string dir = work_.Sub("evil");
    std::vector<std::string> args = {"unpack", "img", dir};
    if (*flag != '\0') args.push_back(flag);
    CliResult r = RunImgstore(root_.path(), args);
    EXPECT_EQ(r.exit_code, 1) << r.Describe();
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.err.starts_with("imgstore: error: ")) << r.err;
    EXPECT_FALSE(Exists(dir));
    Result<std::vector<std::string>> names = Env::Default()->ListDir(outside);
    ASSERT_TRUE(names.ok());
    EXPECT_TRUE(names->empty()) << names->front();
    EXPECT_FALSE(Exists(work_.path() + "/planted2"));
    ExpectCheckClean();
  }
  // Only the good base layer is in the cache.
  Result<std::vector<std::string>> layers = Env::Default()->ListDir(root_.path() + "/layers");
  ASSERT_TRUE(layers.ok());
  EXPECT_EQ(layers->size(), 1u);
}

TEST_F(UnpackCliTest, ALimitOnTheCommandLineBoundsTheUnpackAndABadOneIsAUsageError) {
  ASSERT_NO_FATAL_FAILURE(Import(Layers(), LayerCompression::kGzip));
  const std::string dir = work_.Sub("limited");
  for (const char* flag : {"", "--no-cache"}) {
    std::vector<std::string> args = {"--limit", "max_ratio=0", "--limit", "max_tar_bytes=2K",
                                     "unpack",  "img",         dir};
    if (*flag != '\0') args.push_back(flag);
    CliResult r = RunImgstore(root_.path(), args);
    EXPECT_EQ(r.exit_code, 1) << r.Describe();
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("exceeds max_tar_bytes (2048 bytes)"), std::string::npos) << r.err;
    EXPECT_FALSE(Exists(dir));
    ExpectCheckClean();
  }
  Result<std::vector<std::string>> layers = Env::Default()->ListDir(root_.path() + "/layers");
  ASSERT_TRUE(layers.ok());
  EXPECT_TRUE(layers->empty()) << "a layer over the bound is not cached";

  for (const char* bad : {"max_tar_bytes", "max_tar_bytes=lots", "nope=1", "max_ratio=1M"}) {
    CliResult r = RunImgstore(root_.path(), {"--limit", bad, "unpack", "img", dir});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.Describe();
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.err.starts_with("imgstore: error: --limit: ")) << r.err;
    EXPECT_FALSE(Exists(dir));
  }
  CliResult r = RunImgstore(root_.path(), {"--limit", "max_tar_bytes=1GiB", "unpack", "img", dir});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Exists(dir + "/etc"));
}

}  // namespace
}  // namespace imgstore::testing
