// Interoperability with skopeo (containers/image), the reference implementation of the `oci:`
// and `oci-archive:` transports: what skopeo writes we read with the same digests, and what we
// write skopeo inspects and copies with the same digests. Skipped only if skopeo is not
// installed (scripts/setup.sh installs it).
#include <gtest/gtest.h>

#include "common/cli_runner.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "transports/transport_test_util.h"
#include "transports/transports.h"

namespace imgstore::transports {
namespace {

using imgstore::testing::CliResult;
using imgstore::testing::MakeTestImage;
using imgstore::testing::TempDir;
using imgstore::testing::TestImage;
using imgstore::testing::WriteOciLayout;
using testing::ExpectSameImage;
using testing::ToWrite;

constexpr const char* kSkopeo = "/usr/bin/skopeo";

Env* env() { return Env::Default(); }

class SkopeoInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!env()->FileExists(kSkopeo)) GTEST_SKIP() << "skopeo is not installed";
  }

  // skopeo with its scratch files (oci-archive extraction) inside the test's directory, and no
  // dependency on a system signature policy.
  CliResult Skopeo(std::vector<std::string> args) {
    args.insert(args.begin() + 1, "--insecure-policy");
    return imgstore::testing::RunProgram(kSkopeo, args, {"TMPDIR=" + tmp_.path()});
  }
  CliResult Copy(const std::string& from, const std::string& to) {
    return Skopeo({"copy", "-q", from, to});
  }

  TempDir tmp_;
  TempDir dir_;
};

TestImage Image(uint32_t seed) {
  imgstore::testing::TestImageSpec spec;
  spec.seed = seed;
  return MakeTestImage(spec);
}

void Put(const std::string& spec, const TestImage& im) {
  auto dest = OpenDestination(env(), spec);
  ASSERT_TRUE(dest.ok()) << dest.status().ToString();
  Status st = (*dest)->PutImage(ToWrite(im));
  ASSERT_TRUE(st.ok()) << st.ToString();
}

TEST_F(SkopeoInterop, WeReadArchivesSkopeoWrites) {
  const TestImage im = Image(1);
  WriteOciLayout(im, dir_.Sub("src"), "v1");
  CliResult r = Copy("oci:" + dir_.Sub("src") + ":v1", "oci-archive:" + dir_.Sub("s.tar"));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  Result<std::unique_ptr<images::ImageSource>> src =
      OpenSource(env(), "oci-archive:" + dir_.Sub("s.tar"));
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  ExpectSameImage(**src, im);
  // And with a ref, which skopeo records as ref.name.
  r = Copy("oci:" + dir_.Sub("src") + ":v1", "oci-archive:" + dir_.Sub("r.tar") + ":app");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  src = OpenSource(env(), "oci-archive:" + dir_.Sub("r.tar") + ":app");
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  ExpectSameImage(**src, im);
}

TEST_F(SkopeoInterop, WeReadLayoutsSkopeoWrites) {
  const TestImage im = Image(2);
  WriteOciLayout(im, dir_.Sub("src"), "v1");
  CliResult r = Copy("oci:" + dir_.Sub("src") + ":v1", "oci:" + dir_.Sub("dst") + ":copied");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  Result<std::unique_ptr<images::ImageSource>> src =
      OpenSource(env(), "oci:" + dir_.Sub("dst") + ":copied");
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  ExpectSameImage(**src, im);
}

TEST_F(SkopeoInterop, SkopeoReadsLayoutsWeWrite) {
  // OCI media types only: containers/image looks up index.json entries of OCI types alone, so
  // a Docker v2s2 manifest kept verbatim in a layout is invisible to skopeo (docs/transports.md).
  const TestImage im = Image(3);
  Put("oci:" + dir_.Sub("ours") + ":v2", im);
  CliResult raw = Skopeo({"inspect", "--raw", "oci:" + dir_.Sub("ours") + ":v2"});
  ASSERT_EQ(raw.exit_code, 0) << raw.Describe();
  EXPECT_EQ(raw.out, im.manifest);
  CliResult r = Copy("oci:" + dir_.Sub("ours") + ":v2", "oci:" + dir_.Sub("back") + ":v3");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  Result<std::unique_ptr<images::ImageSource>> src =
      OpenSource(env(), "oci:" + dir_.Sub("back") + ":v3");
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  ExpectSameImage(**src, im);
}

TEST_F(SkopeoInterop, SkopeoReadsArchivesWeWrite) {
  const TestImage im = Image(4);
  Put("oci-archive:" + dir_.Sub("ours.tar") + ":v4", im);
  CliResult raw = Skopeo({"inspect", "--raw", "oci-archive:" + dir_.Sub("ours.tar") + ":v4"});
  ASSERT_EQ(raw.exit_code, 0) << raw.Describe();
  EXPECT_EQ(raw.out, im.manifest);
  CliResult cfg = Skopeo({"inspect", "--config", "--raw", "oci-archive:" + dir_.Sub("ours.tar")});
  ASSERT_EQ(cfg.exit_code, 0) << cfg.Describe();
  EXPECT_EQ(cfg.out, im.config);
  CliResult r = Copy("oci-archive:" + dir_.Sub("ours.tar") + ":v4", "oci:" + dir_.Sub("back"));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  Result<std::unique_ptr<images::ImageSource>> src = OpenSource(env(), "oci:" + dir_.Sub("back"));
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  ExpectSameImage(**src, im);
}

TEST_F(SkopeoInterop, SkopeoRefusesWhatWeRefuse) {
  // A sanity check of the fixture: a missing ref fails in both implementations.
  const TestImage im = Image(5);
  Put("oci-archive:" + dir_.Sub("a.tar") + ":v1", im);
  CliResult raw = Skopeo({"inspect", "--raw", "oci-archive:" + dir_.Sub("a.tar") + ":nope"});
  EXPECT_NE(raw.exit_code, 0);
  Result<std::unique_ptr<images::ImageSource>> src =
      OpenSource(env(), "oci-archive:" + dir_.Sub("a.tar") + ":nope");
  ASSERT_TRUE(src.ok());
  EXPECT_EQ((*src)->GetManifest().status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace imgstore::transports
