// Store::Pull under injected file-system faults: a clean pull is run once to count its creates,
// writes, syncs, renames and directory syncs; then, for each kind and each N, a pull whose N-th
// operation of that kind fails must return the error, leave no image recorded, leave Check clean
// and ingest/ empty after a fresh open, and a retry must succeed.
#include <gtest/gtest.h>

#include <string>

#include "common/fault_env.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "store/fake_transport.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::store {
namespace {

using imgstore::testing::FaultEnv;
using imgstore::testing::FsOp;
using testing::ExpectConsistent;
using testing::FakeSource;
using testing::OpenStore;
using testing::OpenStoreOn;
using testing::TempDir;
using testing::TestImage;
using testing::TestImageSpec;

TestImage Image() {
  TestImageSpec spec;
  spec.seed = 41;
  spec.layers = 3;
  spec.layer_bytes = (1 << 20) + 5000;  // more than one write per layer
  spec.compression = imgstore::testing::LayerCompression::kNone;
  return testing::MakeTestImage(spec);
}

// The operations a clean pull of `image` into a fresh store makes, of kind op.
uint64_t CountOps(const TestImage& image, FsOp op) {
  TempDir dir;
  FaultEnv env;
  auto store = OpenStoreOn(dir.path(), &env);
  EXPECT_NE(store, nullptr);
  env.ResetCounts();
  FakeSource src;
  src.AddImage(image);
  Result<PullResult> r = store->Pull(src);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return env.count(op);
}

int64_t Images(Store& store) {
  Result<std::vector<ImageSummary>> list = store.ListImages();
  EXPECT_TRUE(list.ok());
  return list.ok() ? static_cast<int64_t>(list->size()) : -1;
}

class PullFaultTest : public ::testing::TestWithParam<FsOp> {};

TEST_P(PullFaultTest, EveryFailedOperationLeavesTheStoreConsistent) {
  const TestImage image = Image();
  const FsOp op = GetParam();
  const uint64_t total = CountOps(image, op);
  ASSERT_GT(total, 0u) << FsOpName(op);
  for (uint64_t n = 1; n <= total; ++n) {
    SCOPED_TRACE(std::string(FsOpName(op)) + " #" + std::to_string(n));
    TempDir dir;
    FaultEnv env;
    {
      auto store = OpenStoreOn(dir.path(), &env);
      ASSERT_NE(store, nullptr);
      env.ResetCounts();
      env.FailNth(op, n);
      FakeSource src;
      src.AddImage(image);
      Result<PullResult> r = store->Pull(src);
      ASSERT_EQ(env.faults_fired(), 1u);
      ASSERT_FALSE(r.ok()) << "the pull did not report " << env.last_fault();
      EXPECT_NE(r.status().message().find("pull fake:test"), std::string::npos)
          << r.status().ToString();
      EXPECT_EQ(Images(*store), 0);
    }
    auto fresh = OpenStore(dir.path());
    ASSERT_NE(fresh, nullptr);
    ExpectConsistent(*fresh);
    EXPECT_EQ(Images(*fresh), 0);
    // And the store is usable: the same pull now succeeds.
    FakeSource src;
    src.AddImage(image);
    Result<PullResult> again = fresh->Pull(src);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(again->image.id, image.id);
    ExpectConsistent(*fresh);
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, PullFaultTest,
                         ::testing::Values(FsOp::kCreate, FsOp::kWrite, FsOp::kSync, FsOp::kRename,
                                           FsOp::kSyncDir),
                         [](const ::testing::TestParamInfo<FsOp>& info) {
                           return std::string(FsOpName(info.param));
                         });

}  // namespace
}  // namespace imgstore::store
