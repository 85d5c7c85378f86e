// TokenServer: a token server for tests of the registry's Bearer token auth (distribution's
// docs/spec/auth/token.md and jwt.md), so that docker-registry can run with `auth: token` and a
// client can be tested against the real token flow: an in-process HTTP server on 127.0.0.1 (its
// own thread; stopped and joined by the destructor) that answers
//   GET /token?service=S&scope=repository:NAME:pull,push&scope=...
// with {"token": JWT, "access_token": JWT, "expires_in": N, "issued_at": "..."}. It checks Basic
// credentials against its users (no Authorization: anonymous), grants each scope the actions the
// account's grants allow, and signs the JWT with RS256 (a fresh RSA key whose self-signed
// certificate it writes as the registry's rootcertbundle; the header carries it in x5c).
//
// Tests steer it while it runs (fewer actions than asked, short-lived tokens) and read what it
// was asked (requests and scopes), e.g. to assert that a pull asked one token per repository.
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/temp_dir.h"

namespace imgstore::testing {

// Who may do what: `account` ("" anonymous, "*" any authenticated user, else a user name) may
// do `actions` on the repositories matching `repository` (an fnmatch pattern: "a/*", "*").
struct TokenGrant {
  std::string account;
  std::string repository;
  std::vector<std::string> actions;
};

struct TokenServerConfig {
  std::map<std::string, std::string> users;  // name → password
  std::vector<TokenGrant> grants;
  std::string service = "imgstore-test-registry";
  std::string issuer = "imgstore-test-token-server";
  // How long the registry accepts a token after it is issued.
  std::chrono::seconds lifetime{300};
  // What answers say in expires_in; unset: lifetime. A larger value makes clients keep a token
  // past its real end (to test a token that the registry refuses while the client trusts it).
  std::optional<std::chrono::seconds> expires_in;
};

// What docker-registry's `auth: token` section needs.
struct RegistryTokenAuth {
  std::string realm;  // http://127.0.0.1:PORT/token
  std::string service;
  std::string issuer;
  std::string root_cert_bundle;  // PEM file with the signing certificate
};

class TokenServer {
 public:
  // distribution accepts a token until 60 s after its exp (and from 60 s before its nbf), for
  // clock skew; the server sets exp = issue time + lifetime - kRegistryLeeway so that a token
  // really ends `lifetime` after it was issued.
  static constexpr std::chrono::seconds kRegistryLeeway{60};

  // One token request as the server saw it.
  struct Request {
    std::string account;               // "" for anonymous, else the user (right password or not)
    std::vector<std::string> scopes;   // the scope parameters, in order
    int status = 0;                    // the HTTP status answered
    std::vector<std::string> granted;  // "repository:NAME:ACTIONS" for each scope granted
    // When the registry stops accepting the token (200 only).
    std::chrono::system_clock::time_point valid_until;
  };

  TokenServer() = default;
  ~TokenServer() { Stop(); }
  TokenServer(const TokenServer&) = delete;
  TokenServer& operator=(const TokenServer&) = delete;

  // Makes the key and certificate, binds 127.0.0.1 on a free port and starts serving. False
  // with a reason in *error otherwise.
  bool Start(const TokenServerConfig& config, std::string* error);
  void Stop();

  int port() const { return port_; }
  std::string realm() const;
  RegistryTokenAuth registry_auth() const;

  // While running: grant at most these actions whatever the grants say ({} grants nothing);
  // nullopt lifts the limit.
  void LimitActions(std::optional<std::vector<std::string>> actions);
  // While running: the lifetime of tokens issued from now on, and what expires_in says.
  void SetLifetime(std::chrono::seconds lifetime,
                   std::optional<std::chrono::seconds> expires_in = std::nullopt);

  std::vector<Request> requests() const;
  // How many requests asked for exactly this scope among their scope parameters.
  int RequestsFor(const std::string& scope) const;
  void ClearRequests();

 private:
  void Serve();
  void HandleConnection(int fd);
  // The HTTP answer (status line, headers, body) to one request head.
  std::string Answer(const std::string& head);
  // A signed JWT for `account` with `access` (the JSON array), valid from now on.
  std::string MakeJwt(const std::string& account, const std::string& access_json,
                      std::chrono::system_clock::time_point now,
                      std::chrono::system_clock::time_point exp);

  TempDir dir_;
  TokenServerConfig config_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};  // a pipe: Stop() writes, the server thread wakes and returns
  std::thread thread_;
  EVP_PKEY* key_ = nullptr;   // the signing key, owned
  std::string cert_der_b64_;  // the x5c entry

  mutable std::mutex mu_;  // guards what follows (steered and read by the test's thread)
  std::optional<std::vector<std::string>> limit_;
  std::vector<Request> requests_;
  uint64_t next_id_ = 0;
};

}  // namespace imgstore::testing
