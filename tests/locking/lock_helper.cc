// lock_helper: a tiny CLI that the locking tests run as a real, separate process (fork + exec),
// so that inter-process behaviour (OFD locks, leases, kill -9) is tested between processes and
// not only between threads.
//
// Protocol: one line per event on stdout, written with one write(2) so lines never interleave or
// sit in a buffer; times are CLOCK_MONOTONIC nanoseconds, comparable between processes.
// Results of an acquisition: "acquired <ns>", "busy <status>", "timeout <status>",
// "error <status>" (exit codes 2, 3 and 1 for the failures).
//
//   hold DIR NAME MODE OP WAIT       WAIT: milliseconds, -1 for no deadline, or "try".
//       Prints "waiting <ns>" just before it asks, then the result. While holding, reads
//       commands on stdin: release | upgrade MS | tryupgrade | downgrade MODE | mode |
//       open-close (open and close the lock file: an unrelated descriptor) |
//       spawn-sleeper SECS (fork + exec a child that keeps every inherited descriptor) |
//       fork-child ACTION [SECS] (fork without exec; the child runs ACTION: exit, release,
//       try (prints "child <result>") or sleep SECS) |
//       exit (exit without releasing). End of stdin releases and exits.
//   cycle DIR NAME MODE HOLD_US DURATION_MS [WAIT_MS]
//       Re-takes the lock in a loop (MODE "upgrade": upgradable, then Upgrade), holding it
//       HOLD_US each time, for DURATION_MS (0: until a line or end of file on stdin).
//       Prints "waiting <ns>" first, "started <ns>" after the first acquisition and
//       "done <count> <max wait ns>" at the end.
//   count DIR NAME FILE N MODE
//       N times: take the lock (exclusive, or "upgrade"), read the decimal number in FILE, yield,
//       write it + 1. Lost updates prove two holders overlapped. Prints "done <N>".
//   lease DIR LABEL
//       Creates a lease, prints "lease <id>"; "release" on stdin releases it ("released").
//   many DIR PREFIX COUNT MODE
//       Holds COUNT distinct locks PREFIX-0 .. PREFIX-(COUNT-1); prints "acquired <COUNT> <ns>"
//       and holds them until end of stdin.
//   sleep SECS
//       Sleeps (the grandchild of spawn-sleeper).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "locking/locking.h"

namespace imgstore::locking {
namespace {

int64_t MonoNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void Say(const std::string& line) {
  std::string data = line + "\n";
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(1, data.data() + off, data.size() - off);
    if (n <= 0) return;  // the test closed our stdout; nothing more to tell
    off += static_cast<size_t>(n);
  }
}

std::string Flat(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (c == '\n') c = ' ';
  }
  return out;
}

[[noreturn]] void Usage(const std::string& why) {
  std::cerr << "lock_helper: " << why << "\n";
  std::exit(64);
}

std::optional<LockMode> ParseMode(const std::string& s) {
  if (s == "shared") return LockMode::kShared;
  if (s == "upgradable" || s == "upgrade") return LockMode::kUpgradable;
  if (s == "exclusive") return LockMode::kExclusive;
  return std::nullopt;
}

Duration WaitDuration(long ms) {
  return ms < 0 ? kWaitForever : Duration(std::chrono::milliseconds(ms));
}

// Prints the failure line for `st` and returns the exit code that goes with it.
int ReportFailure(const Status& st) {
  if (st.code() == Code::kBusy) {
    Say("busy " + Flat(st.ToString()));
    return 2;
  }
  if (st.code() == Code::kTimeout) {
    Say("timeout " + Flat(st.ToString()));
    return 3;
  }
  Say("error " + Flat(st.ToString()));
  return 1;
}

Lock GetLock(const std::string& dir, const std::string& name) {
  auto space = LockSpace::Open(dir);
  if (!space.ok()) {
    ReportFailure(space.status());
    std::exit(1);
  }
  auto lock = space->Get(name);
  if (!lock.ok()) {
    ReportFailure(lock.status());
    std::exit(1);
  }
  return std::move(lock).value();
}

int SpawnSleeper(int seconds) {
  // Plain fork + exec that keeps every descriptor without O_CLOEXEC: if the library's lock
  // descriptors were inheritable, this child would keep our locks alive after we die.
  std::string self = "/proc/self/exe";
  std::string cmd = "sleep";
  std::string secs = std::to_string(seconds);
  char* argv[] = {self.data(), cmd.data(), secs.data(), nullptr};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execv("/proc/self/exe", argv);
    ::_exit(127);
  }
  return pid;
}

