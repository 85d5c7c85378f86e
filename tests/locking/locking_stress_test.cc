// Stress tests of src/locking (ctest label "stress"): no fixed caps (200 processes holding one
// shared lock, 10,000 locks held by one process, many waiters, many leases) and fairness under
// continuous streams of readers or writers, between processes and between threads.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <set>
#include <thread>

#include "locking/locking.h"
#include "locking_test_util.h"

namespace imgstore::locking {
namespace {

constexpr LockMode kS = LockMode::kShared;
constexpr LockMode kX = LockMode::kExclusive;

using LockingStressTest = LockingTest;

// How many of `n` try-acquisitions in `mode`, 1 ms apart, found the lock busy: a stream that
// leaves the lock free now and then would let a waiter in without any fairness at all.
int BusyTries(const Lock& lock, LockMode mode, int n) {
  int busy = 0;
  for (int i = 0; i < n; ++i) {
    auto f = std::async(std::launch::async, [&] { return lock.TryAcquire(mode, "probe"); });
    auto r = FinishWithin(f, 10s, "TryAcquire");
    if (!r.ok() && r.status().code() == Code::kBusy) ++busy;
    std::this_thread::sleep_for(1ms);
  }
  return busy;
}

// ---------------------------------------------------------------------------------------------
// No fixed caps

TEST_F(LockingStressTest, TwoHundredProcessesHoldOneSharedLockAtOnce) {
  constexpr int kProcs = 200;
  std::vector<Subprocess> procs;
  procs.reserve(kProcs);
  for (int i = 0; i < kProcs; ++i)
    procs.push_back(Hold("crowd", kS, "reader " + std::to_string(i)));
  std::vector<int64_t> acquired;
  for (auto& p : procs) {
    std::string rest;
    ASSERT_TRUE(ExpectReport(p, "acquired", 30s, &rest));
    acquired.push_back(ParseNs(rest));
  }
  // All 200 hold it now: none has been told to release.
  Lock lock = GetLock("crowd");
  auto info = lock.Inspect();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  std::set<pid_t> pids;
  for (const auto& h : info->holders) pids.insert(h.pid);
  for (auto& p : procs) EXPECT_TRUE(pids.count(p.pid())) << "holder " << p.pid() << " not listed";
  EXPECT_EQ(lock.TryAcquire(kX, "probe").status().code(), Code::kBusy);

  // Each helper releases only after reading "release": every hold lasted at least until then.
  const int64_t release_sent = MonoNs();
  EXPECT_LT(*std::max_element(acquired.begin(), acquired.end()), release_sent)
      << "the 200 shared holds did not all overlap";
  for (auto& p : procs) ASSERT_TRUE(p.WriteLine("release"));
  for (auto& p : procs) ASSERT_TRUE(ExpectReport(p, "released", 20s));
  for (auto& p : procs) EXPECT_TRUE(p.Wait(10s).has_value());
  auto r = lock.Acquire(kX, Opts(5s));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST_F(LockingStressTest, OneProcessHoldsTenThousandDistinctLocks) {
  constexpr int kLocks = 10'000;
  Subprocess many = Helper({"many", dir(), "m", std::to_string(kLocks), "exclusive"});
  std::string rest;
  ASSERT_TRUE(ExpectReport(many, "acquired", 60s, &rest));
  EXPECT_EQ(rest.substr(0, rest.find(' ')), std::to_string(kLocks));

  // Every one of them is really held (sampled every 97, plus both ends).
  std::vector<int> sample = {0, kLocks - 1};
  for (int i = 0; i < kLocks; i += 97) sample.push_back(i);
  for (int i : sample) {
    Lock lock = GetLock("m-" + std::to_string(i));
    auto r = lock.TryAcquire(kS, "probe");
    EXPECT_EQ(r.status().code(), Code::kBusy) << "lock m-" << i << " is not held";
  }
  // List() sees them all, held by that process.
  auto list = space().List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->size(), static_cast<size_t>(kLocks));
  int by_helper = 0;
  for (const auto& li : *list) {
    if (li.holders.size() == 1 && li.holders[0].pid == many.pid()) ++by_helper;
  }
  EXPECT_EQ(by_helper, kLocks);

  // Its death frees all of them at once.
  many.KillAndWait();
  for (int i : sample) {
    Lock lock = GetLock("m-" + std::to_string(i));
    auto r = lock.TryAcquire(kX, "probe");
    EXPECT_TRUE(r.ok()) << "m-" << i << ": " << r.status().ToString();
  }

  // This process can hold as many too (its registry has no cap either).
  std::vector<LockGuard> guards;
  guards.reserve(kLocks);
  for (int i = 0; i < kLocks; ++i) {
    auto lock = space().Get("m-" + std::to_string(i));
    ASSERT_TRUE(lock.ok()) << i << ": " << lock.status().ToString();
    auto g = lock->TryAcquire(kX, "many here");
    ASSERT_TRUE(g.ok()) << i << ": " << g.status().ToString();
    guards.push_back(std::move(g).value());
  }
  Subprocess probe = Hold("m-" + std::to_string(kLocks - 1), kS, "probe", "try");
  EXPECT_TRUE(ExpectReport(probe, "busy", 10s));
}

TEST_F(LockingStressTest, FiftyWaitingProcessesAllGetTheLock) {
  Lock lock = GetLock("queue");
  auto r = lock.TryAcquire(kX, "gate");
  ASSERT_TRUE(r.ok());
  LockGuard gate = std::move(r).value();
  constexpr int kProcs = 50;
  std::vector<Subprocess> procs;
  for (int i = 0; i < kProcs; ++i) {
    procs.push_back(
        Helper({"cycle", dir(), "queue", i % 2 ? "exclusive" : "shared", "0", "1", "30000"}));
  }
  for (auto& p : procs) ASSERT_TRUE(ExpectReport(p, "waiting", 10s));
  // Nobody gets in while the gate is held.
  std::this_thread::sleep_for(300ms);
  for (auto& p : procs) EXPECT_FALSE(NextReport(p, 1ms).has_value()) << "admitted past the gate";
  gate.Release();
  for (auto& p : procs) {
    EXPECT_TRUE(ExpectReport(p, "started", 30s));
    EXPECT_TRUE(ExpectReport(p, "done", 10s));
  }
}

TEST_F(LockingStressTest, TwoThousandLeasesOfOneProcess) {
  constexpr int kLeases = 2000;
  std::vector<Lease> leases;
  for (int i = 0; i < kLeases; ++i) {
    auto l = space().CreateLease("lease " + std::to_string(i));
    ASSERT_TRUE(l.ok()) << i << ": " << l.status().ToString();
    leases.push_back(std::move(l).value());
  }
  auto list = space().ListLeases();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), static_cast<size_t>(kLeases));
  for (const auto& li : *list) EXPECT_TRUE(li.alive) << li.id;
  for (int i = 0; i < kLeases; i += 2) leases[i].Release();
  auto removed = space().RemoveDeadLeases();
  ASSERT_TRUE(removed.ok());
  auto left = space().ListLeases();
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->size(), static_cast<size_t>(kLeases / 2));
  for (const auto& li : *left) EXPECT_TRUE(li.alive) << li.id;
}

