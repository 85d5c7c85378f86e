// imgstore::Limits through the public API: SetLimit's names, units and refusals; Store::Open
// refusing a bound out of its range; and each kind of bound set on a Store stopping the
// operation it guards (pull: manifest and config; inspect; unpack and mount: tar bytes, path
// length, ratio; the ratio also in a pull that verifies diffIDs) with an error that names it,
// leaving the store as it was, while the same store with the defaults succeeds.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/tar_builder.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "imgstore/parse.hpp"
#include "imgstore/store.hpp"

namespace imgstore {
namespace {

using imgstore::testing::LayerCompression;
using imgstore::testing::MakeTestImage;
using imgstore::testing::TempDir;
using imgstore::testing::TestImage;
using imgstore::testing::TestImageSpec;
using imgstore::testing::WriteOciLayout;

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(SetLimitTest, NamesUnitsAndValues) {
  Limits l;
  ASSERT_TRUE(SetLimit("max_manifest_bytes=16MiB", &l).ok());
  EXPECT_EQ(l.max_manifest_bytes, 16u << 20);
  ASSERT_TRUE(SetLimit("max_tar_bytes=2T", &l).ok());
  EXPECT_EQ(l.max_tar_bytes, 2ull << 40);
  ASSERT_TRUE(SetLimit("max_xattr_bytes=64K", &l).ok());
  EXPECT_EQ(l.max_xattr_bytes, 64u << 10);
  ASSERT_TRUE(SetLimit("max_config_bytes=3GiB", &l).ok());
  EXPECT_EQ(l.max_config_bytes, 3ull << 30);
  ASSERT_TRUE(SetLimit("max_entries=12", &l).ok());
  EXPECT_EQ(l.max_entries, 12u);
  ASSERT_TRUE(SetLimit("max_ratio=0", &l).ok());  // 0: no bound
  EXPECT_EQ(l.max_ratio, 0u);
  ASSERT_TRUE(SetLimit("zstd_max_window_log=31", &l).ok());
  EXPECT_EQ(l.zstd_max_window_log, 31u);

  // Every name LimitNames lists is taken; an unknown one lists them.
  for (std::string_view n : LimitNames()) {
    Limits each;
    EXPECT_TRUE(SetLimit(std::string(n) + "=20", &each).ok()) << n;
  }
  Status unknown = SetLimit("max_bogus=1", &l);
  EXPECT_EQ(unknown.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(unknown.message(), "unknown limit \"max_bogus\"")) << unknown.message();
  EXPECT_TRUE(Contains(unknown.message(), "max_tar_bytes")) << unknown.message();
}

TEST(SetLimitTest, BadInputIsRefusedAndChangesNothing) {
  const Limits before;
  struct Case {
    const char* text;
    const char* says;
  } cases[] = {
      {"max_tar_bytes", "expected NAME=VALUE"},
      {"max_tar_bytes=", "is not a whole number"},
      {"max_tar_bytes=-1", "is not a whole number"},
      {"max_tar_bytes=1.5G", "is not a whole number"},
      {"max_tar_bytes=12Q", "unknown unit \"Q\""},
      {"max_tar_bytes=1Gb", "unknown unit \"Gb\""},
      {"max_tar_bytes=99999999999999999999", "too large"},
      {"max_tar_bytes=20000000T", "too large"},
      {"max_ratio=1K", "takes a plain number"},
      {"max_manifest_bytes=0", "must be positive"},
      {"max_nesting_depth=0", "must be positive"},
      {"max_nesting_depth=4294967296", "at most"},
      {"zstd_max_window_log=32", "at most 31"},
      {"zstd_max_window_log=9", "at least 10"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    Limits l;
    Status s = SetLimit(c.text, &l);
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    EXPECT_TRUE(Contains(s.message(), c.says)) << s.message();
    EXPECT_EQ(l.max_tar_bytes, before.max_tar_bytes);
    EXPECT_EQ(l.max_ratio, before.max_ratio);
    EXPECT_EQ(l.max_manifest_bytes, before.max_manifest_bytes);
    EXPECT_EQ(l.zstd_max_window_log, before.zstd_max_window_log);
  }
}

class StoreLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestImageSpec spec;
    spec.seed = 404;
    spec.layers = 2;
    spec.layer_bytes = 64 << 10;
    image_ = MakeTestImage(spec);
    WriteOciLayout(image_, dir_.Sub("layout"), "v1");
    source_ = "oci:" + dir_.Sub("layout") + ":v1";
  }

