// Layer extraction: entry types and metadata, compressions, several targets, replacement of
// entries, whiteouts (applied, and as overlay lower dirs checked by a real overlay mount),
// bounds, diffID and cancellation.
#include "layers/extract.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/tar_builder.h"
#include "common/temp_dir.h"
#include "extract_test_util.h"

namespace imgstore::testing {
namespace {

using layers::ExtractOptions;
using layers::ExtractTarget;
using layers::WhiteoutMode;

bool IsRoot() { return ::geteuid() == 0; }

struct stat Lstat(const std::string& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st;
}

std::string Xattr(const std::string& p, const char* name) {
  char v[256];
  ssize_t n = ::lgetxattr(p.c_str(), name, v, sizeof v);
  return n < 0 ? "<none>" : std::string(v, static_cast<size_t>(n));
}

TEST(ExtractTest, RegularFilesDirsSymlinksHardlinksAndModes) {
  TempDir tmp;
  std::string tar = TarBuilder()
                        .Dir("etc", 0755)
                        .Mtime(1500000000)
                        .File("etc/hosts", "127.0.0.1 localhost\n", 0644)
                        .Mtime(1400000000)
                        .File("etc/suid", "x", 04755)
                        .Dir("tmp", 01777)
                        .Dir("ro", 0555)
                        .File("ro/inside", "data", 0444)
                        .Symlink("etc/link", "../ro/inside")
                        .Symlink("abs", "/etc/hosts")
                        .Hardlink("etc/hosts2", "etc/hosts")
                        .File("implicit/parent/file", "p")
                        .Finish();
  auto stats = ExtractTo(tar, tmp.path());
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->entries, 10u);
  EXPECT_EQ(stats->file_bytes, 20u + 1 + 4 + 1);
  EXPECT_EQ(stats->diff_id, Digest::Of(tar));
  EXPECT_EQ(stats->tar_bytes, tar.size());

  std::string r = tmp.path();
  EXPECT_EQ(ReadFile(r + "/etc/hosts"), "127.0.0.1 localhost\n");
  EXPECT_EQ(Lstat(r + "/etc/hosts").st_mode & 07777, 0644u);
  EXPECT_EQ(Lstat(r + "/etc/hosts").st_mtim.tv_sec, 1400000000);
  EXPECT_EQ(Lstat(r + "/etc/suid").st_mode & 07777, 04755u);
  EXPECT_EQ(Lstat(r + "/tmp").st_mode & 07777, 01777u);
  EXPECT_EQ(Lstat(r + "/ro").st_mode & 07777, 0555u);
  EXPECT_EQ(Lstat(r + "/ro/inside").st_mode & 07777, 0444u);
  // A directory's mtime is set after its content was created.
  EXPECT_EQ(Lstat(r + "/etc").st_mtim.tv_sec, 1500000000);
  EXPECT_TRUE(S_ISLNK(Lstat(r + "/etc/link").st_mode));
  char t[64];
  ssize_t ln = ::readlink((r + "/etc/link").c_str(), t, sizeof t);
  EXPECT_EQ(std::string(t, ln > 0 ? ln : 0), "../ro/inside");
  ssize_t n = ::readlink((r + "/abs").c_str(), t, sizeof t);
  EXPECT_EQ(std::string(t, n > 0 ? n : 0), "/etc/hosts");
  EXPECT_EQ(Lstat(r + "/etc/hosts2").st_ino, Lstat(r + "/etc/hosts").st_ino);
  EXPECT_EQ(ReadFile(r + "/implicit/parent/file"), "p");
  EXPECT_TRUE(S_ISDIR(Lstat(r + "/implicit/parent").st_mode));
}

TEST(ExtractTest, PaxLongNamesAndLargeFile) {
  TempDir tmp;
  std::string longdir(150, 'd');
  std::string longname = longdir + "/" + std::string(120, 'f');
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) >> 7);
  std::string tar = TarBuilder()
                        .Dir(longdir)
                        .File(longname, "long")
                        .File("big", big)
                        .UsePax()
                        .File("p", "x")
                        .Finish();
  auto stats = ExtractTo(tar, tmp.path());
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(ReadFile(tmp.path() + "/" + longname), "long");
  EXPECT_EQ(ReadFile(tmp.path() + "/big"), big);
  EXPECT_EQ(ReadFile(tmp.path() + "/p"), "x");
}

