// The promise of issue 4, measured with real processes: a push of a ~200 MB image through a
// throttling proxy lasts several seconds, and meanwhile `imgstore list`, run again and again in
// other processes, answers every time (each call under 1 s here; the benchmark measures the real
// figures) and shows the image; the same during a pull and during gc; an `rmi` of the image being
// pushed succeeds at once, a gc right after it takes nothing the push needs, and the push
// completes with the stored manifest digest, which skopeo reads back from the registry.
//
// containers/storage held its store lock for the whole push, so `podman images` hung until the
// upload finished (podman #5356, #8167). Here a push holds only a lease.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/cli_runner.h"
#include "common/fault_proxy.h"
#include "common/registry_fixture.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kLayerBytes = 100 << 20;            // two layers: ~200 MB on the wire
constexpr uint64_t kThrottleBytesPerSecond = 30 << 20;  // so a transfer lasts ~7 s
constexpr auto kMinTransfer = std::chrono::seconds(5);
constexpr auto kMaxListCall = std::chrono::seconds(1);

struct ListSample {
  std::chrono::milliseconds took;
  CliResult result;
};

class RegistryHeadlineStressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry or skopeo is not installed";
    std::string error;
    ASSERT_TRUE(registry_.Start({}, &error)) << error;
    ASSERT_TRUE(proxy_.Start(registry_.host(), &error)) << error;
    TestImageSpec spec;
    spec.seed = 2026;
    spec.layers = 2;
    spec.layer_bytes = kLayerBytes;
    spec.compression = LayerCompression::kNone;  // random bytes: compression would gain nothing
    image_ = MakeTestImage(spec);
    WriteOciLayout(image_, dir_.Sub("layout"), "v1");
    root_ = dir_.Sub("store");
    CliResult r = RunImgstore(root_, {"pull", "-q", "oci:" + dir_.Sub("layout") + ":v1", "--name",
                                      "big/app:1"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }

  // Starts `imgstore --root root_ args` in the background.
  Subprocess Start(const std::vector<std::string>& args) {
    Subprocess p;
    std::vector<std::string> argv = {"--root", root_};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string error;
    EXPECT_TRUE(p.Start(ImgstoreBinary(), argv, &error)) << error;
    return p;
  }

  ListSample List() {
    auto t0 = Clock::now();
    CliResult r = RunImgstore(root_, {"list"}, {}, std::chrono::seconds(30));
    return {std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0), r};
  }

  // Runs list again and again while `p` runs; every call must answer quickly and show `name`
  // (when not empty). Returns the number of calls, and the wait status of p in *status.
  int ListWhileRunning(Subprocess& p, const std::string& name, int* status) {
    int calls = 0;
    while (true) {
      if (std::optional<int> st = p.Wait(std::chrono::milliseconds(0))) {
        *status = *st;
        return calls;
      }
      ListSample s = List();
      ++calls;
      EXPECT_EQ(s.result.exit_code, 0) << s.result.Describe();
      EXPECT_LT(s.took, kMaxListCall) << "list call " << calls << " took " << s.took.count()
                                      << " ms";
      if (!name.empty()) {
        EXPECT_NE(s.result.out.find(name), std::string::npos) << s.result.out;
      }
    }
  }

  std::string ProxiedRef(const std::string& path) const { return proxy_.host() + "/" + path; }

  TempDir dir_;
  TestRegistry registry_;
  FaultProxy proxy_;
  TestImage image_;
  std::string root_;
};

TEST_F(RegistryHeadlineStressTest, ListAnswersDuringAThrottledPush) {
  proxy_.SetThrottle(kThrottleBytesPerSecond);
  auto t0 = Clock::now();
  Subprocess push = Start({"push", "-q", "big/app:1", ProxiedRef("headline/app:1")});
  int status = -1;
  int calls = ListWhileRunning(push, "big/app", &status);
  auto took = Clock::now() - t0;
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Subprocess::DescribeStatus(status);
  EXPECT_GE(took, kMinTransfer) << "the push was not slow enough to prove anything";
  EXPECT_GE(calls, 5);
  EXPECT_GE(proxy_.bytes_to_target(), 2 * kLayerBytes);
  std::string error;
  EXPECT_EQ(registry_.SkopeoManifestDigest("headline/app:1", &error),
            image_.manifest_digest.ToString())
      << error;
}

