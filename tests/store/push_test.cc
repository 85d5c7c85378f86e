// Store::Push to an in-memory destination (fake_transport.h): the exact bytes go out, the blobs
// are pinned by a lease while the destination works and released after, and the refusals
// (unknown image, destination failure) name what failed and leave the store as it was. Also what
// a push passes besides the bytes (the blobs' known origins, max_parallel), the origin it records
// after a successful push, and the progress of the bytes the destination reads.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "common/temp_dir.h"
#include "common/test_image.h"
#include "store/fake_transport.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::store {
namespace {

using testing::CountRows;
using testing::ExpectConsistent;
using testing::FakeDestination;
using testing::FakeSource;
using testing::TestImage;

class PushTest : public testing::StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (HasFatalFailure()) return;
    image_ = testing::ImageOf(31, 3);
    FakeSource src;
    src.AddImage(image_);
    PullOptions o;
    o.names = {"example.com/app:1", "alpine"};
    Result<PullResult> r = store_->Pull(src, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  TestImage image_;
};

TEST_F(PushTest, WritesTheExactBytes) {
  for (const std::string& ref :
       {std::string("alpine"), image_.id.ToString(), std::string("example.com/app:1"),
        "example.com/app@" + image_.manifest_digest.ToString()}) {
    FakeDestination dest;
    Status s = store_->Push(ref, dest);
    ASSERT_TRUE(s.ok()) << ref << ": " << s.ToString();
    EXPECT_EQ(dest.calls, 1);
    EXPECT_EQ(dest.manifest.bytes, image_.manifest);
    EXPECT_EQ(dest.manifest.media_type, image_.manifest_media_type);
    EXPECT_EQ(dest.config, image_.config);
    EXPECT_EQ(dest.diff_ids, image_.diff_ids);
    EXPECT_EQ(dest.names,
              (std::vector<std::string>{"docker.io/library/alpine:latest", "example.com/app:1"}));
    ASSERT_EQ(dest.blobs.size(), 3u);
    for (const std::string& l : image_.layers) EXPECT_EQ(dest.blobs[Digest::Of(l).ToString()], l);
  }
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM leases"), 0);
}

TEST_F(PushTest, PinsTheImageWhileStreaming) {
  FakeDestination dest;
  int64_t pinned = -1;
  int64_t leases = -1;
  dest.probe = [&](const images::ImageToWrite&) {
    pinned = CountRows(*store_, "SELECT count(DISTINCT blob_digest) FROM lease_blobs");
    leases = CountRows(*store_, "SELECT count(*) FROM leases WHERE label LIKE 'push alpine to %'");
  };
  ASSERT_TRUE(store_->Push("alpine", dest).ok());
  EXPECT_EQ(pinned, 5);  // manifest, config, three layers
  EXPECT_EQ(leases, 1);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM lease_blobs"), 0);
}

TEST_F(PushTest, AnImageRemovedDuringThePushStillStreams) {
  // rmi while the destination is writing: the blobs stay pinned, the push completes.
  FakeDestination dest;
  dest.probe = [&](const images::ImageToWrite&) {
    Result<RemoveImageResult> r = store_->Remove(image_.id.ToString(), /*force=*/true);
    EXPECT_TRUE(r.ok());
  };
  ASSERT_TRUE(store_->Push("alpine", dest).ok());
  EXPECT_EQ(dest.blobs.size(), 3u);
}

TEST_F(PushTest, UnknownImageIsNotFound) {
  FakeDestination dest;
  Status s = store_->Push("nosuch:tag", dest);
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_NE(s.message().find("push nosuch:tag to fake-dest:test"), std::string::npos)
      << s.ToString();
  EXPECT_EQ(dest.calls, 0);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM leases"), 0);
}

TEST_F(PushTest, DestinationFailureIsReturnedAndReleasesTheLease) {
  FakeDestination dest;
  dest.fail_after_first_blob = Status(Code::kNoSpace, "fake-dest:test: no space left");
  Status s = store_->Push("alpine", dest);
  EXPECT_EQ(s.code(), Code::kNoSpace);
  EXPECT_NE(s.message().find("push alpine to fake-dest:test"), std::string::npos);
  EXPECT_NE(s.message().find("no space left"), std::string::npos);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM leases"), 0);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM images"), 1);
  ExpectConsistent(*store_);
}

TEST_F(PushTest, DestinationCannotReadOtherBlobs) {
  FakeDestination dest;
  Status asked;
  dest.probe = [&](const images::ImageToWrite& img) {
    images::Descriptor other;
    other.digest = Digest::Of("something else");
    Result<std::unique_ptr<SequentialFile>> f = img.open_blob(other);
    asked = f.ok() ? Status::OK() : f.status();
  };
  ASSERT_TRUE(store_->Push("alpine", dest).ok());
  EXPECT_EQ(asked.code(), Code::kNotFound);
}

