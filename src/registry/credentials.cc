// Credentials from --creds and from auth files (see credentials.h).
#include "registry/credentials.h"

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "util/env.h"

namespace imgstore::registry {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// An auth file is a few KiB; the bound keeps a wrong path (a device, a huge file) harmless.
constexpr uint64_t kMaxAuthFileBytes = 1 << 20;

// "https://index.docker.io/v1/" → "docker.io"; "quay.io/a/" → "quay.io/a".
std::string NormalizeKey(std::string_view key) {
  if (key.starts_with("https://")) key.remove_prefix(8);
  if (key.starts_with("http://")) key.remove_prefix(7);
  while (key.ends_with("/")) key.remove_suffix(1);
  std::string k(key);
  if (k == "index.docker.io/v1" || k == "index.docker.io" || k == "registry-1.docker.io") {
    return "docker.io";
  }
  if (k.starts_with("index.docker.io/")) return "docker.io/" + k.substr(16);
  return k;
}

}  // namespace

Result<Credentials> ParseCredentials(std::string_view user_pass) {
  size_t colon = user_pass.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status(Code::kInvalidArgument, "credentials must be USER:PASSWORD");
  }
  return Credentials{std::string(user_pass.substr(0, colon)),
                     std::string(user_pass.substr(colon + 1))};
}

std::vector<std::string> DefaultAuthFiles() {
  std::vector<std::string> out;
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
  };
  if (!env("REGISTRY_AUTH_FILE").empty()) out.push_back(env("REGISTRY_AUTH_FILE"));
  if (!env("XDG_RUNTIME_DIR").empty()) {
    out.push_back(env("XDG_RUNTIME_DIR") + "/containers/auth.json");
  }
  if (!env("HOME").empty()) {
    out.push_back(env("HOME") + "/.config/containers/auth.json");
    out.push_back(env("HOME") + "/.docker/config.json");
  }
  return out;
}

Result<std::optional<Credentials>> LookupAuthFile(const std::string& path,
                                                  std::string_view repository) {
  Result<std::string> text = Env::Default()->ReadFileToString(path, kMaxAuthFileBytes);
  if (!text.ok()) return text.status();
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Status(Code::kInvalidArgument, "auth file " + path + ": not a JSON object");
  }
  auto auths = doc.find("auths");
  if (auths == doc.end()) return std::optional<Credentials>();
  if (!auths->is_object()) {
    return Status(Code::kInvalidArgument, "auth file " + path + ": \"auths\" is not an object");
  }
  // Longest key that is the repository or one of its parents down to the domain.
  const nlohmann::json* best = nullptr;
  std::string best_key;
  size_t best_len = 0;
  for (auto it = auths->begin(); it != auths->end(); ++it) {
    std::string k = NormalizeKey(it.key());
    bool match = repository == k || (repository.starts_with(k) && repository.size() > k.size() &&
                                     repository[k.size()] == '/');
    if (match && k.size() >= best_len) {
      best = &it.value();
      best_key = it.key();
      best_len = k.size();
    }
  }
  if (best == nullptr) return std::optional<Credentials>();
  const std::string what = "auth file " + path + ", entry \"" + best_key + "\"";
  if (!best->is_object()) return Status(Code::kInvalidArgument, what + ": not an object");
  auto auth = best->find("auth");
  if (auth == best->end() || !auth->is_string() || auth->get<std::string>().empty()) {
    // Entries that defer to a credential helper have no "auth": not supported yet.
    return std::optional<Credentials>();
  }
  std::optional<std::string> decoded = Base64Decode(auth->get<std::string>());
  if (!decoded) return Status(Code::kInvalidArgument, what + ": \"auth\" is not base64");
  Result<Credentials> c = ParseCredentials(*decoded);
  if (!c.ok()) return Status(Code::kInvalidArgument, what + ": \"auth\" is not USER:PASSWORD");
  return std::optional<Credentials>(std::move(*c));
}

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) |
                 uint8_t(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '=') {
      if (i + 2 < text.size()) return std::nullopt;  // padding only at the end
      ++pad;
      continue;
    }
    if (pad > 0) return std::nullopt;
    size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace imgstore::registry
