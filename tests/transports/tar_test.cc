// TarReader and TarWriter: round trips, interop with libarchive-written archives (pax, GNU,
// ustar), and hostile archives (bad checksums, truncation, escaping and duplicate names,
// oversized records), each refused with a clear error and never read out of bounds.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/fault_env.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "transports/tar_reader.h"
#include "transports/tar_writer.h"
#include "transports/transport_test_util.h"
#include "util/env.h"

namespace imgstore::transports {
namespace {

using imgstore::testing::TempDir;
using testing::StringFile;

Env* env() { return Env::Default(); }

std::string ReadMember(const TarReader& r, const TarMember& m) {
  Result<std::string> s = r.ReadAll(m, 1 << 30);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : "";
}

std::string StreamMember(const TarReader& r, const TarMember& m) {
  Result<std::unique_ptr<SequentialFile>> f = r.Open(m);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  if (!f.ok()) return "";
  std::string out;
  std::vector<std::byte> buf(7);  // odd size: many short reads
  while (true) {
    Result<size_t> n = (*f)->Read(buf);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    if (!n.ok() || *n == 0) break;
    out.append(reinterpret_cast<const char*>(buf.data()), *n);
  }
  return out;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  ASSERT_TRUE(env()->WriteFileAtomically(path, bytes).ok());
}

std::string ReadBytes(const std::string& path) {
  Result<std::string> s = env()->ReadFileToString(path, 1 << 30);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : "";
}

// A RandomAccessFile over a string (what a fuzzer would give the parser).
class MemoryFile : public RandomAccessFile {
 public:
  explicit MemoryFile(std::string data) : RandomAccessFile("<memory>"), data_(std::move(data)) {}
  Result<size_t> ReadAt(uint64_t off, std::span<std::byte> buf) const override {
    if (off >= data_.size()) return size_t{0};
    size_t n = std::min<uint64_t>(buf.size(), data_.size() - off);
    std::memcpy(buf.data(), data_.data() + off, n);
    return n;
  }
  Result<uint64_t> Size() const override { return uint64_t{data_.size()}; }

 private:
  std::string data_;
};

Result<TarReader> OpenBytes(std::string bytes, const TarLimits& limits = {}) {
  return TarReader::Open(std::make_shared<MemoryFile>(std::move(bytes)), limits);
}

// A 512-byte ustar header built by hand, with a correct checksum unless told otherwise.
std::string Header(const std::string& name, char type, const std::string& size_field,
                   const std::string& linkname = "", bool good_checksum = true) {
  std::string h(512, '\0');
  std::memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 100));
  std::memcpy(h.data() + 100, "0000644", 7);
  std::memcpy(h.data() + 124, size_field.data(), std::min<size_t>(size_field.size(), 12));
  h[156] = type;
  std::memcpy(h.data() + 157, linkname.data(), std::min<size_t>(linkname.size(), 100));
  std::memcpy(h.data() + 257,
              "ustar\0"
              "00",
              8);
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (char c : h) sum += static_cast<unsigned char>(c);
  if (!good_checksum) sum += 1;
  snprintf(h.data() + 148, 8, "%06o", sum);
  return h;
}

std::string Octal(uint64_t v) {
  char buf[13];
  snprintf(buf, sizeof(buf), "%011llo", static_cast<unsigned long long>(v));
  return buf;
}

std::string Padded(const std::string& data) {
  return data + std::string((512 - data.size() % 512) % 512, '\0');
}

std::string File(const std::string& name, const std::string& data) {
  return Header(name, '0', Octal(data.size())) + Padded(data);
}

const std::string kEnd(1024, '\0');

TarArchiveOptions InDir(const std::string& dir) {
  TarArchiveOptions o;
  o.temp_dir = dir;
  return o;
}

TarLimits Limits(uint64_t members, uint64_t header_bytes) {
  TarLimits l;
  l.max_members = members;
  l.max_header_bytes = header_bytes;
  return l;
}

