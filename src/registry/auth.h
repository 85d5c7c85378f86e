// Registry authentication: parsing WWW-Authenticate challenges, and the Authenticator that
// answers them for one registry: nothing (anonymous), Basic with the user's credentials, or the
// Bearer token flow of the distribution spec (docs/registry.md, "Auth").
//
// Tokens are cached per scope string ("repository:a/b:pull", or several scopes separated by
// spaces for a cross-repository mount) until shortly before they expire, so a pull asks the token
// server once per repository, not once per blob. A cached token that the registry refuses (it
// expired early, or was revoked) is dropped and a new one fetched; a token that lacks the scope
// (the registry says insufficient_scope, or it is refused on its first use) is an error naming
// the scope.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry/credentials.h"
#include "registry/http_client.h"
#include "util/status.h"

namespace imgstore::registry {

struct Challenge {
  std::string scheme;                         // lowercased: "basic", "bearer"
  std::map<std::string, std::string> params;  // names lowercased: realm, service, scope, error
};

// The challenges of WWW-Authenticate header values (RFC 7235: `Scheme k="v", k2=v2`, several
// challenges separated by commas). Malformed parts are skipped.
std::vector<Challenge> ParseChallenges(const std::vector<std::string>& header_values);

// "repository:NAME:pull" or "repository:NAME:pull,push".
std::string RepositoryScope(std::string_view path, std::string_view actions);

// The query of a token request: "service=S&scope=A&scope=B", one scope parameter per
// space-separated scope of `scope` (none when it is empty: a token for `GET /v2/` alone, as
// login asks), each value URL-escaped. No service parameter when `service` is empty.
std::string TokenQuery(const std::string& service, const std::string& scope);

class Authenticator {
 public:
  // registry: "127.0.0.1:5000", for messages. http is used for token requests and must outlive
  // this object.
  Authenticator(std::string registry, const HttpClient* http,
                std::optional<Credentials> credentials)
      : registry_(std::move(registry)), http_(http), credentials_(std::move(credentials)) {}

  // The Authorization value for a request needing `scope` ("" when none is known to be needed;
  // several scopes are separated by spaces): Basic once a Basic challenge was seen, a cached
  // unexpired token for Bearer ("" when there is none yet: the 401 that follows fetches it).
  std::string AuthorizationFor(const std::string& scope);

  // Learns from a 401 answer how to authenticate, and gets what is needed (a token for
  // `scope`, or a Basic header). OK means "retry the request with AuthorizationFor(scope)".
  // A refused token is kPermissionDenied "the token for SCOPE was refused (HTTP 401:
  // insufficient scope)" when the challenge says error="insufficient_scope" or when the token
  // was refused on its first use; otherwise (it served earlier requests, then expired early or
  // was revoked) it is dropped and a new one fetched. kPermissionDenied also when there is no
  // way (no credentials for Basic, an unknown scheme, a token server that refuses), naming the
  // registry and never a secret.
  Status OnUnauthorized(const HttpResponse& response, const std::string& scope);

  // Learns the scheme from the answer to `GET /v2/` (401 with a challenge, or 200: none).
  void OnPing(const HttpResponse& response);

  bool has_credentials() const { return credentials_.has_value(); }
  const std::string& username() const;

 private:
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
    // How many requests AuthorizationFor gave it to: a refusal of a token given once is a
    // refusal of its first use, so a new token would not do better.
    int handed_out = 0;
  };
  Status FetchToken(const Challenge& challenge, const std::string& scope);
  Status TokenRefused(const Challenge& challenge, const std::string& scope) const;

  std::string registry_;
  const HttpClient* http_;
  std::optional<Credentials> credentials_;
  bool basic_ = false;
  std::optional<Challenge> bearer_;  // the Bearer challenge (realm, service) once seen
  std::map<std::string, Token> tokens_;
};

}  // namespace imgstore::registry
