// Login and logout (include/imgstore/registry.hpp) over the registry client and the auth file
// of src/registry/credentials.h.
#include "imgstore/registry.hpp"

#include <memory>
#include <utility>

#include "api/convert.h"
#include "images/reference.h"
#include "registry/credentials.h"
#include "registry/http_client.h"
#include "registry/registry_client.h"

namespace imgstore {
namespace {

// The key, and a reference under it: what the registry client needs to reach the registry.
struct LoginTarget {
  std::string key;
  images::Reference ref;
};

Result<LoginTarget> ParseLoginTarget(std::string_view text) {
  std::string_view t = text;
  if (t.starts_with("docker://")) t.remove_prefix(9);
  LoginTarget target;
  target.key = registry::NormalizeAuthKey(t);
  const Status bad(Code::kInvalidArgument,
                   "invalid registry \"" + std::string(text) + "\"; give HOST[:PORT]");
  if (target.key.empty() || target.key.find_first_of(" \t@") != std::string::npos) return bad;
  const size_t slash = target.key.find('/');
  const std::string domain = target.key.substr(0, slash);
  // A name under the domain, to parse the domain as references do.
  Result<images::Reference> ref =
      images::ParseReference(slash == std::string::npos ? domain + "/x" : target.key);
  if (!ref.ok() || ref->domain != domain || ref->tag || ref->digest) return bad;
  target.ref = *ref;
  return target;
}

Result<std::string> AuthFileOr(const std::string& auth_file) {
  if (!auth_file.empty()) return auth_file;
  return DefaultAuthFile();
}

}  // namespace

Result<std::string> RegistryKey(std::string_view registry) {
  return api::Guarded("registry key", [&]() -> Result<std::string> {
    Result<LoginTarget> t = ParseLoginTarget(registry);
    if (!t.ok()) return t.status();
    return std::move(t->key);
  });
}

Result<std::string> DefaultAuthFile() {
  return api::Guarded("auth file", []() -> Result<std::string> {
    std::string path = registry::LoginAuthFile();
    if (path.empty()) {
      return Status(Code::kFailedPrecondition,
                    "no auth file: none of REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR and HOME is set");
    }
    return path;
  });
}

Status Login(std::string_view registry, const Credentials& credentials,
             const RegistryOptions& options) {
  return api::Guarded("login", [&]() -> Status {
    Result<LoginTarget> target = ParseLoginTarget(registry);
    if (!target.ok()) return target.status().WithContext("login");
    if (credentials.username.empty()) {
      return Status(Code::kInvalidArgument, "login: no user name");
    }
    if (credentials.username.find(':') != std::string::npos) {
      return Status(Code::kInvalidArgument, "login: the user name cannot contain ':'");
    }
    if (credentials.password.empty()) {
      return Status(Code::kInvalidArgument, "login: empty password");
    }
    Result<std::string> authfile = AuthFileOr(options.auth_file);
    if (!authfile.ok()) return authfile.status().WithContext("login");
    RegistryOptions without_creds = options;
    without_creds.credentials.clear();
    Result<registry::RegistryOptions> reg = api::ToRegistryOptions(without_creds, {});
    if (!reg.ok()) return reg.status().WithContext("login " + target->key);
    const registry::Credentials creds{credentials.username, credentials.password};
    reg->credentials = creds;
    reg->auth_file.clear();  // the credentials are given; the file is only written
    Result<std::unique_ptr<registry::RegistryClient>> client =
        registry::RegistryClient::Create(target->ref, *reg);
    if (!client.ok()) return client.status().WithContext("login " + target->key);
    // The version check of the distribution API, with the credentials: a Basic registry checks
    // them itself; a token registry through its token server, for a token without scope.
    Result<std::unique_ptr<registry::HttpStream>> answer = (*client)->Send("GET", "/v2/", "", {});
    if (!answer.ok()) return answer.status().WithContext("login " + target->key);
    if ((*answer)->response().status != 200) {
      return registry::ErrorFromAnswer(**answer, "login " + target->key + ": GET /v2/");
    }
    Status stored = registry::StoreAuthFileEntry(*authfile, target->key, creds);
    if (!stored.ok()) return stored.WithContext("login " + target->key);
    return Status::OK();
  });
}

Result<bool> Logout(std::string_view registry, const std::string& auth_file) {
  return api::Guarded("logout", [&]() -> Result<bool> {
    Result<std::string> authfile = AuthFileOr(auth_file);
    if (!authfile.ok()) return authfile.status().WithContext("logout");
    Result<LoginTarget> target = ParseLoginTarget(registry);
    if (!target.ok()) return target.status().WithContext("logout");
    Result<bool> removed = registry::RemoveAuthFileEntry(*authfile, target->key);
    if (!removed.ok()) return removed.status().WithContext("logout " + target->key);
    return *removed;
  });
}

Result<size_t> LogoutAll(const std::string& auth_file) {
  return api::Guarded("logout", [&]() -> Result<size_t> {
    Result<std::string> authfile = AuthFileOr(auth_file);
    if (!authfile.ok()) return authfile.status().WithContext("logout");
    Result<size_t> n = registry::RemoveAllAuthFileEntries(*authfile);
    if (!n.ok()) return n.status().WithContext("logout");
    return *n;
  });
}

}  // namespace imgstore
