// Shared pieces of the fuzz targets (fuzz/*_fuzzer.cc): a per-process scratch directory, an
// in-memory file, the drain of an image source, and the check that turns a broken invariant into
// a crash the fuzzer reports. Built into every fuzzer and into the replay tests (tests/fuzz).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "images/transport.h"
#include "util/env.h"

namespace imgstore::fuzz {

// A directory private to this process ($TMPDIR/imgstore-fuzz-PID), made on first use and
// removed when the process exits normally. Targets reuse it across inputs to stay fast.
const std::string& ScratchDir();

// Writes data to path (replacing it); aborts on failure, which is the harness's fault, not
// the input's.
void WriteFileOrDie(const std::string& path, std::string_view data);

// A RandomAccessFile over a copy of data (for parsers that take one, such as TarReader).
std::shared_ptr<RandomAccessFile> MemoryFile(std::string_view data, std::string path = "<fuzz>");

// A SequentialFile over the fuzzer's input (not copied: it lives through the call), handing out
// at most max_read bytes per read, so that a reader sees its stream split anywhere.
std::unique_ptr<SequentialFile> InputFile(const uint8_t* data, size_t size,
                                          size_t max_read = SIZE_MAX, std::string path = "<fuzz>");

// Reads everything a source offers, as a pull would: the top manifest, child manifests of
// indexes (a few levels, a few entries each), the config and every layer blob to its end.
// Errors are the expected outcome of bad input and are ignored; only crashes matter.
void DrainSource(images::ImageSource& source);

// With IMGSTORE_FUZZ_VERBOSE set, prints "WHAT: STATUS" to stderr (why an input was refused,
// when writing seeds); silent otherwise, as fuzzing must be.
void Note(std::string_view what, const Status& status);

// Prints "fuzz invariant broken: WHAT" and aborts when cond is false: a finding, like a crash.
void Check(bool cond, std::string_view what);

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace imgstore::fuzz
