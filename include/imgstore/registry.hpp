// Logging in to registries and out: the credentials that pulls and pushes then find in the
// auth file (RegistryOptions::auth_file, or the default one) without being given them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "imgstore/status.hpp"
#include "imgstore/types.hpp"

namespace imgstore {

// The auth-file key of a registry given as "HOST[:PORT]", "HOST[:PORT]/NAMESPACE" (credentials
// for that part of the registry), optionally with "docker://" or "https://" and a trailing '/':
// "127.0.0.1:5000", "127.0.0.1:5000/team". kInvalidArgument "invalid registry ...".
Result<std::string> RegistryKey(std::string_view registry);

// The auth file login writes and logout edits: $REGISTRY_AUTH_FILE, else
// $XDG_RUNTIME_DIR/containers/auth.json, else ~/.config/containers/auth.json (as podman).
// kFailedPrecondition when none of the variables is set.
Result<std::string> DefaultAuthFile();

// Checks `credentials` against `registry` (GET /v2/ answering its challenge: Basic, or a token
// without repository scope) and, when the registry accepts them, stores them in
// options.auth_file ("": DefaultAuthFile()). options.credentials is ignored; the TLS, cert_dir
// and retry settings apply. Errors start with "login KEY". The password never appears in one.
Status Login(std::string_view registry, const Credentials& credentials,
             const RegistryOptions& options = {});

// Removes the credentials of `registry` from `auth_file` ("": DefaultAuthFile()). false when
// there were none (nothing is written then).
Result<bool> Logout(std::string_view registry, const std::string& auth_file = {});
// Removes the credentials of every registry from `auth_file` ("": DefaultAuthFile()); how many.
Result<size_t> LogoutAll(const std::string& auth_file = {});

}  // namespace imgstore
