// imgstore::Limits (include/imgstore/types.hpp): parsing "NAME=VALUE", checking a whole set,
// and handing each bound to the internal structs that apply it.
#include <cctype>
#include <charconv>
#include <limits>
#include <string>

#include "api/convert.h"
#include "imgstore/parse.hpp"

namespace imgstore {
namespace {

// One bound: its name (the Limits field), the field, whether it counts bytes (units allowed),
// whether 0 turns it off, and the largest value the internal struct can hold.
struct LimitField {
  std::string_view name;
  uint64_t Limits::*field;
  bool bytes;
  bool zero_is_off;
  uint64_t max = std::numeric_limits<uint64_t>::max();
};

constexpr uint64_t kIntMax = static_cast<uint64_t>(std::numeric_limits<int>::max());

constexpr LimitField kFields[] = {
    {"max_manifest_bytes", &Limits::max_manifest_bytes, true, false},
    {"max_config_bytes", &Limits::max_config_bytes, true, false},
    {"max_nesting_depth", &Limits::max_nesting_depth, false, false, kIntMax},
    {"max_index_depth", &Limits::max_index_depth, false, false, kIntMax},
    {"max_tar_bytes", &Limits::max_tar_bytes, true, true},
    {"max_entries", &Limits::max_entries, false, true},
    {"max_path_bytes", &Limits::max_path_bytes, true, true},
    {"max_xattr_bytes", &Limits::max_xattr_bytes, true, true},
    {"max_ratio", &Limits::max_ratio, false, true},
    {"zstd_max_window_log", &Limits::zstd_max_window_log, false, false, 31},
    {"max_archive_members", &Limits::max_archive_members, false, false},
    {"max_archive_header_bytes", &Limits::max_archive_header_bytes, true, false},
    {"max_manifest_json_bytes", &Limits::max_manifest_json_bytes, true, false},
};

Status Bad(std::string_view name, const std::string& why) {
  return Status(Code::kInvalidArgument, "limit " + std::string(name) + ": " + why);
}

// "123", and for byte bounds "4K", "512MiB", "2G" (binary units).
Result<uint64_t> ParseValue(const LimitField& f, std::string_view text) {
  uint64_t n = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, n);
  if (p == text.data() || ec == std::errc::invalid_argument) {
    return Bad(f.name, "\"" + std::string(text) + "\" is not a whole number");
  }
  if (ec == std::errc::result_out_of_range) return Bad(f.name, "too large");
  std::string_view unit(p, static_cast<size_t>(end - p));
  if (!unit.empty() && !std::isalpha(static_cast<unsigned char>(unit.front()))) {
    return Bad(f.name, "\"" + std::string(text) + "\" is not a whole number");
  }
  if (!unit.empty()) {
    if (!f.bytes) return Bad(f.name, "takes a plain number, not \"" + std::string(text) + "\"");
    int shift = 0;
    switch (unit.front()) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      case 'T':
        shift = 40;
        break;
      default:
        break;
    }
    std::string_view rest = unit.substr(1);
    if (shift == 0 || !(rest.empty() || rest == "iB")) {
      return Bad(f.name,
                 "unknown unit \"" + std::string(unit) + "\" (K, M, G, T or KiB, MiB, GiB, TiB)");
    }
    if (n > (std::numeric_limits<uint64_t>::max() >> shift)) return Bad(f.name, "too large");
    n <<= shift;
  }
  return n;
}

Status CheckValue(const LimitField& f, uint64_t v) {
  if (v == 0 && !f.zero_is_off) return Bad(f.name, "must be positive");
  if (v > f.max) return Bad(f.name, "at most " + std::to_string(f.max));
  if (f.field == &Limits::zstd_max_window_log && v < 10) {
    return Bad(f.name, "at least 10 (zstd's smallest window, 1 KiB)");
  }
  return Status::OK();
}

}  // namespace

std::vector<std::string_view> LimitNames() {
  std::vector<std::string_view> out;
  for (const LimitField& f : kFields) out.push_back(f.name);
  return out;
}

Status SetLimit(std::string_view name_equals_value, Limits* limits) {
  const size_t eq = name_equals_value.find('=');
  if (eq == std::string_view::npos) {
    return Status(Code::kInvalidArgument,
                  "limit \"" + std::string(name_equals_value) + "\": expected NAME=VALUE");
  }
  const std::string_view name = name_equals_value.substr(0, eq);
  for (const LimitField& f : kFields) {
    if (f.name != name) continue;
    Result<uint64_t> v = ParseValue(f, name_equals_value.substr(eq + 1));
    if (!v.ok()) return v.status();
    IMGSTORE_RETURN_IF_ERROR(CheckValue(f, *v));
    limits->*f.field = *v;
    return Status::OK();
  }
  std::string known;
  for (const LimitField& f : kFields) known += (known.empty() ? "" : ", ") + std::string(f.name);
  return Status(Code::kInvalidArgument,
                "unknown limit \"" + std::string(name) + "\" (known: " + known + ")");
}

namespace api {

Status CheckLimits(const Limits& limits) {
  for (const LimitField& f : kFields) IMGSTORE_RETURN_IF_ERROR(CheckValue(f, limits.*f.field));
  return Status::OK();
}

images::ParseLimits ToParseLimits(const Limits& l) {
  images::ParseLimits out;
  out.max_manifest_bytes = l.max_manifest_bytes;
  out.max_config_bytes = l.max_config_bytes;
  out.max_nesting_depth = static_cast<int>(l.max_nesting_depth);
  return out;
}

layers::DecompressLimits ToDecompressLimits(const Limits& l) {
  layers::DecompressLimits out;
  out.max_ratio = l.max_ratio;
  out.zstd_max_window_log = static_cast<int>(l.zstd_max_window_log);
  return out;
}

layers::ExtractLimits ToExtractLimits(const Limits& l) {
  layers::ExtractLimits out;
  out.max_tar_bytes = l.max_tar_bytes;
  out.max_entries = l.max_entries;
  out.max_path_bytes = l.max_path_bytes;
  out.max_xattr_bytes = l.max_xattr_bytes;
  out.decompress = ToDecompressLimits(l);
  return out;
}

transports::SourceLimits ToSourceLimits(const Limits& l) {
  transports::SourceLimits out;
  out.parse = ToParseLimits(l);
  out.tar.max_members = l.max_archive_members;
  out.tar.max_header_bytes = l.max_archive_header_bytes;
  out.decompress = ToDecompressLimits(l);
  out.max_manifest_json_bytes = l.max_manifest_json_bytes;
  return out;
}

}  // namespace api
}  // namespace imgstore
