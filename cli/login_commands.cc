// `imgstore login` and `imgstore logout`: check credentials against a registry and keep them in
// the auth file that pull and push read, or remove them (docs/cli.md, "imgstore login").
//
// The password comes from -p, --password-stdin, one line of a stdin that is not a terminal, or
// a prompt on the terminal with echo off. It is checked (GET /v2/ answering the registry's
// challenge: Basic, or a token without repository scope) before anything is written, and it
// never appears in a message.
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "imgstore/registry.hpp"
#include "output.h"
#include "registry_flags.h"

namespace imgstore::cli {
namespace {

// A password longer than this is not a password (and --password-stdin of a wrong file).
constexpr size_t kMaxSecret = 64 * 1024;

struct LoginArgs {
  std::string registry;
  std::string username;
  std::string password;  // a secret: never printed
  bool password_stdin = false;
  RegistryFlags flags;
};

struct LogoutArgs {
  std::string registry;
  bool all = false;
  std::string authfile;
};

// The terminal settings to restore if a signal ends the process while echo is off.
termios g_saved_termios;
void RestoreTerminalAndDie(int sig) {
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_termios);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Echo off on the terminal of stdin while it lives (and if SIGINT, SIGTERM, SIGHUP or SIGQUIT
// end the process meanwhile).
class EchoOff {
 public:
  EchoOff() {
    if (::tcgetattr(STDIN_FILENO, &g_saved_termios) != 0) return;
    struct sigaction sa {};
    sa.sa_handler = &RestoreTerminalAndDie;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &sa, &old_[i]);
    termios quiet = g_saved_termios;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ok_ = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
  }
  ~EchoOff() {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_termios);
    for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &old_[i], nullptr);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;
  bool ok() const { return ok_; }

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  struct sigaction old_[std::size(kSignals)]{};
  bool ok_ = false;
};

// Reads stdin up to a newline (not kept, nor a '\r' before it) or, when to_eof, up to its end
// (trailing newlines dropped). Byte by byte, so that nothing past the line is consumed.
Result<std::string> ReadStdin(bool to_eof, const char* what) {
  std::string out;
  for (;;) {
    char c;
    ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, std::string("read ") + what + " from stdin");
    if (n == 0 || (!to_eof && c == '\n')) break;
    out += c;
    if (out.size() > kMaxSecret) {
      return Status(Code::kInvalidArgument, std::string(what) + " on stdin is too long");
    }
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

Result<std::string> Prompt(const char* prompt, bool secret, const char* what) {
  if (!secret) {
    std::fputs(prompt, stderr);
    std::fflush(stderr);
    return ReadStdin(false, what);
  }
  // Echo goes off before the prompt shows: what is typed after it is never echoed.
  EchoOff echo_off;
  if (!echo_off.ok()) return Status(Code::kFailedPrecondition, "cannot turn the terminal echo off");
  std::fputs(prompt, stderr);
  std::fflush(stderr);
  Result<std::string> line = ReadStdin(false, what);
  std::fputc('\n', stderr);  // the newline the user typed was not echoed
  return line;
}

// The auth file named by --authfile, else the default one.
Result<std::string> AuthFileFor(const std::string& authfile) {
  if (!authfile.empty()) return authfile;
  Result<std::string> path = DefaultAuthFile();
  if (!path.ok() && path.status().code() == Code::kFailedPrecondition) {
    return Status(Code::kFailedPrecondition, path.status().message() + "; give --authfile FILE");
  }
  return path;
}

Status RunLogin(const LoginArgs& args) {
  // Checked before anything is asked on the terminal.
  Result<std::string> key = RegistryKey(args.registry);
  if (!key.ok()) return key.status().WithContext("login");
  const bool tty = ::isatty(STDIN_FILENO) == 1;
  Credentials creds;
  creds.username = args.username;
  if (creds.username.empty()) {
    if (!tty || args.password_stdin) {
      return Status(Code::kInvalidArgument, "login: give the user name with -u USER");
    }
    Result<std::string> user = Prompt("Username: ", false, "user name");
    if (!user.ok()) return user.status().WithContext("login");
    creds.username = *user;
    if (creds.username.empty()) return Status(Code::kInvalidArgument, "login: no user name");
  }
  if (creds.username.find(':') != std::string::npos) {
    return Status(Code::kInvalidArgument, "login: the user name cannot contain ':'");
  }
  if (!args.password.empty()) {
    creds.password = args.password;
  } else {
    Result<std::string> pw = args.password_stdin ? ReadStdin(true, "password")
                             : tty               ? Prompt("Password: ", true, "password")
                                                 : ReadStdin(false, "password");
    if (!pw.ok()) return pw.status().WithContext("login");
    creds.password = std::move(*pw);
  }
  if (creds.password.empty()) return Status(Code::kInvalidArgument, "login: empty password");

  Result<std::string> authfile = AuthFileFor(args.flags.authfile);
  if (!authfile.ok()) return authfile.status().WithContext("login");
  Result<RegistryOptions> options = ToRegistryOptions(args.flags);
  if (!options.ok()) return options.status();
  options->auth_file = *authfile;  // the file the credentials are written to
  CLI_RETURN_IF_ERROR(Login(args.registry, creds, *options));
  return WriteStdout("Login Succeeded!\n");
}

Status RunLogout(const LogoutArgs& args) {
  Result<std::string> authfile = AuthFileFor(args.authfile);
  if (!authfile.ok()) return authfile.status().WithContext("logout");
  if (args.all) {
    Result<size_t> n = LogoutAll(*authfile);
    if (!n.ok()) return n.status();
    return WriteStdout("Removed login credentials for all registries\n");
  }
  Result<std::string> key = RegistryKey(args.registry);
  if (!key.ok()) return key.status().WithContext("logout");
  Result<bool> removed = Logout(*key, *authfile);
  if (!removed.ok()) return removed.status();
  if (!*removed) {
    return Status(Code::kNotFound, "not logged in to " + *key + " (no entry in " + *authfile + ")");
  }
  return WriteStdout("Removed login credentials for " + *key + "\n");
}

}  // namespace

void RegisterLoginCommand(CLI::App& app, const GlobalOptions&) {
  CLI::App* sub = app.add_subcommand(
      "login", "check credentials against a registry and store them in the auth file");
  auto a = std::make_shared<LoginArgs>();
  sub->add_option("REGISTRY", a->registry, "HOST[:PORT], or HOST[:PORT]/NAMESPACE")->required();
  sub->add_option("-u,--username", a->username, "user name (default: asked on the terminal)");
  CLI::Option* password = sub->add_option(
      "-p,--password", a->password,
      "password (visible in the process list; prefer --password-stdin or the prompt)");
  CLI::Option* from_stdin =
      sub->add_flag("--password-stdin", a->password_stdin, "read the password from stdin");
  password->excludes(from_stdin);
  AddRegistryFlags(sub, &a->flags, /*with_creds=*/false);
  AddCommand({sub, [a] { return RunLogin(*a); }});
}

void RegisterLogoutCommand(CLI::App& app, const GlobalOptions&) {
  CLI::App* sub =
      app.add_subcommand("logout", "remove the credentials of a registry from the auth file");
  auto a = std::make_shared<LogoutArgs>();
  CLI::Option* registry =
      sub->add_option("REGISTRY", a->registry, "HOST[:PORT], or HOST[:PORT]/NAMESPACE");
  CLI::Option* all = sub->add_flag("-a,--all", a->all, "remove the credentials of every registry");
  registry->excludes(all);
  sub->add_option("--authfile", a->authfile,
                  "auth file (default: $REGISTRY_AUTH_FILE, "
                  "$XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json)");
  sub->callback([a] {
    if (!a->all && a->registry.empty()) {
      throw CLI::RequiredError("REGISTRY or --all");
    }
  });
  AddCommand({sub, [a] { return RunLogout(*a); }});
}

}  // namespace imgstore::cli
