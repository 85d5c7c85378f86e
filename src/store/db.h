// Db: the store's thin wrapper over SQLite (meta.db): connections, statements, transactions, and
// the mapping of SQLite errors to Status.
//
// Threads: a Db is used by many threads at once. SQLite connections are not shared between
// threads; instead a Db keeps a pool of connections and lends one to each transaction for its
// lifetime (a new connection is opened when all are lent, so there is no fixed cap). Readers
// therefore never wait for each other or for an in-process writer (WAL gives each read
// transaction its own snapshot), and one slow read does not hold up the rest of the process.
// Writers of one process are serialized by an in-process mutex before BEGIN IMMEDIATE, so they
// queue in order instead of polling SQLite's busy handler; writers of different processes meet
// in SQLite's own write lock, where the busy timeout (DbOptions::busy_timeout) is the backstop.
//
// Lock order (docs/locking.md, docs/store.md): a write transaction may be begun while file locks
// are held, never the other way round; a thread must not begin a second write transaction while
// it holds one (it would wait for itself until the busy timeout: kTimeout).
//
// A Db must outlive every transaction and statement made from it.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/status.h"

namespace imgstore::store {

struct DbOptions {
  // How long a writer waits for another process's write transaction (SQLite's busy handler),
  // and for another thread's (the in-process writer mutex). A backstop: write transactions are
  // milliseconds long, so reaching it means something is stuck.
  std::chrono::milliseconds busy_timeout = std::chrono::seconds(30);
  // The registered SQLite VFS every connection opens the file with; empty: SQLite's default.
  // Tests use it to fail and power-cut SQLite's own I/O (tests/common/fault_vfs.h).
  std::string vfs;
};

class Db;
class Connection;

// A prepared statement. It must not outlive the transaction it was prepared in. Borrowed from its
// connection's cache when possible (reset and unbound on destruction) or owned (finalized on
// destruction). Bind errors are remembered and reported by the next Step/Run, so binding reads as a
// plain sequence of calls.
class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite.
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, std::string_view text);
  Statement& Bind(int index, const char* text) { return Bind(index, std::string_view(text)); }
  Statement& Bind(int index, const std::string& text) {
    return Bind(index, std::string_view(text));
  }
  Statement& BindNull(int index);
  Statement& Bind(int index, const std::optional<int64_t>& value);

  // Advances: true when a row is ready, false when the statement is done.
  Result<bool> Step();
  // Steps to the end, ignoring rows (INSERT, UPDATE, DELETE).
  Status Run();
  // Back to before the first step; bindings are kept.
  void Reset();

  // Columns of the current row, 0-based.
  int64_t ColumnInt64(int index) const;
  std::string ColumnText(int index) const;
  bool ColumnIsNull(int index) const;
  std::optional<int64_t> ColumnOptionalInt64(int index) const;

  const std::string& sql() const { return sql_; }

 private:
  friend class Connection;
  Statement(Connection* conn, sqlite3_stmt* stmt, std::string sql, bool cached)
      : conn_(conn), stmt_(stmt), sql_(std::move(sql)), cached_(cached) {}
  void Release();

  Connection* conn_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  std::string sql_;
  bool cached_ = false;
  Status bind_error_;
};

// One SQLite connection and its cache of prepared statements. Used by one thread at a time.
class Connection {
 public:
  Connection(Db* db, sqlite3* handle) : db_(db), handle_(handle) {}
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A statement for sql, from the cache unless that one is in use (a nested loop over the same
  // query), in which case a fresh one is prepared.
  Result<Statement> Prepare(std::string_view sql);
  // Runs one or more statements that return no rows.
  Status Exec(std::string_view sql);
  // Rows changed by the last INSERT/UPDATE/DELETE.
  int64_t Changes() const;

  // An error Status for the connection's last error, naming the database and what was done.
  Status Error(int rc, std::string_view what) const;

  sqlite3* handle() const { return handle_; }
  Db* db() const { return db_; }

 private:
  friend class Statement;
  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  void Return(sqlite3_stmt* stmt, const std::string& sql);

  Db* db_;
  sqlite3* handle_;
  std::unordered_map<std::string, Cached> cache_;
};

// Common part of the transactions: the lent connection, returned to the pool at the end.
class Transaction {
 public:
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Result<Statement> Prepare(std::string_view sql) { return conn_->Prepare(sql); }
  Status Exec(std::string_view sql) { return conn_->Exec(sql); }
  int64_t Changes() const { return conn_->Changes(); }
  Connection& connection() { return *conn_; }
  // The first column of every row of `sql` (a query without parameters), as text.
  Result<std::vector<std::string>> SelectColumn(std::string_view sql);

