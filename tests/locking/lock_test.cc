// Tests of src/locking's locks between threads and between real processes (lock_helper, started
// with fork + exec): names, mode compatibility, deadlines and their messages, upgrade and
// downgrade, the wait notice, kill -9 of a holder, descriptor hygiene, List/Inspect and
// in-process arrival order. The heavy tests (hundreds of processes, thousands of locks, fairness
// under streams) are in locking_stress_test.cc.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "locking/locking.h"
#include "locking_test_util.h"

namespace imgstore::locking {
namespace {

constexpr LockMode kS = LockMode::kShared;
constexpr LockMode kU = LockMode::kUpgradable;
constexpr LockMode kX = LockMode::kExclusive;

// The code of a TryAcquire made from another thread (a thread must not re-request a lock it
// holds, so in-process conflicts are probed from a second thread).
Code TryInThread(const Lock& lock, LockMode mode) {
  auto f = std::async(std::launch::async, [&] {
    auto r = lock.TryAcquire(mode, "probe");
    return r.ok() ? Code::kOk : r.status().code();
  });
  return FinishWithin(f, 10s, "TryAcquire");
}

struct Timed {
  Status status;
  double ms = 0;
};

// A timed Acquire from another thread: its status and how long it took.
Timed AcquireInThread(const Lock& lock, LockMode mode, Duration timeout) {
  auto f = std::async(std::launch::async, [&] {
    auto t0 = std::chrono::steady_clock::now();
    auto r = lock.Acquire(mode, Opts(timeout, "probe"));
    return Timed{r.ok() ? Status::OK() : r.status(), MsSince(t0)};
  });
  return FinishWithin(f, std::chrono::duration_cast<std::chrono::milliseconds>(timeout) + 10s,
                      "Acquire");
}

std::string Str(Code c) { return std::string(CodeName(c)); }

// ---------------------------------------------------------------------------------------------
// Names and handles

TEST_F(LockingTest, GetRejectsBadNamesWithInvalidArgument) {
  const std::vector<std::string> bad = {"",
                                        "a/b",
                                        "../escape",
                                        "/abs",
                                        "a b",
                                        "tab\tx",
                                        "new\nline",
                                        "star*",
                                        "q?",
                                        "semi;colon",
                                        "back\\slash",
                                        "caf\xc3\xa9",
                                        std::string("nul\0x", 5),
                                        std::string(201, 'a')};
  for (const auto& name : bad) {
    auto r = space().Get(name);
    EXPECT_FALSE(r.ok()) << "accepted bad name '" << name << "'";
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument)
          << "'" << name << "': " << r.status().ToString();
    }
  }
  EXPECT_FALSE(std::filesystem::exists(tmp_.Sub("escape.lock"))) << "a name escaped the directory";

  const std::vector<std::string> good = {
      "a", std::string(200, 'z'), "AZaz09._:@+=-", "sha256:0123abcd", "layer@sha256:ff", "x=y+z"};
  for (const auto& name : good) {
    auto r = space().Get(name);
    ASSERT_TRUE(r.ok()) << "'" << name << "': " << r.status().ToString();
    EXPECT_EQ(r->name(), name);
    EXPECT_EQ(r->path(), dir() + "/" + name + ".lock");
    // A valid name is a usable lock.
    auto g = r->TryAcquire(kX, "probe");
    EXPECT_TRUE(g.ok()) << name << ": " << g.status().ToString();
  }
}

TEST_F(LockingTest, GuardReleasesOnReleaseMoveAndDestruction) {
  Lock lock = GetLock("guard");
  {
    auto r = lock.TryAcquire(kX, "guard test");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    LockGuard a = std::move(r).value();
    EXPECT_TRUE(a.held());
    EXPECT_EQ(a.mode(), kX);
    LockGuard b = std::move(a);
    EXPECT_FALSE(a.held());  // NOLINT(bugprone-use-after-move): moved-from state is specified
    EXPECT_TRUE(b.held());
    EXPECT_EQ(TryInThread(lock, kS), Code::kBusy) << "the move dropped the lock";
    b.Release();
    EXPECT_FALSE(b.held());
    EXPECT_EQ(b.mode(), LockMode::kNone);
    b.Release();  // a second release is harmless
    EXPECT_EQ(TryInThread(lock, kX), Code::kOk);

    auto again = lock.TryAcquire(kS, "guard test");
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    LockGuard c = std::move(again).value();
    EXPECT_EQ(TryInThread(lock, kX), Code::kBusy);
  }  // c's destructor releases
  EXPECT_EQ(TryInThread(lock, kX), Code::kOk);
  Subprocess other = Hold("guard", kX, "other", "try");
  EXPECT_TRUE(ExpectReport(other, "acquired", 10s)) << "another process cannot take it";
}

TEST_F(LockingTest, UpgradeOutsideUpgradableModeIsFailedPrecondition) {
  Lock lock = GetLock("precondition");
  {
    auto r = lock.TryAcquire(kS, "t");
    ASSERT_TRUE(r.ok());
    LockGuard g = std::move(r).value();
    EXPECT_EQ(g.Upgrade(Opts(100ms)).code(), Code::kFailedPrecondition);
    EXPECT_EQ(g.TryUpgrade().code(), Code::kFailedPrecondition);
    EXPECT_EQ(g.mode(), kS);
  }
  {
    auto r = lock.TryAcquire(kX, "t");
    ASSERT_TRUE(r.ok());
    LockGuard g = std::move(r).value();
    EXPECT_EQ(g.Upgrade(Opts(100ms)).code(), Code::kFailedPrecondition);
    EXPECT_EQ(g.mode(), kX);
  }
  LockGuard released;
  EXPECT_EQ(released.Upgrade(Opts(100ms)).code(), Code::kFailedPrecondition);
  EXPECT_EQ(released.TryUpgrade().code(), Code::kFailedPrecondition);
}

// ---------------------------------------------------------------------------------------------
// Mode compatibility: shared+shared, shared+upgradable compatible; everything else conflicts.

bool Compatible(LockMode held, LockMode wanted) {
  if (held == kX || wanted == kX) return false;
  return !(held == kU && wanted == kU);
}

TEST_F(LockingTest, ModeCompatibilityBetweenThreads) {
  for (LockMode held : {kS, kU, kX}) {
    Lock lock = GetLock(std::string("threads-") + ModeArg(held));
    auto r = lock.TryAcquire(held, "holder");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    LockGuard g = std::move(r).value();
    for (LockMode wanted : {kS, kU, kX}) {
      Code want = Compatible(held, wanted) ? Code::kOk : Code::kBusy;
      EXPECT_EQ(Str(TryInThread(lock, wanted)), Str(want))
          << "held " << ModeArg(held) << ", try " << ModeArg(wanted);
    }
  }
}

