// TarWriter: writes a tar file (POSIX pax format: ustar headers, plus a pax record for names
// over 100 bytes or sizes over 8 GiB) atomically and streamed, never staged in memory.
//
// The archive is built in a temporary file beside PATH and published by Commit() (fsync, rename
// over PATH, fsync of the directory), so PATH shows either its old content or the complete new
// archive. Entries are deterministic: mode 0644/0755, uid/gid 0, mtime 0, so equal input gives
// byte-identical archives.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/env.h"
#include "util/status.h"

namespace imgstore::transports {

class TarWriter {
 public:
  // Creates the temporary file in PATH's directory (which must exist).
  static Result<TarWriter> Create(Env* env, const std::string& path);

  TarWriter(TarWriter&&) noexcept = default;
  TarWriter& operator=(TarWriter&&) noexcept = default;
  ~TarWriter() = default;  // the TempFile removes an uncommitted archive

  const std::string& path() const { return path_; }

  // Names are relative, clean ("a/b"): kInvalidArgument for "", a leading "/", a "." or ".."
  // component, an empty component or a NUL. After any failed call the archive is unusable
  // (later calls are kFailedPrecondition) and is never published.
  Status AddFile(std::string_view name, std::string_view bytes);
  // Streams exactly `size` bytes from data; fewer or more is kCorruption.
  Status AddFile(std::string_view name, uint64_t size, SequentialFile& data);
  Status AddDirectory(std::string_view name);

  // Writes the end-of-archive blocks, fsyncs, renames over PATH and fsyncs the directory.
  Status Commit();

 private:
  TarWriter(std::string path, TempFile tmp) : path_(std::move(path)), tmp_(std::move(tmp)) {}
  Status AddHeader(std::string_view name, char type, uint64_t size);
  Status Usable() const;

  std::string path_;
  TempFile tmp_;
  bool failed_ = false;
  bool committed_ = false;
};

}  // namespace imgstore::transports
