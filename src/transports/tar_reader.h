// TarReader: random access to the members of an UNCOMPRESSED tar file, without extracting it.
//
// The archive is untrusted (an oci-archive or docker-archive from anywhere). Open() walks the
// headers once with an own parser (ustar, pax 'x'/'g' records, GNU 'L'/'K' long names, base-256
// numbers) that checks every header checksum and bounds, so that every member's data lies
// inside the file and nothing is ever read outside it. The rules for hostile archives (names
// with "..", absolute names, duplicates, truncation, oversized records) are in
// docs/transports.md; each breach is one clear error from Open().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/env.h"
#include "util/status.h"

namespace imgstore::transports {

// Bounds that protect against abusive archives; the defaults are far above real images.
struct TarLimits {
  // Members (headers) in the archive: bounds the memory of the member table.
  uint64_t max_members = 1'000'000;
  // Bytes of one pax extended header or GNU long name/link record: bounds what is held in
  // memory to parse one member's header.
  uint64_t max_header_bytes = 1 << 20;
};

struct TarMember {
  // As stored, after pax/GNU long names, cleaned: "./" prefixes, "." components, repeated and
  // trailing slashes removed ("./a//b/" → "a/b"; the root directory "./" → "").
  std::string name;
  char type = '0';       // ustar typeflag: '0' regular, '5' dir, '2' symlink, '1' hardlink, ...
  std::string linkname;  // as stored (after pax/GNU long link names), for '1' and '2'
  uint64_t offset = 0;   // of the data in the file
  uint64_t size = 0;     // bytes of data in the file (0 for everything but regular files)
};

class TarReader {
 public:
  // Reads every header of the tar file at path (kNotFound if it does not exist). Errors:
  // kInvalidArgument for a file that is not a tar (first header bad), a member name that is
  // absolute or has a ".." component, a duplicate non-directory name, a limit exceeded;
  // kCorruption for a later bad checksum, a truncated archive (a header or data past the end,
  // no end-of-archive block). kUnsupported for a gzip/zstd/bzip2/xz compressed file.
  static Result<TarReader> Open(Env* env, const std::string& path, const TarLimits& limits = {});
  // The same over an already open file (tests and fuzzers give an in-memory one).
  static Result<TarReader> Open(std::shared_ptr<RandomAccessFile> file,
                                const TarLimits& limits = {});

  const std::string& path() const { return file_->path(); }
  // Every member, in archive order (pax and GNU long-name records are folded into the member
  // they describe, not listed).
  const std::vector<TarMember>& members() const { return members_; }

  // The regular file named `name` (a clean name: "a/b", no "./"), or nullptr. A hardlink is
  // resolved to the regular member it links to (whose name is returned). Names with ".."
  // components or a leading "/" are never found.
  const TarMember* Find(std::string_view name) const;

  // A stream of exactly m.size bytes of m's data. m must come from members() or Find().
  Result<std::unique_ptr<SequentialFile>> Open(const TarMember& m) const;
  // The whole data of m; kInvalidArgument if m.size > max_bytes.
  Result<std::string> ReadAll(const TarMember& m, uint64_t max_bytes) const;

 private:
  TarReader(std::shared_ptr<RandomAccessFile> file, std::vector<TarMember> members)
      : file_(std::move(file)), members_(std::move(members)) {}

  std::shared_ptr<RandomAccessFile> file_;
  std::vector<TarMember> members_;
  std::unordered_map<std::string, size_t> by_name_;  // clean name → index in members_
};

// How OpenTarArchive treats a compressed file.
struct TarArchiveOptions {
  TarLimits limits;
  // Where a compressed archive is decompressed to ("" → $TMPDIR, else /tmp). The file is
  // unlinked before it is written, so nothing is left behind, even by a killed process.
  std::string temp_dir;
  // Bound on the decompressed size, against decompression bombs; 0 means no bound but the
  // space of temp_dir's file system.
  uint64_t max_decompressed_bytes = 0;
};

// TarReader::Open, except that a gzip, zstd, bzip2 or xz compressed file (recognised by its
// magic number) is first decompressed into a temporary file, read in its place (messages
// still name path). Over max_decompressed_bytes is kInvalidArgument; a corrupt stream is
// kCorruption.
Result<TarReader> OpenTarArchive(Env* env, const std::string& path,
                                 const TarArchiveOptions& options = {});

}  // namespace imgstore::transports
