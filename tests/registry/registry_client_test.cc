// RegistryClient's retry machinery: the backoff schedule, Retry-After and Content-Range parsing
// (pure), and Send's retries, ping, threads and origin rule against a FaultProxy that answers
// every request itself (no registry process: the proxy's target is a closed port).
#include "registry/registry_client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "common/fault_proxy.h"
#include "images/reference.h"

namespace imgstore::registry {
namespace {

using imgstore::testing::FaultProxy;
using imgstore::testing::FaultRule;
using imgstore::testing::SeenRequest;
using std::chrono::milliseconds;

RetryOptions Retry(int attempts, int initial_ms, int max_ms) {
  RetryOptions r;
  r.max_attempts = attempts;
  r.initial_delay = milliseconds(initial_ms);
  r.max_delay = milliseconds(max_ms);
  return r;
}

TEST(RetryDelay, DoublesFromInitialUpToMax) {
  const RetryOptions r = Retry(10, 100, 1000);
  std::vector<int64_t> got;
  for (int i = 1; i <= 7; ++i) got.push_back(RetryDelay(r, i).count());
  EXPECT_EQ(got, (std::vector<int64_t>{100, 200, 400, 800, 1000, 1000, 1000}));
  // A first delay above the cap is capped too.
  EXPECT_EQ(RetryDelay(Retry(3, 5000, 300), 1).count(), 300);
  EXPECT_EQ(RetryDelay(Retry(3, 0, 300), 4).count(), 0);
}

TEST(RetryDelay, LongerRetryAfterReplacesTheDelayWithinTheCap) {
  const RetryOptions r = Retry(10, 100, 1000);
  EXPECT_EQ(RetryDelay(r, 1, milliseconds(350)).count(), 350);
  EXPECT_EQ(RetryDelay(r, 3, milliseconds(50)).count(), 400);  // shorter: the schedule wins
  EXPECT_EQ(RetryDelay(r, 1, milliseconds(5000)).count(), 1000);
  EXPECT_EQ(RetryDelay(r, 2, milliseconds(0)).count(), 200);
}

TEST(ParseRetryAfter, DeltaSeconds) {
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(ParseRetryAfter("1", now), milliseconds(1000));
  EXPECT_EQ(ParseRetryAfter(" 120 ", now), milliseconds(120000));
  EXPECT_EQ(ParseRetryAfter("0", now), milliseconds(0));
  // Absurd values are bounded (to a day) instead of overflowing.
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", now), milliseconds(86400000));
  for (const char* bad : {"", " ", "-1", "1.5", "10s", "abc", "Sun, 06 Nov"}) {
    EXPECT_EQ(ParseRetryAfter(bad, now), std::nullopt) << bad;
  }
}

TEST(ParseRetryAfter, HttpDatesInAllThreeForms) {
  // 1994-11-06T08:49:07Z; the dates below are 30 s later.
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(784111747));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now), milliseconds(30000));
  EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now), milliseconds(30000));
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:49:37 1994", now), milliseconds(30000));
  // A date in the past asks for no wait.
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", now), milliseconds(0));
  for (const char* bad :
       {"Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 1994 08:49 GMT", "Sun, 06 Nov 1994"}) {
    EXPECT_EQ(ParseRetryAfter(bad, now), std::nullopt) << bad;
  }
}

TEST(ParseContentRange, AcceptsTheSpecFormOnly) {
  std::optional<ContentRange> r = ParseContentRange("bytes 100-199/200");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 100u);
  EXPECT_EQ(r->last, 199u);
  EXPECT_EQ(r->total, std::optional<uint64_t>(200));
  r = ParseContentRange("bytes 0-0/*");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->total, std::nullopt);
  for (const char* bad : {"", "bytes 5-4/10", "items 0-1/2", "bytes 0-9/9", "bytes a-b/c",
                          "bytes 100-/200", "bytes */200", "bytes 1-2"}) {
    EXPECT_EQ(ParseContentRange(bad), std::nullopt) << bad;
  }
}

