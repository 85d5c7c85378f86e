// RegistryClient (see registry_client.h): scheme discovery, credentials and cert-dir loading,
// and the answer-a-401-once request loop.
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

Status RegistryClient::Ping() {
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

std::string RegistryClient::base_url() const { return base_; }

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

// TODO(issue 4, in progress): retries, thread safety, other-origin targets.
Result<std::unique_ptr<HttpStream>> RegistryClient::Send(const Request& request) {
  const std::string& method = request.method;
  const std::string& path = request.target;
  const std::string& scope = request.scope;
  if (base_.empty()) IMGSTORE_RETURN_IF_ERROR(Ping());
  for (int attempt = 0;; ++attempt) {
    HttpRequest req;
    req.method = method;
    req.url = path.starts_with("http://") || path.starts_with("https://") ? path : base_ + path;
    req.headers = request.headers;
    req.authorization = auth_.AuthorizationFor(scope);
    req.max_redirects = request.max_redirects;
    req.body = request.body;
    req.body_stream = request.body_stream;
    req.body_size = request.body_size;
    req.on_body_progress = request.on_body_progress;
    Result<std::unique_ptr<HttpStream>> s = http_.Open(req);
    if (!s.ok()) return s.status().WithContext("registry " + host_);
    if ((*s)->response().status != 401) return s;
    // At most two answers: the second 401 makes OnUnauthorized report the refusal.
    Status st = auth_.OnUnauthorized((*s)->response(), scope);
    if (!st.ok()) return st;
    if (attempt >= 1) {
      return Status(Code::kPermissionDenied,
                    "registry " + host_ + ": " + method + " " + path + " still answered HTTP 401");
    }
  }
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
