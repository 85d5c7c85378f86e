// Schema of meta.db: the tables of the store, their version (PRAGMA user_version), and the
// ordered migrations that bring an older database up to date.
//
// The version is the number of the last migration applied. Opening a database of a newer
// version fails (this imgstore would misread it); an older one is migrated in a single write
// transaction, so a crash or error leaves it exactly at its old version. Migrations are append
// only: once released, a migration's SQL never changes; a change is a new migration.
//
// docs/store.md describes every table and why it is shaped so.
#pragma once

#include <span>
#include <string_view>

#include "store/db.h"
#include "util/status.h"

namespace imgstore::store {

struct Migration {
  int version;           // the schema version after this migration (1, 2, ...)
  std::string_view sql;  // statements that return no rows, run in the migration's transaction
};

// The migrations of this imgstore, in order; the last one's version is kSchemaVersion.
std::span<const Migration> Migrations();
inline constexpr int kSchemaVersion = 4;

// The database's PRAGMA user_version (0 for a new, empty database).
Result<int> SchemaVersion(Db& db);

// Brings the database to the newest version of `migrations` (default: Migrations()). A database
// already there costs one read; a newer one is kUnsupported ("store schema version N is newer
// than this imgstore supports (M); upgrade imgstore").
Status EnsureSchema(Db& db);
Status EnsureSchema(Db& db, std::span<const Migration> migrations);

}  // namespace imgstore::store
