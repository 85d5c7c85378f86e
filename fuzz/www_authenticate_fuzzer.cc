// Fuzz target: WWW-Authenticate header values (registry::ParseChallenges), as a registry or
// anything posing as one sends them. Each line of the input is one header value.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "registry/auth.h"

using imgstore::fuzz::Check;

namespace {

bool HasUpper(const std::string& s) {
  for (unsigned char c : s) {
    if (std::isupper(c)) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = imgstore::fuzz::AsText(data, size);
  std::vector<std::string> values;
  size_t start = 0;
  while (start <= input.size()) {
    size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    values.emplace_back(input.substr(start, end - start));
    start = end + 1;
  }
  for (const auto& c : imgstore::registry::ParseChallenges(values)) {
    Check(!c.scheme.empty() && !HasUpper(c.scheme), "a challenge scheme empty or not lowercased");
    for (const auto& [name, value] : c.params) {
      Check(!name.empty() && !HasUpper(name), "a challenge parameter name empty or not lowercased");
      (void)value;
    }
    auto scope = c.params.find("scope");
    auto service = c.params.find("service");
    (void)imgstore::registry::TokenQuery(service == c.params.end() ? "" : service->second,
                                         scope == c.params.end() ? "" : scope->second);
  }
  return 0;
}