TEST_F(LockingTest, ModeCompatibilityBetweenProcesses) {
  // Another process holds; this process tries.
  for (LockMode held : {kS, kU, kX}) {
    std::string name = std::string("held-there-") + ModeArg(held);
    Subprocess holder = HoldNow(name, held, "holder");
    Lock lock = GetLock(name);
    for (LockMode wanted : {kS, kU, kX}) {
      auto r = lock.TryAcquire(wanted, "probe");
      Code got = r.ok() ? Code::kOk : r.status().code();
      Code want = Compatible(held, wanted) ? Code::kOk : Code::kBusy;
      EXPECT_EQ(Str(got), Str(want)) << "other process holds " << ModeArg(held) << ", try "
                                     << ModeArg(wanted) << ": " << r.status().ToString();
    }
  }
  // This process holds; another process tries.
  for (LockMode held : {kS, kU, kX}) {
    std::string name = std::string("held-here-") + ModeArg(held);
    Lock lock = GetLock(name);
    auto r = lock.TryAcquire(held, "holder");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    LockGuard g = std::move(r).value();
    for (LockMode wanted : {kS, kU, kX}) {
      Subprocess p = Hold(name, wanted, "probe", "try");
      const char* want = Compatible(held, wanted) ? "acquired" : "busy";
      EXPECT_TRUE(ExpectReport(p, want, 10s))
          << "this process holds " << ModeArg(held) << ", other tries " << ModeArg(wanted);
    }
  }
}

TEST_F(LockingTest, TimedAcquireAgainstExclusiveTimesOutInThreadsAndProcesses) {
  Lock lock = GetLock("timed");
  {
    // Another process holds it: this process's timed request ends in kTimeout, on time.
    Subprocess holder = HoldNow("timed", kX, "holder");
    for (LockMode m : {kS, kU, kX}) {
      Timed t = AcquireInThread(lock, m, 300ms);
      EXPECT_EQ(t.status.code(), Code::kTimeout) << ModeArg(m) << ": " << t.status.ToString();
      EXPECT_GE(t.ms, 290) << "gave up before the deadline";
      EXPECT_LT(t.ms, 3000) << "overslept the deadline";
    }
  }
  // A thread of this process holds it: other threads and other processes time out.
  auto r = lock.TryAcquire(kX, "holder");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  LockGuard g = std::move(r).value();
  Timed t = AcquireInThread(lock, kS, 300ms);
  EXPECT_EQ(t.status.code(), Code::kTimeout) << t.status.ToString();
  EXPECT_GE(t.ms, 290);
  EXPECT_LT(t.ms, 3000);
  Subprocess p = Hold("timed", kX, "probe", "300");
  EXPECT_TRUE(ExpectReport(p, "timeout", 10s));
}

TEST_F(LockingTest, RequestingALockThisThreadHoldsTimesOutInsteadOfDeadlocking) {
  Lock lock = GetLock("recursive");
  auto f = std::async(std::launch::async, [&] {
    auto r = lock.TryAcquire(kX, "outer");
    if (!r.ok()) return r.status();
    LockGuard g = std::move(r).value();
    auto inner = lock.Acquire(kS, Opts(300ms, "inner"));
    return inner.ok() ? Status(Code::kInternal, "recursive acquisition succeeded") : inner.status();
  });
  Status st = FinishWithin(f, 10s, "recursive Acquire with a deadline");
  EXPECT_EQ(st.code(), Code::kTimeout) << st.ToString();
}

// ---------------------------------------------------------------------------------------------
// Mutual exclusion under contention

// Counters of who is inside, updated only while holding: incremented after acquiring, decremented
// before releasing, so they can only disagree with the lock's modes if the lock is broken.
struct Occupancy {
  std::atomic<int> shared{0}, upgradable{0}, exclusive{0};
  std::atomic<int> violations{0}, failures{0}, max_shared{0};
};

void ContendLoop(const Lock& lock, Occupancy& o, int thread, int iters) {
  static constexpr LockMode kPlan[] = {kS, kS, kX, kU};
  for (int i = 0; i < iters; ++i) {
    LockMode mode = kPlan[(thread + i) % 4];
    auto r = lock.Acquire(mode, Opts(10s, "contend"));
    if (!r.ok()) {
      ++o.failures;
      continue;
    }
    LockGuard g = std::move(r).value();
    if (mode == kS) {
      int now = ++o.shared;
      if (o.exclusive.load() != 0) ++o.violations;
      int seen = o.max_shared.load();
      while (now > seen && !o.max_shared.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::yield();
      --o.shared;
    } else {
      if (mode == kU) {
        if (++o.upgradable != 1 || o.exclusive.load() != 0) ++o.violations;
        std::this_thread::yield();
        Status st = g.Upgrade(Opts(10s, "contend"));
        --o.upgradable;
        if (!st.ok()) {
          ++o.failures;
          continue;
        }
      }
      if (++o.exclusive != 1 || o.shared.load() != 0 || o.upgradable.load() != 0) ++o.violations;
      std::this_thread::yield();
      --o.exclusive;
    }
  }
}

TEST_F(LockingTest, ThreadsNeverOverlapAnExclusiveOrSecondUpgradableHolder) {
  Lock lock = GetLock("contended");
  Occupancy o;
  constexpr int kThreads = 4, kIters = 1000;
  auto f = std::async(std::launch::async, [&] {
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) ts.emplace_back([&, t] { ContendLoop(lock, o, t, kIters); });
    for (auto& t : ts) t.join();
    return true;
  });
  FinishWithin(f, 60s, "contending threads");
  EXPECT_EQ(o.violations.load(), 0) << "two holders overlapped in conflicting modes";
  EXPECT_EQ(o.failures.load(), 0) << "acquisitions or upgrades timed out under contention";
}

// Read-modify-write of a counter file under the lock, from several processes and threads at once:
// any overlap of two writers loses an increment.
void IncrementFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  long v = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
  std::this_thread::yield();
  std::string out = std::to_string(v + 1) + "\n";
  ASSERT_EQ(::pwrite(fd, out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
  ::close(fd);
}

TEST_F(LockingTest, ProcessesAndThreadsNeverLoseAnUpdateUnderExclusiveLock) {
  const std::string counter = tmp_.Sub("counter");
  std::ofstream(counter) << "0\n";
  constexpr int kIters = 200;
  std::vector<Subprocess> procs;
  procs.push_back(Helper({"count", dir(), "rmw", counter, std::to_string(kIters), "exclusive"}));
  procs.push_back(Helper({"count", dir(), "rmw", counter, std::to_string(kIters), "exclusive"}));
  procs.push_back(Helper({"count", dir(), "rmw", counter, std::to_string(kIters), "upgrade"}));
  Lock lock = GetLock("rmw");
  std::atomic<int> failures{0};
  auto f = std::async(std::launch::async, [&] {
    std::vector<std::thread> ts;
    for (int t = 0; t < 2; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < kIters; ++i) {
          auto r = lock.Acquire(t == 0 ? kX : kU, Opts(20s, "rmw"));
          if (!r.ok()) {
            ++failures;
            continue;
          }
          LockGuard g = std::move(r).value();
          if (t == 1 && !g.Upgrade(Opts(20s, "rmw")).ok()) {
            ++failures;
            continue;
          }
          IncrementFile(counter);
        }
      });
    }
    for (auto& t : ts) t.join();
    return true;
  });
  for (auto& p : procs) EXPECT_TRUE(ExpectReport(p, "done", 60s));
  FinishWithin(f, 60s, "counting threads");
  EXPECT_EQ(failures.load(), 0);
  std::ifstream in(counter);
  long total = -1;
  in >> total;
  EXPECT_EQ(total, 5 * kIters) << "lost updates: two writers overlapped";
}

