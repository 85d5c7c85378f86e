// FaultProxy (see fault_proxy.h): blocking sockets, a thread per direction of each connection;
// Stop() wakes blocked calls by shutting the sockets down (never by closing them under another
// thread's feet: a closed descriptor number can be reused at once).
#include "common/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace imgstore::testing {
namespace {

constexpr size_t kBufferBytes = 256 * 1024;
// A request head larger than this is not an imgstore request: forwarded as it is.
constexpr size_t kMaxHead = 64 * 1024;
constexpr auto kHeadTimeout = std::chrono::seconds(10);
// How long the client may go on sending (an upload's body) after the proxy answered it.
constexpr auto kDrainTimeout = std::chrono::seconds(5);

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Whether the first bytes of a connection can be the start of an HTTP request ("GET /...").
bool LooksLikeHttp(std::string_view data) {
  size_t i = 0;
  while (i < data.size() && data[i] >= 'A' && data[i] <= 'Z') ++i;
  return i > 0 && (i == data.size() || data[i] == ' ');
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

ssize_t ReadSome(int fd, char* buf, size_t n) {
  while (true) {
    ssize_t r = ::read(fd, buf, n);
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

void NoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Parses "METHOD PATH HTTP/1.1\r\nName: value\r\n...\r\n\r\n".
SeenRequest ParseHead(std::string_view head) {
  SeenRequest r;
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  size_t sp2 = line.find(' ', sp1 == std::string_view::npos ? line.size() : sp1 + 1);
  r.method = std::string(line.substr(0, sp1));
  if (sp1 != std::string_view::npos) r.path = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string_view::npos) end = head.size();
    std::string_view h = head.substr(pos, end - pos);
    size_t colon = h.find(':');
    if (colon != std::string_view::npos) {
      r.headers.emplace_back(Lower(Trim(h.substr(0, colon))),
                             std::string(Trim(h.substr(colon + 1))));
    }
    pos = end + 2;
  }
  return r;
}

// The head without the lines of header `name`.
std::string WithoutHeader(std::string_view head, std::string_view name) {
  const std::string want = Lower(name);
  std::string out;
  size_t pos = 0;
  bool first = true;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    end = end == std::string_view::npos ? head.size() : end + 2;
    std::string_view line = head.substr(pos, end - pos);
    size_t colon = line.find(':');
    bool drop =
        !first && colon != std::string_view::npos && Lower(Trim(line.substr(0, colon))) == want;
    if (!drop) out.append(line);
    first = false;
    pos = end;
  }
  return out;
}

std::string Describe(const FaultRule& rule) {
  switch (rule.action) {
    case FaultRule::Action::kForward:
      return "forward";
    case FaultRule::Action::kAnswer:
      return "answer " + std::to_string(rule.status);
    case FaultRule::Action::kDropResponse:
      return "drop response after " + std::to_string(rule.bytes);
    case FaultRule::Action::kDropRequest:
      return "drop request after " + std::to_string(rule.bytes);
    case FaultRule::Action::kCorruptResponse:
      return "corrupt response";
    case FaultRule::Action::kRemoveRequestHeader:
      return "remove request header " + rule.header;
  }
  return "forward";
}

// Finds where the body of an HTTP message starts in a byte stream that arrives in pieces,
// skipping interim (1xx) responses. Only used when a rule counts or changes body bytes.
class BodyFinder {
 public:
  explicit BodyFinder(bool response) : response_(response) {}
  // Consumes head bytes of data; returns how many of them belong to a head (the rest, if any,
  // is body).
  size_t Feed(std::string_view data) {
    if (in_body_) return 0;
    size_t i = 0;
    while (i < data.size() && !in_body_) {
      head_ += data[i++];
      if (head_.ends_with("\r\n\r\n")) {
        // "HTTP/1.1 100 Continue": another head follows.
        bool interim = response_ && head_.size() > 9 && head_[9] == '1';
        head_.clear();
        in_body_ = !interim;
      } else if (head_.size() > kMaxHead) {
        in_body_ = true;
      }
    }
    return i;
  }
  bool in_body() const { return in_body_; }

 private:
  bool response_;
  bool in_body_ = false;
  std::string head_;
};

}  // namespace

FaultRule FaultRule::Answer(int status, std::vector<std::string> headers, std::string body) {
  FaultRule r;
  r.action = Action::kAnswer;
  r.status = status;
  r.headers = std::move(headers);
  r.body = std::move(body);
  return r;
}

