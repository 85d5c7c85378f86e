// Store::Push to an in-memory destination (fake_transport.h): the exact bytes go out, the blobs
// are pinned by a lease while the destination works and released after, and the refusals
// (unknown image, destination failure) name what failed and leave the store as it was.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace imgstore::store
