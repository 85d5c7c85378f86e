// TokenServer (see token_server.h): the signing key and certificate, the HTTP loop, the grant
// rules and the JWT.
#include "common/token_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "registry/credentials.h"

namespace imgstore::testing {
namespace {

constexpr size_t kMaxRequestHead = 64 * 1024;
constexpr int kReadTimeoutMs = 10000;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};

std::string Base64Url(std::string_view bytes) {
  std::string s = registry::Base64Encode(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return s;
}

std::string RandomHex(size_t bytes) {
  std::vector<unsigned char> b(bytes);
  RAND_bytes(b.data(), static_cast<int>(b.size()));
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string UrlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() &&
               std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t end = s.find(sep, start);
    out.emplace_back(s.substr(start, end == std::string_view::npos ? s.npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string HttpAnswer(int status, const std::string& reason, const std::string& body,
                       const std::string& extra_headers = "") {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n" + extra_headers + "\r\n" + body;
}

std::string ErrorBody(const std::string& code, const std::string& message) {
  nlohmann::json j = {{"errors", {{{"code", code}, {"message", message}}}}};
  return j.dump();
}

// A self-signed certificate for `key`, usable as its own root (distribution verifies the x5c
// chain against the rootcertbundle).
std::unique_ptr<X509, X509Free> SelfSignedCert(EVP_PKEY* key) {
  std::unique_ptr<X509, X509Free> cert(X509_new());
  if (!cert) return nullptr;
  X509_set_version(cert.get(), 2);
  uint64_t serial = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), (serial >> 1) | 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 2 * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("imgstore test token signer"),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,digitalSignature,keyCertSign"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr) return nullptr;
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key, EVP_sha256()) == 0) return nullptr;
  return cert;
}

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

bool TokenServer::Start(const TokenServerConfig& config, std::string* error) {
  config_ = config;
  std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_RSA_gen(2048));
  if (!key) {
    *error = "RSA key generation failed";
    return false;
  }
  std::unique_ptr<X509, X509Free> cert = SelfSignedCert(key.get());
  if (!cert) {
    *error = "self-signed certificate failed";
    return false;
  }
  unsigned char* der = nullptr;
  int der_len = i2d_X509(cert.get(), &der);
  if (der_len <= 0) {
    *error = "i2d_X509 failed";
    return false;
  }
  cert_der_b64_ = registry::Base64Encode(
      std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(der_len)));
  OPENSSL_free(der);
  {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), cert.get());
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    std::ofstream out(dir_.Sub("root.crt"), std::ios::binary | std::ios::trunc);
    out.write(data, n);
    if (!out) {
      *error = "cannot write " + dir_.Sub("root.crt");
      return false;
    }
  }
  key_ = key.release();

  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    *error = std::string("token server socket: ") + std::strerror(errno);
    return false;
  }
  port_ = ntohs(addr.sin_port);
  if (::pipe2(wake_fds_, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  thread_ = std::thread([this] { Serve(); });
  return true;
}

void TokenServer::Stop() {
  if (thread_.joinable()) {
    char c = 'x';
    (void)!::write(wake_fds_[1], &c, 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_fds_[0], &wake_fds_[1]}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  EVP_PKEY_free(key_);
  key_ = nullptr;
}

std::string TokenServer::realm() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/token";
}

RegistryTokenAuth TokenServer::registry_auth() const {
  return {realm(), config_.service, config_.issuer, dir_.Sub("root.crt")};
}

void TokenServer::LimitActions(std::optional<std::vector<std::string>> actions) {
  std::lock_guard<std::mutex> lock(mu_);
  limit_ = std::move(actions);
}

void TokenServer::SetLifetime(std::chrono::seconds lifetime,
                              std::optional<std::chrono::seconds> expires_in) {
  std::lock_guard<std::mutex> lock(mu_);
  config_.lifetime = lifetime;
  config_.expires_in = expires_in;
}

std::vector<TokenServer::Request> TokenServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

int TokenServer::RequestsFor(const std::string& scope) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(requests_.begin(), requests_.end(), [&](const Request& r) {
    return std::find(r.scopes.begin(), r.scopes.end(), scope) != r.scopes.end();
  }));
}

void TokenServer::ClearRequests() {
  std::lock_guard<std::mutex> lock(mu_);
  requests_.clear();
}

void TokenServer::Serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    HandleConnection(fd);
    ::close(fd);
  }
}

