// HttpClient: the registry client's only door to the network, a small libcurl wrapper.
//
// Every exchange is an HttpStream: Open() returns once the final response's headers are in, and
// the body is then read like a file (Read), so that a multi-gigabyte blob streams through a
// bounded buffer into the store while a manifest is read whole under a hard cap (ReadAll).
// Redirects are followed by this code, not by libcurl, so that the Authorization header is
// provably never sent to another origin (registries redirect blob GETs to object storage).
//
// TLS is verified by default. Secrets (the Authorization value) never appear in an error
// message: errors name the method, the URL (which carries none) and libcurl's reason.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/env.h"
#include "util/status.h"

namespace imgstore::registry {

struct TlsConfig {
  bool verify = true;  // verify the peer's certificate and host name
  // PEM CA certificates trusted in addition to the system's (/etc/ssl/certs): the concatenated
  // *.crt of a certs.d directory. Empty: the system's only.
  std::string extra_ca_pem;
  std::string client_cert_file;  // PEM client certificate (certs.d client.cert), or ""
  std::string client_key_file;   // its key (client.key)
};

struct HttpOptions {
  TlsConfig tls;
  std::chrono::milliseconds connect_timeout{30000};
  // A transfer that moves no byte for this long is abandoned (a stalled registry). A transfer
  // paused because the reader is slow does not count as stalled.
  std::chrono::seconds stall_timeout{60};
  std::string user_agent = "imgstore/0.1";
  // Polled at least every 100 ms while a request waits for the network, so that a cancelled
  // pull or push stops even when no byte flows: true fails the request with kCancelled (never
  // retried). May be empty.
  std::function<bool()> cancelled;
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, POST, PUT, PATCH, DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"; never Authorization (see below)
  // The Authorization header's value ("Basic ...", "Bearer ..."), or "". Sent to the origin
  // (scheme, host, port) of `url` only: a redirect to another origin drops it.
  std::string authorization;
  int max_redirects = 0;  // 0: a 3xx answer is returned as it is
  // The request body, for POST, PUT and PATCH: `body` when body_stream is null (sent with
  // Content-Length, even when empty), else body_size bytes read from body_stream as the server
  // takes them (Content-Length: body_size), so a gigabyte blob streams through a bounded buffer.
  // A stream that ends early or fails aborts the request with its error. The stream must outlive
  // Open() and the returned HttpStream; a redirect of a streamed request is not followed
  // (kUnavailable: the body cannot be sent twice).
  std::string body;
  SequentialFile* body_stream = nullptr;
  uint64_t body_size = 0;
  // Called with the bytes of body_stream sent so far (progress of an upload); may be empty.
  std::function<void(uint64_t)> on_body_progress;
};

struct HttpResponse {
  long status = 0;
  std::string url;  // the URL that gave this answer (the last one after redirects)
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased, in order

  // The first value of header `name` (any case), or "" when absent.
  std::string Header(std::string_view name) const;
  // Every value of header `name`, in order.
  std::vector<std::string> Headers(std::string_view name) const;
};

// One request in flight. Not thread-safe; destroying it aborts the transfer.
class HttpStream {
 public:
  virtual ~HttpStream() = default;
  virtual const HttpResponse& response() const = 0;
  // Up to buf.size() bytes of the body (fewer only at the end); 0 at the end of the body. A
  // dropped connection or a stall is kUnavailable naming the URL.
  virtual Result<size_t> Read(std::span<std::byte> buf) = 0;
  // The rest of the body; kInvalidArgument "... larger than MAX bytes" as soon as it exceeds
  // max, without reading further.
  Result<std::string> ReadAll(size_t max);
};

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options) : options_(std::move(options)) {}

  // Sends the request and waits for the final answer's headers (after following up to
  // request.max_redirects redirects). Any HTTP status is a success here: the caller decides.
  // Errors: kUnavailable for a connection that could not be made or broke (refused, reset,
  // DNS, timeout), kPermissionDenied for a TLS certificate that is not trusted (saying how to
  // trust it), kInvalidArgument for a malformed URL or a redirect to a non-http(s) URL.
  // *tls_handshake_failed (when given) tells whether the error was a failed TLS handshake other
  // than an untrusted certificate, which is what an https request to a plain-http server gets:
  // the one case in which a loopback registry is retried over http.
  Result<std::unique_ptr<HttpStream>> Open(const HttpRequest& request,
                                           bool* tls_handshake_failed = nullptr) const;

  // Waits `delay` (a retry's backoff), waking at least every 100 ms to poll
  // options().cancelled: kCancelled naming `what` as soon as it says so, OK after the delay.
  Status Wait(std::chrono::milliseconds delay, const std::string& what) const;

  const HttpOptions& options() const { return options_; }

 private:
  HttpOptions options_;
};

// "https://host:port" of a URL (scheme and authority, lowercased), or "" if it has none: the
// unit to which credentials are bound.
std::string OriginOf(std::string_view url);

}  // namespace imgstore::registry
