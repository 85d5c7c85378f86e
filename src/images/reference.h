// Image references ("alpine", "user/app:1.2", "localhost:5000/a/b@sha256:..."): parsing,
// normalization to the fully qualified form, and docker's short ("familiar") form for display.
//
// The rules are those of docker's distribution/reference (ParseNormalizedNamed), so a name a
// user types means the same image here as in docker and podman. docs/references.md lists them
// and the few places imgstore decides differently.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "util/digest.h"
#include "util/status.h"

namespace imgstore::images {

// The registry domain that names without one get, and the path prefix of its official images.
inline constexpr std::string_view kDefaultDomain = "docker.io";
inline constexpr std::string_view kOfficialRepoPrefix = "library/";
inline constexpr std::string_view kDefaultTag = "latest";

// A parsed, normalized reference. Build it with ParseReference(): its functions assume the
// fields obey the grammar (they are public so that records can be read and compared plainly).
struct Reference {
  std::string domain;              // "docker.io", "localhost:5000", "[::1]:5000"
  std::string path;                // "library/alpine", "user/app"
  std::optional<std::string> tag;  // "latest"
  std::optional<Digest> digest;    // when present, it names the content; the tag is then a label

  // domain/path: "docker.io/library/alpine".
  std::string Repository() const;
  // The fully qualified reference: "docker.io/library/alpine:latest", "quay.io/a/b@sha256:...",
  // "docker.io/user/app:1.0@sha256:...". ParseReference(String()) gives back *this.
  std::string String() const;
  // docker's short form for display: "alpine:latest", "user/app:1.0", "localhost:5000/x".
  // ParseReference(Familiar()) gives back *this.
  std::string Familiar() const;
  // Familiar() without the tag and digest: what `imgstore list` shows as the repository.
  std::string FamiliarRepository() const;
  // A copy with tag "latest" when the reference has neither a tag nor a digest (docker's
  // TagNameOnly): what a pull of a bare name resolves.
  Reference WithDefaultTag() const;
  // The host[:port] to contact for this reference's registry (see RegistryHost()).
  std::string RegistryHost() const;

  friend bool operator==(const Reference&, const Reference&) = default;
};

// Parses and normalizes a reference as docker does:
//   alpine                   → docker.io/library/alpine
//   user/app:1.0             → docker.io/user/app:1.0
//   index.docker.io/x        → docker.io/library/x
//   localhost:5000/a/b:t     → localhost:5000/a/b:t
//   name:tag@sha256:<hex>    → both kept
// No default tag is added (see WithDefaultTag()). Every error is kInvalidArgument with one line:
//   invalid reference "UPPER/case": repository name must be lowercase
Result<Reference> ParseReference(std::string_view text);

// The endpoint host for a registry domain: "docker.io" is served by "registry-1.docker.io";
// every other domain is its own endpoint.
std::string RegistryHost(std::string_view domain);

}  // namespace imgstore::images