int Hold(const std::vector<std::string>& a) {
  if (a.size() != 5) Usage("hold DIR NAME MODE OP WAIT");
  Lock lock = GetLock(a[0], a[1]);
  auto mode = ParseMode(a[2]);
  if (!mode) Usage("bad mode " + a[2]);
  const std::string& op = a[3];
  Say("waiting " + std::to_string(MonoNs()));
  Result<LockGuard> got = Status(Code::kInternal, "unset");
  if (a[4] == "try") {
    got = lock.TryAcquire(*mode, op);
  } else {
    LockOptions options;
    options.timeout = WaitDuration(std::stol(a[4]));
    options.operation = op;
    got = lock.Acquire(*mode, options);
  }
  if (!got.ok()) return ReportFailure(got.status());
  LockGuard guard = std::move(got).value();
  Say("acquired " + std::to_string(MonoNs()));

  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "release") {
      guard.Release();
      Say("released " + std::to_string(MonoNs()));
      return 0;
    } else if (cmd == "upgrade") {
      long ms = -1;
      in >> ms;
      LockOptions options;
      options.timeout = WaitDuration(ms);
      options.operation = op;
      Status st = guard.Upgrade(options);
      if (st.ok()) {
        Say("upgraded " + std::to_string(MonoNs()));
      } else {
        ReportFailure(st);
      }
    } else if (cmd == "tryupgrade") {
      Status st = guard.TryUpgrade();
      if (st.ok()) {
        Say("upgraded " + std::to_string(MonoNs()));
      } else {
        ReportFailure(st);
      }
    } else if (cmd == "downgrade") {
      std::string to;
      in >> to;
      auto m = ParseMode(to);
      if (!m) Usage("bad mode " + to);
      guard.Downgrade(*m);
      Say("downgraded " + std::to_string(MonoNs()));
    } else if (cmd == "mode") {
      Say("mode " + std::string(LockModeName(guard.mode())));
    } else if (cmd == "open-close") {
      int fd = ::open(lock.path().c_str(), O_RDWR);
      if (fd < 0) {
        Say("error open " + lock.path());
      } else {
        ::close(fd);
        Say("ok");
      }
    } else if (cmd == "spawn-sleeper") {
      int secs = 10;
      in >> secs;
      Say("spawned " + std::to_string(SpawnSleeper(secs)));
    } else if (cmd == "fork-child") {
      // fork() without exec while holding: the child must neither keep the lock alive after
      // we die nor drop or share our hold.
      std::string action;
      int secs = 20;
      in >> action >> secs;
      pid_t pid = ::fork();
      if (pid == 0) {
        if (action == "release") guard.Release();
        if (action == "try") {
          auto r = lock.TryAcquire(LockMode::kExclusive, "forked child");
          Say(r.ok() ? std::string("child acquired") : "child " + Flat(r.status().ToString()));
        }
        if (action == "sleep") {
          std::this_thread::sleep_for(std::chrono::seconds(secs));
          ::_exit(0);
        }
        std::exit(0);  // runs exit handlers and static destructors, as a normal exit would
      }
      if (action != "sleep") {
        int st = 0;
        ::waitpid(pid, &st, 0);
      }
      Say("forked " + std::to_string(pid));
    } else if (cmd == "exit") {
      ::_exit(0);  // no destructor runs: only the kernel can release the lock now
    } else {
      Usage("unknown command " + cmd);
    }
  }
  return 0;  // end of stdin: the guard releases
}

