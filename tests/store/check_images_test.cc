// Check and Repair of the metadata: each problem kind of meta.db (dangling names, rows that refer
// to nothing, broken layer chains, image/manifest and index mismatches) is made with raw SQL
// (foreign keys off, as a bug or a hand edit would), detected, and repaired where promised.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "common/temp_dir.h"
#include "common/test_image.h"
#include "store/store.h"
#include "store_test_util.h"

namespace imgstore::store {
namespace {

using testing::AddImageWithBlobs;
using testing::Describe;
using testing::ExpectConsistent;
using testing::ImageOf;
using testing::TestImage;

class CheckImagesTest : public testing::StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (HasFatalFailure()) return;
    image_ = Add(1, "a:1");
    other_ = Add(2, "b:1");
    ExpectConsistent(*store_);
  }

  // Adds a 3-layer image of `seed` under `name`, blobs and all.
  TestImage Add(uint32_t seed, const std::string& name) {
    TestImage image = ImageOf(seed, 3);
    AddImageWithBlobs(*store_, image, {name});
    return image;
  }

  // Runs SQL on meta.db behind the store's back, with foreign keys off (SQLite's default).
  void RawSql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((store_->root() + "/meta.db").c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    std::string message = error ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << message << " in " << sql;
  }

  CheckReport CheckNow() {
    auto r = store_->Check();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CheckReport{};
  }

  CheckReport RepairNow() {
    auto r = store_->Repair();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CheckReport{};
  }

  static int Count(const CheckReport& r, ProblemKind kind) {
    int n = 0;
    for (const CheckProblem& p : r.problems) n += p.kind == kind ? 1 : 0;
    return n;
  }

  static std::string Q(const Digest& d) { return "'" + d.ToString() + "'"; }

  TestImage image_;
  TestImage other_;
};

TEST_F(CheckImagesTest, DanglingNameIsFoundAndDropped) {
  RawSql(
      "INSERT INTO names (reference, repository, tag, image_id, added) VALUES "
      "('docker.io/library/ghost:1', 'docker.io/library/ghost', '1', 'sha256:" +
      std::string(64, 'e') + "', 0)");
  CheckReport r = CheckNow();
  ASSERT_EQ(r.problems.size(), 1u) << Describe(r);
  EXPECT_EQ(r.problems[0].kind, ProblemKind::kDanglingName);
  EXPECT_NE(r.problems[0].message.find("docker.io/library/ghost:1"), std::string::npos);
  EXPECT_EQ(r.unresolved(), 1u);

  CheckReport fixed = RepairNow();
  ASSERT_EQ(fixed.problems.size(), 1u);
  EXPECT_TRUE(fixed.problems[0].repaired);
  EXPECT_EQ(fixed.unresolved(), 0u);
  ExpectConsistent(*store_);
  EXPECT_TRUE(store_->ResolveImage("a:1").ok());
}

TEST_F(CheckImagesTest, UnrecordedLayerBlobIsReportedAndNotRepaired) {
  Digest layer = Digest::Of(image_.layers[1]);
  RawSql("DELETE FROM blobs WHERE digest = " + Q(layer));
  CheckReport r = CheckNow();
  EXPECT_EQ(Count(r, ProblemKind::kMissingReference), 1) << Describe(r);
  EXPECT_EQ(Count(r, ProblemKind::kOrphanFile), 1) << Describe(r);  // its file, now unrecorded
  CheckReport after = RepairNow();
  EXPECT_EQ(after.unresolved(), 1u) << Describe(after);
  // The image's other data is untouched.
  EXPECT_TRUE(*store_->HasBlob(image_.id));
  EXPECT_TRUE(store_->ResolveImage("b:1").ok());
}