TEST(ExtractTest, ShortReadsAndTrailingBytesAreHashed) {
  TempDir tmp;
  // Real tars are padded to a 10 KiB record: the bytes after the end blocks are part of the
  // diffID too.
  std::string tar = TarBuilder().File("a", std::string(5000, 'a')).Finish();
  tar.append(10240 - tar.size() % 10240, '\0');
  auto file = StringSequentialFile(tar, "layer.tar", 333);
  std::vector<ExtractTarget> targets{{tmp.path(), WhiteoutMode::kApply, {}}};
  auto stats = layers::ExtractLayer(*file, targets);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->tar_bytes, tar.size());
  EXPECT_EQ(stats->diff_id, Digest::Of(tar));
  EXPECT_EQ(ReadFile(tmp.path() + "/a"), std::string(5000, 'a'));
}

TEST(ExtractTest, OwnersXattrsAndDevicesAsRoot) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  TempDir tmp;
  std::string tar = TarBuilder()
                        .Dir("d", 02775)
                        .Owner(1000, 1001)
                        .File("d/f", "x", 04750)
                        .Owner(1234, 5678)
                        .Xattr("user.comment", "hello")
                        .Xattr("trusted.t", "tv")
                        .Xattr("trusted.overlay.opaque", "y")
                        .Symlink("d/l", "f")
                        .Owner(7, 8)
                        .CharDevice("dev/null", 1, 3, 0666)
                        .Owner(0, 5)
                        .BlockDevice("dev/loop9", 7, 9, 0660)
                        .Fifo("dev/fifo", 0620)
                        .Finish();
  std::vector<std::string> warnings;
  ExtractOptions opt;
  opt.on_warning = [&](const std::string& l) { warnings.push_back(l); };
  auto stats = ExtractTo(tar, tmp.path(), opt);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  std::string r = tmp.path();
  auto d = Lstat(r + "/d");
  EXPECT_EQ(d.st_uid, 1000u);
  EXPECT_EQ(d.st_gid, 1001u);
  EXPECT_EQ(d.st_mode & 07777, 02775u);
  auto f = Lstat(r + "/d/f");
  EXPECT_EQ(f.st_uid, 1234u);
  EXPECT_EQ(f.st_gid, 5678u);
  EXPECT_EQ(f.st_mode & 07777, 04750u);  // setuid survives: set after the owner
  EXPECT_EQ(Xattr(r + "/d/f", "user.comment"), "hello");
  EXPECT_EQ(Xattr(r + "/d/f", "trusted.t"), "tv");
  EXPECT_EQ(Xattr(r + "/d/f", "trusted.overlay.opaque"), "<none>");  // never forged
  EXPECT_EQ(Lstat(r + "/d/l").st_uid, 7u);
  auto c = Lstat(r + "/dev/null");
  EXPECT_TRUE(S_ISCHR(c.st_mode));
  EXPECT_EQ(c.st_rdev, makedev(1, 3));
  EXPECT_EQ(c.st_mode & 07777, 0666u);
  EXPECT_EQ(c.st_gid, 5u);
  auto b = Lstat(r + "/dev/loop9");
  EXPECT_TRUE(S_ISBLK(b.st_mode));
  EXPECT_EQ(b.st_rdev, makedev(7, 9));
  auto p = Lstat(r + "/dev/fifo");
  EXPECT_TRUE(S_ISFIFO(p.st_mode));
  EXPECT_EQ(p.st_mode & 07777, 0620u);
  EXPECT_EQ(stats->skipped, 0u);
  ASSERT_EQ(warnings.size(), 1u);  // the overlay xattr, one line
  EXPECT_NE(warnings[0].find("trusted.overlay.opaque"), std::string::npos) << warnings[0];
}

// Runs `fn` in a forked child with uid/gid 65534; returns its exit status (0: all checks held).
template <typename Fn>
int RunAsNobody(Fn fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
      ::_exit(100);
    }
    ::_exit(fn());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

