// The malicious-layer corpus: traversal names, symlink and hardlink escapes, a symlink swapped
// for a directory between entries, whiteouts that climb out. Each case is refused with a clear
// error or neutralised inside the target (docs/extraction.md says which), and a sibling
// directory "outside" (and /etc/passwd) is unchanged. Every case runs twice: with openat2 and
// with the emulated component walk used where openat2 is missing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/tar_builder.h"
#include "common/temp_dir.h"
#include "extract_test_util.h"
#include "layers/extract.h"
#include "layers/safe_fs.h"

namespace imgstore::testing {
namespace {

using layers::ExtractTarget;
using layers::WhiteoutMode;

class MaliciousTest : public ConfinedRootTest {
 protected:
  void SetUp() override {
    ConfinedRootTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(::mkdir((outside_ + "/dir").c_str(), 0755), 0);
    WriteFile(outside_ + "/secret", "secret");
    WriteFile(outside_ + "/dir/x", "x");
    WriteFile(outside_ + "/x", "x");
    before_ = Tree(outside_, {.file_mtimes = true, .dir_mtimes = true});
    ASSERT_EQ(::lstat("/etc/passwd", &passwd_), 0);
  }
  void TearDown() override {
    ConfinedRootTest::TearDown();
    EXPECT_EQ(TreeText(Tree(outside_, {.file_mtimes = true, .dir_mtimes = true})),
              TreeText(before_))
        << "the directory outside the target changed";
    struct stat now;
    ASSERT_EQ(::lstat("/etc/passwd", &now), 0);
    EXPECT_EQ(now.st_nlink, passwd_.st_nlink);
    EXPECT_EQ(now.st_mtim.tv_sec, passwd_.st_mtim.tv_sec);
  }

  // Extracts into a fresh root (root_), so that the cases of one test do not interact.
  Result<layers::ExtractStats> Run(const std::string& tar,
                                   WhiteoutMode mode = WhiteoutMode::kApply) {
    root_ = tmp_.Sub("root" + std::to_string(++runs_));
    EXPECT_EQ(::mkdir(root_.c_str(), 0755), 0);
    return ExtractString(tar, {ExtractTarget{root_, mode, {}}});
  }

  // Expects the layer to be refused with `code`, the message naming `needle`.
  void ExpectRefused(const std::string& tar, Code code, const std::string& needle,
                     WhiteoutMode mode = WhiteoutMode::kApply) {
    auto s = Run(tar, mode);
    ASSERT_FALSE(s.ok()) << "accepted; tree:\n" << TreeText(Tree(root_));
    EXPECT_EQ(s.status().code(), code) << s.status().ToString();
    EXPECT_NE(s.status().message().find(needle), std::string::npos) << s.status().message();
    EXPECT_EQ(s.status().message().find('\n'), std::string::npos);
  }

