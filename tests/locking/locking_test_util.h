// Shared pieces of the locking tests: a fixture with a fresh LockSpace, and helpers to start
// lock_helper (a separate program, see lock_helper.cc) and read its one-line reports.
#pragma once

#include <gtest/gtest.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "locking/locking.h"

namespace imgstore::locking {

using namespace std::chrono_literals;
using imgstore::testing::Subprocess;
using imgstore::testing::TempDir;

inline std::string HelperPath() { return IMGSTORE_TEST_BIN_DIR "/tests/locking/lock_helper"; }

// CLOCK_MONOTONIC, the clock lock_helper reports in: comparable between processes.
inline int64_t MonoNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Reads the next report of `proc` (skipping "waiting" lines unless `word` is "waiting") and checks
// that its first word is `word`; the rest of the line goes to *rest. The failure message says what
// came instead.
inline ::testing::AssertionResult ExpectReport(Subprocess& proc, std::string_view word,
                                               std::chrono::milliseconds timeout,
                                               std::string* rest = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto line = proc.ReadLine(std::max(left, 0ms));
    if (!line) {
      std::string why = proc.eof() ? "end of output" : "timeout";
      if (proc.eof()) {
        if (auto st = proc.Wait(2s)) why += ", helper " + Subprocess::DescribeStatus(*st);
      }
      return ::testing::AssertionFailure()
             << "helper " << proc.pid() << ": wanted '" << word << "', got " << why << " after "
             << timeout.count() << " ms";
    }
    if (word != "waiting" && line->rfind("waiting ", 0) == 0) continue;
    std::string_view l = *line;
    std::string_view first = l.substr(0, l.find(' '));
    if (first != word) {
      return ::testing::AssertionFailure()
             << "helper " << proc.pid() << ": wanted '" << word << "', got '" << *line << "'";
    }
    if (rest) *rest = l.size() > first.size() ? std::string(l.substr(first.size() + 1)) : "";
    return ::testing::AssertionSuccess();
  }
}

// The next non-"waiting" line within `timeout`, or nullopt.
inline std::optional<std::string> NextReport(Subprocess& proc, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto line = proc.ReadLine(std::max(left, 0ms));
    if (!line || line->rfind("waiting ", 0) != 0) return line;
  }
}

inline int64_t ParseNs(const std::string& s) { return std::stoll(s); }

inline LockOptions Opts(Duration timeout, std::string op = "test") {
  LockOptions o;
  o.timeout = timeout;
  o.operation = std::move(op);
  return o;
}

// Waits for a future with a deadline. A call that never returns is a bug that must fail the test,
// not hang the suite; the future cannot be abandoned (its destructor would block), so the test
// binary exits with a message instead (ctest reports the test as failed).
template <typename T>
T FinishWithin(std::future<T>& f, std::chrono::milliseconds timeout, const char* what) {
  if (f.wait_for(timeout) != std::future_status::ready) {
    std::fprintf(stderr, "FATAL: %s did not return within %lld ms; exiting so the suite goes on\n",
                 what, static_cast<long long>(timeout.count()));
    std::fflush(stderr);
    std::_Exit(1);
  }
  return f.get();
}

// The word for a mode, as lock_helper's `hold` takes it and as traces print it.
inline std::string ModeArg(LockMode m) { return std::string(LockModeName(m)); }

// A fresh lock directory per test and ways to start helpers on it.
class LockingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto space = LockSpace::Open(tmp_.Sub("locks"));
    ASSERT_TRUE(space.ok()) << space.status().ToString();
    space_ = std::make_unique<LockSpace>(std::move(space).value());
  }

  const std::string& dir() const { return space_->dir(); }
  LockSpace& space() { return *space_; }

  Lock GetLock(const std::string& name) {
    auto lock = space_->Get(name);
    EXPECT_TRUE(lock.ok()) << lock.status().ToString();
    return lock.ok() ? lock.value() : Lock();
  }

  // Starts lock_helper with `args`; a failure to start fails the test (the returned object is
  // then not running, and every expectation on it fails too).
  Subprocess Helper(const std::vector<std::string>& args) {
    Subprocess p;
    std::string error;
    EXPECT_TRUE(p.Start(HelperPath(), args, &error)) << error;
    return p;
  }

  // lock_helper hold: WAIT is milliseconds, -1 (no deadline) or "try".
  Subprocess Hold(const std::string& name, LockMode mode, const std::string& op,
                  const std::string& wait = "10000") {
    return Helper({"hold", dir(), name, ModeArg(mode), op, wait});
  }

  // A helper that holds `name` in `mode` once this returns (the test fails otherwise).
  Subprocess HoldNow(const std::string& name, LockMode mode, const std::string& op) {
    Subprocess p = Hold(name, mode, op);
    EXPECT_TRUE(ExpectReport(p, "acquired", 10s));
    return p;
  }

  TempDir tmp_;
  std::unique_ptr<LockSpace> space_;
};

}  // namespace imgstore::locking