TEST(ExtractTest, DevicesAndPrivilegedXattrsSkippedAsNonRoot) {
  if (!IsRoot()) GTEST_SKIP() << "forks a child that drops root";
  TempDir tmp;
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
  std::string target = tmp.Sub("target");
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  ASSERT_EQ(::chown(target.c_str(), 65534, 65534), 0);
  std::string tar = TarBuilder()
                        .CharDevice("null", 1, 3, 0666)
                        .BlockDevice("sda", 8, 0)
                        .Fifo("fifo")
                        .File("f", "x", 04755)
                        .Owner(1234, 1234)
                        .Xattr("trusted.t", "v")
                        .Xattr("user.u", "w")
                        .Finish();
  int rc = RunAsNobody([&]() -> int {
    std::vector<std::string> warnings;
    ExtractOptions opt;
    opt.on_warning = [&](const std::string& l) { warnings.push_back(l); };
    auto stats = ExtractTo(tar, target, opt);
    if (!stats.ok()) return 1;
    if (stats->skipped != 3) return 2;
    if (warnings.size() != 2) return 3;  // devices (one line for three), privileged xattrs
    bool dev_line = false;
    for (const auto& w : warnings) {
      if (w.find("skipped device") != std::string::npos && w.find("2 more") != std::string::npos)
        dev_line = true;
    }
    if (!dev_line) return 4;
    return 0;
  });
  ASSERT_EQ(rc, 0);
  EXPECT_FALSE(Exists(target + "/null"));
  EXPECT_FALSE(Exists(target + "/sda"));
  EXPECT_FALSE(Exists(target + "/fifo"));
  auto f = Lstat(target + "/f");
  EXPECT_EQ(f.st_uid, 65534u);  // the caller's, not the tar's
  EXPECT_EQ(f.st_mode & 07777, 04755u);
  EXPECT_EQ(Xattr(target + "/f", "user.u"), "w");
  EXPECT_EQ(Xattr(target + "/f", "trusted.t"), "<none>");
}

TEST(ExtractTest, OverlayWhiteoutsAndReadOnlyDirsAsNonRoot) {
  if (!IsRoot()) GTEST_SKIP() << "forks a child that drops root";
  TempDir tmp;
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
  std::string layer = tmp.Sub("layer"), flat = tmp.Sub("flat");
  for (const auto& d : {layer, flat}) {
    ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
    ASSERT_EQ(::chown(d.c_str(), 65534, 65534), 0);
  }
  std::string l1 = TarBuilder()
                       .Dir("d")
                       .Opaque("d")
                       .Whiteout("gone")
                       .Dir("ro", 0555)
                       .Dir("ro/sub", 0500)
                       .File("ro/sub/f", "x", 0400)
                       .Finish();
  // Replacing a read-only tree that is not root's needs the directories opened up first.
  std::string l2 = TarBuilder().File("ro", "now a file").Finish();
  int rc = RunAsNobody([&]() -> int {
    if (std::string(layers::OverlayOpaqueXattr()) != "user.overlay.opaque") return 1;
    auto s =
        ExtractString(l1, {{layer, WhiteoutMode::kOverlay, {}}, {flat, WhiteoutMode::kApply, {}}});
    if (!s.ok()) return 2;
    auto s2 = ExtractTo(l2, flat);
    if (!s2.ok()) return 3;
    return 0;
  });
  ASSERT_EQ(rc, 0);
  auto w = Lstat(layer + "/gone");
  EXPECT_TRUE(S_ISCHR(w.st_mode));
  EXPECT_EQ(w.st_rdev, makedev(0, 0));
  EXPECT_EQ(Xattr(layer + "/d", "user.overlay.opaque"), "y");
  EXPECT_EQ(Xattr(layer + "/d", "trusted.overlay.opaque"), "<none>");
  EXPECT_EQ(Lstat(layer + "/ro").st_mode & 07777, 0555u);
  EXPECT_EQ(ReadFile(flat + "/ro"), "now a file");
}

