// `imgstore login` and `imgstore logout` against real registries: docker-registry with htpasswd
// over TLS (with --cert-dir), and with token auth against the suite's TokenServer. The auth file
// written (where, mode 0600, other entries and keys kept, nothing on a wrong password), a pull
// that uses it without --creds, the ways the password is read (--password-stdin, one line of
// stdin, -p, a prompt on a terminal with echo off), and logout. Skipped only if docker-registry
// or skopeo is not installed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/cli_runner.h"
#include "common/registry_fixture.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "common/token_server.h"
#include "registry/credentials.h"

extern char** environ;

namespace imgstore::testing {
namespace {

constexpr const char* kUser = "tester";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

int ErrorLines(const std::string& err) {
  int n = 0;
  std::istringstream lines(err);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("imgstore: error:")) ++n;
  }
  return n;
}

// The base64 "auth" of auths[key] in an auth file, or "" when absent.
std::string AuthEntry(const std::string& path, const std::string& key) {
  nlohmann::json doc = nlohmann::json::parse(ReadFile(path), nullptr, false);
  if (!doc.is_object() || !doc.contains("auths") || !doc["auths"].contains(key)) return "";
  return doc["auths"][key].value("auth", "");
}

// A home for one test: HOME and XDG_RUNTIME_DIR in temporary directories, no
// REGISTRY_AUTH_FILE, so that nothing outside the test is read or written.
struct Home {
  TempDir home;
  TempDir xdg;
  std::vector<std::string> env() const {
    return {"HOME=" + home.path(), "XDG_RUNTIME_DIR=" + xdg.path(), "REGISTRY_AUTH_FILE="};
  }
  std::string auth_file() const { return xdg.path() + "/containers/auth.json"; }
};

// Runs imgstore with `input` on its stdin (through a file that the shell redirects: the input,
// a password, is never on a command line).
CliResult RunWithStdin(const std::string& root, const std::vector<std::string>& args,
                       const std::string& input, const std::vector<std::string>& env) {
  TempDir dir;
  const std::string file = dir.Sub("stdin");
  WriteFile(file, input);
  ::chmod(file.c_str(), 0600);
  std::vector<std::string> sh = {"-c", "exec \"$0\" \"$@\" < \"$IMGSTORE_TEST_STDIN\"",
                                 ImgstoreBinary(), "--root", root};
  sh.insert(sh.end(), args.begin(), args.end());
  std::vector<std::string> all_env = env;
  all_env.push_back("IMGSTORE_TEST_STDIN=" + file);
  return RunProgram("/bin/sh", sh, all_env);
}

class LoginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRegistry::Available()) {
      GTEST_SKIP() << "docker-registry or skopeo is not installed (scripts/setup.sh)";
    }
  }
  static std::unique_ptr<TestRegistry> StartRegistry(const TestRegistryConfig& c) {
    auto reg = std::make_unique<TestRegistry>();
    std::string error;
    if (!reg->Start(c, &error)) {
      ADD_FAILURE() << "cannot start docker-registry: " << error;
      return nullptr;
    }
    return reg;
  }
  void Push(const TestRegistry& reg, uint32_t seed, const std::string& dest, Digest* id) {
    TestImageSpec spec;
    spec.seed = seed;
    spec.layers = 2;
    const TestImage im = MakeTestImage(spec);
    const std::string layout = work_.Sub("layout-" + std::to_string(seed));
    WriteOciLayout(im, layout, "src");
    ASSERT_EQ(reg.SkopeoPush("oci:" + layout + ":src", dest), "") << "skopeo push failed";
    *id = im.id;
  }

  TempDir work_;
  TempDir root_;
};

// htpasswd over TLS: login checks the password with Basic auth.
class BasicLogin : public LoginTest {
 protected:
  static void SetUpTestSuite() {
    if (!TestRegistry::Available()) return;
    TestRegistryConfig c;
    c.tls = true;
    c.basic_auth = true;
    registry_ = StartRegistry(c);
  }
  static void TearDownTestSuite() { registry_.reset(); }
  void SetUp() override {
    LoginTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_TRUE(registry_) << "registry not started";
  }
  const TestRegistry& reg() { return *registry_; }
  const std::string& host() { return registry_->host(); }
  const std::string& password() { return registry_->config().password; }
  // login HOST -u tester --password-stdin --cert-dir DIR [extra...], the password on stdin.
  CliResult Login(const std::string& pw, const Home& home,
                  const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"login",      host(),          "-u", kUser, "--password-stdin",
                                     "--cert-dir", reg().cert_dir()};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunWithStdin(root_.path(), args, pw + "\n", home.env());
  }

  static std::unique_ptr<TestRegistry> registry_;
};
std::unique_ptr<TestRegistry> BasicLogin::registry_;

