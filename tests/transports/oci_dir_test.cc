// The `oci:` transport: reading layouts written by the test image fixture, writing layouts
// and reading them back, and the failure paths (missing files, bad refs, corrupt blobs, a
// failing destination leaving the layout as it was).
#include <gtest/gtest.h>

#include "common/fault_env.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "images/oci_layout.h"
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

std::unique_ptr<images::ImageSource> Source(const std::string& spec) {
  Result<std::unique_ptr<images::ImageSource>> s = OpenSource(env(), spec);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

TestImage Image(uint32_t seed) {
  imgstore::testing::TestImageSpec spec;
  spec.seed = seed;
  return MakeTestImage(spec);
}

TEST(OciDirSource, ReadsALayoutByRefAndAlone) {
  TempDir dir;
  const TestImage im = Image(1);
  WriteOciLayout(im, dir.Sub("l"), "v1");
  auto by_ref = Source("oci:" + dir.Sub("l") + ":v1");
  ASSERT_NE(by_ref, nullptr);
  EXPECT_EQ(by_ref->Describe(), "oci:" + dir.Sub("l") + ":v1");
  EXPECT_TRUE(by_ref->Names().empty());
  ExpectSameImage(*by_ref, im);
  auto alone = Source("oci:" + dir.Sub("l"));
  ASSERT_NE(alone, nullptr);
  ExpectSameImage(*alone, im);
}

TEST(OciDirSource, DockerMediaTypesAreKeptVerbatim) {
  TempDir dir;
  imgstore::testing::TestImageSpec spec;
  spec.docker_media_types = true;
  const TestImage im = MakeTestImage(spec);
  WriteOciLayout(im, dir.Sub("l"), "");
  auto src = Source("oci:" + dir.Sub("l"));
  ASSERT_NE(src, nullptr);
  ExpectSameImage(*src, im);
}

TEST(OciDirSource, SeveralImagesNeedARef) {
  TempDir dir;
  const TestImage a = Image(1), b = Image(2);
  WriteOciLayout(a, dir.Sub("l"), "a");
  WriteOciLayout(b, dir.Sub("l"), "b");
  auto src = Source("oci:" + dir.Sub("l"));
  ASSERT_NE(src, nullptr);
  Result<images::RawManifest> m = src->GetManifest();
  EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
  EXPECT_NE(m.status().message().find("a, b"), std::string::npos) << m.status().message();
  auto sb = Source("oci:" + dir.Sub("l") + ":b");
  ASSERT_NE(sb, nullptr);
  ExpectSameImage(*sb, b);
  auto missing = Source("oci:" + dir.Sub("l") + ":c");
  ASSERT_NE(missing, nullptr);
  EXPECT_EQ(missing->GetManifest().status().code(), Code::kNotFound);
}

TEST(OciDirSource, AnIndexEntryIsReturnedAsIsAndItsChildrenByDescriptor) {
  TempDir dir;
  const TestImage im = Image(3);
  WriteOciLayout(im, dir.Sub("l"), "");
  const images::Platform host = images::HostPlatform();
  const std::string index =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
      R"({"mediaType":")" +
      im.manifest_media_type + R"(","digest":")" + im.manifest_digest.ToString() + R"(","size":)" +
      std::to_string(im.manifest.size()) + R"(,"platform":{"architecture":")" + host.architecture +
      R"(","os":")" + host.os + R"("}}]})";
  Result<images::OciLayoutWriter> w = images::OciLayoutWriter::Open(env(), dir.Sub("l"));
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->PutBlob(Digest::Of(index), index).ok());
  images::Descriptor d;
  d.media_type = "application/vnd.oci.image.index.v1+json";
  d.digest = Digest::Of(index);
  d.size = static_cast<int64_t>(index.size());
  ASSERT_TRUE(w->AddImage(d, "multi").ok());

  auto src = Source("oci:" + dir.Sub("l") + ":multi");
  ASSERT_NE(src, nullptr);
  Result<images::RawManifest> top = src->GetManifest();
  ASSERT_TRUE(top.ok()) << top.status().ToString();
  EXPECT_EQ(top->bytes, index);
  EXPECT_EQ(top->media_type, d.media_type);
  ExpectSameImage(*src, im);  // follows the index to the manifest
}

