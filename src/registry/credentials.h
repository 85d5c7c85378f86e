// Registry credentials: a user name and password (or identity token), from `--creds USER:PASS`
// or from the auth files podman and docker write (containers auth.json, docker config.json).
//
// A password is a secret: nothing here puts it in an error message, and Credentials has no
// printing helper on purpose.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace imgstore::registry {

struct Credentials {
  std::string username;
  std::string password;
};

// "USER:PASS" (the password may contain ':'). kInvalidArgument without a ':' or with an empty
// user, never quoting the text.
Result<Credentials> ParseCredentials(std::string_view user_pass);

// The auth files searched when none is named, in order: $REGISTRY_AUTH_FILE,
// ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json,
// ~/.docker/config.json. Unset variables skip their entry.
std::vector<std::string> DefaultAuthFiles();

// The credentials an auth file holds for `repository` ("127.0.0.1:5000/a/b",
// "docker.io/library/alpine"): the entry under "auths" whose key is the longest match among the
// repository and its parent paths up to the registry domain (containers auth.json allows
// per-repository keys). Keys may carry a scheme and a path ("https://index.docker.io/v1/"), as
// docker writes them. The entry's "auth" is base64("user:pass"). nullopt when the file has no
// entry; kNotFound when the file is missing; kInvalidArgument for a malformed file or entry
// (naming the file and the key, never the content).
Result<std::optional<Credentials>> LookupAuthFile(const std::string& path,
                                                  std::string_view repository);

// Standard base64 (RFC 4648 with padding).
std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace imgstore::registry
