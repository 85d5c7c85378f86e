// HttpClient on libcurl (see http_client.h): one easy handle per request, driven through a multi
// handle so that the body can be pulled by Read() instead of pushed by a callback. When the
// reader falls behind, the write callback pauses the transfer, so at most one buffer of
// kMaxBuffered bytes (plus one libcurl chunk) is held per stream.
#include "registry/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>

namespace imgstore::registry {
namespace {

constexpr size_t kMaxBuffered = 1 << 20;

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct MultiDeleter {
  void operator()(CURLM* h) const { curl_multi_cleanup(h); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using MultiPtr = std::unique_ptr<CURLM, MultiDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;
using UrlPtr = std::unique_ptr<CURLU, UrlDeleter>;

// curl_global_init is not guaranteed thread-safe: run it once, before the first handle.
void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool IsTlsTrustError(CURLcode c) {
  return c == CURLE_PEER_FAILED_VERIFICATION || c == CURLE_SSL_CACERT_BADFILE ||
         c == CURLE_SSL_ISSUER_ERROR || c == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

class CurlStream final : public HttpStream {
 public:
  CurlStream() : error_{} {}

  Status Start(const HttpRequest& request, const HttpOptions& options, bool* tls_failed) {
    GlobalInit();
    easy_.reset(curl_easy_init());
    multi_.reset(curl_multi_init());
    if (!easy_ || !multi_) return Status(Code::kInternal, "curl: cannot create a handle");
    what_ = request.method + " " + request.url;
    CURL* h = easy_.get();
    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);  // HttpClient::Open follows them
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_);
    curl_easy_setopt(h, CURLOPT_USERAGENT, options.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.stall_timeout.count()));
    // Registries send blobs as they are stored; asking for gzip would only add a layer of it.
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, nullptr);
    if (request.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (request.method != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
    const TlsConfig& tls = options.tls;
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, tls.verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, tls.verify ? 2L : 0L);
    if (!tls.extra_ca_pem.empty()) {
      curl_blob blob{const_cast<char*>(tls.extra_ca_pem.data()), tls.extra_ca_pem.size(),
                     CURL_BLOB_COPY};
      curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
      // The blob replaces the default bundle; the system directory keeps the public CAs.
      curl_easy_setopt(h, CURLOPT_CAPATH, "/etc/ssl/certs");
    }
    if (!tls.client_cert_file.empty()) {
      curl_easy_setopt(h, CURLOPT_SSLCERT, tls.client_cert_file.c_str());
      curl_easy_setopt(h, CURLOPT_SSLKEY, tls.client_key_file.c_str());
    }
    for (const std::string& line : request.headers) {
      if (!Append(line)) return Status(Code::kInternal, "curl: out of memory");
    }
    if (!request.authorization.empty() && !Append("Authorization: " + request.authorization)) {
      return Status(Code::kInternal, "curl: out of memory");
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers_.get());
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &CurlStream::OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &CurlStream::OnBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
    if (curl_multi_add_handle(multi_.get(), h) != CURLM_OK) {
      return Status(Code::kInternal, "curl: cannot start " + what_);
    }
    added_ = true;
    // The headers are complete when body bytes arrive or the transfer ends.
    while (!headers_done_ && !done_) IMGSTORE_RETURN_IF_ERROR(Step());
    if (done_ && result_ != CURLE_OK) {
      if (tls_failed != nullptr) *tls_failed = result_ == CURLE_SSL_CONNECT_ERROR;
      return TransferError();
    }
    char* url = nullptr;
    curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &url);
    response_.url = url != nullptr ? url : request.url;
    return Status::OK();
  }

  ~CurlStream() override {
    if (added_) curl_multi_remove_handle(multi_.get(), easy_.get());
  }

  const HttpResponse& response() const override { return response_; }

  // The absolute target of a 3xx answer, or "".
  std::string RedirectUrl() const {
    char* url = nullptr;
    curl_easy_getinfo(easy_.get(), CURLINFO_REDIRECT_URL, &url);
    return url != nullptr ? url : "";
  }

  Result<size_t> Read(std::span<std::byte> buf) override {
    while (pos_ == buffer_.size() && !done_) {
      buffer_.clear();
      pos_ = 0;
      if (paused_) {
        paused_ = false;
        curl_easy_pause(easy_.get(), CURLPAUSE_CONT);  // re-delivers what it paused on
        continue;
      }
      IMGSTORE_RETURN_IF_ERROR(Step());
    }
    if (pos_ == buffer_.size()) {
      if (result_ != CURLE_OK) return TransferError();
      return size_t{0};
    }
    size_t n = std::min(buf.size(), buffer_.size() - pos_);
    std::memcpy(buf.data(), buffer_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  bool Append(const std::string& line) {
    curl_slist* l = curl_slist_append(headers_.get(), line.c_str());
    if (l == nullptr) return false;
    headers_.release();
    headers_.reset(l);
    return true;
  }

  // Runs the transfer one step: waits (bounded) for the socket and moves what is ready.
  Status Step() {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi_.get(), &running);
    if (mc != CURLM_OK) {
      return Status(Code::kInternal, what_ + ": curl: " + curl_multi_strerror(mc));
    }
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &left)) {
      if (msg->msg == CURLMSG_DONE) {
        done_ = true;
        result_ = msg->data.result;
      }
    }
    // Nothing to hand out yet: wait for the socket (bounded, so timeouts are checked).
    if (!done_ && pos_ == buffer_.size() && !paused_) {
      curl_multi_poll(multi_.get(), nullptr, 0, 1000, nullptr);
    }
    return Status::OK();
  }

