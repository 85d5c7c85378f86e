// Auth-file edits (what login and logout write) and docker credential helpers (credHelpers,
// credsStore), the helpers being small shell scripts that the tests put on PATH.
#include "registry/credentials.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "common/temp_dir.h"

namespace imgstore::registry {
namespace {

using imgstore::testing::TempDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  ::chmod(path.c_str(), mode);
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// Sets an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    const char* old = std::getenv(name);
    if (old != nullptr) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class AuthFileEdit : public ::testing::Test {
 protected:
  nlohmann::json Doc(const std::string& path) {
    return nlohmann::json::parse(ReadFile(path), nullptr, false);
  }
  TempDir dir_;
};

TEST_F(AuthFileEdit, StoreCreatesFileAndDirectoryWithPrivateModes) {
  const std::string path = dir_.Sub("run/containers/auth.json");
  ASSERT_TRUE(StoreAuthFileEntry(path, "127.0.0.1:5000", {"u", "p:w"}).ok());
  EXPECT_EQ(ModeOf(path), 0600u);
  EXPECT_EQ(ModeOf(dir_.Sub("run/containers")), 0700u);
  EXPECT_EQ(Doc(path)["auths"]["127.0.0.1:5000"]["auth"], Base64Encode("u:p:w"));
  // What is written is what the lookup reads.
  Result<std::optional<Credentials>> c = LookupAuthFile(path, "127.0.0.1:5000/a/b");
  ASSERT_TRUE(c.ok() && c->has_value()) << c.status().ToString();
  EXPECT_EQ((*c)->username, "u");
  EXPECT_EQ((*c)->password, "p:w");
  // No temporary file left beside it.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.Sub("run/containers")),
                          std::filesystem::directory_iterator()),
            1);
}

TEST_F(AuthFileEdit, StoreKeepsEverythingElseAndReplacesOtherSpellings) {
  const std::string path = dir_.Sub("auth.json");
  WriteFile(path, R"({"zz-first": 1, "auths": {"other:1": {"auth": "b3RoZXI6cA==", "email": "e"},
      "https://reg.example/": {"auth": "b2xkOm9sZA=="}, "reg.example": {"identitytoken": "t"}},
      "credHelpers": {"h.example": "x"}})");
  ASSERT_TRUE(StoreAuthFileEntry(path, "reg.example", {"new", "pw"}).ok());
  nlohmann::json doc = Doc(path);
  EXPECT_EQ(doc["zz-first"], 1);
  EXPECT_EQ(doc["credHelpers"]["h.example"], "x");
  EXPECT_EQ(doc["auths"]["other:1"]["auth"], "b3RoZXI6cA==");
  EXPECT_EQ(doc["auths"]["other:1"]["email"], "e");
  EXPECT_FALSE(doc["auths"].contains("https://reg.example/"));
  EXPECT_EQ(doc["auths"]["reg.example"]["auth"], Base64Encode("new:pw"));
  EXPECT_EQ(doc["auths"]["reg.example"]["identitytoken"], "t");  // fields of the entry kept
  EXPECT_EQ(ModeOf(path), 0600u);
  // The order of the top-level keys is kept (a diff of the file shows only the change).
  EXPECT_LT(ReadFile(path).find("zz-first"), ReadFile(path).find("auths"));
}

TEST_F(AuthFileEdit, MalformedFileIsLeftAsItIs) {
  for (const std::string& bad :
       {std::string("{not json"), std::string("[1, 2]"), std::string(R"({"auths": "nope"})")}) {
    const std::string path = dir_.Sub("bad.json");
    WriteFile(path, bad);
    Status s = StoreAuthFileEntry(path, "reg.example", {"u", "secretpw"});
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find("secretpw"), std::string::npos);
    EXPECT_EQ(ReadFile(path), bad);
    EXPECT_FALSE(RemoveAuthFileEntry(path, "reg.example").ok());
    EXPECT_EQ(ReadFile(path), bad);
  }
}

