// TarBuilder: ustar and pax headers written by hand (see tar_builder.h), gzip/zstd of a stream,
// and a string-backed SequentialFile.
#include "tar_builder.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace imgstore::testing {
namespace {

constexpr size_t kBlock = 512;

void Fail(const char* what) {
  std::fprintf(stderr, "tar_builder: %s\n", what);
  std::abort();
}

void PadTo512(std::string& out) {
  size_t rem = out.size() % kBlock;
  if (rem) out.append(kBlock - rem, '\0');
}

// An octal field of `width` bytes (digits then NUL); base-256 (GNU) when the value does not fit.
void PutNumber(char* field, size_t width, uint64_t value) {
  uint64_t max_octal = 1;
  for (size_t i = 0; i + 1 < width; ++i) max_octal *= 8;
  if (value < max_octal) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*llo", static_cast<int>(width - 1),
                  static_cast<unsigned long long>(value));
    std::memcpy(field, buf, width);  // the digits and their NUL
    return;
  }
  std::memset(field, 0, width);
  field[0] = static_cast<char>(0x80);
  for (size_t i = width - 1; i > 0 && value; --i) {
    field[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
}

bool FitsOctal(uint64_t value, size_t width) {
  uint64_t max_octal = 1;
  for (size_t i = 0; i + 1 < width; ++i) max_octal *= 8;
  return value < max_octal;
}

void PutString(char* field, size_t width, std::string_view s) {
  std::memcpy(field, s.data(), std::min(width, s.size()));
}

std::string PaxRecord(const std::string& key, const std::string& value) {
  size_t base = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = base + 1;
  while (std::to_string(len).size() + base != len) len = std::to_string(len).size() + base;
  return std::to_string(len) + " " + key + "=" + value + "\n";
}

// One 512-byte ustar header.
std::string Header(std::string_view name, std::string_view prefix, char typeflag, uint32_t mode,
                   uint64_t uid, uint64_t gid, uint64_t size, int64_t mtime,
                   std::string_view linkname, uint32_t devmajor, uint32_t devminor) {
  std::string h(kBlock, '\0');
  char* p = h.data();
  PutString(p, 100, name);
  PutNumber(p + 100, 8, mode);
  PutNumber(p + 108, 8, uid);
  PutNumber(p + 116, 8, gid);
  PutNumber(p + 124, 12, size);
  PutNumber(p + 136, 12, static_cast<uint64_t>(mtime < 0 ? 0 : mtime));
  p[156] = typeflag;
  PutString(p + 157, 100, linkname);
  std::memcpy(p + 257, "ustar", 6);
  std::memcpy(p + 263, "00", 2);
  PutString(p + 265, 32, uid == 0 ? "root" : "");
  PutString(p + 297, 32, gid == 0 ? "root" : "");
  PutNumber(p + 329, 8, devmajor);
  PutNumber(p + 337, 8, devminor);
  PutString(p + 345, 155, prefix);
  std::memset(p + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(p + 148, 8, "%06o", sum);
  p[155] = ' ';
  return h;
}

// Splits a name into ustar prefix and name fields; false if it cannot be split.
bool SplitUstar(const std::string& n, std::string* prefix, std::string* name) {
  if (n.size() <= 100 && n.find('\0') == std::string::npos) {
    *prefix = "";
    *name = n;
    return true;
  }
  if (n.find('\0') != std::string::npos) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    if (n[i] != '/') continue;
    if (i <= 155 && n.size() - i - 1 <= 100 && n.size() - i - 1 > 0) {
      *prefix = n.substr(0, i);
      *name = n.substr(i + 1);
      return true;
    }
  }
  return false;
}

class StringFile final : public SequentialFile {
 public:
  StringFile(std::string data, std::string path, size_t max_read)
      : SequentialFile(std::move(path)), data_(std::move(data)), max_read_(max_read) {}
  Result<size_t> Read(std::span<std::byte> buf) override {
    size_t n = std::min(buf.size(), data_.size() - pos_);
    if (max_read_) n = std::min(n, max_read_);
    std::memcpy(buf.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  Status Skip(uint64_t n) override {
    pos_ = static_cast<size_t>(std::min<uint64_t>(data_.size(), pos_ + n));
    return Status::OK();
  }

 private:
  std::string data_;
  size_t max_read_;
  size_t pos_ = 0;
};

}  // namespace

TarBuilder::Item& TarBuilder::Last() {
  if (items_.empty()) Fail("a modifier was called before any entry");
  return items_.back();
}

TarBuilder& TarBuilder::Entry(char typeflag, std::string name, std::string content,
                              std::string linkname, uint32_t mode) {
  Item it;
  it.typeflag = typeflag;
  it.name = std::move(name);
  it.content = std::move(content);
  it.linkname = std::move(linkname);
  it.mode = mode;
  it.force_pax = use_pax_;
  items_.push_back(std::move(it));
  return *this;
}

TarBuilder& TarBuilder::File(std::string name, std::string content, uint32_t mode) {
  return Entry('0', std::move(name), std::move(content), {}, mode);
}
TarBuilder& TarBuilder::Dir(std::string name, uint32_t mode) {
  if (name.empty() || name.back() != '/') name += '/';
  return Entry('5', std::move(name), {}, {}, mode);
}
TarBuilder& TarBuilder::Symlink(std::string name, std::string target) {
  return Entry('2', std::move(name), {}, std::move(target), 0777);
}
TarBuilder& TarBuilder::Hardlink(std::string name, std::string target) {
  return Entry('1', std::move(name), {}, std::move(target), 0644);
}
TarBuilder& TarBuilder::CharDevice(std::string name, uint32_t major, uint32_t minor,
                                   uint32_t mode) {
  Entry('3', std::move(name), {}, {}, mode);
  Last().devmajor = major;
  Last().devminor = minor;
  return *this;
}
TarBuilder& TarBuilder::BlockDevice(std::string name, uint32_t major, uint32_t minor,
                                    uint32_t mode) {
  Entry('4', std::move(name), {}, {}, mode);
  Last().devmajor = major;
  Last().devminor = minor;
  return *this;
}
TarBuilder& TarBuilder::Fifo(std::string name, uint32_t mode) {
  return Entry('6', std::move(name), {}, {}, mode);
}
TarBuilder& TarBuilder::Whiteout(std::string_view path) {
  size_t slash = path.rfind('/');
  std::string name =
      slash == std::string_view::npos
          ? ".wh." + std::string(path)
          : std::string(path.substr(0, slash + 1)) + ".wh." + std::string(path.substr(slash + 1));
  return File(std::move(name), {}, 0644);
}
TarBuilder& TarBuilder::Opaque(std::string_view dir) {
  std::string name(dir);
  if (!name.empty() && name.back() != '/') name += '/';
  return File(name + ".wh..wh..opq", {}, 0644);
}

TarBuilder& TarBuilder::Owner(uint64_t uid, uint64_t gid) {
  Last().uid = uid;
  Last().gid = gid;
  return *this;
}
TarBuilder& TarBuilder::Mtime(int64_t seconds) {
  Last().mtime = seconds;
  return *this;
}
TarBuilder& TarBuilder::Mode(uint32_t mode) {
  Last().mode = mode;
  return *this;
}
TarBuilder& TarBuilder::Xattr(std::string key, std::string value) {
  Last().xattrs.emplace_back(std::move(key), std::move(value));
  return *this;
}
TarBuilder& TarBuilder::Pax(std::string key, std::string value) {
  Last().pax.emplace_back(std::move(key), std::move(value));
  return *this;
}
TarBuilder& TarBuilder::DeclaredSize(uint64_t size) {
  Last().has_declared_size = true;
  Last().declared_size = size;
  return *this;
}
TarBuilder& TarBuilder::UsePax(bool on) {
  use_pax_ = on;
  return *this;
}
TarBuilder& TarBuilder::Raw(std::string bytes) {
  Item it;
  it.raw = true;
  it.content = std::move(bytes);
  items_.push_back(std::move(it));
  return *this;
}

std::string TarBuilder::Finish(bool end_blocks) const {
  std::string out;
  for (const Item& it : items_) {
    if (it.raw) {
      out += it.content;
      continue;
    }
    uint64_t size = it.has_declared_size ? it.declared_size : it.content.size();
    std::string prefix, name;
    std::string records;
    if (!SplitUstar(it.name, &prefix, &name) || it.force_pax) {
      records += PaxRecord("path", it.name);
      if (!SplitUstar(it.name, &prefix, &name)) {
        prefix.clear();
        name = it.name.substr(0, std::min<size_t>(100, it.name.find('\0')));
      }
    }
    std::string linkname = it.linkname;
    if (linkname.size() > 100 || linkname.find('\0') != std::string::npos || it.force_pax) {
      if (!linkname.empty()) records += PaxRecord("linkpath", it.linkname);
      linkname = linkname.substr(0, std::min<size_t>(100, linkname.find('\0')));
    }
    if (!FitsOctal(it.uid, 8)) records += PaxRecord("uid", std::to_string(it.uid));
    if (!FitsOctal(it.gid, 8)) records += PaxRecord("gid", std::to_string(it.gid));
    for (const auto& [k, v] : it.xattrs) records += PaxRecord("SCHILY.xattr." + k, v);
    for (const auto& [k, v] : it.pax) records += PaxRecord(k, v);
    if (!records.empty()) {
      std::string base = it.name.substr(0, std::min<size_t>(it.name.find('\0'), 80));
      std::replace(base.begin(), base.end(), '/', '_');
      out += Header("PaxHeaders/" + base, "", 'x', 0644, 0, 0, records.size(), it.mtime, "", 0, 0);
      out += records;
      PadTo512(out);
    }
    out += Header(name, prefix, it.typeflag, it.mode, FitsOctal(it.uid, 8) ? it.uid : 0,
                  FitsOctal(it.gid, 8) ? it.gid : 0, size, it.mtime, linkname, it.devmajor,
                  it.devminor);
    out += it.content;
    PadTo512(out);
  }
  if (end_blocks) out.append(2 * kBlock, '\0');
  return out;
}

std::string Gzip(const std::string& bytes) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    Fail("deflateInit2");
  }
  std::string out(deflateBound(&zs, bytes.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  size_t done_in = 0;
  // avail_in is 32 bits: feed large inputs in pieces.
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    size_t chunk = std::min<size_t>(bytes.size() - done_in, 1u << 30);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + done_in));
    zs.avail_in = static_cast<uInt>(chunk);
    size_t out_done = zs.total_out;
    size_t out_room = std::min<size_t>(out.size() - out_done, 1u << 30);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_done);
    zs.avail_out = static_cast<uInt>(out_room);
    bool last = done_in + chunk == bytes.size();
    rc = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) Fail("deflate");
    done_in += chunk - zs.avail_in;
  }
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string Zstd(const std::string& bytes) {
  std::string out(ZSTD_compressBound(bytes.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), 3);
  if (ZSTD_isError(n)) Fail("ZSTD_compress");
  out.resize(n);
  return out;
}

std::unique_ptr<SequentialFile> StringSequentialFile(std::string data, std::string path,
                                                     size_t max_read) {
  return std::make_unique<StringFile>(std::move(data), std::move(path), max_read);
}

}  // namespace imgstore::testing