// --- Writer → reader round trips ----------------------------------------------------------

TEST(TarRoundTrip, FilesDirectoriesLongNamesAndStreams) {
  TempDir dir;
  const std::string path = dir.Sub("a.tar");
  const std::string long_name = std::string(60, 'd') + "/" + std::string(120, 'f');  // > 100
  const std::string big(3 * 1024 * 1024 + 17, 'x');  // several copy chunks, odd size
  {
    Result<TarWriter> w = TarWriter::Create(env(), path);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_TRUE(w->AddDirectory("blobs").ok());
    ASSERT_TRUE(w->AddFile("blobs/empty", "").ok());
    ASSERT_TRUE(w->AddFile("index.json", "{}").ok());
    ASSERT_TRUE(w->AddFile(long_name, "long").ok());
    StringFile src(big);
    ASSERT_TRUE(w->AddFile("big", big.size(), src).ok());
    ASSERT_TRUE(w->Commit().ok());
  }
  Result<TarReader> r = TarReader::Open(env(), path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->members().size(), 5u);
  EXPECT_EQ(r->members()[0].name, "blobs");
  EXPECT_EQ(r->members()[0].type, '5');
  EXPECT_EQ(r->members()[3].name, long_name);
  ASSERT_NE(r->Find("index.json"), nullptr);
  EXPECT_EQ(ReadMember(*r, *r->Find("index.json")), "{}");
  EXPECT_EQ(StreamMember(*r, *r->Find("index.json")), "{}");
  EXPECT_EQ(ReadMember(*r, *r->Find("blobs/empty")), "");
  EXPECT_EQ(ReadMember(*r, *r->Find(long_name)), "long");
  EXPECT_EQ(StreamMember(*r, *r->Find("big")), big);
  EXPECT_EQ(r->Find("./index.json"), r->Find("index.json"));
  EXPECT_EQ(r->Find("blobs"), nullptr) << "a directory is not a regular file";
  EXPECT_EQ(r->Find("missing"), nullptr);
  // Everything was published: no temporary file is left beside the archive.
  Result<std::vector<std::string>> names = env()->ListDir(dir.path());
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"a.tar"});
}

TEST(TarRoundTrip, OutputIsDeterministic) {
  TempDir dir;
  for (const char* name : {"1.tar", "2.tar"}) {
    Result<TarWriter> w = TarWriter::Create(env(), dir.Sub(name));
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->AddFile(std::string(150, 'n'), "data").ok());
    ASSERT_TRUE(w->Commit().ok());
  }
  EXPECT_EQ(ReadBytes(dir.Sub("1.tar")), ReadBytes(dir.Sub("2.tar")));
}

TEST(TarRoundTrip, ReadLimitIsEnforced) {
  TempDir dir;
  Result<TarWriter> w = TarWriter::Create(env(), dir.Sub("a.tar"));
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->AddFile("f", "0123456789").ok());
  ASSERT_TRUE(w->Commit().ok());
  Result<TarReader> r = TarReader::Open(env(), dir.Sub("a.tar"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ReadAll(*r->Find("f"), 9).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(r->ReadAll(*r->Find("f"), 10).ok());
}

// libarchive (an independent implementation) reads what TarWriter writes.
TEST(TarRoundTrip, LibarchiveReadsOurArchives) {
  TempDir dir;
  const std::string long_name = std::string(200, 'L') + "/x";
  Result<TarWriter> w = TarWriter::Create(env(), dir.Sub("a.tar"));
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->AddDirectory("d").ok());
  ASSERT_TRUE(w->AddFile(long_name, "payload").ok());
  ASSERT_TRUE(w->Commit().ok());

  struct archive* a = archive_read_new();
  archive_read_support_format_all(a);
  ASSERT_EQ(archive_read_open_filename(a, dir.Sub("a.tar").c_str(), 10240), ARCHIVE_OK);
  std::vector<std::string> names;
  std::string data;
  struct archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    names.push_back(archive_entry_pathname(e));
    char buf[64];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof(buf))) > 0) data.append(buf, n);
  }
  archive_read_free(a);
  EXPECT_EQ(names, (std::vector<std::string>{"d/", long_name}));
  EXPECT_EQ(data, "payload");
}

