// Tests of layers/overlay_mount.h against the real kernel: a writable mount of two lower dirs,
// 200 lower dirs with long paths (beyond mount(2)'s page-sized option string), the mount(2)
// fallback and its bound, a busy unmount, and the errors. Needs root; skipped otherwise.
#include "layers/overlay_mount.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/fs_tree.h"
#include "common/temp_dir.h"

namespace imgstore::layers {
namespace {

using imgstore::testing::TempDir;

using imgstore::testing::Exists;
using imgstore::testing::ReadFile;
using imgstore::testing::WriteFile;

void MakeDir(const std::string& path) { ASSERT_EQ(::mkdir(path.c_str(), 0755), 0) << path; }

// Unmounts at the end of a test whatever happened, so that TempDir never removes files through
// a live mount.
class MountGuard {
 public:
  explicit MountGuard(std::string target) : target_(std::move(target)) {}
  ~MountGuard() { (void)UnmountOverlay(target_); }

 private:
  std::string target_;
};

class OverlayMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "overlay mounts need root";
    Status s = OverlaySupported(dir_.path());
    if (!s.ok()) GTEST_SKIP() << "overlay not available here: " << s.ToString();
  }
  void TearDown() override { SetForceLegacyOverlayMountForTesting(false); }

  TempDir dir_;
};

TEST_F(OverlayMountTest, TwoLowerDirsAndAnUpperDir) {
  const std::string base = dir_.Sub("base"), top = dir_.Sub("top"), upper = dir_.Sub("upper"),
                    work = dir_.Sub("work"), merged = dir_.Sub("merged");
  for (const std::string& d : {base, top, upper, work, merged}) MakeDir(d);
  WriteFile(base + "/a", "base a");
  WriteFile(base + "/b", "base b");
  WriteFile(top + "/b", "top b");
  WriteFile(top + "/c", "top c");

  EXPECT_FALSE(IsMountPoint(merged));
  ASSERT_TRUE(MountOverlay({{top, base}, upper, work, merged}).ok());
  MountGuard guard(merged);
  EXPECT_TRUE(IsMountPoint(merged));

  EXPECT_EQ(ReadFile(merged + "/a"), "base a");
  EXPECT_EQ(ReadFile(merged + "/b"), "top b") << "the first lower dir is the nearest";
  EXPECT_EQ(ReadFile(merged + "/c"), "top c");

  WriteFile(merged + "/a", "changed a");
  WriteFile(merged + "/new", "new file");
  ASSERT_EQ(::unlink((merged + "/c").c_str()), 0);
  EXPECT_EQ(ReadFile(merged + "/a"), "changed a");
  EXPECT_FALSE(Exists(merged + "/c"));

  // The writes are in the upper dir; the lower dirs are untouched.
  EXPECT_EQ(ReadFile(upper + "/a"), "changed a");
  EXPECT_EQ(ReadFile(upper + "/new"), "new file");
  EXPECT_EQ(ReadFile(base + "/a"), "base a");
  EXPECT_EQ(ReadFile(top + "/c"), "top c");
  EXPECT_FALSE(Exists(base + "/new"));

  ASSERT_TRUE(UnmountOverlay(merged).ok());
  EXPECT_FALSE(IsMountPoint(merged));
  EXPECT_FALSE(Exists(merged + "/a"));
  // Unmounting what is not mounted is fine.
  EXPECT_TRUE(UnmountOverlay(merged).ok());
}