TEST_F(BasicLogin, StoresCredentialsThatAPullUses) {
  Digest id;
  Push(reg(), 401, "login/app:1", &id);
  Home home;
  // Before login: the registry wants credentials.
  CliResult r = RunImgstore(root_.path(),
                            {"pull", "-q", "--cert-dir", reg().cert_dir(), host() + "/login/app:1"},
                            home.env());
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("authentication required"), std::string::npos) << r.err;

  r = Login(password(), home);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "Login Succeeded!\n");
  EXPECT_EQ(r.err.find(password()), std::string::npos);
  // podman's default place, made with private modes.
  ASSERT_TRUE(std::filesystem::exists(home.auth_file()));
  EXPECT_EQ(ModeOf(home.auth_file()), 0600u);
  EXPECT_EQ(ModeOf(home.xdg.path() + "/containers"), 0700u);
  EXPECT_EQ(AuthEntry(home.auth_file(), host()),
            registry::Base64Encode(std::string(kUser) + ":" + password()));
  // The pull finds the credentials in the default auth file.
  r = RunImgstore(root_.path(), {"pull", "--cert-dir", reg().cert_dir(), host() + "/login/app:1"},
                  home.env());
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, id.ToString() + "\n");
}

TEST_F(BasicLogin, KeepsOtherEntriesAndKeysAndReplacesTheEntry) {
  Home home;
  const std::string file = work_.Sub("auth.json");
  const std::string other = registry::Base64Encode("someone:else");
  WriteFile(file, R"({"auths": {"other.example:5000": {"auth": ")" + other + R"("}, "https://)" +
                      host() + R"(/": {"auth": "b2xkOm9sZA=="}},)" +
                      R"( "credHelpers": {"helped.example": "none"}, "x-unknown": {"k": [1, 2]}})");
  ::chmod(file.c_str(), 0644);
  CliResult r = Login(password(), home, {"--authfile", file});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(ModeOf(file), 0600u);
  nlohmann::json doc = nlohmann::json::parse(ReadFile(file), nullptr, false);
  ASSERT_TRUE(doc.is_object()) << ReadFile(file);
  EXPECT_EQ(doc["auths"]["other.example:5000"]["auth"], other);
  EXPECT_EQ(doc["credHelpers"]["helped.example"], "none");
  EXPECT_EQ(doc["x-unknown"]["k"], nlohmann::json({1, 2}));
  // The old entry under another spelling of the same registry is replaced, not shadowed.
  EXPECT_FALSE(doc["auths"].contains("https://" + host() + "/")) << doc.dump();
  EXPECT_EQ(doc["auths"][host()]["auth"],
            registry::Base64Encode(std::string(kUser) + ":" + password()));
  // Nothing went to the default file.
  EXPECT_FALSE(std::filesystem::exists(home.auth_file()));
}

TEST_F(BasicLogin, WrongPasswordWritesNothing) {
  Home home;
  const std::string bad = "N0t-The-Passw0rd-QWERTY";
  CliResult r = Login(bad, home);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(ErrorLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("the credentials of user \"tester\" were rejected (HTTP 401)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find(bad), std::string::npos) << "password leaked: " << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(std::filesystem::exists(home.auth_file()));
  EXPECT_FALSE(std::filesystem::exists(home.xdg.path() + "/containers"));
  // An existing file keeps its bytes.
  const std::string file = work_.Sub("auth.json");
  const std::string before = R"({"auths": {"kept.example": {"auth": "a2VwdDprZXB0"}}})";
  WriteFile(file, before);
  r = Login(bad, home, {"--authfile", file});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(ReadFile(file), before);
}

TEST_F(BasicLogin, PasswordFromOneLineOfStdinOrFromOption) {
  Home home;
  // Not a terminal and no --password-stdin: one line is read, the rest is not the password.
  CliResult r =
      RunWithStdin(root_.path(), {"login", "-u", kUser, "--cert-dir", reg().cert_dir(), host()},
                   password() + "\nnot part of it\n", home.env());
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "Login Succeeded!\n");
  EXPECT_EQ(AuthEntry(home.auth_file(), host()),
            registry::Base64Encode(std::string(kUser) + ":" + password()));
  // -p, and REGISTRY_AUTH_FILE chooses the file.
  const std::string file = work_.Sub("env-auth.json");
  std::vector<std::string> env = home.env();
  env.back() = "REGISTRY_AUTH_FILE=" + file;  // (the first of two would win)
  r = RunImgstore(root_.path(),
                  {"login", "-u", kUser, "-p", password(), "--cert-dir", reg().cert_dir(),
                   "https://" + host() + "/"},
                  env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(AuthEntry(file, host()), registry::Base64Encode(std::string(kUser) + ":" + password()));
  // No user name and no terminal to ask it on.
  r = RunWithStdin(root_.path(), {"login", "--cert-dir", reg().cert_dir(), host()},
                   password() + "\n", home.env());
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("give the user name with -u USER"), std::string::npos) << r.err;
  // An empty password is not sent.
  r = RunWithStdin(
      root_.path(),
      {"login", "-u", kUser, "--password-stdin", "--cert-dir", reg().cert_dir(), host()}, "\n",
      home.env());
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("empty password"), std::string::npos) << r.err;
}