// ---------------------------------------------------------------------------------------------
// Shared overlap between processes (requirement 1)

TEST_F(LockingTest, SixteenProcessesHoldOneSharedLockAtTheSameTime) {
  constexpr int kProcs = 16;
  std::vector<Subprocess> procs;
  for (int i = 0; i < kProcs; ++i) {
    procs.push_back(Hold("shared16", kS, "reader " + std::to_string(i)));
  }
  // Every one reports "acquired" before any is told to release: they hold it at the same time.
  std::vector<int64_t> acquired;
  for (auto& p : procs) {
    std::string rest;
    ASSERT_TRUE(ExpectReport(p, "acquired", 20s, &rest));
    acquired.push_back(ParseNs(rest));
  }
  Lock lock = GetLock("shared16");
  auto info = lock.Inspect();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  std::set<pid_t> holders;
  for (const auto& h : info->holders) {
    EXPECT_EQ(h.mode, kS) << "pid " << h.pid;
    holders.insert(h.pid);
  }
  for (auto& p : procs) EXPECT_TRUE(holders.count(p.pid())) << "holder " << p.pid() << " missing";
  EXPECT_EQ(TryInThread(lock, kX), Code::kBusy);

  // Each helper releases only after reading "release": every hold lasted at least until then.
  const int64_t release_sent = MonoNs();
  EXPECT_LT(*std::max_element(acquired.begin(), acquired.end()), release_sent)
      << "the 16 holds did not all overlap";
  for (auto& p : procs) {
    ASSERT_TRUE(p.WriteLine("release"));
    ASSERT_TRUE(ExpectReport(p, "released", 10s));
  }
  EXPECT_EQ(TryInThread(lock, kX), Code::kOk) << "released shared holds still block a writer";
}

// ---------------------------------------------------------------------------------------------
// Upgrade and downgrade (requirement 3 and the upgradable mode's contract)

TEST_F(LockingTest, TwoProcessesThatBothUpgradeCannotDeadlock) {
  const auto t0 = std::chrono::steady_clock::now();
  Subprocess a = HoldNow("upg", kU, "upgrader a");
  Subprocess b = Hold("upg", kU, "upgrader b", "10000");
  // b wants upgradable too: it must wait (only one upgradable holder), not be admitted.
  auto early = NextReport(b, 300ms);
  EXPECT_FALSE(early.has_value()) << "second upgradable admitted: " << *early;
  ASSERT_TRUE(a.WriteLine("upgrade 5000"));
  EXPECT_TRUE(ExpectReport(a, "upgraded", 6s));
  ASSERT_TRUE(a.WriteLine("release"));
  EXPECT_TRUE(ExpectReport(a, "released", 5s));
  EXPECT_TRUE(ExpectReport(b, "acquired", 6s));
  ASSERT_TRUE(b.WriteLine("upgrade 5000"));
  EXPECT_TRUE(ExpectReport(b, "upgraded", 6s));
  ASSERT_TRUE(b.WriteLine("release"));
  EXPECT_TRUE(ExpectReport(b, "released", 5s));
  EXPECT_LT(MsSince(t0), 8000);
}

TEST_F(LockingTest, RacingUpgradersWithReadersAllFinish) {
  // Two processes loop "upgradable, then upgrade" while a third re-takes the shared lock: with a
  // deadlock or a lost wake-up, some iteration would hit its 5 s deadline and report "timeout".
  const auto t0 = std::chrono::steady_clock::now();
  Subprocess u1 = Helper({"cycle", dir(), "race", "upgrade", "100", "1500", "5000"});
  Subprocess u2 = Helper({"cycle", dir(), "race", "upgrade", "100", "1500", "5000"});
  Subprocess r = Helper({"cycle", dir(), "race", "shared", "200", "1500", "5000"});
  for (Subprocess* p : {&u1, &u2, &r}) {
    std::string rest;
    ASSERT_TRUE(ExpectReport(*p, "started", 10s));
    ASSERT_TRUE(ExpectReport(*p, "done", 15s, &rest));
    EXPECT_GT(std::stol(rest), 0);
  }
  EXPECT_LT(MsSince(t0), 12000);
}

TEST_F(LockingTest, UpgradableCoexistsWithSharedButNotWithASecondUpgradable) {
  Lock lock = GetLock("coexist");
  Subprocess reader = HoldNow("coexist", kS, "reader");
  auto r = lock.TryAcquire(kU, "upgrader");
  ASSERT_TRUE(r.ok()) << "upgradable refused next to a shared holder: " << r.status().ToString();
  LockGuard u = std::move(r).value();
  // More readers may still come in...
  Subprocess reader2 = Hold("coexist", kS, "reader 2", "try");
  EXPECT_TRUE(ExpectReport(reader2, "acquired", 10s));
  // ...but not a second upgradable, from another process or another thread.
  Subprocess second = Hold("coexist", kU, "upgrader 2", "try");
  EXPECT_TRUE(ExpectReport(second, "busy", 10s));
  EXPECT_EQ(TryInThread(lock, kU), Code::kBusy);
  Subprocess timed = Hold("coexist", kU, "upgrader 3", "300");
  EXPECT_TRUE(ExpectReport(timed, "timeout", 10s));
  // A blocking second upgradable waits, and gets in when the first is released.
  Subprocess waiter = Hold("coexist", kU, "upgrader 4", "10000");
  auto early = NextReport(waiter, 300ms);
  EXPECT_FALSE(early.has_value()) << "second upgradable admitted: " << *early;
  u.Release();
  EXPECT_TRUE(ExpectReport(waiter, "acquired", 5s));
}

