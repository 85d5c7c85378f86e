// HttpClient request bodies against a tiny HTTP/1.1 server on 127.0.0.1 written here, which
// records each request exactly as it came off the socket (method, headers, body bytes, whether
// the body was complete) and answers what the test says: string bodies, streamed bodies of a
// known size with progress, a stream that ends early or fails, a redirect of a streamed body.
#include "registry/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace imgstore::registry {
namespace {

struct SeenRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  bool complete = false;  // all Content-Length bytes arrived
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One connection at a time, one request per connection (the answer closes it).
class LoopbackServer {
 public:
  // Returns the raw answer ("HTTP/1.1 201 Created\r\n...") to a complete request.
  using Handler = std::function<std::string(const SeenRequest&)>;

  explicit LoopbackServer(Handler handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }

  ~LoopbackServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  // The requests seen once there are at least n of them (fails the test after 20 s).
  std::vector<SeenRequest> WaitFor(size_t n) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(20), [&] { return seen_.size() >= n; })) {
      ADD_FAILURE() << "the server saw " << seen_.size() << " requests, not " << n;
    }
    return seen_;
  }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;  // bounded, so that stop_ is seen
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      timeval tv{10, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      Serve(c);
      ::close(c);
    }
  }

  void Serve(int c) {
    std::string in;
    char buf[65536];
    size_t head_end = std::string::npos;
    while (head_end == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
      head_end = in.find("\r\n\r\n");
    }
    SeenRequest r;
    std::string head = in.substr(0, head_end);
    size_t eol = head.find("\r\n");
    std::string line = head.substr(0, eol);
    r.method = line.substr(0, line.find(' '));
    r.target = line.substr(line.find(' ') + 1);
    r.target = r.target.substr(0, r.target.rfind(' '));
    for (size_t pos = eol; pos != std::string::npos && pos < head.size();) {
      size_t next = head.find("\r\n", pos + 2);
      std::string h =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      size_t colon = h.find(':');
      if (colon != std::string::npos) {
        std::string v = h.substr(colon + 1);
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        r.headers[Lower(h.substr(0, colon))] = v;
      }
      pos = next;
    }
    r.body = in.substr(head_end + 4);
    const size_t want =
        r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (r.body.size() < want) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      r.body.append(buf, static_cast<size_t>(n));
    }
    r.complete = r.body.size() == want;
    std::string answer = r.complete ? handler_(r) : "";
    {
      std::lock_guard lock(mu_);
      seen_.push_back(r);
    }
    cv_.notify_all();
    for (size_t off = 0; off < answer.size();) {
      ssize_t n = ::send(c, answer.data() + off, answer.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SeenRequest> seen_;
};

std::string Answer(const std::string& status, const std::string& headers = "",
                   const std::string& body = "") {
  return "HTTP/1.1 " + status + "\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// A body from memory; after `end` bytes it ends (or fails with `error` when set).
class MemBody : public SequentialFile {
 public:
  MemBody(std::string bytes, size_t end, Status error = Status::OK())
      : SequentialFile("test-body"), bytes_(std::move(bytes)), end_(end), error_(error) {}
  Result<size_t> Read(std::span<std::byte> buf) override {
    if (pos_ >= end_ && !error_.ok()) return error_;
    size_t n = std::min(buf.size(), end_ - pos_);
    std::memcpy(buf.data(), bytes_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  Status Skip(uint64_t) override { return Status(Code::kUnsupported, "no skip"); }

 private:
  std::string bytes_;
  size_t end_;
  Status error_;
  size_t pos_ = 0;
};

std::string RandomBytes(size_t n) {
  std::mt19937 rng(7);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

TEST(HttpClientBody, StringBodyIsSentWithItsLengthAndWithoutExpect) {
  LoopbackServer server([](const SeenRequest&) {
    return Answer("202 Accepted", "Location: /v2/a/uploads/1?_state=x\r\n");
  });
  HttpClient client{HttpOptions{}};
  HttpRequest req;
  req.method = "PUT";
  req.url = server.url("/v2/a/manifests/1");
  req.headers = {"Content-Type: application/vnd.oci.image.manifest.v1+json"};
  req.body = std::string(200 << 10, 'm');  // large enough for libcurl to want a 100-continue
  Result<std::unique_ptr<HttpStream>> s = client.Open(req);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->response().status, 202);
  EXPECT_EQ((*s)->response().Header("location"), "/v2/a/uploads/1?_state=x");
  std::vector<SeenRequest> seen = server.WaitFor(1);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "PUT");
  EXPECT_EQ(seen[0].target, "/v2/a/manifests/1");
  EXPECT_TRUE(seen[0].complete);
  EXPECT_EQ(seen[0].body, req.body);
  EXPECT_EQ(seen[0].headers["content-length"], std::to_string(req.body.size()));
  EXPECT_EQ(seen[0].headers["content-type"], "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(seen[0].headers.count("expect"), 0u);
  EXPECT_EQ(seen[0].headers.count("transfer-encoding"), 0u);
}

TEST(HttpClientBody, EmptyPostSaysContentLengthZeroAndDeleteSendsNoBody) {
  LoopbackServer server([](const SeenRequest&) { return Answer("202 Accepted"); });
  HttpClient client{HttpOptions{}};
  HttpRequest post;
  post.method = "POST";
  post.url = server.url("/v2/a/blobs/uploads/");
  ASSERT_TRUE(client.Open(post).ok());
  HttpRequest del;
  del.method = "DELETE";
  del.url = server.url("/v2/a/blobs/uploads/1");
  ASSERT_TRUE(client.Open(del).ok());
  std::vector<SeenRequest> seen = server.WaitFor(2);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].headers["content-length"], "0");
  EXPECT_EQ(seen[0].headers.count("content-type"), 0u);  // no form type of libcurl's own
  EXPECT_EQ(seen[1].method, "DELETE");
  EXPECT_EQ(seen[1].body, "");
  EXPECT_EQ(seen[1].headers.count("transfer-encoding"), 0u);
}

TEST(HttpClientBody, StreamedBodyArrivesWholeWithProgress) {
  LoopbackServer server([](const SeenRequest&) {
    return Answer("201 Created", "Docker-Content-Digest: sha256:00\r\n");
  });
  HttpClient client{HttpOptions{}};
  const std::string blob = RandomBytes(3 << 20);  // several of libcurl's upload buffers
  for (const char* method : {"PUT", "PATCH"}) {
    SCOPED_TRACE(method);
    MemBody body(blob, blob.size());
    std::vector<uint64_t> progress;
    HttpRequest req;
    req.method = method;
    req.url = server.url("/v2/a/blobs/uploads/1?_state=s&digest=sha256:00");
    req.headers = {"Content-Type: application/octet-stream"};
    req.body_stream = &body;
    req.body_size = blob.size();
    req.on_body_progress = [&](uint64_t n) { progress.push_back(n); };
    Result<std::unique_ptr<HttpStream>> s = client.Open(req);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ((*s)->response().status, 201);
    ASSERT_FALSE(progress.empty());
    EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
    EXPECT_EQ(progress.back(), blob.size());
    EXPECT_GT(progress.size(), 1u);  // reported as it went, not once at the end
  }
  std::vector<SeenRequest> seen = server.WaitFor(2);
  ASSERT_EQ(seen.size(), 2u);
  for (const SeenRequest& r : seen) {
    EXPECT_TRUE(r.complete);
    EXPECT_TRUE(r.body == blob) << r.method << ": " << r.body.size() << " bytes";
    EXPECT_EQ(r.headers.at("content-length"), std::to_string(blob.size()));
    EXPECT_EQ(r.target, "/v2/a/blobs/uploads/1?_state=s&digest=sha256:00");
  }
  EXPECT_EQ(seen[1].method, "PATCH");
}

TEST(HttpClientBody, StreamThatEndsEarlyOrFailsAbortsWithItsError) {
  LoopbackServer server([](const SeenRequest&) { return Answer("201 Created"); });
  HttpClient client{HttpOptions{}};
  const std::string blob = RandomBytes(256 << 10);
  {
    MemBody body(blob, 100 << 10);  // ends at 100 KiB of 256
    HttpRequest req;
    req.method = "PUT";
    req.url = server.url("/up");
    req.body_stream = &body;
    req.body_size = blob.size();
    Result<std::unique_ptr<HttpStream>> s = client.Open(req);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), Code::kCorruption) << s.status().ToString();
    EXPECT_NE(s.status().message().find("ended after 102400 of 262144 bytes"), std::string::npos)
        << s.status().ToString();
    EXPECT_NE(s.status().message().find("PUT " + req.url), std::string::npos);
  }
  {
    MemBody body(blob, 10 << 10, Status(Code::kIOError, "read test-body: Input/output error"));
    HttpRequest req;
    req.method = "PATCH";
    req.url = server.url("/up2");
    req.body_stream = &body;
    req.body_size = blob.size();
    Result<std::unique_ptr<HttpStream>> s = client.Open(req);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), Code::kIOError) << s.status().ToString();
    EXPECT_NE(s.status().message().find("Input/output error"), std::string::npos);
  }
  // The server saw both bodies cut short, and answered neither.
  std::vector<SeenRequest> seen = server.WaitFor(2);
  ASSERT_EQ(seen.size(), 2u);
  for (const SeenRequest& r : seen) {
    EXPECT_FALSE(r.complete) << r.method;
    EXPECT_LT(r.body.size(), blob.size());
  }
}