  int runs_ = 0;
  FsTree before_;
  struct stat passwd_ {};
};

TEST_P(MaliciousTest, DotDotEntriesAreRefused) {
  for (std::string name : {"../x", "../outside/secret", "a/../../x", "./../outside/x", ".."}) {
    ExpectRefused(TarBuilder().File(name, "pwned").Finish(), Code::kInvalidArgument, "'..'");
  }
  ExpectRefused(TarBuilder().Dir("../outside/newdir").Finish(), Code::kInvalidArgument, "'..'");
  ExpectRefused(TarBuilder().Symlink("../outside/l", "/").Finish(), Code::kInvalidArgument, "'..'");
}

TEST_P(MaliciousTest, AbsoluteNamesAreRefused) {
  ExpectRefused(TarBuilder().File(outside_ + "/secret", "pwned").Finish(), Code::kInvalidArgument,
                "is absolute");
  ExpectRefused(TarBuilder().File("/etc/passwd", "pwned").Finish(), Code::kInvalidArgument,
                "is absolute");
  ExpectRefused(TarBuilder().Dir("/").Finish(), Code::kInvalidArgument, "is absolute");
}

TEST_P(MaliciousTest, EmptyAndNulNamesAreRefusedOrTruncated) {
  ExpectRefused(TarBuilder().UsePax().File("", "x").Finish(), Code::kInvalidArgument, "empty");
  // A pax path with a NUL: libarchive hands the name over as a C string, so it ends at the NUL
  // ("a"): the entry lands inside the root under the shorter name.
  auto s = Run(TarBuilder().File(std::string("a\0/../../outside/secret", 23), "x").Finish());
  if (s.ok()) {
    EXPECT_EQ(ReadFile(root_ + "/a"), "x");
  } else {
    EXPECT_EQ(s.status().code(), Code::kInvalidArgument) << s.status().ToString();
  }
}

TEST_P(MaliciousTest, SymlinkToRootThenFileThroughItStaysInside) {
  // "/" is re-rooted at the target: the file lands in root/etc, never in /etc.
  auto s = Run(TarBuilder()
                   .Symlink("rootlink", "/")
                   .Dir("etc")
                   .File("rootlink/etc/pwned", "x")
                   .File("rootlink/pwned", "y")
                   .Finish());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(ReadFile(root_ + "/etc/pwned"), "x");
  EXPECT_EQ(ReadFile(root_ + "/pwned"), "y");
  struct stat st;
  EXPECT_NE(::lstat("/etc/pwned", &st), 0);
  EXPECT_NE(::lstat("/pwned", &st), 0);
}

TEST_P(MaliciousTest, SymlinkToOutsideThenFileThroughItIsRefused) {
  // The absolute path of the real outside dir does not exist below the root.
  ExpectRefused(TarBuilder().Symlink("l", outside_).File("l/secret", "pwned").Finish(),
                Code::kNotFound, "l/secret");
  ExpectRefused(TarBuilder().Symlink("r", "../outside").File("r/secret", "pwned").Finish(),
                Code::kNotFound, "r/secret");
  ExpectRefused(TarBuilder().Symlink("r2", "../outside").Dir("r2/sub").Finish(), Code::kNotFound,
                "r2/sub");
}

TEST_P(MaliciousTest, DotDotSymlinkChainsStayInside) {
  auto s = Run(TarBuilder()
                   .Dir("a")
                   .Dir("a/b")
                   .Symlink("a/b/up", "..")
                   .Symlink("a/b/up2", "up/../../..")
                   .Symlink("chain", "a/b/up2/../../../..")
                   .File("chain/escaped", "x")
                   .File("a/b/up2/escaped2", "y")
                   .Finish());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(ReadFile(root_ + "/escaped"), "x");
  EXPECT_EQ(ReadFile(root_ + "/escaped2"), "y");
  struct stat st;
  EXPECT_NE(::lstat((tmp_.path() + "/escaped").c_str(), &st), 0);
}

TEST_P(MaliciousTest, SymlinkLoopIsRefused) {
  ExpectRefused(TarBuilder()
                    .Symlink("loop1", "loop2")
                    .Symlink("loop2", "loop1")
                    .File("loop1/x", "x")
                    .Finish(),
                Code::kInvalidArgument, "symbolic links");
}

TEST_P(MaliciousTest, HardlinksOutsideAreRefused) {
  ExpectRefused(TarBuilder().Hardlink("x", "../outside/secret").Finish(), Code::kInvalidArgument,
                "'..'");
  ExpectRefused(TarBuilder().Hardlink("x", "/etc/passwd").Finish(), Code::kInvalidArgument,
                "is absolute");
  ExpectRefused(TarBuilder().Hardlink("x", outside_ + "/secret").Finish(), Code::kInvalidArgument,
                "is absolute");
  // Through a symlinked parent: resolved inside the root, where there is no such file (or
  // where "etc" → "/etc" is itself, a loop).
  ExpectRefused(TarBuilder().Symlink("e", "/etc").Hardlink("pw", "e/passwd").Finish(),
                Code::kInvalidArgument, "does not exist");
  ExpectRefused(TarBuilder().Symlink("etc", "/etc").Hardlink("pw", "etc/passwd").Finish(),
                Code::kInvalidArgument, "symbolic links");
  ExpectRefused(TarBuilder().Symlink("o", "../outside").Hardlink("s", "o/secret").Finish(),
                Code::kInvalidArgument, "does not exist");
  // To a symlink or a directory: refused (only regular files).
  ExpectRefused(TarBuilder().Symlink("sl", "/etc/passwd").Hardlink("h", "sl").Finish(),
                Code::kInvalidArgument, "not a regular file");
  ExpectRefused(TarBuilder().Dir("d").Hardlink("h2", "d").Finish(), Code::kInvalidArgument,
                "not a regular file");
  // In overlay mode, a hardlink the lower dirs cannot satisfy is refused as well.
  ExpectRefused(TarBuilder().Hardlink("x", "etc/passwd").Finish(), Code::kInvalidArgument,
                "etc/passwd", WhiteoutMode::kOverlay);
  EXPECT_FALSE(Tree(root_).count("x"));
}

TEST_P(MaliciousTest, SymlinkSwappedForDirectoryBetweenEntries) {
  // Dir a, then a symlink a → outside (replacing the dir), then a/f: resolution is never
  // cached, so a/f is resolved again, inside the root, and finds nothing there.
  ExpectRefused(TarBuilder()
                    .Dir("a")
                    .File("a/first", "1")
                    .Symlink("a", outside_)
                    .File("a/f", "pwned")
                    .File("a/secret", "pwned")
                    .Finish(),
                Code::kNotFound, "a/f");
  // The same with a target that exists inside the root: the write lands there.
  TempDir other;
  std::string r2 = other.path();
  auto s = ExtractTo(
      TarBuilder().Dir("a").Dir("tmp").Symlink("a", "/tmp").File("a/f", "inside").Finish(), r2);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(ReadFile(r2 + "/tmp/f"), "inside");
}

TEST_P(MaliciousTest, WhiteoutsThatClimbOutAreRefused) {
  ExpectRefused(TarBuilder().File("../.wh.outside", "").Finish(), Code::kInvalidArgument, "'..'");
  ExpectRefused(TarBuilder().File("a/../../.wh.x", "").Finish(), Code::kInvalidArgument, "'..'");
  ExpectRefused(TarBuilder().Dir("a").File("a/.wh..", "").Finish(), Code::kInvalidArgument,
                "invalid whiteout");
  ExpectRefused(TarBuilder().Dir("a").File("a/.wh...", "").Finish(), Code::kInvalidArgument,
                "invalid whiteout");
  ExpectRefused(TarBuilder().File(".wh.", "").Finish(), Code::kInvalidArgument, "invalid whiteout");
  ExpectRefused(TarBuilder().File(".wh..wh.other", "").Finish(), Code::kInvalidArgument,
                "invalid whiteout");
}

TEST_P(MaliciousTest, WhiteoutsThroughSymlinkedParentsAreIgnored) {
  // A whiteout names a path literally: below a symlink (to outside, to "..", to "/") it names
  // nothing, in either mode; one warning says so.
  for (auto mode : {WhiteoutMode::kApply, WhiteoutMode::kOverlay}) {
    std::vector<std::string> warnings;
    layers::ExtractOptions opt;
    opt.on_warning = [&](const std::string& l) { warnings.push_back(l); };
    root_ = tmp_.Sub("root" + std::to_string(++runs_));
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/keep").c_str(), 0755), 0);
    WriteFile(root_ + "/keep/file", "k");
    auto s = ExtractString(TarBuilder()
                               .Symlink("o", outside_)
                               .Symlink("r", "../outside")
                               .Symlink("up", "..")
                               .Symlink("slash", "/")
                               .Whiteout("o/secret")
                               .Whiteout("r/secret")
                               .Whiteout("r/dir")
                               .Whiteout("up/keep")
                               .Whiteout("slash/keep")
                               .Opaque("o/dir")
                               .Opaque("r")
                               .Opaque("slash")
                               .Finish(),
                           {ExtractTarget{root_, mode, {}}}, opt);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->whiteouts, 8u);
    EXPECT_EQ(ReadFile(root_ + "/keep/file"), "k");
    EXPECT_EQ(Tree(root_).size(), 6u) << TreeText(Tree(root_));  // 4 symlinks, keep, keep/file
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("symlink"), std::string::npos) << warnings[0];
  }
}

