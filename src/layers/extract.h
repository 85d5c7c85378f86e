// Layer extraction: applies an untrusted layer tar to one or more directories without ever
// writing outside them (docs/extraction.md).
//
// SECURITY CONTRACT (design.md "Untrusted input"; prior-art.md section 4)
// - libarchive is used as a reader only. Every entry is created relative to a directory
//   descriptor: its parent is opened with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
//   RESOLVE_NO_XDEV) (a component-by-component O_NOFOLLOW walk where openat2 is missing), the
//   entry itself with *at() calls and O_NOFOLLOW, and metadata is set on the opened descriptor
//   (fchmod, fchown, futimens, fsetxattr), never by path. No path resolution is cached across
//   entries (CVE-2025-47290): a later entry may have replaced a directory with a symlink.
// - Names are cleaned and refused, as the whole layer, with kInvalidArgument naming the entry:
//   an absolute name or a ".." component that leaves the root ("a/../../x"), an empty name, a
//   NUL. A symlink may point anywhere (it is data: resolved later under the root, never by us);
//   a hardlink's target must be an existing regular file inside the same root.
// - A whiteout (".wh.NAME", ".wh..wh..opq") whose name or parent leaves the root, ".wh." alone,
//   or any other ".wh..wh." name is refused.
// - Device nodes and fifos are created only when running as root (CAP_MKNOD); otherwise they are
//   skipped with one warning per layer (on_warning) naming how many were skipped.
// - Bounds (ExtractLimits) are checked while streaming; a breach is kInvalidArgument naming the
//   limit's field.
// - The diffID (sha256 of the uncompressed tar stream, every byte including padding and the
//   end-of-archive blocks) is computed while streaming and compared at the end: a mismatch is
//   kCorruption naming both digests. The caller must discard the target on any error (the
//   store extracts into a staging directory, or into a directory it created for `unpack`).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "layers/decompress.h"
#include "util/digest.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::layers {

// What an extraction accepts before refusing the layer. The defaults are far above real images
// (the largest public images have layers of a few GiB and some 100 000 files).
struct ExtractLimits {
  // Bytes of the uncompressed tar stream (the decompression-bomb bound that holds whatever the
  // compression; DecompressLimits adds the ratio check). 0: no bound.
  uint64_t max_tar_bytes = 64ull << 30;
  // Entries (headers) in one layer.
  uint64_t max_entries = 4'000'000;
  // Bytes of one entry's name or link target after cleaning (Linux PATH_MAX is 4096).
  uint64_t max_path_bytes = 4096;
  // Bytes of all extended attributes of one entry (the kernel's own limit is 64 KiB per value).
  uint64_t max_xattr_bytes = 1 << 20;
  // Decompression bounds (ratio, zstd window) used by ExtractLayerBlob.
  DecompressLimits decompress;
};

// How a target directory receives whiteouts.
enum class WhiteoutMode {
  // The target is a flattened root filesystem that already holds the lower layers (unpack):
  // ".wh.NAME" removes NAME (recursively) from the target and is not written; ".wh..wh..opq"
  // in D removes everything in D that this layer did not itself create. Whiteouts never
  // remove entries this same layer created, whatever their order in the tar (image-spec
  // layer.md: whiteouts apply to lower layers only).
  kApply,
  // The target is one layer's own directory in the layer cache, to be used as an overlayfs
  // lowerdir: ".wh.NAME" becomes a 0/0 character device NAME (an overlay whiteout) and
  // ".wh..wh..opq" marks D opaque with the xattr trusted.overlay.opaque=y (user.overlay.opaque=y
  // when not root). Hardlinks to files of lower layers are resolved through `lower_dirs`.
  kOverlay,
};

struct ExtractTarget {
  std::string dir;  // must exist; entries are created below it
  WhiteoutMode mode = WhiteoutMode::kApply;
  // kOverlay only: the directories of the lower layers of the chain, nearest first. A hardlink
  // whose target is not in this layer is satisfied by copying the file from the first lower
  // dir that has it (overlayfs cannot link across layers). Empty: such a hardlink is refused.
  std::vector<std::string> lower_dirs;
};

struct ExtractOptions {
  ExtractLimits limits;
  // The diffID the stream must hash to; unset: computed and returned, not checked.
  std::optional<Digest> expected_diff_id;
  // Set owners (uid/gid from the tar) and create device nodes: defaults to running as root.
  // Without it, files belong to the caller and devices are skipped with a warning.
  std::optional<bool> preserve_owners;
  // Also set extended attributes from the tar (SCHILY.xattr.*, LIBARCHIVE.xattr.*). trusted.*
  // and security.* only as root; attributes that fail with EPERM/ENOTSUP are skipped with a
  // warning. The overlay.* attributes of the tar are never set (a layer must not forge
  // overlayfs metadata).
  bool xattrs = true;
  // Problems that do not fail the extraction (skipped devices, xattrs the file system refuses),
  // one line each, at most one line per kind per layer. May be empty.
  std::function<void(const std::string& line)> on_warning;
  // Called as uncompressed bytes are consumed (progress); may be empty.
  std::function<void(uint64_t tar_bytes)> on_progress;
  // Checked between entries and every few MiB of file data: when it returns true the
  // extraction stops with kCancelled. May be empty.
  std::function<bool()> cancelled;
};

struct ExtractStats {
  Digest diff_id;           // sha256 of the uncompressed tar stream
  uint64_t tar_bytes = 0;   // bytes of the uncompressed stream
  uint64_t entries = 0;     // headers applied (whiteouts included)
  uint64_t file_bytes = 0;  // regular file data written (to each target)
  uint64_t whiteouts = 0;   // whiteout entries seen
  uint64_t skipped = 0;     // entries skipped (devices as non-root)
};

// Applies the uncompressed tar `tar` to every target at once: one pass over the stream, each
// entry written to each target (so `unpack` fills the layer cache and the destination in one
// decompression). Errors name the entry and `tar.path()`.
Result<ExtractStats> ExtractLayer(SequentialFile& tar, std::span<const ExtractTarget> targets,
                                  const ExtractOptions& options = {});

// The same from a (possibly compressed) layer blob: decompressed per `compression` with
// options.limits.decompress, and with the tar-size bound applied.
Result<ExtractStats> ExtractLayerBlob(std::unique_ptr<SequentialFile> blob, Compression compression,
                                      std::span<const ExtractTarget> targets,
                                      const ExtractOptions& options = {});

// The name overlayfs gives the opaque attribute: "trusted.overlay.opaque" as root,
// "user.overlay.opaque" otherwise (unprivileged overlay mounts use the userxattr option).
const char* OverlayOpaqueXattr();

}  // namespace imgstore::layers
