// Trees of unpacked layers: flattening cached layer directories into a root filesystem, and
// turning a changed filesystem back into a layer (docs/commit.md).
//
// A cached layer directory (layers/CHAINID, written by ExtractLayer with WhiteoutMode::kOverlay)
// holds one layer's own entries, with overlay whiteouts: a 0/0 character device for a deleted
// name and the opaque xattr (OverlayOpaqueXattr) on a directory whose lower content is hidden.
// An overlayfs upper directory has the same format, so one walker serves both directions.
//
// The same security rules as extract.h hold: every file is opened relative to a directory
// descriptor with O_NOFOLLOW, a symlink is copied as a symlink and never followed, and nothing
// is written outside the target.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "layers/decompress.h"
#include "util/digest.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::layers {

struct CopyOptions {
  // As ExtractOptions: owners and device nodes only as root by default.
  std::optional<bool> preserve_owners;
  bool xattrs = true;  // copies xattrs except the overlay.* ones
  std::function<void(const std::string& line)> on_warning;
  std::function<bool()> cancelled;  // kCancelled when it returns true
};

struct CopyStats {
  uint64_t entries = 0;
  uint64_t file_bytes = 0;
  uint64_t whiteouts = 0;
};

// Applies one cached layer directory (or an overlay upper directory) onto `target`, a root
// filesystem that holds the layers below it: a 0/0 character device removes that name from the
// target, an opaque directory first removes everything the target had in it, every other entry
// is copied with its type, mode, owner (as root), times, xattrs and link target; hardlinks
// between files of the layer stay hardlinks. File data is copied with copy_file_range. Applying
// a chain's layers in order, base first, gives the same tree as extracting their tars in
// order with WhiteoutMode::kApply.
Result<CopyStats> ApplyLayerDir(const std::string& layer_dir, const std::string& target,
                                const CopyOptions& options = {});

// Where a new layer's bytes go, and what they turned out to be.
struct LayerWriteOptions {
  Compression compression = Compression::kGzip;
  int zstd_level = 3;  // zstd's default
  int gzip_level = 6;  // gzip's default
  std::function<bool()> cancelled;
};

struct WrittenLayer {
  Digest digest;      // sha256 of the compressed blob written to `out`
  uint64_t size = 0;  // its bytes
  Digest diff_id;     // sha256 of the uncompressed tar
  uint64_t tar_bytes = 0;
  uint64_t entries = 0;  // tar entries, whiteouts included
  bool empty = false;    // no change at all (the tar has no entries)
};

// The changes recorded in an overlayfs upper directory, as an OCI layer tar (PAX format,
// entries sorted by path so equal trees give equal bytes): overlay whiteouts become ".wh.NAME",
// opaque directories get ".wh..wh..opq" right after the directory's own entry; everything else
// is added with its metadata (mode, uid/gid, mtime, xattrs except overlay.*, link targets;
// hardlinks inside the upper dir as tar hardlinks). Compressed and hashed while written to `out`
// (which the caller syncs and ingests).
Result<WrittenLayer> WriteUpperDirLayer(const std::string& upper_dir, WritableFile& out,
                                        const LayerWriteOptions& options = {});

// The changes of `dir` against the flattened tree of `lower_dirs` (cached layer dirs, base
// first, their whiteouts applied): a name missing from dir is a whiteout, a new name or one
// whose type, mode, owner, size, mtime, xattrs or link target differs is added (a directory
// whose own metadata is unchanged is written only when something below it changed). For a
// copy-based mount, and for `commit DIR --base IMAGE`.
Result<WrittenLayer> WriteDirDiffLayer(const std::string& dir,
                                       std::span<const std::string> lower_dirs, WritableFile& out,
                                       const LayerWriteOptions& options = {});

}  // namespace imgstore::layers
