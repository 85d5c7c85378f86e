// Tests of store/schema.h: creation, migration of an older version (all at once, or not at
// all; version 1 to 2 adds gc's intent log, 2 to 3 the blob origins), refusal of a newer one,
// and the constraints and indexes the later increments rely on.
#include "store/schema.h"

#include <gtest/gtest.h>

#include <set>

#include "common/temp_dir.h"
#include "store/store.h"

namespace imgstore::store {
namespace {

using imgstore::testing::TempDir;

std::unique_ptr<Db> OpenDb(const std::string& path) {
  Result<std::unique_ptr<Db>> db = Db::Open(path);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  return db.ok() ? std::move(*db) : nullptr;
}

Status Exec(Db& db, const std::string& sql) {
  Result<WriteTransaction> txn = db.BeginWrite();
  if (!txn.ok()) return txn.status();
  IMGSTORE_RETURN_IF_ERROR(txn->Exec(sql));
  return txn->Commit();
}

std::set<std::string> Names(Db& db, const std::string& type) {
  std::set<std::string> out;
  Result<ReadTransaction> txn = db.BeginRead();
  EXPECT_TRUE(txn.ok());
  Result<Statement> st =
      txn->Prepare("SELECT name FROM sqlite_schema WHERE type = ? AND name NOT LIKE 'sqlite_%'");
  EXPECT_TRUE(st.ok());
  st->Bind(1, type);
  while (*st->Step()) out.insert(st->ColumnText(0));
  return out;
}

TEST(SchemaTest, NewDatabaseGetsTheWholeSchema) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("meta.db"));
  ASSERT_EQ(*SchemaVersion(*db), 0);
  ASSERT_TRUE(EnsureSchema(*db).ok());
  EXPECT_EQ(*SchemaVersion(*db), kSchemaVersion);
  EXPECT_EQ(Migrations().back().version, kSchemaVersion);
  EXPECT_EQ(Names(*db, "table"),
            (std::set<std::string>{"blobs", "manifests", "index_entries", "images", "names",
                                   "layers", "image_layers", "leases", "lease_blobs", "gc_pending",
                                   "blob_origins", "mounts", "mount_layers"}));
  std::set<std::string> indexes = Names(*db, "index");
  for (const char* want : {"images_by_created", "names_by_image", "image_layers_by_blob",
                           "lease_blobs_by_blob", "manifests_by_config"}) {
    EXPECT_EQ(indexes.count(want), 1u) << want;
  }
  // Idempotent: a second open changes nothing.
  ASSERT_TRUE(EnsureSchema(*db).ok());
  EXPECT_EQ(*SchemaVersion(*db), kSchemaVersion);
}

TEST(SchemaTest, NewerVersionIsRefusedWithAClearError) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("meta.db"));
  ASSERT_TRUE(EnsureSchema(*db).ok());
  ASSERT_TRUE(Exec(*db, "PRAGMA user_version = " + std::to_string(kSchemaVersion + 5)).ok());
  Status s = EnsureSchema(*db);
  EXPECT_EQ(s.code(), Code::kUnsupported);
  std::string want = "store schema version " + std::to_string(kSchemaVersion + 5) +
                     " is newer than this imgstore supports (" + std::to_string(kSchemaVersion) +
                     "); upgrade imgstore";
  EXPECT_NE(s.message().find(want), std::string::npos) << s.ToString();
  EXPECT_EQ(*SchemaVersion(*db), kSchemaVersion + 5) << "a refused open must not touch it";

  // And through Store::Open.
  TempDir root;
  {
    Result<std::unique_ptr<Store>> store = Store::Open(root.path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
  }
  auto meta = OpenDb(root.Sub("meta.db"));
  ASSERT_TRUE(Exec(*meta, "PRAGMA user_version = 999").ok());
  Result<std::unique_ptr<Store>> store = Store::Open(root.path());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("store schema version 999 is newer"), std::string::npos)
      << store.status().ToString();
}

