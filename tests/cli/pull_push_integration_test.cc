// `imgstore pull` and `imgstore push` through the built binary: a round trip through oci: and
// oci-archive: that keeps the image id and manifest digest, what skopeo reads from a pushed
// layout, and bad input (corrupt, truncated or missing blobs, a missing index.json, an unknown
// media type, invalid --name values), each refused with one error line and the store unchanged.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/cli_runner.h"
#include "common/temp_dir.h"
#include "common/test_image.h"

namespace imgstore::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  ::chmod(path.c_str(), 0644);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

std::string BlobFile(const std::string& layout, const Digest& d) {
  return layout + "/blobs/sha256/" + std::string(d.hex());
}

int Lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TestImage Image(uint32_t seed) {
  TestImageSpec spec;
  spec.seed = seed;
  spec.layers = 2;
  return MakeTestImage(spec);
}

class PullPushTest : public ::testing::Test {
 protected:
  std::string Root() const { return dir_.Sub("store"); }
  CliResult Run(const std::vector<std::string>& args) { return RunImgstore(Root(), args); }
  std::string ListJson() {
    CliResult r = Run({"list", "--format", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    return r.out;
  }
  TempDir dir_;
};

TEST_F(PullPushTest, RoundTripKeepsIdAndManifestDigest) {
  TestImage img = Image(1);
  WriteOciLayout(img, dir_.Sub("src"), "v1");

  CliResult pull = Run({"pull", "oci:" + dir_.Sub("src") + ":v1", "--name", "example.com/app:1"});
  ASSERT_EQ(pull.exit_code, 0) << pull.Describe();
  EXPECT_EQ(pull.out, img.id.ToString() + "\n");
  EXPECT_EQ(pull.err, "");  // stderr is not a terminal: no progress
  CliResult list = Run({"list", "--no-trunc"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  EXPECT_NE(list.out.find(img.id.ToString()), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("example.com/app"), std::string::npos) << list.out;

  // Pulled twice: the same id, nothing written (the debug log says each blob was skipped).
  CliResult again =
      Run({"--log-level", "debug", "pull", "oci:" + dir_.Sub("src") + ":v1", "--name", "x"});
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  EXPECT_EQ(again.out, img.id.ToString() + "\n");
  EXPECT_EQ(again.err.find(" written ("), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("skipped"), std::string::npos) << again.err;

  // push to oci: and oci-archive:, then pull both into a fresh store.
  CliResult push = Run({"push", "example.com/app:1", "oci:" + dir_.Sub("out") + ":v2"});
  ASSERT_EQ(push.exit_code, 0) << push.Describe();
  EXPECT_EQ(push.out, img.manifest_digest.ToString() + "\n");
  CliResult push_archive =
      Run({"push", "-q", img.id.ToString(), "oci-archive:" + dir_.Sub("out.tar") + ":v3"});
  ASSERT_EQ(push_archive.exit_code, 0) << push_archive.Describe();
  EXPECT_EQ(push_archive.out, "");

  const std::string root2 = dir_.Sub("store2");
  for (const std::string& spec :
       {"oci:" + dir_.Sub("out") + ":v2", "oci-archive:" + dir_.Sub("out.tar") + ":v3"}) {
    CliResult r = RunImgstore(root2, {"pull", spec});
    ASSERT_EQ(r.exit_code, 0) << spec << ": " << r.Describe();
    EXPECT_EQ(r.out, img.id.ToString() + "\n");
    CliResult inspect = RunImgstore(root2, {"inspect", img.id.ToString()});
    ASSERT_EQ(inspect.exit_code, 0) << inspect.Describe();
    EXPECT_NE(inspect.out.find(img.manifest_digest.ToString()), std::string::npos);
  }
  EXPECT_EQ(RunImgstore(root2, {"check", "--verify-content"}).exit_code, 0);

  // skopeo reads the pushed layout and sees the stored manifest, byte for byte.
  CliResult raw =
      RunProgram("/usr/bin/skopeo", {"inspect", "--raw", "oci:" + dir_.Sub("out") + ":v2"});
  ASSERT_EQ(raw.exit_code, 0) << raw.Describe();
  EXPECT_EQ(raw.out, img.manifest);
}

TEST_F(PullPushTest, QuietPrintsNothing) {
  TestImage img = Image(2);
  WriteOciLayout(img, dir_.Sub("src"), "v1");
  CliResult r = Run({"pull", "--quiet", "oci:" + dir_.Sub("src") + ":v1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
}

TEST_F(PullPushTest, PushOfUnknownImageFails) {
  CliResult r = Run({"push", "nosuch", "oci:" + dir_.Sub("out") + ":v1"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("image not known"), std::string::npos) << r.err;
  EXPECT_NE(::access(dir_.Sub("out").c_str(), F_OK), 0) << "the destination was created";
}

TEST_F(PullPushTest, UsageErrors) {
  EXPECT_EQ(Run({"pull"}).exit_code, 2);
  EXPECT_EQ(Run({"push"}).exit_code, 2);
  EXPECT_EQ(Run({"push", "x", "--max-parallel", "0"}).exit_code, 2);
  // Without DEST, IMAGE must name a registry: an id or an oci: spec is refused, store untouched.
  CliResult no_dest = Run({"push", "oci:" + dir_.Sub("src")});
  EXPECT_EQ(no_dest.exit_code, 1) << no_dest.Describe();
  EXPECT_NE(no_dest.err.find("without DEST"), std::string::npos) << no_dest.err;
  CliResult r = Run({"pull", "--platform", "linux", "oci:" + dir_.Sub("src")});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(Lines(r.err), 1) << r.err;
}

// Each bad source: exit 1, one line on stderr naming the problem, the store as it was.
TEST_F(PullPushTest, BadInputChangesNothing) {
  TestImage good = Image(3);
  WriteOciLayout(good, dir_.Sub("good"), "v1");
  ASSERT_EQ(Run({"pull", "oci:" + dir_.Sub("good") + ":v1", "--name", "kept"}).exit_code, 0);
  const std::string before = ListJson();

  struct Case {
    std::string name;
    std::function<void(const std::string& layout, const TestImage& img)> damage;
    std::vector<std::string> extra_args;
    std::string expect;  // in the error line
  };
  std::vector<Case> cases = {
      {"digest mismatch",
       [](const std::string& l, const TestImage& img) {
         std::string bytes = img.layers[1];
         bytes[bytes.size() / 2] ^= 0x55;
         WriteFile(BlobFile(l, Digest::Of(img.layers[1])), bytes);
       },
       {},
       "digest"},
      {"truncated blob",
       [](const std::string& l, const TestImage& img) {
         WriteFile(BlobFile(l, Digest::Of(img.layers[0])),
                   img.layers[0].substr(0, img.layers[0].size() - 10));
       },
       {},
       "bytes"},
      {"missing blob",
       [](const std::string& l, const TestImage& img) {
         ASSERT_EQ(::unlink(BlobFile(l, Digest::Of(img.layers[1])).c_str()), 0);
       },
       {},
       "layer 1"},
      {"missing index.json",
       [](const std::string& l, const TestImage&) {
         ASSERT_EQ(::unlink((l + "/index.json").c_str()), 0);
       },
       {},
       "index.json"},
      {"unknown media type",
       [](const std::string& l, const TestImage&) {
         nlohmann::json j = nlohmann::json::parse(ReadFile(l + "/index.json"));
         j["manifests"][0]["mediaType"] = "application/vnd.example.unknown+json";
         WriteFile(l + "/index.json", j.dump());
       },
       {},
       "application/vnd.example.unknown+json"},
      {"upper-case name",
       [](const std::string&, const TestImage&) {},
       {"--name", "UPPER/case"},
       "UPPER/case"},
      {"name with two colons",
       [](const std::string&, const TestImage&) {},
       {"--name", "a:b:c"},
       "a:b:c"},
      {"129-character tag",
       [](const std::string&, const TestImage&) {},
       {"--name", "x:" + std::string(129, 't')},
       "invalid"},
      {"malformed digest",
       [](const std::string&, const TestImage&) {},
       {"--name", "x@sha256:1234"},
       "x@sha256:1234"},
  };
  uint32_t seed = 10;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TestImage img = Image(seed++);
    const std::string layout = dir_.Sub("bad" + std::to_string(seed));
    WriteOciLayout(img, layout, "v1");
    c.damage(layout, img);
    std::vector<std::string> args = {"pull", "oci:" + layout + ":v1"};
    args.insert(args.end(), c.extra_args.begin(), c.extra_args.end());
    CliResult r = Run(args);
    EXPECT_EQ(r.exit_code, 1) << r.Describe();
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("imgstore: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    CliResult check = Run({"check", "--verify-content"});
    EXPECT_EQ(check.exit_code, 0) << check.Describe();
    EXPECT_EQ(ListJson(), before);
    EXPECT_EQ(RunProgram("/bin/sh", {"-c", "ls -A " + Root() + "/ingest"}).out, "");
  }
}

}  // namespace
}  // namespace imgstore::testing
