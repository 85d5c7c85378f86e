// RegistryClient (see registry_client.h): scheme discovery, credentials and cert-dir loading,
// the answer-a-401-once request loop, and retries with backoff (Retry-After honoured).
#include "registry/registry_client.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "util/env.h"

namespace imgstore::registry {
namespace {

constexpr uint64_t kMaxCertBytes = 1 << 20;
constexpr size_t kMaxErrorBody = 64 * 1024;

// Loads a certs.d directory into tls: every *.crt is a CA; client.cert with client.key.
Status LoadCertDir(const std::string& dir, TlsConfig& tls) {
  Env* env = Env::Default();
  Result<std::vector<std::string>> names = env->ListDir(dir);
  if (!names.ok()) return names.status().WithContext("cert dir");
  std::sort(names->begin(), names->end());
  for (const std::string& name : *names) {
    const std::string path = dir + "/" + name;
    if (name.ends_with(".crt")) {
      Result<std::string> pem = env->ReadFileToString(path, kMaxCertBytes);
      if (!pem.ok()) return pem.status().WithContext("cert dir");
      tls.extra_ca_pem += *pem;
      tls.extra_ca_pem += "\n";
    } else if (name.ends_with(".cert")) {
      std::string key = dir + "/" + name.substr(0, name.size() - 5) + ".key";
      if (!env->FileExists(key)) {
        return Status(Code::kInvalidArgument,
                      "cert dir: client certificate " + path + " has no key " + key);
      }
      tls.client_cert_file = path;
      tls.client_key_file = key;
    }
  }
  return Status::OK();
}

Result<std::optional<Credentials>> FindCredentials(const images::Reference& ref,
                                                   const RegistryOptions& options) {
  if (options.credentials) return options.credentials;
  const std::string repository = ref.Repository();
  if (!options.auth_file.empty()) return LookupAuthFile(options.auth_file, repository);
  for (const std::string& file : DefaultAuthFiles()) {
    Result<std::optional<Credentials>> c = LookupAuthFile(file, repository);
    if (!c.ok() && c.status().code() == Code::kNotFound) continue;
    if (!c.ok() || c->has_value()) return c;
  }
  return std::optional<Credentials>();
}

// 5xx and 429: the registry is (for now) unable to answer; another attempt may succeed.
bool IsPassingStatus(long status) { return status == 429 || (status >= 500 && status <= 599); }

// The last error of a retried operation, saying how often it was tried.
Status WithAttempts(const Status& st, int attempts) {
  if (attempts <= 1) return st;
  return Status(st.code(), st.message() + " (" + std::to_string(attempts) + " attempts)");
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A non-empty run of decimal digits that fits in 63 bits.
std::optional<uint64_t> ParseDecimal(std::string_view s) {
  if (s.empty() || s.size() > 18 || !std::all_of(s.begin(), s.end(), IsDigit)) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

// The three forms of RFC 9110's HTTP-date: "Sun, 06 Nov 1994 08:49:37 GMT",
// "Sunday, 06-Nov-94 08:49:37 GMT" and "Sun Nov  6 08:49:37 1994". Whatever the form, after the
// weekday come a day, a month name, a year and a time; the day precedes the year.
std::optional<std::chrono::system_clock::time_point> ParseHttpDate(std::string_view text) {
  static constexpr std::string_view kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                                 "jul", "aug", "sep", "oct", "nov", "dec"};
  std::vector<std::string> tokens;
  std::string cur;
  for (char c : text) {
    if (c == ' ' || c == ',' || c == '-') {
      if (!cur.empty()) tokens.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (!cur.empty()) tokens.push_back(std::move(cur));
  if (!tokens.empty() && tokens.back() == "gmt") tokens.pop_back();
  if (tokens.size() != 5) return std::nullopt;
  std::vector<uint64_t> numbers;
  int month = 0;
  std::string_view time;
  for (size_t i = 1; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (t.find(':') != std::string::npos) {
      time = t;
    } else if (std::optional<uint64_t> n = ParseDecimal(t)) {
      numbers.push_back(*n);
    } else {
      auto it = std::find(std::begin(kMonths), std::end(kMonths), t);
      if (it == std::end(kMonths)) return std::nullopt;
      month = static_cast<int>(it - std::begin(kMonths)) + 1;
    }
  }
  if (month == 0 || numbers.size() != 2 || time.size() != 8 || time[2] != ':' || time[5] != ':') {
    return std::nullopt;
  }
  std::optional<uint64_t> hh = ParseDecimal(time.substr(0, 2));
  std::optional<uint64_t> mm = ParseDecimal(time.substr(3, 2));
  std::optional<uint64_t> ss = ParseDecimal(time.substr(6, 2));
  if (!hh || !mm || !ss || *hh > 23 || *mm > 59 || *ss > 60) return std::nullopt;
  uint64_t year = numbers[1];
  if (year < 100) year += year < 70 ? 2000 : 1900;  // RFC 850's two digits
  if (year < 1970 || year > 9999 || numbers[0] > 31) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year(static_cast<int>(year)),
                                         std::chrono::month(static_cast<unsigned>(month)),
                                         std::chrono::day(static_cast<unsigned>(numbers[0]))};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days(date) + std::chrono::hours(*hh) + std::chrono::minutes(*mm) +
         std::chrono::seconds(*ss);
}

}  // namespace

bool IsLoopbackHost(std::string_view host) {
  std::string_view h = host;
  if (h.starts_with("[")) {
    size_t close = h.find(']');
    h = h.substr(1, close == std::string_view::npos ? h.size() - 1 : close - 1);
    return h == "::1";
  }
  size_t colon = h.rfind(':');
  if (colon != std::string_view::npos) h = h.substr(0, colon);
  std::string lower(h);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "localhost") return true;
  // 127.0.0.0/8, written as a dotted quad.
  if (!lower.starts_with("127.")) return false;
  int dots = 0;
  for (char c : lower) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

Result<std::unique_ptr<RegistryClient>> RegistryClient::Create(const images::Reference& ref,
                                                               const RegistryOptions& options) {
  std::string host = ref.RegistryHost();
  HttpOptions http = options.http;
  http.tls.verify = options.tls_verify;
  std::string cert_dir = options.cert_dir;
  if (cert_dir.empty()) {
    for (const char* base : {"/etc/containers/certs.d/", "/etc/docker/certs.d/"}) {
      if (Env::Default()->FileExists(base + host)) {
        cert_dir = base + host;
        break;
      }
    }
  }
  if (!cert_dir.empty()) IMGSTORE_RETURN_IF_ERROR(LoadCertDir(cert_dir, http.tls));
  Result<std::optional<Credentials>> creds = FindCredentials(ref, options);
  if (!creds.ok()) return creds.status();
  return std::unique_ptr<RegistryClient>(new RegistryClient(
      host, std::move(http), options.tls_verify, std::move(*creds), options.retry));
}

RegistryClient::RegistryClient(std::string host, HttpOptions http, bool tls_verify,
                               std::optional<Credentials> credentials, RetryOptions retry)
    : host_(std::move(host)),
      retry_(retry),
      http_(std::move(http)),
      tls_verify_(tls_verify),
      loopback_(IsLoopbackHost(host_)),
      auth_(host_, &http_, std::move(credentials)) {}

Status RegistryClient::Ping(std::optional<std::chrono::milliseconds>* retry_after) {
  const std::string who = "registry " + host_;
  std::vector<std::string> schemes = {"https://"};
  // docker's rule: loopback registries may be plain http; --tls-verify=false allows it anywhere.
  if (loopback_ || !tls_verify_) schemes.push_back("http://");
  for (size_t i = 0; i < schemes.size(); ++i) {
    HttpRequest req;
    req.url = schemes[i] + host_ + "/v2/";
    bool handshake_failed = false;
    Result<std::unique_ptr<HttpStream>> s = http_.Open(req, &handshake_failed);
    if (!s.ok()) {
      // Only a server that does not speak TLS is retried over http; a connection refused or an
      // untrusted certificate is an answer in itself.
      if (handshake_failed && i + 1 < schemes.size()) continue;
      return s.status().WithContext(who);
    }
    long status = (*s)->response().status;
    if (IsPassingStatus(status)) {
      *retry_after =
          ParseRetryAfter((*s)->response().Header("retry-after"), std::chrono::system_clock::now());
      return Status(Code::kUnavailable,
                    who + ": GET " + req.url + " answered HTTP " + std::to_string(status));
    }
    if (status != 200 && status != 401) {
      return Status(Code::kFailedPrecondition, who + ": GET " + req.url + " answered HTTP " +
                                                   std::to_string(status) +
                                                   ": not an OCI distribution (v2) registry");
    }
    auth_.OnPing((*s)->response());
    base_ = schemes[i] + host_;
    return Status::OK();
  }
  return Status(Code::kInternal, who + ": no scheme to try");
}

Status RegistryClient::PingWithRetries() {
  const int attempts = std::max(1, retry_.max_attempts);
  for (int attempt = 1;; ++attempt) {
    std::optional<std::chrono::milliseconds> retry_after;
    Status st = Ping(&retry_after);
    if (st.ok() || st.code() != Code::kUnavailable) return st;
    if (attempt >= attempts) return WithAttempts(st, attempt);
    // Sleeping with the mutex held is deliberate: every other request waits for this ping.
    IMGSTORE_RETURN_IF_ERROR(http_.Wait(RetryDelay(retry_, attempt, retry_after), host_));
  }
}

std::string RegistryClient::base_url() const {
  std::lock_guard<std::mutex> lock(mu_);
  return base_;
}

Result<std::unique_ptr<HttpStream>> RegistryClient::Send(const std::string& method,
                                                         const std::string& path,
                                                         const std::string& scope,
                                                         const std::vector<std::string>& headers,
                                                         int max_redirects) {
  Request r;
  r.method = method;
  r.target = path;
  r.scope = scope;
  r.headers = headers;
  r.max_redirects = max_redirects;
  return Send(r);
}

Result<std::unique_ptr<HttpStream>> RegistryClient::Send(const Request& request) {
  std::string base;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (base_.empty()) IMGSTORE_RETURN_IF_ERROR(PingWithRetries());
    base = base_;
  }
  // The body of a streamed request is gone after the first attempt: its caller retries.
  const int attempts = request.body_stream != nullptr ? 1 : std::max(1, retry_.max_attempts);
  for (int attempt = 1;; ++attempt) {
    Result<std::unique_ptr<HttpStream>> s = SendOnce(request, base);
    std::optional<std::chrono::milliseconds> retry_after;
    if (!s.ok()) {
      if (s.status().code() != Code::kUnavailable) return s;
      if (attempt >= attempts) return WithAttempts(s.status(), attempt);
    } else {
      const HttpResponse& response = (*s)->response();
      if (!request.retry_status || !IsPassingStatus(response.status) || attempt >= attempts) {
        return s;
      }
      retry_after =
          ParseRetryAfter(response.Header("retry-after"), std::chrono::system_clock::now());
      s->reset();  // closes the connection before the wait
    }
    IMGSTORE_RETURN_IF_ERROR(http_.Wait(RetryDelay(retry_, attempt, retry_after),
                                        request.method + " " + request.target));
  }
}

Result<std::unique_ptr<HttpStream>> RegistryClient::SendOnce(const Request& request,
                                                             const std::string& base) {
  const std::string& target = request.target;
  const bool absolute = target.starts_with("http://") || target.starts_with("https://");
  const std::string url = absolute ? target : base + target;
  // Credentials belong to the registry's origin: an upload Location elsewhere gets none.
  const bool own_origin = !absolute || OriginOf(url) == OriginOf(base);
  int answered = 0;
  // Each round either answers a 401 (at most twice) or finds it answered by another thread;
  // the bound stops threads that keep refreshing each other's tokens.
  for (int round = 0; round < 6; ++round) {
    HttpRequest req;
    req.method = request.method;
    req.url = url;
    req.headers = request.headers;
    req.max_redirects = request.max_redirects;
    req.body = request.body;
    req.body_stream = request.body_stream;
    req.body_size = request.body_size;
    req.on_body_progress = request.on_body_progress;
    uint64_t generation = 0;
    if (own_origin) {
      std::lock_guard<std::mutex> lock(mu_);
      req.authorization = auth_.AuthorizationFor(request.scope);
      generation = auth_generation_[request.scope];
    }
    Result<std::unique_ptr<HttpStream>> s = http_.Open(req);
    if (!s.ok()) return s.status().WithContext("registry " + host_);
    if ((*s)->response().status != 401 || !own_origin) return s;
    std::lock_guard<std::mutex> lock(mu_);
    if (auth_generation_[request.scope] != generation) continue;
    // At most two answers: the second 401 makes OnUnauthorized report the refusal.
    Status st = auth_.OnUnauthorized((*s)->response(), request.scope);
    if (!st.ok()) return st;
    ++auth_generation_[request.scope];
    if (request.body_stream != nullptr) {
      return Status(Code::kPermissionDenied,
                    "registry " + host_ + ": " + request.method + " " + target +
                        " answered HTTP 401; a streamed body is not sent twice");
    }
    if (++answered >= 2) break;
  }
  return Status(Code::kPermissionDenied, "registry " + host_ + ": " + request.method + " " +
                                             target + " still answered HTTP 401");
}

std::chrono::milliseconds RetryDelay(const RetryOptions& options, int retry,
                                     std::optional<std::chrono::milliseconds> retry_after) {
  using std::chrono::milliseconds;
  const milliseconds cap = std::max(options.max_delay, milliseconds(0));
  milliseconds delay = std::clamp(options.initial_delay, milliseconds(0), cap);
  for (int i = 1; i < retry && delay < cap; ++i) delay = std::min(delay * 2, cap);
  if (retry_after && *retry_after > delay) delay = std::min(*retry_after, cap);
  return delay;
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::string_view value, std::chrono::system_clock::time_point now) {
  value = TrimSpaces(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), IsDigit)) {
    // A day is more than any cap; longer values would only risk overflow.
    constexpr uint64_t kMaxSeconds = 86400;
    uint64_t seconds = 0;
    for (char c : value) {
      seconds = std::min<uint64_t>(seconds * 10 + static_cast<uint64_t>(c - '0'), kMaxSeconds);
    }
    return std::chrono::milliseconds(seconds * 1000);
  }
  std::optional<std::chrono::system_clock::time_point> when = ParseHttpDate(value);
  if (!when) return std::nullopt;
  if (*when <= now) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(*when - now);
}

