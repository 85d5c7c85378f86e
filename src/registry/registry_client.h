// RegistryClient: requests to one registry's /v2/ API with the right scheme and authentication.
//
// On first use it pings `GET /v2/` to learn the scheme (https; plain http only for a loopback
// registry that does not speak TLS, or with tls_verify off) and the auth challenge; then each
// request carries what its scope needs, and a 401 is answered once (token fetched or Basic
// sent) before the request is retried. Requests that fail for a passing reason (connection
// error, 5xx, 429) are retried with backoff (RetryOptions), except those with a streamed body,
// whose caller owns the retry (it must reopen the stream).
//
// THREADS: a RegistryClient is shared by the threads of one pull or push (parallel blobs): Send
// may be called from several threads at once; the ping and the Authenticator's state are
// guarded by a mutex that is never held while a request is in flight except the ping itself
// and a token fetch (the other threads need that token too). A 401 that another thread has
// already answered for the same scope is not answered twice: the request is sent again with
// the new authorization.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
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

  struct Request {
    std::string method = "GET";
    // "/v2/..." (relative to the registry), or an absolute URL (an upload's Location). An
    // absolute URL of another origin gets no Authorization.
    std::string target;
    // The scopes the request needs, separated by spaces ("repository:a/b:pull,push
    // repository:c/d:pull" for a mount): one token is fetched for all of them.
    std::string scope;
    std::vector<std::string> headers;
    int max_redirects = 0;
    // Body, as HttpRequest. With body_stream set nothing is retried, and a 401 is returned as
    // kPermissionDenied (the body is gone): the caller makes sure the scope's authorization is
    // known first, e.g. by the upload's POST, which needs the same scope.
    std::string body;
    SequentialFile* body_stream = nullptr;
    uint64_t body_size = 0;
    std::function<void(uint64_t)> on_body_progress;
    // Whether an HTTP 5xx or 429 answer is retried (connection errors always are, for requests
    // without a streamed body). A caller that must see the first answer sets false.
    bool retry_status = true;
  };
  // The general form of Send. Retries (RetryOptions; docs/registry.md, "Retries and faults"):
  // a connection that could not be made or broke (kUnavailable) is tried again, and so is an
  // HTTP 5xx or 429 answer when retry_status, up to retry().max_attempts attempts in all, after
  // RetryDelay (the answer's Retry-After counts); the ping is retried the same way. A request
  // with a body_stream is sent once. Errors as above; after the last attempt, the error of the
  // last attempt (an HTTP status is returned as the stream, for the caller's ErrorFromAnswer).
  Result<std::unique_ptr<HttpStream>> Send(const Request& request);

  // "https://127.0.0.1:5000" once the ping has been made (empty before).
  std::string base_url() const;
  const RetryOptions& retry() const { return retry_; }
  // True once the pull or push this client serves is cancelled (HttpOptions::cancelled).
  bool cancelled() const { return http_.options().cancelled && http_.options().cancelled(); }

 private:
  RegistryClient(std::string host, HttpOptions http, bool tls_verify,
                 std::optional<Credentials> credentials, RetryOptions retry);
  // The ping, retried like a request; called with mu_ held.
  Status PingWithRetries();
  // One `GET /v2/` per scheme; *retry_after is set from a 429/5xx answer's Retry-After.
  Status Ping(std::optional<std::chrono::milliseconds>* retry_after);
  // One attempt of a request: send, answering 401s (no retry for passing failures).
  Result<std::unique_ptr<HttpStream>> SendOnce(const Request& request, const std::string& base);

  const std::string host_;
  const RetryOptions retry_;
  const HttpClient http_;
  const bool tls_verify_;
  const bool loopback_;
  mutable std::mutex mu_;
  std::string base_;    // "https://host:port" once pinged; guarded by mu_
  Authenticator auth_;  // guarded by mu_
  // Per scope, how many 401s were answered (guarded by mu_): a request whose 401 comes after
  // another thread answered one for its scope just tries the new authorization.
  std::map<std::string, uint64_t> auth_generation_;
};

// The delay before retry number `retry` (1: the first retry, after the first attempt):
// initial_delay doubled per retry and capped at max_delay; a `retry_after` (the registry's
// Retry-After) that is longer replaces it, still capped at max_delay.
std::chrono::milliseconds RetryDelay(const RetryOptions& options, int retry,
                                     std::optional<std::chrono::milliseconds> retry_after = {});

// A Retry-After value (RFC 9110: delta-seconds, or an HTTP-date in IMF-fixdate, RFC 850 or
// asctime form) as the delay it asks for, counted from `now`; a date already past is 0.
// nullopt when the value is empty or malformed (the computed delay then applies).
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

// A Content-Range value of a 206 answer: "bytes FIRST-LAST/TOTAL" (TOTAL may be "*").
struct ContentRange {
  uint64_t first = 0;
  uint64_t last = 0;
  std::optional<uint64_t> total;  // nullopt for "*"
};
// nullopt when malformed (including LAST < FIRST, or TOTAL not past LAST).
std::optional<ContentRange> ParseContentRange(std::string_view value);

// The error an unexpected HTTP answer means, naming `what` ("manifest a/b:1"), the status and
// the registry's error code and message when its body carries the spec's {"errors": [...]}:
// 404 kNotFound, 401/403 kPermissionDenied, 429 and 5xx kUnavailable, others kFailedPrecondition.
// Reads at most 64 KiB of the body.
Status ErrorFromAnswer(HttpStream& stream, const std::string& what);

// Whether host ("localhost:5000", "127.0.0.1", "[::1]:5000") is a loopback address.
bool IsLoopbackHost(std::string_view host);

}  // namespace imgstore::registry
