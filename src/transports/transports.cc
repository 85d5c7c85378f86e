// The transport factory (see transports.h): parses a spec and dispatches to a transport.
#include "transports/transports.h"

#include "images/reference.h"
#include "registry/registry_destination.h"
#include "registry/registry_source.h"
#include "transports/docker_archive.h"
#include "transports/oci_archive.h"
#include "transports/oci_dir.h"

namespace imgstore::transports {
namespace {

constexpr std::string_view kSupported =
    "oci:PATH[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF]";

struct Prefix {
  std::string_view text;
  TransportKind kind;
};
constexpr Prefix kPrefixes[] = {
    {"oci:", TransportKind::kOciDir},
    {"oci-archive:", TransportKind::kOciArchive},
    {"docker-archive:", TransportKind::kDockerArchive},
    {"docker://", TransportKind::kRegistry},
};

bool IsSchemeChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '+' || c == '.' || c == '_';
}

}  // namespace

std::string_view TransportName(TransportKind kind) {
  switch (kind) {
    case TransportKind::kOciDir:
      return "oci";
    case TransportKind::kOciArchive:
      return "oci-archive";
    case TransportKind::kDockerArchive:
      return "docker-archive";
    case TransportKind::kRegistry:
      return "docker";
  }
  return "?";
}

Result<TransportSpec> ParseTransportSpec(std::string_view spec) {
  for (const Prefix& p : kPrefixes) {
    if (spec.starts_with(p.text)) {
      std::string_view rest = spec.substr(p.text.size());
      if (rest.empty()) {
        return Status(Code::kInvalidArgument, "\"" + std::string(spec) + "\": nothing after \"" +
                                                  std::string(p.text) + "\"");
      }
      return TransportSpec{p.kind, std::string(rest)};
    }
  }
  if (spec.empty()) return Status(Code::kInvalidArgument, "empty image location");
  // A bare reference ("alpine", "localhost:5000/a:1") is the registry's.
  Result<images::Reference> ref = images::ParseReference(spec);
  if (ref.ok()) return TransportSpec{TransportKind::kRegistry, std::string(spec)};
  size_t colon = spec.find(':');
  if (colon != std::string_view::npos && colon > 0) {
    std::string_view scheme = spec.substr(0, colon);
    bool word = true;
    for (char c : scheme) word = word && IsSchemeChar(c);
    if (word) {
      return Status(Code::kInvalidArgument,
                    "unknown transport \"" + std::string(scheme) + "\" in \"" + std::string(spec) +
                        "\": use " + std::string(kSupported) + " or a registry reference");
    }
  }
  return ref.status();
}

Result<std::unique_ptr<images::ImageSource>> OpenSource(Env* env, std::string_view spec,
                                                        const SourceLimits& limits) {
  return OpenSource(env, spec, limits, registry::RegistryOptions{});
}

Result<std::unique_ptr<images::ImageSource>> OpenSource(Env* env, std::string_view spec,
                                                        const SourceLimits& limits,
                                                        const registry::RegistryOptions& registry) {
  Result<TransportSpec> t = ParseTransportSpec(spec);
  if (!t.ok()) return t.status();
  switch (t->kind) {
    case TransportKind::kOciDir:
      return OpenOciDirSource(env, t->rest, limits.parse);
    case TransportKind::kOciArchive:
      return OpenOciArchiveSource(env, t->rest, limits.parse, limits.tar);
    case TransportKind::kDockerArchive: {
      Result<DockerArchiveSpec> da = ParseDockerArchiveSpec(t->rest);
      if (!da.ok()) return da.status();
      DockerArchiveLimits da_limits;
      da_limits.parse = limits.parse;
      da_limits.tar = limits.tar;
      da_limits.decompress = limits.decompress;
      da_limits.max_manifest_json_bytes = limits.max_manifest_json_bytes;
      return OpenDockerArchiveSource(env, da->path, da->ref, da_limits);
    }
    case TransportKind::kRegistry: {
      Result<images::Reference> ref = images::ParseReference(t->rest);
      if (!ref.ok()) return ref.status();
      return registry::OpenRegistrySource(*ref, registry, limits.parse);
    }
  }
  return Status(Code::kInternal, "unhandled transport");
}

Result<std::unique_ptr<images::ImageDestination>> OpenDestination(Env* env, std::string_view spec) {
  return OpenDestination(env, spec, registry::RegistryOptions{});
}

Result<std::unique_ptr<images::ImageDestination>> OpenDestination(
    Env* env, std::string_view spec, const registry::RegistryOptions& registry) {
  Result<TransportSpec> t = ParseTransportSpec(spec);
  if (!t.ok()) return t.status();
  switch (t->kind) {
    case TransportKind::kOciDir:
      return OpenOciDirDestination(env, t->rest);
    case TransportKind::kOciArchive:
      return OpenOciArchiveDestination(env, t->rest);
    case TransportKind::kDockerArchive: {
      Result<DockerArchiveSpec> da = ParseDockerArchiveSpec(t->rest);
      if (!da.ok()) return da.status();
      return OpenDockerArchiveDestination(env, da->path, da->ref);
    }
    case TransportKind::kRegistry: {
      Result<images::Reference> ref = images::ParseReference(t->rest);
      if (!ref.ok()) return ref.status();
      return registry::OpenRegistryDestination(*ref, registry);
    }
  }
  return Status(Code::kInternal, "unhandled transport");
}

}  // namespace imgstore::transports
