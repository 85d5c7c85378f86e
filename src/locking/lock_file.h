// LockFile: one lock file as seen by one process, shared by all of that process's threads.
//
// Two levels decide who holds a lock:
//   in-process   a small state machine under mu_ admits threads (shared / one writer /
//                exclusive, with the fairness rules of locking.h);
//   kernel       the process's single open file description holds OFD byte locks that
//                represent the strongest mode any admitted thread needs:
//                  shared      D:read
//                  upgradable  U:write + D:read
//                  exclusive   U:write + D:write
//                and, while waiting, the gate G: a writer waiting for D:write holds G:write so
//                that new readers (who pass G:read on their way to D:read) queue behind it; a
//                reader waiting for D:read keeps G:read so the next writer queues behind it.
// Every kernel call is a non-blocking F_OFD_SETLK made under mu_; waiting is a futex sleep on the
// mapped wake word with mu_ released, bounded by the deadline and by a short poll period (a
// killed holder releases its locks without waking anyone). So mu_ is never held across a wait,
// and a release never waits for anything.
#pragma once

#include <sys/stat.h>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "locking/lock_record.h"
#include "locking/locking.h"
#include "locking/ofd.h"

namespace imgstore::locking {

class LockFile : public std::enable_shared_from_this<LockFile> {
 public:
  // The process-wide object for the lock file at `path`, opened (and created) once.
  static Result<std::shared_ptr<LockFile>> Open(const std::string& path, std::string_view name);
  ~LockFile();
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }

  // *stale is set (and an error returned) when this file was removed (RemoveIfUnused) before
  // the lock was granted: the caller reopens the path and tries again on the new file.
  Result<LockGuard> Acquire(LockMode mode, const LockOptions& options, bool try_only, bool* stale);
  // Removes the file if nobody (this process included) holds or waits for it: takes it
  // exclusively (try), marks it removed, unlinks it, releases. true: removed by this call.
  Result<bool> TryRemove();
  Status Upgrade(uint64_t id, const LockOptions& options, bool try_only);
  void Downgrade(uint64_t id, LockMode from, LockMode to);
  void Release(uint64_t id, LockMode mode);
  Result<LockInfo> Inspect();

  // In a child after fork(): drops the child's reference to the parent's lock description.
  void DetachAfterFork(int devnull);

 private:
  struct Entry {
    LockMode mode;
    std::string op;
    int64_t since_ns;
  };
  struct QueuedWriter {
    uint64_t id;
    LockMode mode;
  };

  LockFile(std::string path, std::string name, int fd, WakePage* page, uint64_t slot, dev_t dev,
           ino_t ino);

  // In-process admission (REQUIRES mu_).
  bool WriterWaitingForReaders() const;
  bool CanAdmitShared(uint64_t gen) const;
  bool CanAdmitWriter(uint64_t id, LockMode mode) const;
  bool ForeignWriterAtGate();
  void EndWritePhase();
  void StopWaitingAsReader(uint64_t gen);
  void OpenGate();  // releases G (and the gate-writer hint)
  // Kernel steps toward what `mode` needs, without waiting. true: reached. (REQUIRES mu_)
  Result<bool> TryKernel(LockMode mode);
  Result<bool> TryKernelRead();
  Result<bool> SetByte(int64_t offset, ByteLock* state, ByteLock type);
  // Drops the kernel locks no admitted thread needs any more. (REQUIRES mu_)
  void Reconcile();
  // Publishes this process's holders and waiters in its slot record. (REQUIRES mu_)
  void Publish();
  // Publishes the caller as a waiter, gives the one-time notice when due, else sleeps until the
  // wake word moves past `seq`, the poll period ends or the deadline. (REQUIRES mu_ via l)
  void WaitForChange(std::unique_lock<std::mutex>& l, uint64_t id, Entry wanted,
                     const LockOptions& options, std::string_view notice_prefix, uint32_t seq,
                     std::chrono::steady_clock::time_point now,
                     std::chrono::steady_clock::time_point deadline,
                     std::chrono::steady_clock::time_point notice_at, bool* noticed);
  // Lets sleeping waiters (of every process) re-check. Call without mu_.
  void Wake();
  // "pid 12 (pull x) for 3.1s, ..." for the holders other than the caller; "" if none known.
  std::string DescribeHolders(bool for_notice);
  // Whether the file was removed by a RemoveIfUnused (here or in another process). Cheap unless
  // the shared page says a removal happened: then one fstat. Call while holding a kernel lock
  // (or after a try failed) so that no remover is half-way. (REQUIRES mu_)
  Result<bool> Stale();
  bool Inherited() const;  // true in a forked child
  Status InheritedError() const;

  const std::string path_;
  const std::string name_;
  const int fd_;
  WakePage* const page_;
  const uint64_t slot_;
  const dev_t dev_;
  const ino_t ino_;
  const pid_t owner_pid_;

  std::mutex mu_;
  // In-process state; "holding" includes threads admitted whose kernel locks are still pending.
  int shared_ = 0;                // threads holding shared
  bool writer_ = false;           // a thread holds upgradable or exclusive
  bool exclusive_ = false;        // ... and it is (becoming) exclusive
  bool upgrade_pending_ = false;  // the upgradable holder waits for shared holders to leave
  uint64_t write_gen_ = 0;        // bumped whenever an exclusive phase ends (phase-fairness)
  int readers_waiting_ = 0;       // shared requests not yet admitted
  int privileged_readers_ = 0;    // ... of which waited through the last write phase
  std::deque<QueuedWriter> writer_queue_;  // upgradable/exclusive requests, in arrival order
  ByteLock ku_ = ByteLock::kUnlocked;      // what fd_ holds on U, G, D
  ByteLock kg_ = ByteLock::kUnlocked;
  ByteLock kd_ = ByteLock::kUnlocked;
  std::map<uint64_t, Entry> holders_;  // granted guards (kernel reached)
  std::map<uint64_t, Entry> waiters_;  // threads that have waited at least once
  uint64_t next_id_ = 1;
  bool removed_ = false;  // the path no longer names this file: acquisitions reopen it
};

}  // namespace imgstore::locking