 protected:
  Transaction(Db* db, std::unique_ptr<Connection> conn) : db_(db), conn_(std::move(conn)) {}
  ~Transaction();
  // Ends the SQLite transaction (if open) with ROLLBACK and returns the connection to the pool.
  void Finish();

  friend class Db;
  Db* db_ = nullptr;
  std::unique_ptr<Connection> conn_;
  bool open_ = false;  // a BEGIN is in effect
};

// BEGIN DEFERRED plus a first read, so that the snapshot is taken when the transaction begins:
// every statement in it sees the database as of that instant, whatever other writers commit.
class ReadTransaction : public Transaction {
 public:
  ReadTransaction(ReadTransaction&&) noexcept = default;
  ~ReadTransaction() { Finish(); }

 private:
  friend class Db;
  using Transaction::Transaction;
};

// One in-process writer at a time, waited for with a deadline. Not a std::timed_mutex: its timed
// lock is pthread_mutex_clocklock, which ThreadSanitizer (gcc 12's libtsan) does not intercept, so
// it saw every unlock as the unlock of a free mutex and no order between two writers.
class WriterGate {
 public:
  // False if another writer kept the gate for all of `timeout`.
  bool Enter(std::chrono::milliseconds timeout);
  void Leave();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool taken_ = false;
};
struct LeaveWriterGate {
  void operator()(WriterGate* gate) const { gate->Leave(); }
};

// BEGIN IMMEDIATE: takes the database's write lock at once, so the transaction never fails
// half-way for want of it. Rolled back on destruction unless Commit() succeeded. Keep it short:
// no network or bulk file I/O inside, and no waiting for file locks (lock order).
class WriteTransaction : public Transaction {
 public:
  WriteTransaction(WriteTransaction&&) noexcept = default;
  ~WriteTransaction();

  // COMMIT. On failure the transaction has been rolled back.
  Status Commit();

 private:
  friend class Db;
  WriteTransaction(Db* db, std::unique_ptr<Connection> conn,
                   std::unique_ptr<WriterGate, LeaveWriterGate> w)
      : Transaction(db, std::move(conn)), writer_(std::move(w)) {}
  std::unique_ptr<WriterGate, LeaveWriterGate> writer_;
};

class Db {
 public:
  // Opens (creating if needed) the database at path in WAL mode, synchronous=FULL,
  // foreign_keys=ON. Does not touch the schema (schema.h does).
  static Result<std::unique_ptr<Db>> Open(const std::string& path, const DbOptions& options = {});
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Result<ReadTransaction> BeginRead();
  Result<WriteTransaction> BeginWrite();

  const std::string& path() const { return path_; }
  const DbOptions& options() const { return options_; }

 private:
  friend class Transaction;
  Db(std::string path, DbOptions options) : path_(std::move(path)), options_(options) {}
  Result<std::unique_ptr<Connection>> Lend();
  void GiveBack(std::unique_ptr<Connection> conn);
  Result<std::unique_ptr<Connection>> Connect();

  std::string path_;
  DbOptions options_;
  std::mutex pool_mu_;  // guards idle_ only; never held while waiting for anything
  std::vector<std::unique_ptr<Connection>> idle_;
  WriterGate writer_gate_;
};

// The Status for a SQLite result code: the database path, what was being done, SQLite's message.
// SQLITE_BUSY is kTimeout (the busy timeout passed), SQLITE_FULL kNoSpace, SQLITE_CORRUPT and
// SQLITE_NOTADB kCorruption, a UNIQUE/PRIMARY KEY constraint kAlreadyExists, a FOREIGN KEY
// constraint kFailedPrecondition.
Status SqliteStatus(sqlite3* handle, int rc, const std::string& db_path, std::string_view what,
                    std::chrono::milliseconds busy_timeout);

}  // namespace imgstore::store
