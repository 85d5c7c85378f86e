// kill -9 of `imgstore pull oci:...` at random instants: after every kill `imgstore check`
// passes (no row without its verified file, nothing half-recorded, no orphan: a kill between
// an ingest's rename and its commit leaves an intent-log entry that the next open finishes), and
// at the end a re-pull succeeds and the next open leaves ingest/ empty and Check clean.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <random>
#include <string>
#include <thread>

#include "common/cli_runner.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::testing {
namespace {

// Fewer than the crash torture's total: it kills pulls from every source too
// (tests/stress/crash_torture_stress_test.cc); this one keeps a 32 MB pull resumed across kills.
constexpr int kKills = 15;

TEST(PullCrashStressTest, KilledPullsLeaveAConsistentStore) {
  TempDir dir;
  TestImageSpec spec;
  spec.seed = 77;
  spec.layers = 4;
  spec.layer_bytes = 8 << 20;  // random bytes: gzip cannot shrink them, 4 x 8 MB of blobs
  spec.compression = LayerCompression::kGzip;
  TestImage img = MakeTestImage(spec);
  WriteOciLayout(img, dir.Sub("src"), "v1");
  const std::string source = "oci:" + dir.Sub("src") + ":v1";

  // How long a whole pull takes here, so that the kills spread over all of it: the fastest of
  // three (a first, cold pull on a loaded machine can take several times longer, and kills
  // spread over that would mostly land after the pull ended).
  int64_t full_us = std::numeric_limits<int64_t>::max();
  for (int probe = 0; probe < 3; ++probe) {
    ASSERT_TRUE(RemoveTree(dir.Sub("probe")));
    auto start = std::chrono::steady_clock::now();
    CliResult full = RunImgstore(dir.Sub("probe"), {"pull", "-q", source});
    ASSERT_EQ(full.exit_code, 0) << full.Describe();
    full_us = std::min<int64_t>(full_us, std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::steady_clock::now() - start)
                                             .count());
  }

  std::mt19937 rng(12345);
  std::uniform_int_distribution<int64_t> instant(0, full_us + full_us / 10);
  const std::string root = dir.Sub("store");
  int completed = 0;
  bool finished_last = false;
  for (int i = 0; i < kKills; ++i) {
    SCOPED_TRACE("kill " + std::to_string(i));
    // Start over after a pull that finished, and every few kills, so that the kills land in
    // every phase of a pull; in between, a pull resumes what the killed one left.
    if (i % 3 == 0 || finished_last) {
      ASSERT_TRUE(RemoveTree(root));
    }
    Subprocess pull;
    std::string error;
    ASSERT_TRUE(pull.Start(ImgstoreBinary(), {"--root", root, "pull", "-q", source}, &error))
        << error;
    std::this_thread::sleep_for(std::chrono::microseconds(instant(rng)));
    int status = pull.KillAndWait();
    finished_last = WIFEXITED(status);
    if (finished_last) {
      ASSERT_EQ(WEXITSTATUS(status), 0) << Subprocess::DescribeStatus(status);
      ++completed;
    }
    CliResult check = RunImgstore(root, {"check"});
    ASSERT_EQ(check.exit_code, 0) << check.Describe();
    ASSERT_TRUE(check.out.empty()) << check.Describe();
  }
  // Kill instants spread over the fastest probe, so about half the pulls finish first; fewer
  // than a third killed mid-way would mean the kills missed the pull.
  EXPECT_GE(kKills - completed, kKills / 3)
      << "most pulls ended before the kill: nothing was tested";

  CliResult again = RunImgstore(root, {"pull", source});
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  EXPECT_EQ(again.out, img.id.ToString() + "\n");
  auto store = store::testing::OpenStore(root);
  ASSERT_NE(store, nullptr);
  store::testing::ExpectConsistent(*store);
}

}  // namespace
}  // namespace imgstore::testing
