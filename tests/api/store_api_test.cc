// The public C++ API (include/imgstore/store.hpp) end to end on OCI layouts: each operation's
// happy path and its errors, progress, and cancellation of a pull and a push mid-stream (the
// call returns kCancelled, the store checks clean and records nothing).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/api_options.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "imgstore/store.hpp"
#include "util/env.h"

namespace imgstore::testing {
namespace {

class StoreApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestImageSpec spec;
    spec.seed = 61;
    image_ = MakeTestImage(spec);
    WriteOciLayout(image_, dir_.Sub("layout"), "v1");
    source_ = "oci:" + dir_.Sub("layout") + ":v1";
    Result<std::unique_ptr<Store>> s = Store::Open(dir_.Sub("root"));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  // An image of one uncompressed 8 MiB layer, written as the OCI layout dir_/big:v1: read in
  // several pieces, and on two threads (received and written apart).
  TestImage BigLayout(uint32_t seed) {
    TestImageSpec spec;
    spec.seed = seed;
    spec.layers = 1;
    spec.layer_bytes = 8 << 20;
    spec.compression = LayerCompression::kNone;
    TestImage big = MakeTestImage(spec);
    WriteOciLayout(big, dir_.Sub("big"), "v1");
    return big;
  }

  void ExpectCleanAndEmpty() {
    Result<CheckReport> check = store_->Check(Verified());
    ASSERT_TRUE(check.ok()) << check.status().ToString();
    EXPECT_TRUE(check->clean()) << (check->problems.empty() ? "" : check->problems[0].message);
    Result<std::vector<ImageSummary>> list = store_->List();
    ASSERT_TRUE(list.ok()) << list.status().ToString();
    EXPECT_TRUE(list->empty());
    EXPECT_TRUE(std::filesystem::is_empty(dir_.Sub("root/ingest")));
  }

  TempDir dir_;
  TestImage image_;
  std::string source_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreApiTest, OpenFailsWhereNoDirectoryCanBeMade) {
  Result<std::unique_ptr<Store>> s = Store::Open("/proc/self/status/root");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("/proc/self/status"), std::string::npos)
      << s.status().message();
  StoreOptions bad;
  bad.lock_timeout = std::chrono::milliseconds(-1);
  EXPECT_EQ(Store::Open(dir_.Sub("other"), bad).status().code(), Code::kInvalidArgument);
}

TEST_F(StoreApiTest, PullListInspectTagUntagRemove) {
  std::vector<Progress> seen;
  PullOptions options;
  options.names = {"example.com/app:1"};
  options.on_progress = [&seen](const Progress& p) { seen.push_back(p); };
  Result<PullResult> pulled = store_->Pull(source_, options);
  ASSERT_TRUE(pulled.ok()) << pulled.status().ToString();
  EXPECT_EQ(pulled->id, image_.id.ToString());
  EXPECT_EQ(pulled->manifest_digest, image_.manifest_digest.ToString());
  EXPECT_EQ(pulled->names, std::vector<std::string>{"example.com/app:1"});
  EXPECT_EQ(pulled->blobs_written, 4);  // config, two layers, manifest
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().done, seen.back().total);

  Result<std::vector<ImageSummary>> list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, image_.id.ToString());
  EXPECT_EQ((*list)[0].architecture, "amd64");

  Result<ImageDetails> details = store_->Inspect("example.com/app:1");
  ASSERT_TRUE(details.ok()) << details.status().ToString();
  EXPECT_EQ(details->manifest, image_.manifest);
  EXPECT_EQ(details->config, image_.config);
  ASSERT_EQ(details->layers.size(), 2u);
  EXPECT_EQ(details->layers[1].diff_id, image_.diff_ids[1].ToString());

  ASSERT_TRUE(store_->Tag("example.com/app:1", "example.com/app:2").ok());
  EXPECT_EQ(store_->List("example.com/app:2")->size(), 1u);
  ASSERT_TRUE(store_->Untag(image_.id.ToString(), {"example.com/app:2"}).ok());
  EXPECT_TRUE(store_->List("example.com/app:2")->empty());
  Result<RemoveResult> removed = store_->Remove("example.com/app:1");
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(removed->deleted, image_.id.ToString());
  Result<GcReport> gc = store_->Gc();
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_EQ(gc->blobs_removed.size(), 4u);
  ExpectCleanAndEmpty();
}