bool StdinHasInput() {
  pollfd p{0, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;  // a line or end of file (POLLHUP) both stop the loop
}

void SleepUs(long us) {
  if (us > 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
}

int Cycle(const std::vector<std::string>& a) {
  if (a.size() != 5 && a.size() != 6) Usage("cycle DIR NAME MODE HOLD_US DURATION_MS [WAIT_MS]");
  Lock lock = GetLock(a[0], a[1]);
  auto mode = ParseMode(a[2]);
  if (!mode) Usage("bad mode " + a[2]);
  const bool upgrade = a[2] == "upgrade";
  const long hold_us = std::stol(a[3]);
  const long duration_ms = std::stol(a[4]);
  LockOptions options;
  options.timeout = WaitDuration(a.size() == 6 ? std::stol(a[5]) : 10'000);
  options.operation = "cycle " + a[2];
  const int64_t end = MonoNs() + duration_ms * 1'000'000;
  int64_t count = 0;
  int64_t max_wait = 0;
  Say("waiting " + std::to_string(MonoNs()));
  while (true) {
    const int64_t t0 = MonoNs();
    auto got = lock.Acquire(*mode, options);
    if (!got.ok()) return ReportFailure(got.status());
    LockGuard guard = std::move(got).value();
    if (upgrade) {
      Status st = guard.Upgrade(options);
      if (!st.ok()) return ReportFailure(st);
    }
    const int64_t t1 = MonoNs();
    max_wait = std::max(max_wait, t1 - t0);
    if (count == 0) Say("started " + std::to_string(t1));
    ++count;
    SleepUs(hold_us);
    guard.Release();
    if (duration_ms > 0 ? MonoNs() >= end : StdinHasInput()) break;
  }
  Say("done " + std::to_string(count) + " " + std::to_string(max_wait));
  return 0;
}

int Count(const std::vector<std::string>& a) {
  if (a.size() != 5) Usage("count DIR NAME FILE N MODE");
  Lock lock = GetLock(a[0], a[1]);
  const std::string& file = a[2];
  const long n = std::stol(a[3]);
  const bool upgrade = a[4] == "upgrade";
  LockOptions options;
  options.timeout = std::chrono::seconds(20);
  options.operation = "count";
  for (long i = 0; i < n; ++i) {
    auto got = lock.Acquire(upgrade ? LockMode::kUpgradable : LockMode::kExclusive, options);
    if (!got.ok()) return ReportFailure(got.status());
    LockGuard guard = std::move(got).value();
    if (upgrade) {
      Status st = guard.Upgrade(options);
      if (!st.ok()) return ReportFailure(st);
    }
    int fd = ::open(file.c_str(), O_RDWR);
    if (fd < 0) Usage("open " + file);
    char buf[32] = {};
    ssize_t r = ::pread(fd, buf, sizeof buf - 1, 0);
    long value = r > 0 ? std::strtol(buf, nullptr, 10) : 0;
    // Widen the read-modify-write window so that two holders at once would lose updates.
    std::this_thread::yield();
    std::string out = std::to_string(value + 1) + "\n";
    if (::pwrite(fd, out.data(), out.size(), 0) != static_cast<ssize_t>(out.size())) {
      Usage("write " + file);
    }
    ::close(fd);
  }
  Say("done " + std::to_string(n));
  return 0;
}

int LeaseCmd(const std::vector<std::string>& a) {
  if (a.size() != 2) Usage("lease DIR LABEL");
  auto space = LockSpace::Open(a[0]);
  if (!space.ok()) return ReportFailure(space.status());
  auto lease = space->CreateLease(a[1]);
  if (!lease.ok()) return ReportFailure(lease.status());
  Lease held = std::move(lease).value();
  Say("lease " + held.id());
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "release") {
      held.Release();
      Say("released");
      return 0;
    }
  }
  return 0;
}

int Many(const std::vector<std::string>& a) {
  if (a.size() != 4) Usage("many DIR PREFIX COUNT MODE");
  auto space = LockSpace::Open(a[0]);
  if (!space.ok()) return ReportFailure(space.status());
  const long count = std::stol(a[2]);
  auto mode = ParseMode(a[3]);
  if (!mode) Usage("bad mode " + a[3]);
  std::vector<LockGuard> guards;
  guards.reserve(static_cast<size_t>(count));
  for (long i = 0; i < count; ++i) {
    auto lock = space->Get(a[1] + "-" + std::to_string(i));
    if (!lock.ok()) return ReportFailure(lock.status().WithContext("lock " + std::to_string(i)));
    auto got = lock->TryAcquire(*mode, "many");
    if (!got.ok()) return ReportFailure(got.status().WithContext("lock " + std::to_string(i)));
    guards.push_back(std::move(got).value());
  }
  Say("acquired " + std::to_string(count) + " " + std::to_string(MonoNs()));
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  return 0;
}

}  // namespace
}  // namespace imgstore::locking

int main(int argc, char** argv) {
  using namespace imgstore::locking;
  if (argc < 2) Usage("usage: lock_helper hold|cycle|count|lease|many|sleep ARGS...");
  std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "hold") return Hold(args);
  if (cmd == "cycle") return Cycle(args);
  if (cmd == "count") return Count(args);
  if (cmd == "lease") return LeaseCmd(args);
  if (cmd == "many") return Many(args);
  if (cmd == "sleep") {
    if (args.size() != 1) Usage("sleep SECS");
    std::this_thread::sleep_for(std::chrono::seconds(std::stol(args[0])));
    return 0;
  }
  Usage("unknown command " + cmd);
}
