// src/locking: read/write locks shared by threads and processes, leases, and lock diagnostics.
//
// CONTRACT
//
// A Lock is a named lock file under a directory (a store's ROOT/locks). Three modes:
//   shared      many holders at once (readers);
//   upgradable  at most one holder, coexists with shared holders; may Upgrade() to exclusive
//               and Downgrade() back. Only one upgradable holder exists, so upgrades cannot
//               deadlock each other;
//   exclusive   one holder, nothing else.
// The same rules hold between threads of one process and between processes, in any mix.
//
// Acquisition is try (never waits: kBusy), timed (kTimeout after LockOptions::timeout) or
// blocking (timeout = kWaitForever). A timeout's message names the lock, the wanted mode and
// every other holder: "held by pid 123 (push docker.io/library/alpine:latest) for 12.4s".
// A wait longer than LockOptions::notice_after calls LockOptions::on_wait once with a line
// "waiting for lock NAME held by pid N (OPERATION) for Ts".
//
// Locks die with their holder: they are Linux OFD record locks (F_OFD_SETLK) held by the kernel
// on an open file description, released when the process exits, however it exits. Nothing on
// disk means "locked"; the content of a lock file is diagnostics (who holds, who waits) and a
// wake-up word, never state. Lock files are opened once per process (an in-process registry
// keyed by device and inode) and stay open while any handle or guard refers to them. A lock file
// nobody uses may be deleted (LockSpace::RemoveIfUnused); acquisitions then transparently use
// the new file at the same path.
//
// Fairness (docs/locking.md has the argument):
//   - a waiting exclusive locker is not starved by a stream of shared lockers: once it is next,
//     it closes a gate that new shared lockers wait behind, and gets the lock when the shared
//     holders of that moment have released it;
//   - waiting shared lockers are not starved by a stream of writers: shared lockers that waited
//     through a write phase are admitted before the next writer (phase-fair). Between threads of
//     one process this is strict; between processes it holds whenever the writer's hold outlasts
//     a wake-up (microseconds), and in any case every waiter retries at every release.
//   - upgradable and exclusive requests of one process are served in arrival order.
//
// No fixed caps: the number of locks, holders and waiters is bounded by memory and file
// descriptors only (the soft RLIMIT_NOFILE is raised to the hard limit when a LockSpace opens).
//
// LOCK ORDER (the three tiers of design.md; a deadlock needs a cycle, and this order has none)
//   1. Per-object file locks (this module). At most one is *waited for* at a time; a thread that
//      holds one file lock may only try-acquire (never wait for) another, except in the
//      documented order layer lock (parent before child chain) → blob/ingest lock.
//   2. SQLite transactions. A thread may open a SQLite write transaction while holding file
//      locks, but never waits for a file lock while a SQLite write transaction is open.
//   3. In-process mutexes (this module's registry and per-lock state). Never held while waiting
//      for anything: every wait inside this module releases them first.
// A thread must not request a lock it already holds (recursion is not supported; with a
// deadline it ends in kTimeout, never in a silent deadlock).
//
// Thread safety: every class here may be used from many threads; a LockGuard or Lease object
// itself is owned by one thread at a time (it is movable, not copyable).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace imgstore::locking {

enum class LockMode : uint8_t { kNone = 0, kShared = 1, kUpgradable = 2, kExclusive = 3 };
std::string_view LockModeName(LockMode mode);

using Duration = std::chrono::nanoseconds;
inline constexpr Duration kWaitForever = Duration::max();
inline constexpr Duration kDefaultLockTimeout = std::chrono::seconds(60);

struct LockOptions {
  // How long a blocking acquisition may wait; kWaitForever waits without a deadline.
  Duration timeout = kDefaultLockTimeout;
  // What the holder is doing, published for other processes ("pull docker.io/library/alpine").
  std::string operation;
  // After this long waiting, on_wait (if set) is called once with a human-readable line.
  Duration notice_after = std::chrono::seconds(1);
  std::function<void(const std::string& line)> on_wait;
};

// One process's view of one lock, as published in the lock file.
struct HolderInfo {
  pid_t pid = 0;
  LockMode mode = LockMode::kNone;  // held (for a holder) or wanted (for a waiter)
  std::string operation;
  int64_t since_unix_ns = 0;  // when it started holding (or waiting)
  int threads = 0;            // how many threads of that process hold (or wait)
};

struct LockInfo {
  std::string name;
  std::string path;
  std::vector<HolderInfo> holders;
  std::vector<HolderInfo> waiters;
};

