// The tar header parser behind TarReader (see tar_reader.h and docs/transports.md). Every
// field is parsed from bytes with explicit bounds: nothing here trusts a length before
// checking it against the file size or a TarLimits bound.
#include "transports/tar_reader.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>

namespace imgstore::transports {
namespace {

constexpr uint64_t kBlock = 512;

using Block = std::array<unsigned char, kBlock>;

// Header field offsets and lengths (POSIX ustar).
struct Field {
  size_t off;
  size_t len;
};
constexpr Field kName{0, 100};
constexpr Field kSize{124, 12};
constexpr Field kChksum{148, 8};
constexpr Field kType{156, 1};
constexpr Field kLinkname{157, 100};
constexpr Field kMagic{257, 6};
constexpr Field kPrefix{345, 155};

std::string_view FieldOf(const Block& b, Field f) {
  return std::string_view(reinterpret_cast<const char*>(b.data()) + f.off, f.len);
}

// A NUL-terminated string in a fixed field (not terminated when it fills the field).
std::string CString(const Block& b, Field f) {
  std::string_view s = FieldOf(b, f);
  return std::string(s.substr(0, s.find('\0')));
}

std::string OffsetText(uint64_t off) { return "at offset " + std::to_string(off); }

// An octal number (optionally space-padded, NUL- or space-terminated), or GNU base-256 when
// the first byte has its high bit set.
std::optional<uint64_t> ParseNumber(std::string_view f) {
  if (f.empty()) return 0;
  const auto first = static_cast<unsigned char>(f[0]);
  if (first & 0x80) {
    if (first != 0x80) return std::nullopt;  // negative (0xff) or a bad marker
    uint64_t v = 0;
    for (size_t i = 1; i < f.size(); ++i) {
      if (v > (UINT64_MAX >> 8)) return std::nullopt;
      v = (v << 8) | static_cast<unsigned char>(f[i]);
    }
    return v;
  }
  size_t i = 0;
  while (i < f.size() && f[i] == ' ') ++i;
  uint64_t v = 0;
  for (; i < f.size() && f[i] != ' ' && f[i] != '\0'; ++i) {
    if (f[i] < '0' || f[i] > '7') return std::nullopt;
    if (v > (UINT64_MAX >> 3)) return std::nullopt;
    v = (v << 3) | static_cast<uint64_t>(f[i] - '0');
  }
  for (; i < f.size(); ++i) {  // only terminators may follow the digits
    if (f[i] != ' ' && f[i] != '\0') return std::nullopt;
  }
  return v;
}

// The checksum field against the header summed with that field as spaces; historic writers
// summed signed chars, so either sum is accepted, as GNU tar does.
bool ChecksumMatches(const Block& b) {
  std::optional<uint64_t> want = ParseNumber(FieldOf(b, kChksum));
  if (!want) return false;
  uint64_t usum = 0;
  int64_t ssum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    const bool in_field = i >= kChksum.off && i < kChksum.off + kChksum.len;
    const unsigned char c = in_field ? ' ' : b[i];
    usum += c;
    ssum += static_cast<signed char>(c);
  }
  return *want == usum || static_cast<int64_t>(*want) == ssum;
}

bool IsZeroBlock(const Block& b) {
  return std::all_of(b.begin(), b.end(), [](unsigned char c) { return c == 0; });
}

// A stream compression format recognised by its magic number, or "".
std::string_view CompressionMagic(const Block& b, uint64_t have) {
  auto starts = [&](std::initializer_list<unsigned char> m) {
    if (have < m.size()) return false;
    return std::equal(m.begin(), m.end(), b.begin());
  };
  if (starts({0x1f, 0x8b})) return "gzip";
  if (starts({0x28, 0xb5, 0x2f, 0xfd})) return "zstd";
  if (starts({'B', 'Z', 'h'})) return "bzip2";
  if (starts({0xfd, '7', 'z', 'X', 'Z', 0x00})) return "xz";
  return "";
}

// Types whose size field describes no data in the archive (as Go's archive/tar reads them).
bool IsHeaderOnly(char type) {
  return std::string_view("123456").find(type) != std::string_view::npos;
}

// Cleans a member name as TarMember::name says; nullopt for an absolute name or one with a ".."
// component (which must never reach a file lookup).
std::optional<std::string> CleanName(std::string_view raw) {
  if (raw.starts_with('/')) return std::nullopt;
  std::string out;
  size_t start = 0;
  while (start <= raw.size()) {
    size_t slash = raw.find('/', start);
    if (slash == std::string_view::npos) slash = raw.size();
    std::string_view comp = raw.substr(start, slash - start);
    if (comp == "..") return std::nullopt;
    if (!comp.empty() && comp != ".") {
      if (!out.empty()) out += '/';
      out += comp;
    }
    start = slash + 1;
  }
  return out;
}

// What pax and GNU extension records say about the next member.
struct Pending {
  std::optional<std::string> path;
  std::optional<std::string> linkpath;
  std::optional<uint64_t> size;
  bool any() const { return path || linkpath || size; }
};

// pax extended header records: "<len> <key>=<value>\n", len counting the whole record.
Status ParsePax(std::string_view data, Pending* p, const std::string& where) {
  auto bad = [&](const std::string& why) {
    return Status(Code::kCorruption, "malformed pax header " + where + ": " + why);
  };
  while (!data.empty()) {
    size_t sp = data.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 20) return bad("no record length");
    uint64_t len = 0;
    for (size_t i = 0; i < sp; ++i) {
      if (data[i] < '0' || data[i] > '9') return bad("record length is not a number");
      len = len * 10 + static_cast<uint64_t>(data[i] - '0');
    }
    if (len <= sp + 1 || len > data.size()) return bad("record length out of range");
    std::string_view rec = data.substr(sp + 1, len - sp - 1);
    data.remove_prefix(len);
    if (!rec.ends_with('\n')) return bad("record does not end with a newline");
    rec.remove_suffix(1);
    size_t eq = rec.find('=');
    if (eq == std::string_view::npos || eq == 0) return bad("record has no key");
    std::string_view key = rec.substr(0, eq);
    std::string_view value = rec.substr(eq + 1);
    if (key == "path") {
      p->path = std::string(value);
    } else if (key == "linkpath") {
      p->linkpath = std::string(value);
    } else if (key == "size") {
      std::optional<uint64_t> v;
      if (!value.empty() && value.size() <= 20 &&
          std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        uint64_t n = 0;
        bool overflow = false;
        for (char c : value) {
          if (n > (UINT64_MAX - 9) / 10) overflow = true;
          n = n * 10 + static_cast<uint64_t>(c - '0');
        }
        if (!overflow) v = n;
      }
      if (!v) return bad("size \"" + std::string(value) + "\" is not a number");
      p->size = v;
    }
    // Other keys (times, owners, xattrs, GNU.sparse.*) do not matter for reading image files.
  }
  return Status::OK();
}

