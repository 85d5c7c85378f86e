// Subprocess: fork + execv of a helper program with its stdin and stdout on pipes.
#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace imgstore::testing {
namespace {

using Clock = std::chrono::steady_clock;

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  // Round up so that a sub-millisecond remainder still polls once instead of spinning.
  return left.count() < 0 ? 0 : static_cast<int>(left.count()) + 1;
}

// A child that writes to a stdin pipe its parent closed must not kill the test binary.
void IgnoreSigpipeOnce() {
  static const bool done = [] {
    ::signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)done;
}

}  // namespace

Subprocess::~Subprocess() {
  if (running()) KillAndWait();
  CloseFd(stdin_fd_);
  CloseFd(stdout_fd_);
}

Subprocess::Subprocess(Subprocess&& other) noexcept { *this = std::move(other); }

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this == &other) return *this;
  if (running()) KillAndWait();
  CloseFd(stdin_fd_);
  CloseFd(stdout_fd_);
  pid_ = other.pid_;
  reaped_ = other.reaped_;
  status_ = other.status_;
  stdin_fd_ = other.stdin_fd_;
  stdout_fd_ = other.stdout_fd_;
  eof_ = other.eof_;
  buffer_ = std::move(other.buffer_);
  other.pid_ = -1;
  other.reaped_ = false;
  other.stdin_fd_ = -1;
  other.stdout_fd_ = -1;
  other.eof_ = false;
  other.buffer_.clear();
  return *this;
}

void Subprocess::Reset() {
  if (running()) KillAndWait();
  CloseFd(stdin_fd_);
  CloseFd(stdout_fd_);
  pid_ = -1;
  reaped_ = false;
  status_ = 0;
  eof_ = false;
  buffer_.clear();
}

bool Subprocess::Start(const std::string& path, const std::vector<std::string>& args,
                       std::string* error) {
  Reset();
  IgnoreSigpipeOnce();
  auto fail = [&](const std::string& what, int err) {
    if (error) *error = what + ": " + std::strerror(err);
    return false;
  };

  // Everything the child touches is prepared before fork: between fork and exec a child of a
  // multi-threaded process may only make async-signal-safe calls (no malloc).
  std::vector<std::string> argv_storage;
  argv_storage.reserve(args.size() + 1);
  argv_storage.push_back(path);
  for (const auto& a : args) argv_storage.push_back(a);
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return fail("pipe", errno);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    return fail("pipe", e);
  }
  // Reports a failed exec: closed by a successful exec (O_CLOEXEC), written to otherwise.
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) ::close(fd);
    return fail("pipe", e);
  }

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
      ::close(fd);
    }
    return fail("fork", e);
  }
  if (pid == 0) {
    // Child. A test that crashes must not leave helpers behind holding locks.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (::dup2(in_pipe[0], 0) < 0 || ::dup2(out_pipe[1], 1) < 0) {
      int e = errno;
      (void)!::write(err_pipe[1], &e, sizeof e);
      ::_exit(127);
    }
    // Ignored signals and the signal mask survive exec; give the child the defaults.
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // The child must hold nothing of the test process (lock files, leases): every inherited
    // descriptor above stderr goes at exec, including any the test opened without O_CLOEXEC.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execv(argv[0], argv.data());
    int e = errno;
    (void)!::write(err_pipe[1], &e, sizeof e);
    ::_exit(127);
  }

  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  pid_ = pid;
  stdin_fd_ = in_pipe[1];
  stdout_fd_ = out_pipe[0];
  if (n > 0) {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    status_ = st;
    return fail("exec " + path, child_errno);
  }
  return true;
}

std::optional<std::string> Subprocess::ReadLine(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (eof_ || stdout_fd_ < 0) return std::nullopt;
    pollfd p{stdout_fd_, POLLIN, 0};
    int r = ::poll(&p, 1, RemainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (Clock::now() >= deadline) return std::nullopt;
      continue;
    }
    char buf[4096];
    ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof_ = true;
      // A last line without '\n' still counts as a line.
      if (!buffer_.empty()) {
        std::string line = std::move(buffer_);
        buffer_.clear();
        return line;
      }
      return std::nullopt;
    }
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

bool Subprocess::WriteLine(std::string_view line) {
  if (stdin_fd_ < 0) return false;
  std::string data(line);
  data.push_back('\n');
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(stdin_fd_, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

void Subprocess::CloseStdin() { CloseFd(stdin_fd_); }

std::optional<int> Subprocess::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  if (reaped_) return status_;
  const auto deadline = Clock::now() + timeout;
  // A pidfd becomes readable when the process exits: no polling interval to add latency.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  auto sleep_for = std::chrono::microseconds(100);
  while (true) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = st;
      break;
    }
    if (r < 0 && errno != EINTR) break;  // not our child any more: nothing to wait for
    if (Clock::now() >= deadline) break;
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, RemainingMs(deadline));
    } else {
      std::this_thread::sleep_for(sleep_for);
      sleep_for = std::min<std::chrono::microseconds>(sleep_for * 2, std::chrono::milliseconds(5));
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  if (reaped_) return status_;
  return std::nullopt;
}

bool Subprocess::Kill(int sig) {
  if (!running()) return false;
  return ::kill(pid_, sig) == 0;
}

int Subprocess::KillAndWait() {
  if (!running()) return status_;
  ::kill(pid_, SIGKILL);
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, 0);
  } while (r < 0 && errno == EINTR);
  reaped_ = true;
  status_ = st;
  return st;
}

std::string Subprocess::DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

}  // namespace imgstore::testing
