// Cleaning of tar entry names and recognition of OCI whiteouts (tar_entry.h).
#include "layers/tar_entry.h"

#include <vector>

namespace imgstore::layers {
namespace {

constexpr std::string_view kWhPrefix = ".wh.";
constexpr std::string_view kOpaqueName = ".wh..wh..opq";

std::string Printable(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\0') {
      out += "\\0";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[(c >> 4) & 0xf];
      out += kHex[c & 0xf];
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

}  // namespace

Result<std::string> CleanEntryName(std::string_view raw) {
  if (raw.empty()) return Status(Code::kInvalidArgument, "empty entry name");
  if (raw.find('\0') != std::string_view::npos) {
    return Status(Code::kInvalidArgument, "entry name " + Printable(raw) + " contains a NUL");
  }
  if (raw.front() == '/') {
    return Status(Code::kInvalidArgument, "entry name " + Printable(raw) + " is absolute");
  }
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string_view::npos) j = raw.size();
    std::string_view c = raw.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (parts.empty()) {
        return Status(Code::kInvalidArgument,
                      "entry name " + Printable(raw) + " leaves the root with '..'");
      }
      parts.pop_back();
      continue;
    }
    parts.push_back(c);
  }
  std::string out;
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k) out += '/';
    out += parts[k];
  }
  return out;
}

std::string_view EntryDir(std::string_view clean) {
  size_t slash = clean.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : clean.substr(0, slash);
}

std::string_view EntryBase(std::string_view clean) {
  size_t slash = clean.rfind('/');
  return slash == std::string_view::npos ? clean : clean.substr(slash + 1);
}

Result<WhiteoutName> ParseWhiteout(const std::string& clean) {
  WhiteoutName w;
  std::string_view base = EntryBase(clean);
  if (base.substr(0, kWhPrefix.size()) != kWhPrefix) return w;
  w.dir = std::string(EntryDir(clean));
  if (base == kOpaqueName) {
    w.kind = WhiteoutKind::kOpaque;
    return w;
  }
  std::string_view name = base.substr(kWhPrefix.size());
  if (name.empty() || name == "." || name == ".." ||
      name.substr(0, kWhPrefix.size()) == kWhPrefix) {
    return Status(Code::kInvalidArgument, "invalid whiteout " + Printable(clean));
  }
  w.kind = WhiteoutKind::kRemove;
  w.path = w.dir.empty() ? std::string(name) : w.dir + "/" + std::string(name);
  return w;
}

}  // namespace imgstore::layers
