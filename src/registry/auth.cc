// Challenge parsing, Basic and the Bearer token flow (see auth.h).
#include "registry/auth.h"

#include <curl/curl.h>

#include <cctype>
#include <memory>
#include <nlohmann/json.hpp>

#include "registry/registry_client.h"

namespace imgstore::registry {
namespace {

constexpr size_t kMaxTokenAnswer = 1 << 20;
// A token is dropped this long before it expires, so that it does not expire in flight.
constexpr std::chrono::seconds kExpiryMargin{10};
// The spec's default lifetime when the token server gives none.
constexpr std::chrono::seconds kDefaultTokenLifetime{60};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A small RFC 7235 scanner over one header value.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool AtEnd() {
    SkipSpace();
    return i_ >= s_.size();
  }
  bool Consume(char c) {
    SkipSpace();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  std::string Token() {
    SkipSpace();
    size_t start = i_;
    while (i_ < s_.size() && IsTokenChar(s_[i_])) ++i_;
    return std::string(s_.substr(start, i_ - start));
  }
  // A token or a quoted string (with backslash escapes).
  std::optional<std::string> Value() {
    SkipSpace();
    if (i_ < s_.size() && s_[i_] == '"') {
      std::string out;
      for (++i_; i_ < s_.size(); ++i_) {
        if (s_[i_] == '\\' && i_ + 1 < s_.size()) {
          out += s_[++i_];
        } else if (s_[i_] == '"') {
          ++i_;
          return out;
        } else {
          out += s_[i_];
        }
      }
      return std::nullopt;  // unterminated
    }
    std::string t = Token();
    if (t.empty()) return std::nullopt;
    return t;
  }
  size_t pos() const { return i_; }
  void set_pos(size_t p) { i_ = p; }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

std::string UrlEscape(const std::string& s) {
  std::unique_ptr<char, decltype(&curl_free)> e(
      curl_easy_escape(nullptr, s.c_str(), static_cast<int>(s.size())), &curl_free);
  return e ? std::string(e.get()) : std::string();
}

}  // namespace

std::vector<Challenge> ParseChallenges(const std::vector<std::string>& header_values) {
  std::vector<Challenge> out;
  for (const std::string& value : header_values) {
    Scanner sc(value);
    while (!sc.AtEnd()) {
      std::string scheme = sc.Token();
      if (scheme.empty()) {
        // Skip a malformed piece up to the next comma.
        if (!sc.Consume(',')) break;
        continue;
      }
      Challenge c;
      c.scheme = Lower(scheme);
      // Parameters: name=value, separated by commas, until the next scheme.
      while (!sc.AtEnd()) {
        size_t save = sc.pos();
        sc.Consume(',');
        std::string name = sc.Token();
        if (name.empty() || !sc.Consume('=')) {
          sc.set_pos(save);
          if (sc.Consume(',')) continue;
          break;
        }
        std::optional<std::string> v = sc.Value();
        if (!v) break;
        c.params[Lower(name)] = *v;
      }
      out.push_back(std::move(c));
      sc.Consume(',');
    }
  }
  return out;
}

std::string RepositoryScope(std::string_view path, std::string_view actions) {
  return "repository:" + std::string(path) + ":" + std::string(actions);
}

const std::string& Authenticator::username() const {
  static const std::string kNone;
  return credentials_ ? credentials_->username : kNone;
}

std::string TokenQuery(const std::string& service, const std::string& scope) {
  std::string query;
  auto add = [&](const char* key, std::string_view value) {
    if (!query.empty()) query += "&";
    query += key;
    query += "=";
    query += UrlEscape(std::string(value));
  };
  if (!service.empty()) add("service", service);
  std::string_view rest = scope;
  while (!rest.empty()) {
    size_t space = rest.find(' ');
    std::string_view one = rest.substr(0, space);
    if (!one.empty()) add("scope", one);
    rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  }
  return query;
}

std::string Authenticator::AuthorizationFor(const std::string& scope) {
  if (bearer_) {
    auto it = tokens_.find(scope);
    if (it == tokens_.end()) return "";
    if (std::chrono::steady_clock::now() >= it->second.expires) {
      // Expired by our clock: forgotten, so that the 401 this request gets fetches a new one
      // instead of counting as a refusal.
      tokens_.erase(it);
      return "";
    }
    ++it->second.handed_out;
    return "Bearer " + it->second.value;
  }
  if (basic_ && credentials_) {
    return "Basic " + Base64Encode(credentials_->username + ":" + credentials_->password);
  }
  return "";
}

void Authenticator::OnPing(const HttpResponse& response) {
  if (response.status != 401) return;
  for (const Challenge& c : ParseChallenges(response.Headers("www-authenticate"))) {
    if (c.scheme == "bearer" && c.params.count("realm") != 0) {
      bearer_ = c;
      return;
    }
    if (c.scheme == "basic") {
      basic_ = true;
      return;
    }
  }
}

Status Authenticator::OnUnauthorized(const HttpResponse& response, const std::string& scope) {
  const std::string who = "registry " + registry_;
  std::vector<Challenge> challenges = ParseChallenges(response.Headers("www-authenticate"));
  for (const Challenge& c : challenges) {
    if (c.scheme == "bearer" && c.params.count("realm") != 0) {
      bearer_ = c;
      auto it = tokens_.find(scope);
      if (it != tokens_.end()) {
        // The token server granted fewer actions than asked: a new token would be the same
        // (the token stays: it is good for what it grants, and other threads see this answer).
        auto error = c.params.find("error");
        if (error != c.params.end() && error->second == "insufficient_scope") {
          return TokenRefused(c, scope);
        }
        // A token that served earlier requests was refused because it expired (or was revoked)
        // before the lifetime it was given: a new one is fetched. One refused on its first use
        // (a registry that does not say why) would be refused again.
        const bool used_before = it->second.handed_out > 1;
        tokens_.erase(it);
        if (!used_before) return TokenRefused(c, scope);
      }
      return FetchToken(c, scope);
    }
    if (c.scheme == "basic") {
      if (!credentials_) {
        return Status(Code::kPermissionDenied,
                      who +
                          ": authentication required (HTTP 401); give credentials with --creds "
                          "USER:PASSWORD or --authfile FILE");
      }
      if (basic_) {
        return Status(Code::kPermissionDenied, who + ": the credentials of user \"" +
                                                   credentials_->username +
                                                   "\" were rejected (HTTP 401)");
      }
      basic_ = true;
      return Status::OK();
    }
  }
  return Status(Code::kPermissionDenied,
                who + ": HTTP 401 without a challenge imgstore can answer (Basic or Bearer)");
}

Status Authenticator::TokenRefused(const Challenge& challenge, const std::string& scope) const {
  // distribution names the reason in the challenge's error parameter; other registries may not.
  auto error = challenge.params.find("error");
  std::string reason = "insufficient scope?";
  if (error != challenge.params.end() && error->second == "insufficient_scope") {
    reason = "insufficient scope";
  } else if (error != challenge.params.end() && error->second == "invalid_token") {
    reason = "invalid token";
  }
  std::string msg = "registry " + registry_ + ": the " + (credentials_ ? "" : "anonymous ") +
                    "token for " + (scope.empty() ? std::string("registry access") : scope) +
                    " was refused (HTTP 401: " + reason + ")";
  if (!credentials_) msg += "; give credentials with --creds USER:PASSWORD or --authfile FILE";
  return Status(Code::kPermissionDenied, msg);
}

Status Authenticator::FetchToken(const Challenge& challenge, const std::string& scope) {
  const std::string& realm = challenge.params.at("realm");
  const std::string who = "registry " + registry_ + ": token server " + realm;
  if (!realm.starts_with("https://") && !realm.starts_with("http://")) {
    return Status(Code::kPermissionDenied, who + ": the realm is not an http(s) URL");
  }
  // Credentials go in clear over http: only to a loopback token server (as to a loopback
  // registry), or when the user turned verification off.
  if (credentials_ && realm.starts_with("http://") && http_->options().tls.verify &&
      !IsLoopbackHost(OriginOf(realm).substr(7))) {
    return Status(Code::kPermissionDenied,
                  who +
                      ": imgstore does not send credentials over plain http to a host other "
                      "than this one (use --tls-verify=false to allow it)");
  }
  auto service = challenge.params.find("service");
  const std::string query =
      TokenQuery(service != challenge.params.end() ? service->second : "", scope);
  HttpRequest req;
  req.url = realm;
  if (!query.empty()) req.url += (realm.find('?') == std::string::npos ? "?" : "&") + query;
  req.headers.push_back("Accept: application/json");
  if (credentials_) {
    req.authorization =
        "Basic " + Base64Encode(credentials_->username + ":" + credentials_->password);
  }
  Result<std::unique_ptr<HttpStream>> s = http_->Open(req);
  if (!s.ok()) return s.status().WithContext("registry " + registry_ + ": token");
  Result<std::string> body = (*s)->ReadAll(kMaxTokenAnswer);
  if (!body.ok()) return body.status().WithContext(who);
  long status = (*s)->response().status;
  if (status == 401 || status == 403) {
    const std::string http = " (HTTP " + std::to_string(status) + ")";
    if (!credentials_) {
      return Status(Code::kPermissionDenied,
                    who + " refused " + (scope.empty() ? "anonymous access" : scope) +
                        " without credentials" + http +
                        "; give credentials with --creds USER:PASSWORD or --authfile FILE");
    }
    const std::string user = "user \"" + credentials_->username + "\"";
    return Status(Code::kPermissionDenied,
                  who + " refused " +
                      (scope.empty() ? "the credentials of " + user : scope + " for " + user) +
                      http);
  }
  if (status != 200) {
    return Status(Code::kUnavailable, who + ": HTTP " + std::to_string(status));
  }
  nlohmann::json doc = nlohmann::json::parse(*body, nullptr, false);
  std::string token;
  if (doc.is_object()) {
    for (const char* key : {"token", "access_token"}) {
      auto it = doc.find(key);
      if (it != doc.end() && it->is_string() && !it->get<std::string>().empty()) {
        token = it->get<std::string>();
        break;
      }
    }
  }
  if (token.empty()) return Status(Code::kUnavailable, who + ": the answer has no token");
  std::chrono::seconds lifetime = kDefaultTokenLifetime;
  auto exp = doc.find("expires_in");
  if (exp != doc.end() && exp->is_number_integer() && exp->get<long long>() > 0) {
    lifetime = std::chrono::seconds(exp->get<long long>());
  }
  auto expires = std::chrono::steady_clock::now() + lifetime -
                 std::min<std::chrono::seconds>(kExpiryMargin, lifetime / 2);
  tokens_[scope] = Token{std::move(token), expires, 0};
  return Status::OK();
}

}  // namespace imgstore::registry