TEST(SchemaTest, OlderVersionIsMigratedStepByStep) {
  static constexpr Migration kV1[] = {{1, "CREATE TABLE t (a INTEGER);"}};
  static constexpr Migration kV3[] = {
      {1, "CREATE TABLE t (a INTEGER);"},
      {2, "ALTER TABLE t ADD COLUMN b TEXT NOT NULL DEFAULT 'x';"},
      {3, "CREATE INDEX t_by_b ON t(b); UPDATE t SET b = 'migrated';"},
  };
  TempDir dir;
  auto db = OpenDb(dir.Sub("meta.db"));
  ASSERT_TRUE(EnsureSchema(*db, kV1).ok());
  ASSERT_TRUE(Exec(*db, "INSERT INTO t (a) VALUES (7)").ok());
  ASSERT_EQ(*SchemaVersion(*db), 1);

  ASSERT_TRUE(EnsureSchema(*db, kV3).ok());
  EXPECT_EQ(*SchemaVersion(*db), 3);
  Result<ReadTransaction> txn = db->BeginRead();
  ASSERT_TRUE(txn.ok());
  Result<Statement> st = txn->Prepare("SELECT a, b FROM t");
  ASSERT_TRUE(st.ok() && *st->Step());
  EXPECT_EQ(st->ColumnInt64(0), 7) << "migration lost data";
  EXPECT_EQ(st->ColumnText(1), "migrated");
  EXPECT_EQ(Names(*db, "index").count("t_by_b"), 1u);
}

TEST(SchemaTest, AFailedMigrationLeavesTheOldVersionIntact) {
  static constexpr Migration kV1[] = {{1, "CREATE TABLE t (a INTEGER);"}};
  static constexpr Migration kBroken[] = {
      {1, "CREATE TABLE t (a INTEGER);"},
      {2, "CREATE TABLE u (x INTEGER);"},
      {3, "ALTER TABLE no_such_table ADD COLUMN c INTEGER;"},
  };
  TempDir dir;
  auto db = OpenDb(dir.Sub("meta.db"));
  ASSERT_TRUE(EnsureSchema(*db, kV1).ok());
  Status s = EnsureSchema(*db, kBroken);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("version 3"), std::string::npos) << s.ToString();
  EXPECT_EQ(*SchemaVersion(*db), 1);
  EXPECT_EQ(Names(*db, "table"), (std::set<std::string>{"t"}))
      << "migration 2 must have been rolled back with 3";
}

TEST(SchemaTest, RealSchemaMigratesAStoreThatClaimsVersionZero) {
  // A database created by an imgstore that predates the schema (version 0, empty): the whole
  // chain of migrations runs when a store opens it.
  TempDir root;
  {
    auto db = OpenDb(root.Sub("meta.db"));
    ASSERT_TRUE(Exec(*db, "PRAGMA user_version = 0").ok());
  }
  Result<std::unique_ptr<Store>> store = Store::Open(root.path());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(*SchemaVersion((*store)->db()), kSchemaVersion);
}

TEST(SchemaTest, AVersion1StoreGetsGcsIntentLogAndKeepsItsRows) {
  // A store made by an imgstore of schema version 1 (migration 1 only), with a blob in it.
  TempDir root;
  const std::string blob = "sha256:" + std::string(64, 'b');
  {
    auto db = OpenDb(root.Sub("meta.db"));
    ASSERT_TRUE(EnsureSchema(*db, Migrations().first(1)).ok());
    ASSERT_EQ(*SchemaVersion(*db), 1);
    EXPECT_EQ(Names(*db, "table").count("gc_pending"), 0u);
    ASSERT_TRUE(Exec(*db, "INSERT INTO blobs VALUES ('" + blob + "', 3, '', 1)").ok());
  }
  Result<std::unique_ptr<Store>> store = Store::Open(root.path());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Db& db = (*store)->db();
  EXPECT_EQ(*SchemaVersion(db), kSchemaVersion);
  EXPECT_EQ(Names(db, "table").count("gc_pending"), 1u);
  Result<ReadTransaction> txn = db.BeginRead();
  ASSERT_TRUE(txn.ok());
  Result<Statement> st = txn->Prepare("SELECT digest FROM blobs");
  ASSERT_TRUE(st.ok() && *st->Step());
  EXPECT_EQ(st->ColumnText(0), blob) << "migration lost data";
}

