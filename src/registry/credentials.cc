// Credentials from --creds, auth files and credential helpers, and the auth-file edits of login
// and logout (see credentials.h).
#include "registry/credentials.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "util/env.h"

extern char** environ;

namespace imgstore::registry {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// An auth file is a few KiB; the bound keeps a wrong path (a device, a huge file) harmless.
constexpr uint64_t kMaxAuthFileBytes = 1 << 20;

// A credential helper's answer is a few hundred bytes.
constexpr size_t kMaxHelperOutput = 1 << 20;

std::string EnvVar(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// A file descriptor closed when it goes out of scope.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// A child process killed and reaped if it is still running when this goes out of scope.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  // The wait status.
  int Wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_;
};

// The full path of `program` in $PATH, or "".
std::string FindInPath(const std::string& program) {
  std::string path = EnvVar("PATH");
  if (path.empty()) path = "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t colon = path.find(':', start);
    if (colon == std::string::npos) colon = path.size();
    std::string dir = path.substr(start, colon - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = colon + 1;
  }
  return "";
}

// The address docker gives a credential helper for a registry domain.
std::string HelperServer(std::string_view domain) {
  return domain == "docker.io" ? "https://index.docker.io/v1/" : std::string(domain);
}

// The registry domain of "127.0.0.1:5000/a/b".
std::string_view DomainOf(std::string_view repository) {
  return repository.substr(0, repository.find('/'));
}

// The auth file as an ordered JSON object (so that a rewrite keeps the order of its keys), or
// an empty object when the file does not exist.
Result<nlohmann::ordered_json> ReadAuthFileForEdit(const std::string& path, bool* exists) {
  Result<std::string> text = Env::Default()->ReadFileToString(path, kMaxAuthFileBytes);
  if (!text.ok() && text.status().code() == Code::kNotFound) {
    *exists = false;
    return nlohmann::ordered_json::object();
  }
  if (!text.ok()) return text.status().WithContext("auth file");
  *exists = true;
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Status(Code::kInvalidArgument, "auth file " + path + ": not a JSON object");
  }
  auto auths = doc.find("auths");
  if (auths != doc.end() && !auths->is_object()) {
    return Status(Code::kInvalidArgument, "auth file " + path + ": \"auths\" is not an object");
  }
  return doc;
}

Status WriteAuthFile(const std::string& path, const nlohmann::ordered_json& doc) {
  return Env::Default()->WriteFileAtomically(path, doc.dump(1, '\t') + "\n", 0600);
}

// How long an edit waits for another process's edit of the same auth file: an edit takes
// milliseconds, so this is reached only by a stopped process (a debugger, SIGSTOP).
constexpr auto kEditLockTimeout = std::chrono::seconds(30);