TEST_P(MaliciousTest, WhiteoutThroughSymlinkToRootRemovesNothing) {
  auto s = Run(TarBuilder().Dir("lower").File("lower/f", "f").Finish());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::string first = root_;
  auto s2 = ExtractTo(
      TarBuilder().Symlink("l", "/").Opaque("l").Whiteout("l/lower").File("mine", "m").Finish(),
      first);
  ASSERT_TRUE(s2.ok()) << s2.status().ToString();
  auto t = Tree(first);
  EXPECT_EQ(t.size(), 4u) << TreeText(t);  // lower, lower/f, l, mine
  EXPECT_EQ(ReadFile(first + "/lower/f"), "f");
}

TEST_P(MaliciousTest, NothingLeaksFromARefusedLayer) {
  // A refusal in the middle leaves the earlier entries inside the target only (the caller
  // discards it); nothing outside.
  ExpectRefused(TarBuilder()
                    .File("ok", "1")
                    .Symlink("o", outside_ + "/secret")
                    .File("../outside/secret", "pwned")
                    .Finish(),
                Code::kInvalidArgument, "'..'");
  EXPECT_EQ(ReadFile(root_ + "/ok"), "1");
}

INSTANTIATE_TEST_SUITE_P(Resolution, MaliciousTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Emulated" : "Openat2"; });

}  // namespace
}  // namespace imgstore::testing
