// LockFile: the in-process registry, admission, kernel byte locks and waiting (see lock_file.h).
#include "locking/lock_file.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <utility>

#include "locking/futex.h"
#include "util/duration.h"

namespace imgstore::locking {
namespace {

using Clock = std::chrono::steady_clock;

// A sleeping waiter re-checks at least this often: a holder killed by a signal releases its
// kernel locks without bumping the wake word.
constexpr Duration kPollPeriod = std::chrono::milliseconds(10);

struct RegistryKey {
  dev_t dev;
  ino_t ino;
  bool operator<(const RegistryKey& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

std::mutex g_registry_mu;
std::map<RegistryKey, std::weak_ptr<LockFile>>& Registry() {
  static auto* registry = new std::map<RegistryKey, std::weak_ptr<LockFile>>();
  return *registry;
}

// fork() without exec copies the registry and the lock descriptors into the child, where they
// would keep the parent's kernel locks alive after the parent dies. The child therefore points
// every inherited lock descriptor at /dev/null and forgets the registry; handles it inherited
// report kFailedPrecondition (an exec'd child inherits nothing: the descriptors are O_CLOEXEC).
// getpid() is a system call; the lock paths need the pid on every acquisition and release.
std::atomic<pid_t> g_pid{0};
pid_t CurrentPid() {
  pid_t pid = g_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = ::getpid();
    g_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

void RegistryPrepareFork() { g_registry_mu.lock(); }
void RegistryParentAfterFork() { g_registry_mu.unlock(); }
void RegistryChildAfterFork() {
  g_pid.store(::getpid(), std::memory_order_relaxed);
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  for (auto& [key, weak] : Registry()) {
    if (auto file = weak.lock()) file->DetachAfterFork(devnull);
  }
  if (devnull >= 0) ::close(devnull);
  Registry().clear();
  new (&g_registry_mu) std::mutex();  // the parent's lock holder does not exist here
}

std::shared_ptr<LockFile> Lookup(const RegistryKey& key) {
  auto it = Registry().find(key);
  return it == Registry().end() ? nullptr : it->second.lock();
}

bool Stronger(ByteLock a, ByteLock b) {
  auto rank = [](ByteLock l) { return l == ByteLock::kWrite ? 2 : l == ByteLock::kRead ? 1 : 0; };
  return rank(a) > rank(b);
}

std::string FormatSeconds(int64_t ns) { return FormatDuration(std::chrono::nanoseconds(ns)); }

Clock::time_point DeadlineAfter(Clock::time_point start, Duration timeout) {
  if (timeout == kWaitForever || timeout > Clock::time_point::max() - start) {
    return Clock::time_point::max();
  }
  return start + std::chrono::duration_cast<Clock::duration>(timeout);
}

}  // namespace

Result<std::shared_ptr<LockFile>> LockFile::Open(const std::string& path, std::string_view name) {
  static std::once_flag fork_handlers;
  std::call_once(fork_handlers, [] {
    ::pthread_atfork(RegistryPrepareFork, RegistryParentAfterFork, RegistryChildAfterFork);
  });
  std::lock_guard<std::mutex> l(g_registry_mu);
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (auto found = Lookup({st.st_dev, st.st_ino})) return found;
  }
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Status::FromErrno(errno, "open lock file " + path);
  if (::fstat(fd, &st) != 0) {
    Status s = Status::FromErrno(errno, "stat lock file " + path);
    ::close(fd);
    return s;
  }
  // Another thread may have created and registered the file between our stat and open. Closing
  // our descriptor is harmless: it holds no lock, and OFD locks of the registered one survive.
  if (auto found = Lookup({st.st_dev, st.st_ino})) {
    ::close(fd);
    return found;
  }
  auto fail = [&](Status s) {
    ::close(fd);
    return s.WithContext("lock file " + path);
  };
  if (st.st_size < kHeaderSize || ReadLockName(fd).empty()) {
    if (Status s = InitLockFileHeader(fd, name); !s.ok()) return fail(s);
  }
  void* map = ::mmap(nullptr, kHeaderSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return fail(Status::FromErrno(errno, "mmap"));
  // A mapping holds a reference to the open file description, and with it the description's
  // OFD locks: a forked child must not inherit it, or it would keep our locks alive.
  (void)::madvise(map, kHeaderSize, MADV_DONTFORK);
  Result<uint64_t> slot = ClaimSlot(fd);
  if (!slot.ok()) {
    ::munmap(map, kHeaderSize);
    return fail(slot.status());
  }
  SlotState empty;
  empty.pid = CurrentPid();
  // Overwrites the record a dead previous owner of the slot may have left.
  (void)WriteSlot(fd, *slot, empty);
  std::shared_ptr<LockFile> file(new LockFile(
      path, std::string(name), fd, static_cast<WakePage*>(map), *slot, st.st_dev, st.st_ino));
  Registry()[{st.st_dev, st.st_ino}] = file;
  return file;
}

LockFile::LockFile(std::string path, std::string name, int fd, WakePage* page, uint64_t slot,
                   dev_t dev, ino_t ino)
    : path_(std::move(path)),
      name_(std::move(name)),
      fd_(fd),
      page_(page),
      slot_(slot),
      dev_(dev),
      ino_(ino),
      owner_pid_(CurrentPid()) {}

void LockFile::DetachAfterFork(int devnull) {
  // Runs in the single thread of a fresh child. The page was not inherited (MADV_DONTFORK):
  // put private memory where it was so that no stray access faults.
  (void)::mmap(page_, kHeaderSize, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS,
               -1, 0);
  if (devnull >= 0) ::dup2(devnull, fd_);
}

bool LockFile::Inherited() const { return CurrentPid() != owner_pid_; }

Status LockFile::InheritedError() const {
  return Status(Code::kFailedPrecondition,
                "lock " + name_ + " was opened by process " + std::to_string(owner_pid_) +
                    " before fork(); open the lock space again in the child");
}

LockFile::~LockFile() {
  {
    std::lock_guard<std::mutex> l(g_registry_mu);
    auto it = Registry().find({dev_, ino_});
    if (it != Registry().end() && it->second.expired()) Registry().erase(it);
  }
  ::munmap(page_, kHeaderSize);
  ::close(fd_);  // releases the slot (and nothing else is held: every guard is gone)
}

// ---- in-process admission ----

bool LockFile::WriterWaitingForReaders() const {
  return upgrade_pending_ ||
         (!writer_ && !writer_queue_.empty() && writer_queue_.front().mode == LockMode::kExclusive);
}

bool LockFile::CanAdmitShared(uint64_t gen) const {
  // A reader that has waited through the end of a write phase goes before the next writer.
  return !exclusive_ && (!WriterWaitingForReaders() || gen != write_gen_);
}

bool LockFile::CanAdmitWriter(uint64_t id, LockMode mode) const {
  if (writer_ || privileged_readers_ > 0) return false;
  if (writer_queue_.empty() || writer_queue_.front().id != id) return false;
  return mode == LockMode::kUpgradable || shared_ == 0;
}

bool LockFile::ForeignWriterAtGate() {
  // A reader whose mode this process already holds in the kernel would get in without passing
  // the gate; it must still queue behind another process's writer that has closed the gate.
  if (kd_ == ByteLock::kUnlocked || page_->gate_writers.load(std::memory_order_acquire) == 0) {
    return false;
  }
  Result<ByteLock> g = ProbeByte(fd_, kByteGate, ByteLock::kRead);
  return g.ok() && *g == ByteLock::kWrite;
}

void LockFile::EndWritePhase() {
  ++write_gen_;
  // Every reader waiting now has waited through this write phase: it goes before the next
  // writer (phase-fairness).
  privileged_readers_ = readers_waiting_;
}

void LockFile::StopWaitingAsReader(uint64_t gen) {
  --readers_waiting_;
  if (gen != write_gen_ && privileged_readers_ > 0) --privileged_readers_;
}

// ---- kernel byte locks ----

Result<bool> LockFile::SetByte(int64_t offset, ByteLock* state, ByteLock type) {
  Result<bool> got = TrySetByte(fd_, offset, type);
  if (got.ok() && *got) *state = type;
  return got;
}

Result<bool> LockFile::TryKernelRead() {
  if (kd_ != ByteLock::kUnlocked) return true;
  // Fast path: with no writer at the gate, passing it would change nothing. A writer that
  // closes the gate at this very moment lets at most the readers already here slip past.
  if (kg_ == ByteLock::kUnlocked && page_->gate_writers.load(std::memory_order_acquire) == 0) {
    Result<bool> d = SetByte(kByteData, &kd_, ByteLock::kRead);
    if (!d.ok() || *d) return d;
  }
  if (kg_ == ByteLock::kUnlocked) {
    Result<bool> g = SetByte(kByteGate, &kg_, ByteLock::kRead);
    if (!g.ok() || !*g) return g;
  }
  Result<bool> d = SetByte(kByteData, &kd_, ByteLock::kRead);
  if (!d.ok() || !*d) return d;  // keep G:read: the next writer queues behind us
  OpenGate();
  return true;
}

Result<bool> LockFile::TryKernel(LockMode mode) {
  if (mode == LockMode::kShared) return TryKernelRead();
  if (ku_ != ByteLock::kWrite) {
    Result<bool> u = SetByte(kByteUpgrade, &ku_, ByteLock::kWrite);
    if (!u.ok() || !*u) return u;
  }
  if (mode == LockMode::kUpgradable) return TryKernelRead();
  if (kd_ == ByteLock::kWrite) return true;
  if (kg_ != ByteLock::kWrite) {
    Result<bool> g = SetByte(kByteGate, &kg_, ByteLock::kWrite);
    if (!g.ok() || !*g) return g;
    page_->gate_writers.fetch_add(1, std::memory_order_acq_rel);
  }
  Result<bool> d = SetByte(kByteData, &kd_, ByteLock::kWrite);
  if (!d.ok() || !*d) return d;  // keep G:write: new readers queue behind us
  OpenGate();
  return true;
}

void LockFile::OpenGate() {
  if (kg_ == ByteLock::kUnlocked) return;
  UnlockByte(fd_, kByteGate);
  if (kg_ == ByteLock::kWrite) page_->gate_writers.fetch_sub(1, std::memory_order_acq_rel);
  kg_ = ByteLock::kUnlocked;
}

void LockFile::Reconcile() {
  ByteLock want_d = ByteLock::kUnlocked;
  if (exclusive_ && kd_ == ByteLock::kWrite) {
    want_d = ByteLock::kWrite;
  } else if (kd_ != ByteLock::kUnlocked && (shared_ > 0 || (writer_ && ku_ == ByteLock::kWrite))) {
    want_d = ByteLock::kRead;
  }
  if (Stronger(kd_, want_d)) {
    if (want_d == ByteLock::kUnlocked) {
      UnlockByte(fd_, kByteData);
    } else {
      // Converting write to read never conflicts; a failure here would be a kernel bug.
      (void)TrySetByte(fd_, kByteData, ByteLock::kRead);
    }
    kd_ = want_d;
  }
  bool need_g =
      (kg_ == ByteLock::kRead && kd_ == ByteLock::kUnlocked &&
       (shared_ > 0 || (writer_ && ku_ == ByteLock::kWrite))) ||
      (kg_ == ByteLock::kWrite && exclusive_ && ku_ == ByteLock::kWrite && kd_ != ByteLock::kWrite);
  if (kg_ != ByteLock::kUnlocked && !need_g) OpenGate();
  if (ku_ == ByteLock::kWrite && !writer_) {
    UnlockByte(fd_, kByteUpgrade);
    ku_ = ByteLock::kUnlocked;
  }
}

void LockFile::Wake() {
  page_->seq.fetch_add(1, std::memory_order_release);
  if (page_->waiters.load(std::memory_order_acquire) > 0) FutexWakeAll(&page_->seq);
}

// ---- diagnostics ----

void LockFile::Publish() {
  SlotState s;
  s.pid = CurrentPid();
  auto summarize = [](const std::map<uint64_t, Entry>& entries, LockMode* mode, int* threads,
                      int64_t* since, std::string* op) {
    const Entry* strongest = nullptr;
    for (const auto& [id, e] : entries) {
      if (!strongest || e.mode > strongest->mode) strongest = &e;
      *since = *since == 0 ? e.since_ns : std::min(*since, e.since_ns);
    }
    *threads = static_cast<int>(entries.size());
    if (strongest) {
      *mode = strongest->mode;
      *op = strongest->op;
      if (entries.size() > 1) *op += " (+" + std::to_string(entries.size() - 1) + " threads)";
    }
  };
  summarize(holders_, &s.held, &s.held_threads, &s.held_since_ns, &s.held_op);
  summarize(waiters_, &s.wanted, &s.waiting_threads, &s.wait_since_ns, &s.wait_op);
  (void)WriteSlot(fd_, slot_, s);  // diagnostics only: a failed write loses no state
}

std::string LockFile::DescribeHolders(bool for_notice) {
  std::string out;
  auto add = [&](pid_t pid, bool self, LockMode mode, const std::string& op, int64_t since) {
    if (!out.empty()) out += ", ";
    out += self ? "this process (pid " + std::to_string(pid) + ")" : "pid " + std::to_string(pid);
    out += " (";
    if (!for_notice) out += std::string(LockModeName(mode)) + (op.empty() ? "" : ", ");
    out += op.empty() && for_notice ? std::string(LockModeName(mode)) : op;
    out += ") for " + FormatSeconds(std::max<int64_t>(0, NowUnixNs() - since));
  };
  Result<std::vector<SlotState>> slots = ReadLiveSlots(fd_, static_cast<int64_t>(slot_));
  if (slots.ok()) {
    for (const SlotState& s : *slots) {
      if (s.held != LockMode::kNone) add(s.pid, false, s.held, s.held_op, s.held_since_ns);
    }
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [id, e] : holders_) add(CurrentPid(), true, e.mode, e.op, e.since_ns);
  }
  return out;
}

Result<LockInfo> LockFile::Inspect() {
  if (Inherited()) return InheritedError();
  LockInfo info;
  info.name = name_;
  info.path = path_;
  Result<std::vector<SlotState>> slots = ReadLiveSlots(fd_, static_cast<int64_t>(slot_));
  if (!slots.ok()) return slots.status();
  for (const SlotState& s : *slots) {
    if (s.held != LockMode::kNone) {
      info.holders.push_back({s.pid, s.held, s.held_op, s.held_since_ns, s.held_threads});
    }
    if (s.wanted != LockMode::kNone) {
      info.waiters.push_back({s.pid, s.wanted, s.wait_op, s.wait_since_ns, s.waiting_threads});
    }
  }
  return info;
}

// ---- acquisition ----

void LockFile::WaitForChange(std::unique_lock<std::mutex>& l, uint64_t id, Entry wanted,
                             const LockOptions& options, std::string_view notice_prefix,
                             uint32_t seq, Clock::time_point now, Clock::time_point deadline,
                             Clock::time_point notice_at, bool* noticed) {
  if (waiters_.find(id) == waiters_.end()) {
    wanted.since_ns = NowUnixNs();
    waiters_[id] = std::move(wanted);
    Publish();
  }
  if (!*noticed && now >= notice_at) {
    *noticed = true;
    l.unlock();
    std::string holders = DescribeHolders(true);
    options.on_wait(std::string(notice_prefix) + name_ +
                    (holders.empty() ? std::string() : " held by " + holders));
    l.lock();
    return;  // the caller re-checks before it sleeps
  }
  Clock::time_point wake_by = std::min(deadline, now + kPollPeriod);
  if (!*noticed) wake_by = std::min(wake_by, notice_at);
  page_->waiters.fetch_add(1, std::memory_order_acq_rel);
  l.unlock();
  FutexWait(&page_->seq, seq, wake_by - now);
  l.lock();
  page_->waiters.fetch_sub(1, std::memory_order_acq_rel);
}

Result<LockGuard> LockFile::Acquire(LockMode mode, const LockOptions& options, bool try_only,
                                    bool* stale) {
  if (mode == LockMode::kNone) return Status(Code::kInvalidArgument, "lock mode none");
  if (Inherited()) return InheritedError();
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = DeadlineAfter(start, options.timeout);
  const Clock::time_point notice_at = DeadlineAfter(start, options.notice_after);
  const bool writer_request = mode != LockMode::kShared;

  std::unique_lock<std::mutex> l(mu_);
  if (removed_) {
    *stale = true;
    return Status(Code::kNotFound, "lock file " + path_ + " was removed");
  }
  const uint64_t id = next_id_++;
  const uint64_t gen = write_gen_;
  if (writer_request) {
    writer_queue_.push_back({id, mode});
  } else {
    ++readers_waiting_;
  }
  bool admitted = false;
  bool noticed = !options.on_wait;
  for (;;) {
    const uint32_t seq = page_->seq.load(std::memory_order_acquire);
    if (!admitted && (writer_request ? CanAdmitWriter(id, mode)
                                     : CanAdmitShared(gen) && !ForeignWriterAtGate())) {
      admitted = true;
      if (writer_request) {
        writer_queue_.pop_front();
        writer_ = true;
        exclusive_ = mode == LockMode::kExclusive;
      } else {
        StopWaitingAsReader(gen);
        ++shared_;
      }
    }
    Status error;
    if (admitted) {
      Result<bool> reached = TryKernel(mode);
      if (reached.ok() && *reached) {
        // A remover unlinks the file while holding it exclusively, so a lock granted after
        // that is a lock on a file nobody else will ever look at again.
        Result<bool> gone = Stale();
        if (gone.ok() && !*gone) {
          waiters_.erase(id);
          holders_[id] = {mode, options.operation, NowUnixNs()};
          Publish();
          return LockGuard(shared_from_this(), id, mode);
        }
        if (gone.ok()) {
          *stale = true;
          error = Status(Code::kNotFound, "lock file " + path_ + " was removed");
        } else {
          error = gone.status().WithContext("lock " + name_);
        }
      }
      if (!reached.ok()) error = reached.status().WithContext("lock " + name_);
    }
    const Clock::time_point now = Clock::now();
    if (error.ok() && try_only && page_->removed.load(std::memory_order_acquire) != 0) {
      // The holder that made the try fail may be a remover, or an acquirer about to notice the
      // removal: a busy answer about a removed file would be wrong.
      Result<bool> gone = Stale();
      if (gone.ok() && *gone) {
        *stale = true;
        error = Status(Code::kNotFound, "lock file " + path_ + " was removed");
      }
    }
    if (!error.ok() || try_only || now >= deadline) {
      if (admitted) {
        if (!writer_request) {
          --shared_;
        } else {
          writer_ = false;
          if (exclusive_) EndWritePhase();
          exclusive_ = false;
        }
      } else if (writer_request) {
        auto it = std::find_if(writer_queue_.begin(), writer_queue_.end(),
                               [id](const QueuedWriter& w) { return w.id == id; });
        if (it != writer_queue_.end()) writer_queue_.erase(it);
      } else {
        StopWaitingAsReader(gen);
      }
      waiters_.erase(id);
      Reconcile();
      Publish();
      l.unlock();
      Wake();
      if (!error.ok()) return error;
      std::string holders = DescribeHolders(false);
      if (holders.empty()) holders = "no holder published (it may have just released it)";
      if (try_only) {
        return Status(Code::kBusy, "lock " + name_ + " is held: " + holders);
      }
      return Status(Code::kTimeout, "timed out after " + FormatDuration(now - start) +
                                        " waiting for lock " + name_ + " (" +
                                        std::string(LockModeName(mode)) + "): held by " + holders);
    }
    WaitForChange(l, id, {mode, options.operation, 0}, options, "waiting for lock ", seq, now,
                  deadline, notice_at, &noticed);
  }
}

Status LockFile::Upgrade(uint64_t id, const LockOptions& options, bool try_only) {
  if (Inherited()) return InheritedError();
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = DeadlineAfter(start, options.timeout);
  const Clock::time_point notice_at = DeadlineAfter(start, options.notice_after);
  std::unique_lock<std::mutex> l(mu_);
  upgrade_pending_ = true;
  bool noticed = !options.on_wait;
  for (;;) {
    const uint32_t seq = page_->seq.load(std::memory_order_acquire);
    if (!exclusive_ && shared_ == 0 && privileged_readers_ == 0) {
      exclusive_ = true;
      upgrade_pending_ = false;
    }
    Status error;
    if (exclusive_) {
      Result<bool> reached = TryKernel(LockMode::kExclusive);
      if (reached.ok() && *reached) {
        waiters_.erase(id);
        holders_[id].mode = LockMode::kExclusive;
        Publish();
        return Status::OK();
      }
      if (!reached.ok()) error = reached.status().WithContext("upgrade lock " + name_);
    }
    const Clock::time_point now = Clock::now();
    if (!error.ok() || try_only || now >= deadline) {
      if (exclusive_) EndWritePhase();
      exclusive_ = false;
      upgrade_pending_ = false;
      waiters_.erase(id);
      Reconcile();
      Publish();
      l.unlock();
      Wake();
      if (!error.ok()) return error;
      std::string holders = DescribeHolders(false);
      if (try_only) return Status(Code::kBusy, "lock " + name_ + " has other holders: " + holders);
      return Status(Code::kTimeout, "timed out after " + FormatDuration(now - start) +
                                        " upgrading lock " + name_ + " to exclusive: held by " +
                                        holders);
    }
    WaitForChange(l, id, {LockMode::kExclusive, holders_[id].op, 0}, options,
                  "waiting to upgrade lock ", seq, now, deadline, notice_at, &noticed);
  }
}

void LockFile::Downgrade(uint64_t id, LockMode from, LockMode to) {
  if (Inherited()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (from == LockMode::kExclusive) {
      exclusive_ = false;
      EndWritePhase();
    }
    if (to == LockMode::kShared) {
      writer_ = false;
      ++shared_;
    }
    holders_[id].mode = to;
    Reconcile();
    Publish();
  }
  Wake();
}

void LockFile::Release(uint64_t id, LockMode mode) {
  if (Inherited()) return;  // the parent's holds are the parent's to release
  {
    std::lock_guard<std::mutex> l(mu_);
    holders_.erase(id);
    if (mode == LockMode::kShared) {
      --shared_;
    } else {
      writer_ = false;
      if (mode == LockMode::kExclusive) {
        exclusive_ = false;
        EndWritePhase();
      }
    }
    Reconcile();
    Publish();
  }
  Wake();
}

// ---- removal ----

Result<bool> LockFile::Stale() {
  if (removed_) return true;
  if (page_->removed.load(std::memory_order_acquire) == 0) return false;
  struct stat st;
  if (::fstat(fd_, &st) != 0) return Status::FromErrno(errno, "stat lock file " + path_);
  if (st.st_nlink == 0) {
    removed_ = true;
    return true;
  }
  // Still linked: a remover died between marking and unlinking. While this process holds a
  // kernel lock no remover can be half-way, so the mark is stale and can go.
  if (kd_ != ByteLock::kUnlocked) page_->removed.store(0, std::memory_order_release);
  return false;
}

Result<bool> LockFile::TryRemove() {
  LockOptions options;
  options.operation = "remove lock file";
  bool stale = false;
  Result<LockGuard> guard = Acquire(LockMode::kExclusive, options, /*try_only=*/true, &stale);
  if (!guard.ok()) {
    if (stale || guard.status().code() == Code::kBusy) return false;
    return guard.status();
  }
  {
    // Under the registry mutex, so that no thread of this process opens the path between the
    // unlink and the registry forgetting this file.
    std::lock_guard<std::mutex> r(g_registry_mu);
    std::lock_guard<std::mutex> l(mu_);
    page_->removed.store(1, std::memory_order_seq_cst);
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
      Status s = Status::FromErrno(errno, "remove lock file " + path_);
      page_->removed.store(0, std::memory_order_release);
      return s;
    }
    removed_ = true;
    auto it = Registry().find({dev_, ino_});
    if (it != Registry().end() && it->second.lock().get() == this) Registry().erase(it);
  }
  guard->Release();
  return true;
}

// ---- public handles ----

namespace {

// Acquires on `file`, and on the file now at its path each time the one locked turns out to
// have been removed meanwhile (the remaining deadline carries over).
Result<LockGuard> AcquireReopening(std::shared_ptr<LockFile> file, LockMode mode,
                                   const LockOptions& options, bool try_only) {
  const Clock::time_point start = Clock::now();
  std::optional<LockOptions> rest;
  for (;;) {
    bool stale = false;
    Result<LockGuard> guard = file->Acquire(mode, rest ? *rest : options, try_only, &stale);
    if (!stale) return guard;
    Result<std::shared_ptr<LockFile>> reopened = LockFile::Open(file->path(), file->name());
    if (!reopened.ok()) return reopened.status();
    file = std::move(*reopened);
    if (!rest) rest = options;
    if (options.timeout != kWaitForever) {
      Duration spent = std::chrono::duration_cast<Duration>(Clock::now() - start);
      rest->timeout = std::max(Duration::zero(), options.timeout - spent);
    }
  }
}

}  // namespace

std::string_view LockModeName(LockMode mode) {
  switch (mode) {
    case LockMode::kNone:
      return "none";
    case LockMode::kShared:
      return "shared";
    case LockMode::kUpgradable:
      return "upgradable";
    case LockMode::kExclusive:
      return "exclusive";
  }
  return "unknown";
}

const std::string& Lock::name() const { return file_->name(); }
const std::string& Lock::path() const { return file_->path(); }

Result<LockGuard> Lock::Acquire(LockMode mode, const LockOptions& options) const {
  if (!file_) return Status(Code::kFailedPrecondition, "acquire on an empty lock handle");
  return AcquireReopening(file_, mode, options, /*try_only=*/false);
}

Result<LockGuard> Lock::TryAcquire(LockMode mode, std::string_view operation) const {
  if (!file_) return Status(Code::kFailedPrecondition, "acquire on an empty lock handle");
  LockOptions options;
  options.operation = std::string(operation);
  return AcquireReopening(file_, mode, options, /*try_only=*/true);
}

Result<LockInfo> Lock::Inspect() const {
  if (!file_) return Status(Code::kFailedPrecondition, "inspect on an empty lock handle");
  return file_->Inspect();
}

LockGuard::LockGuard(LockGuard&& other) noexcept
    : file_(std::move(other.file_)),
      id_(other.id_),
      mode_(std::exchange(other.mode_, LockMode::kNone)) {}

LockGuard& LockGuard::operator=(LockGuard&& other) noexcept {
  if (this != &other) {
    Release();
    file_ = std::move(other.file_);
    id_ = other.id_;
    mode_ = std::exchange(other.mode_, LockMode::kNone);
  }
  return *this;
}

LockGuard::~LockGuard() { Release(); }

void LockGuard::Release() {
  if (mode_ == LockMode::kNone) return;
  file_->Release(id_, mode_);
  mode_ = LockMode::kNone;
  file_.reset();
}

Status LockGuard::Upgrade(const LockOptions& options) {
  if (mode_ != LockMode::kUpgradable) {
    return Status(Code::kFailedPrecondition,
                  "upgrade needs an upgradable lock, not " + std::string(LockModeName(mode_)));
  }
  IMGSTORE_RETURN_IF_ERROR(file_->Upgrade(id_, options, /*try_only=*/false));
  mode_ = LockMode::kExclusive;
  return Status::OK();
}

Status LockGuard::TryUpgrade() {
  if (mode_ != LockMode::kUpgradable) {
    return Status(Code::kFailedPrecondition,
                  "upgrade needs an upgradable lock, not " + std::string(LockModeName(mode_)));
  }
  IMGSTORE_RETURN_IF_ERROR(file_->Upgrade(id_, LockOptions(), /*try_only=*/true));
  mode_ = LockMode::kExclusive;
  return Status::OK();
}

void LockGuard::Downgrade(LockMode to) {
  // Only weaker, non-empty targets are downgrades; anything else leaves the guard as it is.
  if (mode_ == LockMode::kNone || to == LockMode::kNone || to >= mode_) return;
  file_->Downgrade(id_, mode_, to);
  mode_ = to;
}

}  // namespace imgstore::locking
