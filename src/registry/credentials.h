// Registry credentials: a user name and password, from `--creds USER:PASS`, from the auth files
// podman and docker write (containers auth.json, docker config.json) or from the docker
// credential helpers those files name (credHelpers, credsStore); and the edits of an auth file
// that `imgstore login` and `logout` make.
//
// A password is a secret: nothing here puts it in an error message or on a command line, and
// Credentials has no printing helper on purpose.
#pragma once

#include <chrono>
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

// The auth file login writes and logout edits: $REGISTRY_AUTH_FILE, else
// ${XDG_RUNTIME_DIR}/containers/auth.json, else ~/.config/containers/auth.json (as podman); ""
// when none of the variables is set.
std::string LoginAuthFile();

// An auth-file key as it is compared: no scheme, no trailing '/', docker.io's aliases
// ("https://index.docker.io/v1/", "registry-1.docker.io") as "docker.io".
std::string NormalizeAuthKey(std::string_view key);

// The credentials an auth file holds for `repository` ("127.0.0.1:5000/a/b",
// "docker.io/library/alpine"), in this order:
//   1. "credHelpers": {"REGISTRY": "NAME"}: credential helper NAME (see RunCredentialHelper);
//   2. "auths": the entry whose key is the longest match among the repository and its parent
//      paths up to the registry domain (containers auth.json allows per-repository keys), when
//      it has "auth": base64("user:pass");
//   3. "credsStore": "NAME": credential helper NAME for every registry.
// Keys may carry a scheme and a path ("https://index.docker.io/v1/"), as docker writes them.
// nullopt when nothing applies; kNotFound when the file is missing; kInvalidArgument for a
// malformed file or entry (naming the file and the key, never the content); a helper's errors.
Result<std::optional<Credentials>> LookupAuthFile(const std::string& path,
                                                  std::string_view repository);

// Runs the docker credential helper `docker-credential-NAME get` (found in $PATH; no shell),
// with `server` ("127.0.0.1:5000", "https://index.docker.io/v1/" for docker.io) on its stdin,
// and reads {"Username": ..., "Secret": ...} from its stdout. nullopt when the helper says it
// has no credentials for the server ("credentials not found"). Errors name the helper and the
// server, never its output: kNotFound when it is not installed, kPermissionDenied when it fails
// or answers something else than credentials, kUnavailable when it does not answer within
// `timeout`.
Result<std::optional<Credentials>> RunCredentialHelper(
    const std::string& name, const std::string& server,
    std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Sets auths[key] = {"auth": base64(user:pass)} in the auth file at `path`, keeping its other
// entries and every other top-level key. The file is replaced atomically (temporary file and
// rename) with mode 0600; a missing parent directory is created 0700; a missing file is a new
// one. An existing file that is not a JSON object (or whose "auths" is not one) is left as it
// is: kInvalidArgument naming the file.
Status StoreAuthFileEntry(const std::string& path, const std::string& key,
                          const Credentials& credentials);

// Removes the entries of "auths" whose key means `key` (NormalizeAuthKey of both), rewriting
// the file as StoreAuthFileEntry does. false when there was none (or no file): nothing written.
Result<bool> RemoveAuthFileEntry(const std::string& path, const std::string& key);

// Removes every entry of "auths" (other top-level keys stay); the number removed. A missing file
// is 0 entries, and is not created.
Result<size_t> RemoveAllAuthFileEntries(const std::string& path);

// Standard base64 (RFC 4648 with padding).
std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace imgstore::registry