// Login and logout read, change and replace the file: without a lock between processes, two
// logins at once keep only one of the two entries.
TEST_F(AuthFileEdit, ConcurrentEditsFromManyProcessesAllLand) {
  const std::string path = dir_.Sub("containers/auth.json");
  constexpr int kProcesses = 6;
  constexpr int kEach = 15;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      bool ok = true;
      for (int i = 0; i < kEach; ++i) {
        const std::string key = "reg" + std::to_string(p) + "-" + std::to_string(i) + ".example";
        ok = ok && StoreAuthFileEntry(path, key, {"u", "p"}).ok();
        // Every other entry is removed again by its writer: removals race with stores too.
        if (i % 2 == 1) {
          Result<bool> removed = RemoveAuthFileEntry(path, key);
          ok = ok && removed.ok() && *removed;
        }
      }
      ::_exit(ok ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  nlohmann::json auths = Doc(path)["auths"];
  for (int p = 0; p < kProcesses; ++p) {
    for (int i = 0; i < kEach; ++i) {
      const std::string key = "reg" + std::to_string(p) + "-" + std::to_string(i) + ".example";
      EXPECT_EQ(auths.contains(key), i % 2 == 0) << key;
    }
  }
}

TEST_F(AuthFileEdit, AnEditWaitsForTheEditInProgress) {
  const std::string path = dir_.Sub("containers/auth.json");
  ASSERT_TRUE(StoreAuthFileEntry(path, "first.example", {"u", "p"}).ok());
  // Another process's edit in progress: it holds the directory's lock.
  const int dir_fd = ::open(dir_.Sub("containers").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir_fd, 0);
  ASSERT_EQ(::flock(dir_fd, LOCK_EX), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(dir_fd);  // the fork's copy would hold the parent's lock for the child
    ::_exit(StoreAuthFileEntry(path, "second.example", {"u", "p"}).ok() ? 0 : 1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, WNOHANG), 0) << "the edit did not wait for the lock";
  EXPECT_FALSE(Doc(path)["auths"].contains("second.example"));
  ::close(dir_fd);  // the other edit ends
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(Doc(path)["auths"].contains("second.example"));
  EXPECT_TRUE(Doc(path)["auths"].contains("first.example"));
}

TEST_F(AuthFileEdit, LogoutOfAMissingDirectoryCreatesNothing) {
  const std::string path = dir_.Sub("none/auth.json");
  Result<bool> removed = RemoveAuthFileEntry(path, "reg.example");
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_FALSE(*removed);
  Result<size_t> all = RemoveAllAuthFileEntries(path);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(*all, 0u);
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("none")));
}

TEST_F(AuthFileEdit, RemoveOneOrAll) {
  const std::string path = dir_.Sub("auth.json");
  WriteFile(path, R"({"auths": {"a.example": {"auth": "YTpi"}, "https://b.example/v2/x/": {},
      "c.example": {"auth": "Yzpk"}}, "keep": true})");
  Result<bool> r = RemoveAuthFileEntry(path, "https://a.example");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(*r);
  EXPECT_FALSE(Doc(path)["auths"].contains("a.example"));
  EXPECT_TRUE(Doc(path)["auths"].contains("c.example"));
  EXPECT_EQ(ModeOf(path), 0600u);
  // Absent: false and the file untouched.
  const std::string before = ReadFile(path);
  r = RemoveAuthFileEntry(path, "a.example");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(ReadFile(path), before);
  // A path key is its own entry.
  r = RemoveAuthFileEntry(path, "b.example/v2/x");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
  Result<size_t> n = RemoveAllAuthFileEntries(path);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_TRUE(Doc(path)["auths"].empty());
  EXPECT_EQ(Doc(path)["keep"], true);
  // No file: nothing removed, nothing created.
  const std::string none = dir_.Sub("none/auth.json");
  r = RemoveAuthFileEntry(none, "a.example");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  n = RemoveAllAuthFileEntries(none);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("none")));
}

TEST(LoginAuthFileTest, PodmanOrder) {
  ScopedEnv a("REGISTRY_AUTH_FILE", "/x/auth.json");
  ScopedEnv b("XDG_RUNTIME_DIR", "/run/user/7");
  ScopedEnv c("HOME", "/home/u");
  EXPECT_EQ(LoginAuthFile(), "/x/auth.json");
  ::unsetenv("REGISTRY_AUTH_FILE");
  EXPECT_EQ(LoginAuthFile(), "/run/user/7/containers/auth.json");
  ::unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(LoginAuthFile(), "/home/u/.config/containers/auth.json");
  ::unsetenv("HOME");
  EXPECT_EQ(LoginAuthFile(), "");
}

// Credential helpers: scripts docker-credential-NAME in a directory put first on PATH.
class CredentialHelper : public ::testing::Test {
 protected:
  CredentialHelper() : path_("PATH", bin_.path() + ":" + OldPath()) {}
  static std::string OldPath() {
    const char* p = std::getenv("PATH");
    return p != nullptr ? p : "/usr/bin:/bin";
  }
  void Helper(const std::string& name, const std::string& body) {
    WriteFile(bin_.Sub("docker-credential-" + name), "#!/bin/sh\n" + body, 0755);
  }
  std::string AuthFile(const std::string& content) {
    const std::string path = work_.Sub("config.json");
    WriteFile(path, content);
    return path;
  }

  TempDir bin_;
  TempDir work_;
  ScopedEnv path_;
};

