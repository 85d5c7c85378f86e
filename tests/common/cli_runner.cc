// Whole-process runs of imgstore and other programs, with stdout and stderr captured in files
// (pipes would need a reader thread each to avoid a full-pipe deadlock).
#include "common/cli_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace imgstore::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string TempPath(const char* what) {
  const char* dir = std::getenv("TMPDIR");
  std::string templ = std::string(dir && *dir ? dir : "/tmp") + "/imgstore-cli-" + what + "-XXXXXX";
  int fd = ::mkstemp(templ.data());
  if (fd >= 0) ::close(fd);
  return templ;
}

}  // namespace

std::string CliResult::Describe() const {
  std::string s = exit_code == -1000 ? "timed out"
                  : exit_code < 0    ? "killed by signal " + std::to_string(-exit_code)
                                     : "exit " + std::to_string(exit_code);
  return s + "\nstdout: " + out + "\nstderr: " + err;
}

std::string ImgstoreBinary() { return std::string(IMGSTORE_TEST_BIN_DIR) + "/imgstore"; }

CliResult RunProgram(const std::string& path, const std::vector<std::string>& args,
                     const std::vector<std::string>& env, std::chrono::milliseconds timeout) {
  CliResult result;
  std::string out_path = TempPath("out"), err_path = TempPath("err");
  std::vector<std::string> argv_s = {path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
  env_s.insert(env_s.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_TRUNC, 0);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_TRUNC, 0);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    result.err = "cannot start " + path + ": " + std::strerror(rc);
    ::unlink(out_path.c_str());
    ::unlink(err_path.c_str());
    return result;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  bool timed_out = false;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  result.exit_code = timed_out             ? -1000
                     : WIFEXITED(status)   ? WEXITSTATUS(status)
                     : WIFSIGNALED(status) ? -WTERMSIG(status)
                                           : -1;
  result.out = ReadAll(out_path);
  result.err = ReadAll(err_path);
  ::unlink(out_path.c_str());
  ::unlink(err_path.c_str());
  return result;
}

CliResult RunImgstore(const std::string& root, const std::vector<std::string>& args,
                      const std::vector<std::string>& env, std::chrono::milliseconds timeout) {
  std::vector<std::string> all;
  if (!root.empty()) {
    all.push_back("--root");
    all.push_back(root);
  }
  all.insert(all.end(), args.begin(), args.end());
  return RunProgram(ImgstoreBinary(), all, env, timeout);
}

namespace {

// Appends what the terminal's master side has to give now (it is non-blocking); false once the
// other side is closed by everyone (EIO) and nothing is left.
bool DrainPty(int master, std::string& out) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

}  // namespace

CliResult RunImgstoreInPty(const std::string& root, const std::vector<std::string>& args,
                           const std::vector<std::string>& env, std::chrono::milliseconds timeout) {
  CliResult result;
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) {
    result.err = std::string("cannot open a pseudo-terminal: ") + std::strerror(errno);
    if (master >= 0) ::close(master);
    return result;
  }
  char name[128];
  if (::ptsname_r(master, name, sizeof name) != 0) {
    result.err = std::string("ptsname: ") + std::strerror(errno);
    ::close(master);
    return result;
  }
  int slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    result.err = std::string("cannot open ") + name + ": " + std::strerror(errno);
    ::close(master);
    return result;
  }
  struct winsize ws = {};
  ws.ws_col = 120;
  ws.ws_row = 40;
  ::ioctl(master, TIOCSWINSZ, &ws);
  struct termios tio;
  if (::tcgetattr(slave, &tio) == 0) {
    tio.c_oflag &= ~static_cast<tcflag_t>(OPOST);
    ::tcsetattr(slave, TCSANOW, &tio);
  }
  ::fcntl(master, F_SETFL, ::fcntl(master, F_GETFL) | O_NONBLOCK);

  std::string out_path = TempPath("out");
  std::vector<std::string> argv_s = {ImgstoreBinary()};
  if (!root.empty()) {
    argv_s.push_back("--root");
    argv_s.push_back(root);
  }
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
  env_s.insert(env_s.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_TRUNC, 0);
  posix_spawn_file_actions_adddup2(&actions, slave, 2);  // dup2 clears close-on-exec
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv_s[0].c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(slave);  // the child's copy is the only one now: its exit closes the terminal
  if (rc != 0) {
    result.err = "cannot start " + argv_s[0] + ": " + std::strerror(rc);
    ::close(master);
    ::unlink(out_path.c_str());
    return result;
  }
  // Read as it comes: a terminal's buffer is small, and a writer blocked on it never exits.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  bool timed_out = false;
  for (;;) {
    struct pollfd pfd = {master, POLLIN, 0};
    ::poll(&pfd, 1, 10);
    DrainPty(master, result.err);
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      timed_out = true;
      break;
    }
  }
  DrainPty(master, result.err);
  ::close(master);
  result.exit_code = timed_out             ? -1000
                     : WIFEXITED(status)   ? WEXITSTATUS(status)
                     : WIFSIGNALED(status) ? -WTERMSIG(status)
                                           : -1;
  result.out = ReadAll(out_path);
  ::unlink(out_path.c_str());
  return result;
}

}  // namespace imgstore::testing
