// Output shared by the commands: docker's human sizes ("12.3MB") and ages ("3 days ago"), RFC 3339
// times, aligned tables, JSON text, and writing a whole output to stdout with one write(2).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "imgstore/status.hpp"

namespace imgstore::cli {

// JSON objects keep the order their keys were added in (and a parsed document its own order).
using Json = nlohmann::ordered_json;

// The wall clock, in Unix nanoseconds.
int64_t NowUnixNs();

// docker's size with 3 significant digits in SI units (1000): "0B", "512B", "5.59kB", "12.3MB".
// Unlike docker, a value that rounds to 1000 moves to the next unit ("1MB", not "1e+03kB").
std::string HumanSize(uint64_t bytes);

// docker's units.HumanDuration: "Less than a second", "5 seconds", "About a minute",
// "About an hour", "3 days", "2 weeks", "4 months", "2 years". Negative counts as zero.
std::string HumanDuration(int64_t ns);

// "3 days ago" for a time in the past; "N/A" when the time is unknown (0).
std::string HumanAge(int64_t then_unix_ns, int64_t now_unix_ns);

// RFC 3339 in UTC, the fraction without trailing zeros: "2024-05-01T10:00:00.5Z".
std::string FormatRfc3339(int64_t unix_ns);

// Columns aligned as docker's tabwriter aligns them: every column but the last is as wide as its
// widest cell plus 3 spaces, and at least 10.
class Table {
 public:
  explicit Table(std::vector<std::string> header);
  void AddRow(std::vector<std::string> row);  // as many cells as the header
  // Appends the header and the rows, one line each.
  void AppendTo(std::string& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;  // rows_[0] is the header
};

// Appends `text` as a JSON string literal: quoted, with '"', '\\' and control characters escaped.
// Other bytes pass through (the stored strings are valid UTF-8: they were parsed as JSON or as
// references). For outputs too large to build as a Json tree first (`list` of 10,000 images).
void AppendJsonString(std::string& out, std::string_view text);

// Indented JSON and a newline. Never throws (the documents were parsed or built from valid text).
std::string JsonText(const Json& value);

// Replaces the file `path` with `text` atomically and durably: a temporary file beside it,
// fsync, rename, fsync of the directory. Readers see the old content or the new, never a part.
Status WriteFileAtomically(const std::string& path, std::string_view text);

// Writes all of `text` to stdout (fd 1) with as few write(2) calls as the kernel allows.
Status WriteStdout(std::string_view text);

}  // namespace imgstore::cli