TEST_F(LockingTest, UpgradeWaitsForSharedHoldersAndHoldsBackNewOnes) {
  Lock lock = GetLock("upwait");
  Subprocess reader = HoldNow("upwait", kS, "reader");
  auto r = lock.TryAcquire(kU, "upgrader");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  LockGuard g = std::move(r).value();

  // While a shared holder exists, a timed upgrade fails and leaves the guard upgradable.
  auto t0 = std::chrono::steady_clock::now();
  Status st = g.Upgrade(Opts(300ms, "upgrader"));
  EXPECT_EQ(st.code(), Code::kTimeout) << st.ToString();
  EXPECT_GE(MsSince(t0), 290);
  EXPECT_EQ(g.mode(), kU);
  ASSERT_TRUE(reader.WriteLine("mode"));
  EXPECT_TRUE(ExpectReport(reader, "mode", 5s)) << "the reader lost its hold";
  // The failed upgrade did not leave the lock closed to readers.
  Subprocess after_fail = Hold("upwait", kS, "reader after failed upgrade", "2000");
  EXPECT_TRUE(ExpectReport(after_fail, "acquired", 5s));
  ASSERT_TRUE(after_fail.WriteLine("release"));
  EXPECT_TRUE(ExpectReport(after_fail, "released", 5s));

  // A blocking upgrade waits for the reader...
  auto upgraded_at = std::async(std::launch::async, [&] {
    Status s = g.Upgrade(Opts(10s, "upgrader"));
    return s.ok() ? MonoNs() : -1;
  });
  EXPECT_EQ(upgraded_at.wait_for(300ms), std::future_status::timeout)
      << "upgraded while a shared holder was still there";
  // ...and new shared lockers wait behind it instead of overtaking it.
  Subprocess late = Hold("upwait", kS, "late reader", "300");
  EXPECT_TRUE(ExpectReport(late, "timeout", 10s)) << "a new reader overtook a pending upgrade";

  // The reader releases only after it reads this line: the upgrade cannot complete before.
  const int64_t release_sent = MonoNs();
  ASSERT_TRUE(reader.WriteLine("release"));
  ASSERT_TRUE(ExpectReport(reader, "released", 5s));
  int64_t upgraded = FinishWithin(upgraded_at, 10s, "Upgrade");
  ASSERT_GT(upgraded, 0) << "upgrade failed after the reader left";
  EXPECT_GE(upgraded, release_sent) << "upgraded while the reader still held its lock";
  EXPECT_LT(upgraded - release_sent, 2'000'000'000) << "upgrade slow to notice the reader left";
  EXPECT_EQ(g.mode(), kX);
  Subprocess probe = Hold("upwait", kS, "probe", "try");
  EXPECT_TRUE(ExpectReport(probe, "busy", 10s)) << "upgraded lock admits readers";
}

TEST_F(LockingTest, TryUpgradeIsBusyWhileASharedHolderExists) {
  Lock lock = GetLock("tryup");
  Subprocess reader = HoldNow("tryup", kS, "reader");
  auto r = lock.TryAcquire(kU, "upgrader");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  LockGuard g = std::move(r).value();
  Status st = g.TryUpgrade();
  EXPECT_EQ(st.code(), Code::kBusy) << st.ToString();
  EXPECT_EQ(g.mode(), kU);
  // A shared holder in this process (another thread) also blocks it.
  ASSERT_TRUE(reader.WriteLine("release"));
  ASSERT_TRUE(ExpectReport(reader, "released", 5s));
  {
    std::promise<void> holding, done;
    auto f = std::async(std::launch::async, [&] {
      auto s = lock.TryAcquire(kS, "thread reader");
      holding.set_value();
      done.get_future().wait_for(10s);
      return s.ok();
    });
    holding.get_future().wait();
    st = g.TryUpgrade();
    EXPECT_EQ(st.code(), Code::kBusy) << "shared holder in another thread: " << st.ToString();
    done.set_value();
    EXPECT_TRUE(FinishWithin(f, 10s, "reader thread"));
  }
  st = g.TryUpgrade();
  ASSERT_TRUE(st.ok()) << "no shared holder left: " << st.ToString();
  EXPECT_EQ(g.mode(), kX);
  Subprocess probe = Hold("tryup", kS, "probe", "try");
  EXPECT_TRUE(ExpectReport(probe, "busy", 10s));
}

TEST_F(LockingTest, DowngradeLetsSharedHoldersIn) {
  Lock lock = GetLock("down");
  auto r = lock.TryAcquire(kX, "writer");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  LockGuard g = std::move(r).value();
  Subprocess reader = Hold("down", kS, "reader", "10000");
  auto early = NextReport(reader, 300ms);
  EXPECT_FALSE(early.has_value()) << "reader admitted while exclusive: " << *early;

  // exclusive → upgradable: the waiting reader gets in; a second upgradable still cannot.
  g.Downgrade(kU);
  EXPECT_EQ(g.mode(), kU);
  EXPECT_TRUE(ExpectReport(reader, "acquired", 3s)) << "downgrade did not wake the reader";
  Subprocess up2 = Hold("down", kU, "upgrader 2", "try");
  EXPECT_TRUE(ExpectReport(up2, "busy", 10s));
  Subprocess writer2 = Hold("down", kX, "writer 2", "try");
  EXPECT_TRUE(ExpectReport(writer2, "busy", 10s));

  // upgradable → shared: now an upgradable may come in too.
  g.Downgrade(kS);
  EXPECT_EQ(g.mode(), kS);
  Subprocess up3 = Hold("down", kU, "upgrader 3", "try");
  EXPECT_TRUE(ExpectReport(up3, "acquired", 10s));
  Subprocess writer3 = Hold("down", kX, "writer 3", "try");
  EXPECT_TRUE(ExpectReport(writer3, "busy", 10s));
}

TEST_F(LockingTest, DowngradeFromExclusiveStraightToShared) {
  Lock lock = GetLock("down2");
  auto r = lock.TryAcquire(kX, "writer");
  ASSERT_TRUE(r.ok());
  LockGuard g = std::move(r).value();
  Subprocess readers[] = {Hold("down2", kS, "r1", "10000"), Hold("down2", kS, "r2", "10000")};
  for (auto& p : readers) EXPECT_FALSE(NextReport(p, 200ms).has_value());
  g.Downgrade(kS);
  for (auto& p : readers) EXPECT_TRUE(ExpectReport(p, "acquired", 3s));
  EXPECT_EQ(TryInThread(lock, kU), Code::kOk);
  EXPECT_EQ(TryInThread(lock, kX), Code::kBusy);
}

// ---------------------------------------------------------------------------------------------
// Deadlines name the holder (requirement 5) and the wait notice

TEST_F(LockingTest, TimeoutMessageNamesHolderPidAndOperation) {
  const std::string op = "push docker.io/library/alpine:latest";
  Subprocess holder = HoldNow("named", kX, op);
  Lock lock = GetLock("named");
  auto t0 = std::chrono::steady_clock::now();
  auto r = lock.Acquire(kS, Opts(400ms, "reader"));
  double ms = MsSince(t0);
  ASSERT_FALSE(r.ok());
  const Status& st = r.status();
  EXPECT_EQ(st.code(), Code::kTimeout) << st.ToString();
  EXPECT_GE(ms, 390);
  EXPECT_LT(ms, 3000);
  EXPECT_NE(st.message().find("named"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("pid " + std::to_string(holder.pid())), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find(op), std::string::npos) << st.message();
}

TEST_F(LockingTest, TimeoutMessageNamesEveryOtherHolder) {
  Subprocess a = HoldNow("two", kS, "pull quay.io/a");
  Subprocess b = HoldNow("two", kS, "export /tmp/b.tar");
  Lock lock = GetLock("two");
  auto r = lock.Acquire(kX, Opts(300ms, "gc"));
  ASSERT_FALSE(r.ok());
  const std::string& m = r.status().message();
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  for (const auto& want : {"pid " + std::to_string(a.pid()), "pid " + std::to_string(b.pid()),
                           std::string("pull quay.io/a"), std::string("export /tmp/b.tar")}) {
    EXPECT_NE(m.find(want), std::string::npos) << "missing '" << want << "' in: " << m;
  }
}

TEST_F(LockingTest, TimeoutMessageNamesALongOperationInFull) {
  // Operations carry image references, and a reference by digest is over 100 characters.
  const std::string op =
      "pull docker.io/library/alpine@sha256:"
      "4bcff63911fcb4448bd4fdacec207030997caf25e9bea4045fa6c8c44de311d1";
  Subprocess holder = HoldNow("longop", kX, op);
  Lock lock = GetLock("longop");
  auto r = lock.Acquire(kS, Opts(300ms, "reader"));
  ASSERT_EQ(r.status().code(), Code::kTimeout) << r.status().ToString();
  EXPECT_NE(r.status().message().find(op), std::string::npos)
      << "operation cut short in: " << r.status().message();
  auto info = lock.Inspect();
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->holders.size(), 1u);
  EXPECT_EQ(info->holders[0].operation, op);
}

TEST_F(LockingTest, TimeoutInAnotherProcessNamesThisProcessAndOperation) {
  Lock lock = GetLock("named-here");
  auto r = lock.TryAcquire(kX, "gc sweep");
  ASSERT_TRUE(r.ok());
  LockGuard g = std::move(r).value();
  Subprocess p = Hold("named-here", kS, "reader", "300");
  std::string rest;
  ASSERT_TRUE(ExpectReport(p, "timeout", 10s, &rest));
  EXPECT_NE(rest.find("pid " + std::to_string(::getpid())), std::string::npos) << rest;
  EXPECT_NE(rest.find("gc sweep"), std::string::npos) << rest;
}

struct Notices {
  std::mutex mu;
  std::vector<std::pair<std::string, double>> lines;  // line, ms since the wait started
};

LockOptions NoticeOpts(Duration timeout, Duration notice_after, Notices& n,
                       std::chrono::steady_clock::time_point t0) {
  LockOptions o = Opts(timeout, "waiter");
  o.notice_after = notice_after;
  o.on_wait = [&n, t0](const std::string& line) {
    std::lock_guard<std::mutex> l(n.mu);
    n.lines.emplace_back(line, MsSince(t0));
  };
  return o;
}

TEST_F(LockingTest, WaitNoticeFiresOnceAfterNoticeAfterNamingTheHolder) {
  const std::string op = "unpack sha256:abc";
  Subprocess holder = HoldNow("notice", kX, op);
  Lock lock = GetLock("notice");
  Notices n;
  auto t0 = std::chrono::steady_clock::now();
  auto r = lock.Acquire(kS, NoticeOpts(1200ms, 200ms, n, t0));
  EXPECT_EQ(r.status().code(), Code::kTimeout) << r.status().ToString();
  std::lock_guard<std::mutex> l(n.mu);
  ASSERT_EQ(n.lines.size(), 1u) << "on_wait must be called exactly once";
  const auto& [line, at] = n.lines[0];
  EXPECT_GE(at, 190) << "notice before notice_after";
  EXPECT_LT(at, 1100) << "notice long after notice_after";
  EXPECT_NE(line.find("waiting for lock notice"), std::string::npos) << line;
  EXPECT_NE(line.find("pid " + std::to_string(holder.pid())), std::string::npos) << line;
  EXPECT_NE(line.find(op), std::string::npos) << line;
}

TEST_F(LockingTest, WaitNoticeFiresOnceWhenTheWaitSucceedsAndNeverForShortWaits) {
  Lock lock = GetLock("notice2");
  {
    Subprocess holder = HoldNow("notice2", kX, "commit");
    Notices n;
    auto t0 = std::chrono::steady_clock::now();
    auto f = std::async(std::launch::async,
                        [&] { return lock.Acquire(kX, NoticeOpts(10s, 100ms, n, t0)).ok(); });
    std::this_thread::sleep_for(600ms);
    ASSERT_TRUE(holder.WriteLine("release"));
    EXPECT_TRUE(FinishWithin(f, 10s, "Acquire"));
    std::lock_guard<std::mutex> l(n.mu);
    EXPECT_EQ(n.lines.size(), 1u) << "a 600 ms wait with notice_after 100 ms: one notice";
  }
  {
    Subprocess holder = HoldNow("notice2", kX, "commit");
    Notices n;
    auto t0 = std::chrono::steady_clock::now();
    auto f = std::async(std::launch::async,
                        [&] { return lock.Acquire(kX, NoticeOpts(10s, 3s, n, t0)).ok(); });
    std::this_thread::sleep_for(200ms);
    ASSERT_TRUE(holder.WriteLine("release"));
    EXPECT_TRUE(FinishWithin(f, 10s, "Acquire"));
    std::lock_guard<std::mutex> l(n.mu);
    EXPECT_TRUE(n.lines.empty()) << "notice for a wait shorter than notice_after";
  }
}

// ---------------------------------------------------------------------------------------------
// Locks die with their holder (requirement 6)

TEST_F(LockingTest, KillingTheHolderHandsTheLockToABlockedProcessWithin100ms) {
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string name = "kill-" + std::to_string(round);
    Subprocess holder = HoldNow(name, kX, "doomed");
    Subprocess waiter = Hold(name, round == 1 ? kS : kX, "waiter", "10000");
    ASSERT_TRUE(ExpectReport(waiter, "waiting", 5s));
    // Let it block in the kernel (or in its wait loop) before the kill.
    EXPECT_FALSE(NextReport(waiter, 200ms).has_value()) << "waiter admitted while held";
    const int64_t killed_at = MonoNs();
    ASSERT_TRUE(holder.Kill(SIGKILL));
    std::string rest;
    ASSERT_TRUE(ExpectReport(waiter, "acquired", 5s, &rest));
    const double ms = (ParseNs(rest) - killed_at) / 1e6;
    EXPECT_LT(ms, 100) << "waiter got the lock " << ms << " ms after kill -9 of the holder";
    RecordProperty("handoff_after_kill_ms_round" + std::to_string(round), std::to_string(ms));
  }
}

