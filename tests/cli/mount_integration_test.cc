// `imgstore mount`, `mounts` and `umount` as whole processes: mount prints the mount point (which
// shows the image's tree), mounts lists it (table and JSON), umount removes it by name or path;
// errors (unknown image, a name in use, an unknown mount, a bad type) are one line and exit 1.
// Also reports how long a second mount of an image whose layers are cached takes (no assertion:
// docs/performance.md records the figure).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
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

// One error line on stderr, nothing on stdout, exit 1.
void ExpectOneErrorLine(const CliResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(r.out, "");
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
  EXPECT_TRUE(r.err.starts_with("imgstore: error: ")) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

class MountCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base =
        TarBuilder().Dir("etc").File("etc/hostname", "base\n").File("etc/gone", "x\n").Finish();
    std::string top = TarBuilder().Whiteout("etc/gone").File("app", "app\n").Finish();
    WriteOciLayout(ImageOfLayers({base, top}), layout_.path(), "v1");
    CliResult r = RunImgstore(
        root_.path(), {"pull", "oci:" + layout_.path() + ":v1", "--name", "example.com/app:v1"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }
  void TearDown() override {
    // Never leave a mount in the temporary directory.
    CliResult r = RunImgstore(root_.path(), {"mounts", "--format", "json"});
    if (r.exit_code != 0) return;
    nlohmann::json all = nlohmann::json::parse(r.out, nullptr, false);
    if (!all.is_array()) return;
    for (const auto& m : all) RunImgstore(root_.path(), {"umount", m["name"].get<std::string>()});
  }

  TempDir root_;
  TempDir layout_;
};

TEST_F(MountCliTest, MountPrintsThePathMountsListsItUmountRemovesIt) {
  CliResult r = RunImgstore(root_.path(), {"mount", "example.com/app:v1", "--name", "web"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const std::string path = root_.path() + "/mounts/web/merged";
  EXPECT_EQ(r.out, path + "\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(ReadFile(path + "/etc/hostname"), "base\n");
  EXPECT_EQ(ReadFile(path + "/app"), "app\n");
  EXPECT_FALSE(Exists(path + "/etc/gone"));

  r = RunImgstore(root_.path(), {"mounts"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(r.out.starts_with("NAME ")) << r.out;
  EXPECT_NE(r.out.find("web "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("example.com/app:v1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(path), std::string::npos) << r.out;

  r = RunImgstore(root_.path(), {"mounts", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  nlohmann::json all = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(all.is_array()) << r.out;
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["name"], "web");
  EXPECT_EQ(all[0]["path"], path);
  EXPECT_EQ(all[0]["image_name"], "example.com/app:v1");
  EXPECT_EQ(all[0]["mounted"], true);
  EXPECT_EQ(all[0]["layers"].size(), 2u);
  const std::string type = all[0]["type"];
  EXPECT_TRUE(type == "overlay" || type == "copy") << type;
  if (::geteuid() == 0) {
    EXPECT_EQ(type, "overlay") << "root on a kernel with overlayfs";
  }
  EXPECT_EQ(all[0]["upper_dir"], type == "overlay" ? root_.path() + "/mounts/web/upper" : "");

  r = RunImgstore(root_.path(), {"check"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();

  r = RunImgstore(root_.path(), {"umount", "web"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(Exists(root_.path() + "/mounts/web"));
  r = RunImgstore(root_.path(), {"mounts", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(nlohmann::json::parse(r.out, nullptr, false), nlohmann::json::array()) << r.out;
  r = RunImgstore(root_.path(), {"check"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
}

TEST_F(MountCliTest, UmountByPathAndACopyMount) {
  CliResult r = RunImgstore(root_.path(), {"mount", "example.com/app:v1", "--type", "copy"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_FALSE(r.out.empty());
  const std::string path = r.out.substr(0, r.out.size() - 1);
  EXPECT_TRUE(path.starts_with(root_.path() + "/mounts/app-")) << path;
  EXPECT_EQ(ReadFile(path + "/app"), "app\n");
  r = RunImgstore(root_.path(), {"mounts", "--format", "json"});
  nlohmann::json all = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(all.is_array() && all.size() == 1u) << r.out;
  EXPECT_EQ(all[0]["type"], "copy");

  r = RunImgstore(root_.path(), {"umount", path});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_FALSE(Exists(path));
}

TEST_F(MountCliTest, ErrorsAreOneLineAndExitOne) {
  ExpectOneErrorLine(RunImgstore(root_.path(), {"mount", "example.com/nope:v1"}),
                     "image not known: example.com/nope:v1");

  CliResult r = RunImgstore(root_.path(), {"mount", "example.com/app:v1", "--name", "dup"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ExpectOneErrorLine(RunImgstore(root_.path(), {"mount", "example.com/app:v1", "--name", "dup"}),
                     "already exists");

  ExpectOneErrorLine(RunImgstore(root_.path(), {"umount", "nothing"}), "mount not known: nothing");
  ExpectOneErrorLine(RunImgstore(root_.path(), {"mount", "example.com/app:v1", "--name", "a/b"}),
                     "not valid");

  // A usage error: exit 2.
  r = RunImgstore(root_.path(), {"mount", "example.com/app:v1", "--type", "bind"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  r = RunImgstore(root_.path(), {"umount"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();

  // Without a store, nothing is created.
  TempDir empty;
  const std::string none = empty.Sub("none");
  ExpectOneErrorLine(RunImgstore(none, {"mount", "x"}), "image not known: x");
  ExpectOneErrorLine(RunImgstore(none, {"umount", "x"}), "mount not known: x");
  r = RunImgstore(none, {"mounts"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_FALSE(Exists(none));
}

TEST_F(MountCliTest, ASecondMountOfCachedLayersIsReported) {
  auto timed = [&](const std::string& name) {
    auto start = std::chrono::steady_clock::now();
    CliResult r = RunImgstore(root_.path(), {"mount", "example.com/app:v1", "--name", name});
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    return ms.count();
  };
  double first = timed("first");
  double second = timed("second");
  std::printf(
      "[ timing ] mount with extraction: %.1f ms; second mount (layers cached): %.1f ms "
      "(whole imgstore process)\n",
      first, second);
  EXPECT_EQ(ReadFile(root_.path() + "/mounts/second/merged/app"), "app\n");
}

}  // namespace
}  // namespace imgstore::testing