TEST_F(LockingStressTest, LeasesCreatedWhileDeadLeasesAreRemovedStayAlive) {
  // The store removes dead leases whenever it opens, so RemoveDeadLeases runs while other
  // processes create leases. A lease it removes is void: its blobs may be collected under a push.
  std::atomic<bool> stop{false};
  std::atomic<long> created{0}, create_errors{0}, dead_at_birth{0}, removed{0};
  std::string first_error;
  std::mutex mu;
  auto creator = [&] {
    while (!stop.load()) {
      auto l = space().CreateLease("push");
      if (!l.ok()) {
        ++create_errors;
        std::lock_guard<std::mutex> g(mu);
        if (first_error.empty()) first_error = l.status().ToString();
        continue;
      }
      ++created;
      auto alive = space().LeaseAlive(l->id());
      if (!alive.ok() || !alive.value()) ++dead_at_birth;
    }
  };
  auto remover = [&] {
    while (!stop.load()) {
      auto n = space().RemoveDeadLeases();
      if (n.ok()) removed += n.value();
    }
  };
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) ts.emplace_back(creator);
  for (int i = 0; i < 2; ++i) ts.emplace_back(remover);
  std::this_thread::sleep_for(3s);
  stop = true;
  for (auto& t : ts) t.join();
  RecordProperty("leases_created", std::to_string(created.load()));
  EXPECT_GT(created.load(), 100);
  EXPECT_EQ(create_errors.load(), 0) << "CreateLease failed, first: " << first_error;
  EXPECT_EQ(dead_at_birth.load(), 0)
      << "of " << created.load() << " new leases, " << dead_at_birth.load()
      << " read dead at once: RemoveDeadLeases removed them while they were being created";
}

