// Parallel layer fetches of Store::Pull (from fake_transport.h sources that serve blobs to several
// threads) and RunParallel beneath them: max_parallel blobs are really open at once, and only from
// a source that allows it; the first error stops the pull with nothing recorded and every thread
// joined; progress calls never overlap; a layer listed twice is fetched once; and two pulls of
// one image, from two threads or two processes, write each blob once; an exception out of a task
// (a caller's callback) is an error, not the end of the process.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/subprocess.h"
#include "store/fake_transport.h"
#include "store/parallel.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::store {
namespace {

using namespace std::chrono_literals;
using testing::CountRows;
using testing::ExpectConsistent;
using testing::FakeSource;
using testing::TestImage;
using testing::TestImageSpec;

const std::string kHelper = IMGSTORE_TEST_BIN_DIR "/tests/store/store_helper";

// Long enough never to run out on a loaded machine when the awaited condition does happen.
constexpr auto kDeadline = 30s;

TestImage Image(uint32_t seed, int layers, size_t layer_bytes = 4096) {
  TestImageSpec spec;
  spec.seed = seed;
  spec.layers = layers;
  spec.layer_bytes = layer_bytes;
  return testing::MakeTestImage(spec);
}

// Nothing recorded (no image, manifest, layer, name, lease or origin row) and Check clean.
void ExpectNothingRecorded(Store& store) {
  for (const char* table :
       {"images", "manifests", "layers", "names", "leases", "lease_blobs", "blob_origins"}) {
    EXPECT_EQ(CountRows(store, std::string("SELECT count(*) FROM ") + table), 0) << table;
  }
  ExpectConsistent(store);
}

// Tasks that count how many run at once; each waits (up to a deadline) until `want` have been
// running at the same time, so that a pool with fewer threads than `want` shows as a timeout.
class Overlap {
 public:
  explicit Overlap(int want) : want_(want) {}
  // Returns false when the wait ran out.
  bool Enter(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    peak_ = std::max(peak_, ++now_);
    cv_.notify_all();
    return cv_.wait_for(lock, timeout, [&] { return peak_ >= want_; });
  }
  void Leave() {
    std::lock_guard lock(mu_);
    --now_;
  }
  int peak() {
    std::lock_guard lock(mu_);
    return peak_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  const int want_;
  int now_ = 0;
  int peak_ = 0;
};

TEST(RunParallelTest, RunsEveryTaskOnce) {
  for (int workers : {1, 2, 4, 64}) {
    std::vector<std::atomic<int>> runs(20);
    Status s = internal::RunParallel(runs.size(), workers, [&](size_t i) {
      ++runs[i];
      return Status::OK();
    });
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(runs[i], 1) << "task " << i;
  }
  int calls = 0;
  EXPECT_TRUE(internal::RunParallel(0, 3, [&](size_t) {
                ++calls;
                return Status::OK();
              }).ok());
  EXPECT_EQ(calls, 0);
}

TEST(RunParallelTest, RunsUpToMaxWorkersAtOnce) {
  for (int workers : {2, 3}) {
    SCOPED_TRACE("workers " + std::to_string(workers));
    Overlap overlap(workers);
    std::atomic<int> timeouts = 0;
    Status s = internal::RunParallel(12, workers, [&](size_t) {
      if (!overlap.Enter(kDeadline)) ++timeouts;
      overlap.Leave();
      return Status::OK();
    });
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(timeouts, 0) << "never " << workers << " tasks at once";
    EXPECT_EQ(overlap.peak(), workers);
  }
  // One worker (or less): one task at a time, on the calling thread. The short wait gives a
  // second task the chance to show up, which it must not.
  for (int workers : {1, 0, -3}) {
    Overlap overlap(2);
    const std::thread::id caller = std::this_thread::get_id();
    std::atomic<int> elsewhere = 0;
    Status s = internal::RunParallel(3, workers, [&](size_t) {
      overlap.Enter(100ms);
      overlap.Leave();
      if (std::this_thread::get_id() != caller) ++elsewhere;
      return Status::OK();
    });
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(overlap.peak(), 1) << workers;
    EXPECT_EQ(elsewhere, 0) << workers;
  }
}

TEST(RunParallelTest, FirstErrorStopsTasksNotStarted) {
  // One worker: deterministic order. Task 2 fails, so 3 and later never start.
  std::vector<int> ran;
  Status s = internal::RunParallel(10, 1, [&](size_t i) {
    ran.push_back(static_cast<int>(i));
    return i == 2 ? Status(Code::kCorruption, "task 2 broke") : Status::OK();
  });
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_EQ(s.message(), "task 2 broke");
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2}));
}