TEST_F(BasicLogin, WithoutXdgRuntimeDirTheFileIsUnderHome) {
  TempDir home;
  CliResult r = RunWithStdin(
      root_.path(),
      {"login", "-u", kUser, "--password-stdin", "--cert-dir", reg().cert_dir(), host()},
      password(), {"HOME=" + home.path(), "XDG_RUNTIME_DIR=", "REGISTRY_AUTH_FILE="});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const std::string file = home.Sub(".config/containers/auth.json");
  EXPECT_EQ(AuthEntry(file, host()), registry::Base64Encode(std::string(kUser) + ":" + password()));
  EXPECT_EQ(ModeOf(file), 0600u);
}

TEST_F(BasicLogin, LogoutRemovesTheEntryAndTellsWhenThereIsNone) {
  Home home;
  ASSERT_EQ(Login(password(), home).exit_code, 0);
  std::filesystem::create_directories(home.xdg.path() + "/containers");
  // Another registry's entry, which logout HOST keeps.
  nlohmann::json doc = nlohmann::json::parse(ReadFile(home.auth_file()));
  doc["auths"]["other.example"] = {{"auth", registry::Base64Encode("o:p")}};
  doc["x-unknown"] = true;
  WriteFile(home.auth_file(), doc.dump());

  CliResult r = RunImgstore(root_.path(), {"logout", host()}, home.env());
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "Removed login credentials for " + host() + "\n");
  EXPECT_EQ(AuthEntry(home.auth_file(), host()), "");
  EXPECT_NE(AuthEntry(home.auth_file(), "other.example"), "");
  EXPECT_EQ(ModeOf(home.auth_file()), 0600u);
  // A pull no longer has credentials.
  r = RunImgstore(root_.path(),
                  {"pull", "-q", "--cert-dir", reg().cert_dir(), host() + "/login/none:1"},
                  home.env());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("authentication required"), std::string::npos) << r.err;
  // Again: not logged in.
  r = RunImgstore(root_.path(), {"logout", host()}, home.env());
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(ErrorLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("not logged in to " + host()), std::string::npos) << r.err;
  // --all empties "auths" and keeps the rest.
  r = RunImgstore(root_.path(), {"logout", "--all"}, home.env());
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  doc = nlohmann::json::parse(ReadFile(home.auth_file()));
  EXPECT_TRUE(doc["auths"].empty()) << doc.dump();
  EXPECT_EQ(doc["x-unknown"], true);
  // Usage errors: neither or both.
  EXPECT_EQ(RunImgstore(root_.path(), {"logout"}, home.env()).exit_code, 2);
  EXPECT_EQ(RunImgstore(root_.path(), {"logout", "--all", host()}, home.env()).exit_code, 2);
}