// Our reader reads what libarchive writes in each of its tar dialects.
TEST(TarInterop, ReadsLibarchiveFormats) {
  const std::string long_name = std::string(130, 'p') + "/" + std::string(40, 'q');
  const std::string long_link = std::string(150, 't');
  for (int format : {ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FORMAT_TAR_GNUTAR,
                     ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE}) {
    SCOPED_TRACE(format);
    std::string out(1 << 20, '\0');
    size_t used = 0;
    struct archive* a = archive_write_new();
    ASSERT_EQ(archive_write_set_format(a, format), ARCHIVE_OK);
    ASSERT_EQ(archive_write_open_memory(a, out.data(), out.size(), &used), ARCHIVE_OK);
    auto add = [&](const std::string& name, const std::string& data, mode_t type,
                   const std::string& link = "") {
      struct archive_entry* e = archive_entry_new();
      archive_entry_set_pathname(e, name.c_str());
      archive_entry_set_filetype(e, type);
      archive_entry_set_perm(e, 0644);
      archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
      if (!link.empty()) archive_entry_set_symlink(e, link.c_str());
      ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
      if (!data.empty()) {
        ASSERT_EQ(archive_write_data(a, data.data(), data.size()),
                  static_cast<la_ssize_t>(data.size()));
      }
      archive_entry_free(e);
    };
    add("./short", "abc", AE_IFREG);
    add(long_name, "long one", AE_IFREG);  // ustar: prefix/name split; GNU: 'L'; pax: path
    if (format != ARCHIVE_FORMAT_TAR_USTAR) add("link", "", AE_IFLNK, long_link);
    ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    out.resize(used);

    Result<TarReader> r = OpenBytes(out);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_NE(r->Find("short"), nullptr);
    EXPECT_EQ(ReadMember(*r, *r->Find("short")), "abc");
    ASSERT_NE(r->Find(long_name), nullptr);
    EXPECT_EQ(ReadMember(*r, *r->Find(long_name)), "long one");
    if (format != ARCHIVE_FORMAT_TAR_USTAR) {
      ASSERT_EQ(r->members().size(), 3u);
      EXPECT_EQ(r->members()[2].type, '2');
      EXPECT_EQ(r->members()[2].linkname, long_link);
      EXPECT_EQ(r->Find("link"), nullptr) << "symlinks are never followed";
    }
  }
}

// --- Writer failure paths ------------------------------------------------------------------

TEST(TarWriterErrors, BadNamesAreRefused) {
  TempDir dir;
  Result<TarWriter> w = TarWriter::Create(env(), dir.Sub("a.tar"));
  ASSERT_TRUE(w.ok());
  for (std::string name : std::vector<std::string>{"", "/abs", "a/../b", "..", "./a", "a//b", "a/",
                                                   std::string("a\0b", 3)}) {
    Status st = w->AddFile(name, "x");
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << "name " << name;
  }
}

TEST(TarWriterErrors, ShortOrLongStreamIsCorruptionAndNothingIsPublished) {
  TempDir dir;
  const std::string path = dir.Sub("a.tar");
  WriteBytes(path, "old content");
  {
    Result<TarWriter> w = TarWriter::Create(env(), path);
    ASSERT_TRUE(w.ok());
    StringFile short_src("abc");
    EXPECT_EQ(w->AddFile("f", 4, short_src).code(), Code::kCorruption);
    EXPECT_EQ(w->AddFile("g", "x").code(), Code::kFailedPrecondition);
    EXPECT_EQ(w->Commit().code(), Code::kFailedPrecondition);
  }
  {
    Result<TarWriter> w = TarWriter::Create(env(), path);
    ASSERT_TRUE(w.ok());
    StringFile long_src("abcde");
    EXPECT_EQ(w->AddFile("f", 4, long_src).code(), Code::kCorruption);
  }
  EXPECT_EQ(ReadBytes(path), "old content");
  Result<std::vector<std::string>> names = env()->ListDir(dir.path());
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"a.tar"}) << "temporary file left behind";
}

