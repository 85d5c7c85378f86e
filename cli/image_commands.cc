// What the image commands share (see image_commands.h).
#include "image_commands.h"

#include "imgstore/parse.hpp"
#include "store_open.h"

namespace imgstore::cli {

Result<std::unique_ptr<Store>> OpenExistingStore(const GlobalOptions& global) {
  // Store::Open creates a missing root; a read (or a change to an image that cannot exist)
  // must not leave an empty store behind, e.g. after a typo in --root.
  Result<bool> exists = Store::Exists(global.root);
  if (!exists.ok()) return exists.status();
  if (!*exists) return std::unique_ptr<Store>();
  return OpenStore(global);
}

Status NotKnownWithoutStore(std::string_view text) {
  auto is_hex = [](std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  };
  auto not_known = [](std::string_view what) {
    return Status(Code::kNotFound, "image not known: " + std::string(what));
  };
  if (text.empty()) return Status(Code::kInvalidArgument, "empty image name");
  if (text.starts_with("sha256:")) {
    if (IsDigest(text) || (is_hex(text.substr(7)) && text.size() - 7 >= kMinIdPrefix)) {
      return not_known(text);
    }
    return Status(Code::kInvalidArgument, "invalid image id \"" + std::string(text) + "\"");
  }
  Result<Reference> ref = ParseReference(text);
  if (ref.ok() && !(text.size() == 64 && is_hex(text))) {
    // A bare name means its "latest", as the store resolves it.
    const bool bare = ref->tag.empty() && ref->digest.empty();
    return not_known(bare ? ref->familiar + ":latest" : ref->familiar);
  }
  if (is_hex(text) && text.size() >= kMinIdPrefix) return not_known(text);
  return ref.status();
}

Status ReportAll(std::vector<Status> errors) {
  if (errors.empty()) return Status::OK();
  for (size_t i = 0; i + 1 < errors.size(); ++i) ReportError(errors[i]);
  return errors.back();
}

}  // namespace imgstore::cli