// A helper as docker's are: `get`, the server on stdin, JSON on stdout. It records its argv, so
// that the test sees that nothing but "get" is on it.
constexpr const char* kGoodHelper = R"(echo "$# $*" > "$(dirname "$0")/argv"
[ "$1" = get ] || exit 9
read -r server
case "$server" in
  127.0.0.1:5000|https://index.docker.io/v1/)
    printf '{"ServerURL":"%s","Username":"user@%s","Secret":"s3cret from helper"}\n' "$server" "$server" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
)";

TEST_F(CredentialHelper, CredHelpersEntryRunsTheHelperWithTheServerOnStdin) {
  Helper("good", kGoodHelper);
  // credHelpers wins over an inline entry for the same registry.
  const std::string file =
      AuthFile(R"({"auths": {"127.0.0.1:5000": {"auth": ")" + Base64Encode("inline:pw") +
               R"("}}, "credHelpers": {"127.0.0.1:5000": "good"}})");
  Result<std::optional<Credentials>> c = LookupAuthFile(file, "127.0.0.1:5000/a/b");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->username, "user@127.0.0.1:5000");
  EXPECT_EQ((*c)->password, "s3cret from helper");
  EXPECT_EQ(ReadFile(bin_.Sub("argv")), "1 get\n");
  // Another registry: the inline entries apply (none here).
  c = LookupAuthFile(file, "other.example/a");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->has_value());
}

TEST_F(CredentialHelper, CredsStoreServesEveryRegistryWithoutInlineCredentials) {
  Helper("store", kGoodHelper);
  const std::string file = AuthFile(R"({"auths": {"127.0.0.1:5000": {}, "inline.example": {
      "auth": ")" + Base64Encode("inline:pw") +
                                    R"("}}, "credsStore": "store"})");
  Result<std::optional<Credentials>> c = LookupAuthFile(file, "127.0.0.1:5000/x");
  ASSERT_TRUE(c.ok() && c->has_value()) << c.status().ToString();
  EXPECT_EQ((*c)->username, "user@127.0.0.1:5000");
  // docker.io is asked under docker's historical address.
  c = LookupAuthFile(file, "docker.io/library/alpine");
  ASSERT_TRUE(c.ok() && c->has_value()) << c.status().ToString();
  EXPECT_EQ((*c)->username, "user@https://index.docker.io/v1/");
  // Inline credentials are used as they are.
  c = LookupAuthFile(file, "inline.example/x");
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "inline");
  // The helper's "credentials not found": no credentials, not an error.
  c = LookupAuthFile(file, "unknown.example/x");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->has_value());
}

TEST_F(CredentialHelper, MissingHelperIsNamed) {
  const std::string file = AuthFile(R"({"credHelpers": {"127.0.0.1:5000": "nope-not-here"}})");
  Result<std::optional<Credentials>> c = LookupAuthFile(file, "127.0.0.1:5000/x");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kNotFound);
  EXPECT_NE(c.status().message().find("credential helper docker-credential-nope-not-here"),
            std::string::npos)
      << c.status().message();
  EXPECT_NE(c.status().message().find("not installed"), std::string::npos);
  EXPECT_NE(c.status().message().find(file), std::string::npos);
  // A name that is a path is not run.
  Result<std::optional<Credentials>> bad = RunCredentialHelper("../../bin/sh", "h");
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

TEST_F(CredentialHelper, FailingHelperIsNamedWithoutItsOutput) {
  Helper("broken", "read -r server\necho 'leaky-secret-XYZ'\necho 'more-secret' >&2\nexit 3\n");
  Result<std::optional<Credentials>> c = RunCredentialHelper("broken", "127.0.0.1:5000");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kPermissionDenied);
  EXPECT_EQ(
      c.status().message(),
      "credential helper docker-credential-broken (for 127.0.0.1:5000) failed (exit status 3)");
  // An answer that is not credentials.
  Helper("garbage", "echo '{\"Username\": 5}'\n");
  c = RunCredentialHelper("garbage", "127.0.0.1:5000");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("docker-credential-garbage"), std::string::npos);
  EXPECT_EQ(c.status().message().find("Username\": 5"), std::string::npos);
  // A helper that does not read its stdin still works (the server was written up front).
  Helper("noread", "echo '{\"Username\": \"u\", \"Secret\": \"p\"}'\n");
  c = RunCredentialHelper("noread", "127.0.0.1:5000");
  ASSERT_TRUE(c.ok() && c->has_value()) << c.status().ToString();
  EXPECT_EQ((*c)->password, "p");
}

TEST_F(CredentialHelper, HungHelperTimesOut) {
  // exec: the shell becomes the sleep, so that the kill ends the helper.
  Helper("hung", "exec sleep 600\n");
  Result<std::optional<Credentials>> c =
      RunCredentialHelper("hung", "127.0.0.1:5000", std::chrono::milliseconds(200));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_NE(c.status().message().find("no answer within 200 ms"), std::string::npos)
      << c.status().message();
}

}  // namespace
}  // namespace imgstore::registry