TEST_F(OverlayMountTest, ReadOnlyWithoutUpperDir) {
  const std::string lower = dir_.Sub("lower"), lower2 = dir_.Sub("lower2"),
                    merged = dir_.Sub("merged");
  MakeDir(lower);
  MakeDir(lower2);
  MakeDir(merged);
  WriteFile(lower + "/f", "x");
  // overlayfs wants two lower dirs when there is no upper dir: a clear error, not EINVAL.
  Status s0 = MountOverlay({{lower}, "", "", merged});
  EXPECT_EQ(s0.code(), Code::kInvalidArgument) << s0.ToString();
  EXPECT_NE(s0.message().find("2 lower dirs"), std::string::npos) << s0.message();
  s0 = MountOverlay({{lower, lower2}, "", "", merged});
  ASSERT_TRUE(s0.ok()) << s0.ToString();
  MountGuard guard(merged);
  EXPECT_EQ(ReadFile(merged + "/f"), "x");
  int fd = ::open((merged + "/g").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  int err = errno;
  if (fd >= 0) ::close(fd);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(err, EROFS);
}

// 200 layers whose paths are ~120 bytes each: ~24 KB of lowerdir option, six times a page.
std::vector<std::string> ManyLowerDirs(const TempDir& dir, int count) {
  const std::string parent =
      dir.Sub("a-rather-long-directory-name-so-that-the-paths-of-the-layers-add-up-fast");
  EXPECT_EQ(::mkdir(parent.c_str(), 0755), 0);
  std::vector<std::string> lowers;  // nearest first
  for (int i = count - 1; i >= 0; --i) {
    std::string d = parent + "/layer-" + std::to_string(i) + "-padding-padding-padding";
    EXPECT_EQ(::mkdir(d.c_str(), 0755), 0);
    WriteFile(d + "/file-" + std::to_string(i), std::to_string(i));
    WriteFile(d + "/shared", std::to_string(i));
    lowers.push_back(d);
  }
  return lowers;
}

TEST_F(OverlayMountTest, TwoHundredLowerDirsBeyondThePageSize) {
  std::vector<std::string> lowers = ManyLowerDirs(dir_, 200);
  size_t bytes = 0;
  for (const std::string& l : lowers) bytes += l.size() + 1;
  ASSERT_GT(bytes, static_cast<size_t>(::sysconf(_SC_PAGESIZE)));

  const std::string upper = dir_.Sub("upper"), work = dir_.Sub("work"), merged = dir_.Sub("m");
  for (const std::string& d : {upper, work, merged}) MakeDir(d);
  Status s = MountOverlay({lowers, upper, work, merged});
  ASSERT_TRUE(s.ok()) << s.ToString();
  MountGuard guard(merged);
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(ReadFile(merged + "/file-" + std::to_string(i)), std::to_string(i)) << i;
  }
  EXPECT_EQ(ReadFile(merged + "/shared"), "199") << "the top layer wins";
  WriteFile(merged + "/written", "w");
  EXPECT_EQ(ReadFile(upper + "/written"), "w");
}

