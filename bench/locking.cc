// bench_locking: the cost of src/locking's locks.
//   (a) uncontended acquire + release in one thread, per mode (Google Benchmark, ns);
//   (b) hand-off latency of an exclusive lock between two processes: the parent and an exec'd
//       child ping-pong the lock; each hand-off is timed from the holder's release to the
//       waiter's return from Acquire (CLOCK_MONOTONIC, shared by both processes), in µs;
//   (c) shared acquisitions (acquire + release) per second by 1, 2, 4, 8 and 16 processes
//       re-taking one shared lock at once (median of three runs).
// docs/performance.md ("## Locking") records a run. The binary re-executes itself
// (/proc/self/exe --pingpong-child / --shared-child) to be the other processes.
#include "locking/locking.h"

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace imgstore::locking {
namespace {

int64_t MonoNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "bench_locking: %s\n", why.c_str());
  std::exit(1);
}

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) Die(std::string(what) + ": " + r.status().ToString());
  return std::move(r).value();
}

std::string g_dir;  // scratch lock directory of this run

Lock GetLock(const std::string& name) {
  static LockSpace* space = new LockSpace(Must(LockSpace::Open(g_dir), "open lock space"));
  return Must(space->Get(name), "get lock");
}

LockOptions Opts() {
  LockOptions o;
  o.timeout = std::chrono::seconds(30);
  o.operation = "bench";
  return o;
}

// ---------------------------------------------------------------------------------------------
// (a) uncontended

// Five short repetitions, reported as mean/median/stddev: the machine is shared and noisy, and
// docs/performance.md records medians.
void Medians(benchmark::internal::Benchmark* b) {
  b->Repetitions(5)->ReportAggregatesOnly(true)->MinTime(0.2);
}

void BM_AcquireRelease(benchmark::State& state) {
  const auto mode = static_cast<LockMode>(state.range(0));
  Lock lock = GetLock("uncontended-" + std::to_string(state.range(0)));
  const LockOptions options = Opts();
  for (auto _ : state) {
    auto g = lock.Acquire(mode, options);
    if (!g.ok()) Die(g.status().ToString());
    g.value().Release();
  }
  state.SetLabel(std::string(LockModeName(mode)));
}
BENCHMARK(BM_AcquireRelease)
    ->Apply(Medians)
    ->Arg(static_cast<int>(LockMode::kShared))
    ->Arg(static_cast<int>(LockMode::kUpgradable))
    ->Arg(static_cast<int>(LockMode::kExclusive));

void BM_TryAcquireRelease(benchmark::State& state) {
  const auto mode = static_cast<LockMode>(state.range(0));
  Lock lock = GetLock("try-" + std::to_string(state.range(0)));
  for (auto _ : state) {
    auto g = lock.TryAcquire(mode, "bench");
    if (!g.ok()) Die(g.status().ToString());
    g.value().Release();
  }
  state.SetLabel(std::string(LockModeName(mode)));
}
BENCHMARK(BM_TryAcquireRelease)
    ->Apply(Medians)
    ->Arg(static_cast<int>(LockMode::kShared))
    ->Arg(static_cast<int>(LockMode::kExclusive));

void BM_UpgradeDowngrade(benchmark::State& state) {
  Lock lock = GetLock("upgrade");
  auto g = lock.Acquire(LockMode::kUpgradable, Opts());
  if (!g.ok()) Die(g.status().ToString());
  LockGuard guard = std::move(g).value();
  for (auto _ : state) {
    Status st = guard.Upgrade(Opts());
    if (!st.ok()) Die(st.ToString());
    guard.Downgrade(LockMode::kUpgradable);
  }
}
BENCHMARK(BM_UpgradeDowngrade)->Apply(Medians);

// A process's first Get of a lock name opens the file; later ones hit the registry.
void BM_GetLock(benchmark::State& state) {
  Lock keep = GetLock("get");
  for (auto _ : state) benchmark::DoNotOptimize(GetLock("get"));
}
BENCHMARK(BM_GetLock)->Apply(Medians);