// A loopback port with nothing listening: the proxy's target, never reached by these tests
// except where a test wants a connection the registry closes.
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A body for requests that stream one.
class StringFile final : public SequentialFile {
 public:
  explicit StringFile(std::string data) : SequentialFile("string"), data_(std::move(data)) {}
  Result<size_t> Read(std::span<std::byte> buf) override {
    size_t n = std::min(buf.size(), data_.size() - pos_);
    std::memcpy(buf.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  Status Skip(uint64_t n) override {
    pos_ = std::min<size_t>(data_.size(), pos_ + n);
    return Status::OK();
  }

 private:
  std::string data_;
  size_t pos_ = 0;
};

class SendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(proxy_.Start("127.0.0.1:" + std::to_string(ClosedPort()), &error)) << error;
  }

  // After the test's own rules: every other /v2/ request (the ping too) answers 200.
  void AnswerTheRestWith200() {
    proxy_.AddRule(FaultRule::Answer(200, {}, "{}").For("", "/v2/").Times(-1));
  }

  std::unique_ptr<RegistryClient> Client(RetryOptions retry,
                                         std::optional<Credentials> creds = std::nullopt) {
    Result<images::Reference> ref = images::ParseReference(proxy_.host() + "/a/b:1");
    EXPECT_TRUE(ref.ok()) << ref.status().ToString();
    RegistryOptions o;
    o.retry = retry;
    o.credentials = std::move(creds);
    Result<std::unique_ptr<RegistryClient>> c = RegistryClient::Create(*ref, o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  int Pings() {
    std::vector<SeenRequest> seen = proxy_.Requests();
    return static_cast<int>(std::count_if(seen.begin(), seen.end(), [](const SeenRequest& r) {
      return r.method == "GET" && r.path == "/v2/";
    }));
  }

  FaultProxy proxy_;
};

TEST_F(SendTest, PassingStatusesAreRetriedUntilAnotherAnswer) {
  proxy_.AddRule(FaultRule::Answer(503).For("GET", "/v2/a/b/blobs/x"));
  proxy_.AddRule(FaultRule::Answer(500).For("GET", "/v2/a/b/blobs/x"));
  proxy_.AddRule(FaultRule::Answer(404).For("GET", "/v2/a/b/blobs/x"));
  AnswerTheRestWith200();
  std::unique_ptr<RegistryClient> c = Client(Retry(4, 1, 10));
  ASSERT_TRUE(c);
  Result<std::unique_ptr<HttpStream>> s = c->Send("GET", "/v2/a/b/blobs/x", "", {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->response().status, 404);
  EXPECT_EQ(proxy_.CountRequests("GET", "/v2/a/b/blobs/x"), 3);
  EXPECT_EQ(c->base_url(), "http://" + proxy_.host());
}

TEST_F(SendTest, AfterTheLastAttemptTheLastAnswerIsReturned) {
  proxy_.AddRule(FaultRule::Answer(500).For("GET", "/v2/a/b/manifests/1").Times(-1));
  AnswerTheRestWith200();
  std::unique_ptr<RegistryClient> c = Client(Retry(3, 1, 10));
  ASSERT_TRUE(c);
  Result<std::unique_ptr<HttpStream>> s = c->Send("GET", "/v2/a/b/manifests/1", "", {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->response().status, 500);
  EXPECT_EQ(proxy_.CountRequests("GET", "/v2/a/b/manifests/1"), 3);
  Status err = ErrorFromAnswer(**s, "manifest " + proxy_.host() + "/a/b:1");
  EXPECT_EQ(err.code(), Code::kUnavailable);
  EXPECT_EQ(err.message(), "manifest " + proxy_.host() +
                               "/a/b:1: HTTP 500 (UNKNOWN: fault injected by the test proxy)");
}

TEST_F(SendTest, NoRetryWhenTheCallerWantsTheFirstAnswerOrStreamsTheBody) {
  proxy_.AddRule(FaultRule::Answer(503).For("", "/v2/a/b/blobs/uploads/").Times(-1));
  AnswerTheRestWith200();
  std::unique_ptr<RegistryClient> c = Client(Retry(4, 1, 10));
  ASSERT_TRUE(c);
  RegistryClient::Request r;
  r.method = "POST";
  r.target = "/v2/a/b/blobs/uploads/";
  r.retry_status = false;
  Result<std::unique_ptr<HttpStream>> s = c->Send(r);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->response().status, 503);
  EXPECT_EQ(proxy_.CountRequests("POST", "/v2/a/b/blobs/uploads/"), 1);

  StringFile body("0123456789");
  RegistryClient::Request put;
  put.method = "PUT";
  put.target = "/v2/a/b/blobs/uploads/u1";
  put.body_stream = &body;
  put.body_size = 10;
  s = c->Send(put);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->response().status, 503);
  EXPECT_EQ(proxy_.CountRequests("PUT", "/v2/a/b/blobs/uploads/u1"), 1);

  // The same request without a stream is retried.
  put.body_stream = nullptr;
  put.body = "0123456789";
  s = c->Send(put);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(proxy_.CountRequests("PUT", "/v2/a/b/blobs/uploads/u1"), 1 + 4);
}

TEST_F(SendTest, RetryAfterIsHonoured) {
  proxy_.AddRule(FaultRule::Answer(429, {"Retry-After: 1"}).For("GET", "/v2/a/b/blobs/x"));
  AnswerTheRestWith200();
  std::unique_ptr<RegistryClient> c = Client(Retry(2, 1, 30000));
  ASSERT_TRUE(c);
  const auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<HttpStream>> s = c->Send("GET", "/v2/a/b/blobs/x", "", {});
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->response().status, 200);
  EXPECT_EQ(proxy_.CountRequests("GET", "/v2/a/b/blobs/x"), 2);
  EXPECT_GE(took, milliseconds(900));
}

TEST_F(SendTest, ACancelEndsTheBackoffAtOnce) {
  // A 429 that asks for a minute: the wait must end when the caller cancels, not after it.
  proxy_.AddRule(FaultRule::Answer(429, {"Retry-After: 60"}).For("GET", "/v2/a/b/blobs/x"));
  AnswerTheRestWith200();
  Result<images::Reference> ref = images::ParseReference(proxy_.host() + "/a/b:1");
  ASSERT_TRUE(ref.ok());
  std::atomic<bool> cancel{false};
  RegistryOptions o;
  o.retry = Retry(3, 1, 120000);
  o.http.cancelled = [&cancel] { return cancel.load(); };
  Result<std::unique_ptr<RegistryClient>> c = RegistryClient::Create(*ref, o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::thread canceller([&] {
    // Cancels once the first answer has been seen, so the client is in its backoff.
    while (proxy_.CountRequests("GET", "/v2/a/b/blobs/x") < 1) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    cancel = true;
  });
  Result<std::unique_ptr<HttpStream>> s = (*c)->Send("GET", "/v2/a/b/blobs/x", "", {});
  canceller.join();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kCancelled) << s.status().ToString();
  EXPECT_EQ(s.status().message(), "GET /v2/a/b/blobs/x: cancelled");
  EXPECT_EQ(proxy_.CountRequests("GET", "/v2/a/b/blobs/x"), 1);
}

TEST_F(SendTest, ConnectionFailuresAreRetriedAndNamed) {
  // No rule for this path: the proxy forwards it to the closed port and drops the connection.
  proxy_.AddRule(FaultRule::Answer(200, {}, "{}").For("GET", "/v2/").Times(1));  // the ping
  std::unique_ptr<RegistryClient> c = Client(Retry(3, 1, 10));
  ASSERT_TRUE(c);
  Result<std::unique_ptr<HttpStream>> s = c->Send("GET", "/v2/a/b/blobs/x", "", {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnavailable);
  EXPECT_EQ(proxy_.CountRequests("GET", "/v2/a/b/blobs/x"), 3);
  const std::string& m = s.status().message();
  EXPECT_TRUE(m.starts_with("registry " + proxy_.host() + ": GET http://" + proxy_.host() +
                            "/v2/a/b/blobs/x: "))
      << m;
  EXPECT_TRUE(m.ends_with(" (3 attempts)")) << m;
}

TEST_F(SendTest, ThePingIsRetriedAndMadeOnceForAllThreads) {
  proxy_.AddRule(FaultRule::Answer(503).For("GET", "/v2/").Times(2));
  AnswerTheRestWith200();
  std::unique_ptr<RegistryClient> c = Client(Retry(3, 1, 10));
  ASSERT_TRUE(c);
  constexpr int kThreads = 8;
  constexpr int kEach = 5;
  std::vector<int> ok(kThreads, 0);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          Result<std::unique_ptr<HttpStream>> s =
              c->Send("GET", "/v2/a/b/blobs/t" + std::to_string(t), "", {});
          if (s.ok() && (*s)->response().status == 200) ++ok[t];
        }
      });
    }
  }
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(ok[t], kEach) << "thread " << t;
  EXPECT_EQ(Pings(), 3);  // two 503s, then the one that answered for everybody
  EXPECT_EQ(proxy_.CountRequests("GET", "/v2/a/b/blobs/t"), kThreads * kEach);
}