TEST(TarWriterErrors, FailedWriteOrSyncLeavesTheOldFile) {
  TempDir dir;
  const std::string path = dir.Sub("a.tar");
  WriteBytes(path, "old content");
  for (imgstore::testing::FsOp op :
       {imgstore::testing::FsOp::kWrite, imgstore::testing::FsOp::kSync,
        imgstore::testing::FsOp::kRename}) {
    imgstore::testing::FaultEnv fenv;
    fenv.FailNth(op, 1);
    Result<TarWriter> w = TarWriter::Create(&fenv, path);
    ASSERT_TRUE(w.ok());
    Status st = w->AddFile("f", "data");
    if (st.ok()) st = w->Commit();
    EXPECT_FALSE(st.ok());
  }
  EXPECT_EQ(ReadBytes(path), "old content");
  Result<std::vector<std::string>> names = env()->ListDir(dir.path());
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"a.tar"});
}

TEST(TarWriterErrors, CreateInMissingDirectoryFails) {
  TempDir dir;
  EXPECT_EQ(TarWriter::Create(env(), dir.Sub("no/such/a.tar")).status().code(), Code::kNotFound);
}

// --- Hand-made and hostile archives --------------------------------------------------------

TEST(TarHostile, NotATar) {
  TempDir dir;
  EXPECT_EQ(TarReader::Open(env(), dir.Sub("missing.tar")).status().code(), Code::kNotFound);
  EXPECT_EQ(OpenBytes("").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(OpenBytes("hello").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(OpenBytes(std::string(2048, 'x')).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(OpenBytes(std::string(2048, '\0')).status().code(), Code::kInvalidArgument);
}

TEST(TarHostile, CompressedFilesAreNamedAndOpenTarArchiveDecompressesThem) {
  TempDir dir;
  const std::string tar = File("f", "hello") + kEnd;
  for (auto c :
       {imgstore::testing::LayerCompression::kGzip, imgstore::testing::LayerCompression::kZstd}) {
    const std::string path = dir.Sub("c.tar");
    WriteBytes(path, imgstore::testing::Compress(tar, c));
    Result<TarReader> plain = TarReader::Open(env(), path);
    EXPECT_EQ(plain.status().code(), Code::kUnsupported);
    EXPECT_NE(plain.status().message().find("compressed"), std::string::npos);
    Result<TarReader> r = OpenTarArchive(env(), path, InDir(dir.path()));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->path(), path);
    ASSERT_NE(r->Find("f"), nullptr);
    EXPECT_EQ(ReadMember(*r, *r->Find("f")), "hello");
    // The decompressed copy is unlinked: only the archive is in the directory.
    Result<std::vector<std::string>> names = env()->ListDir(dir.path());
    ASSERT_TRUE(names.ok());
    EXPECT_EQ(*names, std::vector<std::string>{"c.tar"});
  }
}

TEST(TarHostile, DecompressionBoundAndCorruptStream) {
  TempDir dir;
  const std::string path = dir.Sub("c.tar.gz");
  const std::string tar = File("f", std::string(100000, 'z')) + kEnd;
  const std::string gz =
      imgstore::testing::Compress(tar, imgstore::testing::LayerCompression::kGzip);
  WriteBytes(path, gz);
  TarArchiveOptions small = InDir(dir.path());
  small.max_decompressed_bytes = 50000;
  EXPECT_EQ(OpenTarArchive(env(), path, small).status().code(), Code::kInvalidArgument);
  WriteBytes(path, gz.substr(0, gz.size() / 2));
  Result<TarReader> r = OpenTarArchive(env(), path, InDir(dir.path()));
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().code(), Code::kInternal);
}

TEST(TarHostile, BadChecksumOfALaterHeaderIsCorruption) {
  std::string t = File("a", "1") + Header("b", '0', Octal(1), "", false) + Padded("2") + kEnd;
  Result<TarReader> r = OpenBytes(t);
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos) << r.status().message();
  EXPECT_EQ(OpenBytes(Header("a", '0', Octal(0), "", false) + kEnd).status().code(),
            Code::kInvalidArgument);
}

