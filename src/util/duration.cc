// Durations: parsing for options like --lock-timeout, printing for messages.
#include "util/duration.h"

#include <cmath>
#include <cstdio>

namespace imgstore {

Result<std::chrono::nanoseconds> ParseDuration(std::string_view text) {
  auto bad = [&](const char* why) {
    return Status(Code::kInvalidArgument, "invalid duration \"" + std::string(text) + "\": " + why +
                                              " (examples: 500ms, 30s, 2m, 1h30m)");
  };
  if (text == "0") return std::chrono::nanoseconds(0);
  if (text.empty()) return bad("empty");
  long double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    if (i == start) return bad("expected a number");
    std::string number(text.substr(start, i - start));
    char* end = nullptr;
    long double value = std::strtold(number.c_str(), &end);
    if (end != number.c_str() + number.size()) return bad("malformed number");
    size_t unit_start = i;
    while (i < text.size() && text[i] >= 'a' && text[i] <= 'z') ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    long double scale;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us")
      scale = 1e3;
    else if (unit == "ms")
      scale = 1e6;
    else if (unit == "s")
      scale = 1e9;
    else if (unit == "m")
      scale = 60e9;
    else if (unit == "h")
      scale = 3600e9;
    else if (unit.empty())
      return bad("missing unit");
    else
      return bad("unknown unit");
    total += value * scale;
  }
  if (total > static_cast<long double>(std::chrono::nanoseconds::max().count())) {
    return bad("too long");
  }
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(total)));
}

std::string FormatDuration(std::chrono::nanoseconds d) {
  char buf[64];
  double ns = static_cast<double>(d.count());
  if (ns < 1e3) {
    std::snprintf(buf, sizeof(buf), "%.0fns", ns);
  } else if (ns < 1e6) {
    std::snprintf(buf, sizeof(buf), "%.1fus", ns / 1e3);
  } else if (ns < 1e9) {
    std::snprintf(buf, sizeof(buf), "%.0fms", ns / 1e6);
  } else if (ns < 60e9) {
    std::snprintf(buf, sizeof(buf), "%.1fs", ns / 1e9);
  } else {
    long long s = static_cast<long long>(ns / 1e9);
    if (s < 3600) {
      std::snprintf(buf, sizeof(buf), "%lldm%llds", s / 60, s % 60);
    } else {
      std::snprintf(buf, sizeof(buf), "%lldh%lldm", s / 3600, (s % 3600) / 60);
    }
  }
  return buf;
}

}  // namespace imgstore
