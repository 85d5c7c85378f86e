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
// - A source or destination is used by one thread at a time, except where a method says
//   otherwise (ImageSource::ConcurrentBlobs, ImageToWrite::open_blob with max_parallel).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "images/manifest.h"
#include "util/digest.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::images {

// Progress of one blob's copy (pull or push), for progress bars and debug lines.
struct BlobProgress {
  Digest digest;         // the blob
  uint64_t done = 0;     // bytes of it copied so far
  uint64_t total = 0;    // its size from the manifest
  bool skipped = false;  // not copied: already present (store, or registry: HEAD or mount)
  bool mounted = false;  // skipped because a registry mounted it from another repository
};
using ProgressCallback = std::function<void(const BlobProgress&)>;

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

  // Whether GetBlobFrom saves reading the bytes before its offset (a registry: a Range request).
  // Store::Pull keeps what a broken or killed download of such a source got, and the next pull
  // goes on from there (store.h, IngestOptions::resume_at).
  virtual bool ResumableBlobs() const { return false; }
  // The blob of `descriptor` from byte `offset`. The default reads and drops the bytes before it.
  virtual Result<std::unique_ptr<SequentialFile>> GetBlobFrom(const Descriptor& descriptor,
                                                              uint64_t offset) {
    Result<std::unique_ptr<SequentialFile>> f = GetBlob(descriptor);
    if (f.ok() && offset > 0) IMGSTORE_RETURN_IF_ERROR((*f)->Skip(offset));
    return f;
  }

  // Names (references as the user would write them) that the source attaches to the image:
  // a docker-archive's RepoTags. Empty when the source has none; the caller normalizes them.
  virtual std::vector<std::string> Names() const { return {}; }

  // Where the blobs come from when that place can serve them to a registry again: a registry
  // repository, "127.0.0.1:5000/a/b" (host as in the reference, path without tag). The store
  // records it per blob (schema v3, blob_origins) so that a later push to another repository of
  // the same registry can ask for a cross-repository mount instead of uploading. "" otherwise.
  virtual std::string BlobOrigin() const { return ""; }

  // Whether GetBlob may be called from several threads at once (each returned file then read by
  // one thread). Store::Pull fetches up to PullOptions::max_parallel blobs at once only from a
  // source that says yes; the other calls stay on one thread at a time.
  virtual bool ConcurrentBlobs() const { return false; }
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
  // Opens a blob of the image (config or layer) by descriptor. Safe to call from several threads
  // at once; each returned file is read by one thread. The bytes read are reported as progress
  // by the store (it wraps the files), so a destination need not count them.
  std::function<Result<std::unique_ptr<SequentialFile>>(const Descriptor&)> open_blob;
  // For each blob digest, the repositories ("host/path", see ImageSource::BlobOrigin) the store
  // knows to hold it: a registry destination on the same host tries a cross-repository mount
  // from them before uploading. Blobs with no known origin are absent.
  std::map<Digest, std::vector<std::string>> origins;
  // How many blobs a destination may write at once (registries: parallel uploads); 1 or less:
  // one at a time. Formats written as one file (archives) may ignore it.
  int max_parallel = 1;
  // Reports blobs the destination did not need to send (BlobProgress::skipped, and mounted); may
  // be empty. Thread-safe: the store serializes calls.
  ProgressCallback on_progress;
};

class ImageDestination {
 public:
  virtual ~ImageDestination() = default;

  virtual std::string Describe() const = 0;

  // Writes the image. Either the destination holds the complete image afterwards, or an error
  // is returned and what it held before is intact (files are published atomically, an index
  // or manifest.json is replaced last).
  virtual Status PutImage(const ImageToWrite& image) = 0;

  // "host/path" when the destination is a registry repository (see ImageSource::BlobOrigin):
  // after a successful push the store records it as an origin of the image's blobs. "" otherwise.
  virtual std::string BlobOrigin() const { return ""; }
};

}  // namespace imgstore::images