TEST(TarHostile, TruncationIsCorruption) {
  const std::string full = File("a", std::string(1000, 'a')) + File("b", "bb") + kEnd;
  ASSERT_TRUE(OpenBytes(full).ok());
  // Cut inside the data, inside the second header, and before the end-of-archive block.
  for (size_t cut : {size_t{700}, size_t{1536 + 100}, size_t{2048 + 512}}) {
    SCOPED_TRACE(cut);
    Result<TarReader> r = OpenBytes(full.substr(0, cut));
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  }
  // A lone zero block ends an archive (as GNU tar accepts).
  EXPECT_TRUE(OpenBytes(File("a", "x") + std::string(512, '\0')).ok());
}

TEST(TarHostile, SizeRunningPastTheEndIsCorruption) {
  // base-256 size of 2^40 in a small file.
  std::string size(12, '\0');
  size[0] = static_cast<char>(0x80);
  size[6] = 1;  // 1 << 40
  Result<TarReader> r = OpenBytes(Header("huge", '0', size) + kEnd);
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  // Negative base-256 and non-octal digits are malformed.
  std::string neg(12, static_cast<char>(0xff));
  EXPECT_EQ(OpenBytes(Header("n", '0', neg) + kEnd).status().code(), Code::kCorruption);
  EXPECT_EQ(OpenBytes(File("a", "") + Header("x", '0', "00000000009") + kEnd).status().code(),
            Code::kCorruption);
}

TEST(TarHostile, Base256SizeIsRead) {
  std::string size(12, '\0');
  size[0] = static_cast<char>(0x80);
  size[11] = 5;
  Result<TarReader> r = OpenBytes(Header("b", '0', size) + Padded("12345") + kEnd);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ReadMember(*r, *r->Find("b")), "12345");
}

std::string Pax(const std::string& records) {
  return Header("PaxHeaders/x", 'x', Octal(records.size())) + Padded(records);
}

TEST(TarHostile, PaxRecordsOverrideNameAndSize) {
  const std::string t = Pax("13 path=real\n"
                            "10 size=5\n") +
                        Header("fake", '0', Octal(0)) + Padded("hello") + kEnd;
  Result<TarReader> r = OpenBytes(t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->members().size(), 1u);
  EXPECT_EQ(r->Find("fake"), nullptr);
  ASSERT_NE(r->Find("real"), nullptr);
  EXPECT_EQ(ReadMember(*r, *r->Find("real")), "hello");
}

TEST(TarHostile, MalformedPaxRecordsAreCorruption) {
  for (std::string rec :
       {"99 path=x\n", "5 x\n", "abc path=x\n", "12 path=ab\nX", "9 =value\n", "14 size=-1234\n"}) {
    SCOPED_TRACE(rec);
    Result<TarReader> r = OpenBytes(Pax(rec) + File("f", "") + kEnd);
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  }
  // An extended header followed by the end of the archive, not by its member.
  EXPECT_EQ(OpenBytes(Pax("10 path=a\n") + kEnd).status().code(), Code::kCorruption);
}