TEST(ExtractTest, CompressionsGiveTheSameTreeAndDiffId) {
  std::string tar = TarBuilder()
                        .Dir("a")
                        .File("a/x", std::string(100000, 'x'))
                        .File("a/y", "y")
                        .Symlink("s", "a/x")
                        .Finish();
  std::map<std::string, std::string> first;
  for (auto [c, blob] : {std::pair{layers::Compression::kNone, tar},
                         std::pair{layers::Compression::kGzip, Gzip(tar)},
                         std::pair{layers::Compression::kZstd, Zstd(tar)}}) {
    TempDir tmp;
    std::vector<ExtractTarget> targets{{tmp.path(), WhiteoutMode::kApply, {}}};
    ExtractOptions opt;
    opt.expected_diff_id = Digest::Of(tar);
    auto stats = layers::ExtractLayerBlob(StringSequentialFile(blob, "blob"), c, targets, opt);
    ASSERT_TRUE(stats.ok()) << layers::CompressionName(c) << ": " << stats.status().ToString();
    EXPECT_EQ(stats->diff_id, Digest::Of(tar));
    auto t = Tree(tmp.path(), {.file_mtimes = true});
    if (first.empty()) {
      first = t;
      EXPECT_EQ(first.size(), 4u);
    } else {
      EXPECT_EQ(TreeText(t), TreeText(first)) << layers::CompressionName(c);
    }
  }
}

TEST(ExtractTest, CorruptCompressedStreamFails) {
  TempDir tmp;
  std::string blob = Gzip(TarBuilder().File("a", std::string(100000, 'q')).Finish());
  blob.resize(blob.size() / 2);
  std::vector<ExtractTarget> targets{{tmp.path(), WhiteoutMode::kApply, {}}};
  auto stats = layers::ExtractLayerBlob(StringSequentialFile(blob, "half.gz"),
                                        layers::Compression::kGzip, targets);
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), Code::kCorruption) << stats.status().ToString();
  EXPECT_NE(stats.status().message().find("half.gz"), std::string::npos);
}

TEST(ExtractTest, GarbageIsNotATar) {
  TempDir tmp;
  auto stats = ExtractTo(std::string(2048, 'g'), tmp.path());
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), Code::kCorruption) << stats.status().ToString();
}

TEST(ExtractTest, SeveralTargetsGetTheSameTree) {
  TempDir a, b, c;
  std::string tar = TarBuilder()
                        .Dir("d", 0750)
                        .File("d/f", "content", 0600)
                        .Mtime(1234567)
                        .Hardlink("d/g", "d/f")
                        .Symlink("d/s", "f")
                        .File("big", std::string(3 << 20, 'z'))
                        .Finish();
  auto stats = ExtractString(tar, {{a.path(), WhiteoutMode::kApply, {}},
                                   {b.path(), WhiteoutMode::kApply, {}},
                                   {c.path(), WhiteoutMode::kOverlay, {}}});
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->file_bytes, 7u + (3 << 20));
  auto ta = Tree(a.path(), {.file_mtimes = true, .dir_mtimes = true});
  EXPECT_EQ(ta.size(), 5u);
  EXPECT_EQ(TreeText(Tree(b.path(), {.file_mtimes = true, .dir_mtimes = true})), TreeText(ta));
  EXPECT_EQ(TreeText(Tree(c.path(), {.file_mtimes = true, .dir_mtimes = true})), TreeText(ta));
  EXPECT_EQ(Lstat(b.path() + "/d/g").st_ino, Lstat(b.path() + "/d/f").st_ino);
}

TEST(ExtractTest, MissingTargetFails) {
  TempDir tmp;
  auto stats = ExtractTo(TarBuilder().File("a", "a").Finish(), tmp.Sub("missing"));
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), Code::kNotFound);
  EXPECT_NE(stats.status().message().find("missing"), std::string::npos);
}