FaultRule FaultRule::DropResponseAfter(uint64_t body_bytes) {
  FaultRule r;
  r.action = Action::kDropResponse;
  r.bytes = body_bytes;
  return r;
}

FaultRule FaultRule::DropRequestAfter(uint64_t body_bytes) {
  FaultRule r;
  r.action = Action::kDropRequest;
  r.bytes = body_bytes;
  return r;
}

FaultRule FaultRule::CorruptResponse() {
  FaultRule r;
  r.action = Action::kCorruptResponse;
  return r;
}

FaultRule FaultRule::RemoveRequestHeader(std::string name) {
  FaultRule r;
  r.action = Action::kRemoveRequestHeader;
  r.header = std::move(name);
  return r;
}

FaultRule& FaultRule::For(std::string method_contains, std::string path_contains) {
  method = std::move(method_contains);
  path = std::move(path_contains);
  return *this;
}

FaultRule& FaultRule::Times(int n) {
  times = n;
  return *this;
}

std::string SeenRequest::Header(std::string_view name) const {
  const std::string want = Lower(name);
  for (const auto& [k, v] : headers) {
    if (k == want) return v;
  }
  return "";
}

bool SeenRequest::HasHeader(std::string_view name) const {
  const std::string want = Lower(name);
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return h.first == want; });
}

struct FaultProxy::Connection {
  int client = -1;    // guarded by FaultProxy::mu_ (set to -1 when closed)
  int upstream = -1;  // likewise
  std::thread thread;
  std::atomic<bool> done{false};
};

FaultProxy::FaultProxy() = default;

FaultProxy::~FaultProxy() { Stop(); }

bool FaultProxy::Start(const std::string& target, std::string* error) {
  size_t colon = target.rfind(':');
  if (colon == std::string::npos || target.substr(0, colon) != "127.0.0.1") {
    *error = "fault proxy: the target must be 127.0.0.1:PORT, not \"" + target + "\"";
    return false;
  }
  target_host_ = target.substr(0, colon);
  target_port_ = std::atoi(target.c_str() + colon + 1);
  if (target_port_ <= 0 || target_port_ > 65535) {
    *error = "fault proxy: bad target port in \"" + target + "\"";
    return false;
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (listen_fd_ < 0 || wake_fd_ < 0) {
    *error = std::string("fault proxy: socket: ") + std::strerror(errno);
    return false;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    *error = std::string("fault proxy: listen: ") + std::strerror(errno);
    return false;
  }
  port_ = ntohs(addr.sin_port);
  host_ = "127.0.0.1:" + std::to_string(port_);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return true;
}

void FaultProxy::Stop() {
  stopping_ = true;
  if (acceptor_.joinable()) {
    uint64_t one = 1;
    ssize_t w = ::write(wake_fd_, &one, sizeof one);
    (void)w;
    acceptor_.join();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : conns_) {
      if (c->client >= 0) ::shutdown(c->client, SHUT_RDWR);
      if (c->upstream >= 0) ::shutdown(c->upstream, SHUT_RDWR);
    }
    cv_.notify_all();
  }
  ReapFinished(true);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  listen_fd_ = -1;
  wake_fd_ = -1;
}

void FaultProxy::ReapFinished(bool all) {
  std::list<std::unique_ptr<Connection>> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (all || (*it)->done) {
        finished.splice(finished.end(), conns_, it++);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : finished) c->thread.join();
}

void FaultProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int r = ::poll(fds, 2, 500);
    ReapFinished(false);
    if (r < 0 && errno != EINTR) return;
    if (stopping_ || (fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    NoDelay(fd);
    auto conn = std::make_unique<Connection>();
    conn->client = fd;
    Connection* c = conn.get();
    std::lock_guard<std::mutex> lock(mu_);
    ++accepted_;
    conns_.push_back(std::move(conn));
    c->thread = std::thread([this, c] { Serve(c); });
  }
}

void FaultProxy::Shut(Connection* c, bool client, int how) {
  std::lock_guard<std::mutex> lock(mu_);
  int fd = client ? c->client : c->upstream;
  if (fd >= 0) ::shutdown(fd, how);
}

