// Bounded memory (issue 4): pushing and pulling a layer far larger than the bound keeps the
// imgstore process under 64 MiB of peak resident memory, measured by the kernel on a real
// process against a real registry (through /usr/bin/time: a peak resident set survives exec, so a
// child spawned straight from this test process, which holds the image in memory, would report
// this process's peak instead of its own). The layer is 256 MiB: a client that held
// a layer, or a large part of it, in memory anywhere would exceed the bound several times over,
// whatever the layer's size; bench/registry.sh reports the figure for an 839 MB layer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "common/cli_runner.h"
#include "common/registry_fixture.h"
#include "common/temp_dir.h"
#include "common/test_image.h"

namespace imgstore::testing {
namespace {

constexpr size_t kLayerBytes = 256 << 20;
constexpr long kMaxRssKib = 64 << 10;
constexpr char kTime[] = "/usr/bin/time";

// Runs `imgstore --root root args` under /usr/bin/time; *rss_kib gets its peak resident set.
CliResult RunMeasured(const TempDir& dir, const std::string& root,
                      const std::vector<std::string>& args, long* rss_kib) {
  const std::string out = dir.Sub("rss.txt");
  std::vector<std::string> argv = {"-f", "%M", "-o", out, ImgstoreBinary(), "--root", root};
  argv.insert(argv.end(), args.begin(), args.end());
  CliResult r = RunProgram(kTime, argv);
  std::ifstream in(out);
  *rss_kib = 0;
  in >> *rss_kib;
  return r;
}

TEST(RegistryMemoryStressTest, PushAndPullOfALargeLayerStayUnder64MiB) {
  if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry or skopeo is not installed";
  if (::access(kTime, X_OK) != 0) GTEST_SKIP() << kTime << " is not installed";
  TempDir dir;
  TestRegistry registry;
  std::string error;
  ASSERT_TRUE(registry.Start({}, &error)) << error;
  TestImageSpec spec;
  spec.seed = 64;
  spec.layers = 1;
  spec.layer_bytes = kLayerBytes;
  spec.compression = LayerCompression::kGzip;  // the pull checks the diffID through gzip too
  const TestImage image = MakeTestImage(spec);
  WriteOciLayout(image, dir.Sub("layout"), "v1");
  const std::string root = dir.Sub("store");
  ASSERT_EQ(RunImgstore(root, {"pull", "-q", "oci:" + dir.Sub("layout") + ":v1", "--name", "big:1"})
                .exit_code,
            0);
  const std::string ref = registry.host() + "/memory/big:1";

  long push_rss = 0;
  CliResult push = RunMeasured(dir, root, {"push", "-q", "big:1", ref}, &push_rss);
  ASSERT_EQ(push.exit_code, 0) << push.Describe();
  ASSERT_GT(push_rss, 0) << "time reported no peak resident set";
  EXPECT_LT(push_rss, kMaxRssKib) << "push peak RSS " << push_rss << " KiB";

  ASSERT_EQ(RunImgstore(root, {"rmi", "big:1"}).exit_code, 0);
  ASSERT_EQ(RunImgstore(root, {"gc"}).exit_code, 0);
  long pull_rss = 0;
  CliResult pull = RunMeasured(dir, root, {"pull", "-q", "--verify-diffid", ref}, &pull_rss);
  ASSERT_EQ(pull.exit_code, 0) << pull.Describe();
  EXPECT_EQ(pull.out, "");
  ASSERT_GT(pull_rss, 0) << "time reported no peak resident set";
  EXPECT_LT(pull_rss, kMaxRssKib) << "pull peak RSS " << pull_rss << " KiB";
  CliResult list = RunImgstore(root, {"list", "--no-trunc"});
  EXPECT_NE(list.out.find(image.id.ToString()), std::string::npos) << list.out;
  std::printf("peak RSS: push %ld KiB, pull %ld KiB (layer %zu MiB)\n", push_rss, pull_rss,
              kLayerBytes >> 20);
}

}  // namespace
}  // namespace imgstore::testing
