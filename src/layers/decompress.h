// src/layers: what imgstore does with layer blobs once they are bytes on hand: decompression
// (this file), ingest and digests, the layer chain (diffID, chainID) and tar apply/unpack.
//
// LAYER CONTRACT
// - A layer blob is untrusted until its diffID, the sha256 of its *uncompressed* tar, has been
//   verified while it streams; nothing is trusted to a media type or a file name alone.
// - Expansion is bounded: a blob that decompresses far beyond its size (a decompression bomb) or
//   that asks for more memory than a configured bound (a zstd window) is refused with an error
//   that names the bound, never by running out of disk or memory.
// - Everything streams: no layer is ever held whole in memory.
//
// This file: the compressions of layer blobs (from a media type or from magic bytes) and a
// streaming decompressor over any SequentialFile. docs/docker-archive.md (decompression) says
// why the bounds are what they are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "util/env.h"
#include "util/status.h"

namespace imgstore::layers {

enum class Compression { kNone, kGzip, kZstd };
std::string_view CompressionName(Compression c);  // "none", "gzip", "zstd"

// The compression of a layer media type (OCI tar, tar+gzip, tar+zstd and their deprecated
// non-distributable forms; Docker rootfs.diff.tar[.gzip] and foreign layers). kUnsupported,
// naming the type, for anything else: an unknown type, or "+encrypted".
Result<Compression> CompressionOfMediaType(std::string_view media_type);

// The compression the first bytes of a blob announce (gzip 1f 8b, zstd 28 b5 2f fd); kNone
// otherwise (4 bytes are enough).
Compression SniffCompression(std::span<const std::byte> head);

// A compression that the first bytes announce and that imgstore does not decompress (docker
// load still accepts them in old archives): "bzip2", "xz", or "" for none of those. Lets a
// caller refuse such a blob clearly instead of taking it for an uncompressed tar.
std::string_view SniffUnsupportedCompression(std::span<const std::byte> head);

// Bounds against decompression bombs. Both are checked while streaming, so a refused stream has
// cost at most the grace plus one buffer of output, never the whole expansion.
struct DecompressLimits {
  // Decompressed bytes per compressed byte consumed so far, checked once the output passes
  // ratio_grace_bytes. deflate cannot exceed 1032:1, which only input made almost entirely of
  // one repeated byte reaches; real layers compress 2-20:1, and even logs and text stay under
  // 100:1. 1000 refuses zero-filled bombs (gzip and zstd; zstd reaches 30000:1) and accepts
  // everything else. 0 disables the check.
  uint64_t max_ratio = 1000;
  // Output allowed before the ratio is checked, so that tiny, very compressible layers (a few
  // config files, an empty tar of 10 KiB that gzips to 100 bytes) always pass.
  uint64_t ratio_grace_bytes = 8 << 20;
  // The largest zstd window accepted, as a power of two: the decoder allocates the window, so a
  // frame header alone could ask for 2 GiB (window log 31). 27 (128 MiB) is zstd's own default
  // bound (ZSTD_WINDOWLOG_LIMIT_DEFAULT), so every frame that `zstd -d` decodes without
  // --long=N decodes here.
  int zstd_max_window_log = 27;
};

// The gzip decoder. kDefault is ISA-L's inflate where imgstore was built with libisal (2-2.5x
// zlib's speed on x86-64 and arm64: gzip layers are decompression-bound), zlib's otherwise. Both
// check each member's CRC-32 and length and behave alike in every case the contract below names.
enum class GzipDecoder { kDefault, kZlib, kIsal };
// Whether `d` can be used in this build (kDefault and kZlib always can).
bool GzipDecoderAvailable(GzipDecoder d);

// A SequentialFile of the decompressed bytes of src (which it now owns); its path() is src's.
// kNone gives src back unchanged. Errors from Read (the message names src's path and the
// compression): kCorruption for a corrupt or truncated stream, or bytes after the end of the
// last gzip member that are not another member; kInvalidArgument, naming the DecompressLimits
// field, when a bound is exceeded; src's own errors as they are. Concatenated gzip members
// decompress as one stream (as gzip -d does), and so do concatenated zstd frames.
// OpenDecompressed itself fails only for a zstd_max_window_log outside zstd's range, or
// kUnsupported when `gzip` names a decoder this build lacks.
Result<std::unique_ptr<SequentialFile>> OpenDecompressed(std::unique_ptr<SequentialFile> src,
                                                         Compression c,
                                                         const DecompressLimits& limits = {},
                                                         GzipDecoder gzip = GzipDecoder::kDefault);

}  // namespace imgstore::layers
