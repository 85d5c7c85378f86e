// Reference parsing: a hand-written scanner for distribution/reference's grammar, with docker's
// normalization (default domain, "library/" prefix, index.docker.io). A scanner rather than
// std::regex, so that each mistake gets its own message.
#include "images/reference.h"

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "util/quote.h"

namespace imgstore::images {
namespace {

constexpr std::string_view kLegacyDefaultDomain = "index.docker.io";
constexpr std::string_view kDefaultEndpoint = "registry-1.docker.io";
constexpr std::string_view kLocalhost = "localhost";
constexpr std::size_t kMaxNameLength = 255;  // domain/path, after normalization
constexpr std::size_t kMaxTagLength = 128;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLowerAlnum(char c) { return IsLower(c) || IsDigit(c); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || IsUpper(c); }
bool IsWord(char c) { return IsAlnum(c) || c == '_'; }  // regexp \w
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Reason text for one failed rule; ParseReference prefixes it with the quoted input.
using Reason = std::optional<std::string>;

// docker refuses a bare 64-hex string as a name, because it reads as an image ID.
bool IsImageIdLike(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!IsDigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

// tag := [\w][\w.-]{0,127}
Reason CheckTag(std::string_view tag) {
  if (tag.empty()) return "empty tag after ':'";
  if (tag.size() > kMaxTagLength) {
    return "tag must be at most 128 characters, got " + std::to_string(tag.size());
  }
  if (!IsWord(tag[0])) return "tag must start with a letter, digit or '_'";
  for (char c : tag) {
    if (!IsWord(c) && c != '.' && c != '-')
      return "invalid character " + Quote({&c, 1}) + " in tag";
  }
  return std::nullopt;
}

// domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool ValidHostLabel(std::string_view label) {
  if (label.empty() || !IsAlnum(label.front()) || !IsAlnum(label.back())) return false;
  for (char c : label) {
    if (!IsAlnum(c) && c != '-') return false;
  }
  return true;
}

// domain := (host-name | '[' ipv6 ']') [':' port]
Reason CheckDomain(std::string_view domain) {
  std::string_view host = domain;
  std::string_view port;
  bool has_port = false;
  if (domain.starts_with('[')) {
    const std::size_t close = domain.find(']');
    if (close == std::string_view::npos) return "unterminated IPv6 address in domain";
    const std::string_view addr = domain.substr(1, close - 1);
    if (addr.empty()) return "empty IPv6 address in domain";
    for (char c : addr) {
      if (!IsHexDigit(c) && c != ':') return "invalid IPv6 address in domain " + Quote(domain);
    }
    const std::string_view after = domain.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return "unexpected text after IPv6 address in domain " + Quote(domain);
      port = after.substr(1);
      has_port = true;
    }
  } else {
    const std::size_t colon = domain.find(':');
    if (colon != std::string_view::npos) {
      host = domain.substr(0, colon);
      port = domain.substr(colon + 1);
      has_port = true;
    }
    std::string_view rest = host;
    while (true) {
      const std::size_t dot = rest.find('.');
      if (!ValidHostLabel(rest.substr(0, dot))) return "invalid domain " + Quote(domain);
      if (dot == std::string_view::npos) break;
      rest = rest.substr(dot + 1);
    }
  }
  if (has_port) {
    if (port.empty()) return "empty port in domain " + Quote(domain);
    unsigned long value = 0;
    for (char c : port) {
      if (!IsDigit(c)) return "invalid port in domain " + Quote(domain);
      value = value * 10 + static_cast<unsigned long>(c - '0');
      if (value > 65535) return "port out of range in domain " + Quote(domain);
    }
    if (value == 0) return "port out of range in domain " + Quote(domain);
  }
  return std::nullopt;
}

// path-component := [a-z0-9]+ ( ([._] | __ | -+) [a-z0-9]+ )*
Reason CheckPathComponent(std::string_view c) {
  for (char ch : c) {
    if (!IsLowerAlnum(ch) && ch != '.' && ch != '_' && ch != '-') {
      return "invalid character " + Quote({&ch, 1}) + " in repository name " + Quote(c);
    }
  }
  if (!IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) {
    return "path component " + Quote(c) + " must start and end with a lowercase letter or digit";
  }
  std::size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    const std::string_view sep = c.substr(i, j - i);
    const bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (sep != "." && sep != "_" && sep != "__" && !dashes) {
      return "invalid separator " + Quote(sep) + " in path component " + Quote(c) +
             " (allowed: '.', '_', '__' or dashes)";
    }
    i = j;
  }
  return std::nullopt;
}