TEST(OciDirSource, MissingFilesAndBadSpecs) {
  TempDir dir;
  EXPECT_EQ(OpenSource(env(), "oci:" + dir.Sub("none")).status().code(), Code::kNotFound);
  const TestImage im = Image(4);
  WriteOciLayout(im, dir.Sub("l"), "v1");
  ASSERT_TRUE(env()->RemoveFile(dir.Sub("l/index.json")).ok());
  Result<std::unique_ptr<images::ImageSource>> s = OpenSource(env(), "oci:" + dir.Sub("l"));
  EXPECT_EQ(s.status().code(), Code::kNotFound);
  EXPECT_NE(s.status().message().find("index.json"), std::string::npos);
  EXPECT_NE(s.status().message().find("oci:" + dir.Sub("l")), std::string::npos)
      << "errors name the source: " << s.status().message();
  EXPECT_EQ(OpenSource(env(), "oci:").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(OpenSource(env(), "oci:" + dir.Sub("l") + ":bad ref!").status().code(),
            Code::kInvalidArgument);
}

TEST(OciDirSource, MissingOrCorruptBlobs) {
  TempDir dir;
  const TestImage im = Image(5);
  WriteOciLayout(im, dir.Sub("l"), "");
  auto src = Source("oci:" + dir.Sub("l"));
  ASSERT_NE(src, nullptr);
  Result<images::ImageManifest> m = images::ParseImageManifest(im.manifest);
  ASSERT_TRUE(m.ok());
  const images::Descriptor& l0 = m->layers[0];
  const images::Descriptor& l1 = m->layers[1];
  // Same size, different bytes: detected at the end of the stream.
  const std::string path1 = dir.Sub("l/blobs/sha256/" + std::string(l1.digest.hex()));
  ASSERT_TRUE(env()->Chmod(path1, 0644).ok());
  std::string bad = im.layers[1];
  bad[bad.size() / 2] ^= 1;
  ASSERT_TRUE(env()->WriteFileAtomically(path1, bad).ok());
  Result<std::unique_ptr<SequentialFile>> f = src->GetBlob(l1);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(ReadToEnd(**f).status().code(), Code::kCorruption);
  ASSERT_TRUE(env()->RemoveFile(dir.Sub("l/blobs/sha256/" + std::string(l0.digest.hex()))).ok());
  Result<std::unique_ptr<SequentialFile>> g = src->GetBlob(l0);
  EXPECT_EQ(g.status().code(), Code::kNotFound);
  EXPECT_NE(g.status().message().find("missing"), std::string::npos);
}

TEST(OciDirDestination, WritesWhatTheSourceReadsBack) {
  TempDir dir;
  const TestImage a = Image(6), b = Image(7);
  auto dest = OpenDestination(env(), "oci:" + dir.Sub("out") + ":a");
  ASSERT_TRUE(dest.ok());
  EXPECT_EQ((*dest)->Describe(), "oci:" + dir.Sub("out") + ":a");
  ASSERT_TRUE((*dest)->PutImage(ToWrite(a)).ok());
  auto dest_b = OpenDestination(env(), "oci:" + dir.Sub("out") + ":b");
  ASSERT_TRUE(dest_b.ok());
  ASSERT_TRUE((*dest_b)->PutImage(ToWrite(b)).ok());
  // Both entries are kept; each reads back with its digests.
  auto sa = Source("oci:" + dir.Sub("out") + ":a");
  auto sb = Source("oci:" + dir.Sub("out") + ":b");
  ASSERT_NE(sa, nullptr);
  ASSERT_NE(sb, nullptr);
  ExpectSameImage(*sa, a);
  ExpectSameImage(*sb, b);
}

TEST(OciDirDestination, NoRefMeansNoRefNameAnnotation) {
  TempDir dir;
  const TestImage a = Image(8);
  auto dest = OpenDestination(env(), "oci:" + dir.Sub("out"));
  ASSERT_TRUE(dest.ok());
  ASSERT_TRUE((*dest)->PutImage(ToWrite(a)).ok());
  Result<images::OciLayoutReader> r = images::OciLayoutReader::Open(env(), dir.Sub("out"));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->images().size(), 1u);
  EXPECT_EQ(r->images()[0].ref_name, "");
  EXPECT_EQ(r->images()[0].descriptor.digest, a.manifest_digest);
}

