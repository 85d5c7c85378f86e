// The names of untrusted tar entries: lexical cleaning (refusing names that leave the root) and
// the OCI whiteout forms. Pure string functions, no file system. Internal to src/layers.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace imgstore::layers {

// Cleans a tar entry name or hardlink target: "./a//b/" → "a/b", "a/../b" → "b", "." or "./"
// → "" (the root itself). kInvalidArgument, naming the raw name, for an empty name, a NUL, an
// absolute name, or ".." that leaves the root ("a/../../x").
Result<std::string> CleanEntryName(std::string_view raw);

// The directory part of a cleaned name ("a/b" → "a", "b" → "") and its last component.
std::string_view EntryDir(std::string_view clean);
std::string_view EntryBase(std::string_view clean);

enum class WhiteoutKind { kNone, kRemove, kOpaque };

struct WhiteoutName {
  WhiteoutKind kind = WhiteoutKind::kNone;
  std::string dir;   // the directory the whiteout is in ("" for the root)
  std::string path;  // kRemove: the cleaned path it removes (dir + "/" + NAME)
};

// Whether a cleaned name is an OCI whiteout: "D/.wh.NAME" (remove D/NAME) or "D/.wh..wh..opq"
// (D is opaque). kInvalidArgument for ".wh." alone, any other ".wh..wh." name, and NAME "." or
// "..", which would remove the directory itself or its parent.
Result<WhiteoutName> ParseWhiteout(const std::string& clean);

}  // namespace imgstore::layers