TEST(ExtractTest, LaterEntriesReplaceEarlierOnesOfAnotherType) {
  TempDir tmp;
  std::string r = tmp.path();
  // Lower layer: a file where a dir will be, a dir where a file will be, a dir kept.
  ASSERT_TRUE(ExtractTo(TarBuilder()
                            .File("f2d", "was a file")
                            .Dir("d2f")
                            .File("d2f/inner", "i")
                            .Dir("keep", 0700)
                            .File("keep/old", "old")
                            .Hardlink("keep/old-link", "keep/old")
                            .Finish(),
                        r)
                  .ok());
  auto stats = ExtractTo(TarBuilder()
                             .Dir("f2d")
                             .File("f2d/x", "x")
                             .File("d2f", "now a file")
                             .Dir("keep", 0751)
                             .Mtime(1111111)
                             .File("keep/old", "replaced")  // a new inode: the link keeps "old"
                             .Symlink("s", "a")
                             .File("s", "file over symlink")
                             .Finish(),
                         r);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_TRUE(S_ISDIR(Lstat(r + "/f2d").st_mode));
  EXPECT_EQ(ReadFile(r + "/f2d/x"), "x");
  EXPECT_EQ(ReadFile(r + "/d2f"), "now a file");
  EXPECT_EQ(Lstat(r + "/keep").st_mode & 07777, 0751u);  // metadata of the existing dir updated
  EXPECT_EQ(Lstat(r + "/keep").st_mtim.tv_sec, 1111111);
  EXPECT_EQ(ReadFile(r + "/keep/old"), "replaced");
  EXPECT_EQ(ReadFile(r + "/keep/old-link"), "old");
  EXPECT_EQ(ReadFile(r + "/s"), "file over symlink");
}

// Three layers with whiteouts and opaque directories. Both orders of an opaque marker and the
// layer's own entries appear.
std::vector<std::string> ThreeLayers() {
  std::string l1 = TarBuilder()
                       .Dir("etc")
                       .File("etc/a", "a1")
                       .File("etc/b", "b1")
                       .Dir("etc/sub")
                       .File("etc/sub/deep", "deep1")
                       .Dir("opq")
                       .File("opq/lower", "l1")
                       .Dir("opq/keepdir")
                       .File("opq/keepdir/lower2", "l2")
                       .Dir("opq2")
                       .File("opq2/lower", "l")
                       .Dir("var")
                       .File("var/log", "log")
                       .File("hl-target", "shared")
                       .Finish();
  std::string l2 = TarBuilder()
                       .Dir("etc")
                       .Whiteout("etc/a")
                       .Whiteout("etc/sub")
                       .File("etc/c", "c2")
                       .Dir("opq")
                       .File("opq/new", "n2")  // the layer's own entry before the marker
                       .Dir("opq/keepdir")
                       .File("opq/keepdir/mine", "m2")
                       .Opaque("opq")
                       .Dir("opq2")
                       .Opaque("opq2")  // marker before the layer's own entries
                       .File("opq2/new", "n2")
                       .Whiteout("var")
                       .Whiteout("does/not/exist")
                       .Finish();
  std::string l3 = TarBuilder()
                       .Dir("etc")
                       .File("etc/a", "a3")  // re-created after a whiteout below
                       .Dir("var")
                       .File("var/new", "v3")
                       .Dir("opq")
                       .Whiteout("opq/new")
                       .Hardlink("hl2", "hl-target")  // a hardlink to a file of a lower layer
                       .Finish();
  return {l1, l2, l3};
}

