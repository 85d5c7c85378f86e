// The `docker-archive:FILE[:REF]` transport: the tar file of `docker save` / `docker load`
// (manifest.json + a config + one uncompressed tar per layer), read as an ImageSource and
// written as an ImageDestination. docs/docker-archive.md describes the format, the manifest that
// the source synthesizes, what a copy preserves and the rules for hostile archives.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "images/manifest.h"
#include "images/transport.h"
#include "layers/decompress.h"
#include "transports/tar_reader.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::transports {

// Bounds on what an archive can make imgstore read into memory or compute.
struct DockerArchiveLimits {
  // manifest.json is held and parsed whole. docker save writes ~200 bytes per image plus its
  // tags and layer names; 8 MiB is tens of thousands of images.
  uint64_t max_manifest_json_bytes = 8 << 20;
  // Config size and JSON nesting (the config is held whole too).
  images::ParseLimits parse;
  // Compressed layer members are decompressed to check their diffID (source) and to write them
  // uncompressed (destination).
  layers::DecompressLimits decompress;
  TarLimits tar;
};

// FILE and REF of a "FILE[:REF]" transport argument (after "docker-archive:"), split at the first
// ':' as skopeo does (FILE cannot contain ':'). REF is "" when absent. kInvalidArgument for an
// empty FILE.
struct DockerArchiveSpec {
  std::string path;
  std::string ref;
};
Result<DockerArchiveSpec> ParseDockerArchiveSpec(std::string_view spec);

// Opens the archive at path and the image that ref selects:
//   ""        the only image of the archive (more than one: kInvalidArgument listing them);
//   "@N"      the N-th entry of manifest.json, from 0;
//   a name    the entry whose RepoTags holds it, compared normalized ("busybox" matches
//             "docker.io/library/busybox:latest"); a digest is kInvalidArgument.
// Open reads the whole archive once: it hashes every layer member for the synthesized manifest
// and checks each against the config's diffID (decompressing compressed members), so that a bad
// archive fails here, with one error naming the member, before anything is stored.
Result<std::unique_ptr<images::ImageSource>> OpenDockerArchiveSource(
    Env* env, const std::string& path, std::string_view ref,
    const DockerArchiveLimits& limits = {});

// A destination that writes one image to path (replacing it atomically on success; on failure
// the previous file, if any, is intact). ref, when not "", is the tag recorded in RepoTags
// (it must be a tagged name without a digest); otherwise the image's tagged names are.
Result<std::unique_ptr<images::ImageDestination>> OpenDockerArchiveDestination(
    Env* env, const std::string& path, std::string_view ref,
    const DockerArchiveLimits& limits = {});

}  // namespace imgstore::transports