TEST(TarHostile, HugeExtendedHeadersAreRefusedByTheLimit) {
  const std::string name(5000, 'n');
  const std::string gnu =
      Header("././@LongLink", 'L', Octal(name.size())) + Padded(name) + File("short", "x") + kEnd;
  Result<TarReader> ok = OpenBytes(gnu);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_NE(ok->Find(name), nullptr);
  Result<TarReader> r = OpenBytes(gnu, Limits(1000, 4096));
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("limit"), std::string::npos);
}

TEST(TarHostile, MemberLimit) {
  std::string t;
  for (int i = 0; i < 10; ++i) t += File("f" + std::to_string(i), "");
  t += kEnd;
  EXPECT_TRUE(OpenBytes(t, Limits(10, 1 << 20)).ok());
  EXPECT_EQ(OpenBytes(t, Limits(9, 1 << 20)).status().code(), Code::kInvalidArgument);
}

TEST(TarHostile, EscapingNamesAreRefused) {
  for (std::string name : {"../evil", "a/../../evil", "/etc/passwd", "a/.."}) {
    SCOPED_TRACE(name);
    Result<TarReader> r = OpenBytes(File(name, "x") + kEnd);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(name), std::string::npos) << r.status().message();
  }
  // Via a pax path too.
  EXPECT_EQ(OpenBytes(Pax("16 path=../evil\n") + File("ok", "") + kEnd).status().code(),
            Code::kInvalidArgument);
}

TEST(TarHostile, DuplicateNamesAreRefusedExceptDirectories) {
  EXPECT_EQ(OpenBytes(File("a", "1") + File("./a", "2") + kEnd).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(OpenBytes(Header("d/", '5', Octal(0)) + File("d", "2") + kEnd).status().code(),
            Code::kInvalidArgument);
  EXPECT_TRUE(OpenBytes(Header("d/", '5', Octal(0)) + Header("./d", '5', Octal(0)) + kEnd).ok());
}

TEST(TarHostile, HardlinksResolveToEarlierRegularFiles) {
  // Header-only types carry no data even when their size field says otherwise.
  const std::string t = File("a", "data") + Header("l", '1', Octal(4), "./a") +
                        Header("dangling", '1', Octal(0), "nowhere") +
                        Header("up", '1', Octal(0), "../a") + kEnd;
  Result<TarReader> r = OpenBytes(t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_NE(r->Find("l"), nullptr);
  EXPECT_EQ(r->Find("l"), r->Find("a"));
  EXPECT_EQ(r->Find("dangling"), nullptr);
  EXPECT_EQ(r->Find("up"), nullptr);
  EXPECT_EQ(r->Find("../a"), nullptr);
  EXPECT_EQ(r->Find("/a"), nullptr);
}

// Random corruption of a valid archive: never a crash, and every member the parser accepts
// lies inside the file (sanitizer builds make this stricter).
TEST(TarHostile, RandomCorruptionNeverEscapesTheFile) {
  const std::string valid = Pax("29 path=" + std::string(18, 'p') + "/x\n") + File("a", "hello") +
                            Header("d/", '5', Octal(0)) + File("d/b", std::string(700, 'b')) + kEnd;
  ASSERT_TRUE(OpenBytes(valid).ok());
  std::mt19937 rng(42);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string t = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) t[rng() % t.size()] = static_cast<char>(rng() & 0xff);
    if (rng() % 4 == 0) t.resize(rng() % t.size());
    Result<TarReader> r = OpenBytes(t);
    if (!r.ok()) {
      EXPECT_NE(r.status().code(), Code::kInternal);
      EXPECT_FALSE(r.status().message().empty());
      continue;
    }
    ++accepted;
    for (const TarMember& m : r->members()) {
      ASSERT_LE(m.offset, t.size());
      ASSERT_LE(m.size, t.size() - m.offset);
      EXPECT_EQ(ReadMember(*r, m).size(), m.size);
    }
  }
  EXPECT_GT(accepted, 0);  // flips in data bytes leave the archive valid
}

}  // namespace
}  // namespace imgstore::transports
