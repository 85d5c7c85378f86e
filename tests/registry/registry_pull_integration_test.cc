// Pulls from a real registry: Debian's docker-registry on 127.0.0.1, populated by skopeo from
// OCI layouts of generated images, read by imgstore through the CLI and through Store::Pull with
// a RegistrySource. Plain http, and htpasswd basic auth over TLS with a test CA. Skipped only if
// docker-registry or skopeo is not installed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/cli_runner.h"
#include "common/registry_fixture.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "images/oci_layout.h"
#include "images/reference.h"
#include "registry/registry_source.h"
#include "store/store.h"

namespace imgstore::registry {
namespace {

using imgstore::testing::CliResult;
using imgstore::testing::LayerCompression;
using imgstore::testing::MakeTestImage;
using imgstore::testing::RunImgstore;
using imgstore::testing::SuiteRegistry;
using imgstore::testing::TempDir;
using imgstore::testing::TestImage;
using imgstore::testing::TestImageSpec;
using imgstore::testing::TestRegistry;
using imgstore::testing::TestRegistryConfig;
using imgstore::testing::TlsBasicAuth;
using imgstore::testing::WriteOciLayout;

TestImage Image(uint32_t seed, int layers, LayerCompression c, const std::string& arch = "amd64",
                size_t layer_bytes = 4096) {
  TestImageSpec spec;
  spec.layer_bytes = layer_bytes;
  spec.seed = seed;
  spec.layers = layers;
  spec.compression = c;
  spec.architecture = arch;
  return MakeTestImage(spec);
}

// One registry per suite: starting one costs about a second.
class RegistryTest : public ::testing::Test {
 protected:
  static TestRegistryConfig Config() { return {}; }

  void SetUp() override {
    if (!TestRegistry::Available()) {
      GTEST_SKIP() << "docker-registry or skopeo is not installed (scripts/setup.sh)";
    }
  }

  // Writes `im` into an OCI layout and has skopeo push it to the registry as `dest`.
  void Push(const TestRegistry& reg, const TestImage& im, const std::string& dest) {
    const std::string layout = work_.Sub("layout-" + std::to_string(++layouts_));
    WriteOciLayout(im, layout, "src");
    std::string err = reg.SkopeoPush("oci:" + layout + ":src", dest);
    ASSERT_EQ(err, "") << "skopeo push failed";
  }

  Result<std::unique_ptr<store::Store>> OpenStore() { return store::Store::Open(root_.path()); }

  Result<store::PullResult> StorePull(const std::string& ref, const RegistryOptions& options,
                                      const store::PullOptions& pull = {}) {
    Result<images::Reference> r = images::ParseReference(ref);
    if (!r.ok()) return r.status();
    Result<std::unique_ptr<images::ImageSource>> src = OpenRegistrySource(*r, options);
    if (!src.ok()) return src.status();
    Result<std::unique_ptr<store::Store>> s = OpenStore();
    if (!s.ok()) return s.status();
    return (*s)->Pull(**src, pull);
  }

  size_t ImageCount() {
    Result<std::unique_ptr<store::Store>> s = OpenStore();
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return 0;
    Result<std::vector<store::ImageSummary>> list = (*s)->ListImages();
    EXPECT_TRUE(list.ok()) << list.status().ToString();
    return list.ok() ? list->size() : 0;
  }

