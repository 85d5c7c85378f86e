// Db: SQLite connections, statements and transactions for meta.db (see db.h).
#include "store/db.h"

#include <chrono>
#include <thread>
#include <utility>

namespace imgstore::store {
namespace {

std::string Seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

}  // namespace

Status SqliteStatus(sqlite3* handle, int rc, const std::string& db_path, std::string_view what,
                    std::chrono::milliseconds busy_timeout) {
  int primary = rc & 0xff;
  std::string detail = handle != nullptr ? sqlite3_errmsg(handle) : sqlite3_errstr(rc);
  std::string msg = "database " + db_path + ": " + std::string(what) + ": " + detail;
  switch (primary) {
    case SQLITE_BUSY:
      // The busy handler gave up: another process held the write lock for the whole timeout.
      return Status(Code::kTimeout,
                    "timed out after " + Seconds(busy_timeout) + " waiting for the database " +
                        db_path + " (another process holds its write lock): " + std::string(what));
    case SQLITE_LOCKED:
      return Status(Code::kBusy, msg);
    case SQLITE_FULL:
      return Status(Code::kNoSpace, msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status(Code::kCorruption, msg);
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return Status(Code::kPermissionDenied, msg);
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
      return Status(Code::kIOError, msg);
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status(Code::kAlreadyExists, msg);
      }
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return Status(Code::kFailedPrecondition, msg);
      return Status(Code::kInvalidArgument, msg);
    case SQLITE_NOMEM:
      return Status(Code::kInternal, msg);
    default:
      return Status(Code::kInternal, msg);
  }
}

// --- Statement ---------------------------------------------------------------------------------

Statement::Statement(Statement&& other) noexcept
    : conn_(std::exchange(other.conn_, nullptr)),
      stmt_(std::exchange(other.stmt_, nullptr)),
      sql_(std::move(other.sql_)),
      cached_(other.cached_),
      bind_error_(std::move(other.bind_error_)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    Release();
    conn_ = std::exchange(other.conn_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
    sql_ = std::move(other.sql_);
    cached_ = other.cached_;
    bind_error_ = std::move(other.bind_error_);
  }
  return *this;
}

Statement::~Statement() { Release(); }

void Statement::Release() {
  if (stmt_ == nullptr) return;
  if (cached_) {
    conn_->Return(stmt_, sql_);
  } else {
    sqlite3_finalize(stmt_);
  }
  stmt_ = nullptr;
}

Statement& Statement::Bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = conn_->Error(rc, "bind " + sql_);
  return *this;
}

Statement& Statement::Bind(int index, std::string_view text) {
  int rc =
      sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = conn_->Error(rc, "bind " + sql_);
  return *this;
}

Statement& Statement::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = conn_->Error(rc, "bind " + sql_);
  return *this;
}

Statement& Statement::Bind(int index, const std::optional<int64_t>& value) {
  return value ? Bind(index, *value) : BindNull(index);
}

Result<bool> Statement::Step() {
  if (!bind_error_.ok()) return bind_error_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Status s = conn_->Error(rc, sql_);
  sqlite3_reset(stmt_);  // the statement is usable again after an error
  return s;
}

Status Statement::Run() {
  while (true) {
    Result<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::OK();
  }
}

void Statement::Reset() { sqlite3_reset(stmt_); }

int64_t Statement::ColumnInt64(int index) const { return sqlite3_column_int64(stmt_, index); }

std::string Statement::ColumnText(int index) const {
  const unsigned char* text = sqlite3_column_text(stmt_, index);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, index)));
}

bool Statement::ColumnIsNull(int index) const {
  return sqlite3_column_type(stmt_, index) == SQLITE_NULL;
}

std::optional<int64_t> Statement::ColumnOptionalInt64(int index) const {
  if (ColumnIsNull(index)) return std::nullopt;
  return ColumnInt64(index);
}

// --- Connection --------------------------------------------------------------------------------

Connection::~Connection() {
  for (auto& [sql, cached] : cache_) sqlite3_finalize(cached.stmt);
  // close_v2: never fails for want of finalized statements; every statement is ours and gone.
  sqlite3_close_v2(handle_);
}

