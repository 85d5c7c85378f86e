// Media type classification: manifest kinds, layer compression, RFC 6838 syntax.
#include "images/media_types.h"

#include <array>

namespace imgstore::images {

ManifestKind ClassifyManifestMediaType(std::string_view media_type) {
  if (media_type == media_type::kOciManifest || media_type == media_type::kDockerManifest) {
    return ManifestKind::kManifest;
  }
  if (media_type == media_type::kOciIndex || media_type == media_type::kDockerManifestList) {
    return ManifestKind::kIndex;
  }
  if (media_type == media_type::kDockerSchema1Manifest ||
      media_type == media_type::kDockerSchema1SignedManifest) {
    return ManifestKind::kSchema1;
  }
  return ManifestKind::kUnknown;
}

Compression LayerCompression(std::string_view media_type) {
  using namespace media_type;  // NOLINT(google-build-using-namespace): a table of constants
  struct Entry {
    std::string_view type;
    Compression compression;
  };
  // Exact matches only: a suffix such as "+encrypted" (ocicrypt) or an unregistered "+lz4" must
  // come out unknown, so unpack refuses it instead of feeding ciphertext to a tar reader.
  static constexpr std::array<Entry, 10> kLayers = {{
      {kOciLayerTar, Compression::kNone},
      {kOciLayerTarGzip, Compression::kGzip},
      {kOciLayerTarZstd, Compression::kZstd},
      {kOciLayerNondistributableTar, Compression::kNone},
      {kOciLayerNondistributableTarGzip, Compression::kGzip},
      {kOciLayerNondistributableTarZstd, Compression::kZstd},
      {kDockerLayerTarGzip, Compression::kGzip},
      {kDockerForeignLayerTarGzip, Compression::kGzip},
      {kDockerLayerTar, Compression::kNone},
      {kDockerForeignLayerTar, Compression::kNone},
  }};
  for (const Entry& e : kLayers) {
    if (e.type == media_type) return e.compression;
  }
  return Compression::kUnknown;
}

std::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "none";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kUnknown:
      return "unknown";
  }
  return "unknown";
}

bool IsImageConfigMediaType(std::string_view media_type) {
  return media_type == media_type::kOciConfig || media_type == media_type::kDockerConfig;
}

bool IsForeignLayerMediaType(std::string_view media_type) {
  return media_type == media_type::kOciLayerNondistributableTar ||
         media_type == media_type::kOciLayerNondistributableTarGzip ||
         media_type == media_type::kOciLayerNondistributableTarZstd ||
         media_type == media_type::kDockerForeignLayerTarGzip ||
         media_type == media_type::kDockerForeignLayerTar;
}

namespace {

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 6838 restricted-name: an alphanumeric first character, then up to 126 of
// alphanumerics and "!#$&-^_.+".
bool IsRestrictedName(std::string_view s) {
  if (s.empty() || s.size() > 127 || !IsAlnum(s[0])) return false;
  for (char c : s.substr(1)) {
    if (IsAlnum(c)) continue;
    switch (c) {
      case '!':
      case '#':
      case '$':
      case '&':
      case '-':
      case '^':
      case '_':
      case '.':
      case '+':
        continue;
      default:
        return false;
    }
  }
  return true;
}

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool IsValidMediaTypeSyntax(std::string_view text) {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) return false;
  return IsRestrictedName(text.substr(0, slash)) && IsRestrictedName(text.substr(slash + 1));
}

std::string NormalizeContentType(std::string_view content_type) {
  const std::size_t semi = content_type.find(';');
  if (semi != std::string_view::npos) content_type = content_type.substr(0, semi);
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!content_type.empty() && blank(content_type.front())) content_type.remove_prefix(1);
  while (!content_type.empty() && blank(content_type.back())) content_type.remove_suffix(1);
  std::string out;
  out.reserve(content_type.size());
  for (char c : content_type) out += ToLower(c);
  if (out == "application/json" || out == "text/plain" || out == "application/octet-stream" ||
      out == "binary/octet-stream") {
    return "";
  }
  return out;
}

}  // namespace imgstore::images
