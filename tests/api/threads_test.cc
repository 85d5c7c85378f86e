// One imgstore::Store handle shared by many threads (the documented use of the public API):
// list, inspect, pull (oci:), tag, rmi and gc run concurrently, with no error at all (each
// thread works on names of its own, so nothing it does can be undone by another), and the store
// checks clean afterwards. Built with -DIMGSTORE_SANITIZE=thread this is the API's data-race test.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/api_options.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "imgstore/store.hpp"

namespace imgstore::testing {
namespace {

constexpr int kThreads = 6;
constexpr int kRounds = 8;
constexpr int kLayouts = 3;

TEST(StoreApiThreadsTest, OneHandleSharedByManyThreads) {
  TempDir dir;
  std::vector<std::string> sources;
  std::vector<std::string> ids;
  for (int i = 0; i < kLayouts; ++i) {
    TestImageSpec spec;
    spec.seed = 700 + i;
    spec.layer_bytes = 64 << 10;
    TestImage image = MakeTestImage(spec);
    const std::string layout = dir.Sub("layout" + std::to_string(i));
    WriteOciLayout(image, layout, "v1");
    sources.push_back("oci:" + layout + ":v1");
    ids.push_back(image.id.ToString());
  }
  Result<std::unique_ptr<Store>> opened = Store::Open(dir.Sub("root"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Store& store = **opened;

  std::mutex errors_mu;
  std::vector<std::string> errors;
  auto expect_ok = [&](const Status& s, const std::string& what) {
    if (s.ok()) return;
    std::lock_guard lock(errors_mu);
    errors.push_back(what + ": " + s.ToString());
  };

  std::atomic<bool> stop_gc{false};
  std::atomic<int> gc_runs{0};
  std::thread gc([&] {
    while (!stop_gc.load()) {
      expect_ok(store.Gc().status(), "gc");
      gc_runs.fetch_add(1);
    }
  });

  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      const std::string repo = "example.com/t" + std::to_string(t);
      for (int round = 0; round < kRounds; ++round) {
        const int which = (t + round) % kLayouts;
        const std::string name = repo + "/img:" + std::to_string(round);
        PullOptions po;
        po.names = {name};
        Result<PullResult> pulled = store.Pull(sources[which], po);
        expect_ok(pulled.status(), "pull " + name);
        if (pulled.ok() && pulled->id != ids[which]) expect_ok(Status(Code::kInternal, "id"), name);

        Result<std::vector<ImageSummary>> list = store.List(repo);
        expect_ok(list.status(), "list " + repo);
        Result<ImageDetails> details = store.Inspect(name);
        expect_ok(details.status(), "inspect " + name);
        if (details.ok() && details->summary.id != ids[which]) {
          expect_ok(Status(Code::kInternal, "inspect gave another image"), name);
        }
        expect_ok(store.Tag(name, repo + "/alias:latest"), "tag " + name);
        expect_ok(store.Untag(name, {repo + "/alias:latest"}), "untag " + name);
        expect_ok(store.Remove(name).status(), "rmi " + name);
        expect_ok(store.Locks().status(), "locks");
      }
    });
  }
  for (std::thread& w : workers) w.join();
  stop_gc.store(true);
  gc.join();

  EXPECT_TRUE(errors.empty()) << errors.size() << " errors, the first: " << errors[0];
  EXPECT_GT(gc_runs.load(), 0);
  Result<std::vector<ImageSummary>> list = store.List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty()) << list->size() << " images left";
  ASSERT_TRUE(store.Gc().ok());
  Result<CheckReport> check = store.Check(Verified());
  ASSERT_TRUE(check.ok()) << check.status().ToString();
  EXPECT_TRUE(check->clean()) << check->problems[0].message;
}

}  // namespace
}  // namespace imgstore::testing