bool FaultProxy::Match(const SeenRequest& seen, FaultRule* rule) {
  std::lock_guard<std::mutex> lock(mu_);
  for (FaultRule& r : rules_) {
    if (r.times == 0) continue;
    if (seen.method.find(r.method) == std::string::npos) continue;
    if (seen.path.find(r.path) == std::string::npos) continue;
    if (r.times > 0) --r.times;
    *rule = r;
    return true;
  }
  return false;
}

void FaultProxy::Serve(Connection* c) {
  // The first request's head: read until the blank line, unless the bytes are not HTTP.
  std::string data;
  size_t head_end = std::string::npos;
  const auto deadline = std::chrono::steady_clock::now() + kHeadTimeout;
  char buf[16384];
  while (!stopping_ && data.size() < kMaxHead && std::chrono::steady_clock::now() < deadline) {
    pollfd p{c->client, POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    ssize_t n = ReadSome(c->client, buf, sizeof buf);
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (!LooksLikeHttp(data)) break;
    head_end = data.find("\r\n\r\n");
    if (head_end != std::string::npos) break;
  }
  FaultRule rule;
  rule.action = FaultRule::Action::kForward;
  std::string head;
  if (head_end != std::string::npos) {
    head = data.substr(0, head_end + 4);
    data.erase(0, head_end + 4);
    SeenRequest seen = ParseHead(head);
    seen.action = Match(seen, &rule) ? Describe(rule) : "forward";
    std::lock_guard<std::mutex> lock(mu_);
    seen_.push_back(std::move(seen));
  }
  if (!stopping_) {
    if (rule.action == FaultRule::Action::kAnswer) {
      const SeenRequest request = ParseHead(head);
      std::string answer = "HTTP/1.1 " + std::to_string(rule.status) + " " + Reason(rule.status) +
                           "\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(rule.body.size()) + "\r\nConnection: close\r\n";
      for (const std::string& h : rule.headers) answer += h + "\r\n";
      answer += "\r\n";
      if (request.method != "HEAD") answer += rule.body;
      if (SendAll(c->client, answer.data(), answer.size())) {
        bytes_to_client_ += answer.size();
      }
      Shut(c, true, SHUT_WR);
      // Read what the client still sends (the body of an upload) until it closes: closing a
      // socket with unread data resets the connection, which could destroy the answer.
      const auto drain_end = std::chrono::steady_clock::now() + kDrainTimeout;
      while (!stopping_ && std::chrono::steady_clock::now() < drain_end) {
        pollfd p{c->client, POLLIN, 0};
        int r = ::poll(&p, 1, 100);
        if (r < 0 && errno != EINTR) break;
        if (r > 0 && ReadSome(c->client, buf, sizeof buf) <= 0) break;
      }
    } else {
      if (rule.action == FaultRule::Action::kRemoveRequestHeader) {
        head = WithoutHeader(head, rule.header);
      }
      Forward(c, rule, std::move(head), std::move(data));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (c->client >= 0) ::close(c->client);
  if (c->upstream >= 0) ::close(c->upstream);
  c->client = -1;
  c->upstream = -1;
  c->done = true;
}

void FaultProxy::Forward(Connection* c, const FaultRule& rule, std::string head, std::string rest) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    c->upstream = fd;
    if (stopping_) return;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(target_port_));
  ::inet_pton(AF_INET, target_host_.c_str(), &addr.sin_addr);
  // A refused target: the client sees its connection closed, as from a registry going away.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || stopping_) return;
  NoDelay(fd);
  // The head goes out unchanged by body rules; `rest` is the first piece of the request body.
  if (!head.empty() && !SendThrottled(fd, head.data(), head.size(), Dir::kToTarget)) return;
  std::thread up([&] {
    End end = Pump(c, Dir::kToTarget, rule, std::move(rest));
    if (end == End::kEof) {
      Shut(c, false, SHUT_WR);
    } else {
      Shut(c, true, SHUT_RDWR);
      Shut(c, false, SHUT_RDWR);
    }
  });
  End end = Pump(c, Dir::kToClient, rule, "");
  if (end == End::kEof) {
    Shut(c, true, SHUT_WR);
  } else {
    Shut(c, true, SHUT_RDWR);
    Shut(c, false, SHUT_RDWR);
  }
  up.join();
}

FaultProxy::End FaultProxy::Pump(Connection* c, Dir dir, const FaultRule& rule,
                                 std::string initial) {
  const bool to_client = dir == Dir::kToClient;
  const bool drop = rule.action == (to_client ? FaultRule::Action::kDropResponse
                                              : FaultRule::Action::kDropRequest);
  const bool corrupt = to_client && rule.action == FaultRule::Action::kCorruptResponse;
  // The request's head was sent already: what this direction reads of it is body.
  BodyFinder finder(to_client);
  if (!to_client) finder.Feed("\r\n\r\n");
  int from = -1;
  int to = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    from = to_client ? c->upstream : c->client;
    to = to_client ? c->client : c->upstream;
  }
  uint64_t body = 0;  // body bytes forwarded
  std::vector<char> buffer(kBufferBytes);
  bool first = true;
  while (true) {
    char* data = buffer.data();
    size_t n = 0;
    if (first && !initial.empty()) {
      data = initial.data();
      n = initial.size();
    } else {
      ssize_t r = ReadSome(from, buffer.data(), buffer.size());
      if (r == 0) return End::kEof;
      if (r < 0) return End::kFailed;
      n = static_cast<size_t>(r);
    }
    first = false;
    if (drop || corrupt) {
      size_t head = finder.Feed(std::string_view(data, n));
      if (finder.in_body()) {
        if (corrupt) {
          for (size_t i = head; i < n; ++i) {
            if ((body + (i - head)) % 1024 == 0) data[i] = static_cast<char>(~data[i]);
          }
        }
        uint64_t in_body = n - head;
        if (drop && body + in_body >= rule.bytes) {
          size_t keep = head + static_cast<size_t>(rule.bytes - body);
          SendThrottled(to, data, keep, dir);
          return End::kDropped;
        }
        body += in_body;
      }
    }
    if (!SendThrottled(to, data, n, dir)) return End::kFailed;
  }
}

