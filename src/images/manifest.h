// Image manifests and indexes (OCI image-spec v1.1, Docker v2 schema 2 and manifest lists):
// their parsing and validation from the exact bytes a registry or an archive gave, and the
// choice of one platform's manifest out of an index.
//
// The store keeps manifest bytes verbatim (their digest is their identity), so these types are a
// read-only view for deciding what to fetch, unpack and show; nothing here re-serialises a
// manifest. Every document is untrusted: see docs/manifests.md for what is accepted, what is
// refused, and why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "images/media_types.h"
#include "images/platform.h"
#include "util/digest.h"
#include "util/status.h"

namespace imgstore::images {

// Bounds on documents read from registries and archives. A document over a bound is refused
// before it is parsed, so that a hostile registry cannot make imgstore allocate without limit
// (CVE-2023-25153 was containerd's importer reading an unbounded manifest). The registry client
// should apply the same numbers while downloading, to never buffer more than this.
struct ParseLimits {
  // The distribution spec says registries SHOULD accept manifests of at least 4 MB and answer 413
  // above their own limit, and CNCF distribution refuses larger ones, so no registry that
  // imgstore can push to holds a bigger manifest; real ones are 0.5-50 KiB (a 4 MiB index lists
  // about 15,000 manifests).
  std::size_t max_manifest_bytes = 4 * 1024 * 1024;
  // Configs are not bounded by registries and carry history (one entry per Dockerfile step),
  // labels and environments; real ones are 1-100 KiB. 8 MiB leaves room for generated labels
  // while bounding memory: a parsed JSON tree costs several times its text.
  std::size_t max_config_bytes = 8 * 1024 * 1024;
  // Manifests are 4 levels deep and configs 5; nothing legitimate nests 64 levels, and the bound
  // keeps recursive consumers of the JSON (printing, comparing) off the end of the stack.
  int max_nesting_depth = 64;
};

// The error of a read capped at a limit (a manifest read with max_manifest_bytes, say) with the
// name of the limit to raise added when the cap was what failed it ("... larger than the limit
// of N bytes (raise the limit max_manifest_bytes to accept it)"); other errors unchanged.
Status NameLimit(Status s, std::string_view limit_name, std::uint64_t cap);

// A reference to a blob: what it is, its digest and size, and (in an index) its platform.
struct Descriptor {
  std::string media_type;         // RFC 6838 syntax checked; unknown types are kept, not refused
  Digest digest;                  // well-formed; sha256, sha384 or sha512 (see CheckUnpackable)
  std::int64_t size = 0;          // bytes; never negative
  std::vector<std::string> urls;  // foreign / non-distributable layers only; not fetched blindly
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;  // index entries; as written (not normalised)
  std::string artifact_type;         // "" when absent
};

struct ImageManifest {
  // The document's media type: its mediaType field, else the Content-Type it came with, else
  // the OCI manifest type (mediaType is optional in OCI, and the shape was checked). Push sends
  // this as Content-Type.
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;  // base first; may be empty (image-spec: SHOULD have one)
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;
  std::string artifact_type;
  // Some layer's media type has no known compression (an unknown type, "+encrypted"…). Such a
  // manifest is stored and copied as it is; unpacking it is refused by CheckUnpackable().
  bool has_unknown_layer_types = false;

  // The config is an OCI or Docker image config: a runnable image rather than an artifact
  // (a signature, an SBOM, a Helm chart) that shares the manifest format.
  bool IsImage() const;
  // OK if imgstore can unpack this image: an image config, every layer of a known compression,
  // and sha256 digests (the only algorithm imgstore hashes). Otherwise kUnsupported naming the
  // first obstacle.
  Status CheckUnpackable() const;
};

struct ImageIndex {
  std::string media_type;  // as ImageManifest::media_type, defaulting to the OCI index type
  std::vector<Descriptor> manifests;  // may be empty; entries of unknown type are kept
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;
  std::string artifact_type;
};

// A manifest-level document: either an image manifest or an index.
struct ParsedManifest {
  std::variant<ImageManifest, ImageIndex> doc;

  bool is_index() const { return std::holds_alternative<ImageIndex>(doc); }
  const std::string& media_type() const;
  // The document as its kind, or nullptr when it is the other kind.
  const ImageManifest* manifest() const { return std::get_if<ImageManifest>(&doc); }
  const ImageIndex* index() const { return std::get_if<ImageIndex>(&doc); }
};

// Parses and validates a manifest or an index from the exact bytes received.
//
// content_type is what the source said the document is: the registry's Content-Type header (any
// parameters and case allowed), or the mediaType of the descriptor that pointed to it; "" (and
// generic types such as application/json) if unknown. Refusals:
//   kInvalidArgument  bytes over limits.max_manifest_bytes; malformed JSON, duplicate keys, deep
//                     nesting; schemaVersion missing or not 2; a document that is both an index
//                     and a manifest (has `manifests` and `config`/`layers`), or whose shape,
//                     mediaType field and content_type disagree (CVE-2021-41190); a Docker
//                     document without its mediaType; a missing or mistyped required field; a
//                     malformed digest; a negative or fractional size; a config or child
//                     manifest whose declared size is over the limits.
//   kUnsupported      Docker schema 1 ("schema 1 manifests are not supported"); a content_type
//                     or mediaType that is no manifest type imgstore knows; a digest algorithm
//                     other than sha256/sha384/sha512.
// Unknown layer and index-entry media types are accepted (the image-spec forbids refusing them
// when storing or copying) and flagged in ImageManifest::has_unknown_layer_types.
Result<ParsedManifest> ParseManifest(std::string_view bytes, std::string_view content_type = "",
                                     const ParseLimits& limits = {});

// ParseManifest for a caller that needs one kind: the other kind is kInvalidArgument ("expected
// an image manifest, got an image index"), since accepting it would be type confusion.
Result<ImageManifest> ParseImageManifest(std::string_view bytes, std::string_view content_type = "",
                                         const ParseLimits& limits = {});
Result<ImageIndex> ParseImageIndex(std::string_view bytes, std::string_view content_type = "",
                                   const ParseLimits& limits = {});

// Picks the manifest of an index that suits platform `want` best (PlatformRank; ties go to the
// earlier entry, the publisher's order). Only entries of a manifest or index media type are
// candidates (attestations and other artifacts are not). An entry without a platform matches
// only when no entry with a platform does, as containerd does for single-entry indexes made by
// tools that omit it. The result may itself be an index (nested indexes are legal): fetch it and
// select again. kNotFound when nothing matches, naming `want` and the platforms available.
Result<Descriptor> SelectManifest(const ImageIndex& index, const Platform& want = HostPlatform());

}  // namespace imgstore::images