TEST_F(CheckImagesTest, UnrecordedConfigManifestAndIndexAreReported) {
  RawSql("DELETE FROM blobs WHERE digest = " + Q(image_.id));
  CheckReport r = CheckNow();
  // The image's id and its manifest's config both name the config blob.
  EXPECT_EQ(Count(r, ProblemKind::kMissingReference), 2) << Describe(r);

  RawSql("DELETE FROM manifests WHERE digest = " + Q(other_.manifest_digest));
  r = CheckNow();
  EXPECT_EQ(Count(r, ProblemKind::kMissingReference), 3) << Describe(r);

  RawSql("UPDATE images SET index_digest = 'sha256:" + std::string(64, 'd') +
         "' WHERE id = " + Q(other_.id));
  r = CheckNow();
  EXPECT_EQ(Count(r, ProblemKind::kMissingReference), 4) << Describe(r);
}

TEST_F(CheckImagesTest, IndexEntriesAndLeasePinsWithoutParentAreDropped) {
  RawSql(
      "INSERT INTO index_entries (index_digest, position, manifest_digest, media_type, size) "
      "VALUES ('sha256:" +
      std::string(64, 'c') + "', 0, " + Q(image_.manifest_digest) + ", 'x', 1)");
  RawSql("INSERT INTO lease_blobs (lease_id, blob_digest) VALUES ('nolease', " + Q(image_.id) +
         ")");
  CheckReport r = CheckNow();
  EXPECT_EQ(Count(r, ProblemKind::kMissingReference), 2) << Describe(r);
  CheckReport fixed = RepairNow();
  EXPECT_EQ(fixed.unresolved(), 0u) << Describe(fixed);
  ExpectConsistent(*store_);
}

TEST_F(CheckImagesTest, BrokenLayerChainsAreReported) {
  std::vector<Digest> chains = ChainIds(image_.diff_ids);
  // A parent link that skips a layer.
  RawSql("UPDATE layers SET parent_chain_id = " + Q(chains[0]) +
         " WHERE chain_id = " + Q(chains[2]));
  CheckReport r = CheckNow();
  ASSERT_EQ(Count(r, ProblemKind::kLayerChain), 1) << Describe(r);
  EXPECT_NE(r.problems[0].message.find(image_.id.ToString()), std::string::npos);
  RawSql("UPDATE layers SET parent_chain_id = " + Q(chains[1]) +
         " WHERE chain_id = " + Q(chains[2]));
  ExpectConsistent(*store_);

  // A diffID that does not give the recorded chainID.
  RawSql("UPDATE layers SET diff_id = " + Q(image_.diff_ids[0]) +
         " WHERE chain_id = " + Q(chains[1]));
  r = CheckNow();
  EXPECT_EQ(Count(r, ProblemKind::kLayerChain), 1) << Describe(r);
  RawSql("UPDATE layers SET diff_id = " + Q(image_.diff_ids[1]) +
         " WHERE chain_id = " + Q(chains[1]));

  // A missing layers row: the image's chain and the child's parent both point nowhere.
  RawSql("DELETE FROM layers WHERE chain_id = " + Q(chains[1]));
  r = CheckNow();
  EXPECT_EQ(Count(r, ProblemKind::kLayerChain), 2) << Describe(r);
  EXPECT_EQ(RepairNow().unresolved(), 2u);

  // A gap in the positions.
  RawSql("DELETE FROM image_layers WHERE image_id = " + Q(other_.id) + " AND position = 1");
  r = CheckNow();
  EXPECT_EQ(Count(r, ProblemKind::kLayerChain), 3) << Describe(r);
}

TEST_F(CheckImagesTest, AnImageWhoseManifestIsAnotherConfigsIsReported) {
  RawSql("UPDATE images SET manifest_digest = " + Q(other_.manifest_digest) +
         " WHERE id = " + Q(image_.id));
  CheckReport r = CheckNow();
  EXPECT_EQ(Count(r, ProblemKind::kImageMismatch), 1) << Describe(r);
  EXPECT_EQ(RepairNow().unresolved(), 1u);
}