TEST(SchemaTest, AVersion2StoreGetsBlobOriginsAndKeepsItsRows) {
  // A store made by an imgstore of schema version 2, with a blob, an image's worth of rows
  // around it and an intent-log entry.
  TempDir root;
  const std::string blob = "sha256:" + std::string(64, 'b');
  const std::string pending = "sha256:" + std::string(64, 'e');
  {
    auto db = OpenDb(root.Sub("meta.db"));
    ASSERT_TRUE(EnsureSchema(*db, Migrations().first(2)).ok());
    ASSERT_EQ(*SchemaVersion(*db), 2);
    EXPECT_EQ(Names(*db, "table").count("blob_origins"), 0u);
    ASSERT_TRUE(Exec(*db, "INSERT INTO blobs VALUES ('" + blob +
                              "', 3, 'x', 1); INSERT INTO gc_pending VALUES ('blob', '" + pending +
                              "'); INSERT INTO leases VALUES ('L', 'pull', 2);"
                              "INSERT INTO lease_blobs VALUES ('L', '" +
                              blob + "')")
                    .ok());
  }
  {
    // Opening the raw database again after the migration (not through a Store, whose open
    // would finish the intent log and drop the dead lease) shows every row kept.
    auto db = OpenDb(root.Sub("meta.db"));
    ASSERT_TRUE(EnsureSchema(*db).ok());
    EXPECT_EQ(*SchemaVersion(*db), kSchemaVersion);
    EXPECT_EQ(Names(*db, "table").count("blob_origins"), 1u);
    Result<ReadTransaction> txn = db->BeginRead();
    ASSERT_TRUE(txn.ok());
    for (const char* q :
         {"SELECT digest || size || media_type FROM blobs", "SELECT digest FROM gc_pending",
          "SELECT lease_id || blob_digest FROM lease_blobs"}) {
      Result<std::vector<std::string>> rows = txn->SelectColumn(q);
      ASSERT_TRUE(rows.ok()) << rows.status().ToString();
      EXPECT_EQ(rows->size(), 1u) << q << ": migration lost data";
    }
    EXPECT_EQ(*txn->SelectColumn("SELECT digest || size || media_type FROM blobs"),
              std::vector<std::string>{blob + "3x"});
  }
  Result<std::unique_ptr<Store>> store = Store::Open(root.path());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(*SchemaVersion((*store)->db()), kSchemaVersion);
  Result<BlobInfo> info = (*store)->GetBlobInfo(*Digest::Parse(blob));
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->size, 3u);
}

TEST(SchemaTest, BlobOriginsBelongToTheirBlob) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("meta.db"));
  ASSERT_TRUE(EnsureSchema(*db).ok());
  const std::string b = "sha256:" + std::string(64, 'b');
  // No origin for a blob that is not recorded, and none with an empty repository.
  EXPECT_EQ(Exec(*db, "INSERT INTO blob_origins VALUES ('" + b + "', 'h:1/a', 1)").code(),
            Code::kFailedPrecondition);
  ASSERT_TRUE(Exec(*db, "INSERT INTO blobs VALUES ('" + b + "', 1, '', 1)").ok());
  EXPECT_EQ(Exec(*db, "INSERT INTO blob_origins VALUES ('" + b + "', '', 1)").code(),
            Code::kInvalidArgument);
  ASSERT_TRUE(Exec(*db, "INSERT INTO blob_origins VALUES ('" + b + "', 'h:1/a', 1), ('" + b +
                            "', 'h:1/b', 2)")
                  .ok());
  EXPECT_EQ(Exec(*db, "INSERT INTO blob_origins VALUES ('" + b + "', 'h:1/a', 3)").code(),
            Code::kAlreadyExists);
  // They do not keep the blob: deleting it takes them along.
  ASSERT_TRUE(Exec(*db, "DELETE FROM blobs").ok());
  Result<ReadTransaction> txn = db->BeginRead();
  ASSERT_TRUE(txn.ok());
  EXPECT_TRUE(txn->SelectColumn("SELECT repository FROM blob_origins")->empty());
}