TEST_F(LockingTest, KillingTheHolderWakesAWaitingThreadOfThisProcessWithin100ms) {
  Subprocess holder = HoldNow("kill-thread", kX, "doomed");
  Lock lock = GetLock("kill-thread");
  auto f = std::async(std::launch::async, [&] {
    auto r = lock.Acquire(kX, Opts(10s, "waiter"));
    return r.ok() ? MonoNs() : -1;
  });
  EXPECT_EQ(f.wait_for(300ms), std::future_status::timeout) << "admitted while held";
  const int64_t killed_at = MonoNs();
  ASSERT_TRUE(holder.Kill(SIGKILL));
  int64_t got = FinishWithin(f, 10s, "Acquire");
  ASSERT_GT(got, 0) << "the wait failed";
  EXPECT_LT((got - killed_at) / 1e6, 100) << "ms after kill -9";
}

TEST_F(LockingTest, ExitWithoutReleasingFreesTheLock) {
  Subprocess holder = HoldNow("exit", kX, "quitter");
  ASSERT_TRUE(holder.WriteLine("exit"));
  auto st = holder.Wait(5s);
  ASSERT_TRUE(st.has_value());
  Lock lock = GetLock("exit");
  auto r = lock.Acquire(kX, Opts(2s, "next"));
  EXPECT_TRUE(r.ok()) << "an exited process still holds the lock: " << r.status().ToString();
}

