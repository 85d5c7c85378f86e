// Blob origins (schema v3, Store::BlobOrigins): recorded for the config and layers (not the
// manifest) by a pull from a source that names a registry repository, and only when the pull
// succeeds; gone with their blob (gc, RemoveBlob, Repair); at most kMaxBlobOrigins per blob, the
// most recent; and a row without its blob is a problem Check reports and Repair drops. Push's use
// of them is in push_test.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "store/fake_transport.h"
#include "store/images_internal.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::store {
namespace {

using testing::CountRows;
using testing::ExpectConsistent;
using testing::FakeSource;
using testing::TestImage;

using Origins = std::vector<std::string>;

class BlobOriginsTest : public testing::StoreTest {
 protected:
  // Pulls `image` from a fake source whose BlobOrigin() is `origin`.
  Status PullFrom(const TestImage& image, const std::string& origin) {
    FakeSource src;
    src.AddImage(image);
    src.origin = origin;
    return store_->Pull(src).status();
  }
  Origins OriginsOf(const Digest& d) {
    Result<Origins> o = store_->BlobOrigins(d);
    EXPECT_TRUE(o.ok()) << o.status().ToString();
    return o.ok() ? *o : Origins{"(error)"};
  }
  int64_t Rows() { return CountRows(*store_, "SELECT count(*) FROM blob_origins"); }
};

TEST_F(BlobOriginsTest, APullRecordsItsSourceForTheConfigAndLayers) {
  TestImage img = testing::ImageOf(1, 2);
  ASSERT_TRUE(PullFrom(img, "h:1/a/b").ok());
  EXPECT_EQ(OriginsOf(img.id), Origins{"h:1/a/b"});
  for (const std::string& l : img.layers) EXPECT_EQ(OriginsOf(Digest::Of(l)), Origins{"h:1/a/b"});
  EXPECT_EQ(OriginsOf(img.manifest_digest), Origins{}) << "a manifest is not mounted";
  EXPECT_EQ(Rows(), 3);

  // The same image from another repository (every blob present): the origin is added, sorted.
  ASSERT_TRUE(PullFrom(img, "a:5000/z").ok());
  EXPECT_EQ(OriginsOf(img.id), (Origins{"a:5000/z", "h:1/a/b"}));
  // A source that is not a registry adds nothing.
  ASSERT_TRUE(PullFrom(img, "").ok());
  EXPECT_EQ(Rows(), 6);
  ExpectConsistent(*store_);
}

TEST_F(BlobOriginsTest, AFailedPullRecordsNone) {
  TestImage img = testing::ImageOf(2, 2);
  FakeSource src;
  src.AddImage(img);
  src.origin = "h:1/a/b";
  std::string& layer = src.blobs[Digest::Of(img.layers[1]).ToString()];
  layer[0] ^= 1;
  ASSERT_FALSE(store_->Pull(src).ok());
  EXPECT_TRUE(*store_->HasBlob(img.id)) << "the config was ingested before the failure";
  EXPECT_EQ(OriginsOf(img.id), Origins{});
  EXPECT_EQ(Rows(), 0);
}

TEST_F(BlobOriginsTest, AnUnknownBlobHasNone) {
  EXPECT_EQ(OriginsOf(Digest::Of("never stored")), Origins{});
}

TEST_F(BlobOriginsTest, GcRemovesThemWithTheBlobs) {
  TestImage kept = testing::ImageOf(3, 1);
  TestImage gone = testing::ImageOf(4, 2);
  ASSERT_TRUE(PullFrom(kept, "h:1/kept").ok());
  ASSERT_TRUE(PullFrom(gone, "h:1/gone").ok());
  ASSERT_TRUE(store_->Remove(gone.id.ToString(), /*force=*/true).ok());
  Result<GcReport> gc = store_->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_EQ(gc->blobs_removed.size(), 4u);  // config, two layers, manifest
  EXPECT_EQ(OriginsOf(gone.id), Origins{});
  EXPECT_EQ(OriginsOf(kept.id), Origins{"h:1/kept"});
  EXPECT_EQ(Rows(), 2);
  ExpectConsistent(*store_);
}

TEST_F(BlobOriginsTest, RemoveBlobAndRepairDropThem) {
  TestImage img = testing::ImageOf(5, 2);
  ASSERT_TRUE(PullFrom(img, "h:1/a/b").ok());
  // A referenced blob cannot go, and keeps its origins.
  const Digest l0 = Digest::Of(img.layers[0]);
  const Digest l1 = Digest::Of(img.layers[1]);
  EXPECT_EQ(store_->RemoveBlob(l0).code(), Code::kFailedPrecondition);
  EXPECT_EQ(OriginsOf(l0), Origins{"h:1/a/b"});

  ASSERT_TRUE(store_->Remove(img.id.ToString(), /*force=*/true).ok());
  ASSERT_TRUE(store_->RemoveBlob(l0).ok());
  EXPECT_EQ(OriginsOf(l0), Origins{});
  EXPECT_EQ(OriginsOf(l1), Origins{"h:1/a/b"});

  // A blob whose file is lost: Repair drops its row, and its origins go with it.
  ASSERT_EQ(std::remove(store_->BlobPath(l1).c_str()), 0);
  Result<CheckReport> repaired = store_->Repair();
  ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
  ASSERT_EQ(repaired->problems.size(), 1u) << testing::Describe(*repaired);
  EXPECT_TRUE(repaired->problems[0].repaired);
  EXPECT_EQ(OriginsOf(l1), Origins{});
  EXPECT_EQ(Rows(), 1);  // the config's
  ExpectConsistent(*store_);
}

TEST_F(BlobOriginsTest, EachBlobKeepsTheMostRecentOnly) {
  TestImage img = testing::ImageOf(6, 1);
  const Digest layer = Digest::Of(img.layers[0]);
  auto repo = [](int i) {
    char name[32];
    std::snprintf(name, sizeof name, "h:1/r%02d", i);
    return std::string(name);
  };
  for (int i = 0; i < kMaxBlobOrigins + 4; ++i) ASSERT_TRUE(PullFrom(img, repo(i)).ok());
  Origins want;
  for (int i = 4; i < kMaxBlobOrigins + 4; ++i) want.push_back(repo(i));
  EXPECT_EQ(OriginsOf(layer), want);
  EXPECT_EQ(OriginsOf(img.id), want);
  EXPECT_EQ(Rows(), 2 * kMaxBlobOrigins);

  // Recording a known origin again makes it the most recent: the next new one drops r05.
  ASSERT_TRUE(PullFrom(img, repo(4)).ok());
  ASSERT_TRUE(PullFrom(img, repo(99)).ok());
  Origins now = OriginsOf(layer);
  EXPECT_EQ(now.size(), static_cast<size_t>(kMaxBlobOrigins));
  EXPECT_NE(std::find(now.begin(), now.end(), repo(4)), now.end());
  EXPECT_EQ(std::find(now.begin(), now.end(), repo(5)), now.end());
  EXPECT_NE(std::find(now.begin(), now.end(), repo(99)), now.end());
}

TEST_F(BlobOriginsTest, RecordingSkipsBlobsThatAreNotStored) {
  TestImage img = testing::ImageOf(7, 1);
  ASSERT_TRUE(PullFrom(img, "").ok());
  const Digest absent = Digest::Of("gc took it");
  const Digest digests[] = {img.id, absent};
  Result<WriteTransaction> txn = store_->db().BeginWrite();
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE(internal::RecordBlobOrigins(*txn, digests, "h:1/a/b", 1).ok());
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(OriginsOf(img.id), Origins{"h:1/a/b"});
  EXPECT_EQ(OriginsOf(absent), Origins{});
  EXPECT_EQ(Rows(), 1);
}

TEST_F(BlobOriginsTest, CheckReportsOriginsWithoutTheirBlobAndRepairDropsThem) {
  // Only a connection with foreign keys off (SQLite's default, not imgstore's) can write one.
  const std::string orphan = Digest::Of("no such blob").ToString();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((store_->root() + "/meta.db").c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  const std::string sql =
      "INSERT INTO blob_origins (digest, repository, added) VALUES ('" + orphan + "', 'h:1/x', 1)";
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);

  Result<CheckReport> check = store_->Check();
  ASSERT_TRUE(check.ok()) << check.status().ToString();
  ASSERT_EQ(check->problems.size(), 1u) << testing::Describe(*check);
  EXPECT_EQ(check->problems[0].kind, ProblemKind::kMissingReference);
  EXPECT_NE(check->problems[0].message.find(orphan), std::string::npos)
      << check->problems[0].message;
  Result<CheckReport> repair = store_->Repair();
  ASSERT_TRUE(repair.ok()) << repair.status().ToString();
  ASSERT_EQ(repair->problems.size(), 1u);
  EXPECT_TRUE(repair->problems[0].repaired);
  EXPECT_EQ(Rows(), 0);
  ExpectConsistent(*store_);
}

}  // namespace
}  // namespace imgstore::store