Result<Statement> Connection::Prepare(std::string_view sql) {
  std::string key(sql);
  auto it = cache_.find(key);
  if (it != cache_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return Statement(this, it->second.stmt, std::move(key), /*cached=*/true);
  }
  sqlite3_stmt* stmt = nullptr;
  // Statements that fill the cache live as long as the connection: tell SQLite (PERSISTENT).
  bool cache_it = it == cache_.end();
  int rc = sqlite3_prepare_v3(handle_, sql.data(), static_cast<int>(sql.size()),
                              cache_it ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "prepare " + key);
  if (stmt == nullptr) {
    return Status(Code::kInternal, "database " + db_->path() + ": empty statement: " + key);
  }
  if (cache_it) {
    cache_.emplace(key, Cached{stmt, true});
    return Statement(this, stmt, std::move(key), /*cached=*/true);
  }
  return Statement(this, stmt, std::move(key), /*cached=*/false);
}

void Connection::Return(sqlite3_stmt* stmt, const std::string& sql) {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  auto it = cache_.find(sql);
  if (it != cache_.end() && it->second.stmt == stmt) it->second.in_use = false;
}

Status Connection::Exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(handle_, text.c_str(), nullptr, nullptr, &err);
  if (err != nullptr) sqlite3_free(err);  // Error() reads the same text from the connection
  if (rc != SQLITE_OK) return Error(rc, text);
  return Status::OK();
}

int64_t Connection::Changes() const { return sqlite3_changes64(handle_); }

Status Connection::Error(int rc, std::string_view what) const {
  return SqliteStatus(handle_, rc, db_->path(), what, db_->options().busy_timeout);
}

// --- Transactions ------------------------------------------------------------------------------

Transaction::Transaction(Transaction&& other) noexcept
    : db_(other.db_), conn_(std::move(other.conn_)), open_(std::exchange(other.open_, false)) {}

Transaction::~Transaction() { Finish(); }

void Transaction::Finish() {
  if (!conn_) return;
  if (open_) {
    // A failed ROLLBACK leaves SQLite to roll back when the connection next begins (or closes);
    // the connection is dropped rather than pooled so that state cannot leak into a later user.
    Status s = conn_->Exec("ROLLBACK");
    open_ = false;
    if (!s.ok() || !sqlite3_get_autocommit(conn_->handle())) {
      conn_.reset();
      return;
    }
  }
  db_->GiveBack(std::move(conn_));
}

WriteTransaction::~WriteTransaction() { Finish(); }

Status WriteTransaction::Commit() {
  if (!conn_ || !open_) {
    return Status(Code::kFailedPrecondition, "commit of a transaction that is not open");
  }
  Status s = conn_->Exec("COMMIT");
  // The connection goes back to the pool when the transaction object is destroyed, not here:
  // statements prepared in the transaction may still be alive (`return txn->Commit();` destroys
  // them after this call), and they must not touch a connection that another thread took from
  // the pool meanwhile (found by ThreadSanitizer, tests/api/threads_test.cc).
  if (!s.ok()) {
    // COMMIT can fail with SQLITE_BUSY and leave the transaction open; the destructor rolls it
    // back then.
    if (sqlite3_get_autocommit(conn_->handle())) open_ = false;
    return s;
  }
  open_ = false;
  return Status::OK();
}

// --- Db ----------------------------------------------------------------------------------------