TEST_F(LockingTest, LockDiesWithHolderEvenIfTheHolderStartedAChild) {
  // If lock descriptors were inheritable (no O_CLOEXEC), a child started by the holder would keep
  // the open file description, and with it the OFD lock, alive after the holder is killed.
  Subprocess holder = HoldNow("inherit", kX, "parent");
  ASSERT_TRUE(holder.WriteLine("spawn-sleeper 20"));
  std::string rest;
  ASSERT_TRUE(ExpectReport(holder, "spawned", 5s, &rest));
  const pid_t sleeper = static_cast<pid_t>(std::stol(rest));
  ASSERT_GT(sleeper, 0);
  holder.KillAndWait();
  Lock lock = GetLock("inherit");
  auto r = lock.Acquire(kX, Opts(2s, "next"));
  ::kill(sleeper, SIGKILL);
  EXPECT_TRUE(r.ok()) << "the holder's child kept the lock: " << r.status().ToString();
}

TEST_F(LockingTest, KillingAWaitingWriterDoesNotStrandTheReadersQueuedBehindIt) {
  // A waiting writer closes the gate to new readers; killed while waiting, it must not leave
  // them queued behind a gate nobody will open.
  Subprocess reader = HoldNow("strand", kS, "reader");
  Subprocess writer = Hold("strand", kX, "writer", "20000");
  ASSERT_TRUE(ExpectReport(writer, "waiting", 5s));
  EXPECT_FALSE(NextReport(writer, 200ms).has_value()) << "writer admitted next to a reader";
  Subprocess late = Hold("strand", kS, "late reader", "10000");
  ASSERT_TRUE(ExpectReport(late, "waiting", 5s));
  std::this_thread::sleep_for(100ms);
  const int64_t killed_at = MonoNs();
  writer.KillAndWait();
  std::string rest;
  ASSERT_TRUE(ExpectReport(late, "acquired", 5s, &rest)) << "reader stranded by a dead writer";
  EXPECT_LT((ParseNs(rest) - killed_at) / 1e6, 100);
}

TEST_F(LockingTest, AWriterThatTimesOutDoesNotLeaveReadersLockedOut) {
  Lock lock = GetLock("gate");
  Subprocess reader = HoldNow("gate", kS, "reader");
  // This process's writer gives up...
  Timed t = AcquireInThread(lock, kX, 300ms);
  ASSERT_EQ(t.status.code(), Code::kTimeout) << t.status.ToString();
  // ...and new readers, of other processes and of this one, get in at once.
  Subprocess r2 = Hold("gate", kS, "reader 2", "try");
  EXPECT_TRUE(ExpectReport(r2, "acquired", 10s)) << "the failed writer left the gate closed";
  EXPECT_EQ(TryInThread(lock, kS), Code::kOk);
  // The same when the writer that gave up was another process.
  Subprocess w = Hold("gate", kX, "writer", "300");
  ASSERT_TRUE(ExpectReport(w, "timeout", 10s));
  ASSERT_TRUE(w.Wait(5s).has_value());
  EXPECT_EQ(TryInThread(lock, kS), Code::kOk) << "a timed-out writer process closed the gate";
  Subprocess r3 = Hold("gate", kS, "reader 3", "try");
  EXPECT_TRUE(ExpectReport(r3, "acquired", 10s));
}

TEST_F(LockingTest, BlockingAcquireWithoutDeadlineGetsTheLockWhenReleased) {
  Subprocess holder = HoldNow("forever", kX, "holder");
  Subprocess waiter = Hold("forever", kX, "waiter", "-1");
  EXPECT_FALSE(NextReport(waiter, 300ms).has_value());
  ASSERT_TRUE(holder.WriteLine("release"));
  EXPECT_TRUE(ExpectReport(waiter, "acquired", 5s));
}

TEST_F(LockingTest, AForkedChildOfAHolderNeitherDropsNorSharesNorKeepsTheLock) {
  Subprocess holder = HoldNow("fork", kX, "parent");
  Lock lock = GetLock("fork");
  // Children that release the inherited guard, or just exit, leave the parent's hold alone.
  for (const char* action : {"release", "exit"}) {
    ASSERT_TRUE(holder.WriteLine(std::string("fork-child ") + action));
    ASSERT_TRUE(ExpectReport(holder, "forked", 5s));
    EXPECT_EQ(lock.TryAcquire(kS, "probe").status().code(), Code::kBusy)
        << "a forked child's '" << action << "' dropped the parent's lock";
  }
  // A child is not a second holder of its parent's exclusive lock.
  ASSERT_TRUE(holder.WriteLine("fork-child try"));
  std::string rest;
  ASSERT_TRUE(ExpectReport(holder, "child", 5s, &rest));
  EXPECT_NE(rest, "acquired") << "the forked child got the lock its parent holds exclusively";
  ASSERT_TRUE(ExpectReport(holder, "forked", 5s));
  // A child that outlives its parent does not keep the lock alive.
  ASSERT_TRUE(holder.WriteLine("fork-child sleep 20"));
  ASSERT_TRUE(ExpectReport(holder, "forked", 5s, &rest));
  const pid_t child = static_cast<pid_t>(std::stol(rest));
  holder.KillAndWait();
  auto r = lock.Acquire(kX, Opts(2s, "next"));
  ::kill(child, SIGKILL);
  EXPECT_TRUE(r.ok()) << "a forked child kept its dead parent's lock: " << r.status().ToString();
}

// ---------------------------------------------------------------------------------------------
// Descriptor hygiene (requirement 7)