// ---------------------------------------------------------------------------------------------
// Child processes

struct Child {
  pid_t pid = -1;
  FILE* to = nullptr;    // its stdin
  FILE* from = nullptr;  // its stdout
};

Child Spawn(const std::vector<std::string>& args) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) Die("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  std::vector<std::string> storage = {"/proc/self/exe"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  Child c;
  if (::posix_spawn(&c.pid, "/proc/self/exe", &fa, nullptr, argv.data(), environ) != 0) {
    Die("posix_spawn");
  }
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  c.to = ::fdopen(in[1], "w");
  c.from = ::fdopen(out[0], "r");
  return c;
}

std::string ReadLine(FILE* f) {
  char buf[256];
  if (!std::fgets(buf, sizeof buf, f)) Die("a child process ended early");
  return buf;
}

void WriteLine(FILE* f, const std::string& line) {
  std::fputs((line + "\n").c_str(), f);
  std::fflush(f);
}

void Reap(Child& c) {
  if (c.to) std::fclose(c.to);
  if (c.from) std::fclose(c.from);
  int st = 0;
  ::waitpid(c.pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) Die("a child process failed");
}

// Long enough for the other side to be blocked in Acquire before the release, so that each
// sample is a true hand-off to a sleeping waiter, not an uncontended acquisition.
constexpr auto kLetWaiterBlock = std::chrono::microseconds(500);

// ---------------------------------------------------------------------------------------------
// (b) hand-off latency

// The child's half of the ping-pong. Per round, with P the parent and C the child:
//   C: "w", Acquire (blocks)      P: reads "w", waits, t0, Release
//   C: acquired at t1, "a t1"     P: sample t1 - t0; "w", Acquire (blocks)
//   C: reads "w", waits, t0, Release, "r t0"
//   P: acquired at t1, reads "r t0", sample t1 - t0, "g"      C: reads "g", next round
int PingPongChild(const std::string& dir, int rounds) {
  g_dir = dir;
  Lock lock = GetLock("pingpong");
  for (int i = 0; i < rounds; ++i) {
    WriteLine(stdout, "w");
    auto g = lock.Acquire(LockMode::kExclusive, Opts());
    if (!g.ok()) Die(g.status().ToString());
    WriteLine(stdout, "a " + std::to_string(MonoNs()));
    LockGuard guard = std::move(g).value();
    ReadLine(stdin);  // the parent is about to block
    std::this_thread::sleep_for(kLetWaiterBlock);
    const int64_t t0 = MonoNs();
    guard.Release();
    WriteLine(stdout, "r " + std::to_string(t0));
    // Ask again only once the parent holds it: otherwise this process could win the lock back
    // before the waiting parent, and both would wait for each other's message.
    ReadLine(stdin);  // "g"
  }
  return 0;
}

