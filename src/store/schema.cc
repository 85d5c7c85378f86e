// Schema of meta.db and its migrations (see schema.h; the tables are explained in docs/store.md).
#include "store/schema.h"

#include <string>

namespace imgstore::store {
namespace {

// Version 1: the whole store of issue 3. Digests are text "sha256:<hex>"; times are Unix
// nanoseconds. Tables keyed by digests are WITHOUT ROWID (the key is the row's identity, and a
// second rowid index would only cost space). Every column that a foreign key or a frequent query
// looks up has an index, so that deletes (foreign-key checks) and `list` never scan.
constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE blobs (
  digest      TEXT PRIMARY KEY,
  size        INTEGER NOT NULL CHECK (size >= 0),
  media_type  TEXT NOT NULL DEFAULT '',
  created     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE manifests (
  digest        TEXT PRIMARY KEY REFERENCES blobs(digest),
  media_type    TEXT NOT NULL,
  kind          TEXT NOT NULL CHECK (kind IN ('manifest', 'index')),
  config_digest TEXT REFERENCES blobs(digest),
  created       INTEGER NOT NULL,
  CHECK ((kind = 'manifest') = (config_digest IS NOT NULL))
) WITHOUT ROWID;
CREATE INDEX manifests_by_config ON manifests(config_digest);

CREATE TABLE index_entries (
  index_digest    TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
  position        INTEGER NOT NULL CHECK (position >= 0),
  manifest_digest TEXT NOT NULL,
  media_type      TEXT NOT NULL,
  size            INTEGER NOT NULL CHECK (size >= 0),
  os              TEXT NOT NULL DEFAULT '',
  architecture    TEXT NOT NULL DEFAULT '',
  variant         TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (index_digest, position)
) WITHOUT ROWID;
CREATE INDEX index_entries_by_manifest ON index_entries(manifest_digest);

CREATE TABLE images (
  id              TEXT PRIMARY KEY REFERENCES blobs(digest),
  manifest_digest TEXT NOT NULL REFERENCES manifests(digest),
  index_digest    TEXT REFERENCES manifests(digest),
  created         INTEGER,
  added           INTEGER NOT NULL,
  size            INTEGER NOT NULL CHECK (size >= 0),
  os              TEXT NOT NULL DEFAULT '',
  architecture    TEXT NOT NULL DEFAULT '',
  variant         TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX images_by_manifest ON images(manifest_digest);
CREATE INDEX images_by_index ON images(index_digest);
CREATE INDEX images_by_created ON images(created DESC, id);

CREATE TABLE names (
  reference  TEXT PRIMARY KEY,
  repository TEXT NOT NULL,
  tag        TEXT,
  image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  added      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX names_by_image ON names(image_id);
CREATE INDEX names_by_repository ON names(repository);

CREATE TABLE layers (
  chain_id         TEXT PRIMARY KEY,
  diff_id          TEXT NOT NULL,
  parent_chain_id  TEXT REFERENCES layers(chain_id),
  diff_id_verified INTEGER NOT NULL DEFAULT 0 CHECK (diff_id_verified IN (0, 1)),
  unpack_state     TEXT NOT NULL DEFAULT 'none'
                   CHECK (unpack_state IN ('none', 'incomplete', 'complete')),
  unpacked_size    INTEGER,
  created          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX layers_by_parent ON layers(parent_chain_id);

CREATE TABLE image_layers (
  image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  position    INTEGER NOT NULL CHECK (position >= 0),
  blob_digest TEXT NOT NULL REFERENCES blobs(digest),
  media_type  TEXT NOT NULL,
  size        INTEGER NOT NULL CHECK (size >= 0),
  chain_id    TEXT NOT NULL REFERENCES layers(chain_id),
  PRIMARY KEY (image_id, position)
) WITHOUT ROWID;
CREATE INDEX image_layers_by_blob ON image_layers(blob_digest);
CREATE INDEX image_layers_by_chain ON image_layers(chain_id);

CREATE TABLE leases (
  id      TEXT PRIMARY KEY,
  label   TEXT NOT NULL DEFAULT '',
  created INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE lease_blobs (
  lease_id    TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
  blob_digest TEXT NOT NULL,
  PRIMARY KEY (lease_id, blob_digest)
) WITHOUT ROWID;
CREATE INDEX lease_blobs_by_blob ON lease_blobs(blob_digest);
)sql";

// Version 2: gc's intent log. gc records each blob file and each layer directory it is about to
// remove in the same write transaction that deletes their rows, and deletes the entry once the
// file is gone; Store::Open finishes the entries of a gc that was killed in between (docs/gc.md).
// Usually empty, so the query of every open reads one empty page.
constexpr std::string_view kSchemaV2 = R"sql(
CREATE TABLE gc_pending (
  kind   TEXT NOT NULL CHECK (kind IN ('blob', 'layer')),
  digest TEXT NOT NULL,
  PRIMARY KEY (kind, digest)
) WITHOUT ROWID;
)sql";

// Version 3: the registry repositories known to hold a blob ("127.0.0.1:5000/a/b"), recorded by
// pulls from and pushes to registries, so that a push to another repository of the same registry
// can ask for a cross-repository mount instead of uploading. The rows belong to the blob: they go
// by cascade when its row is deleted (gc, RemoveBlob, Repair). `added` orders them by recency
// (strictly increasing per blob) for the bound on rows per blob (kMaxBlobOrigins). The primary
// key starts with the digest, so the cascade and the lookups by blob use it.
constexpr std::string_view kSchemaV3 = R"sql(
CREATE TABLE blob_origins (
  digest     TEXT NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
  repository TEXT NOT NULL CHECK (repository != ''),
  added      INTEGER NOT NULL,
  PRIMARY KEY (digest, repository)
) WITHOUT ROWID;
)sql";

// Version 4: mounts (docs/layers.md "Mounts"). A mount outlives the process that made it, so
// what it uses is recorded here and gc keeps it even after rmi removed the image: the manifest
// (and through it the config), the layer chains and the layer blobs. image_id is not a foreign
// key of images for that reason. state: 'creating' and 'removing' rows belong to a process that
// holds the lock "mount-NAME"; with the lock free, Store::Open finishes their removal.
constexpr std::string_view kSchemaV4 = R"sql(
CREATE TABLE mounts (
  name            TEXT PRIMARY KEY,
  image_id        TEXT NOT NULL REFERENCES blobs(digest),
  manifest_digest TEXT NOT NULL REFERENCES manifests(digest),
  image_name      TEXT NOT NULL DEFAULT '',
  kind            TEXT NOT NULL CHECK (kind IN ('overlay', 'copy')),
  state           TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'removing')),
  created         INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX mounts_by_manifest ON mounts(manifest_digest);
CREATE INDEX mounts_by_image ON mounts(image_id);

CREATE TABLE mount_layers (
  mount_name  TEXT NOT NULL REFERENCES mounts(name) ON DELETE CASCADE,
  position    INTEGER NOT NULL CHECK (position >= 0),
  chain_id    TEXT NOT NULL REFERENCES layers(chain_id),
  blob_digest TEXT NOT NULL REFERENCES blobs(digest),
  PRIMARY KEY (mount_name, position)
) WITHOUT ROWID;
CREATE INDEX mount_layers_by_chain ON mount_layers(chain_id);
CREATE INDEX mount_layers_by_blob ON mount_layers(blob_digest);
)sql";

constexpr Migration kMigrations[] = {
    {1, kSchemaV1},
    {2, kSchemaV2},
    {3, kSchemaV3},
    {4, kSchemaV4},
};

Result<int> ReadVersion(Transaction& txn) {
  Result<Statement> st = txn.Prepare("PRAGMA user_version");
  if (!st.ok()) return st.status();
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  return *row ? static_cast<int>(st->ColumnInt64(0)) : 0;
}

Status TooNew(const Db& db, int found, int supported) {
  return Status(Code::kUnsupported, "database " + db.path() + ": store schema version " +
                                        std::to_string(found) +
                                        " is newer than this imgstore supports (" +
                                        std::to_string(supported) + "); upgrade imgstore");
}

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

Result<int> SchemaVersion(Db& db) {
  Result<ReadTransaction> txn = db.BeginRead();
  if (!txn.ok()) return txn.status();
  return ReadVersion(*txn);
}

Status EnsureSchema(Db& db) { return EnsureSchema(db, Migrations()); }

Status EnsureSchema(Db& db, std::span<const Migration> migrations) {
  int latest = migrations.empty() ? 0 : migrations.back().version;
  // The common case, a current database, costs one read and no write lock.
  Result<int> version = SchemaVersion(db);
  if (!version.ok()) return version.status();
  if (*version > latest) return TooNew(db, *version, latest);
  if (*version == latest) return Status::OK();

  // Several processes may open an old store at once: the write lock serializes them, and the
  // version read again under it tells the later ones that the work is done.
  Result<WriteTransaction> txn = db.BeginWrite();
  if (!txn.ok()) return txn.status();
  version = ReadVersion(*txn);
  if (!version.ok()) return version.status();
  if (*version > latest) return TooNew(db, *version, latest);
  for (const Migration& m : migrations) {
    if (m.version <= *version) continue;
    Status s = txn->Exec(m.sql);
    if (!s.ok()) {
      return s.WithContext("migrate store schema to version " + std::to_string(m.version));
    }
  }
  IMGSTORE_RETURN_IF_ERROR(txn->Exec("PRAGMA user_version = " + std::to_string(latest)));
  return txn->Commit();
}

}  // namespace imgstore::store