// ---------------------------------------------------------------------------------------------
// Fairness between processes (requirement 4)

// Starts `n` helpers that re-take `name` in `mode`, holding it `hold_us` each time, until their
// stdin closes; returns once all have started.
std::vector<Subprocess> StartStream(const std::string& dir, const std::string& name,
                                    const char* mode, int n, int hold_us) {
  std::vector<Subprocess> procs;
  for (int i = 0; i < n; ++i) {
    Subprocess p;
    std::string error;
    EXPECT_TRUE(p.Start(HelperPath(),
                        {"cycle", dir, name, mode, std::to_string(hold_us), "0", "20000"}, &error))
        << error;
    procs.push_back(std::move(p));
  }
  for (auto& p : procs) EXPECT_TRUE(ExpectReport(p, "started", 20s));
  return procs;
}

// Stops a stream and checks that each member kept making progress (none starved or timed out).
void StopStream(std::vector<Subprocess>& procs, double max_wait_ms) {
  for (auto& p : procs) p.CloseStdin();
  for (auto& p : procs) {
    std::string rest;
    ASSERT_TRUE(ExpectReport(p, "done", 20s, &rest)) << "a stream member failed";
    long count = 0;
    long long max_wait_ns = 0;
    ASSERT_EQ(std::sscanf(rest.c_str(), "%ld %lld", &count, &max_wait_ns), 2) << rest;
    EXPECT_GT(count, 1);
    EXPECT_LT(max_wait_ns / 1e6, max_wait_ms) << "a stream member waited too long";
  }
}

TEST_F(LockingStressTest, WriterProcessGetsInPastEightReaderProcesses) {
  // 8 readers re-take the shared lock at once, holding ~1 ms each: the lock is never free of
  // readers, so a writer without a gate would wait forever.
  auto readers = StartStream(dir(), "stream-r", "shared", 8, 1000);
  std::this_thread::sleep_for(200ms);
  EXPECT_GE(BusyTries(GetLock("stream-r"), kX, 50), 45) << "the readers leave the lock free";
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Subprocess writer = Hold("stream-r", kX, "writer", "5000");
    std::string rest;
    ASSERT_TRUE(ExpectReport(writer, "waiting", 10s, &rest));
    const int64_t asked = ParseNs(rest);
    ASSERT_TRUE(ExpectReport(writer, "acquired", 10s, &rest)) << "writer starved by readers";
    const double ms = (ParseNs(rest) - asked) / 1e6;
    EXPECT_LT(ms, 5000);
    RecordProperty("writer_wait_ms_round" + std::to_string(round), std::to_string(ms));
    std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(writer.WriteLine("release"));
    ASSERT_TRUE(ExpectReport(writer, "released", 5s));
  }
  // A writer thread of this process too.
  Lock lock = GetLock("stream-r");
  auto t0 = std::chrono::steady_clock::now();
  auto w = lock.Acquire(kX, Opts(5s, "thread writer"));
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_LT(MsSince(t0), 5000);
  if (w.ok()) w.value().Release();
  StopStream(readers, 10'000);
}