TEST_F(SendTest, APingThatKeepsFailingIsAnErrorNamingTheRegistry) {
  proxy_.AddRule(FaultRule::Answer(502).For("GET", "/v2/").Times(-1));
  std::unique_ptr<RegistryClient> c = Client(Retry(2, 1, 10));
  ASSERT_TRUE(c);
  Result<std::unique_ptr<HttpStream>> s = c->Send("GET", "/v2/a/b/manifests/1", "", {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnavailable);
  EXPECT_EQ(s.status().message(), "registry " + proxy_.host() + ": GET http://" + proxy_.host() +
                                      "/v2/ answered HTTP 502 (2 attempts)");
  EXPECT_EQ(Pings(), 2);
}

TEST_F(SendTest, AuthorizationGoesToTheRegistryOriginOnly) {
  FaultProxy other;
  std::string error;
  ASSERT_TRUE(other.Start("127.0.0.1:" + std::to_string(ClosedPort()), &error)) << error;
  other.AddRule(FaultRule::Answer(202, {}, "").Times(-1));
  // The ping learns that the registry wants Basic credentials.
  proxy_.AddRule(
      FaultRule::Answer(401, {"WWW-Authenticate: Basic realm=\"test\""}).For("GET", "/v2/"));
  AnswerTheRestWith200();
  std::unique_ptr<RegistryClient> c = Client(Retry(1, 1, 10), Credentials{"u", "pw"});
  ASSERT_TRUE(c);
  Result<std::unique_ptr<HttpStream>> s = c->Send("GET", "/v2/a/b/manifests/1", "", {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  RegistryClient::Request r;
  r.method = "PUT";
  r.target = "http://" + proxy_.host() + "/v2/a/b/blobs/uploads/u1?digest=x";
  s = c->Send(r);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  r.target = "http://" + other.host() + "/v2/a/b/blobs/uploads/u1?digest=x";
  s = c->Send(r);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->response().status, 202);

  EXPECT_EQ(proxy_.CountRequestsWithHeader("GET", "/v2/a/b/manifests/1", "Authorization"), 1);
  EXPECT_EQ(proxy_.CountRequestsWithHeader("PUT", "/v2/a/b/blobs/uploads/u1", "Authorization"), 1);
  EXPECT_EQ(other.CountRequests("PUT", "/v2/a/b/blobs/uploads/u1"), 1);
  EXPECT_EQ(other.CountRequestsWithHeader("", "", "Authorization"), 0);
}

}  // namespace
}  // namespace imgstore::registry