TEST_F(PushTest, PassesTheKnownOriginsAndMaxParallel) {
  // The same image pulled again from a registry repository: its blobs gain that origin.
  FakeSource src;
  src.AddImage(image_);
  src.origin = "h:1/a/b";
  ASSERT_TRUE(store_->Pull(src).ok());

  FakeDestination dest;
  PushOptions o;
  o.max_parallel = 5;
  ASSERT_TRUE(store_->Push("alpine", dest, o).ok());
  EXPECT_EQ(dest.max_parallel, 5);
  std::map<Digest, std::vector<std::string>> want = {{image_.id, {"h:1/a/b"}}};
  for (const std::string& l : image_.layers) want[Digest::Of(l)] = {"h:1/a/b"};
  EXPECT_EQ(dest.origins, want) << "config and layers, not the manifest";

  FakeDestination defaults;
  ASSERT_TRUE(store_->Push("alpine", defaults).ok());
  EXPECT_EQ(defaults.max_parallel, 3);
}

TEST_F(PushTest, AnImageWithoutOriginsPassesNone) {
  FakeDestination dest;
  ASSERT_TRUE(store_->Push("alpine", dest).ok());
  EXPECT_TRUE(dest.origins.empty());
}

TEST_F(PushTest, RecordsTheDestinationAsAnOriginAfterASuccessfulPush) {
  FakeDestination failing;
  failing.origin = "h:1/e/f";
  failing.fail = Status(Code::kUnavailable, "fake-dest:test: gone away");
  EXPECT_FALSE(store_->Push("alpine", failing).ok());
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM blob_origins"), 0) << "nothing was pushed";

  FakeDestination dest;
  dest.origin = "h:1/c/d";
  ASSERT_TRUE(store_->Push("alpine", dest).ok());
  EXPECT_EQ(*store_->BlobOrigins(image_.id), std::vector<std::string>{"h:1/c/d"});
  for (const std::string& l : image_.layers) {
    EXPECT_EQ(*store_->BlobOrigins(Digest::Of(l)), std::vector<std::string>{"h:1/c/d"});
  }
  EXPECT_TRUE(store_->BlobOrigins(image_.manifest_digest)->empty());
  // The next push learns it.
  FakeDestination next;
  ASSERT_TRUE(store_->Push("alpine", next).ok());
  EXPECT_EQ(next.origins.at(image_.id), std::vector<std::string>{"h:1/c/d"});
  ExpectConsistent(*store_);
}

TEST_F(PushTest, FailingToRecordTheOriginIsAWarningNotAFailure) {
  {
    Result<WriteTransaction> txn = store_->db().BeginWrite();
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(txn->Exec("CREATE TRIGGER no_origins BEFORE INSERT ON blob_origins "
                          "BEGIN SELECT RAISE(ABORT, 'origins are refused'); END")
                    .ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  FakeDestination dest;
  dest.origin = "h:1/c/d";
  PushOptions o;
  std::vector<std::string> warnings;
  o.on_warning = [&](const std::string& line) { warnings.push_back(line); };
  Status s = store_->Push("alpine", dest, o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(dest.calls, 1);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("push alpine to fake-dest:test"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("h:1/c/d"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("origins are refused"), std::string::npos) << warnings[0];
  EXPECT_EQ(warnings[0].find('\n'), std::string::npos);
  EXPECT_TRUE(store_->BlobOrigins(image_.id)->empty());
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM leases"), 0);
  // Without a callback the push succeeds all the same.
  EXPECT_TRUE(store_->Push("alpine", dest).ok());
}

TEST_F(PushTest, ReportsTheBytesReadThroughOpenBlob) {
  for (bool parallel : {false, true}) {
    SCOPED_TRACE(parallel ? "layers read at once" : "layers read in turn");
    FakeDestination dest;
    dest.parallel_reads = parallel;
    dest.report_config_skipped = true;
    PushOptions o;
    std::map<Digest, std::vector<images::BlobProgress>> seen;  // serialized by the store
    std::atomic<bool> inside = false;
    std::atomic<int> overlaps = 0;
    o.on_progress = [&](const images::BlobProgress& p) {
      if (inside.exchange(true)) ++overlaps;
      seen[p.digest].push_back(p);
      inside = false;
    };
    ASSERT_TRUE(store_->Push("alpine", dest, o).ok());
    EXPECT_EQ(overlaps, 0);
    for (const std::string& l : image_.layers) {
      EXPECT_EQ(dest.blobs[Digest::Of(l).ToString()], l);
      const std::vector<images::BlobProgress>& reports = seen[Digest::Of(l)];
      ASSERT_FALSE(reports.empty());
      uint64_t last = 0;
      for (const images::BlobProgress& p : reports) {
        EXPECT_EQ(p.total, l.size());
        EXPECT_GE(p.done, last);
        EXPECT_FALSE(p.skipped);
        last = p.done;
      }
      EXPECT_EQ(last, l.size());
    }
    // What the destination reports itself passes through.
    ASSERT_EQ(seen[image_.id].size(), 1u);
    EXPECT_TRUE(seen[image_.id][0].skipped);
  }
}

}  // namespace
}  // namespace imgstore::store
