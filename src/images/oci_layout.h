// OCI image layout directories (image-spec image-layout.md): `oci-layout`, `index.json` and
// `blobs/<alg>/<hex>`, the `oci:PATH[:REF]` transport that skopeo, umoci and buildah share.
//
// OciLayoutReader opens a layout written by anyone (untrusted: sizes are bounded, digests are
// parsed before a path is built from them, blob sizes and digests are checked); OciLayoutWriter
// creates a layout or adds an image to one, publishing each file atomically through Env.
// docs/oci-layout.md states the rules, including how `oci:PATH:REF` is split.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "images/manifest.h"
#include "images/platform.h"
#include "util/digest.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::images {

inline constexpr std::string_view kOciLayoutVersion = "1.0.0";
inline constexpr std::string_view kOciRefNameAnnotation = "org.opencontainers.image.ref.name";

// `oci:PATH[:REF]` split into its parts. ref is "" when none was given.
struct OciLayoutLocation {
  std::string path;
  std::string ref;
};

// Parses "oci:PATH[:REF]" (the "oci:" prefix is optional). As skopeo does on Linux
// (containers/image oci/internal SplitPathAndImage), the FIRST ':' after the prefix separates
// the path from the ref, so a path cannot contain ':' and a ref may ("oci:d:example.com/a:1").
// An empty ref after the ':' means no ref, as in skopeo. A ref must match the image-spec grammar
// of ref.name (IsValidOciRefName). Errors are kInvalidArgument: an empty path, a ref of bad
// syntax.
Result<OciLayoutLocation> ParseOciLayoutLocation(std::string_view text);

// The image-spec grammar of `org.opencontainers.image.ref.name`:
//   ref := component ("/" component)*; component := alnum+ (sep alnum+)*; sep := [-._:@+] | "--"
bool IsValidOciRefName(std::string_view ref);

// index.json bytes: `existing` (an index.json, "" for a new one) with entry `manifest` added
// under ref.name `ref` (none when ""), any entry with the same ref replaced (with no ref: an
// unnamed entry of the same digest), other entries kept verbatim. Shared by OciLayoutWriter and
// the oci-archive writer. kInvalidArgument for a bad ref or a malformed existing index.
Result<std::string> AddToOciIndex(std::string_view existing, const Descriptor& manifest,
                                  std::string_view ref);

// One entry of index.json.
struct OciLayoutImage {
  std::string ref_name;  // its ref.name annotation, "" when it has none
  Descriptor descriptor;
};

// An image manifest resolved from a ref: the index.json entry, then (through nested indexes)
// the manifest of the chosen platform, with its exact bytes (digest-verified).
struct OciResolvedImage {
  OciLayoutImage entry;        // the index.json entry the ref named
  Descriptor descriptor;       // the image manifest's descriptor (== entry's when not an index)
  std::string manifest_bytes;  // verbatim; Digest::Of(manifest_bytes) == descriptor.digest
  ImageManifest manifest;
};

// A blob opened for streaming. Read() hashes what it returns and, when it reaches the end,
// checks the byte count and digest against the descriptor: a mismatch is kCorruption at that
// last Read (so a consumer must read to the end, 0 returned, before trusting the content).
// Reading more bytes than declared is kCorruption as soon as it happens.
class OciBlobReader {
 public:
  OciBlobReader(std::unique_ptr<SequentialFile> file, Descriptor descriptor)
      : file_(std::move(file)), descriptor_(std::move(descriptor)) {}
  OciBlobReader(OciBlobReader&&) = default;
  OciBlobReader& operator=(OciBlobReader&&) = default;

  const Descriptor& descriptor() const { return descriptor_; }
  uint64_t size() const { return static_cast<uint64_t>(descriptor_.size); }
  const std::string& path() const { return file_->path(); }
  // Fills buf unless the end comes first; 0 at the end, once verified.
  Result<size_t> Read(std::span<std::byte> buf);
  // Reads the rest and verifies it (for a caller that only needs the check).
  Status VerifyToEnd();

 private:
  std::unique_ptr<SequentialFile> file_;
  Descriptor descriptor_;
  Sha256Hasher hasher_;
  bool verified_ = false;
};

// Where a layout's files are read from: a directory (OciLayoutReader::Open(env, dir)) or, in
// src/transports, the members of a tar archive (oci-archive:). Paths are relative and clean
// ("index.json", "blobs/sha256/HEX"), built by the reader only from parsed digests.
class OciLayoutFiles {
 public:
  virtual ~OciLayoutFiles() = default;
  // The layout as messages name it: the directory, or the archive file.
  virtual const std::string& name() const = 0;
  // rel as messages show it ("DIR/index.json", "FILE.tar[index.json]").
  virtual std::string Display(const std::string& rel) const = 0;
  // The whole file; kNotFound if absent, kCorruption if it holds more than max_bytes.
  virtual Result<std::string> ReadFile(const std::string& rel, uint64_t max_bytes) const = 0;
  // Type and size (lstat semantics: a symlink is not followed); kNotFound if absent.
  virtual Result<FileStat> Stat(const std::string& rel) const = 0;
  virtual Result<std::unique_ptr<SequentialFile>> Open(const std::string& rel) const = 0;
};