TEST_F(CheckImagesTest, IndexMismatchesAreReported) {
  // A blob recorded as an index that does not list the image's manifest.
  const std::string index_bytes = "{\"schemaVersion\":2,\"manifests\":[]}";
  Digest index = Digest::Of(index_bytes);
  ASSERT_TRUE(store_->IngestBlob(index, {}, index_bytes).ok());
  RawSql("INSERT INTO manifests (digest, media_type, kind, config_digest, created) VALUES (" +
         Q(index) + ", 'application/vnd.oci.image.index.v1+json', 'index', NULL, 0)");
  RawSql("UPDATE images SET index_digest = " + Q(index) + " WHERE id = " + Q(image_.id));
  CheckReport r = CheckNow();
  ASSERT_EQ(Count(r, ProblemKind::kIndexMismatch), 1) << Describe(r);
  EXPECT_NE(r.problems[0].message.find("does not list"), std::string::npos);

  // Listing it makes the store consistent again.
  RawSql(
      "INSERT INTO index_entries (index_digest, position, manifest_digest, media_type, size) "
      "VALUES (" +
      Q(index) + ", 0, " + Q(image_.manifest_digest) + ", 'x', 1)");
  ExpectConsistent(*store_);

  // An index that is in fact an image manifest.
  RawSql("UPDATE images SET index_digest = " + Q(other_.manifest_digest) +
         " WHERE id = " + Q(other_.id));
  r = CheckNow();
  EXPECT_EQ(Count(r, ProblemKind::kIndexMismatch), 1) << Describe(r);
  // Entries under a manifest that is not an index.
  RawSql(
      "INSERT INTO index_entries (index_digest, position, manifest_digest, media_type, size) "
      "VALUES (" +
      Q(image_.manifest_digest) + ", 0, " + Q(other_.manifest_digest) + ", 'x', 1)");
  r = CheckNow();
  EXPECT_EQ(Count(r, ProblemKind::kIndexMismatch), 2) << Describe(r);
}

TEST_F(CheckImagesTest, GcKeepsAnIndexAndTheManifestsItLists) {
  const std::string index_bytes = "{\"schemaVersion\":2,\"manifests\":[\"x\"]}";
  Digest index = Digest::Of(index_bytes);
  ASSERT_TRUE(store_->IngestBlob(index, {}, index_bytes).ok());
  RawSql("INSERT INTO manifests (digest, media_type, kind, config_digest, created) VALUES (" +
         Q(index) + ", 'application/vnd.oci.image.index.v1+json', 'index', NULL, 0)");
  RawSql("UPDATE images SET index_digest = " + Q(index) + " WHERE id = " + Q(image_.id));
  // The index also lists b's manifest (another platform); b itself is removed.
  RawSql(
      "INSERT INTO index_entries (index_digest, position, manifest_digest, media_type, size) "
      "VALUES (" +
      Q(index) + ", 0, " + Q(image_.manifest_digest) + ", 'x', 1), (" + Q(index) + ", 1, " +
      Q(other_.manifest_digest) + ", 'x', 1)");
  ExpectConsistent(*store_);
  auto removed = store_->Remove("b:1");
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  auto gc = store_->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_TRUE(*store_->HasBlob(index));
  EXPECT_TRUE(*store_->HasBlob(other_.manifest_digest)) << "a manifest listed by a kept index went";
  EXPECT_FALSE(*store_->HasBlob(other_.id));  // b's config: nothing keeps it
  ExpectConsistent(*store_);

  // Once a's image is gone too, the index and everything under it go.
  ASSERT_TRUE(store_->Remove("a:1").ok());
  gc = store_->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_FALSE(*store_->HasBlob(index));
  EXPECT_FALSE(*store_->HasBlob(image_.id));
  ExpectConsistent(*store_);
  auto blobs = store_->ListBlobs();
  ASSERT_TRUE(blobs.ok());
  EXPECT_TRUE(blobs->empty());
}

}  // namespace
}  // namespace imgstore::store