TEST(RunParallelTest, TasksInFlightFinishAndTheFirstErrorIsReturned) {
  // Task 0 fails once tasks 1 and 2 are running; they go on until task 0 has failed, then
  // finish. The error returned is task 0's, and both ran to their end before the call
  // returned: every thread was joined.
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  bool failed = false;
  std::atomic<int> finished = 0;
  Status s = internal::RunParallel(3, 3, [&](size_t i) {
    std::unique_lock lock(mu);
    ++started;
    cv.notify_all();
    if (i == 0) {
      if (!cv.wait_for(lock, kDeadline, [&] { return started == 3; })) {
        return Status(Code::kTimeout, "tasks 1 and 2 never started");
      }
      failed = true;
      cv.notify_all();
      return Status(Code::kCorruption, "first");
    }
    cv.wait_for(lock, kDeadline, [&] { return failed; });
    ++finished;
    return Status::OK();
  });
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_EQ(finished, 2);
}

TEST(RunParallelTest, AnExceptionOnAnyThreadIsTheErrorAndEveryThreadIsJoined) {
  // The chosen task throws once all three run, on a helper thread or on the caller's, whichever
  // took it: either way it comes back as a Status, after the other two ran to their end.
  for (size_t thrower = 0; thrower < 3; ++thrower) {
    SCOPED_TRACE("task " + std::to_string(thrower) + " throws");
    std::mutex mu;
    std::condition_variable cv;
    int started = 0;
    bool thrown = false;
    std::atomic<int> finished = 0;
    Status s = internal::RunParallel(3, 3, [&](size_t i) -> Status {
      std::unique_lock lock(mu);
      ++started;
      cv.notify_all();
      if (i == thrower) {
        cv.wait_for(lock, kDeadline, [&] { return started == 3; });
        thrown = true;
        cv.notify_all();
        throw std::runtime_error("callback broke");
      }
      cv.wait_for(lock, kDeadline, [&] { return thrown; });
      ++finished;
      return Status::OK();
    });
    EXPECT_EQ(s.code(), Code::kInternal);
    EXPECT_EQ(s.message(), "unexpected exception: callback broke");
    EXPECT_EQ(finished, 2) << "the other tasks ran to their end before the call returned";
  }
}

using ParallelPullTest = testing::StoreTest;