TEST_F(StoreApiTest, ErrorsNameWhatFailed) {
  Result<PullResult> r = store_->Pull("bogus:/path");
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  r = store_->Pull("oci:" + dir_.Sub("missing") + ":v1");
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find(dir_.Sub("missing")), std::string::npos);
  PullOptions bad_platform;
  bad_platform.platform = "not a platform";
  EXPECT_EQ(store_->Pull(source_, bad_platform).status().code(), Code::kInvalidArgument);
  PullOptions bad_creds;
  bad_creds.registry.credentials = ":";
  EXPECT_EQ(store_->Pull(source_, bad_creds).status().code(), Code::kInvalidArgument);

  Result<ImageDetails> d = store_->Inspect("example.com/missing:1");
  EXPECT_EQ(d.status().code(), Code::kNotFound);
  EXPECT_NE(d.status().message().find("example.com/missing"), std::string::npos);
  EXPECT_EQ(store_->Tag("example.com/missing:1", "a/b").code(), Code::kNotFound);
  EXPECT_EQ(store_->Remove("example.com/missing:1").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->Push("example.com/missing:1", "oci:" + dir_.Sub("out")).status().code(),
            Code::kNotFound);
  ASSERT_TRUE(store_->Pull(source_).ok());
  Result<PushResult> p = store_->Push(image_.id.ToString());  // no destination, not a reference
  EXPECT_EQ(p.status().code(), Code::kInvalidArgument);
  EXPECT_NE(p.status().message().find("registry reference"), std::string::npos);
}

TEST_F(StoreApiTest, PushToOciLayoutAndPullBack) {
  ASSERT_TRUE(store_->Pull(source_, Named("example.com/app:1")).ok());
  std::vector<Progress> seen;
  PushOptions options;
  options.on_progress = [&seen](const Progress& p) { seen.push_back(p); };
  Result<PushResult> pushed =
      store_->Push("example.com/app:1", "oci:" + dir_.Sub("copy") + ":c1", options);
  ASSERT_TRUE(pushed.ok()) << pushed.status().ToString();
  EXPECT_EQ(pushed->manifest_digest, image_.manifest_digest.ToString());
  EXPECT_FALSE(seen.empty());

  Result<std::unique_ptr<Store>> other = Store::Open(dir_.Sub("root2"));
  ASSERT_TRUE(other.ok());
  Result<PullResult> back = (*other)->Pull("oci:" + dir_.Sub("copy") + ":c1");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, image_.id.ToString());
}

TEST_F(StoreApiTest, PullCancelledBeforeItStartsChangesNothing) {
  CancelToken token;
  token.Cancel();
  PullOptions options;
  options.cancel = token;
  Result<PullResult> r = store_->Pull(source_, options);
  EXPECT_EQ(r.status().code(), Code::kCancelled) << r.status().ToString();
  ExpectCleanAndEmpty();
}

TEST_F(StoreApiTest, PullCancelledMidStreamRecordsNothing) {
  // A layer large enough to be read in several pieces, cancelled at its first bytes.
  const TestImage big = BigLayout(62);
  CancelToken token;
  PullOptions options;
  options.cancel = token;
  int calls_after_cancel = 0;
  options.on_progress = [&](const Progress& p) {
    if (token.cancelled()) ++calls_after_cancel;
    if (p.digest == Digest::Of(big.layers[0]).ToString() && p.done > 0) token.Cancel();
  };
  Result<PullResult> r = store_->Pull("oci:" + dir_.Sub("big") + ":v1", options);
  ASSERT_EQ(r.status().code(), Code::kCancelled) << r.status().ToString();
  EXPECT_NE(r.status().message().find("pull cancelled"), std::string::npos);
  EXPECT_LE(calls_after_cancel, 1);  // the read in flight, at most
  ExpectCleanAndEmpty();
}