TEST(OciDirDestination, PresentBlobsAreNotOpenedAgain) {
  TempDir dir;
  const TestImage a = Image(9);
  auto dest = OpenDestination(env(), "oci:" + dir.Sub("out") + ":a");
  ASSERT_TRUE(dest.ok());
  auto spy = std::make_shared<WriteSpy>();
  ASSERT_TRUE((*dest)->PutImage(ToWrite(a, spy)).ok());
  EXPECT_EQ(spy->opened, 2);
  spy->opened = 0;
  ASSERT_TRUE((*dest)->PutImage(ToWrite(a, spy)).ok());
  EXPECT_EQ(spy->opened, 0);
}

TEST(OciDirDestination, ACorruptBlobFailsAndLeavesTheIndexAsItWas) {
  TempDir dir;
  const TestImage a = Image(10), b = Image(11);
  WriteOciLayout(a, dir.Sub("out"), "a");
  Result<std::string> before = env()->ReadFileToString(dir.Sub("out/index.json"), 1 << 20);
  ASSERT_TRUE(before.ok());
  auto spy = std::make_shared<WriteSpy>();
  std::string bad = b.layers[1];
  bad[0] ^= 1;
  spy->replace[Digest::Of(b.layers[1]).ToString()] = bad;
  auto dest = OpenDestination(env(), "oci:" + dir.Sub("out") + ":b");
  ASSERT_TRUE(dest.ok());
  Status st = (*dest)->PutImage(ToWrite(b, spy));
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_NE(st.message().find("oci:" + dir.Sub("out") + ":b"), std::string::npos) << st.message();
  Result<std::string> after = env()->ReadFileToString(dir.Sub("out/index.json"), 1 << 20);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*before, *after);
  EXPECT_FALSE(
      env()->FileExists(dir.Sub("out/blobs/sha256/" + std::string(Digest::Of(b.layers[1]).hex()))));
}

TEST(OciDirDestination, FailedPublicationLeavesTheIndexAsItWas) {
  const TestImage a = Image(12), b = Image(13);
  // Two layers, the config, the manifest and index.json: five renames. Failing any of them
  // fails the copy and leaves index.json as it was; with a sixth, nothing fails.
  for (uint64_t n = 1; n <= 6; ++n) {
    SCOPED_TRACE(n);
    TempDir dir;
    WriteOciLayout(a, dir.Sub("out"), "a");
    Result<std::string> before = env()->ReadFileToString(dir.Sub("out/index.json"), 1 << 20);
    ASSERT_TRUE(before.ok());
    imgstore::testing::FaultEnv fenv;
    fenv.FailNth(imgstore::testing::FsOp::kRename, n);
    auto dest = OpenDestination(&fenv, "oci:" + dir.Sub("out") + ":b");
    ASSERT_TRUE(dest.ok());
    Status st = (*dest)->PutImage(ToWrite(b));
    Result<std::string> after = env()->ReadFileToString(dir.Sub("out/index.json"), 1 << 20);
    ASSERT_TRUE(after.ok());
    if (n <= 5) {
      EXPECT_FALSE(st.ok());
      EXPECT_EQ(*before, *after);
    } else {
      EXPECT_TRUE(st.ok()) << st.ToString();
      EXPECT_NE(*before, *after);
    }
  }
}

TEST(OciDirDestination, RefusesANonLayoutDirectory) {
  TempDir dir;
  ASSERT_TRUE(env()->WriteFileAtomically(dir.Sub("file"), "x").ok());
  auto dest = OpenDestination(env(), "oci:" + dir.path());
  ASSERT_TRUE(dest.ok());
  EXPECT_EQ((*dest)->PutImage(ToWrite(Image(14))).code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace imgstore::transports