  TempDir work_;
  TempDir root_;
  int layouts_ = 0;
};

class PlainRegistry : public SuiteRegistry<PlainRegistry, RegistryTest> {
 protected:
  static void SetUpTestSuite() { StartSuiteRegistry({}); }
};

TEST_F(PlainRegistry, CliPullsMultiLayerImageWithSkopeosManifestDigest) {
  const TestImage im = Image(11, 3, LayerCompression::kGzip);
  Push(reg(), im, "demo/app:1");
  std::string error;
  std::string skopeo_digest = reg().SkopeoManifestDigest("demo/app:1", &error);
  ASSERT_EQ(error, "");
  EXPECT_EQ(skopeo_digest, im.manifest_digest.ToString());

  CliResult r = RunImgstore(root_.path(), {"pull", Ref("demo/app:1")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.id.ToString() + "\n");
  CliResult inspect = RunImgstore(root_.path(), {"inspect", Ref("demo/app:1")});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.Describe();
  EXPECT_NE(inspect.out.find(skopeo_digest), std::string::npos) << inspect.out;
  // docker:// prefix works the same, and the store stays consistent.
  r = RunImgstore(root_.path(), {"pull", "docker://" + Ref("demo/app:1")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(RunImgstore(root_.path(), {"check", "--verify-content"}).exit_code, 0);
}

TEST_F(PlainRegistry, SecondPullSkipsPresentBlobs) {
  // Layers of ~3 MiB (random, so incompressible): larger than the client's 1 MiB stream
  // buffer, so the transfer pauses and resumes while the store reads.
  const TestImage im = Image(12, 2, LayerCompression::kGzip, "amd64", 3 << 20);
  Push(reg(), im, "demo/skip:1");
  Result<store::PullResult> first = StorePull(Ref("demo/skip:1"), {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->blobs_written, 4);  // 2 layers, the config and the manifest
  EXPECT_EQ(first->image.id, im.id);
  EXPECT_EQ(first->image.manifest_digest, im.manifest_digest);
  ASSERT_EQ(first->names.size(), 1u);
  EXPECT_EQ(first->names[0], Ref("demo/skip:1"));
  Result<store::PullResult> second = StorePull(Ref("demo/skip:1"), {});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->blobs_written, 0);
  EXPECT_EQ(second->bytes_written, 0u);
}

TEST_F(PlainRegistry, ZstdLayersAndPullByDigest) {
  const TestImage im = Image(13, 2, LayerCompression::kZstd);
  Push(reg(), im, "demo/zstd:1");
  Result<store::PullResult> r = StorePull(Ref("demo/zstd@" + im.manifest_digest.ToString()), {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->image.id, im.id);
  EXPECT_TRUE(r->names.empty());  // a bare digest names nothing
  store::PullOptions verify;
  verify.verify_diff_ids = true;
  TempDir other;
  Result<std::unique_ptr<store::Store>> s = store::Store::Open(other.path());
  ASSERT_TRUE(s.ok());
  Result<images::Reference> ref = images::ParseReference(Ref("demo/zstd:1"));
  ASSERT_TRUE(ref.ok());
  Result<std::unique_ptr<images::ImageSource>> src = OpenRegistrySource(*ref, {});
  ASSERT_TRUE(src.ok());
  Result<store::PullResult> r2 = (*s)->Pull(**src, verify);
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(r2->image.id, im.id);
}

TEST_F(PlainRegistry, IndexWithTwoPlatformsPicksByPlatform) {
  const TestImage amd = Image(14, 2, LayerCompression::kGzip, "amd64");
  const TestImage arm = Image(15, 1, LayerCompression::kGzip, "arm64");
  const std::string layout = work_.Sub("multi");
  Result<images::OciLayoutWriter> w = images::OciLayoutWriter::Open(Env::Default(), layout);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::string entries;
  for (const TestImage* im : {&amd, &arm}) {
    for (const std::string& l : im->layers) ASSERT_TRUE(w->PutBlob(Digest::Of(l), l).ok());
    ASSERT_TRUE(w->PutBlob(im->id, im->config).ok());
    ASSERT_TRUE(w->PutBlob(im->manifest_digest, im->manifest).ok());
    if (!entries.empty()) entries += ",";
    entries += R"({"mediaType":")" + im->manifest_media_type + R"(","digest":")" +
               im->manifest_digest.ToString() + R"(","size":)" +
               std::to_string(im->manifest.size()) +
               R"(,"platform":{"os":"linux","architecture":")" + (im == &amd ? "amd64" : "arm64") +
               R"("}})";
  }
  const std::string index =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)" +
      entries + "]}";
  ASSERT_TRUE(w->PutBlob(Digest::Of(index), index).ok());
  images::Descriptor d;
  d.media_type = "application/vnd.oci.image.index.v1+json";
  d.digest = Digest::Of(index);
  d.size = static_cast<int64_t>(index.size());
  ASSERT_TRUE(w->AddImage(d, "multi").ok());
  std::string err = reg().SkopeoPush("oci:" + layout + ":multi", "demo/multi:1", {"--all"});
  ASSERT_EQ(err, "");
  std::string error;
  EXPECT_EQ(reg().SkopeoManifestDigest("demo/multi:1", &error), Digest::Of(index).ToString())
      << error;

  CliResult r =
      RunImgstore(root_.path(), {"pull", "--platform", "linux/arm64", Ref("demo/multi:1")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, arm.id.ToString() + "\n");
  r = RunImgstore(root_.path(), {"pull", "--platform", "linux/amd64", Ref("demo/multi:1")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, amd.id.ToString() + "\n");
  r = RunImgstore(root_.path(), {"pull", "--platform", "linux/s390x", Ref("demo/multi:1")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("s390x"), std::string::npos) << r.err;
}

TEST_F(PlainRegistry, UnknownTagIsAClear404) {
  const TestImage im = Image(16, 1, LayerCompression::kGzip);
  Push(reg(), im, "demo/tags:1");
  CliResult r = RunImgstore(root_.path(), {"pull", Ref("demo/tags:nope")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("HTTP 404"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("MANIFEST_UNKNOWN"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(Ref("demo/tags:nope")), std::string::npos) << r.err;
  Result<store::PullResult> p = StorePull(Ref("demo/tags:nope"), {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kNotFound) << p.status().ToString();
  // A repository that does not exist at all, too.
  p = StorePull(Ref("nobody/here:1"), {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kNotFound) << p.status().ToString();
  EXPECT_EQ(ImageCount(), 0u);
}

TEST_F(PlainRegistry, UnreachableRegistryIsNamed) {
  // Port 1 is privileged and never bound by tests: the connection is refused.
  const std::string host = "127.0.0.1:1";
  CliResult r = RunImgstore(root_.path(), {"pull", host + "/demo/app:1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("registry " + host), std::string::npos) << r.err;
  Result<store::PullResult> p = StorePull(host + "/demo/app:1", {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kUnavailable) << p.status().ToString();
}

TEST_F(PlainRegistry, ManifestDigestMismatchIsRefusedAndNothingStored) {
  const TestImage im = Image(17, 2, LayerCompression::kGzip);
  Push(reg(), im, "demo/lie:1");
  // A digest the registry does not have: 404.
  const std::string absent = Digest::Of("not a manifest").ToString();
  Result<store::PullResult> p = StorePull(Ref("demo/lie@" + absent), {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kNotFound) << p.status().ToString();
  // A registry whose stored manifest was altered (still valid JSON) serves bytes that do not
  // hash to the digest asked for: refused before anything is stored.
  const std::string data = reg().storage_dir() + "/docker/registry/v2/blobs/sha256/" +
                           std::string(im.manifest_digest.hex().substr(0, 2)) + "/" +
                           std::string(im.manifest_digest.hex()) + "/data";
  ASSERT_TRUE(std::filesystem::exists(data)) << data;
  const std::string altered = im.manifest + " ";  // trailing space: same JSON, another digest
  {
    std::ofstream f(data, std::ios::binary | std::ios::trunc);
    f << altered;
  }
  p = StorePull(Ref("demo/lie@" + im.manifest_digest.ToString()), {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kCorruption) << p.status().ToString();
  EXPECT_NE(p.status().message().find(Digest::Of(altered).ToString()), std::string::npos)
      << p.status().ToString();
  CliResult r =
      RunImgstore(root_.path(), {"pull", Ref("demo/lie@" + im.manifest_digest.ToString())});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(ImageCount(), 0u);
  // Put it back: the registry is shared by the suite.
  std::ofstream(data, std::ios::binary | std::ios::trunc) << im.manifest;
}

class TlsAuthRegistry : public SuiteRegistry<TlsAuthRegistry, RegistryTest> {
 protected:
  static void SetUpTestSuite() { StartSuiteRegistry(TlsBasicAuth()); }
};

TEST_F(TlsAuthRegistry, RightCredentialsAndCertDirWork) {
  const TestImage im = Image(21, 2, LayerCompression::kGzip);
  Push(reg(), im, "secure/app:1");
  CliResult r = RunImgstore(root_.path(), {"pull", "--creds", Creds(), "--cert-dir",
                                           reg().cert_dir(), Ref("secure/app:1")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.id.ToString() + "\n");
  EXPECT_EQ(r.err.find(reg().config().password), std::string::npos);
  // Credentials from an auth file work the same (a fresh store, so the blobs are fetched).
  TempDir root2;
  const std::string authfile = reg().WriteAuthFile(work_.Sub("auth.json"));
  r = RunImgstore(root2.path(), {"pull", "--authfile", authfile, "--cert-dir", reg().cert_dir(),
                                 Ref("secure/app:1")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.id.ToString() + "\n");
  // And from the default containers auth.json under XDG_RUNTIME_DIR.
  TempDir root3, xdg;
  std::filesystem::create_directories(xdg.Sub("containers"));
  reg().WriteAuthFile(xdg.Sub("containers/auth.json"));
  r = RunImgstore(root3.path(), {"pull", "--cert-dir", reg().cert_dir(), Ref("secure/app:1")},
                  {"XDG_RUNTIME_DIR=" + xdg.path(), "REGISTRY_AUTH_FILE="});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
}

TEST_F(TlsAuthRegistry, WrongPasswordIsRefusedWithoutLeakingIt) {
  const TestImage im = Image(22, 1, LayerCompression::kGzip);
  Push(reg(), im, "secure/wrong:1");
  const std::string bad = "Wr0ngPassw0rd-XYZZY";
  CliResult r = RunImgstore(root_.path(), {"pull", "--creds", reg().config().user + ":" + bad,
                                           "--cert-dir", reg().cert_dir(), Ref("secure/wrong:1")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("rejected"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("401"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("registry " + reg().host()), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(bad), std::string::npos) << "password leaked: " << r.err;
  EXPECT_EQ(r.out.find(bad), std::string::npos);
  RegistryOptions o;
  o.credentials = Credentials{reg().config().user, bad};
  o.cert_dir = reg().cert_dir();
  Result<store::PullResult> p = StorePull(Ref("secure/wrong:1"), o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kPermissionDenied);
  EXPECT_EQ(p.status().message().find(bad), std::string::npos);
  // No credentials at all: told how to give them.
  r = RunImgstore(root_.path(), {"pull", "--cert-dir", reg().cert_dir(), Ref("secure/wrong:1")},
                  {"XDG_RUNTIME_DIR=", "REGISTRY_AUTH_FILE=", "HOME=" + work_.path()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("authentication required"), std::string::npos) << r.err;
  EXPECT_EQ(ImageCount(), 0u);
}

TEST_F(TlsAuthRegistry, UnknownCaIsRefusedUnlessTrustedOrVerifyOff) {
  const TestImage im = Image(23, 1, LayerCompression::kGzip);
  Push(reg(), im, "secure/ca:1");
  CliResult r = RunImgstore(root_.path(), {"pull", "--creds", Creds(), Ref("secure/ca:1")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not trusted"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--cert-dir"), std::string::npos) << r.err;
  EXPECT_EQ(ImageCount(), 0u);
  // --tls-verify=false accepts the certificate.
  r = RunImgstore(root_.path(),
                  {"pull", "--creds", Creds(), "--tls-verify=false", Ref("secure/ca:1")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.id.ToString() + "\n");
}

}  // namespace
}  // namespace imgstore::registry