TEST(ExtractTest, WhiteoutsAcrossThreeLayersApplied) {
  TempDir tmp;
  for (const auto& l : ThreeLayers()) {
    auto s = ExtractTo(l, tmp.path());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  std::string r = tmp.path();
  std::vector<std::string> present = {
      "etc",  "etc/a",    "etc/b", "etc/c",   "opq",       "opq/keepdir", "opq/keepdir/mine",
      "opq2", "opq2/new", "var",   "var/new", "hl-target", "hl2"};
  auto tree = Tree(r);
  std::string text = TreeText(tree);
  EXPECT_EQ(tree.size(), present.size()) << text;
  for (const auto& p : present) EXPECT_TRUE(tree.count(p)) << p << "\n" << text;
  EXPECT_EQ(ReadFile(r + "/etc/a"), "a3");
  EXPECT_EQ(ReadFile(r + "/opq/keepdir/mine"), "m2");
  EXPECT_EQ(ReadFile(r + "/hl2"), "shared");
  EXPECT_EQ(Lstat(r + "/hl2").st_ino, Lstat(r + "/hl-target").st_ino);
}

struct Mount {
  std::string dir;
  ~Mount() {
    if (!dir.empty()) ::umount2(dir.c_str(), MNT_DETACH);
  }
};

TEST(ExtractTest, WhiteoutsAsOverlayLowerDirsMatchTheAppliedTree) {
  if (!IsRoot()) GTEST_SKIP() << "mounts overlayfs";
  TempDir tmp;
  auto layers = ThreeLayers();
  std::string flat = tmp.Sub("flat");
  ASSERT_EQ(::mkdir(flat.c_str(), 0755), 0);
  std::vector<std::string> dirs;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string d = tmp.Sub("l" + std::to_string(i));
    ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
    std::vector<std::string> lowers(dirs.rbegin(), dirs.rend());  // nearest first
    // One pass fills the flattened tree and the layer's own overlay directory.
    auto s = ExtractString(layers[i],
                           {{flat, WhiteoutMode::kApply, {}}, {d, WhiteoutMode::kOverlay, lowers}});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    dirs.push_back(d);
  }
  EXPECT_TRUE(S_ISCHR(Lstat(dirs[1] + "/etc/a").st_mode));
  EXPECT_EQ(Lstat(dirs[1] + "/etc/a").st_rdev, makedev(0, 0));
  EXPECT_EQ(Xattr(dirs[1] + "/opq", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(Xattr(dirs[1] + "/opq2", "trusted.overlay.opaque"), "y");
  // hl2's target lives in layer 0: overlay cannot link across layers, so it was copied.
  EXPECT_EQ(ReadFile(dirs[2] + "/hl2"), "shared");

  std::string merged = tmp.Sub("merged");
  ASSERT_EQ(::mkdir(merged.c_str(), 0755), 0);
  std::string opts = "lowerdir=" + dirs[2] + ":" + dirs[1] + ":" + dirs[0];
  ASSERT_EQ(::mount("overlay", merged.c_str(), "overlay", MS_RDONLY, opts.c_str()), 0)
      << std::strerror(errno);
  Mount m{merged};
  auto want = Tree(flat);
  auto got = Tree(merged);
  // A hardlink across layers is a copy in overlay: same content, its own inode.
  EXPECT_EQ(TreeText(got), TreeText(want));
}

TEST(ExtractTest, OverlayHardlinkWithoutLowerDirsIsRefused) {
  TempDir tmp;
  auto s = ExtractString(TarBuilder().Hardlink("x", "elsewhere").Finish(),
                         {{tmp.path(), WhiteoutMode::kOverlay, {}}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
  EXPECT_NE(s.status().message().find("elsewhere"), std::string::npos) << s.status().message();
}

// Some writers (umoci insert, as Debian ships it) end a layer right after the last entry's data:
// no padding to the 512-byte block and no end-of-archive blocks. Every byte of the content is
// there and the diffID is that of the bytes as they are, so the layer is accepted; a stream
// that ends inside the data is still refused.
TEST(ExtractTest, LayerEndingRightAfterTheLastDataIsAccepted) {
  const std::string full = TarBuilder().Dir("etc").File("etc/motd", "hello from umoci\n").Finish();
  const size_t data_at = full.find("hello from umoci");
  ASSERT_NE(data_at, std::string::npos);
  const std::string unpadded = full.substr(0, data_at + 17);
  TempDir tmp;
  ExtractOptions opt;
  opt.expected_diff_id = Digest::Of(unpadded);
  auto stats = ExtractTo(unpadded, tmp.path(), opt);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(ReadFile(tmp.path() + "/etc/motd"), "hello from umoci\n");
  EXPECT_EQ(stats->tar_bytes, unpadded.size());

  TempDir cut;
  auto truncated = ExtractTo(full.substr(0, data_at + 10), cut.path());
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), Code::kCorruption) << truncated.status().ToString();
}

TEST(ExtractTest, WrongDiffIdIsCorruption) {
  TempDir tmp;
  std::string tar = TarBuilder().File("a", "a").Finish();
  ExtractOptions opt;
  opt.expected_diff_id = Digest::Of("something else");
  auto s = ExtractTo(tar, tmp.path(), opt);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kCorruption);
  EXPECT_NE(s.status().message().find(Digest::Of(tar).ToString()), std::string::npos);
  EXPECT_NE(s.status().message().find(Digest::Of("something else").ToString()), std::string::npos);
  opt.expected_diff_id = Digest::Of(tar);
  TempDir ok;
  EXPECT_TRUE(ExtractTo(tar, ok.path(), opt).ok());
}

TEST(ExtractTest, Bounds) {
  std::string tar = TarBuilder()
                        .File("a", std::string(10000, 'a'))
                        .File("b", "b")
                        .File(std::string(40, 'n'), "n")
                        .Finish();
  struct Case {
    const char* field;
    ExtractOptions opt;
  };
  std::vector<Case> cases(3);
  cases[0].field = "max_tar_bytes";
  cases[0].opt.limits.max_tar_bytes = 8192;
  cases[1].field = "max_entries";
  cases[1].opt.limits.max_entries = 2;
  cases[2].field = "max_path_bytes";
  cases[2].opt.limits.max_path_bytes = 39;
  for (auto& c : cases) {
    TempDir tmp;
    auto s = ExtractTo(tar, tmp.path(), c.opt);
    ASSERT_FALSE(s.ok()) << c.field;
    EXPECT_EQ(s.status().code(), Code::kInvalidArgument) << s.status().ToString();
    EXPECT_NE(s.status().message().find(c.field), std::string::npos) << s.status().message();
  }
  // Exactly at the bounds passes.
  TempDir tmp;
  ExtractOptions at;
  at.limits.max_tar_bytes = tar.size();
  at.limits.max_entries = 3;
  at.limits.max_path_bytes = 40;
  auto s = ExtractTo(tar, tmp.path(), at);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
}

TEST(ExtractTest, XattrBound) {
  TempDir tmp;
  ExtractOptions opt;
  opt.limits.max_xattr_bytes = 100;
  auto s = ExtractTo(TarBuilder().File("a", "a").Xattr("user.big", std::string(200, 'v')).Finish(),
                     tmp.path(), opt);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
  EXPECT_NE(s.status().message().find("max_xattr_bytes"), std::string::npos);
}

TEST(ExtractTest, HugeDeclaredSizeIsRefusedBeforeWriting) {
  TempDir tmp;
  std::string tar = TarBuilder().File("huge", "").DeclaredSize(1ull << 40).Finish();
  auto s = ExtractTo(tar, tmp.path());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument) << s.status().ToString();
  EXPECT_NE(s.status().message().find("max_tar_bytes"), std::string::npos);
  EXPECT_FALSE(Exists(tmp.path() + "/huge"));
  // Under the bound, the lie shows as a truncated tar.
  ExtractOptions unbounded;
  unbounded.limits.max_tar_bytes = 0;
  auto t = ExtractTo(TarBuilder().File("huge", "").DeclaredSize(1 << 20).Finish(), tmp.path(),
                     unbounded);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kCorruption) << t.status().ToString();
}