Result<std::unique_ptr<Db>> Db::Open(const std::string& path, const DbOptions& options) {
  std::unique_ptr<Db> db(new Db(path, options));
  Result<std::unique_ptr<Connection>> conn = db->Connect();
  if (!conn.ok()) return conn.status();
  // WAL is a property of the database file: set once, it sticks. Readers then never block
  // writers, and each read transaction is a snapshot. Switching a new file to WAL needs it
  // alone, and SQLite answers BUSY at once (no busy handler) when another process opens the same
  // new store at that moment: retry until the busy timeout, as the handler would.
  const auto deadline = std::chrono::steady_clock::now() + options.busy_timeout;
  Result<Statement> wal = Status(Code::kInternal, "unreached");
  Result<bool> row = false;
  for (;;) {
    wal = (*conn)->Prepare("PRAGMA journal_mode=WAL");
    if (!wal.ok()) return wal.status();
    row = wal->Step();
    if (row.ok() || row.status().code() != Code::kTimeout ||
        std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    wal = Statement();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!row.ok()) return row.status();
  std::string mode = *row ? wal->ColumnText(0) : "";
  wal = Statement();
  if (mode != "wal") {
    return Status(Code::kIOError, "database " + path + ": cannot switch to WAL mode (journal " +
                                      "mode is \"" + mode + "\")");
  }
  db->GiveBack(std::move(*conn));
  return db;
}

Db::~Db() {
  std::lock_guard<std::mutex> lock(pool_mu_);
  idle_.clear();
}

Result<std::unique_ptr<Connection>> Db::Connect() {
  sqlite3* handle = nullptr;
  // NOMUTEX: a connection is only ever used by the thread its transaction belongs to.
  int flags =
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  int rc = sqlite3_open_v2(path_.c_str(), &handle, flags,
                           options_.vfs.empty() ? nullptr : options_.vfs.c_str());
  if (rc != SQLITE_OK) {
    Status s = SqliteStatus(handle, rc, path_, "open", options_.busy_timeout);
    sqlite3_close_v2(handle);
    return s;
  }
  auto conn = std::make_unique<Connection>(this, handle);
  sqlite3_extended_result_codes(handle, 1);
  sqlite3_busy_timeout(handle, static_cast<int>(options_.busy_timeout.count()));
  // FULL: a committed transaction survives a power loss (the WAL is synced at each commit);
  // metadata commits are few and small, so the cost is one fsync per commit.
  IMGSTORE_RETURN_IF_ERROR(conn->Exec("PRAGMA synchronous=FULL"));
  IMGSTORE_RETURN_IF_ERROR(conn->Exec("PRAGMA foreign_keys=ON"));
  return conn;
}

Result<std::unique_ptr<Connection>> Db::Lend() {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Connection> conn = std::move(idle_.back());
      idle_.pop_back();
      return conn;
    }
  }
  return Connect();
}

void Db::GiveBack(std::unique_ptr<Connection> conn) {
  std::lock_guard<std::mutex> lock(pool_mu_);
  idle_.push_back(std::move(conn));
}

Result<ReadTransaction> Db::BeginRead() {
  Result<std::unique_ptr<Connection>> conn = Lend();
  if (!conn.ok()) return conn.status();
  ReadTransaction txn(this, std::move(*conn));
  IMGSTORE_RETURN_IF_ERROR(txn.conn_->Exec("BEGIN DEFERRED"));
  txn.open_ = true;
  // A deferred transaction takes its snapshot at its first read; read now so that the snapshot
  // is the database as of BeginRead.
  Result<Statement> first = txn.Prepare("SELECT 1 FROM sqlite_schema LIMIT 1");
  if (!first.ok()) return first.status();
  Result<bool> row = first->Step();
  if (!row.ok()) return row.status();
  return txn;
}

bool WriterGate::Enter(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(mu_);
  if (!cv_.wait_for(l, timeout, [this] { return !taken_; })) return false;
  taken_ = true;
  return true;
}

void WriterGate::Leave() {
  {
    std::lock_guard<std::mutex> l(mu_);
    taken_ = false;
  }
  cv_.notify_one();
}

Result<WriteTransaction> Db::BeginWrite() {
  if (!writer_gate_.Enter(options_.busy_timeout)) {
    return Status(Code::kTimeout, "timed out after " + Seconds(options_.busy_timeout) +
                                      " waiting for the database " + path_ +
                                      " (another thread of this process is writing)");
  }
  std::unique_ptr<WriterGate, LeaveWriterGate> writer(&writer_gate_);
  Result<std::unique_ptr<Connection>> conn = Lend();
  if (!conn.ok()) return conn.status();
  WriteTransaction txn(this, std::move(*conn), std::move(writer));
  IMGSTORE_RETURN_IF_ERROR(txn.conn_->Exec("BEGIN IMMEDIATE"));
  txn.open_ = true;
  return txn;
}

Result<std::vector<std::string>> Transaction::SelectColumn(std::string_view sql) {
  Result<Statement> st = Prepare(sql);
  if (!st.ok()) return st.status();
  std::vector<std::string> values;
  for (;;) {
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) return values;
    values.push_back(st->ColumnText(0));
  }
}

}  // namespace imgstore::store
