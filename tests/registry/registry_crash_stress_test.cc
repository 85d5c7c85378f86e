// kill -9 of `imgstore pull` and `imgstore push` against a real registry (docker-registry on
// 127.0.0.1) at random instants. After every kill `imgstore check` passes: a killed pull leaves
// only what the next open recovers (dead ingests, intent-log entries), a killed push leaves the
// store as it was (a push only reads, under a lease that dies with it). At the end a retry
// succeeds: the pulled image has the registry's digests, and the pushed one is read back by
// skopeo with the stored manifest digest. Kill instants spread over the fastest of three probe
// runs, as in tests/cli/pull_crash_stress_test.cc.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <random>
#include <string>
#include <thread>

#include "common/cli_runner.h"
#include "common/registry_fixture.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::testing {
namespace {

constexpr int kKills = 20;

class RegistryCrashStressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry or skopeo is not installed";
    std::string error;
    ASSERT_TRUE(registry_.Start({}, &error)) << error;
    TestImageSpec spec;
    spec.seed = 4242;
    spec.layers = 4;
    spec.layer_bytes = 6 << 20;  // random bytes: 4 x 6 MB of blobs on the wire
    image_ = MakeTestImage(spec);
    WriteOciLayout(image_, dir_.Sub("layout"), "v1");
    ASSERT_EQ(registry_.SkopeoPush("oci:" + dir_.Sub("layout") + ":v1", "crash/src:1"), "");
    source_ = registry_.host() + "/crash/src:1";
  }

  // The fastest of three runs of `args` (each on a fresh copy of `prepare`'s result), in µs.
  template <typename Prepare>
  int64_t FastestRun(const std::string& root, const std::vector<std::string>& args,
                     Prepare prepare) {
    int64_t best = std::numeric_limits<int64_t>::max();
    for (int probe = 0; probe < 3; ++probe) {
      prepare(root);
      auto start = std::chrono::steady_clock::now();
      CliResult r = RunImgstore(root, args);
      EXPECT_EQ(r.exit_code, 0) << r.Describe();
      best = std::min<int64_t>(best, std::chrono::duration_cast<std::chrono::microseconds>(
                                         std::chrono::steady_clock::now() - start)
                                         .count());
    }
    return best;
  }

  // Runs `imgstore --root root args` and kills it after `delay`; true if it ended on its own
  // (then it must have succeeded).
  static bool RunAndKill(const std::string& root, const std::vector<std::string>& args,
                         std::chrono::microseconds delay) {
    Subprocess p;
    std::string error;
    std::vector<std::string> argv = {"--root", root};
    argv.insert(argv.end(), args.begin(), args.end());
    EXPECT_TRUE(p.Start(ImgstoreBinary(), argv, &error)) << error;
    std::this_thread::sleep_for(delay);
    int status = p.KillAndWait();
    if (WIFEXITED(status)) {
      EXPECT_EQ(WEXITSTATUS(status), 0) << Subprocess::DescribeStatus(status);
      return true;
    }
    return false;
  }

  static void ExpectCheckClean(const std::string& root) {
    CliResult check = RunImgstore(root, {"check"});
    ASSERT_EQ(check.exit_code, 0) << check.Describe();
    ASSERT_TRUE(check.out.empty()) << check.Describe();
  }

  TempDir dir_;
  TestRegistry registry_;
  TestImage image_;
  std::string source_;
};

TEST_F(RegistryCrashStressTest, KilledPullsLeaveAConsistentStoreAndARetrySucceeds) {
  const std::string root = dir_.Sub("store");
  const std::vector<std::string> pull = {"pull", "-q", source_};
  int64_t full_us =
      FastestRun(dir_.Sub("probe"), pull, [](const std::string& r) { ASSERT_TRUE(RemoveTree(r)); });
  std::mt19937 rng(777);
  std::uniform_int_distribution<int64_t> instant(0, full_us + full_us / 10);
  int completed = 0;
  bool finished_last = false;
  for (int i = 0; i < kKills; ++i) {
    SCOPED_TRACE("kill " + std::to_string(i));
    // Start over after a pull that finished, and every few kills, so that kills land in every
    // phase; in between, a pull resumes from what the killed one left.
    if (i % 3 == 0 || finished_last) {
      ASSERT_TRUE(RemoveTree(root));
    }
    finished_last = RunAndKill(root, pull, std::chrono::microseconds(instant(rng)));
    if (finished_last) ++completed;
    ExpectCheckClean(root);
  }
  EXPECT_GE(kKills - completed, kKills / 3)
      << "most pulls ended before the kill: nothing was tested";

  CliResult again = RunImgstore(root, {"pull", "-q", source_});
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  CliResult list = RunImgstore(root, {"list", "--digests", "--no-trunc"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  EXPECT_NE(list.out.find(image_.manifest_digest.ToString()), std::string::npos) << list.out;
  auto store = store::testing::OpenStore(root);
  ASSERT_NE(store, nullptr);
  store::testing::ExpectConsistent(*store);
}

TEST_F(RegistryCrashStressTest, KilledPushesLeaveTheStoreIntactAndARetrySucceeds) {
  const std::string root = dir_.Sub("store");
  CliResult pulled = RunImgstore(root, {"pull", "-q", source_});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.Describe();

  // Each probe pushes to a repository of its own: one that holds the blobs would be skipped.
  int probe = 0;
  int64_t full_us = std::numeric_limits<int64_t>::max();
  for (; probe < 3; ++probe) {
    auto start = std::chrono::steady_clock::now();
    CliResult r = RunImgstore(root, {"push", "-q", source_,
                                     registry_.host() + "/probe" + std::to_string(probe) + "/x:1"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    full_us = std::min<int64_t>(full_us, std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::steady_clock::now() - start)
                                             .count());
  }
  std::mt19937 rng(999);
  std::uniform_int_distribution<int64_t> instant(0, full_us + full_us / 10);
  int completed = 0;
  for (int i = 0; i < kKills; ++i) {
    SCOPED_TRACE("kill " + std::to_string(i));
    // A new repository each time, so that every push uploads (a registry that already holds
    // the blobs answers HEAD and nothing is sent).
    const std::string dest = registry_.host() + "/killed" + std::to_string(i) + "/x:1";
    if (RunAndKill(root, {"push", "-q", source_, dest}, std::chrono::microseconds(instant(rng)))) {
      ++completed;
    }
    ExpectCheckClean(root);
  }
  EXPECT_GE(kKills - completed, kKills / 3)
      << "most pushes ended before the kill: nothing was tested";

  // The image is intact, a retry of a killed push succeeds and skopeo reads the same digest.
  const std::string dest = registry_.host() + "/killed0/x:1";
  CliResult again = RunImgstore(root, {"push", source_, dest});
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  EXPECT_EQ(again.out, image_.manifest_digest.ToString() + "\n");
  std::string error;
  EXPECT_EQ(registry_.SkopeoManifestDigest("killed0/x:1", &error),
            image_.manifest_digest.ToString())
      << error;
  auto store = store::testing::OpenStore(root);
  ASSERT_NE(store, nullptr);
  store::testing::ExpectConsistent(*store);
}

}  // namespace
}  // namespace imgstore::testing