TEST_F(LockingTest, ClosingAnUnrelatedDescriptorOfTheLockFileKeepsTheLock) {
  Lock lock = GetLock("fdclose");
  auto r = lock.TryAcquire(kX, "holder");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  LockGuard g = std::move(r).value();

  // Classic POSIX locks would vanish here: any close of any descriptor of the file drops them.
  int fd = ::open(lock.path().c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ::close(fd);
  Subprocess p1 = Hold("fdclose", kS, "probe", "try");
  EXPECT_TRUE(ExpectReport(p1, "busy", 10s)) << "open+close of the lock file dropped the lock";

  // Another LockSpace and Lock handle on the same file, dropped, must not close it either.
  {
    auto space2 = LockSpace::Open(dir());
    ASSERT_TRUE(space2.ok());
    auto lock2 = space2->Get("fdclose");
    ASSERT_TRUE(lock2.ok());
    EXPECT_EQ(TryInThread(lock2.value(), kS), Code::kBusy) << "a second handle bypasses the lock";
  }
  Subprocess p2 = Hold("fdclose", kX, "probe", "try");
  EXPECT_TRUE(ExpectReport(p2, "busy", 10s)) << "dropping a second handle dropped the lock";

  g.Release();
  Subprocess p3 = Hold("fdclose", kX, "probe", "try");
  EXPECT_TRUE(ExpectReport(p3, "acquired", 10s));
}

TEST_F(LockingTest, HolderProcessClosingAnUnrelatedDescriptorKeepsTheLock) {
  Subprocess holder = HoldNow("fdclose2", kX, "holder");
  ASSERT_TRUE(holder.WriteLine("open-close"));
  ASSERT_TRUE(ExpectReport(holder, "ok", 5s));
  Lock lock = GetLock("fdclose2");
  auto r = lock.TryAcquire(kS, "probe");
  EXPECT_EQ(r.status().code(), Code::kBusy) << "open+close in the holder dropped its lock";
}

// How many descriptors of this process refer to the file at `path`.
int OpenCount(const std::string& path) {
  const std::string real = std::filesystem::canonical(path).string();
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.string() == real) ++n;
  }
  return n;
}

TEST_F(LockingTest, OneDescriptorPerLockFileWhateverTheDirectorySpelling) {
  // The registry is keyed by inode: the same file reached through "dir/." or a symlink to the
  // directory is the same open file, so a close through one spelling cannot drop a hold.
  const std::string link = tmp_.Sub("link-to-locks");
  ASSERT_EQ(::symlink(dir().c_str(), link.c_str()), 0);
  std::string path;
  {
    auto dotted = LockSpace::Open(dir() + "/.");
    auto linked = LockSpace::Open(link);
    ASSERT_TRUE(dotted.ok() && linked.ok());
    auto a = space().Get("same");
    auto b = dotted->Get("same");
    auto c = linked->Get("same");
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    path = a->path();
    EXPECT_EQ(OpenCount(path), 1) << "the lock file is open more than once in this process";
    auto g = a->TryAcquire(kX, "holder");
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(TryInThread(b.value(), kS), Code::kBusy);
    EXPECT_EQ(TryInThread(c.value(), kX), Code::kBusy);
  }
  // docs/locking.md: closed when no handle or guard in the process refers to it.
  EXPECT_EQ(OpenCount(path), 0) << "the lock file stays open with no handle or guard left";
}

TEST_F(LockingTest, AGuardKeepsItsLockAfterEveryHandleIsGone) {
  LockGuard g;
  {
    auto space2 = LockSpace::Open(dir());
    ASSERT_TRUE(space2.ok());
    auto lock = space2->Get("orphan");
    ASSERT_TRUE(lock.ok());
    auto r = lock->TryAcquire(kX, "holder");
    ASSERT_TRUE(r.ok());
    g = std::move(r).value();
  }
  Subprocess p = Hold("orphan", kS, "probe", "try");
  EXPECT_TRUE(ExpectReport(p, "busy", 10s)) << "dropping the handle dropped the guard's lock";
  g.Release();
  Subprocess p2 = Hold("orphan", kS, "probe", "try");
  EXPECT_TRUE(ExpectReport(p2, "acquired", 10s));
}

// ---------------------------------------------------------------------------------------------
// Diagnostics: List and Inspect

TEST_F(LockingTest, ListShowsHoldersAndWaitersOfOtherProcesses) {
  const int64_t start_unix = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  // An idle lock: used once, nobody holds or waits.
  {
    Lock idle = GetLock("a-idle");
    auto g = idle.TryAcquire(kX, "once");
    ASSERT_TRUE(g.ok());
  }
  Subprocess holder = HoldNow("b-busy", kS, "pull docker.io/library/alpine");
  Subprocess waiter = Hold("b-busy", kX, "gc", "20000");
  ASSERT_TRUE(ExpectReport(waiter, "waiting", 5s));

  // The waiter publishes itself shortly after it starts waiting.
  std::vector<LockInfo> list;
  const LockInfo* busy = nullptr;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto l = space().List();
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    list = std::move(l).value();
    busy = nullptr;
    for (const auto& li : list) {
      if (li.name == "b-busy") busy = &li;
    }
    if (busy && !busy->waiters.empty()) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_NE(busy, nullptr) << "List() misses a held lock";
  for (const auto& li : list) EXPECT_NE(li.name, "a-idle") << "only_active listed an idle lock";
  EXPECT_EQ(busy->path, dir() + "/b-busy.lock");
  ASSERT_EQ(busy->holders.size(), 1u);
  const HolderInfo& h = busy->holders[0];
  EXPECT_EQ(h.pid, holder.pid());
  EXPECT_EQ(h.mode, kS);
  EXPECT_EQ(h.operation, "pull docker.io/library/alpine");
  EXPECT_GE(h.threads, 1);
  EXPECT_GE(h.since_unix_ns, start_unix - 1'000'000'000);
  ASSERT_EQ(busy->waiters.size(), 1u) << "the waiting process is not listed";
  const HolderInfo& w = busy->waiters[0];
  EXPECT_EQ(w.pid, waiter.pid());
  EXPECT_EQ(w.mode, kX);
  EXPECT_EQ(w.operation, "gc");
  EXPECT_GE(w.since_unix_ns, start_unix - 1'000'000'000);

  // Inspect agrees, and List(false) includes the idle lock, in name order.
  auto info = GetLock("b-busy").Inspect();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_EQ(info->holders.size(), 1u);
  EXPECT_EQ(info->holders[0].pid, holder.pid());
  ASSERT_EQ(info->waiters.size(), 1u);
  EXPECT_EQ(info->waiters[0].pid, waiter.pid());
  auto all = space().List(false);
  ASSERT_TRUE(all.ok());
  std::vector<std::string> names;
  for (const auto& li : *all) names.push_back(li.name);
  EXPECT_NE(std::find(names.begin(), names.end(), "a-idle"), names.end());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));

  // A killed holder is not listed any more: what is listed is live.
  holder.KillAndWait();
  ASSERT_TRUE(ExpectReport(waiter, "acquired", 5s));
  auto after = GetLock("b-busy").Inspect();
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->holders.size(), 1u);
  EXPECT_EQ(after->holders[0].pid, waiter.pid());
  EXPECT_EQ(after->holders[0].mode, kX);
  EXPECT_TRUE(after->waiters.empty());
}

