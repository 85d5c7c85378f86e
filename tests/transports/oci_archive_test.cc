// The `oci-archive:` transport: archives written by our destination read back by our source
// (plain and compressed), archives of layouts made by another writer (libarchive, with "./"
// names as tar tools make them), and the failure paths: not an archive, missing index.json or
// blob, bad ref, corrupt blob data, a failed write leaving the old archive in place.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include "common/temp_dir.h"
#include "common/test_image.h"
#include "transports/transport_test_util.h"
#include "transports/transports.h"

namespace imgstore::transports {
namespace {

using imgstore::testing::MakeTestImage;
using imgstore::testing::TempDir;
using imgstore::testing::TestImage;
using imgstore::testing::WriteOciLayout;
using testing::ExpectSameImage;
using testing::ReadToEnd;
using testing::ToWrite;
using testing::WriteSpy;

Env* env() { return Env::Default(); }

TestImage Image(uint32_t seed) {
  imgstore::testing::TestImageSpec spec;
  spec.seed = seed;
  return MakeTestImage(spec);
}

std::unique_ptr<images::ImageSource> Source(const std::string& spec) {
  Result<std::unique_ptr<images::ImageSource>> s = OpenSource(env(), spec);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

void Put(const std::string& spec, const TestImage& im) {
  auto dest = OpenDestination(env(), spec);
  ASSERT_TRUE(dest.ok()) << dest.status().ToString();
  Status st = (*dest)->PutImage(ToWrite(im));
  ASSERT_TRUE(st.ok()) << st.ToString();
}

// Tars the layout directory dir (files given relative to it) with libarchive, each name
// prefixed by prefix ("./" as `tar -C dir .` writes).
void TarLayout(const std::string& dir, const std::string& out, const std::string& prefix,
               const std::vector<std::string>& skip = {}) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, out.c_str()), ARCHIVE_OK);
  std::vector<std::string> files = {"oci-layout", "index.json"};
  Result<std::vector<std::string>> blobs = env()->ListDir(dir + "/blobs/sha256");
  ASSERT_TRUE(blobs.ok());
  for (const std::string& b : *blobs) files.push_back("blobs/sha256/" + b);
  for (const std::string& f : files) {
    if (std::find(skip.begin(), skip.end(), f) != skip.end()) continue;
    Result<std::string> data = env()->ReadFileToString(dir + "/" + f, 1 << 30);
    ASSERT_TRUE(data.ok());
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, (prefix + f).c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(data->size()));
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK);
    archive_write_data(a, data->data(), data->size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
}

TEST(OciArchive, RoundTripPreservesDigests) {
  TempDir dir;
  const TestImage im = Image(1);
  Put("oci-archive:" + dir.Sub("a.tar") + ":v1", im);
  auto by_ref = Source("oci-archive:" + dir.Sub("a.tar") + ":v1");
  ASSERT_NE(by_ref, nullptr);
  EXPECT_EQ(by_ref->Describe(), "oci-archive:" + dir.Sub("a.tar") + ":v1");
  ExpectSameImage(*by_ref, im);
  auto alone = Source("oci-archive:" + dir.Sub("a.tar"));
  ASSERT_NE(alone, nullptr);
  ExpectSameImage(*alone, im);
  // Only the archive is left in the directory.
  Result<std::vector<std::string>> names = env()->ListDir(dir.path());
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"a.tar"});
}

TEST(OciArchive, ABlobListedTwiceIsStoredOnce) {
  TempDir dir;
  imgstore::testing::TestImageSpec spec;
  spec.layers = 1;
  TestImage im = MakeTestImage(spec);
  // A manifest listing its one layer twice (legal: e.g. an empty layer repeated).
  images::ImageToWrite w = ToWrite(im);
  w.parsed.layers.push_back(w.parsed.layers[0]);
  auto dest = OpenDestination(env(), "oci-archive:" + dir.Sub("a.tar"));
  ASSERT_TRUE(dest.ok());
  ASSERT_TRUE((*dest)->PutImage(w).ok());
  EXPECT_TRUE(OpenSource(env(), "oci-archive:" + dir.Sub("a.tar")).ok())
      << "duplicate members would make the archive unreadable";
}

TEST(OciArchive, CompressedArchivesAreRead) {
  TempDir dir;
  const TestImage im = Image(2);
  Put("oci-archive:" + dir.Sub("a.tar"), im);
  Result<std::string> tar = env()->ReadFileToString(dir.Sub("a.tar"), 1 << 30);
  ASSERT_TRUE(tar.ok());
  for (auto c :
       {imgstore::testing::LayerCompression::kGzip, imgstore::testing::LayerCompression::kZstd}) {
    ASSERT_TRUE(
        env()->WriteFileAtomically(dir.Sub("c.tar"), imgstore::testing::Compress(*tar, c)).ok());
    auto src = Source("oci-archive:" + dir.Sub("c.tar"));
    ASSERT_NE(src, nullptr);
    ExpectSameImage(*src, im);
  }
}

TEST(OciArchive, ReadsArchivesOfLayoutsMadeByTarTools) {
  TempDir dir;
  const TestImage im = Image(3);
  WriteOciLayout(im, dir.Sub("l"), "latest");
  for (std::string prefix : {"", "./"}) {
    TarLayout(dir.Sub("l"), dir.Sub("a.tar"), prefix);
    auto src = Source("oci-archive:" + dir.Sub("a.tar") + ":latest");
    ASSERT_NE(src, nullptr);
    ExpectSameImage(*src, im);
  }
}