  Status TransferError() const {
    std::string reason = error_[0] != '\0' ? std::string(error_) : curl_easy_strerror(result_);
    if (IsTlsTrustError(result_)) {
      return Status(
          Code::kPermissionDenied,
          what_ + ": the TLS certificate is not trusted (" + reason +
              "); give its CA with --cert-dir DIR (DIR/ca.crt) or use --tls-verify=false");
    }
    if (result_ == CURLE_URL_MALFORMAT || result_ == CURLE_UNSUPPORTED_PROTOCOL) {
      return Status(Code::kInvalidArgument, what_ + ": " + reason);
    }
    return Status(Code::kUnavailable, what_ + ": " + reason);
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* self_ptr) {
    auto* self = static_cast<CurlStream*>(self_ptr);
    std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {
      // A new response (after a 100 Continue, or a proxy's CONNECT answer): start over.
      self->response_.headers.clear();
      size_t sp = line.find(' ');
      self->response_.status =
          sp == std::string_view::npos
              ? 0
              : std::strtol(std::string(line.substr(sp + 1, 3)).c_str(), nullptr, 10);
      return size * n;
    }
    std::string_view t = Trim(line);
    if (t.empty()) {
      if (self->response_.status >= 200) self->headers_done_ = true;
      return size * n;
    }
    size_t colon = t.find(':');
    if (colon != std::string_view::npos) {
      self->response_.headers.emplace_back(Lower(Trim(t.substr(0, colon))),
                                           std::string(Trim(t.substr(colon + 1))));
    }
    return size * n;
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* self_ptr) {
    auto* self = static_cast<CurlStream*>(self_ptr);
    self->headers_done_ = true;
    if (self->buffer_.size() - self->pos_ >= kMaxBuffered) {
      self->paused_ = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    if (self->pos_ > 0 && self->pos_ == self->buffer_.size()) {
      self->buffer_.clear();
      self->pos_ = 0;
    }
    self->buffer_.append(data, size * n);
    return size * n;
  }

  EasyPtr easy_;
  MultiPtr multi_;
  SlistPtr headers_;
  bool added_ = false;
  std::string what_;  // "GET https://host/v2/..." for messages
  char error_[CURL_ERROR_SIZE];
  HttpResponse response_;
  bool headers_done_ = false;
  bool done_ = false;
  bool paused_ = false;
  CURLcode result_ = CURLE_OK;
  std::string buffer_;
  size_t pos_ = 0;
};

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  std::string want = Lower(name);
  for (const auto& [k, v] : headers) {
    if (k == want) return v;
  }
  return "";
}

std::vector<std::string> HttpResponse::Headers(std::string_view name) const {
  std::string want = Lower(name);
  std::vector<std::string> out;
  for (const auto& [k, v] : headers) {
    if (k == want) out.push_back(v);
  }
  return out;
}

Result<std::string> HttpStream::ReadAll(size_t max) {
  std::string out;
  char buf[16384];
  while (true) {
    Result<size_t> n = Read(std::as_writable_bytes(std::span<char>(buf, sizeof buf)));
    if (!n.ok()) return n.status();
    if (*n == 0) return out;
    if (out.size() + *n > max) {
      return Status(Code::kInvalidArgument, response().url + ": the answer is larger than " +
                                                std::to_string(max) + " bytes");
    }
    out.append(buf, *n);
  }
}

std::string OriginOf(std::string_view url) {
  GlobalInit();
  UrlPtr u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, std::string(url).c_str(), 0) != CURLUE_OK) {
    return "";
  }
  auto part = [&](CURLUPart p, unsigned flags) -> std::string {
    char* v = nullptr;
    if (curl_url_get(u.get(), p, &v, flags) != CURLUE_OK || v == nullptr) return "";
    std::string s(v);
    curl_free(v);
    return s;
  };
  std::string scheme = part(CURLUPART_SCHEME, 0);
  std::string host = part(CURLUPART_HOST, 0);
  std::string port = part(CURLUPART_PORT, CURLU_DEFAULT_PORT);
  if (scheme.empty() || host.empty()) return "";
  return Lower(scheme + "://" + host + ":" + port);
}

Result<std::unique_ptr<HttpStream>> HttpClient::Open(const HttpRequest& request,
                                                     bool* tls_handshake_failed) const {
  if (tls_handshake_failed != nullptr) *tls_handshake_failed = false;
  HttpRequest current = request;
  const std::string origin = OriginOf(request.url);
  for (int hop = 0;; ++hop) {
    auto stream = std::make_unique<CurlStream>();
    IMGSTORE_RETURN_IF_ERROR(stream->Start(current, options_, tls_handshake_failed));
    long status = stream->response().status;
    bool redirect =
        status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
    if (!redirect || request.max_redirects == 0)
      return std::unique_ptr<HttpStream>(std::move(stream));
    if (hop >= request.max_redirects) {
      return Status(Code::kUnavailable, request.method + " " + request.url + ": more than " +
                                            std::to_string(request.max_redirects) + " redirects");
    }
    std::string next = stream->RedirectUrl();
    std::string next_origin = OriginOf(next);
    if (next.empty() || next_origin.empty() ||
        !(next.starts_with("http://") || next.starts_with("https://"))) {
      return Status(Code::kInvalidArgument,
                    request.method + " " + request.url + ": redirected to an unusable location");
    }
    current.url = next;
    // Credentials belong to the registry's origin: storage behind a redirect gets none.
    if (next_origin != origin) current.authorization.clear();
    if (status == 303) current.method = "GET";
  }
}

}  // namespace imgstore::registry
