// Image records and names of a Store: the value types that Store::AddImage, ListImages,
// InspectImage and the name operations (Tag, Untag, Remove, ResolveImage) return, and the OCI
// chainID rule. The operations themselves are Store members (store.h); images.cc and names.cc
// implement them, and docs/store.md ("Images and names") explains the choices.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "util/digest.h"

namespace imgstore::store {

// Shortest id prefix that ResolveImage accepts (hex digits, after an optional "sha256:").
inline constexpr size_t kMinIdPrefix = 3;

// One layer of an image, base first.
struct LayerRecord {
  Digest digest;           // the compressed blob, as the manifest lists it
  std::string media_type;  // the manifest's layer media type
  uint64_t size = 0;       // compressed bytes
  Digest diff_id;          // from the config (digest of the uncompressed tar)
  Digest chain_id;         // OCI chainID of this layer and all below it
};

// A row of ListImages.
struct ImageSummary {
  Digest id;                       // the config digest
  std::vector<std::string> names;  // normalized references ("docker.io/library/a:latest"), sorted
  Digest manifest_digest;
  // Compressed bytes: the layers, the config and the manifest (what the image costs in blobs/).
  uint64_t size = 0;
  std::string created;          // the config's "created", RFC 3339 in UTC; "" when absent
  int64_t created_unix_ns = 0;  // the same as a number; 0 when absent
  int64_t added_unix_ns = 0;    // when the image was added to this store
  std::string os;
  std::string architecture;
  std::string variant;
};

// InspectImage: the summary, the stored documents verbatim, and the layers.
struct ImageDetails {
  ImageSummary summary;
  std::string manifest_media_type;
  std::string manifest;  // the exact manifest bytes (their sha256 is summary.manifest_digest)
  std::string config;    // the exact config bytes (their sha256 is summary.id)
  std::vector<LayerRecord> layers;
};

struct AddImageResult {
  Digest id;
  Digest manifest_digest;  // the stored image's manifest (the first one added for this id)
  bool created = false;    // false: the image was already recorded (only names were added)
};

struct RemoveImageResult {
  std::vector<std::string> untagged;  // names removed, sorted
  std::optional<Digest> deleted;      // the image id, when its record was removed
};

// chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)), over the
// digests' text (OCI image-spec, config.md). One result per diffID.
std::vector<Digest> ChainIds(std::span<const Digest> diff_ids);

}  // namespace imgstore::store