// Serializes the read-modify-write edits of login and logout across processes, so that two
// logins to different registries both land. The lock is an flock of the auth file's directory:
// it dies with its holder and leaves no lock file beside the auth file (docker and podman, which
// do not take it, are not kept out; they replace the file atomically too).
class AuthEditLock {
 public:
  // Locks the directory of `path`; creates it 0700 first when `create` (else a missing
  // directory leaves the lock unheld: there is no file to edit).
  static Result<AuthEditLock> Take(const std::string& path, bool create) {
    Env* env = Env::Default();
    const std::string dir = DirName(path);
    if (!env->FileExists(dir)) {
      if (!create) return AuthEditLock(-1);
      IMGSTORE_RETURN_IF_ERROR(env->CreateDirs(dir, 0700));
    }
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno(errno, "open " + dir);
    AuthEditLock lock(fd);
    const auto deadline = std::chrono::steady_clock::now() + kEditLockTimeout;
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno != EWOULDBLOCK) return Status::FromErrno(errno, "lock " + dir);
      if (std::chrono::steady_clock::now() > deadline) {
        return Status(Code::kTimeout, "auth file " + path +
                                          ": another login or logout has been editing it for " +
                                          std::to_string(kEditLockTimeout.count()) + "s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // A login or logout killed before its rename left its temporary file (it may hold a
    // secret): every edit, even one that ends up writing nothing, removes such files.
    Result<int> swept = RemoveDeadTempFiles(env, dir, "." + BaseName(path) + ".tmp-");
    if (!swept.ok()) return swept.status().WithContext("auth file " + path);
    return lock;
  }
  AuthEditLock(AuthEditLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  AuthEditLock& operator=(AuthEditLock&&) = delete;
  ~AuthEditLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the flock
  }
  bool held() const { return fd_ >= 0; }

 private:
  explicit AuthEditLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace

std::string NormalizeAuthKey(std::string_view key) {
  if (key.starts_with("https://")) key.remove_prefix(8);
  if (key.starts_with("http://")) key.remove_prefix(7);
  while (key.ends_with("/")) key.remove_suffix(1);
  std::string k(key);
  if (k == "index.docker.io/v1" || k == "index.docker.io" || k == "registry-1.docker.io") {
    return "docker.io";
  }
  if (k.starts_with("index.docker.io/")) return "docker.io/" + k.substr(16);
  return k;
}

Result<Credentials> ParseCredentials(std::string_view user_pass) {
  size_t colon = user_pass.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status(Code::kInvalidArgument, "credentials must be USER:PASSWORD");
  }
  return Credentials{std::string(user_pass.substr(0, colon)),
                     std::string(user_pass.substr(colon + 1))};
}

std::vector<std::string> DefaultAuthFiles() {
  std::vector<std::string> out;
  if (!EnvVar("REGISTRY_AUTH_FILE").empty()) out.push_back(EnvVar("REGISTRY_AUTH_FILE"));
  if (!EnvVar("XDG_RUNTIME_DIR").empty()) {
    out.push_back(EnvVar("XDG_RUNTIME_DIR") + "/containers/auth.json");
  }
  if (!EnvVar("HOME").empty()) {
    out.push_back(EnvVar("HOME") + "/.config/containers/auth.json");
    out.push_back(EnvVar("HOME") + "/.docker/config.json");
  }
  return out;
}

std::string LoginAuthFile() {
  if (!EnvVar("REGISTRY_AUTH_FILE").empty()) return EnvVar("REGISTRY_AUTH_FILE");
  if (!EnvVar("XDG_RUNTIME_DIR").empty()) {
    return EnvVar("XDG_RUNTIME_DIR") + "/containers/auth.json";
  }
  if (!EnvVar("HOME").empty()) return EnvVar("HOME") + "/.config/containers/auth.json";
  return "";
}

Result<std::optional<Credentials>> LookupAuthFile(const std::string& path,
                                                  std::string_view repository) {
  Result<std::string> text = Env::Default()->ReadFileToString(path, kMaxAuthFileBytes);
  if (!text.ok()) return text.status();
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Status(Code::kInvalidArgument, "auth file " + path + ": not a JSON object");
  }
  const std::string_view domain = DomainOf(repository);
  // 1. A helper for this registry.
  auto helpers = doc.find("credHelpers");
  if (helpers != doc.end()) {
    if (!helpers->is_object()) {
      return Status(Code::kInvalidArgument,
                    "auth file " + path + ": \"credHelpers\" is not an object");
    }
    for (auto it = helpers->begin(); it != helpers->end(); ++it) {
      if (NormalizeAuthKey(it.key()) != domain) continue;
      if (!it->is_string() || it->get<std::string>().empty()) {
        return Status(Code::kInvalidArgument,
                      "auth file " + path + ", credHelpers \"" + it.key() + "\": not a name");
      }
      Result<std::optional<Credentials>> c =
          RunCredentialHelper(it->get<std::string>(), HelperServer(domain));
      if (!c.ok()) return c.status().WithContext("auth file " + path);
      return c;
    }
  }
  // 3. The helper for every registry, when the file has no inline credentials for this one.
  auto store = [&]() -> Result<std::optional<Credentials>> {
    auto name = doc.find("credsStore");
    if (name == doc.end()) return std::optional<Credentials>();
    if (!name->is_string() || name->get<std::string>().empty()) {
      return Status(Code::kInvalidArgument, "auth file " + path + ": \"credsStore\" is not a name");
    }
    Result<std::optional<Credentials>> c =
        RunCredentialHelper(name->get<std::string>(), HelperServer(domain));
    if (!c.ok()) return c.status().WithContext("auth file " + path);
    return c;
  };
  // 2. Inline credentials.
  auto auths = doc.find("auths");
  if (auths == doc.end()) return store();
  if (!auths->is_object()) {
    return Status(Code::kInvalidArgument, "auth file " + path + ": \"auths\" is not an object");
  }
  // Longest key that is the repository or one of its parents down to the domain.
  const nlohmann::json* best = nullptr;
  std::string best_key;
  size_t best_len = 0;
  for (auto it = auths->begin(); it != auths->end(); ++it) {
    std::string k = NormalizeAuthKey(it.key());
    bool match = repository == k || (repository.starts_with(k) && repository.size() > k.size() &&
                                     repository[k.size()] == '/');
    if (match && k.size() >= best_len) {
      best = &it.value();
      best_key = it.key();
      best_len = k.size();
    }
  }
  if (best == nullptr) return store();
  const std::string what = "auth file " + path + ", entry \"" + best_key + "\"";
  if (!best->is_object()) return Status(Code::kInvalidArgument, what + ": not an object");
  auto auth = best->find("auth");
  if (auth == best->end() || !auth->is_string() || auth->get<std::string>().empty()) {
    // docker writes an empty entry for a registry whose credentials are in credsStore.
    return store();
  }
  std::optional<std::string> decoded = Base64Decode(auth->get<std::string>());
  if (!decoded) return Status(Code::kInvalidArgument, what + ": \"auth\" is not base64");
  Result<Credentials> c = ParseCredentials(*decoded);
  if (!c.ok()) return Status(Code::kInvalidArgument, what + ": \"auth\" is not USER:PASSWORD");
  return std::optional<Credentials>(std::move(*c));
}