Status ReadExactly(const RandomAccessFile& f, uint64_t off, std::span<std::byte> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    Result<size_t> n = f.ReadAt(off + done, buf.subspan(done));
    if (!n.ok()) return n.status();
    if (*n == 0) {
      return Status(Code::kCorruption, f.path() + " ended early " + OffsetText(off + done) +
                                           " (was it modified while being read?)");
    }
    done += *n;
  }
  return Status::OK();
}

// A member's data as a stream of exactly its bytes.
class MemberFile : public SequentialFile {
 public:
  MemberFile(std::shared_ptr<RandomAccessFile> file, const TarMember& m)
      : SequentialFile(file->path() + "[" + m.name + "]"),
        file_(std::move(file)),
        pos_(m.offset),
        end_(m.offset + m.size) {}

  Result<size_t> Read(std::span<std::byte> buf) override {
    const uint64_t left = end_ - pos_;
    if (left == 0 || buf.empty()) return size_t{0};
    if (buf.size() > left) buf = buf.first(static_cast<size_t>(left));
    Result<size_t> n = file_->ReadAt(pos_, buf);
    if (!n.ok()) return n.status();
    if (*n == 0) {
      return Status(Code::kCorruption,
                    path() + ": the archive ended early (was it modified while being read?)");
    }
    pos_ += *n;
    return n;
  }
  Status Skip(uint64_t n) override {
    pos_ += std::min(n, end_ - pos_);
    return Status::OK();
  }

