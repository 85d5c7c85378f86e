// A full disk during `imgstore unpack`, on real file systems: a small tmpfs mounted for the test
// holds the destination, or the whole store. The unpack fails with one error line that says the
// disk is full, removes its destination and its staging directory, leaves the layer uncached,
// and `check` is clean; once there is room, the same unpack succeeds. Needs root (mount).
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
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

// A tmpfs of `bytes` mounted at a new directory, unmounted when the object goes.
class SmallDisk {
 public:
  SmallDisk(const std::string& path, size_t bytes) : path_(path) {
    ::mkdir(path.c_str(), 0755);
    const std::string opts = "size=" + std::to_string(bytes);
    mounted_ = ::mount("tmpfs", path.c_str(), "tmpfs", 0, opts.c_str()) == 0;
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

// Three files of 2 MiB of random-looking bytes (gzip keeps them big): 6 MiB unpacked.
std::string BigTar() {
  TarBuilder b;
  b.Dir("data");
  for (int i = 0; i < 3; ++i) {
    std::string bytes(2 << 20, '\0');
    uint32_t x = 2463534242u + static_cast<uint32_t>(i);
    for (char& c : bytes) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      c = static_cast<char>(x);
    }
    b.File("data/f" + std::to_string(i), bytes);
  }
  return b.Finish();
}

// No layer directory and no staging directory under ROOT/layers.
void ExpectNoLayerDirs(const std::string& root) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root + "/layers", ec)) {
    ADD_FAILURE() << "left in layers/: " << e.path();
  }
}

void ExpectFullDiskError(const CliResult& r) {
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("imgstore: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
}

class UnpackFullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mounts a tmpfs: needs root";
    TestImage image = ImageOfLayers({BigTar()}, LayerCompression::kGzip, "full-disk");
    WriteOciLayout(image, dir_.Sub("layout"), "v1");
  }

  void Pull(const std::string& root) {
    CliResult r =
        RunImgstore(root, {"pull", "-q", "oci:" + dir_.Sub("layout") + ":v1", "--name", "img"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }

  void ExpectClean(const std::string& root) {
    CliResult check = RunImgstore(root, {"check"});
    EXPECT_EQ(check.exit_code, 0) << check.Describe();
  }

  TempDir dir_;
};

TEST_F(UnpackFullDiskTest, DestinationOnAFullDisk) {
  const std::string root = dir_.Sub("store");
  Pull(root);
  SmallDisk disk(dir_.Sub("small"), 3 << 20);
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  const std::string dest = dir_.Sub("small") + "/rootfs";

  CliResult r = RunImgstore(root, {"unpack", "img", dest});
  ExpectFullDiskError(r);
  EXPECT_FALSE(Exists(dest)) << "the destination was left behind";
  ExpectNoLayerDirs(root);
  ExpectClean(root);

  // With room, the same unpack succeeds (and caches the layer).
  CliResult ok = RunImgstore(root, {"unpack", "img", dir_.Sub("rootfs")});
  ASSERT_EQ(ok.exit_code, 0) << ok.Describe();
  EXPECT_EQ(ReadFile(dir_.Sub("rootfs") + "/data/f2").size(), size_t{2} << 20);
  ExpectClean(root);
}

TEST_F(UnpackFullDiskTest, LayerCacheOnAFullDisk) {
  // The store fits (the blobs are ~6 MiB); the unpacked layer does not.
  SmallDisk disk(dir_.Sub("small"), 9 << 20);
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  const std::string root = dir_.Sub("small") + "/store";
  Pull(root);
  const std::string dest = dir_.Sub("rootfs");

  CliResult r = RunImgstore(root, {"unpack", "img", dest});
  ExpectFullDiskError(r);
  EXPECT_FALSE(Exists(dest)) << "the destination was left behind";
  ExpectNoLayerDirs(root);
  ExpectClean(root);

  // Without the cache, the destination (on the big disk) gets the tree.
  CliResult ok = RunImgstore(root, {"unpack", "--no-cache", "img", dest});
  ASSERT_EQ(ok.exit_code, 0) << ok.Describe();
  EXPECT_EQ(ReadFile(dest + "/data/f0").size(), size_t{2} << 20);
  ExpectClean(root);
}

}  // namespace
}  // namespace imgstore::testing