TEST_F(StoreApiTest, AProgressCallbackThatThrowsMidBlobFailsThePullAndRecordsNothing) {
  // 8 MiB: the layer is received on the pulling thread and written on a second one, which must
  // be stopped and joined when the exception passes (else std::terminate).
  const TestImage big = BigLayout(63);
  PullOptions options;
  options.on_progress = [&](const Progress& p) {
    if (p.digest == Digest::Of(big.layers[0]).ToString() && p.done > (2u << 20)) {
      throw std::runtime_error("the embedder's callback failed");
    }
  };
  Result<PullResult> r = store_->Pull("oci:" + dir_.Sub("big") + ":v1", options);
  ASSERT_EQ(r.status().code(), Code::kInternal) << r.status().ToString();
  EXPECT_NE(r.status().message().find("the embedder's callback failed"), std::string::npos)
      << r.status().message();
  ExpectCleanAndEmpty();
  // The store is usable afterwards.
  Result<PullResult> again = store_->Pull("oci:" + dir_.Sub("big") + ":v1", {});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
}

TEST_F(StoreApiTest, PushCancelledMidStreamWritesNothing) {
  const TestImage big = BigLayout(63);
  ASSERT_TRUE(store_->Pull("oci:" + dir_.Sub("big") + ":v1", Named("big/app:1")).ok());
  CancelToken token;
  PushOptions options;
  options.cancel = token;
  options.on_progress = [&](const Progress& p) {
    if (p.done > 0 && p.done < p.total) token.Cancel();
  };
  Result<PushResult> r = store_->Push("big/app:1", "oci:" + dir_.Sub("out") + ":o1", options);
  ASSERT_EQ(r.status().code(), Code::kCancelled) << r.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("out/index.json")));
  Result<CheckReport> check = store_->Check();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->clean());
  EXPECT_EQ(store_->List()->size(), 1u);
  // The same push without a cancel goes through.
  EXPECT_TRUE(store_->Push("big/app:1", "oci:" + dir_.Sub("out") + ":o1").ok());
}

TEST_F(StoreApiTest, LocksShowTheLeaseOfAPullInFlight) {
  bool saw_lease = false;
  PullOptions options;
  options.on_progress = [&](const Progress&) {
    if (saw_lease) return;
    Result<LocksReport> locks = store_->Locks(true);
    ASSERT_TRUE(locks.ok()) << locks.status().ToString();
    for (const LeaseEntry& l : locks->leases) {
      saw_lease = saw_lease || (l.alive && l.label.find("pull oci:") != std::string::npos);
    }
  };
  ASSERT_TRUE(store_->Pull(source_, options).ok());
  EXPECT_TRUE(saw_lease);
  Result<LocksReport> after = store_->Locks();
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->leases.empty());
}

TEST_F(StoreApiTest, CheckFindsAndRepairsAnOrphanBlob) {
  ASSERT_TRUE(Env::Default()
                  ->WriteFileAtomically(dir_.Sub("root/blobs/sha256/" + std::string(64, 'a')), "x")
                  .ok());
  Result<CheckReport> check = store_->Check();
  ASSERT_TRUE(check.ok());
  ASSERT_EQ(check->problems.size(), 1u);
  EXPECT_EQ(check->problems[0].kind, "orphan-file");
  EXPECT_FALSE(check->clean());
  Result<CheckReport> repaired = store_->Check(Repairing());
  ASSERT_TRUE(repaired.ok());
  EXPECT_TRUE(repaired->clean());
}

TEST(StoreApiVersion, IsTheProjectVersion) { EXPECT_STREQ(Version(), "0.1.0"); }

}  // namespace
}  // namespace imgstore::testing