 private:
  std::shared_ptr<RandomAccessFile> file_;
  uint64_t pos_;
  uint64_t end_;
};

}  // namespace

Result<TarReader> TarReader::Open(Env* env, const std::string& path, const TarLimits& limits) {
  Result<std::unique_ptr<RandomAccessFile>> f = env->NewRandomAccessFile(path);
  if (!f.ok()) return f.status();
  return Open(std::shared_ptr<RandomAccessFile>(std::move(f).value()), limits);
}

Result<TarReader> TarReader::Open(std::shared_ptr<RandomAccessFile> file, const TarLimits& limits) {
  const std::string& path = file->path();
  Result<uint64_t> file_size = file->Size();
  if (!file_size.ok()) return file_size.status();
  const uint64_t size = *file_size;
  auto corrupt = [&](uint64_t off, const std::string& why) {
    return Status(Code::kCorruption, "tar archive " + path + ": " + why + " " + OffsetText(off));
  };

  std::vector<TarMember> members;
  std::unordered_map<std::string, size_t> by_name;
  Pending pending;
  uint64_t pos = 0;
  while (true) {
    if (size - pos < kBlock) {
      if (pos == 0) {
        Block b{};
        const uint64_t have = size;
        if (have > 0) {
          IMGSTORE_RETURN_IF_ERROR(ReadExactly(
              *file, 0, std::as_writable_bytes(std::span(b.data(), static_cast<size_t>(have)))));
        }
        std::string_view z = CompressionMagic(b, have);
        if (!z.empty()) {
          return Status(Code::kUnsupported,
                        path + " is " + std::string(z) + "-compressed, not a plain tar archive");
        }
        return Status(Code::kInvalidArgument,
                      path + " is not a tar archive (" + std::to_string(size) + " bytes)");
      }
      return corrupt(pos, "is truncated: no end-of-archive block");
    }
    Block b;
    IMGSTORE_RETURN_IF_ERROR(ReadExactly(*file, pos, std::as_writable_bytes(std::span(b))));
    if (IsZeroBlock(b)) {
      if (pos == 0) {
        return Status(Code::kInvalidArgument,
                      path + " is not a tar archive (it starts with zeros)");
      }
      // One zero block ends the archive (GNU tar accepts a lone one); what follows is padding.
      if (pending.any()) return corrupt(pos, "ends after an extended header without its member");
      break;
    }
    if (!ChecksumMatches(b)) {
      if (pos == 0) {
        std::string_view z = CompressionMagic(b, kBlock);
        if (!z.empty()) {
          return Status(Code::kUnsupported,
                        path + " is " + std::string(z) + "-compressed, not a plain tar archive");
        }
        return Status(Code::kInvalidArgument,
                      path + " is not a tar archive (its first header has a bad checksum)");
      }
      return corrupt(pos, "header checksum mismatch (corrupt or not a tar archive)");
    }
    const char type = static_cast<char>(b[kType.off]);
    std::optional<uint64_t> header_size = ParseNumber(FieldOf(b, kSize));
    if (!header_size) return corrupt(pos, "header has a malformed size field");
    const bool is_extension = type == 'x' || type == 'g' || type == 'L' || type == 'K';
    uint64_t data_size = *header_size;
    if (!is_extension && pending.size) data_size = *pending.size;
    if (IsHeaderOnly(type)) data_size = 0;
    const uint64_t data_off = pos + kBlock;
    if (data_size > size - data_off) {
      return corrupt(pos, "member data (" + std::to_string(data_size) +
                              " bytes) runs past the end of the file: truncated");
    }
    const uint64_t padded = data_size + (kBlock - data_size % kBlock) % kBlock;
    const uint64_t next = data_off + std::min(padded, size - data_off);

    if (is_extension) {
      if (data_size > limits.max_header_bytes) {
        return Status(Code::kInvalidArgument, "tar archive " + path + ": extended header of " +
                                                  std::to_string(data_size) + " bytes " +
                                                  OffsetText(pos) + " is over the limit of " +
                                                  std::to_string(limits.max_header_bytes));
      }
      if (type != 'g') {  // global pax headers set defaults that do not matter here
        std::string data(static_cast<size_t>(data_size), '\0');
        IMGSTORE_RETURN_IF_ERROR(ReadExactly(
            *file, data_off, std::as_writable_bytes(std::span(data.data(), data.size()))));
        if (type == 'x') {
          IMGSTORE_RETURN_IF_ERROR(ParsePax(data, &pending, OffsetText(pos) + " in " + path));
        } else {
          std::string value = data.substr(0, data.find('\0'));
          (type == 'L' ? pending.path : pending.linkpath) = std::move(value);
        }
      }
      pos = next;
      continue;
    }

    std::string raw_name;
    if (pending.path) {
      raw_name = *pending.path;
    } else {
      raw_name = CString(b, kName);
      // POSIX ustar splits long names into prefix/name; GNU headers use those bytes otherwise.
      if (FieldOf(b, kMagic) == std::string_view("ustar\0", 6)) {
        std::string prefix = CString(b, kPrefix);
        if (!prefix.empty()) raw_name = prefix + "/" + raw_name;
      }
    }
    TarMember m;
    m.type = type;
    if (type == '\0' || type == '7') m.type = '0';               // old regular, contiguous
    if (m.type == '0' && raw_name.ends_with('/')) m.type = '5';  // V7 directory
    m.linkname = pending.linkpath ? *pending.linkpath : CString(b, kLinkname);
    m.offset = data_off;
    m.size = data_size;
    if (raw_name.find('\0') != std::string::npos || raw_name.empty()) {
      return Status(Code::kInvalidArgument,
                    "tar archive " + path + ": member " + OffsetText(pos) + " has an empty name");
    }
    std::optional<std::string> clean = CleanName(raw_name);
    if (!clean) {
      return Status(Code::kInvalidArgument, "tar archive " + path + ": member \"" + raw_name +
                                                "\" " + OffsetText(pos) +
                                                " is absolute or has a \"..\" component");
    }
    m.name = std::move(*clean);
    if (members.size() >= limits.max_members) {
      return Status(Code::kInvalidArgument, "tar archive " + path + " has more than " +
                                                std::to_string(limits.max_members) + " members");
    }
    auto [it, inserted] = by_name.try_emplace(m.name, members.size());
    if (!inserted) {
      const bool both_dirs = m.type == '5' && members[it->second].type == '5';
      if (!both_dirs) {
        return Status(Code::kInvalidArgument,
                      "tar archive " + path + ": member \"" + m.name + "\" appears twice (" +
                          OffsetText(members[it->second].offset - kBlock) + " and " +
                          OffsetText(pos) + "); ambiguous archives are refused");
      }
    }
    members.push_back(std::move(m));
    pending = Pending{};
    pos = next;
  }
  TarReader r(std::move(file), std::move(members));
  r.by_name_ = std::move(by_name);
  return r;
}

