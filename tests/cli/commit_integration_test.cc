// `imgstore commit` as a whole process: mount an image, change files through the mount (add,
// modify, delete, an opaque directory), commit, unpack the new image: the changes are there;
// `commit DIR NEW --base IMAGE`; the committed image pushed to an OCI layout is readable by
// skopeo; and the failures (unknown mount, unknown base) are one error line, exit 1.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "common/cli_runner.h"
#include "common/fs_tree.h"
#include "common/layer_image.h"
#include "common/tar_builder.h"
#include "common/temp_dir.h"
#include "common/test_image.h"

namespace imgstore::testing {
namespace {

// path → "type mode uid:gid content-or-target" of everything below dir.
FsTree ReadTree(const std::string& dir) { return SnapshotTree(dir); }

class CommitCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestImage image =
        ImageOfLayers(SmallRootfsLayers(), LayerCompression::kGzip, "commit-base", true);
    WriteOciLayout(image, tmp_.Sub("layout"), "v1");
    CliResult r =
        RunImgstore(Root(), {"pull", "oci:" + tmp_.Sub("layout") + ":v1", "--name", "base"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }

  std::string Root() const { return tmp_.Sub("root"); }

  // Adds, modifies, deletes, and replaces everything in var/cache (an opaque directory in an
  // overlay upper dir: rmdir and mkdir again).
  void Change(const std::string& root) {
    WriteFile(root + "/new-file", "new");
    WriteFile(root + "/etc/motd", "changed\n");
    ASSERT_EQ(::unlink((root + "/etc/hosts").c_str()), 0);
    for (const char* f : {"/var/cache/a", "/var/cache/b"}) {
      ASSERT_EQ(::unlink((root + f).c_str()), 0);
    }
    ASSERT_EQ(::rmdir((root + "/var/cache").c_str()), 0);
    ASSERT_EQ(::mkdir((root + "/var/cache").c_str(), 0700), 0);
    WriteFile(root + "/var/cache/fresh", "fresh");
  }

  void ExpectChanged(const FsTree& tree) {
    EXPECT_EQ(tree.count("etc/hosts"), 0u);
    EXPECT_EQ(tree.count("var/cache/a"), 0u);
    EXPECT_EQ(tree.count("var/cache/b"), 0u);
    ASSERT_EQ(tree.count("var/cache/fresh"), 1u);
    EXPECT_TRUE(tree.at("var/cache/fresh").ends_with(" fresh"));
    EXPECT_TRUE(tree.at("var/cache").starts_with("dir 0700 "));
    EXPECT_TRUE(tree.at("etc/motd").ends_with(" changed\n"));
    EXPECT_TRUE(tree.at("new-file").ends_with(" new"));
    EXPECT_TRUE(tree.at("etc/passwd").ends_with(" root:x:0:0\n"));  // unchanged, from the base
  }

  void ExpectCheckClean() {
    CliResult r = RunImgstore(Root(), {"check", "--verify-content"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
  }

  TempDir tmp_;
};

TEST_F(CommitCliTest, MountChangeCommitUnpack) {
  for (const std::string type : {"overlay", "copy"}) {
    SCOPED_TRACE(type);
    const std::string name = "m-" + type;
    CliResult m = RunImgstore(Root(), {"mount", "base", "--name", name, "--type", type});
    if (m.exit_code != 0 && type == "overlay" && m.err.find("not supported") != std::string::npos) {
      std::printf("overlay not available, only the copy mount is tested: %s", m.err.c_str());
      continue;
    }
    ASSERT_EQ(m.exit_code, 0) << m.Describe();
    std::string path = m.out;
    while (!path.empty() && path.back() == '\n') path.pop_back();
    Change(path);
    const auto want = ReadTree(path);

    CliResult c = RunImgstore(Root(), {"commit", name, "new-" + type + ":v1", "-m", "changes"});
    ASSERT_EQ(c.exit_code, 0) << c.Describe();
    ASSERT_EQ(c.out.size(), 72u) << c.out;  // "sha256:" + 64 hex + "\n"
    EXPECT_TRUE(c.out.starts_with("sha256:")) << c.out;

    const std::string dir = tmp_.Sub("unpacked-" + type);
    CliResult u = RunImgstore(Root(), {"unpack", "new-" + type + ":v1", dir});
    ASSERT_EQ(u.exit_code, 0) << u.Describe();
    const auto got = ReadTree(dir);
    ExpectChanged(got);
    EXPECT_EQ(got, want);

    // The new image's id is what commit printed; it has one more layer.
    CliResult inspect = RunImgstore(Root(), {"inspect", "new-" + type + ":v1"});
    ASSERT_EQ(inspect.exit_code, 0) << inspect.Describe();
    EXPECT_NE(inspect.out.find(c.out.substr(0, 71)), std::string::npos);
    ASSERT_EQ(RunImgstore(Root(), {"umount", name}).exit_code, 0);
  }
  ExpectCheckClean();
}

TEST_F(CommitCliTest, DirectoryWithBase) {
  const std::string work = tmp_.Sub("work");
  ASSERT_EQ(RunImgstore(Root(), {"unpack", "base", work}).exit_code, 0);
  Change(work);
  CliResult c = RunImgstore(Root(), {"commit", work, "fromdir", "--base", "base", "--compression",
                                     "zstd", "--format", "json"});
  ASSERT_EQ(c.exit_code, 0) << c.Describe();
  EXPECT_NE(c.out.find("\"diff_id\""), std::string::npos) << c.out;
  const std::string dir = tmp_.Sub("again");
  ASSERT_EQ(RunImgstore(Root(), {"unpack", "fromdir", dir}).exit_code, 0);
  const auto got = ReadTree(dir);
  ExpectChanged(got);
  EXPECT_EQ(got, ReadTree(work));
  // zstd on a Docker base: the new manifest is OCI.
  CliResult inspect = RunImgstore(Root(), {"inspect", "fromdir"});
  ASSERT_EQ(inspect.exit_code, 0);
  EXPECT_NE(inspect.out.find("application/vnd.oci.image.layer.v1.tar+zstd"), std::string::npos)
      << inspect.out;
  ExpectCheckClean();
}

TEST_F(CommitCliTest, SkopeoReadsThePushedImage) {
  if (::access("/usr/bin/skopeo", X_OK) != 0) GTEST_SKIP() << "skopeo is not installed";
  // An OCI base (skopeo's oci: transport lists only OCI manifests in a layout's index).
  TestImage oci = ImageOfLayers({TarBuilder().Dir("etc").File("etc/motd", "hi\n").Finish()},
                                LayerCompression::kGzip, "oci-base");
  WriteOciLayout(oci, tmp_.Sub("oci-layout"), "v1");
  ASSERT_EQ(
      RunImgstore(Root(), {"pull", "oci:" + tmp_.Sub("oci-layout") + ":v1", "--name", "oci-base"})
          .exit_code,
      0);
  const std::string work = tmp_.Sub("work");
  ASSERT_EQ(RunImgstore(Root(), {"unpack", "oci-base", work}).exit_code, 0);
  WriteFile(work + "/etc/motd", "changed\n");
  WriteFile(work + "/added", "added");
  CliResult c = RunImgstore(Root(), {"commit", work, "pushed", "--base", "oci-base"});
  ASSERT_EQ(c.exit_code, 0) << c.Describe();
  CliResult p = RunImgstore(Root(), {"push", "pushed", "oci:" + tmp_.Sub("out") + ":v1"});
  ASSERT_EQ(p.exit_code, 0) << p.Describe();
  // skopeo copies it out (checking every digest) to another layout.
  CliResult s = RunProgram("/usr/bin/skopeo", {"copy", "oci:" + tmp_.Sub("out") + ":v1",
                                               "oci:" + tmp_.Sub("copy") + ":v1"});
  ASSERT_EQ(s.exit_code, 0) << s.Describe();
  CliResult i = RunProgram("/usr/bin/skopeo", {"inspect", "oci:" + tmp_.Sub("copy") + ":v1"});
  ASSERT_EQ(i.exit_code, 0) << i.Describe();
  EXPECT_NE(i.out.find("\"Layers\""), std::string::npos);
  // And the copy pulled into a fresh store unpacks to the changed tree.
  const std::string root2 = tmp_.Sub("root2");
  ASSERT_EQ(
      RunImgstore(root2, {"pull", "oci:" + tmp_.Sub("copy") + ":v1", "--name", "x"}).exit_code, 0);
  ASSERT_EQ(RunImgstore(root2, {"unpack", "x", tmp_.Sub("x")}).exit_code, 0);
  EXPECT_EQ(ReadTree(tmp_.Sub("x")), ReadTree(work));
}

TEST_F(CommitCliTest, Failures) {
  CliResult r = RunImgstore(Root(), {"commit", "no-such-mount", "x"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("no-such-mount"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.out, "");

  r = RunImgstore(Root(), {"commit", tmp_.path(), "x", "--base", "nope:1"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  r = RunImgstore(Root(), {"commit", tmp_.path(), "x", "--base", "base", "--compression", "xz"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  ExpectCheckClean();
}

}  // namespace
}  // namespace imgstore::testing
