// Platforms (os/architecture/variant) of images and hosts, and the rules that decide which
// platform of a multi-platform image a host should run.
//
// Names are normalised the way the Go tools write them (GOOS/GOARCH, so x86_64 is amd64 and
// aarch64 is arm64) and variants get their defaults (arm64 means arm64/v8, arm means arm/v7),
// so that "linux/arm64" and "linux/arm64/v8" are one platform, as containerd and docker treat it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace imgstore::images {

struct Platform {
  std::string os;            // "linux", "windows"
  std::string architecture;  // "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"
  std::string variant;       // "v7" (arm), "v8" (arm64), "v2" (amd64); often empty
  std::string os_version;    // Windows build numbers; recorded, not used to match
  std::vector<std::string> os_features;  // recorded, not used to match

  // "os/architecture" or "os/architecture/variant", for messages and the CLI.
  std::string ToString() const;

  friend bool operator==(const Platform&, const Platform&) = default;
};

// Spelling normalisation: lowercase; x86_64 and x86-64 → amd64, aarch64 → arm64, i386 → 386,
// armhf → arm/v7, armel → arm/v6, macos → darwin; the arm64 variant "8"/"v8" becomes empty
// (arm64/v8 is plain arm64), "9" becomes "v9"; arm without a variant becomes arm/v7 and a bare
// number "6" becomes "v6"; amd64/v1 is plain amd64. os_version and os_features are kept as given.
Platform NormalizePlatform(Platform p);

// The platform this binary runs as, from the compiler's target (linux/amd64 on x86-64; arm's
// variant from __ARM_ARCH). Normalised.
Platform HostPlatform();

// Parses "os/arch" or "os/arch/variant" as a user types it (--platform); normalised. Anything
// else is kInvalidArgument.
Result<Platform> ParsePlatform(std::string_view text);

// How well `candidate` suits a host that wants `want`: 0 is an exact match, higher numbers are
// fallbacks the host can still run (arm64 runs arm/v8 down to arm/v5; arm/v7 runs v6 and v5;
// amd64/v3 runs v2 and v1; amd64 runs 386), nullopt is a platform it cannot run. Both are
// normalised first. The os must be equal.
std::optional<int> PlatformRank(const Platform& want, const Platform& candidate);

}  // namespace imgstore::images