std::optional<ContentRange> ParseContentRange(std::string_view value) {
  value = TrimSpaces(value);
  if (!value.starts_with("bytes ")) return std::nullopt;
  value.remove_prefix(6);
  value = TrimSpaces(value);
  size_t dash = value.find('-');
  size_t slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return std::nullopt;
  }
  ContentRange r;
  std::optional<uint64_t> first = ParseDecimal(value.substr(0, dash));
  std::optional<uint64_t> last = ParseDecimal(value.substr(dash + 1, slash - dash - 1));
  if (!first || !last || *last < *first) return std::nullopt;
  r.first = *first;
  r.last = *last;
  std::string_view total = value.substr(slash + 1);
  if (total != "*") {
    r.total = ParseDecimal(total);
    if (!r.total || *r.total <= r.last) return std::nullopt;
  }
  return r;
}

Status ErrorFromAnswer(HttpStream& stream, const std::string& what) {
  long status = stream.response().status;
  std::string detail;
  Result<std::string> body = stream.ReadAll(kMaxErrorBody);
  if (body.ok()) {
    nlohmann::json doc = nlohmann::json::parse(*body, nullptr, false);
    if (doc.is_object() && doc.contains("errors") && doc["errors"].is_array() &&
        !doc["errors"].empty() && doc["errors"][0].is_object()) {
      const nlohmann::json& e = doc["errors"][0];
      if (e.contains("code") && e["code"].is_string()) detail = e["code"].get<std::string>();
      if (e.contains("message") && e["message"].is_string()) {
        detail += (detail.empty() ? "" : ": ") + e["message"].get<std::string>();
      }
    }
  }
  std::string msg = what + ": HTTP " + std::to_string(status);
  if (!detail.empty()) msg += " (" + detail + ")";
  Code code = Code::kFailedPrecondition;
  if (status == 404) {
    code = Code::kNotFound;
  } else if (status == 401 || status == 403) {
    code = Code::kPermissionDenied;
  } else if (status == 429 || status >= 500) {
    code = Code::kUnavailable;
  }
  return Status(code, msg);
}

}  // namespace imgstore::registry
