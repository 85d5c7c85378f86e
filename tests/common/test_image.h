// Test images shared by the store, transport and CLI tests: real layer tars (optionally gzip or
// zstd compressed), a config whose diff_ids match them, and a manifest, built in memory; and a
// way to write one into an OCI layout directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/digest.h"

namespace imgstore::testing {

enum class LayerCompression { kNone, kGzip, kZstd };

struct TestImageSpec {
  uint32_t seed = 1;  // varies the content (and so every digest)
  int layers = 2;
  size_t layer_bytes = 4096;  // size of the one file in each layer's tar (random bytes)
  LayerCompression compression = LayerCompression::kGzip;
  std::string created = "2024-01-02T03:04:05Z";  // "" for none
  std::string architecture = "amd64";
  std::string os = "linux";
  bool docker_media_types = false;  // Docker v2s2 manifest and layer types instead of OCI
};

struct TestImage {
  std::vector<std::string> layers;  // the blobs as the manifest lists them
  std::vector<std::string> tars;    // each layer uncompressed (a tar holding "file-<i>")
  std::vector<Digest> diff_ids;     // sha256 of each tar
  std::vector<std::string> layer_media_types;
  std::string config;
  std::string config_media_type;
  std::string manifest;
  std::string manifest_media_type;
  Digest id;               // the config digest
  Digest manifest_digest;  // sha256 of manifest
};

TestImage MakeTestImage(const TestImageSpec& spec = {});

// The image whose layers are `tars` (base first), each compressed with `compression`; the
// config is "{" + config_head + the rootfs member + "}", so config_head holds the members before
// it, each followed by a comma (e.g. `"architecture":"amd64","os":"linux",`).
TestImage ImageFromTars(std::vector<std::string> tars, LayerCompression compression,
                        bool docker_media_types, const std::string& config_head);

// Compresses bytes (the whole stream, as a layer would be).
std::string Compress(const std::string& bytes, LayerCompression compression);

// Writes the image (blobs, manifest) into the OCI layout DIR (created if missing) under
// ref.name `ref` ("" for none). Fails the test on error.
void WriteOciLayout(const TestImage& image, const std::string& dir, const std::string& ref);

}  // namespace imgstore::testing
