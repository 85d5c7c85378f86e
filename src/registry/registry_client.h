// RegistryClient: requests to one registry's /v2/ API with the right scheme and authentication.
//
// On first use it pings `GET /v2/` to learn the scheme (https; plain http only for a loopback
// registry that does not speak TLS, or with tls_verify off) and the auth challenge; then each
// request carries what its scope needs, and a 401 is answered once (token fetched or Basic
// sent) before the request is retried. Pull uses GET; push (next increment) adds methods with
// bodies on the same path.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "images/reference.h"
#include "registry/auth.h"
#include "registry/http_client.h"
#include "registry/registry_options.h"
#include "util/status.h"

namespace imgstore::registry {

class RegistryClient {
 public:
  // A client for the registry of `ref` (its domain; docker.io is served by
  // registry-1.docker.io). Reads the credentials (options or auth files) and the cert dir; no
  // network traffic yet. Errors: a named --authfile or cert dir that cannot be read, a malformed
  // auth file.
  static Result<std::unique_ptr<RegistryClient>> Create(const images::Reference& ref,
                                                        const RegistryOptions& options);

  // "127.0.0.1:5000": the endpoint, for messages.
  const std::string& host() const { return host_; }

  // Sends `method` for `path` ("/v2/a/b/manifests/1") with the authorization that `scope`
  // needs, answering one 401. Follows up to max_redirects redirects (never carrying the
  // Authorization to another origin). Returns the stream whatever the HTTP status, except a 401
  // that could not be answered (kPermissionDenied naming the registry). Network errors name the
  // registry.
  Result<std::unique_ptr<HttpStream>> Send(const std::string& method, const std::string& path,
                                           const std::string& scope,
                                           const std::vector<std::string>& headers,
                                           int max_redirects = 0);

 private:
  RegistryClient(std::string host, HttpOptions http, bool tls_verify,
                 std::optional<Credentials> credentials);
  Status Ping();

  std::string host_;
  HttpClient http_;
  bool tls_verify_;
  bool loopback_;
  std::string base_;  // "https://host:port" once pinged
  Authenticator auth_;
};

// The error an unexpected HTTP answer means, naming `what` ("manifest a/b:1"), the status and
// the registry's error code and message when its body carries the spec's {"errors": [...]}:
// 404 kNotFound, 401/403 kPermissionDenied, 429 and 5xx kUnavailable, others kFailedPrecondition.
// Reads at most 64 KiB of the body.
Status ErrorFromAnswer(HttpStream& stream, const std::string& what);

// Whether host ("localhost:5000", "127.0.0.1", "[::1]:5000") is a loopback address.
bool IsLoopbackHost(std::string_view host);

}  // namespace imgstore::registry