// path := path-component ('/' path-component)*
Reason CheckPath(std::string_view path) {
  if (path.empty()) return "missing repository name after the domain";
  for (char c : path) {
    if (IsUpper(c)) return "repository name must be lowercase";
  }
  if (path.front() == '/') return "repository name must not start with '/'";
  if (path.back() == '/') return "repository name must not end with '/'";
  std::string_view rest = path;
  while (true) {
    const std::size_t slash = rest.find('/');
    const std::string_view component = rest.substr(0, slash);
    if (component.empty()) return "empty path component (\"//\") in repository name";
    if (Reason r = CheckPathComponent(component)) return r;
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  return std::nullopt;
}

// docker's rule: a first component is a registry domain only if it could not be a Docker Hub
// user: it has a '.' or a ':', or is "localhost".
std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (IsUpper(c)) c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// "localhost" is compared without case, like every host name here.
bool LooksLikeDomain(std::string_view first) {
  return first.find_first_of(".:") != std::string_view::npos ||
         (first.size() == kLocalhost.size() && AsciiLower(first) == kLocalhost);
}

}  // namespace

Result<Reference> ParseReference(std::string_view text) {
  const auto fail = [text](std::string_view reason) {
    std::string msg = "invalid reference " + Quote(text) + ": ";
    msg += reason;
    return Status(Code::kInvalidArgument, std::move(msg));
  };

  if (text.empty()) return fail("empty reference");
  if (IsImageIdLike(text)) return fail("cannot specify 64-byte hexadecimal strings");
  if (const std::size_t scheme = text.find("://"); scheme != std::string_view::npos) {
    return fail("a reference has no URL scheme (drop " + Quote(text.substr(0, scheme + 3)) + ")");
  }

  Reference ref;
  std::string_view rest = text;

  // name [':' tag] ['@' digest]: a digest has no '@', so the first '@' starts it.
  if (const std::size_t at = rest.find('@'); at != std::string_view::npos) {
    Result<Digest> digest = Digest::Parse(rest.substr(at + 1));
    if (!digest.ok()) return fail(digest.status().message());
    ref.digest = std::move(digest).value();
    rest = rest.substr(0, at);
  }

  // A ':' after the last '/' starts the tag; one before it belongs to a domain's port.
  const std::size_t colon = rest.rfind(':');
  const std::size_t last_slash = rest.rfind('/');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    const std::string_view tag = rest.substr(colon + 1);
    if (Reason r = CheckTag(tag)) return fail(*r);
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return fail("missing repository name");

  std::string_view path = rest;
  if (const std::size_t slash = rest.find('/'); slash != std::string_view::npos) {
    const std::string_view first = rest.substr(0, slash);
    if (LooksLikeDomain(first)) {
      if (Reason r = CheckDomain(first)) return fail(*r);
      // Host names are case-insensitive: one spelling keeps one repository under one name.
      ref.domain = AsciiLower(first);
      path = rest.substr(slash + 1);
    }
  }
  if (Reason r = CheckPath(path)) return fail(*r);

  if (ref.domain.empty() || ref.domain == kLegacyDefaultDomain) ref.domain = kDefaultDomain;
  if (ref.domain == kDefaultDomain && path.find('/') == std::string_view::npos) {
    ref.path = kOfficialRepoPrefix;
  }
  ref.path += path;

  const std::size_t name_length = ref.domain.size() + 1 + ref.path.size();
  if (name_length > kMaxNameLength) {
    return fail("repository name must not be more than 255 characters, got " +
                std::to_string(name_length) + " counting the domain");
  }
  return ref;
}

std::string Reference::Repository() const {
  std::string out;
  out.reserve(domain.size() + 1 + path.size());
  out += domain;
  out += '/';
  out += path;
  return out;
}

std::string Reference::String() const {
  std::string out = Repository();
  if (tag) out += ':' + *tag;
  if (digest) out += '@' + digest->ToString();
  return out;
}

std::string Reference::FamiliarRepository() const {
  if (domain != kDefaultDomain) return Repository();
  std::string_view short_path = path;
  if (short_path.starts_with(kOfficialRepoPrefix) &&
      short_path.substr(kOfficialRepoPrefix.size()).find('/') == std::string_view::npos) {
    short_path.remove_prefix(kOfficialRepoPrefix.size());
  }
  // docker drops "docker.io/" even when the path then starts like a domain ("docker.io/foo.bar/x"
  // shows as "foo.bar/x", which parses as registry foo.bar). Keeping it makes the short form
  // parse back to this reference.
  const std::size_t slash = short_path.find('/');
  if (slash != std::string_view::npos && LooksLikeDomain(short_path.substr(0, slash))) {
    return Repository();
  }
  return std::string(short_path);
}

std::string Reference::Familiar() const {
  std::string out = FamiliarRepository();
  if (tag) out += ':' + *tag;
  if (digest) out += '@' + digest->ToString();
  return out;
}

Reference Reference::WithDefaultTag() const {
  Reference out = *this;
  if (!out.tag && !out.digest) out.tag = std::string(kDefaultTag);
  return out;
}

std::string Reference::RegistryHost() const { return images::RegistryHost(domain); }

std::string RegistryHost(std::string_view domain) {
  if (domain == kDefaultDomain) return std::string(kDefaultEndpoint);
  return std::string(domain);
}

}  // namespace imgstore::images