class OciLayoutReader {
 public:
  // Reads DIR/oci-layout (a JSON object whose imageLayoutVersion is "1.0.0"; anything else is
  // kUnsupported, a missing file kNotFound "... is not an OCI layout") and DIR/index.json
  // (ParseImageIndex with limits; missing → kNotFound, malformed → kInvalidArgument). Every
  // digest in index.json has been parsed, so blob paths built from it stay under DIR/blobs.
  static Result<OciLayoutReader> Open(Env* env, std::string dir, const ParseLimits& limits = {});
  // The same over any file tree (an oci-archive's members). files->name() is dir().
  static Result<OciLayoutReader> Open(std::shared_ptr<const OciLayoutFiles> files,
                                      const ParseLimits& limits = {});

  const std::string& dir() const { return dir_; }
  const ImageIndex& index() const { return index_; }
  // The entries of index.json in file order.
  const std::vector<OciLayoutImage>& images() const { return images_; }

  // The entry whose ref.name is ref. ref "" means "the only entry": kInvalidArgument listing
  // the refs when there are several, kNotFound when the index is empty. An unknown ref is
  // kNotFound listing the refs that exist.
  Result<OciLayoutImage> FindImage(std::string_view ref) const;

  // FindImage, then reads the manifest; an index (also nested) is followed to the manifest of
  // `platform` (SelectManifest). Every document read is digest- and size-verified.
  Result<OciResolvedImage> ResolveImage(std::string_view ref,
                                        const Platform& platform = HostPlatform()) const;

  // DIR/blobs/<alg>/<hex>: built only from a parsed Digest. (For a layout that is not a
  // directory, the path the blob would have if it were extracted to dir().)
  std::string BlobPath(const Digest& digest) const;

  // Opens the blob of d for streaming after checking that it is a regular file of d.size bytes
  // (kNotFound "blob sha256:... is missing from layout DIR"; kCorruption on another size or a
  // non-regular file; kUnsupported for a digest imgstore cannot hash, i.e. not sha256).
  Result<OciBlobReader> OpenBlob(const Descriptor& d) const;

  // The whole blob of d, verified, if d.size <= max_bytes (kInvalidArgument otherwise).
  Result<std::string> ReadBlob(const Descriptor& d, uint64_t max_bytes) const;

 private:
  OciLayoutReader(std::shared_ptr<const OciLayoutFiles> files, ParseLimits limits)
      : files_(std::move(files)), dir_(files_->name()), limits_(limits) {}

  std::shared_ptr<const OciLayoutFiles> files_;
  std::string dir_;
  ParseLimits limits_;
  ImageIndex index_;
  std::vector<OciLayoutImage> images_;
};

class OciLayoutWriter {
 public:
  // Uses DIR as a layout: creates it, blobs/sha256 and oci-layout if missing. An existing
  // oci-layout must be valid (as the reader checks) and an existing index.json is kept: new
  // entries are added to it. A non-empty directory without oci-layout is refused
  // (kFailedPrecondition), so that a typo cannot scatter blobs into an unrelated directory.
  static Result<OciLayoutWriter> Open(Env* env, std::string dir);

  const std::string& dir() const { return dir_; }

  // Writes bytes as blob `digest` (which must be sha256 and equal Digest::Of(bytes); otherwise
  // kCorruption / kUnsupported), atomically (TempFile in blobs/sha256, then rename). A blob
  // already present with the right size is kept as is.
  Status PutBlob(const Digest& digest, std::string_view bytes);
  // The same from a stream: reads src to its end, verifying size d.size and digest d.digest.
  Status PutBlobFrom(const Descriptor& d, SequentialFile* src);

  // Adds index.json entry `manifest` (its blob must already be written) with annotation
  // ref.name = ref (none when ref is ""), removing any entry with the same ref name, then
  // writes index.json atomically. Other entries are kept verbatim.
  Status AddImage(const Descriptor& manifest, std::string_view ref);

 private:
  OciLayoutWriter(Env* env, std::string dir) : env_(env), dir_(std::move(dir)) {}
  std::string BlobPath(const Digest& digest) const;
  // OK when a regular file of `size` bytes is at the blob's path.
  bool HasBlob(const Digest& digest, uint64_t size);

  Env* env_;
  std::string dir_;
};

}  // namespace imgstore::images
