// Image configs (OCI image config, Docker container image v1): what a container of the image
// runs (entrypoint, environment, user…), the diffIDs of its layers, and its build history.
//
// Parsed from the exact config blob, which the store keeps verbatim; the "config" object is also
// kept as JSON text so that fields imgstore does not model (Healthcheck, Shell, OnBuild…) reach
// a runtime unchanged.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "images/manifest.h"
#include "images/platform.h"
#include "util/digest.h"
#include "util/status.h"

namespace imgstore::images {

// The execution parameters ("config" in the JSON; Docker's container config).
struct RuntimeConfig {
  std::string user;
  std::vector<std::string> exposed_ports;  // the keys of ExposedPorts: "80/tcp", "53/udp"
  std::vector<std::string> env;            // "NAME=value"
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> volumes;  // the keys of Volumes
  std::string working_dir;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  // The whole object as compact JSON text (re-serialised, so key order and spacing may differ
  // from the blob; the blob itself is what the store keeps).
  std::string raw_json;
};

struct HistoryEntry {
  std::string created;  // RFC 3339 text as written; not interpreted
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;  // the step made no layer (ENV, CMD…)
};

struct ImageConfig {
  std::string architecture;  // "" if the config omits it (docker tolerates that)
  std::string os;
  std::string variant;
  std::string os_version;
  std::vector<std::string> os_features;
  std::string created;
  std::string author;
  std::optional<RuntimeConfig> config;  // absent when the document has no "config"
  std::string rootfs_type;              // always "layers" once parsed
  std::vector<Digest> diff_ids;         // one per layer, base first
  std::vector<HistoryEntry> history;

  // Set when history is present and its entries without empty_layer do not number one per
  // diffID. Warning-level, not an error: builders have written wrong history for years (squashed
  // images, some Kaniko and Bazel rules) and docker runs those images, so refusing them would
  // refuse runnable images. History is documentation; diff_ids is what unpack checks.
  bool history_mismatch = false;
  std::vector<std::string> warnings;  // one line each, for `imgstore inspect` and logs

  // os/architecture/variant/os.version/os.features as a Platform (not normalised).
  Platform platform() const;
};

// Parses and validates a config blob. kInvalidArgument for: bytes over
// limits.max_config_bytes; malformed JSON, duplicate keys, deep nesting; a field of the wrong
// type; rootfs missing or its type not "layers"; a malformed diffID. An unknown digest
// algorithm in diff_ids is kUnsupported. Unknown fields are ignored, as the spec says.
Result<ImageConfig> ParseImageConfig(std::string_view bytes, const ParseLimits& limits = {});

// Checks that a config belongs with a manifest the way unpack needs: one diffID per layer, each
// sha256 (the diffID is verified while the layer streams). kInvalidArgument on a count mismatch,
// kUnsupported for another algorithm.
Status CheckConfigMatchesManifest(const ImageManifest& manifest, const ImageConfig& config);

}  // namespace imgstore::images