  std::unique_ptr<Store> Open(const Limits& limits) {
    StoreOptions options;
    options.limits = limits;
    Result<std::unique_ptr<Store>> s = Store::Open(dir_.Sub("root"), options);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Pulls the image with the default limits, then returns a store with `limits`.
  std::unique_ptr<Store> PulledThenOpen(const Limits& limits) {
    std::unique_ptr<Store> plain = Open(Limits{});
    if (plain == nullptr) return nullptr;
    PullOptions po;
    po.names = {"example.com/app:1"};
    Result<PullResult> r = plain->Pull(source_, po);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return Open(limits);
  }

  TempDir dir_;
  TestImage image_;
  std::string source_;
};

TEST_F(StoreLimitsTest, OpenRefusesABoundOutOfRange) {
  Limits l;
  l.zstd_max_window_log = 40;
  StoreOptions options;
  options.limits = l;
  Result<std::unique_ptr<Store>> s = Store::Open(dir_.Sub("root"), options);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(s.status().message(), "zstd_max_window_log")) << s.status().message();
}

TEST_F(StoreLimitsTest, APullOverAManifestOrConfigBoundFailsNamingItAndStoresNothing) {
  for (const char* limit : {"max_manifest_bytes", "max_config_bytes"}) {
    SCOPED_TRACE(limit);
    Limits l;
    ASSERT_TRUE(SetLimit(std::string(limit) + "=100", &l).ok());
    std::unique_ptr<Store> store = Open(l);
    ASSERT_NE(store, nullptr);
    Result<PullResult> r = store->Pull(source_, {});
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(Contains(r.status().message(), limit)) << r.status().message();
    Result<std::vector<ImageSummary>> list = store->List();
    ASSERT_TRUE(list.ok());
    EXPECT_TRUE(list->empty());
  }
  // The same store with the defaults pulls it.
  std::unique_ptr<Store> store = Open(Limits{});
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Pull(source_, {}).ok());
}

TEST_F(StoreLimitsTest, InspectOfAManifestOverTheStoresBoundNamesIt) {
  Limits l;
  l.max_manifest_bytes = 100;
  std::unique_ptr<Store> store = PulledThenOpen(l);
  ASSERT_NE(store, nullptr);
  Result<ImageDetails> d = store->Inspect("example.com/app:1");
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(Contains(d.status().message(), "raise the limit max_manifest_bytes"))
      << d.status().message();
}

TEST_F(StoreLimitsTest, UnpackAndMountOverALayerBoundFailNamingItAndWriteNothing) {
  struct Case {
    const char* set;
    const char* says;
  } cases[] = {
      {"max_tar_bytes=16K", "max_tar_bytes"},
      {"max_path_bytes=3", "max_path_bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.set);
    Limits l;
    ASSERT_TRUE(SetLimit(c.set, &l).ok());
    std::unique_ptr<Store> store = PulledThenOpen(l);
    ASSERT_NE(store, nullptr);
    const std::string dest = dir_.Sub("rootfs");
    Result<UnpackResult> u = store->Unpack("example.com/app:1", dest, {});
    ASSERT_FALSE(u.ok());
    EXPECT_EQ(u.status().code(), Code::kInvalidArgument);
    EXPECT_TRUE(Contains(u.status().message(), c.says)) << u.status().message();
    EXPECT_FALSE(std::filesystem::exists(dest));
    Result<MountInfo> m = store->Mount("example.com/app:1", {});
    ASSERT_FALSE(m.ok());
    EXPECT_TRUE(Contains(m.status().message(), c.says)) << m.status().message();
    Result<DiskUsage> df = store->Df();
    ASSERT_TRUE(df.ok());
    EXPECT_EQ(df->layers, 0u) << "a refused layer is not cached";
    Result<CheckReport> check = store->Check({});
    ASSERT_TRUE(check.ok());
    EXPECT_TRUE(check->clean());
  }
  // With the defaults the same image unpacks.
  std::unique_ptr<Store> store = Open(Limits{});
  ASSERT_NE(store, nullptr);
  Result<UnpackResult> u = store->Unpack("example.com/app:1", dir_.Sub("rootfs"), {});
  ASSERT_TRUE(u.ok()) << u.status().ToString();
}

TEST_F(StoreLimitsTest, ADecompressionRatioBoundStopsAZeroFilledLayer) {
  // 32 MiB of zeros gzips about 1000:1: over a bound of 10 once past the first 8 MiB.
  TestImage zeros = imgstore::testing::ImageFromTars(
      {imgstore::testing::TarBuilder().File("zeros", std::string(32 << 20, '\0')).Finish()},
      LayerCompression::kGzip, false, R"("architecture":"amd64","os":"linux",)");
  WriteOciLayout(zeros, dir_.Sub("zeros"), "z");
  Limits l;
  l.max_ratio = 10;
  std::unique_ptr<Store> store = Open(l);
  ASSERT_NE(store, nullptr);
  PullOptions po;
  po.names = {"example.com/zeros:1"};
  ASSERT_TRUE(store->Pull("oci:" + dir_.Sub("zeros") + ":z", po).ok());
  Result<UnpackResult> u = store->Unpack("example.com/zeros:1", dir_.Sub("z-rootfs"), {});
  ASSERT_FALSE(u.ok());
  EXPECT_TRUE(Contains(u.status().message(), "max_ratio=10")) << u.status().message();
  // verify_diff_ids decompresses during the pull: the same bound applies there.
  po.verify_diff_ids = true;
  ASSERT_TRUE(store->Remove("example.com/zeros:1").ok());
  Result<PullResult> verified = store->Pull("oci:" + dir_.Sub("zeros") + ":z", po);
  ASSERT_FALSE(verified.ok());
  EXPECT_TRUE(Contains(verified.status().message(), "max_ratio=10")) << verified.status().message();
}

}  // namespace
}  // namespace imgstore
