// The two sides of an image copy, as interfaces: where an image comes from (ImageSource) and
// where one goes (ImageDestination). The store pulls from any source and pushes to any
// destination without knowing the format; src/transports implements them for `oci:`,
// `oci-archive:` and `docker-archive:`, and src/registry (issue 4) for registries.
//
// CONTRACT
// - Everything a source returns is untrusted. The store verifies every digest and size itself
//   (it ingests blobs against the descriptor's digest and parses manifests with limits), so a
//   source need not, but a source that can check cheaply (OciBlobReader) should fail early.
// - Manifest bytes are returned verbatim: their sha256 is their identity and must survive a copy.
// - Errors carry the source's or destination's description (Describe()) in their message.
// - A source or destination is used by one thread at a time.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "images/manifest.h"
#include "util/digest.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::images {

// A manifest or index exactly as stored by the source.
struct RawManifest {
  std::string bytes;       // verbatim
  std::string media_type;  // what the source says it is (descriptor mediaType, Content-Type),
                           // or "" when the source cannot say
};

class ImageSource {
 public:
  virtual ~ImageSource() = default;

  // The source as the user wrote it, normalized ("oci:/srv/layout:v1"), for messages.
  virtual std::string Describe() const = 0;

  // The manifest or index the source's reference names: the top of the image.
  virtual Result<RawManifest> GetManifest() = 0;

  // A manifest or index that the top-level index (or a nested one) lists, by descriptor.
  // Sources whose top is never an index may return kNotFound.
  virtual Result<RawManifest> GetManifest(const Descriptor& descriptor) = 0;

  // The blob of `descriptor` (config or layer) for streaming, from its first byte.
  virtual Result<std::unique_ptr<SequentialFile>> GetBlob(const Descriptor& descriptor) = 0;

  // Names (references as the user would write them) that the source attaches to the image:
  // a docker-archive's RepoTags. Empty when the source has none; the caller normalizes them.
  virtual std::vector<std::string> Names() const { return {}; }
};

// Everything a destination needs to write one image: the exact manifest (an image manifest,
// never an index) and config bytes, and a way to stream each blob.
struct ImageToWrite {
  RawManifest manifest;          // verbatim; media_type set
  ImageManifest parsed;          // the manifest, parsed
  std::string config;            // verbatim config bytes (sha256 == parsed.config.digest)
  std::vector<Digest> diff_ids;  // from the config, one per layer (docker-archive needs them)
  // Normalized references of the image in the store ("docker.io/library/a:latest"), sorted;
  // a destination that records names (docker-archive RepoTags) uses them.
  std::vector<std::string> names;
  // Opens a blob of the image (config or layer) by descriptor.
  std::function<Result<std::unique_ptr<SequentialFile>>(const Descriptor&)> open_blob;
};

class ImageDestination {
 public:
  virtual ~ImageDestination() = default;

  virtual std::string Describe() const = 0;

  // Writes the image. Either the destination holds the complete image afterwards, or an error
  // is returned and what it held before is intact (files are published atomically, an index
  // or manifest.json is replaced last).
  virtual Status PutImage(const ImageToWrite& image) = 0;
};

}  // namespace imgstore::images
