// HttpClient on libcurl (see http_client.h): one easy handle per request, driven through a multi
// handle so that the body can be pulled by Read() instead of pushed by a callback. When the
// reader falls behind, the write callback pauses the transfer, so at most one buffer of
// kMaxBuffered bytes (plus one libcurl chunk) is held per stream.
//
// A request body (string or SequentialFile) goes through libcurl's upload path (read callback,
// known size) whatever the method, so that a string and a streamed body behave alike and
// libcurl adds no form Content-Type of its own.
#include "registry/http_client.h"

#include <curl/curl.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

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

// Whether the request sends a body: always for POST, PUT and PATCH (Content-Length: 0 when it
// is empty), for other methods only when one is given.
bool HasBody(const HttpRequest& r) {
  if (r.method == "GET" || r.method == "HEAD") return false;
  if (r.method == "POST" || r.method == "PUT" || r.method == "PATCH") return true;
  return r.body_stream != nullptr || !r.body.empty();
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
    bool has_expect = false;
    for (const std::string& line : request.headers) {
      has_expect = has_expect || Lower(line).starts_with("expect:");
    }
    if (HasBody(request)) {
      body_ = request.body;
      body_stream_ = request.body_stream;
      body_size_ = request.body_stream != nullptr ? request.body_size : body_.size();
      on_body_progress_ = request.on_body_progress;
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_size_));
      curl_easy_setopt(h, CURLOPT_READFUNCTION, &CurlStream::OnRead);
      curl_easy_setopt(h, CURLOPT_READDATA, this);
      // libcurl would otherwise wait for a "100 Continue" before each body (a second lost per
      // request with servers that do not send one); the registry reads the body anyway.
      if (!has_expect && !Append("Expect:")) return Status(Code::kInternal, "curl: out of memory");
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
    client_cert_file_ = tls.client_cert_file;
    cancelled_ = options.cancelled;
    // Noted so that a registry requiring a client certificate gets a clear error: with TLS 1.3
    // it drops the connection after the handshake, which libcurl reports as a failed send/read.
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, &CurlStream::OnSslContext);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, this);
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
    // A body that broke after the final headers came is Read's error, after the bytes that did
    // arrive: a blob pull resumes from there (Range) instead of starting over.
    const bool broke_in_body = headers_done_ && !HasBody(request);
    if (done_ && result_ != CURLE_OK && !broke_in_body) {
      if (cert_requested_ && body_error_.ok() && !IsTlsTrustError(result_)) {
        return Status(Code::kPermissionDenied,
                      what_ + ": the server asked for a TLS client certificate and " +
                          (client_cert_file_.empty()
                               ? "none was given; put client.cert and client.key in the "
                                 "--cert-dir directory"
                               : "refused " + client_cert_file_));
      }
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
    if (cancelled_ && cancelled_()) return Status(Code::kCancelled, what_ + ": cancelled");
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
      curl_multi_poll(multi_.get(), nullptr, 0, cancelled_ ? 100 : 1000, nullptr);
    }
    return Status::OK();
  }

  Status TransferError() const {
    // The body's own failure (a read error, a stream that ended early) is the real reason.
    if (!body_error_.ok()) return body_error_.WithContext(what_);
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

  static CURLcode OnSslContext(CURL*, void* ssl_ctx, void* self_ptr) {
    SSL_CTX_set_cert_cb(
        static_cast<SSL_CTX*>(ssl_ctx),
        [](SSL*, void* self) {
          static_cast<CurlStream*>(self)->cert_requested_ = true;
          return 1;
        },
        self_ptr);
    return CURLE_OK;
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

  // Hands libcurl the next piece of the body: from body_ or body_stream_, never past
  // body_size_. A stream that fails or ends early aborts the transfer (TransferError says why).
  static size_t OnRead(char* data, size_t size, size_t n, void* self_ptr) {
    auto* self = static_cast<CurlStream*>(self_ptr);
    const uint64_t left = self->body_size_ - self->body_sent_;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(size * n, left));
    if (want == 0) return 0;
    size_t got = 0;
    if (self->body_stream_ == nullptr) {
      std::memcpy(data, self->body_.data() + self->body_sent_, want);
      got = want;
    } else {
      Result<size_t> r =
          self->body_stream_->Read(std::as_writable_bytes(std::span<char>(data, want)));
      if (!r.ok()) {
        self->body_error_ = r.status();
        return CURL_READFUNC_ABORT;
      }
      got = *r;
      if (got == 0) {
        self->body_error_ =
            Status(Code::kCorruption, "the body " + self->body_stream_->path() + " ended after " +
                                          std::to_string(self->body_sent_) + " of " +
                                          std::to_string(self->body_size_) + " bytes");
        return CURL_READFUNC_ABORT;
      }
    }
    self->body_sent_ += got;
    if (self->body_stream_ != nullptr && self->on_body_progress_) {
      self->on_body_progress_(self->body_sent_);
    }
    return got;
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
  bool cert_requested_ = false;  // the server sent a TLS CertificateRequest
  std::string client_cert_file_;
  std::function<bool()> cancelled_;  // HttpOptions::cancelled
  std::string buffer_;
  size_t pos_ = 0;
  // The request body: a copy of HttpRequest::body, or the caller's stream.
  std::string body_;
  SequentialFile* body_stream_ = nullptr;
  uint64_t body_size_ = 0;
  uint64_t body_sent_ = 0;
  std::function<void(uint64_t)> on_body_progress_;
  Status body_error_;
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

Status HttpClient::Wait(std::chrono::milliseconds delay, const std::string& what) const {
  if (!options_.cancelled) {
    std::this_thread::sleep_for(delay);
    return Status::OK();
  }
  const auto end = std::chrono::steady_clock::now() + delay;
  while (true) {
    if (options_.cancelled()) return Status(Code::kCancelled, what + ": cancelled");
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) return Status::OK();
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(end - now, std::chrono::milliseconds(100)));
  }
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
    // The stream was (at least partly) consumed by the first request: it cannot be sent again.
    if (current.body_stream != nullptr) {
      return Status(Code::kUnavailable, request.method + " " + request.url + ": redirected (HTTP " +
                                            std::to_string(status) +
                                            "), and a streamed body cannot be sent twice");
    }
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
    if (status == 303) {
      current.method = "GET";
      current.body.clear();
    }
  }
}

}  // namespace imgstore::registry