TEST_F(OverlayMountTest, MountTwoFallbackWorksAndRefusesAnOptionStringBeyondAPage) {
  SetForceLegacyOverlayMountForTesting(true);
  const std::string a = dir_.Sub("a"), b = dir_.Sub("b"), upper = dir_.Sub("upper"),
                    work = dir_.Sub("work"), merged = dir_.Sub("merged");
  for (const std::string& d : {a, b, upper, work, merged}) MakeDir(d);
  WriteFile(a + "/x", "a");
  WriteFile(b + "/x", "b");
  Status s = MountOverlay({{a, b}, upper, work, merged});
  ASSERT_TRUE(s.ok()) << s.ToString();
  {
    MountGuard guard(merged);
    EXPECT_EQ(ReadFile(merged + "/x"), "a");
  }
  EXPECT_FALSE(IsMountPoint(merged));

  std::vector<std::string> lowers = ManyLowerDirs(dir_, 200);
  s = MountOverlay({lowers, upper, work, merged});
  MountGuard guard(merged);
  EXPECT_EQ(s.code(), Code::kUnsupported) << s.ToString();
  EXPECT_NE(s.message().find("200 lower dirs"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("lowerdir+"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  EXPECT_FALSE(IsMountPoint(merged));
}

TEST_F(OverlayMountTest, ABusyMountIsDetached) {
  const std::string lower = dir_.Sub("lower"), upper = dir_.Sub("upper"), work = dir_.Sub("work"),
                    merged = dir_.Sub("merged");
  for (const std::string& d : {lower, upper, work, merged}) MakeDir(d);
  ASSERT_TRUE(MountOverlay({{lower}, upper, work, merged}).ok());
  MountGuard guard(merged);
  int fd = ::open((merged + "/open-file").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  // An open file makes umount fail with EBUSY: the fallback detaches it.
  Status s = UnmountOverlay(merged);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(IsMountPoint(merged));
  EXPECT_EQ(::write(fd, "x", 1), 1) << "the detached mount stays usable for its users";
  ::close(fd);
}

TEST_F(OverlayMountTest, AMissingLowerDirIsNamed) {
  const std::string lower = dir_.Sub("lower"), merged = dir_.Sub("merged");
  MakeDir(lower);
  MakeDir(merged);
  MakeDir(dir_.Sub("upper"));
  MakeDir(dir_.Sub("work"));
  const std::string missing = dir_.Sub("no-such-layer");
  Status s = MountOverlay({{lower, missing}, dir_.Sub("upper"), dir_.Sub("work"), merged});
  EXPECT_EQ(s.code(), Code::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find(missing), std::string::npos) << s.message();
  EXPECT_FALSE(IsMountPoint(merged));
}

TEST_F(OverlayMountTest, ATargetThatIsNotADirectoryIsRefused) {
  const std::string lower = dir_.Sub("lower"), target = dir_.Sub("file");
  MakeDir(lower);
  MakeDir(dir_.Sub("u"));
  MakeDir(dir_.Sub("w"));
  WriteFile(target, "not a dir");
  Status s = MountOverlay({{lower}, dir_.Sub("u"), dir_.Sub("w"), target});
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find(target), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("not a directory"), std::string::npos) << s.message();
  EXPECT_FALSE(IsMountPoint(target));
}

TEST_F(OverlayMountTest, BadSpecsAreRefused) {
  const std::string lower = dir_.Sub("lower"), upper = dir_.Sub("upper"), m = dir_.Sub("m");
  for (const std::string& d : {lower, upper, m}) MakeDir(d);
  EXPECT_EQ(MountOverlay({{}, "", "", m}).code(), Code::kInvalidArgument);
  EXPECT_EQ(MountOverlay({{lower}, upper, "", m}).code(), Code::kInvalidArgument)
      << "an upper dir needs a work dir";
  EXPECT_EQ(MountOverlay({{lower, lower}, "", "", dir_.Sub("absent")}).code(), Code::kNotFound);
  EXPECT_FALSE(IsMountPoint(m));
}

TEST_F(OverlayMountTest, WithoutPrivilegeItIsPermissionDenied) {
  const std::string lower = dir_.Sub("lower"), upper = dir_.Sub("upper"), work = dir_.Sub("work"),
                    merged = dir_.Sub("merged");
  for (const std::string& d : {lower, upper, work, merged}) MakeDir(d);
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(3);
    Status s = MountOverlay({{lower}, upper, work, merged});
    if (s.ok()) {
      (void)UnmountOverlay(merged);
      _exit(4);
    }
    _exit(s.code() == Code::kPermissionDenied && s.message().find("root") != std::string::npos ? 0
                                                                                               : 5);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "3: could not drop privileges, 4: mounted, 5: wrong error";
  EXPECT_FALSE(IsMountPoint(merged));
}

TEST(IsMountPointTest, PlainDirectoriesAndMissingPathsAreNot) {
  TempDir dir;
  EXPECT_FALSE(IsMountPoint(dir.path()));
  EXPECT_FALSE(IsMountPoint(dir.Sub("absent")));
  EXPECT_TRUE(IsMountPoint("/proc"));
}

}  // namespace
}  // namespace imgstore::layers