TEST_F(RegistryHeadlineStressTest, RmiAndGcDuringAPushTakeNothingItNeeds) {
  proxy_.SetThrottle(kThrottleBytesPerSecond);
  Subprocess push = Start({"push", "-q", "big/app:1", ProxiedRef("headline/rmi:1")});
  // Once bytes flow, remove the image: rmi answers at once, and a gc after it keeps the blobs
  // the push holds a lease on.
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (proxy_.bytes_to_target() < (8u << 20) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(proxy_.bytes_to_target(), 8u << 20) << "the push never started sending";
  auto t0 = Clock::now();
  CliResult rmi = RunImgstore(root_, {"rmi", "big/app:1"});
  EXPECT_EQ(rmi.exit_code, 0) << rmi.Describe();
  EXPECT_LT(Clock::now() - t0, kMaxListCall) << "rmi waited for the push";
  ListSample after = List();
  EXPECT_EQ(after.result.out.find("big/app"), std::string::npos) << after.result.out;

  // gc runs while list keeps answering; it must not take the blobs being pushed.
  Subprocess gc = Start({"gc"});
  int gc_status = -1;
  ListWhileRunning(gc, "", &gc_status);
  EXPECT_TRUE(WIFEXITED(gc_status) && WEXITSTATUS(gc_status) == 0)
      << Subprocess::DescribeStatus(gc_status);

  std::optional<int> status = push.Wait(std::chrono::seconds(120));
  ASSERT_TRUE(status.has_value()) << "the push did not end";
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << Subprocess::DescribeStatus(*status);
  std::string error;
  EXPECT_EQ(registry_.SkopeoManifestDigest("headline/rmi:1", &error),
            image_.manifest_digest.ToString())
      << error;
  // With the push over and its lease gone, a gc now reclaims the image's blobs.
  CliResult gc2 = RunImgstore(root_, {"gc", "--format", "json"});
  EXPECT_EQ(gc2.exit_code, 0) << gc2.Describe();
  EXPECT_NE(gc2.out.find(image_.id.ToString()), std::string::npos) << gc2.out;
  auto store = store::testing::OpenStore(root_);
  ASSERT_NE(store, nullptr);
  store::testing::ExpectConsistent(*store);
}

TEST_F(RegistryHeadlineStressTest, ListAnswersDuringAThrottledPullAndDuringGc) {
  // Put the image in the registry (unthrottled), then pull it back through the throttle into
  // the same store under another name, listing all along.
  CliResult pushed = RunImgstore(root_, {"push", "-q", "big/app:1", ProxiedRef("headline/pull:1")});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.Describe();
  CliResult rmi = RunImgstore(root_, {"rmi", "big/app:1"});
  ASSERT_EQ(rmi.exit_code, 0) << rmi.Describe();
  CliResult gc = RunImgstore(root_, {"gc"});
  ASSERT_EQ(gc.exit_code, 0) << gc.Describe();
  // Another image stays listed throughout.
  TestImageSpec small;
  small.seed = 7;
  WriteOciLayout(MakeTestImage(small), dir_.Sub("small"), "s");
  CliResult r =
      RunImgstore(root_, {"pull", "-q", "oci:" + dir_.Sub("small") + ":s", "--name", "small/x:1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();

  proxy_.SetThrottle(kThrottleBytesPerSecond);
  auto t0 = Clock::now();
  Subprocess pull = Start({"pull", "-q", ProxiedRef("headline/pull:1")});
  int status = -1;
  int calls = ListWhileRunning(pull, "small/x", &status);
  auto took = Clock::now() - t0;
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Subprocess::DescribeStatus(status);
  EXPECT_GE(took, kMinTransfer) << "the pull was not slow enough to prove anything";
  EXPECT_GE(calls, 5);
  ListSample done = List();
  EXPECT_NE(done.result.out.find("headline/pull"), std::string::npos) << done.result.out;

  // gc with a lot to remove (the pulled image, untagged) while list runs.
  ASSERT_EQ(RunImgstore(root_, {"rmi", ProxiedRef("headline/pull:1")}).exit_code, 0);
  Subprocess gc2 = Start({"gc"});
  int gc_status = -1;
  ListWhileRunning(gc2, "small/x", &gc_status);
  EXPECT_TRUE(WIFEXITED(gc_status) && WEXITSTATUS(gc_status) == 0)
      << Subprocess::DescribeStatus(gc_status);
}

}  // namespace
}  // namespace imgstore::testing
