// Subprocess: a real child process for multi-process tests (fork + execv, stdin and stdout on
// pipes, line reading with a timeout, waiting with a timeout, SIGKILL).
//
// Tests of inter-process behaviour (file locks, leases, crash recovery) need a second process
// that is a separate exec'd program, not a fork of the test binary: a forked copy of a
// multi-threaded gtest process inherits locks, descriptors and half-held mutexes. The child runs
// `path` with `args` and nothing else of ours: every descriptor above 2 is closed before exec.
//
// Every blocking call takes a timeout so that a bug fails a test instead of hanging the suite.
// The destructor kills (SIGKILL) and reaps a child that is still running; the child also gets
// SIGKILL if the thread that started it dies (PR_SET_PDEATHSIG), so start children from the
// test's main thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imgstore::testing {

class Subprocess {
 public:
  Subprocess() = default;
  ~Subprocess();
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Starts `path` with argv = {path, args...}. stdin and stdout are pipes to this object;
  // stderr is inherited (so a failing helper's complaint shows in the test log). Returns false
  // with a reason in *error if the process could not be started (including a failed exec).
  bool Start(const std::string& path, const std::vector<std::string>& args,
             std::string* error = nullptr);

  pid_t pid() const { return pid_; }
  // Started and not yet reaped.
  bool running() const { return pid_ > 0 && !reaped_; }

  // The next line of the child's stdout without its '\n'; nullopt on timeout or end of file
  // (eof() tells which).
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  bool eof() const { return eof_; }

  // Writes `line` + '\n' to the child's stdin; false if the child closed it.
  bool WriteLine(std::string_view line);
  // Closes the child's stdin: it reads end of file.
  void CloseStdin();

  // Waits for the child to exit; its wait status (see WIFEXITED) or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // Sends `sig` (does not reap); false if the child is not running.
  bool Kill(int sig = 9 /* SIGKILL */);
  // SIGKILL and reap; returns the wait status.
  int KillAndWait();

  // "exited 0", "killed by signal 9", ... for assertion messages.
  static std::string DescribeStatus(int status);

 private:
  void Reset();

  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  bool eof_ = false;
  std::string buffer_;  // bytes read from stdout that do not yet form a whole line
};

}  // namespace imgstore::testing