void TokenServer::HandleConnection(int fd) {
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() > kMaxRequestHead) return;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kReadTimeoutMs) <= 0) return;
    ssize_t got = ::recv(fd, buf, sizeof buf, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return;
    head.append(buf, static_cast<size_t>(got));
  }
  const std::string answer = Answer(head.substr(0, head.find("\r\n\r\n")));
  size_t sent = 0;
  while (sent < answer.size()) {
    ssize_t n = ::send(fd, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

std::string TokenServer::Answer(const std::string& head) {
  std::vector<std::string> lines = Split(head, '\n');
  for (std::string& l : lines) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
  }
  std::vector<std::string> request_line = Split(lines[0], ' ');
  if (request_line.size() != 3 || request_line[0] != "GET") {
    return HttpAnswer(405, "Method Not Allowed", ErrorBody("UNSUPPORTED", "GET only"));
  }
  const std::string& target = request_line[1];
  const size_t q = target.find('?');
  if (target.substr(0, q) != "/token") {
    return HttpAnswer(404, "Not Found", ErrorBody("NOT_FOUND", "no such endpoint"));
  }
  std::string service;
  std::vector<std::string> scopes;
  if (q != std::string::npos) {
    for (const std::string& kv : Split(std::string_view(target).substr(q + 1), '&')) {
      size_t eq = kv.find('=');
      const std::string k = UrlDecode(kv.substr(0, eq));
      const std::string v = eq == std::string::npos ? "" : UrlDecode(kv.substr(eq + 1));
      if (k == "service") service = v;
      if (k == "scope") scopes.push_back(v);
    }
  }
  std::string authorization;
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    if (Lower(lines[i].substr(0, colon)) == "authorization") {
      authorization = lines[i].substr(colon + 1);
      authorization.erase(0, authorization.find_first_not_of(' '));
    }
  }

  std::lock_guard<std::mutex> lock(mu_);
  Request record;
  record.scopes = scopes;
  auto finish = [&](int status, const std::string& answer) {
    record.status = status;
    requests_.push_back(record);
    return answer;
  };
  if (service != config_.service) {
    return finish(400,
                  HttpAnswer(400, "Bad Request",
                             ErrorBody("INVALID_SERVICE", "unknown service \"" + service + "\"")));
  }
  // Basic credentials, checked against the users; none means anonymous.
  if (!authorization.empty()) {
    std::optional<std::string> decoded;
    if (Lower(authorization.substr(0, 6)) == "basic ") {
      decoded = registry::Base64Decode(authorization.substr(6));
    }
    const size_t colon = decoded ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos) {
      return finish(401, HttpAnswer(401, "Unauthorized", ErrorBody("UNAUTHORIZED", "bad header"),
                                    "WWW-Authenticate: Basic realm=\"imgstore-test-token\"\r\n"));
    }
    record.account = decoded->substr(0, colon);
    auto user = config_.users.find(record.account);
    if (user == config_.users.end() || user->second != decoded->substr(colon + 1)) {
      return finish(401, HttpAnswer(401, "Unauthorized",
                                    ErrorBody("UNAUTHORIZED", "wrong user name or password"),
                                    "WWW-Authenticate: Basic realm=\"imgstore-test-token\"\r\n"));
    }
  }
  nlohmann::json access = nlohmann::json::array();
  for (const std::string& scope : scopes) {
    // TYPE:NAME:ACTIONS (a name has no ':', but be lenient as distribution is).
    const size_t first = scope.find(':'), last = scope.rfind(':');
    if (first == std::string::npos || first == last) continue;
    const std::string type = scope.substr(0, first);
    const std::string name = scope.substr(first + 1, last - first - 1);
    if (type != "repository") continue;
    std::set<std::string> allowed;
    for (const TokenGrant& g : config_.grants) {
      bool who = g.account == record.account || (g.account == "*" && !record.account.empty());
      if (who && ::fnmatch(g.repository.c_str(), name.c_str(), 0) == 0) {
        allowed.insert(g.actions.begin(), g.actions.end());
      }
    }
    std::vector<std::string> granted;
    for (const std::string& action : Split(scope.substr(last + 1), ',')) {
      if (allowed.count(action) == 0) continue;
      if (limit_ && std::find(limit_->begin(), limit_->end(), action) == limit_->end()) continue;
      if (std::find(granted.begin(), granted.end(), action) == granted.end()) {
        granted.push_back(action);
      }
    }
    if (granted.empty()) continue;
    access.push_back({{"type", type}, {"name", name}, {"actions", granted}});
    std::string joined;
    for (const std::string& a : granted) joined += (joined.empty() ? "" : ",") + a;
    record.granted.push_back(type + ":" + name + ":" + joined);
  }
  const auto now = std::chrono::system_clock::now();
  const auto now_s = std::chrono::floor<std::chrono::seconds>(now);
  const auto exp = now_s + config_.lifetime - kRegistryLeeway;
  record.valid_until = exp + kRegistryLeeway;
  const std::string jwt = MakeJwt(record.account, access.dump(), now_s, exp);
  if (jwt.empty()) {
    return finish(500,
                  HttpAnswer(500, "Internal Server Error", ErrorBody("SIGN", "signing failed")));
  }
  nlohmann::json body = {{"token", jwt},
                         {"access_token", jwt},
                         {"expires_in", config_.expires_in.value_or(config_.lifetime).count()},
                         {"issued_at", Rfc3339(now)}};
  return finish(200, HttpAnswer(200, "OK", body.dump()));
}

std::string TokenServer::MakeJwt(const std::string& account, const std::string& access_json,
                                 std::chrono::system_clock::time_point now,
                                 std::chrono::system_clock::time_point exp) {
  auto unix = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  nlohmann::json header = {{"typ", "JWT"}, {"alg", "RS256"}, {"x5c", {cert_der_b64_}}};
  nlohmann::json claims = {{"iss", config_.issuer},
                           {"sub", account},
                           {"aud", config_.service},
                           {"exp", unix(exp)},
                           {"nbf", unix(now)},
                           {"iat", unix(now)},
                           {"jti", RandomHex(16) + "-" + std::to_string(++next_id_)},
                           {"access", nlohmann::json::parse(access_json)}};
  const std::string signing_input = Base64Url(header.dump()) + "." + Base64Url(claims.dump());
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t sig_len = 0;
  // RS256: RSASSA-PKCS1-v1_5 with SHA-256, the RSA default padding.
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    return "";
  }
  std::string sig(sig_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    return "";
  }
  sig.resize(sig_len);
  return signing_input + "." + Base64Url(sig);
}

}  // namespace imgstore::testing
