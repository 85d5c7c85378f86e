// What the image commands share (see image_commands.h).
#include "cli/image_commands.h"

#include <unistd.h>

#include <cerrno>

#include "cli/store_open.h"
#include "images/reference.h"

namespace imgstore::cli {

Result<std::unique_ptr<store::Store>> OpenExistingStore(const GlobalOptions& global) {
  // Store::Open creates a missing root; a read (or a change to an image that cannot exist)
  // must not leave an empty store behind, e.g. after a typo in --root.
  const std::string db = global.root + "/meta.db";
  if (::access(db.c_str(), F_OK) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::unique_ptr<store::Store>();
    return Status::FromErrno(errno, "open store " + global.root + ": " + db);
  }
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
    if (Digest::Parse(text).ok() ||
        (is_hex(text.substr(7)) && text.size() - 7 >= store::kMinIdPrefix)) {
      return not_known(text);
    }
    return Status(Code::kInvalidArgument, "invalid image id \"" + std::string(text) + "\"");
  }
  Result<images::Reference> ref = images::ParseReference(text);
  if (ref.ok() && !(text.size() == 64 && is_hex(text))) {
    return not_known(ref->digest ? ref->Familiar() : ref->WithDefaultTag().Familiar());
  }
  if (is_hex(text) && text.size() >= store::kMinIdPrefix) return not_known(text);
  return ref.status();
}

Status ReportAll(std::vector<Status> errors) {
  if (errors.empty()) return Status::OK();
  for (size_t i = 0; i + 1 < errors.size(); ++i) ReportError(errors[i]);
  return errors.back();
}

}  // namespace imgstore::cli