TEST_F(LockingTest, InspectLeavesOutThisProcessListIncludesIt) {
  Lock lock = GetLock("self");
  auto r = lock.TryAcquire(kS, "inspect me");
  ASSERT_TRUE(r.ok());
  LockGuard g = std::move(r).value();
  auto info = lock.Inspect();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  for (const auto& h : info->holders) EXPECT_NE(h.pid, ::getpid());
  auto list = space().List();
  ASSERT_TRUE(list.ok());
  bool found = false;
  for (const auto& li : *list) {
    if (li.name != "self") continue;
    for (const auto& h : li.holders) {
      if (h.pid == ::getpid()) {
        found = true;
        EXPECT_EQ(h.mode, kS);
        EXPECT_EQ(h.operation, "inspect me");
      }
    }
  }
  EXPECT_TRUE(found) << "List() leaves out this process's holder";

  // Two more reader threads: one entry for the process, counting 3 threads.
  {
    std::promise<void> ready1, ready2, done;
    std::shared_future<void> done_f = done.get_future().share();
    auto reader = [&](std::promise<void>& ready) {
      auto rr = lock.TryAcquire(kS, "inspect me too");
      ready.set_value();
      done_f.wait_for(10s);
      return rr.ok();
    };
    auto f1 = std::async(std::launch::async, reader, std::ref(ready1));
    auto f2 = std::async(std::launch::async, reader, std::ref(ready2));
    ready1.get_future().wait();
    ready2.get_future().wait();
    auto three = space().List();
    ASSERT_TRUE(three.ok());
    int entries = 0;
    for (const auto& li : *three) {
      if (li.name != "self") continue;
      for (const auto& h : li.holders) {
        if (h.pid != ::getpid()) continue;
        ++entries;
        EXPECT_EQ(h.threads, 3);
      }
    }
    EXPECT_EQ(entries, 1) << "one entry per process";
    done.set_value();
    EXPECT_TRUE(FinishWithin(f1, 10s, "reader"));
    EXPECT_TRUE(FinishWithin(f2, 10s, "reader"));
  }
  g.Release();
  auto idle = space().List();
  ASSERT_TRUE(idle.ok());
  for (const auto& li : *idle) EXPECT_NE(li.name, "self") << "released lock still listed";
}

TEST_F(LockingTest, ListShowsAWaitingThreadOfThisProcess) {
  Subprocess holder = HoldNow("queued", kX, "holder");
  Lock lock = GetLock("queued");
  auto f = std::async(std::launch::async, [&] {
    auto r = lock.Acquire(kS, Opts(10s, "queued here"));
    return r.ok();
  });
  bool listed = false;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!listed && std::chrono::steady_clock::now() < deadline) {
    auto list = space().List();
    ASSERT_TRUE(list.ok());
    for (const auto& li : *list) {
      for (const auto& w : li.waiters) {
        if (li.name == "queued" && w.pid == ::getpid() && w.mode == kS &&
            w.operation == "queued here" && w.threads == 1) {
          listed = true;
        }
      }
    }
    if (!listed) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(listed) << "this process's waiting thread is not listed as a waiter";
  ASSERT_TRUE(holder.WriteLine("release"));
  EXPECT_TRUE(FinishWithin(f, 10s, "Acquire"));
  auto after = space().List();
  ASSERT_TRUE(after.ok());
  for (const auto& li : *after) {
    if (li.name == "queued") {
      EXPECT_TRUE(li.waiters.empty()) << "a served waiter is still listed";
    }
  }
}

// ---------------------------------------------------------------------------------------------
// In-process order

TEST_F(LockingTest, UpgradableAndExclusiveRequestsOfOneProcessAreServedInArrivalOrder) {
  Lock lock = GetLock("order");
  auto r = lock.TryAcquire(kX, "gate");
  ASSERT_TRUE(r.ok());
  LockGuard gate = std::move(r).value();
  std::mutex mu;
  std::vector<int> order;
  std::atomic<int> failures{0};
  const LockMode modes[] = {kX, kU, kX, kU, kX};
  std::vector<std::future<void>> fs;
  for (int i = 0; i < 5; ++i) {
    fs.push_back(std::async(std::launch::async, [&, i] {
      auto g = lock.Acquire(modes[i], Opts(10s, "waiter " + std::to_string(i)));
      if (!g.ok()) {
        ++failures;
        return;
      }
      {
        std::lock_guard<std::mutex> l(mu);
        order.push_back(i);
      }
      std::this_thread::sleep_for(5ms);
    }));
    std::this_thread::sleep_for(100ms);  // so that arrival order is unambiguous
  }
  gate.Release();
  for (auto& f : fs) FinishWithin(f, 20s, "ordered waiter");
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

// Phase-fairness, deterministically: a writer W0 holds; a writer W1 queues, then a reader R
// queues. R waited through W0's write phase, so when W0 releases, R must go before W1.
TEST_F(LockingTest, AReaderThatWaitedThroughAWritePhaseGoesBeforeTheNextWriterThread) {
  Lock lock = GetLock("phase");
  constexpr int kRounds = 30;
  int writer_first = 0;
  for (int round = 0; round < kRounds; ++round) {
    auto r0 = lock.TryAcquire(kX, "w0");
    ASSERT_TRUE(r0.ok()) << r0.status().ToString();
    LockGuard w0 = std::move(r0).value();
    std::atomic<int> seq{0};
    auto take = [&](LockMode mode) {
      auto g = lock.Acquire(mode, Opts(10s, ModeArg(mode)));
      int at = g.ok() ? ++seq : -1;
      std::this_thread::sleep_for(20ms);  // hold long enough that the order is unambiguous
      return at;
    };
    auto w1 = std::async(std::launch::async, take, kX);
    std::this_thread::sleep_for(50ms);
    auto rd = std::async(std::launch::async, take, kS);
    std::this_thread::sleep_for(50ms);
    w0.Release();
    int w1_at = FinishWithin(w1, 20s, "writer");
    int rd_at = FinishWithin(rd, 20s, "reader");
    ASSERT_GT(w1_at, 0);
    ASSERT_GT(rd_at, 0);
    if (w1_at < rd_at) ++writer_first;
  }
  EXPECT_EQ(writer_first, 0) << "in " << writer_first << " of " << kRounds
                             << " rounds the next writer overtook a reader that had waited "
                                "through the previous write phase (strict between threads)";
}

TEST_F(LockingTest, AReaderThatWaitedThroughAWritePhaseGoesBeforeTheNextWriterProcess) {
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string name = "phase-p" + std::to_string(round);
    Subprocess w0 = HoldNow(name, kX, "w0");
    Subprocess w1 = Hold(name, kX, "w1", "10000");
    ASSERT_TRUE(ExpectReport(w1, "waiting", 5s));
    std::this_thread::sleep_for(100ms);
    Subprocess rd = Hold(name, kS, "reader", "10000");
    ASSERT_TRUE(ExpectReport(rd, "waiting", 5s));
    std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(w0.WriteLine("release"));
    // w1 never releases on its own: if it went first, the reader would time out here.
    ASSERT_TRUE(ExpectReport(rd, "acquired", 5s)) << "the next writer overtook a waiting reader";
    EXPECT_FALSE(NextReport(w1, 0ms).has_value()) << "writer admitted next to the reader";
    ASSERT_TRUE(rd.WriteLine("release"));
    EXPECT_TRUE(ExpectReport(w1, "acquired", 5s));
  }
}

}  // namespace
}  // namespace imgstore::locking