TEST(OciArchive, MissingPartsAndBadRefs) {
  TempDir dir;
  const TestImage im = Image(4);
  WriteOciLayout(im, dir.Sub("l"), "v1");
  EXPECT_EQ(OpenSource(env(), "oci-archive:" + dir.Sub("none.tar")).status().code(),
            Code::kNotFound);

  TarLayout(dir.Sub("l"), dir.Sub("noindex.tar"), "", {"index.json"});
  Result<std::unique_ptr<images::ImageSource>> s =
      OpenSource(env(), "oci-archive:" + dir.Sub("noindex.tar"));
  EXPECT_EQ(s.status().code(), Code::kNotFound);
  EXPECT_NE(s.status().message().find("index.json"), std::string::npos) << s.status().message();

  TarLayout(dir.Sub("l"), dir.Sub("nolayout.tar"), "", {"oci-layout"});
  s = OpenSource(env(), "oci-archive:" + dir.Sub("nolayout.tar"));
  EXPECT_EQ(s.status().code(), Code::kNotFound);
  EXPECT_NE(s.status().message().find("not an OCI layout"), std::string::npos);

  const std::string layer0 = "blobs/sha256/" + std::string(Digest::Of(im.layers[0]).hex());
  TarLayout(dir.Sub("l"), dir.Sub("noblob.tar"), "", {layer0});
  auto src = Source("oci-archive:" + dir.Sub("noblob.tar") + ":v1");
  ASSERT_NE(src, nullptr);
  Result<images::ImageManifest> m = images::ParseImageManifest(im.manifest);
  ASSERT_TRUE(m.ok());
  Result<std::unique_ptr<SequentialFile>> blob = src->GetBlob(m->layers[0]);
  EXPECT_EQ(blob.status().code(), Code::kNotFound);
  EXPECT_NE(blob.status().message().find("missing"), std::string::npos);

  auto wrong_ref = Source("oci-archive:" + dir.Sub("noblob.tar") + ":v2");
  ASSERT_NE(wrong_ref, nullptr);
  Result<images::RawManifest> top = wrong_ref->GetManifest();
  EXPECT_EQ(top.status().code(), Code::kNotFound);
  EXPECT_NE(top.status().message().find("v1"), std::string::npos) << "lists the refs there are";
}

TEST(OciArchive, NotAnArchive) {
  TempDir dir;
  ASSERT_TRUE(env()->WriteFileAtomically(dir.Sub("x.tar"), std::string(4096, 'x')).ok());
  Result<std::unique_ptr<images::ImageSource>> s =
      OpenSource(env(), "oci-archive:" + dir.Sub("x.tar"));
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
  EXPECT_NE(s.status().message().find("not a tar archive"), std::string::npos);
  EXPECT_NE(s.status().message().find("oci-archive:" + dir.Sub("x.tar")), std::string::npos);
  // A directory (an oci: layout given to oci-archive:) is refused too, with an error.
  ASSERT_TRUE(env()->CreateDirs(dir.Sub("d")).ok());
  EXPECT_FALSE(OpenSource(env(), "oci-archive:" + dir.Sub("d")).ok());
}

TEST(OciArchive, CorruptBlobDataIsDetected) {
  TempDir dir;
  const TestImage im = Image(5);
  Put("oci-archive:" + dir.Sub("a.tar"), im);
  Result<std::string> tar = env()->ReadFileToString(dir.Sub("a.tar"), 1 << 30);
  ASSERT_TRUE(tar.ok());
  // Flip a byte inside the first layer's data (found by its content).
  size_t at = tar->find(im.layers[0]);
  ASSERT_NE(at, std::string::npos);
  std::string bad = *tar;
  bad[at + im.layers[0].size() / 2] ^= 1;
  ASSERT_TRUE(env()->WriteFileAtomically(dir.Sub("a.tar"), bad).ok());
  auto src = Source("oci-archive:" + dir.Sub("a.tar"));
  ASSERT_NE(src, nullptr);
  Result<images::ImageManifest> m = images::ParseImageManifest(im.manifest);
  ASSERT_TRUE(m.ok());
  Result<std::unique_ptr<SequentialFile>> f = src->GetBlob(m->layers[0]);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(ReadToEnd(**f).status().code(), Code::kCorruption);
}

TEST(OciArchive, FailedWriteKeepsTheOldArchive) {
  TempDir dir;
  const TestImage a = Image(6), b = Image(7);
  Put("oci-archive:" + dir.Sub("a.tar"), a);
  Result<std::string> before = env()->ReadFileToString(dir.Sub("a.tar"), 1 << 30);
  ASSERT_TRUE(before.ok());
  // A blob whose bytes do not match its digest, then one that cannot be opened.
  auto corrupt = std::make_shared<WriteSpy>();
  std::string bad = b.layers[1];
  bad[0] ^= 1;
  corrupt->replace[Digest::Of(b.layers[1]).ToString()] = bad;
  images::ImageToWrite missing = ToWrite(b);
  missing.open_blob = [](const images::Descriptor&) -> Result<std::unique_ptr<SequentialFile>> {
    return Status(Code::kNotFound, "no such blob");
  };
  for (const images::ImageToWrite& w : {ToWrite(b, corrupt), missing}) {
    auto dest = OpenDestination(env(), "oci-archive:" + dir.Sub("a.tar"));
    ASSERT_TRUE(dest.ok());
    Status st = (*dest)->PutImage(w);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("oci-archive:"), std::string::npos) << st.message();
  }
  Result<std::string> after = env()->ReadFileToString(dir.Sub("a.tar"), 1 << 30);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*before, *after);
  Result<std::vector<std::string>> names = env()->ListDir(dir.path());
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"a.tar"});
}

}  // namespace
}  // namespace imgstore::transports