TEST_F(ParallelPullTest, FetchesMaxParallelLayersAtOnce) {
  TestImage img = Image(1, 3);
  FakeSource src;
  src.AddImage(img);
  src.concurrent = true;
  std::atomic<int> timeouts = 0;
  src.on_get_blob = [&](const images::Descriptor& d) {
    if (d.digest != img.id && !src.gauge.WaitFor(3, kDeadline)) ++timeouts;
  };
  PullOptions o;
  o.max_parallel = 3;
  Result<PullResult> r = store_->Pull(src, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(timeouts, 0) << "the three layers were never open at once";
  EXPECT_EQ(src.gauge.peak(), 3);
  EXPECT_EQ(src.gauge.now(), 0);
  EXPECT_EQ(r->blobs_written, 5);
  ExpectConsistent(*store_);
}

TEST_F(ParallelPullTest, OneAtATimeWithMaxParallelOneOrASerialSource) {
  struct Case {
    bool concurrent;
    int max_parallel;
  };
  uint32_t seed = 10;
  for (Case c : {Case{true, 1}, Case{false, 3}}) {
    SCOPED_TRACE(std::string(c.concurrent ? "concurrent" : "serial") + " source, max_parallel " +
                 std::to_string(c.max_parallel));
    TestImage img = Image(seed++, 3);
    FakeSource src;
    src.AddImage(img);
    src.concurrent = c.concurrent;
    // Each layer gives a second one a moment to be opened beside it, which must not happen.
    std::atomic<int> overlaps = 0;
    src.on_get_blob = [&](const images::Descriptor&) {
      if (src.gauge.WaitFor(2, 100ms)) ++overlaps;
    };
    PullOptions o;
    o.max_parallel = c.max_parallel;
    Result<PullResult> r = store_->Pull(src, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(overlaps, 0);
    EXPECT_EQ(src.gauge.peak(), 1);
  }
  ExpectConsistent(*store_);
}

TEST_F(ParallelPullTest, ACorruptLayerStopsThePullAndRecordsNothing) {
  TestImage img = Image(20, 5);
  for (const std::string damage : {"flipped", "missing"}) {
    SCOPED_TRACE(damage);
    FakeSource src;
    src.AddImage(img);
    src.concurrent = true;
    src.origin = "h:1/a/b";
    const std::string bad = Digest::Of(img.layers[2]).ToString();
    if (damage == "flipped") {
      src.blobs[bad][src.blobs[bad].size() / 2] ^= 1;
    } else {
      src.blobs.erase(bad);
    }
    PullOptions o;
    o.max_parallel = 3;
    Result<PullResult> r = store_->Pull(src, o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), damage == "flipped" ? Code::kCorruption : Code::kNotFound)
        << r.status().ToString();
    EXPECT_NE(r.status().message().find("pull fake:test: layer 2"), std::string::npos)
        << r.status().ToString();
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().ToString();
    EXPECT_EQ(src.gauge.now(), 0) << "a blob is still open: a thread outlived the pull";
    EXPECT_FALSE(*store_->HasBlob(Digest::Of(img.layers[2])));
    ExpectNothingRecorded(*store_);
  }
  // The same source, repaired: the pull completes.
  FakeSource src;
  src.AddImage(img);
  src.concurrent = true;
  Result<PullResult> r = store_->Pull(src);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectConsistent(*store_);
}

TEST_F(ParallelPullTest, ProgressCallsNeverOverlapAndEachBlobEnds) {
  TestImageSpec spec;
  spec.seed = 30;
  spec.layers = 4;
  spec.layer_bytes = 3 << 20;  // several reads per layer
  spec.compression = imgstore::testing::LayerCompression::kNone;
  TestImage img = testing::MakeTestImage(spec);
  FakeSource src;
  src.AddImage(img);
  src.concurrent = true;
  PullOptions o;
  o.max_parallel = 4;
  std::vector<images::Descriptor> announced;
  int progress_before_announce = 0;
  std::atomic<bool> inside = false;
  std::atomic<int> overlaps = 0;
  std::map<Digest, uint64_t> last;  // guarded by the store's serialization, which is under test
  o.on_blobs = [&](const std::vector<images::Descriptor>& blobs) {
    EXPECT_TRUE(announced.empty()) << "called twice";
    announced = blobs;
  };
  o.on_progress = [&](const PullProgress& p) {
    if (inside.exchange(true)) ++overlaps;
    if (announced.empty()) ++progress_before_announce;
    EXPECT_GE(p.done, last[p.digest]);
    last[p.digest] = p.done;
    inside = false;
  };
  Result<PullResult> r = store_->Pull(src, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(overlaps, 0);
  EXPECT_EQ(progress_before_announce, 0);
  ASSERT_EQ(announced.size(), 5u);
  EXPECT_EQ(announced[0].digest, img.id);
  for (size_t i = 0; i < img.layers.size(); ++i) {
    const Digest d = Digest::Of(img.layers[i]);
    EXPECT_EQ(announced[i + 1].digest, d);
    EXPECT_EQ(last[d], img.layers[i].size()) << "layer " << i;
  }
  EXPECT_EQ(last[img.id], img.config.size());
}

TEST_F(ParallelPullTest, ALayerListedTwiceIsFetchedOnce) {
  TestImage img = Image(40, 2);
  // The manifest lists layer 0 again on top (as docker's empty layers repeat), with a config
  // that has the matching third diffID.
  nlohmann::json config = nlohmann::json::parse(img.config);
  config["rootfs"]["diff_ids"].push_back(img.diff_ids[0].ToString());
  const std::string config_bytes = config.dump();
  nlohmann::json manifest = nlohmann::json::parse(img.manifest);
  manifest["layers"].push_back(manifest["layers"][0]);
  manifest["config"]["digest"] = Digest::Of(config_bytes).ToString();
  manifest["config"]["size"] = config_bytes.size();
  FakeSource src;
  src.AddImage(img);
  src.concurrent = true;
  src.blobs[Digest::Of(config_bytes).ToString()] = config_bytes;
  src.top = {manifest.dump(), img.manifest_media_type};
  PullOptions o;
  std::vector<images::Descriptor> announced;
  o.on_blobs = [&](const std::vector<images::Descriptor>& blobs) { announced = blobs; };
  Result<PullResult> r = store_->Pull(src, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(src.opens(Digest::Of(img.layers[0])), 1);
  EXPECT_EQ(announced.size(), 3u);  // the config and two distinct layers
  Result<ImageDetails> d = store_->InspectImage(r->image.id.ToString());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->layers.size(), 3u);
  ExpectConsistent(*store_);
}

// Waits (up to the deadline) until `n` parties have arrived.
class Rendezvous {
 public:
  explicit Rendezvous(int n) : n_(n) {}
  bool Arrive() {
    std::unique_lock lock(mu_);
    ++arrived_;
    cv_.notify_all();
    return cv_.wait_for(lock, kDeadline, [&] { return arrived_ >= n_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  const int n_;
  int arrived_ = 0;
};

TEST_F(ParallelPullTest, TwoThreadsPullingOneImageWriteEachBlobOnce) {
  TestImage img = Image(50, 4, 256 << 10);
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    if (round > 0) {
      ASSERT_TRUE(store_->Remove(img.id.ToString(), /*force=*/true).ok());
      Result<GcReport> gc = store_->GarbageCollect();
      ASSERT_TRUE(gc.ok()) << gc.status().ToString();
      ASSERT_EQ(gc->blobs_removed.size(), 6u);
    }
    Rendezvous start(2);
    FakeSource a, b;
    for (FakeSource* s : {&a, &b}) {
      s->AddImage(img);
      s->concurrent = true;
      s->on_get_manifest = [&start] { EXPECT_TRUE(start.Arrive()); };
    }
    Result<PullResult> ra = Status(Code::kInternal, "not run");
    Result<PullResult> rb = Status(Code::kInternal, "not run");
    {
      std::jthread ta([&] { ra = store_->Pull(a); });
      std::jthread tb([&] { rb = store_->Pull(b); });
    }
    ASSERT_TRUE(ra.ok()) << ra.status().ToString();
    ASSERT_TRUE(rb.ok()) << rb.status().ToString();
    // Config, four layers and the manifest: each written by one of the two.
    EXPECT_EQ(ra->blobs_written + rb->blobs_written, 6);
    EXPECT_EQ(ra->image.id, img.id);
    EXPECT_EQ(rb->image.id, img.id);
    ExpectConsistent(*store_);
  }
}

TEST_F(ParallelPullTest, TwoProcessesPullingOneImageWriteEachBlobOnce) {
  TestImageSpec spec;
  spec.seed = 60;
  spec.layers = 4;
  spec.layer_bytes = 512 << 10;
  spec.compression = imgstore::testing::LayerCompression::kNone;
  TestImage img = testing::MakeTestImage(spec);
  const std::string layout = dir_.Sub("layout");
  imgstore::testing::WriteOciLayout(img, layout, "v1");
  const std::string root = store_->root();
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    if (round > 0) {
      ASSERT_TRUE(store_->Remove(img.id.ToString(), /*force=*/true).ok());
      ASSERT_TRUE(store_->GarbageCollect().ok());
      ASSERT_FALSE(*store_->HasBlob(img.id));
    }
    imgstore::testing::Subprocess a, b;
    for (imgstore::testing::Subprocess* p : {&a, &b}) {
      std::string error;
      // 8 reads of 64 KiB per layer, 2 ms apart: the two pulls overlap.
      ASSERT_TRUE(p->Start(
          kHelper, {"pull-layout", root, layout, img.manifest_digest.ToString(), "3", "2"}, &error))
          << error;
      std::optional<std::string> ready = p->ReadLine(10s);
      ASSERT_EQ(ready.value_or("(nothing)"), "ready");
    }
    ASSERT_TRUE(a.WriteLine("go"));
    ASSERT_TRUE(b.WriteLine("go"));
    std::optional<std::string> ra = a.ReadLine(60s), rb = b.ReadLine(60s);
    ASSERT_TRUE(ra && rb);
    int written = 0;
    for (const std::string& line : {*ra, *rb}) {
      ASSERT_EQ(line.rfind("ok written=", 0), 0u) << line;
      written += std::stoi(line.substr(11));
    }
    EXPECT_EQ(written, 6) << *ra << " / " << *rb;
    for (imgstore::testing::Subprocess* p : {&a, &b}) {
      std::optional<int> status = p->Wait(10s);
      ASSERT_TRUE(status.has_value());
    }
    ExpectConsistent(*store_);
  }
}

}  // namespace
}  // namespace imgstore::store
