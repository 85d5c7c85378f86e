// TarBuilder: builds raw tar streams byte by byte (ustar headers, pax extended headers written by
// hand), so that tests can make layer fixtures, including hostile ones that a tar writer would
// refuse: "../x", "/abs", names with NUL, links anywhere, devices, whiteouts, forged xattrs,
// headers that lie about sizes. Also a SequentialFile over a string, to feed an extractor.
//
// Usage:
//   std::string tar = TarBuilder()
//                         .Dir("etc")
//                         .File("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0644)
//                         .Owner(0, 42).Mtime(1700000000).Xattr("user.k", "v")
//                         .Symlink("lib", "usr/lib")
//                         .Whiteout("var/cache")  // "var/.wh.cache"
//                         .Finish();
//   std::string blob = Gzip(tar);
//
// Owner/Mtime/Xattr/Pax/DeclaredSize modify the entry added last. Entries default to uid/gid 0,
// mtime 1600000000 and a ustar header; a pax header ('x') is added when something does not fit
// ustar (a name over 100 bytes that cannot be split, a link over 100, xattrs, extra records, an
// owner over 07777777), or for every entry with UsePax().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/env.h"

namespace imgstore::testing {

class TarBuilder {
 public:
  TarBuilder() = default;

  TarBuilder& File(std::string name, std::string content, uint32_t mode = 0644);
  TarBuilder& Dir(std::string name, uint32_t mode = 0755);
  TarBuilder& Symlink(std::string name, std::string target);
  // A tar hardlink (type '1'): `name` is another name for the earlier entry `target`.
  TarBuilder& Hardlink(std::string name, std::string target);
  TarBuilder& CharDevice(std::string name, uint32_t major, uint32_t minor, uint32_t mode = 0600);
  TarBuilder& BlockDevice(std::string name, uint32_t major, uint32_t minor, uint32_t mode = 0600);
  TarBuilder& Fifo(std::string name, uint32_t mode = 0644);
  // The OCI whiteout of `path`: an empty file "DIR/.wh.BASE" ("a/b" → "a/.wh.b").
  TarBuilder& Whiteout(std::string_view path);
  // The OCI opaque marker of directory `dir`: "DIR/.wh..wh..opq" (".wh..wh..opq" for "").
  TarBuilder& Opaque(std::string_view dir);
  // Any entry: typeflag as in the header ('0', '5', '2', ...), written as given.
  TarBuilder& Entry(char typeflag, std::string name, std::string content = {},
                    std::string linkname = {}, uint32_t mode = 0644);

  // Modifiers of the entry added last.
  TarBuilder& Owner(uint64_t uid, uint64_t gid);
  TarBuilder& Mtime(int64_t seconds);
  TarBuilder& Mode(uint32_t mode);
  // A pax "SCHILY.xattr.<key>" record (value may hold any bytes).
  TarBuilder& Xattr(std::string key, std::string value);
  // Any pax record ("path", "size", "linkpath", ...), written verbatim, after the builder's own.
  TarBuilder& Pax(std::string key, std::string value);
  // The size field of the header says `size` instead of the content's length (the content is
  // still written as given, padded to 512): a header that lies, e.g. a huge size with no data.
  TarBuilder& DeclaredSize(uint64_t size);

  // Every later entry gets a pax header, even when ustar would do.
  TarBuilder& UsePax(bool on = true);
  // Bytes appended verbatim at this point of the stream (no padding added).
  TarBuilder& Raw(std::string bytes);

  // The stream: the entries in order, then two zero blocks (unless end_blocks is false).
  std::string Finish(bool end_blocks = true) const;

 private:
  struct Item {
    char typeflag = '0';
    std::string name;
    std::string linkname;
    std::string content;
    uint32_t mode = 0644;
    uint64_t uid = 0;
    uint64_t gid = 0;
    int64_t mtime = 1600000000;
    uint32_t devmajor = 0;
    uint32_t devminor = 0;
    bool has_declared_size = false;
    uint64_t declared_size = 0;
    bool force_pax = false;
    bool raw = false;  // content is appended as is
    std::vector<std::pair<std::string, std::string>> xattrs;
    std::vector<std::pair<std::string, std::string>> pax;
  };
  Item& Last();

  std::vector<Item> items_;
  bool use_pax_ = false;
};

// The whole stream compressed (a gzip member / a zstd frame), as a layer blob.
std::string Gzip(const std::string& bytes);
std::string Zstd(const std::string& bytes);

// A SequentialFile that reads `data` (path() is `path`); reads at most `max_read` bytes per
// call when nonzero (to exercise short reads).
std::unique_ptr<SequentialFile> StringSequentialFile(std::string data,
                                                     std::string path = "<memory>",
                                                     size_t max_read = 0);

}  // namespace imgstore::testing