TEST(HttpClientBody, StreamedBodyIsNotRedirectedButAStringBodyIs) {
  LoopbackServer server([](const SeenRequest& r) {
    if (r.target == "/first") return Answer("307 Temporary Redirect", "Location: /second\r\n");
    return Answer("201 Created");
  });
  HttpClient client{HttpOptions{}};
  const std::string blob = RandomBytes(4096);
  MemBody body(blob, blob.size());
  HttpRequest req;
  req.method = "PUT";
  req.url = server.url("/first");
  req.body_stream = &body;
  req.body_size = blob.size();
  req.max_redirects = 3;
  Result<std::unique_ptr<HttpStream>> s = client.Open(req);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnavailable) << s.status().ToString();
  EXPECT_NE(s.status().message().find("307"), std::string::npos) << s.status().ToString();
  // Without max_redirects the 3xx is simply the answer.
  MemBody body2(blob, blob.size());
  req.body_stream = &body2;
  req.max_redirects = 0;
  s = client.Open(req);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->response().status, 307);
  // A string body can be sent again: the redirect is followed with it.
  HttpRequest str;
  str.method = "PUT";
  str.url = server.url("/first");
  str.body = blob;
  str.max_redirects = 3;
  s = client.Open(str);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->response().status, 201);
  std::vector<SeenRequest> seen = server.WaitFor(4);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].target, "/first");
  EXPECT_EQ(seen[1].target, "/first");
  EXPECT_EQ(seen[2].target, "/first");
  EXPECT_EQ(seen[3].target, "/second");
  EXPECT_EQ(seen[3].method, "PUT");
  EXPECT_EQ(seen[3].body, blob);
}

TEST(HttpClientBody, GetStillReadsTheAnswerBody) {
  LoopbackServer server([](const SeenRequest&) { return Answer("200 OK", "", "hello"); });
  HttpClient client{HttpOptions{}};
  HttpRequest req;
  req.url = server.url("/v2/");
  Result<std::unique_ptr<HttpStream>> s = client.Open(req);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Result<std::string> body = (*s)->ReadAll(1024);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_EQ(*body, "hello");
  std::vector<SeenRequest> seen = server.WaitFor(1);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].headers.count("content-length"), 0u);
}

}  // namespace
}  // namespace imgstore::registry
