// The transports layer's contract: how a user names where an image comes from or goes to (a
// "transport spec"), and the factory that turns a spec into an images::ImageSource or
// images::ImageDestination. The CLI and embedders call only this header.
//
// Spec syntax (docs/transports.md has the details; the syntax is skopeo's):
//   oci:PATH[:REF]              an OCI image layout directory; REF is an index.json ref.name
//   oci-archive:FILE[:REF]      a tar of an OCI image layout (gzip/zstd-compressed when reading)
//   docker-archive:FILE[:REF]   a `docker save` tar
//   docker://NAME, NAME         a registry reference
// The FIRST ':' after the transport prefix separates the path from REF, so a path cannot
// contain ':' (as in skopeo on Linux). Anything "xyz:..." that is neither a known transport nor
// a reference is kInvalidArgument naming the supported transports.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "images/manifest.h"
#include "images/transport.h"
#include "registry/registry_options.h"
#include "transports/docker_archive.h"
#include "transports/tar_reader.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::transports {

enum class TransportKind { kOciDir, kOciArchive, kDockerArchive, kRegistry };

// A spec split into its transport and the rest ("oci:/a:b" → kOciDir, "/a:b"). For kRegistry
// `rest` is the reference without "docker://". Errors are kInvalidArgument, one line.
struct TransportSpec {
  TransportKind kind;
  std::string rest;
};
Result<TransportSpec> ParseTransportSpec(std::string_view spec);

// "oci", "oci-archive", "docker-archive", "docker".
std::string_view TransportName(TransportKind kind);

// The bounds a source applies to what it reads: manifests and configs (every transport), an
// archive's member table, and a docker-archive's manifest.json and the decompression of its
// layers (to check their diffIDs).
struct SourceLimits {
  SourceLimits() = default;
  // Only the manifest bounds chosen; the others at their defaults.
  SourceLimits(const images::ParseLimits& p) : parse(p) {}  // NOLINT(google-explicit-constructor)

  images::ParseLimits parse;
  TarLimits tar;
  layers::DecompressLimits decompress;
  uint64_t max_manifest_json_bytes = DockerArchiveLimits{}.max_manifest_json_bytes;
};

// An image source for spec. Nothing is read but the metadata needed to answer GetManifest()
// (oci-layout and index.json; an archive's member table).
Result<std::unique_ptr<images::ImageSource>> OpenSource(Env* env, std::string_view spec,
                                                        const SourceLimits& limits = {});
// The same, with how to reach a registry (credentials, TLS) when spec names one; ignored by the
// other transports.
Result<std::unique_ptr<images::ImageSource>> OpenSource(Env* env, std::string_view spec,
                                                        const SourceLimits& limits,
                                                        const registry::RegistryOptions& registry);

// An image destination for spec. Nothing is written before PutImage().
Result<std::unique_ptr<images::ImageDestination>> OpenDestination(Env* env, std::string_view spec);
// The same, with how to reach a registry when spec names one.
Result<std::unique_ptr<images::ImageDestination>> OpenDestination(
    Env* env, std::string_view spec, const registry::RegistryOptions& registry);

}  // namespace imgstore::transports
