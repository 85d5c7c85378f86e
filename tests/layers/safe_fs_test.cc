// safe_fs: root-confined directory resolution (openat2 and the emulated walk alike), creation of
// missing directories, rm -rf relative to a descriptor without following symlinks.
#include "layers/safe_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "common/temp_dir.h"
#include "extract_test_util.h"

namespace imgstore::testing {
namespace {

using layers::OpenDirInRoot;
using layers::Resolve;

bool IsDir(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

ino_t InodeOf(int fd) {
  struct stat st;
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

ino_t InodeOf(const std::string& p) {
  struct stat st;
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_ino;
}

class SafeFsTest : public ConfinedRootTest {
 protected:
  void SetUp() override {
    ConfinedRootTest::SetUp();
    if (HasFatalFailure()) return;
    auto fd = layers::OpenRootDir(root_);
    ASSERT_TRUE(fd.ok());
    fd_ = std::move(fd).value();
  }
  layers::UniqueFd fd_;
};

TEST_P(SafeFsTest, CreatesMissingDirectoriesAndCountsThem) {
  int created = 0;
  auto d = OpenDirInRoot(fd_.get(), "a/b//c/", true, 0755, &created);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(created, 3);
  EXPECT_TRUE(IsDir(root_ + "/a/b/c"));
  EXPECT_EQ(InodeOf(d->get()), InodeOf(root_ + "/a/b/c"));
  created = 0;
  ASSERT_TRUE(OpenDirInRoot(fd_.get(), "a/b/c", true, 0755, &created).ok());
  EXPECT_EQ(created, 0);
  auto missing = OpenDirInRoot(fd_.get(), "x/y", false);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("x/y"), std::string::npos);
}

TEST_P(SafeFsTest, SymlinksAreReRootedAndDotDotStopsAtTheRoot) {
  ASSERT_EQ(::mkdir((root_ + "/real").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("/real", (root_ + "/abs").c_str()), 0);
  ASSERT_EQ(::symlink("../../../..", (root_ + "/up").c_str()), 0);
  ASSERT_EQ(::symlink(outside_.c_str(), (root_ + "/out").c_str()), 0);
  auto a = OpenDirInRoot(fd_.get(), "abs", false);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(InodeOf(a->get()), InodeOf(root_ + "/real"));
  auto u = OpenDirInRoot(fd_.get(), "up/../real/../..", false);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(InodeOf(u->get()), InodeOf(root_));
  auto o = OpenDirInRoot(fd_.get(), "out", true);
  ASSERT_FALSE(o.ok());  // outside_'s path does not exist below the root; nothing is created
  EXPECT_EQ(o.status().code(), Code::kNotFound) << o.status().ToString();
  struct stat st;
  EXPECT_NE(::lstat((root_ + outside_).c_str(), &st), 0);
  std::string name;
  auto p = layers::OpenParentInRoot(fd_.get(), "abs/new", true, &name);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(InodeOf(p->get()), InodeOf(root_ + "/real"));
}

TEST_P(SafeFsTest, NoSymlinksModeRefusesSymlinksAndDotDot) {
  ASSERT_EQ(::mkdir((root_ + "/real").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("real", (root_ + "/link").c_str()), 0);
  auto ok = OpenDirInRoot(fd_.get(), "real", false, 0755, nullptr, Resolve::kNoSymlinks);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  auto l = OpenDirInRoot(fd_.get(), "link", true, 0755, nullptr, Resolve::kNoSymlinks);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), Code::kFailedPrecondition) << l.status().ToString();
  EXPECT_NE(l.status().message().find("symbolic link"), std::string::npos);
  auto dd = OpenDirInRoot(fd_.get(), "real/..", false, 0755, nullptr, Resolve::kNoSymlinks);
  ASSERT_FALSE(dd.ok());
  EXPECT_EQ(dd.status().code(), Code::kInvalidArgument);
}

TEST_P(SafeFsTest, FileComponentIsFailedPrecondition) {
  int f = ::open((root_ + "/file").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(f, 0);
  ::close(f);
  auto d = OpenDirInRoot(fd_.get(), "file/sub", true);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kFailedPrecondition) << d.status().ToString();
}

TEST_P(SafeFsTest, OpenParentInRootSplitsTheLastComponent) {
  std::string name;
  auto p = layers::OpenParentInRoot(fd_.get(), "x/y/z/", true, &name);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(name, "z");
  EXPECT_EQ(InodeOf(p->get()), InodeOf(root_ + "/x/y"));
  for (const char* bad : {"", ".", "a/..", "/"}) {
    auto b = layers::OpenParentInRoot(fd_.get(), bad, true, &name);
    EXPECT_FALSE(b.ok()) << bad;
  }
}

TEST_P(SafeFsTest, RemoveAllAtNeverFollowsSymlinks) {
  int f = ::open((outside_ + "/keep").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(f, 0);
  ::close(f);
  ASSERT_EQ(::mkdir((root_ + "/t").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root_ + "/t/ro").c_str(), 0500), 0);
  ASSERT_EQ(::symlink(outside_.c_str(), (root_ + "/t/out").c_str()), 0);
  ASSERT_EQ(::symlink(outside_.c_str(), (root_ + "/direct").c_str()), 0);
  ASSERT_TRUE(layers::RemoveAllAt(fd_.get(), "t").ok());
  ASSERT_TRUE(layers::RemoveAllAt(fd_.get(), "direct").ok());
  ASSERT_TRUE(layers::RemoveAllAt(fd_.get(), "missing").ok());
  struct stat st;
  EXPECT_NE(::lstat((root_ + "/t").c_str(), &st), 0);
  EXPECT_NE(::lstat((root_ + "/direct").c_str(), &st), 0);
  EXPECT_EQ(::lstat((outside_ + "/keep").c_str(), &st), 0);
}

TEST_P(SafeFsTest, ListDirAtGivesNamesAndTypes) {
  ASSERT_EQ(::mkdir((root_ + "/d").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("d", (root_ + "/l").c_str()), 0);
  std::vector<unsigned char> types;
  auto names = layers::ListDirAt(fd_.get(), &types);
  ASSERT_TRUE(names.ok());
  ASSERT_EQ(names->size(), 2u);
  for (size_t i = 0; i < names->size(); ++i) {
    EXPECT_EQ(types[i], (*names)[i] == "d" ? DT_DIR : DT_LNK) << (*names)[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Resolution, SafeFsTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Emulated" : "Openat2"; });

}  // namespace
}  // namespace imgstore::testing
