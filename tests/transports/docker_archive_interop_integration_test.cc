// Interoperability of the docker-archive transport with skopeo (containers/image), in both
// directions: archives skopeo writes are read here with the same image ID and diffIDs, and
// archives written here are inspected and copied by skopeo. Skipped when skopeo is absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "common/cli_runner.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "images/image_config.h"
#include "images/manifest.h"
#include "images/oci_layout.h"
#include "transports/docker_archive.h"

namespace imgstore::transports {
namespace {

using testing::LayerCompression;
using testing::MakeTestImage;
using testing::RunProgram;
using testing::TempDir;
using testing::TestImage;

constexpr const char* kSkopeo = "/usr/bin/skopeo";

bool HaveSkopeo() { return access(kSkopeo, X_OK) == 0; }

testing::CliResult Skopeo(const std::vector<std::string>& args) {
  std::vector<std::string> all = {"--insecure-policy"};
  all.insert(all.end(), args.begin(), args.end());
  return RunProgram(kSkopeo, all);
}

std::string Chomp(std::string s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// An ImageToWrite over the in-memory blobs of a test image.
images::ImageToWrite ToWrite(const TestImage& image, const std::string& scratch) {
  images::ImageToWrite w;
  w.manifest = {image.manifest, image.manifest_media_type};
  w.parsed = *images::ParseImageManifest(image.manifest, image.manifest_media_type);
  w.config = image.config;
  w.diff_ids = image.diff_ids;
  std::map<Digest, std::string> blobs;
  for (const std::string& l : image.layers) blobs[Digest::Of(l)] = l;
  w.open_blob = [blobs,
                 scratch](const images::Descriptor& d) -> Result<std::unique_ptr<SequentialFile>> {
    auto it = blobs.find(d.digest);
    if (it == blobs.end()) return Status(Code::kNotFound, "no blob " + d.digest.ToString());
    std::string path = scratch + "/" + std::string(d.digest.hex());
    IMGSTORE_RETURN_IF_ERROR(Env::Default()->WriteFileAtomically(path, it->second));
    return Env::Default()->NewSequentialFile(path);
  };
  return w;
}

class DockerArchiveInterop : public ::testing::TestWithParam<LayerCompression> {
 protected:
  void SetUp() override {
    if (!HaveSkopeo()) GTEST_SKIP() << "skopeo is not installed";
  }
  TempDir dir_;
};

// skopeo refuses to write zstd layers into a docker image, so this one has no zstd case.
class SkopeoWrites : public DockerArchiveInterop {};

TEST_P(SkopeoWrites, WeReadWhatSkopeoWrites) {
  TestImage image = MakeTestImage({.seed = 21, .layers = 3, .compression = GetParam()});
  testing::WriteOciLayout(image, dir_.Sub("oci"), "v1");
  const std::string archive = dir_.Sub("y.tar");
  auto r = Skopeo({"copy", "oci:" + dir_.Sub("oci") + ":v1",
                   "docker-archive:" + archive + ":example.com/app:1.0"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();

  for (std::string ref : {"", "example.com/app:1.0", "@0"}) {
    auto src = OpenDockerArchiveSource(Env::Default(), archive, ref);
    ASSERT_TRUE(src.ok()) << src.status().ToString();
    auto m = images::ParseImageManifest((*src)->GetManifest()->bytes);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->config.digest, image.id);  // the image ID
    ASSERT_EQ(m->layers.size(), image.diff_ids.size());
    for (size_t i = 0; i < m->layers.size(); ++i) {
      EXPECT_EQ(m->layers[i].digest, image.diff_ids[i]);  // skopeo stores layers uncompressed
    }
    EXPECT_EQ((*src)->Names(), (std::vector<std::string>{"example.com/app:1.0"}));
  }
}

TEST_P(DockerArchiveInterop, SkopeoReadsWhatWeWrite) {
  TestImage image = MakeTestImage({.seed = 22, .layers = 2, .compression = GetParam()});
  ASSERT_TRUE(Env::Default()->CreateDirs(dir_.Sub("blobs")).ok());
  const std::string archive = dir_.Sub("z.tar");
  auto dest = OpenDockerArchiveDestination(Env::Default(), archive, "example.com/mine:2");
  ASSERT_TRUE(dest.ok());
  Status st = (*dest)->PutImage(ToWrite(image, dir_.Sub("blobs")));
  ASSERT_TRUE(st.ok()) << st.ToString();

  // The config, byte for byte: the image ID survives.
  auto config = Skopeo({"inspect", "--config", "--raw", "docker-archive:" + archive});
  ASSERT_EQ(config.exit_code, 0) << config.Describe();
  EXPECT_EQ(Digest::Of(Chomp(config.out)), image.id);
  // skopeo's own synthesized manifest names the same config and one layer per diffID.
  auto raw = Skopeo({"inspect", "--raw", "docker-archive:" + archive});
  ASSERT_EQ(raw.exit_code, 0) << raw.Describe();
  auto m = images::ParseImageManifest(Chomp(raw.out));
  ASSERT_TRUE(m.ok()) << m.status().ToString() << raw.out;
  EXPECT_EQ(m->config.digest, image.id);
  ASSERT_EQ(m->layers.size(), image.diff_ids.size());
  for (size_t i = 0; i < m->layers.size(); ++i) EXPECT_EQ(m->layers[i].digest, image.diff_ids[i]);
  // The tag, as skopeo reads it.
  auto tagged = Skopeo({"inspect", "--raw", "docker-archive:" + archive + ":example.com/mine:2"});
  EXPECT_EQ(tagged.exit_code, 0) << tagged.Describe();

  // And skopeo copies it on to an OCI layout. Its conversion to OCI rewrites the config (so
  // the image ID changes there, as with any v2s2 → OCI copy), but the diffIDs stay.
  auto copy = Skopeo({"copy", "docker-archive:" + archive, "oci:" + dir_.Sub("out") + ":x"});
  ASSERT_EQ(copy.exit_code, 0) << copy.Describe();
  auto out_cfg = Skopeo({"inspect", "--config", "--raw", "oci:" + dir_.Sub("out") + ":x"});
  ASSERT_EQ(out_cfg.exit_code, 0) << out_cfg.Describe();
  auto parsed = images::ParseImageConfig(Chomp(out_cfg.out));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->diff_ids, image.diff_ids);
}

TEST_P(DockerArchiveInterop, RoundTripThroughSkopeoKeepsOurManifest) {
  // Ours → skopeo → ours: the synthesized manifest depends only on the image, so an archive that
  // skopeo rewrote gives the same manifest digest as the one we wrote.
  TestImage image = MakeTestImage({.seed = 23, .layers = 2, .compression = GetParam()});
  ASSERT_TRUE(Env::Default()->CreateDirs(dir_.Sub("blobs")).ok());
  const std::string ours = dir_.Sub("ours.tar");
  auto dest = OpenDockerArchiveDestination(Env::Default(), ours, "a:1");
  ASSERT_TRUE(dest.ok());
  ASSERT_TRUE((*dest)->PutImage(ToWrite(image, dir_.Sub("blobs"))).ok());
  const std::string theirs = dir_.Sub("theirs.tar");
  auto r = Skopeo({"copy", "docker-archive:" + ours, "docker-archive:" + theirs + ":a:1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  auto a = OpenDockerArchiveSource(Env::Default(), ours, "");
  auto b = OpenDockerArchiveSource(Env::Default(), theirs, "");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->GetManifest()->bytes, (*b)->GetManifest()->bytes);
}

INSTANTIATE_TEST_SUITE_P(LayerCompressions, SkopeoWrites,
                         ::testing::Values(LayerCompression::kNone, LayerCompression::kGzip));
INSTANTIATE_TEST_SUITE_P(LayerCompressions, DockerArchiveInterop,
                         ::testing::Values(LayerCompression::kNone, LayerCompression::kGzip,
                                           LayerCompression::kZstd));

}  // namespace
}  // namespace imgstore::transports