bool FaultProxy::SendThrottled(int fd, const char* data, size_t n, Dir dir) {
  std::atomic<uint64_t>& counter = dir == Dir::kToClient ? bytes_to_client_ : bytes_to_target_;
  while (n > 0) {
    uint64_t rate = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      rate = throttle_;
    }
    // Pieces of 1/20 s keep a throttled transfer smooth.
    size_t piece = rate == 0 ? n : std::min<size_t>(n, std::max<uint64_t>(1024, rate / 20));
    if (rate != 0) Throttle(piece, dir);
    if (stopping_ || !SendAll(fd, data, piece)) return false;
    counter += piece;
    data += piece;
    n -= piece;
  }
  return true;
}

void FaultProxy::Throttle(size_t n, Dir dir) {
  std::unique_lock<std::mutex> lock(mu_);
  if (throttle_ == 0) return;
  // A virtual clock per direction: each piece reserves its share of time after the previous.
  auto now = std::chrono::steady_clock::now();
  auto& next = next_free_[static_cast<int>(dir)];
  if (next < now) next = now;
  const auto start = next;
  next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(static_cast<double>(n) / static_cast<double>(throttle_)));
  cv_.wait_until(lock, start, [this] { return stopping_.load(); });
}

void FaultProxy::AddRule(FaultRule rule) {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.push_back(std::move(rule));
}

void FaultProxy::ClearRules() {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.clear();
}

void FaultProxy::SetThrottle(uint64_t bytes_per_second) {
  std::lock_guard<std::mutex> lock(mu_);
  throttle_ = bytes_per_second;
}

int FaultProxy::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return accepted_;
}

int FaultProxy::open_connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(
      std::count_if(conns_.begin(), conns_.end(), [](const auto& c) { return !c->done.load(); }));
}

std::vector<SeenRequest> FaultProxy::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return seen_;
}

int FaultProxy::CountRequests(std::string_view method_contains,
                              std::string_view path_contains) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(seen_.begin(), seen_.end(), [&](const SeenRequest& r) {
    return r.method.find(method_contains) != std::string::npos &&
           r.path.find(path_contains) != std::string::npos;
  }));
}

int FaultProxy::CountRequestsWithHeader(std::string_view method_contains,
                                        std::string_view path_contains,
                                        std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(seen_.begin(), seen_.end(), [&](const SeenRequest& r) {
    return r.method.find(method_contains) != std::string::npos &&
           r.path.find(path_contains) != std::string::npos && r.HasHeader(name);
  }));
}

void FaultProxy::ClearRecords() {
  std::lock_guard<std::mutex> lock(mu_);
  seen_.clear();
  accepted_ = 0;
  bytes_to_client_ = 0;
  bytes_to_target_ = 0;
}

}  // namespace imgstore::testing
