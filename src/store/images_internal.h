// Helpers shared by images.cc, names.cc, pull.cc and push.cc (not part of the Store contract):
// resolving an image inside a transaction, parsing names, reading an image row, RFC 3339 times
// (time_text.cc), AddImage with what a pull knows besides the manifest (its index, verified
// diffIDs, the origin of its blobs), and the rows of blob_origins (blob_origins.cc).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "images/manifest.h"
#include "images/reference.h"
#include "store/db.h"
#include "store/images.h"
#include "util/digest.h"
#include "util/status.h"

namespace imgstore::store {
class Store;
}

namespace imgstore::store::internal {

int64_t NowUnixNs();

// A name to give an image: a reference without a digest, with the default tag added.
Result<images::Reference> ParseName(std::string_view text);

// What an image argument resolved to.
struct Resolved {
  Digest id;
  // The normalized reference when `text` was a name (rmi by name removes only that name).
  std::optional<std::string> name;
};

// ResolveImage inside the caller's transaction (so that a write acts on what it resolved).
Result<Resolved> ResolveIn(Transaction& txn, std::string_view text);

// The columns of an image summary, for SELECTs over `images i`, and the reader of such a row.
extern const std::string_view kSummaryColumns;
Result<ImageSummary> ReadSummaryRow(const Statement& st);

// The image row and its names; kNotFound if the id is not recorded.
Result<ImageSummary> LoadSummary(Transaction& txn, const Digest& id);

// Gives `id` the name, taking it from any other image.
Status PutName(Transaction& txn, const images::Reference& name, const Digest& id, int64_t now);

// RFC 3339 ("2024-05-01T12:00:00.5+02:00") to Unix nanoseconds; kInvalidArgument if malformed.
Result<int64_t> ParseRfc3339(std::string_view text);
// Unix nanoseconds to RFC 3339 in UTC, fraction without trailing zeros: "2024-05-01T10:00:00.5Z".
std::string FormatRfc3339(int64_t unix_ns);

// An index (or Docker manifest list) a pull went through to reach the image's manifest.
struct IndexRecord {
  Digest digest;  // of the exact bytes, already ingested as a blob
  uint64_t size = 0;
  images::ImageIndex index;
};

// What a pull records besides what Store::AddImage takes.
struct AddImageExtras {
  // Top index first, each listing the next; the image's index_digest is the first. Each is
  // recorded (manifests kind 'index' and its index_entries, all children including those not
  // pulled) in AddImage's write transaction.
  std::vector<IndexRecord> indexes;
  // One per layer (or empty): the layer's diffID was checked against its decompressed bytes.
  std::vector<bool> diff_id_verified;
  // The registry repository the blobs came from (ImageSource::BlobOrigin), or "": recorded as an
  // origin of the config and of every layer.
  std::string blob_origin;
};

// Store::AddImage with extras, all in its one write transaction.
Result<AddImageResult> AddImageWith(Store& store, std::string_view manifest_bytes,
                                    std::string_view manifest_media_type,
                                    std::string_view config_bytes,
                                    std::span<const std::string> names,
                                    const AddImageExtras& extras);

// Records `repository` ("host/path") as an origin of each of `digests` that has a blobs row
// (the others are skipped), then drops the least recent origins of each beyond kMaxBlobOrigins.
// `now` is Unix ns. Nothing happens for an empty repository.
Status RecordBlobOrigins(Transaction& txn, std::span<const Digest> digests,
                         std::string_view repository, int64_t now);

// The origins of each of `digests`, sorted; digests with none are absent.
Result<std::map<Digest, std::vector<std::string>>> ReadBlobOrigins(Transaction& txn,
                                                                   std::span<const Digest> digests);

}  // namespace imgstore::store::internal
