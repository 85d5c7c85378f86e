// FaultProxy: a loopback TCP proxy, run inside the test process, that stands between imgstore and
// a plain-http registry (tests/common/registry_fixture.h) and misbehaves on demand: it answers
// an HTTP status itself, drops a connection in the middle of a body, corrupts a response body,
// strips a request header, or throttles every transfer. It records what it saw, so that a test
// can assert how many attempts a retry made or that a resumed pull sent a Range header.
//
// How it decides: imgstore opens a new connection for every request, so the proxy reads the
// first request of each accepted connection (request line and headers), matches it against the
// rules, and applies the first rule that matches to the whole connection. Connections whose
// first bytes are not an HTTP request (the TLS probe of the registry client's scheme discovery)
// are forwarded untouched and not recorded as requests. A client that sent a second request on
// the same connection would have it forwarded under the first one's rule (imgstore does not).
//
// Example:
//
//   FaultProxy proxy;
//   ASSERT_TRUE(proxy.Start(registry.host(), &error)) << error;   // "127.0.0.1:PORT"
//   proxy.AddRule(FaultRule::Answer(500).For("GET", "/manifests/"));           // once
//   proxy.AddRule(FaultRule::Answer(429, {"Retry-After: 1"}).For("", "/blobs/").Times(2));
//   proxy.AddRule(FaultRule::DropResponseAfter(100 << 10).For("GET", layer_digest));
//   proxy.SetThrottle(40 << 20);  // 40 MiB/s in each direction, over all connections
//   ... imgstore pull proxy.host() + "/a/b:1" ...
//   EXPECT_EQ(proxy.CountRequests("GET", "/manifests/"), 2);
//   EXPECT_EQ(proxy.CountRequestsWithHeader("GET", layer_digest, "Range"), 1);
//
// THREADS: one acceptor thread, and one or two threads per open connection. Every public
// method is thread-safe and may be called while traffic flows; a rule added or a throttle set
// applies to connections accepted (throttle: bytes forwarded) from then on. The destructor (or
// Stop) closes the listening socket and every connection and joins every thread. Without rules
// and throttle the proxy only copies bytes (256 KiB at a time), at loopback speed.
//
// Only loopback: it listens on 127.0.0.1 and forwards to a target given as "127.0.0.1:PORT".
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace imgstore::testing {

// What the proxy does with a connection whose first request matches. Build one with the
// factories, then narrow it with For() and Times().
struct FaultRule {
  enum class Action {
    kForward,          // forward unchanged: what connections that match no rule get
    kAnswer,           // answer `status` itself; the target is not contacted
    kDropResponse,     // forward, but close both sides after `bytes` of response body
    kDropRequest,      // forward, but close both sides after `bytes` of request body
    kCorruptResponse,  // forward, flipping every byte of the response body at offset % 1024 == 0
    kRemoveRequestHeader,  // forward the request without header `header` (e.g. "Range")
  };

  // Answers HTTP `status` with `headers` ("Retry-After: 1", "WWW-Authenticate: Basic
  // realm=\"x\"") and `body` (default: a distribution-spec error, {"errors": [{"code":
  // "UNKNOWN", "message": "fault injected by the test proxy"}]}), with Connection: close.
  static FaultRule Answer(int status, std::vector<std::string> headers = {},
                          std::string body = kDefaultBody);
  static FaultRule DropResponseAfter(uint64_t body_bytes);
  static FaultRule DropRequestAfter(uint64_t body_bytes);
  static FaultRule CorruptResponse();
  static FaultRule RemoveRequestHeader(std::string name);

  // Only requests whose method and path (the request-target, query included) contain these
  // strings ("" matches anything): For("GET", "/blobs/sha256:ab").
  FaultRule& For(std::string method_contains, std::string path_contains);
  // Only the first n matching connections (default 1); -1: every one.
  FaultRule& Times(int n);

  static constexpr const char* kDefaultBody =
      R"({"errors":[{"code":"UNKNOWN","message":"fault injected by the test proxy"}]})";

  Action action = Action::kAnswer;
  std::string method;
  std::string path;
  int times = 1;
  int status = 500;
  std::vector<std::string> headers;
  std::string body;
  uint64_t bytes = 0;
  std::string header;
};

// The first request of a connection, as the proxy saw it (before any rule changed it).
struct SeenRequest {
  std::string method;                                        // "GET"
  std::string path;                                          // "/v2/a/b/blobs/sha256:..."
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased, in order
  std::string
      action;  // what the proxy did: "forward", "answer 500", "drop response after 102400"...

  // The first value of header `name` (any case), or "" when absent.
  std::string Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
};

class FaultProxy {
 public:
  FaultProxy();
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // Listens on 127.0.0.1 at a free port and forwards to `target` ("127.0.0.1:PORT"; need not be
  // listening yet, or at all: a connection the target refuses is closed at once). False with a
  // reason in *error when the target is not a loopback address or the socket cannot be made.
  bool Start(const std::string& target, std::string* error);
  // Stops accepting, closes every connection and joins every thread. Idempotent.
  void Stop();

  // "127.0.0.1:PORT" of the proxy: what imgstore is pointed at.
  const std::string& host() const { return host_; }
  int port() const { return port_; }

  // Appends a rule; the first rule (in order of addition) that matches a connection and has
  // uses left applies to it.
  void AddRule(FaultRule rule);
  void ClearRules();
  // At most bytes_per_second bytes per second in each direction, over all connections together
  // (0: unlimited, the default). Applies to every connection, whatever the rules.
  void SetThrottle(uint64_t bytes_per_second);

  // Connections accepted since Start (or ClearRecords), TLS probes included.
  int connections() const;
  // Connections currently open.
  int open_connections() const;
  // Bytes forwarded to imgstore / to the target since Start (or ClearRecords).
  uint64_t bytes_to_client() const { return bytes_to_client_.load(); }
  uint64_t bytes_to_target() const { return bytes_to_target_.load(); }
  // The requests seen, in order of arrival.
  std::vector<SeenRequest> Requests() const;
  // How many requests had a method and path containing these strings ("" matches anything).
  int CountRequests(std::string_view method_contains, std::string_view path_contains) const;
  // The same, counting only requests that carried header `name`.
  int CountRequestsWithHeader(std::string_view method_contains, std::string_view path_contains,
                              std::string_view name) const;
  // Forgets the requests seen and zeroes the counters (rules and throttle stay).
  void ClearRecords();

 private:
  struct Connection;
  enum class Dir { kToTarget = 0, kToClient = 1 };
  enum class End { kEof, kDropped, kFailed };

  void AcceptLoop();
  void ReapFinished(bool all);
  void Serve(Connection* c);
  void Forward(Connection* c, const FaultRule& rule, std::string head, std::string rest);
  // Copies from one side to the other until end of file or error, applying `rule` to the
  // direction `dir`. `initial` is sent first (as if it had been read).
  End Pump(Connection* c, Dir dir, const FaultRule& rule, std::string initial);
  bool SendThrottled(int fd, const char* data, size_t n, Dir dir);
  void Throttle(size_t n, Dir dir);
  // Shuts a side of a connection down (under mu_, so that it cannot race its close).
  void Shut(Connection* c, bool client, int how);
  bool Match(const SeenRequest& seen, FaultRule* rule);

  std::string target_host_;
  int target_port_ = 0;
  std::string host_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: wakes the acceptor for Stop
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;  // throttle waits, ended early by Stop
  std::vector<FaultRule> rules_;
  std::vector<SeenRequest> seen_;
  std::list<std::unique_ptr<Connection>> conns_;
  int accepted_ = 0;
  uint64_t throttle_ = 0;
  std::chrono::steady_clock::time_point next_free_[2];

  std::atomic<uint64_t> bytes_to_client_{0};
  std::atomic<uint64_t> bytes_to_target_{0};
};

}  // namespace imgstore::testing