const TarMember* TarReader::Find(std::string_view name) const {
  std::optional<std::string> clean = CleanName(name);
  if (!clean || clean->empty()) return nullptr;
  auto it = by_name_.find(*clean);
  if (it == by_name_.end()) return nullptr;
  const TarMember* m = &members_[it->second];
  if (m->type == '1') {  // a hardlink names an earlier regular member
    std::optional<std::string> target = CleanName(m->linkname);
    if (!target) return nullptr;
    auto t = by_name_.find(*target);
    if (t == by_name_.end() || t->second >= it->second) return nullptr;
    m = &members_[t->second];
  }
  return m->type == '0' ? m : nullptr;
}

Result<std::unique_ptr<SequentialFile>> TarReader::Open(const TarMember& m) const {
  return std::unique_ptr<SequentialFile>(std::make_unique<MemberFile>(file_, m));
}

Result<std::string> TarReader::ReadAll(const TarMember& m, uint64_t max_bytes) const {
  if (m.size > max_bytes) {
    return Status(Code::kInvalidArgument,
                  path() + "[" + m.name + "] has " + std::to_string(m.size) +
                      " bytes, over the limit of " + std::to_string(max_bytes));
  }
  std::string out(static_cast<size_t>(m.size), '\0');
  IMGSTORE_RETURN_IF_ERROR(
      ReadExactly(*file_, m.offset, std::as_writable_bytes(std::span(out.data(), out.size()))));
  return out;
}

}  // namespace imgstore::transports