TEST_F(LockingStressTest, ReaderGetsInPastThreeWriterProcesses) {
  auto writers = StartStream(dir(), "stream-w", "exclusive", 3, 1000);
  std::this_thread::sleep_for(200ms);
  EXPECT_GE(BusyTries(GetLock("stream-w"), kS, 50), 45) << "the writers leave the lock free";
  for (int round = 0; round < 3; ++round) {
    Subprocess reader = Hold("stream-w", kS, "reader", "5000");
    std::string rest;
    ASSERT_TRUE(ExpectReport(reader, "waiting", 10s, &rest));
    const int64_t asked = ParseNs(rest);
    ASSERT_TRUE(ExpectReport(reader, "acquired", 10s, &rest)) << "reader starved by writers";
    EXPECT_LT((ParseNs(rest) - asked) / 1e6, 5000);
    ASSERT_TRUE(reader.WriteLine("release"));
  }
  Lock lock = GetLock("stream-w");
  for (int i = 0; i < 5; ++i) {
    auto r = lock.Acquire(kS, Opts(5s, "thread reader"));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  }
  StopStream(writers, 10'000);
}

// ---------------------------------------------------------------------------------------------
// Fairness between threads of one process (strict)

struct Stream {
  std::atomic<bool> stop{false};
  std::atomic<int> inside{0}, max_inside{0};
  std::atomic<long> count{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;

  void Start(const Lock& lock, LockMode mode, int n, std::chrono::microseconds hold) {
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([this, &lock, mode, hold] {
        while (!stop.load()) {
          auto r = lock.Acquire(mode, Opts(10s, "stream"));
          if (!r.ok()) {
            ++failures;
            continue;
          }
          int now = ++inside;
          int seen = max_inside.load();
          while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
          }
          std::this_thread::sleep_for(hold);
          --inside;
          ++count;
        }
      });
    }
  }
  void Stop() {
    stop = true;
    for (auto& t : threads) t.join();
    threads.clear();
  }
  ~Stream() {
    if (!threads.empty()) Stop();
  }
};

TEST_F(LockingStressTest, WriterThreadGetsInPastAStreamOfReaderThreads) {
  Lock lock = GetLock("thread-stream-r");
  Stream readers;
  readers.Start(lock, kS, 6, 1ms);
  std::this_thread::sleep_for(200ms);
  const long before = readers.count.load();
  double worst = 0;
  for (int round = 0; round < 5; ++round) {
    auto f = std::async(std::launch::async, [&] {
      auto t0 = std::chrono::steady_clock::now();
      auto r = lock.Acquire(kX, Opts(5s, "writer"));
      return r.ok() ? MsSince(t0) : -1.0;
    });
    double ms = FinishWithin(f, 20s, "writer Acquire");
    EXPECT_GE(ms, 0) << "writer starved by reader threads (round " << round << ")";
    worst = std::max(worst, ms);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GT(readers.max_inside.load(), 1) << "the readers never overlapped: no stream";
  EXPECT_GT(readers.count.load(), before) << "the readers stopped";
  readers.Stop();
  EXPECT_EQ(readers.failures.load(), 0) << "readers timed out";
  RecordProperty("worst_writer_wait_ms", std::to_string(worst));
  EXPECT_LT(worst, 1000);
}

TEST_F(LockingStressTest, ReaderThreadsGetInPastAStreamOfWriterThreads) {
  Lock lock = GetLock("thread-stream-w");
  Stream writers;
  writers.Start(lock, kX, 3, 1ms);
  std::this_thread::sleep_for(200ms);
  std::atomic<int> failures{0};
  std::atomic<long> worst_us{0};
  auto f = std::async(std::launch::async, [&] {
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; ++t) {
      ts.emplace_back([&] {
        for (int i = 0; i < 10; ++i) {
          auto t0 = std::chrono::steady_clock::now();
          auto r = lock.Acquire(kS, Opts(5s, "reader"));
          long us = static_cast<long>(MsSince(t0) * 1000);
          long seen = worst_us.load();
          while (us > seen && !worst_us.compare_exchange_weak(seen, us)) {
          }
          if (!r.ok()) ++failures;
          std::this_thread::sleep_for(2ms);
        }
      });
    }
    for (auto& t : ts) t.join();
    return true;
  });
  FinishWithin(f, 60s, "reader threads");
  const long writes = writers.count.load();
  writers.Stop();
  EXPECT_EQ(failures.load(), 0) << "readers starved by writer threads";
  EXPECT_EQ(writers.failures.load(), 0);
  EXPECT_GT(writes, 10) << "the writers were not streaming";
  EXPECT_EQ(writers.max_inside.load(), 1) << "two writers inside at once";
  RecordProperty("worst_reader_wait_us", std::to_string(worst_us.load()));
  EXPECT_LT(worst_us.load(), 1'000'000) << "phase-fair: a reader waits about one write phase";
}