// The prompt on a terminal: a pseudo-terminal is the child's stdin, stdout and stderr.
TEST_F(BasicLogin, PromptsForThePasswordWithEchoOff) {
  Home home;
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(slave, 0);
  std::vector<std::string> argv_s = {
      ImgstoreBinary(), "--root",         root_.path(), "login", "-u", kUser,
      "--cert-dir",     reg().cert_dir(), host()};
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) env_s.emplace_back(*e);
  for (const std::string& e : home.env()) env_s.push_back(e);
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (int fd : {0, 1, 2}) posix_spawn_file_actions_adddup2(&actions, slave, fd);
  pid_t pid = -1;
  ASSERT_EQ(::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);

  std::string seen;
  bool typed = false;
  int status = 0;
  bool exited = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      char buf[1024];
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n > 0) seen.append(buf, static_cast<size_t>(n));
    }
    if (!typed && seen.find("Password: ") != std::string::npos) {
      const std::string line = password() + "\n";
      ASSERT_EQ(::write(master, line.data(), line.size()), static_cast<ssize_t>(line.size()));
      typed = true;
    }
    if (exited) break;  // one more read after the exit, for the last output
    exited = ::waitpid(pid, &status, WNOHANG) == pid;
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  ASSERT_TRUE(exited) << "login did not end; terminal output: " << seen;
  EXPECT_TRUE(typed) << seen;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << seen;
  EXPECT_NE(seen.find("Login Succeeded!"), std::string::npos) << seen;
  EXPECT_EQ(seen.find(password()), std::string::npos) << "password echoed: " << seen;
  // The terminal echoes again.
  termios t{};
  ASSERT_EQ(::tcgetattr(slave, &t), 0);
  EXPECT_NE(t.c_lflag & ECHO, 0u);
  ::close(slave);
  ::close(master);
  EXPECT_EQ(AuthEntry(home.auth_file(), host()),
            registry::Base64Encode(std::string(kUser) + ":" + password()));
}

// Token auth: login asks the token server for a token without repository scope.
class TokenLogin : public LoginTest {
 protected:
  static constexpr const char* kPassword = "t0ken-L0gin-Pa55";
  static void SetUpTestSuite() {
    if (!TestRegistry::Available()) return;
    token_ = std::make_unique<TokenServer>();
    TokenServerConfig tc;
    tc.users = {{kUser, kPassword}};
    tc.grants = {{kUser, "*", {"pull", "push"}}};
    std::string error;
    if (!token_->Start(tc, &error)) {
      token_.reset();
      ADD_FAILURE() << "cannot start the token server: " << error;
      return;
    }
    TestRegistryConfig c;
    c.token_auth = token_->registry_auth();
    c.user = kUser;
    c.password = kPassword;
    registry_ = StartRegistry(c);
  }
  static void TearDownTestSuite() {
    registry_.reset();
    token_.reset();
  }
  void SetUp() override {
    LoginTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_TRUE(registry_ && token_) << "registry or token server not started";
  }

  static std::unique_ptr<TokenServer> token_;
  static std::unique_ptr<TestRegistry> registry_;
};
std::unique_ptr<TokenServer> TokenLogin::token_;
std::unique_ptr<TestRegistry> TokenLogin::registry_;

TEST_F(TokenLogin, LoginThenPullWithTheStoredCredentials) {
  Digest id;
  Push(*registry_, 402, "tokenlogin/app:1", &id);
  token_->ClearRequests();
  Home home;
  const std::string host = registry_->host();
  CliResult r = RunWithStdin(root_.path(), {"login", "-u", kUser, "--password-stdin", host},
                             std::string(kPassword) + "\n", home.env());
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "Login Succeeded!\n");
  std::vector<TokenServer::Request> reqs = token_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].account, kUser);
  EXPECT_TRUE(reqs[0].scopes.empty());  // the version check needs no repository
  EXPECT_EQ(reqs[0].status, 200);
  EXPECT_EQ(AuthEntry(home.auth_file(), host),
            registry::Base64Encode(std::string(kUser) + ":" + kPassword));
  // The pull authenticates to the token server with the stored credentials.
  token_->ClearRequests();
  r = RunImgstore(root_.path(), {"pull", host + "/tokenlogin/app:1"}, home.env());
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, id.ToString() + "\n");
  reqs = token_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].account, kUser);
}

TEST_F(TokenLogin, WrongPasswordIsRefusedByTheTokenServerAndNothingWritten) {
  Home home;
  const std::string bad = "B4d-Token-Passw0rd-ZZZ";
  CliResult r =
      RunWithStdin(root_.path(), {"login", "-u", kUser, "--password-stdin", registry_->host()},
                   bad + "\n", home.env());
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(ErrorLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("token server " + token_->realm() +
                       " refused the credentials of user \"tester\" (HTTP 401)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find(bad), std::string::npos) << "password leaked: " << r.err;
  EXPECT_FALSE(std::filesystem::exists(home.auth_file()));
}

}  // namespace
}  // namespace imgstore::testing
