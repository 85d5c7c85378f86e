// Platform normalisation, the host's platform, and the preference order used to pick one
// manifest out of an index.
#include "images/platform.h"

#include <charconv>
#include <utility>

#include "util/quote.h"

namespace imgstore::images {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// The N of a variant spelled "vN" or "N" (e.g. "v7", "7"); nullopt for anything else,
// including "v8.2": point releases are not ordered here, only exact matches use them.
std::optional<int> VariantNumber(std::string_view variant) {
  if (!variant.empty() && variant.front() == 'v') variant.remove_prefix(1);
  if (variant.empty() || variant.size() > 3) return std::nullopt;
  int n = 0;
  const auto [end, ec] = std::from_chars(variant.data(), variant.data() + variant.size(), n);
  if (ec != std::errc() || end != variant.data() + variant.size()) return std::nullopt;
  return n;
}

struct ArchVariant {
  std::string_view architecture;
  std::string variant;
};

// The platforms a host of `want` (normalised) can run, best first. Only architectures with a
// known compatibility ladder get fallbacks; every other one matches itself exactly.
std::vector<ArchVariant> Ladder(const Platform& want) {
  std::vector<ArchVariant> out;
  const std::string_view arch = want.architecture;
  if (arch == "amd64") {
    // amd64 microarchitecture levels: a v3 host runs v3, v2 and baseline (v1, written ""); a
    // baseline host must not get a v2 image, whose instructions it may lack.
    const int level = want.variant.empty() ? 1 : VariantNumber(want.variant).value_or(0);
    if (level == 0) return {{arch, want.variant}};  // an unordered variant: exact only
    for (int v = level; v >= 2; --v) out.push_back({arch, "v" + std::to_string(v)});
    out.push_back({arch, ""});
    out.push_back({"386", ""});  // x86-64 Linux runs 32-bit x86 binaries
  } else if (arch == "arm64") {
    // arm64 (v8 written "") and v9 are ordered; an arm64 host commonly runs 32-bit arm too,
    // which is how containerd and docker fall back for images that have no arm64 build.
    const std::optional<int> level =
        want.variant.empty() ? std::optional<int>(8) : VariantNumber(want.variant);
    if (!level) return {{arch, want.variant}};
    for (int v = *level; v >= 9; --v) out.push_back({arch, "v" + std::to_string(v)});
    out.push_back({arch, ""});
    for (int v = 8; v >= 5; --v) out.push_back({"arm", "v" + std::to_string(v)});
  } else if (arch == "arm") {
    const std::optional<int> level = VariantNumber(want.variant);
    if (!level || *level < 5) return {{arch, want.variant}};
    for (int v = *level; v >= 5; --v) out.push_back({arch, "v" + std::to_string(v)});
  } else {
    out.push_back({arch, want.variant});
  }
  return out;
}

}  // namespace

std::string Platform::ToString() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty()) s += "/" + variant;
  return s;
}

Platform NormalizePlatform(Platform p) {
  p.os = Lower(p.os);
  if (p.os == "macos") p.os = "darwin";
  std::string arch = Lower(p.architecture);
  std::string variant = Lower(p.variant);
  if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
    arch = "amd64";
    if (variant == "v1" || variant == "1") variant.clear();
  } else if (arch == "i386" || arch == "i686") {
    arch = "386";
  } else if (arch == "aarch64" || arch == "arm64") {
    arch = "arm64";
    if (variant == "8" || variant == "v8" || variant == "v8.0") {
      variant.clear();
    } else if (variant == "9" || variant == "v9.0") {
      variant = "v9";
    }
  } else if (arch == "armhf") {
    arch = "arm";
    variant = "v7";
  } else if (arch == "armel") {
    arch = "arm";
    variant = "v6";
  } else if (arch == "arm") {
    if (variant.empty()) {
      variant = "v7";  // what "arm" has meant in every registry since Docker's manifest lists
    } else if (variant.size() == 1 && variant[0] >= '5' && variant[0] <= '8') {
      variant = "v" + variant;
    }
  }
  p.architecture = std::move(arch);
  p.variant = std::move(variant);
  return p;
}

Platform HostPlatform() {
  Platform p;
#if defined(__linux__)
  p.os = "linux";
#elif defined(__APPLE__)
  p.os = "darwin";
#elif defined(_WIN32)
  p.os = "windows";
#else
  p.os = "unknown";
#endif

#if defined(__x86_64__)
  p.architecture = "amd64";
#elif defined(__aarch64__)
  p.architecture = "arm64";
#elif defined(__arm__)
  p.architecture = "arm";
#if defined(__ARM_ARCH) && __ARM_ARCH >= 5 && __ARM_ARCH <= 8
  // The ISA this binary was built for: a floor the CPU certainly meets.
  p.variant = "v" + std::to_string(__ARM_ARCH);
#endif
#elif defined(__i386__)
  p.architecture = "386";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
  p.architecture = "ppc64le";
#elif defined(__powerpc64__)
  p.architecture = "ppc64";
#elif defined(__s390x__)
  p.architecture = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  p.architecture = "riscv64";
#elif defined(__loongarch64)
  p.architecture = "loong64";
#elif defined(__mips64) && defined(__MIPSEL__)
  p.architecture = "mips64le";
#else
  p.architecture = "unknown";
#endif
  return NormalizePlatform(std::move(p));
}

Result<Platform> ParsePlatform(std::string_view text) {
  std::vector<std::string_view> parts;
  std::string_view rest = text;
  while (true) {
    const std::size_t slash = rest.find('/');
    parts.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  auto valid_part = [](std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-' || c == '.';
      if (!ok) return false;
    }
    return true;
  };
  if (parts.size() < 2 || parts.size() > 3) {
    return Status(Code::kInvalidArgument,
                  "invalid platform " + Quote(text) + ": want os/arch or os/arch/variant");
  }
  for (std::string_view part : parts) {
    if (!valid_part(part)) {
      return Status(Code::kInvalidArgument,
                    "invalid platform " + Quote(text) + ": empty or malformed component");
    }
  }
  Platform p;
  p.os = std::string(parts[0]);
  p.architecture = std::string(parts[1]);
  if (parts.size() == 3) p.variant = std::string(parts[2]);
  return NormalizePlatform(std::move(p));
}

std::optional<int> PlatformRank(const Platform& want, const Platform& candidate) {
  const Platform w = NormalizePlatform(want);
  const Platform c = NormalizePlatform(candidate);
  if (w.os != c.os) return std::nullopt;
  const std::vector<ArchVariant> ladder = Ladder(w);
  for (std::size_t i = 0; i < ladder.size(); ++i) {
    if (ladder[i].architecture == c.architecture && ladder[i].variant == c.variant) {
      return static_cast<int>(i);
    }
  }
  return std::nullopt;
}

}  // namespace imgstore::images