// ---------------------------------------------------------------------------------------------
// Fairness between a stream of threads in one process and a waiter in another process

TEST_F(LockingStressTest, WriterProcessGetsInPastAStreamOfReaderThreads) {
  // The readers are threads of this process: each new reader thread must queue behind a writer
  // of another process that is next, as a reader process would, or the writer starves.
  Lock lock = GetLock("mixed-r");
  Stream readers;
  readers.Start(lock, kS, 6, 1ms);
  std::this_thread::sleep_for(200ms);
  Subprocess writer = Hold("mixed-r", kX, "writer", "5000");
  std::string rest;
  ASSERT_TRUE(ExpectReport(writer, "waiting", 10s, &rest));
  const int64_t asked = ParseNs(rest);
  EXPECT_TRUE(ExpectReport(writer, "acquired", 10s, &rest))
      << "a writer process starved by reader threads of another process";
  if (!rest.empty()) {
    // A gate admits the writer after the readers of the moment (~1 ms); 2 s is generous.
    EXPECT_LT((ParseNs(rest) - asked) / 1e6, 2000);
  }
  EXPECT_GT(readers.max_inside.load(), 1) << "the readers never overlapped: no stream";
  writer.CloseStdin();
  readers.Stop();
  EXPECT_EQ(readers.failures.load(), 0);
}

TEST_F(LockingStressTest, UpgraderProcessGetsInPastAStreamOfReaderThreads) {
  Lock lock = GetLock("mixed-u");
  Stream readers;
  readers.Start(lock, kS, 6, 1ms);
  std::this_thread::sleep_for(200ms);
  Subprocess upgrader = Hold("mixed-u", LockMode::kUpgradable, "upgrader", "5000");
  ASSERT_TRUE(ExpectReport(upgrader, "acquired", 10s)) << "upgradable coexists with readers";
  ASSERT_TRUE(upgrader.WriteLine("upgrade 5000"));
  EXPECT_TRUE(ExpectReport(upgrader, "upgraded", 10s))
      << "an upgrade in one process starved by reader threads of another";
  upgrader.CloseStdin();
  readers.Stop();
  EXPECT_EQ(readers.failures.load(), 0);
}

TEST_F(LockingStressTest, ReaderProcessGetsInPastAStreamOfWriterThreads) {
  Lock lock = GetLock("mixed-w");
  Stream writers;
  writers.Start(lock, kX, 3, 1ms);
  std::this_thread::sleep_for(200ms);
  for (int round = 0; round < 3; ++round) {
    Subprocess reader = Hold("mixed-w", kS, "reader", "5000");
    EXPECT_TRUE(ExpectReport(reader, "acquired", 10s))
        << "a reader process starved by writer threads of another process";
  }
  writers.Stop();
  EXPECT_EQ(writers.failures.load(), 0);
  EXPECT_EQ(writers.max_inside.load(), 1);
}

}  // namespace
}  // namespace imgstore::locking
