// Parsing and printing human durations ("500ms", "30s", "2m", "1h30m", "0").
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "util/status.h"

namespace imgstore {

// Accepts a sequence of <number><unit> with units ns, us, ms, s, m, h (Go's time.ParseDuration
// subset), or a bare "0". Fractions are allowed ("1.5s"). Negative durations are rejected.
Result<std::chrono::nanoseconds> ParseDuration(std::string_view text);
// "12.4s", "850ms", "3m20s": short and readable.
std::string FormatDuration(std::chrono::nanoseconds d);

}  // namespace imgstore
