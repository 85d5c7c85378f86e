// Quote(): shows untrusted text (a reference, a digest from a registry) inside a one-line error.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace imgstore {

// Returns text in double quotes, with '"', '\\' and every byte outside printable ASCII escaped
// (\n, \t, \xNN), so that an error message stays on one line whatever the input held. Input
// longer than max_chars is cut there and marked with "..." after the closing quote.
std::string Quote(std::string_view text, std::size_t max_chars = 256);

}  // namespace imgstore