class LockFile;  // internal: one open lock file shared by the threads of a process
class LockGuard;

// A handle on a named lock. Cheap to copy; keeps the lock file open while it lives.
class Lock {
 public:
  Lock() = default;
  const std::string& name() const;
  const std::string& path() const;

  // Waits up to options.timeout. kTimeout names the holders; other codes are I/O failures.
  Result<LockGuard> Acquire(LockMode mode, const LockOptions& options) const;
  // Never waits: kBusy when the lock is held in a conflicting mode.
  Result<LockGuard> TryAcquire(LockMode mode, std::string_view operation) const;
  // The other processes' holders and waiters (this process excluded).
  Result<LockInfo> Inspect() const;

 private:
  friend class LockSpace;
  explicit Lock(std::shared_ptr<LockFile> file) : file_(std::move(file)) {}
  std::shared_ptr<LockFile> file_;
};

// Ownership of a lock in one mode; releases it when destroyed.
class LockGuard {
 public:
  LockGuard() = default;
  LockGuard(LockGuard&& other) noexcept;
  LockGuard& operator=(LockGuard&& other) noexcept;
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;
  ~LockGuard();

  LockMode mode() const { return mode_; }
  bool held() const { return mode_ != LockMode::kNone; }

  // upgradable → exclusive. Waits for the shared holders to leave; new shared lockers wait
  // behind the upgrade. On failure (kTimeout, kBusy for TryUpgrade) the guard is still
  // upgradable. Calling it in another mode is kFailedPrecondition.
  Status Upgrade(const LockOptions& options);
  Status TryUpgrade();
  // exclusive → upgradable or shared, upgradable → shared. Never waits, never fails.
  void Downgrade(LockMode to);
  void Release();

 private:
  friend class LockFile;
  LockGuard(std::shared_ptr<LockFile> file, uint64_t id, LockMode mode)
      : file_(std::move(file)), id_(id), mode_(mode) {}
  std::shared_ptr<LockFile> file_;
  uint64_t id_ = 0;
  LockMode mode_ = LockMode::kNone;
};

class Lease;
struct LeaseInfo {
  std::string id;
  pid_t pid = 0;
  std::string label;
  int64_t since_unix_ns = 0;
  bool alive = false;
};

// A directory of lock files and leases (a store's ROOT/locks).
class LockSpace {
 public:
  // Creates the directory if needed.
  static Result<LockSpace> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }

  // The lock called `name` ([A-Za-z0-9._:@+=-], 1..200 characters, not starting with '.'; the
  // file is DIR/NAME.lock).
  Result<Lock> Get(std::string_view name) const;

  // Deletes the lock file `name` if no thread or process holds or waits for it (it is taken
  // exclusively with a try, unlinked while held, then released); true when this call removed it,
  // false when it is in use or absent. Safe against every concurrent use: an acquirer that
  // locked the file just before it was unlinked notices after acquiring (the shared page marks
  // the removal; fstat confirms st_nlink == 0) and retries on the file now at the path, so two
  // holders can never end up on two different files of one name. For the owners of per-object
  // locks whose object no longer exists (gc of blob-sha256-HEX locks).
  Result<bool> RemoveIfUnused(std::string_view name) const;

  // Every lock file in the directory with its live holders and waiters (this process included),
  // sorted by name. With only_active, locks nobody holds or waits for are left out.
  Result<std::vector<LockInfo>> List(bool only_active = true) const;

  // A new lease, alive until it is released or its process dies.
  Result<Lease> CreateLease(std::string_view label) const;
  // Whether the lease `id` is held by a live process; a killed holder's lease is dead at once.
  Result<bool> LeaseAlive(std::string_view id) const;
  Result<std::vector<LeaseInfo>> ListLeases() const;
  // Removes the files of dead leases; returns how many were removed.
  Result<int> RemoveDeadLeases() const;

 private:
  explicit LockSpace(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// A token held for as long as the object (or its process) lives. Another process tests its
// liveness with LockSpace::LeaseAlive, which never waits.
class Lease {
 public:
  Lease() = default;
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  const std::string& id() const { return id_; }
  bool held() const { return fd_ >= 0; }
  void Release();

 private:
  friend class LockSpace;
  Lease(std::string id, std::string path, int fd)
      : id_(std::move(id)), path_(std::move(path)), fd_(fd) {}
  std::string id_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace imgstore::locking