TEST(ExtractTest, DecompressionBombs) {
  std::string tar = TarBuilder().File("zeros", std::string(64 << 20, '\0')).Finish();
  for (auto [c, blob] : {std::pair{layers::Compression::kGzip, Gzip(tar)},
                         std::pair{layers::Compression::kZstd, Zstd(tar)}}) {
    TempDir tmp;
    std::vector<ExtractTarget> targets{{tmp.path(), WhiteoutMode::kApply, {}}};
    auto s = layers::ExtractLayerBlob(StringSequentialFile(blob, "bomb"), c, targets);
    ASSERT_FALSE(s.ok()) << layers::CompressionName(c);
    EXPECT_EQ(s.status().code(), Code::kInvalidArgument) << s.status().ToString();
    EXPECT_NE(s.status().message().find("max_ratio"), std::string::npos) << s.status().message();
  }
}

TEST(ExtractTest, Cancellation) {
  TempDir tmp;
  std::string tar = TarBuilder().File("a", std::string(12 << 20, 'a')).File("b", "b").Finish();
  int calls = 0;
  ExtractOptions opt;
  opt.cancelled = [&] { return ++calls > 3; };
  auto s = ExtractTo(tar, tmp.path(), opt);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kCancelled) << s.status().ToString();
  EXPECT_FALSE(Exists(tmp.path() + "/b"));
  uint64_t progress = 0;
  opt.cancelled = nullptr;
  opt.on_progress = [&](uint64_t n) { progress = n; };
  TempDir ok;
  ASSERT_TRUE(ExtractTo(tar, ok.path(), opt).ok());
  EXPECT_EQ(progress, tar.size());
}

}  // namespace
}  // namespace imgstore::testing
