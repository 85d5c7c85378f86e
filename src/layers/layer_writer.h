// LayerWriter: the sink of a new layer — entries in, a PAX tar out, compressed (gzip or zstd)
// and hashed twice on the way (the tar's sha256 is the diffID, the compressed bytes' sha256 the
// blob digest). Used by the tree writers (tree_diff.cc). Internal to src/layers.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "layers/tree.h"
#include "layers/tree_internal.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::layers {

// One tar entry as the walkers see it; the writer knows nothing of the file system.
struct LayerEntry {
  std::string path;  // relative, "/"-separated, no leading "./" or "/"
  mode_t mode = 0;   // type and permission bits (st_mode)
  uid_t uid = 0;
  gid_t gid = 0;
  struct timespec mtime = {0, 0};
  uint64_t size = 0;     // regular files: bytes of data that follow
  dev_t rdev = 0;        // character and block devices
  std::string symlink;   // symlinks: the target, as stored
  std::string hardlink;  // set: a hardlink to this earlier entry's path (no data)
  tree_internal::Xattrs xattrs;
};

class LayerWriter {
 public:
  // Writes to `out`, which must outlive the writer.
  static Result<std::unique_ptr<LayerWriter>> Create(WritableFile& out,
                                                     const LayerWriteOptions& options);
  virtual ~LayerWriter() = default;

  // Appends an entry; a regular file's `size` bytes are read from data_fd (fewer is an error
  // naming the path: the file shrank while it was read; more are not read).
  virtual Status Add(const LayerEntry& entry, int data_fd = -1) = 0;
  // Ends the archive, flushes the compressor, and says what was written. `out` is not synced.
  virtual Result<WrittenLayer> Finish() = 0;
};

}  // namespace imgstore::layers
