// The tar writer (see tar_writer.h): pax-format headers built by hand, so the output is
// deterministic and every byte goes through Env (fault-injectable).
#include "transports/tar_writer.h"

#include <array>
#include <cstring>
#include <vector>

namespace imgstore::transports {
namespace {

constexpr uint64_t kBlock = 512;
constexpr size_t kCopyChunk = 1 << 20;
// The largest size an 11-digit octal field holds; bigger sizes get a pax "size" record.
constexpr uint64_t kMaxOctalSize = 077777777777ULL;

using Block = std::array<char, kBlock>;

void PutOctal(Block& b, size_t off, size_t len, uint64_t v) {
  // len-1 digits, zero-padded, NUL-terminated (the classic ustar layout).
  for (size_t i = len - 1; i-- > 0;) {
    b[off + i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
  b[off + len - 1] = '\0';
}

void PutBase256(Block& b, size_t off, size_t len, uint64_t v) {
  for (size_t i = len; i-- > 1;) {
    b[off + i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  b[off] = static_cast<char>(0x80);
}

Block MakeHeader(std::string_view name, char type, uint64_t size) {
  Block b{};
  std::memcpy(b.data(), name.data(), std::min<size_t>(name.size(), 100));
  PutOctal(b, 100, 8, type == '5' ? 0755 : 0644);
  PutOctal(b, 108, 8, 0);  // uid
  PutOctal(b, 116, 8, 0);  // gid
  if (size <= kMaxOctalSize) {
    PutOctal(b, 124, 12, size);
  } else {
    PutBase256(b, 124, 12, size);  // GNU base-256, for readers that ignore the pax record
  }
  PutOctal(b, 136, 12, 0);  // mtime: fixed, so archives are reproducible
  b[156] = type;
  std::memcpy(b.data() + 257,
              "ustar\0"
              "00",
              8);
  std::memset(b.data() + 148, ' ', 8);
  uint64_t sum = 0;
  for (char c : b) sum += static_cast<unsigned char>(c);
  PutOctal(b, 148, 7, sum);  // six digits, NUL, then the space already there
  return b;
}

// One pax record "<len> key=value\n" where len counts the whole record, itself included.
std::string PaxRecord(std::string_view key, std::string_view value) {
  const size_t body = 1 + key.size() + 1 + value.size() + 1;  // " key=value\n"
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
  return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

Status CheckName(std::string_view name) {
  auto bad = [&](const char* why) {
    return Status(Code::kInvalidArgument, "tar member name \"" + std::string(name) + "\" " + why);
  };
  if (name.empty()) return bad("is empty");
  if (name.find('\0') != std::string_view::npos) return bad("contains a NUL");
  if (name.starts_with('/')) return bad("is absolute");
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view comp = name.substr(start, slash - start);
    if (comp.empty() || comp == "." || comp == "..") return bad("is not a clean relative path");
    start = slash + 1;
  }
  return Status::OK();
}

std::string_view Padding(uint64_t size) {
  static const char zeros[kBlock] = {};
  return std::string_view(zeros, (kBlock - size % kBlock) % kBlock);
}

}  // namespace

Result<TarWriter> TarWriter::Create(Env* env, const std::string& path) {
  if (path.empty()) return Status(Code::kInvalidArgument, "tar archive: empty path");
  const std::string prefix = "." + BaseName(path) + ".tmp-";
  // An earlier writer of this archive killed before its rename left its temporary file.
  Result<int> swept = RemoveDeadTempFiles(env, DirName(path), prefix);
  if (!swept.ok()) return swept.status().WithContext("create tar archive " + path);
  Result<TempFile> tmp = TempFile::Create(env, DirName(path), prefix);
  if (!tmp.ok()) return tmp.status().WithContext("create tar archive " + path);
  return TarWriter(path, std::move(tmp).value());
}

Status TarWriter::Usable() const {
  if (committed_)
    return Status(Code::kFailedPrecondition, "tar archive " + path_ + " is committed");
  if (failed_) {
    return Status(Code::kFailedPrecondition,
                  "tar archive " + path_ + " is unusable after an earlier error");
  }
  return Status::OK();
}

Status TarWriter::AddHeader(std::string_view name, char type, uint64_t size) {
  IMGSTORE_RETURN_IF_ERROR(Usable());
  IMGSTORE_RETURN_IF_ERROR(CheckName(name));
  std::string stored(name);
  if (type == '5') stored += '/';
  std::string out;
  if (stored.size() > 100 || size > kMaxOctalSize) {
    std::string pax;
    if (stored.size() > 100) pax += PaxRecord("path", stored);
    if (size > kMaxOctalSize) pax += PaxRecord("size", std::to_string(size));
    Block ph = MakeHeader("PaxHeaders/" + stored.substr(0, 80), 'x', pax.size());
    out.append(ph.data(), ph.size());
    out += pax;
    out += Padding(pax.size());
  }
  Block h = MakeHeader(stored, type, size);
  out.append(h.data(), h.size());
  Status st = tmp_.Append(out);
  if (!st.ok()) failed_ = true;
  return st;
}

Status TarWriter::AddFile(std::string_view name, std::string_view bytes) {
  IMGSTORE_RETURN_IF_ERROR(AddHeader(name, '0', bytes.size()));
  Status st = tmp_.Append(bytes);
  if (st.ok()) st = tmp_.Append(Padding(bytes.size()));
  if (!st.ok()) failed_ = true;
  return st;
}

Status TarWriter::AddFile(std::string_view name, uint64_t size, SequentialFile& data) {
  IMGSTORE_RETURN_IF_ERROR(AddHeader(name, '0', size));
  failed_ = true;  // until the member is complete
  std::vector<std::byte> buf(kCopyChunk);
  uint64_t done = 0;
  while (done < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
    Result<size_t> n = data.Read(std::span(buf).first(want));
    if (!n.ok()) return n.status();
    if (*n == 0) {
      return Status(Code::kCorruption, "tar member " + std::string(name) + ": " + data.path() +
                                           " ended after " + std::to_string(done) + " of " +
                                           std::to_string(size) + " bytes");
    }
    IMGSTORE_RETURN_IF_ERROR(tmp_.Append(std::span<const std::byte>(buf).first(*n)));
    done += *n;
  }
  std::byte extra[1];
  Result<size_t> n = data.Read(extra);
  if (!n.ok()) return n.status();
  if (*n != 0) {
    return Status(Code::kCorruption, "tar member " + std::string(name) + ": " + data.path() +
                                         " has more than the declared " + std::to_string(size) +
                                         " bytes");
  }
  IMGSTORE_RETURN_IF_ERROR(tmp_.Append(Padding(size)));
  failed_ = false;
  return Status::OK();
}

Status TarWriter::AddDirectory(std::string_view name) { return AddHeader(name, '5', 0); }

Status TarWriter::Commit() {
  IMGSTORE_RETURN_IF_ERROR(Usable());
  failed_ = true;
  static const char zeros[2 * kBlock] = {};
  IMGSTORE_RETURN_IF_ERROR(tmp_.Append(std::string_view(zeros, sizeof(zeros))));
  IMGSTORE_RETURN_IF_ERROR(tmp_.Commit(path_, CommitMode::kReplace));
  failed_ = false;
  committed_ = true;
  return Status::OK();
}

}  // namespace imgstore::transports