std::vector<double> HandOff(int rounds) {
  Lock lock = GetLock("pingpong");
  auto g = lock.Acquire(LockMode::kExclusive, Opts());
  if (!g.ok()) Die(g.status().ToString());
  LockGuard guard = std::move(g).value();
  Child c = Spawn({"--pingpong-child", g_dir, std::to_string(rounds)});
  std::vector<double> us;
  for (int i = 0; i < rounds; ++i) {
    // parent → child
    ReadLine(c.from);  // "w": the child is about to block
    std::this_thread::sleep_for(kLetWaiterBlock);
    int64_t t0 = MonoNs();
    guard.Release();
    int64_t t1 = std::stoll(ReadLine(c.from).substr(2));
    us.push_back((t1 - t0) / 1e3);
    // child → parent
    WriteLine(c.to, "w");
    auto again = lock.Acquire(LockMode::kExclusive, Opts());
    t1 = MonoNs();
    if (!again.ok()) Die(again.status().ToString());
    guard = std::move(again).value();
    t0 = std::stoll(ReadLine(c.from).substr(2));
    us.push_back((t1 - t0) / 1e3);
    WriteLine(c.to, "g");
  }
  guard.Release();
  Reap(c);
  return us;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// ---------------------------------------------------------------------------------------------
// (c) shared acquisitions per second

int SharedChild(const std::string& dir, int64_t start_ns, int64_t duration_ms) {
  g_dir = dir;
  Lock lock = GetLock("shared-throughput");
  const LockOptions options = Opts();
  while (MonoNs() < start_ns) std::this_thread::sleep_for(std::chrono::microseconds(200));
  const int64_t end = start_ns + duration_ms * 1'000'000;
  long count = 0;
  int64_t now = MonoNs();
  while (now < end) {
    auto g = lock.Acquire(LockMode::kShared, options);
    if (!g.ok()) Die(g.status().ToString());
    g.value().Release();
    ++count;
    now = MonoNs();
  }
  WriteLine(stdout, std::to_string(count) + " " + std::to_string(now - start_ns));
  return 0;
}

double SharedThroughput(int procs, int64_t duration_ms) {
  // Everyone starts at the same instant, after all have been exec'd and opened the lock.
  const int64_t start = MonoNs() + 300'000'000 + procs * 5'000'000;
  std::vector<Child> children;
  for (int i = 0; i < procs; ++i) {
    children.push_back(
        Spawn({"--shared-child", g_dir, std::to_string(start), std::to_string(duration_ms)}));
  }
  double per_s = 0;
  for (auto& c : children) {
    long count = 0;
    long long elapsed = 0;
    if (std::sscanf(ReadLine(c.from).c_str(), "%ld %lld", &count, &elapsed) != 2) Die("parse");
    per_s += count / (elapsed / 1e9);
    Reap(c);
  }
  return per_s;
}

}  // namespace
}  // namespace imgstore::locking

int main(int argc, char** argv) {
  using namespace imgstore::locking;
  if (argc == 4 && std::strcmp(argv[1], "--pingpong-child") == 0) {
    return PingPongChild(argv[2], std::atoi(argv[3]));
  }
  if (argc == 5 && std::strcmp(argv[1], "--shared-child") == 0) {
    return SharedChild(argv[2], std::atoll(argv[3]), std::atoll(argv[4]));
  }

  char tmpl[] = "/tmp/bench_locking-XXXXXX";
  if (!::mkdtemp(tmpl)) Die("mkdtemp");
  g_dir = std::string(tmpl) + "/locks";

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::printf("== (a) uncontended acquire + release, one thread (Google Benchmark) ==\n");
  std::fflush(stdout);
  benchmark::RunSpecifiedBenchmarks();

  constexpr int kRounds = 1000;
  std::printf("\n== (b) hand-off latency of an exclusive lock between two processes ==\n");
  std::printf("%d round trips (%d hand-offs), release -> waiter's Acquire returns\n", kRounds,
              2 * kRounds);
  std::vector<double> us = HandOff(kRounds);
  std::printf("hand-off: median %.1f us   p10 %.1f us   p90 %.1f us   p99 %.1f us   max %.1f us\n",
              Percentile(us, 0.5), Percentile(us, 0.1), Percentile(us, 0.9), Percentile(us, 0.99),
              Percentile(us, 1.0));

  std::printf("\n== (c) shared acquisitions (acquire + release) per second, one lock ==\n");
  std::printf("all processes re-take one shared lock at once; median of 3 runs of 0.5 s\n");
  std::printf("%9s %14s %16s\n", "processes", "total /s", "per process /s");
  for (int procs : {1, 2, 4, 8, 16}) {
    // Median of three half-second runs.
    std::vector<double> runs;
    for (int i = 0; i < 3; ++i) runs.push_back(SharedThroughput(procs, 500));
    double total = Percentile(runs, 0.5);
    std::printf("%9d %14.0f %16.0f\n", procs, total, total / procs);
    std::fflush(stdout);
  }
  std::printf("(machine: %u cores)\n", std::thread::hardware_concurrency());

  benchmark::Shutdown();
  std::filesystem::remove_all(tmpl);
  return 0;
}