TEST(SchemaTest, GcPendingIsOneEntryPerKindAndDigestReadInKeyOrder) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("meta.db"));
  ASSERT_TRUE(EnsureSchema(*db).ok());
  const std::string d = "sha256:" + std::string(64, 'd');
  ASSERT_TRUE(
      Exec(*db, "INSERT INTO gc_pending VALUES ('blob', '" + d + "'), ('layer', '" + d + "')")
          .ok());
  EXPECT_EQ(Exec(*db, "INSERT INTO gc_pending VALUES ('blob', '" + d + "')").code(),
            Code::kAlreadyExists);
  EXPECT_EQ(Exec(*db, "INSERT INTO gc_pending VALUES ('manifest', '" + d + "')").code(),
            Code::kInvalidArgument)
      << "only blobs and layers";
  // Store::Open reads it on every open: by its key, with no sort.
  Result<ReadTransaction> txn = db->BeginRead();
  ASSERT_TRUE(txn.ok());
  Result<Statement> st = txn->Prepare(
      "EXPLAIN QUERY PLAN SELECT kind, digest FROM gc_pending WHERE (kind, digest) > (?1, ?2) "
      "ORDER BY kind, digest LIMIT ?3");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  std::string plan;
  while (*st->Step()) plan += st->ColumnText(3) + "\n";
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  EXPECT_NE(plan.find("PRIMARY KEY"), std::string::npos) << plan;
}

TEST(SchemaTest, ForeignKeysProtectReferencedBlobs) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("meta.db"));
  ASSERT_TRUE(EnsureSchema(*db).ok());
  const std::string m = "sha256:" + std::string(64, 'a');
  const std::string c = "sha256:" + std::string(64, 'c');
  // A manifest whose blob is not stored is refused.
  Status s =
      Exec(*db, "INSERT INTO manifests VALUES ('" + m +
                    "', 'application/vnd.oci.image.manifest.v1+json', 'manifest', '" + c + "', 1)");
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.ToString();
  ASSERT_TRUE(Exec(*db, "INSERT INTO blobs VALUES ('" + m + "', 10, '', 1), ('" + c +
                            "', 5, '', 1);"
                            "INSERT INTO manifests VALUES ('" +
                            m + "', 'application/vnd.oci.image.manifest.v1+json', 'manifest', '" +
                            c +
                            "', 1);"
                            "INSERT INTO images (id, manifest_digest, added, size) VALUES ('" +
                            c + "', '" + m +
                            "', 1, 15);"
                            "INSERT INTO names VALUES ('docker.io/library/a:latest', "
                            "'docker.io/library/a', 'latest', '" +
                            c + "', 1)")
                  .ok());
  // The config blob cannot go while the image exists; deleting the image cascades to its names.
  EXPECT_EQ(Exec(*db, "DELETE FROM blobs WHERE digest = '" + c + "'").code(),
            Code::kFailedPrecondition);
  ASSERT_TRUE(Exec(*db, "DELETE FROM images").ok());
  Result<ReadTransaction> txn = db->BeginRead();
  ASSERT_TRUE(txn.ok());
  Result<Statement> st = txn->Prepare("SELECT count(*) FROM names");
  ASSERT_TRUE(st.ok() && *st->Step());
  EXPECT_EQ(st->ColumnInt64(0), 0);
}

TEST(SchemaTest, ListQueryUsesIndexesNotScansOfJoins) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("meta.db"));
  ASSERT_TRUE(EnsureSchema(*db).ok());
  Result<ReadTransaction> txn = db->BeginRead();
  ASSERT_TRUE(txn.ok());
  // The shape of `imgstore list`: images newest first, each with its names.
  Result<Statement> st = txn->Prepare(
      "EXPLAIN QUERY PLAN SELECT i.id, i.manifest_digest, i.created, i.size, n.reference "
      "FROM images i LEFT JOIN names n ON n.image_id = i.id ORDER BY i.created DESC, i.id");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  std::string plan;
  while (*st->Step()) plan += st->ColumnText(3) + "\n";
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  EXPECT_NE(plan.find("names_by_image"), std::string::npos) << plan;
}

}  // namespace
}  // namespace imgstore::store