Result<std::optional<Credentials>> RunCredentialHelper(const std::string& name,
                                                       const std::string& server,
                                                       std::chrono::milliseconds timeout) {
  const std::string program = "docker-credential-" + name;
  const std::string who = "credential helper " + program + " (for " + server + ")";
  if (name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
      std::string::npos) {
    return Status(Code::kInvalidArgument, "credential helper name \"" + name + "\" is not valid");
  }
  const std::string path = FindInPath(program);
  if (path.empty()) {
    return Status(Code::kNotFound, who + ": not installed (no " + program + " in $PATH)");
  }
  // The server goes into the pipe before the helper starts: it is far below the pipe's
  // capacity, so the write cannot block, and no SIGPIPE can come from a helper that does not
  // read its stdin.
  int in_fds[2], out_fds[2];
  if (::pipe2(in_fds, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
  Fd in_read(in_fds[0]), in_write(in_fds[1]);
  if (::pipe2(out_fds, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
  Fd out_read(out_fds[0]), out_write(out_fds[1]);
  const std::string input = server + "\n";
  if (::write(in_write.get(), input.data(), input.size()) != static_cast<ssize_t>(input.size())) {
    return Status::FromErrno(errno, "write to " + program);
  }
  in_write.Reset();

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_read.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  // Its complaints would break the one-line error convention; the exit status says enough.
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::string arg0 = path, arg1 = "get";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, path.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return Status::FromErrno(rc, "start " + path);
  Child child(pid);
  in_read.Reset();
  out_write.Reset();

  std::string output;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return Status(Code::kUnavailable,
                    who + ": no answer within " + std::to_string(timeout.count()) + " ms");
    }
    pollfd p{out_read.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "poll " + program);
    if (n == 0) continue;
    char buf[4096];
    ssize_t got = ::read(out_read.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Status::FromErrno(errno, "read from " + program);
    if (got == 0) break;
    output.append(buf, static_cast<size_t>(got));
    if (output.size() > kMaxHelperOutput) {
      return Status(Code::kPermissionDenied, who + ": its answer is too large");
    }
  }
  int status = child.Wait();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    // The helpers' own words for "nothing stored for this server" (docker's credentials package).
    if (output.find("credentials not found") != std::string::npos) {
      return std::optional<Credentials>();
    }
    return Status(Code::kPermissionDenied,
                  who + " failed (" +
                      (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                         : "killed by signal " + std::to_string(WTERMSIG(status))) +
                      ")");
  }
  nlohmann::json doc = nlohmann::json::parse(output, nullptr, false);
  auto field = [&](const char* key) -> std::optional<std::string> {
    if (!doc.is_object()) return std::nullopt;
    auto it = doc.find(key);
    if (it == doc.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  std::optional<std::string> user = field("Username"), secret = field("Secret");
  if (!user || !secret) {
    return Status(Code::kPermissionDenied,
                  who + ": the answer is not {\"Username\": ..., \"Secret\": ...}");
  }
  if (*user == "<token>") {
    // An identity token is for an OAuth2 token exchange, which imgstore does not do.
    return Status(Code::kUnsupported, who +
                                          ": answered an identity token, which imgstore "
                                          "does not support");
  }
  if (user->empty()) return std::optional<Credentials>();
  return std::optional<Credentials>(Credentials{std::move(*user), std::move(*secret)});
}

Status StoreAuthFileEntry(const std::string& path, const std::string& key,
                          const Credentials& credentials) {
  Result<AuthEditLock> lock = AuthEditLock::Take(path, /*create=*/true);
  if (!lock.ok()) return lock.status();
  bool exists = false;
  Result<nlohmann::ordered_json> doc = ReadAuthFileForEdit(path, &exists);
  if (!doc.ok()) return doc.status();
  nlohmann::ordered_json& auths = (*doc)["auths"];
  if (auths.is_null()) auths = nlohmann::ordered_json::object();
  // An entry written under another spelling of the key ("https://KEY/") would shadow or
  // duplicate the new one.
  const std::string normalized = NormalizeAuthKey(key);
  for (auto it = auths.begin(); it != auths.end();) {
    if (it.key() != key && NormalizeAuthKey(it.key()) == normalized) {
      it = auths.erase(it);
    } else {
      ++it;
    }
  }
  nlohmann::ordered_json& entry = auths[key];
  if (!entry.is_object()) entry = nlohmann::ordered_json::object();
  entry["auth"] = Base64Encode(credentials.username + ":" + credentials.password);
  return WriteAuthFile(path, *doc);
}

Result<bool> RemoveAuthFileEntry(const std::string& path, const std::string& key) {
  Result<AuthEditLock> lock = AuthEditLock::Take(path, /*create=*/false);
  if (!lock.ok()) return lock.status();
  if (!lock->held()) return false;
  bool exists = false;
  Result<nlohmann::ordered_json> doc = ReadAuthFileForEdit(path, &exists);
  if (!doc.ok()) return doc.status();
  auto auths = doc->find("auths");
  if (!exists || auths == doc->end()) return false;
  const std::string normalized = NormalizeAuthKey(key);
  bool removed = false;
  for (auto it = auths->begin(); it != auths->end();) {
    if (NormalizeAuthKey(it.key()) == normalized) {
      it = auths->erase(it);
      removed = true;
    } else {
      ++it;
    }
  }
  if (!removed) return false;
  IMGSTORE_RETURN_IF_ERROR(WriteAuthFile(path, *doc));
  return true;
}

Result<size_t> RemoveAllAuthFileEntries(const std::string& path) {
  Result<AuthEditLock> lock = AuthEditLock::Take(path, /*create=*/false);
  if (!lock.ok()) return lock.status();
  if (!lock->held()) return size_t{0};
  bool exists = false;
  Result<nlohmann::ordered_json> doc = ReadAuthFileForEdit(path, &exists);
  if (!doc.ok()) return doc.status();
  auto auths = doc->find("auths");
  if (!exists || auths == doc->end() || auths->empty()) return size_t{0};
  size_t n = auths->size();
  *auths = nlohmann::ordered_json::object();
  IMGSTORE_RETURN_IF_ERROR(WriteAuthFile(path, *doc));
  return n;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) |
                 uint8_t(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '=') {
      if (i + 2 < text.size()) return std::nullopt;  // padding only at the end
      ++pad;
      continue;
    }
    if (pad > 0) return std::nullopt;
    size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace imgstore::registry
