// Two `imgstore unpack` processes of two images that share a ~30 MB base layer: the base is
// extracted once (the debug line "extracting layer CHAIN" appears once across both, printed only
// by the one process that extracted it under the layer lock). And kill -9 of an unpack at random
// instants while another runs: unpacking again gives the complete tree (equal to a reference
// unpack), `check` is clean and no staging directory is left.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/cli_runner.h"
#include "common/layer_image.h"
#include "common/subprocess.h"
#include "common/tar_builder.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "util/env.h"

namespace imgstore::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kKills = 12;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

// 30 MB in 240 files of 128 KiB, in a few directories.
std::string BigBase() {
  TarBuilder tar;
  for (int d = 0; d < 8; ++d) {
    const std::string dir = "data/d" + std::to_string(d);
    if (d == 0) tar.Dir("data");
    tar.Dir(dir);
    for (int f = 0; f < 30; ++f) {
      tar.File(dir + "/f" + std::to_string(f), RandomBytes(128 << 10, d * 100 + f));
    }
  }
  tar.Dir("etc").File("etc/hostname", "base\n").Hardlink("etc/hostname2", "etc/hostname");
  return tar.Finish();
}

std::string Top(const std::string& name) {
  return TarBuilder()
      .Dir("app")
      .File("app/" + name, RandomBytes(1 << 20, name.size()))
      .Whiteout("data/d3/f7")
      .Opaque("data/d5")
      .Finish();
}

// path → type, mode, owner, size, content digest or link target.
void Walk(const std::string& root, const std::string& rel,
          std::map<std::string, std::string>* out) {
  const std::string path = rel.empty() ? root : root + "/" + rel;
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
  std::string desc = std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + ":" +
                     std::to_string(st.st_gid) + " " + std::to_string(st.st_nlink);
  if (S_ISREG(st.st_mode)) {
    Result<std::string> content = Env::Default()->ReadFileToString(path, 8 << 20);
    ASSERT_TRUE(content.ok());
    desc += " " + Digest::Of(*content).ToString();
  }
  (*out)[rel] = desc;
  if (!S_ISDIR(st.st_mode)) return;
  Result<std::vector<std::string>> names = Env::Default()->ListDir(path);
  ASSERT_TRUE(names.ok());
  for (const std::string& n : *names) Walk(root, rel.empty() ? n : rel + "/" + n, out);
}

std::map<std::string, std::string> ReadTree(const std::string& dir) {
  std::map<std::string, std::string> tree;
  Walk(dir, "", &tree);
  return tree;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class UnpackCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string base = BigBase();
    base_chain_ = Digest::Of(base);
    WriteOciLayout(ImageOfLayers({base, Top("a")}, LayerCompression::kGzip, "a"), dir_.Sub("a"),
                   "v1");
    WriteOciLayout(ImageOfLayers({base, Top("b")}, LayerCompression::kGzip, "b"), dir_.Sub("b"),
                   "v1");
  }

  // A new store holding both images, as "a" and "b".
  void Populate(const std::string& root) {
    for (const char* name : {"a", "b"}) {
      CliResult r = RunImgstore(
          root, {"pull", "-q", "oci:" + dir_.Sub(name) + ":v1", "--name", std::string(name)});
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
    }
  }

  // Both images unpacked in a store of their own: the trees every other unpack must give.
  void MakeReference() {
    const std::string root = dir_.Sub("reference-store");
    ASSERT_NO_FATAL_FAILURE(Populate(root));
    for (const char* name : {"a", "b"}) {
      const std::string out = dir_.Sub(std::string("reference-") + name);
      CliResult r = RunImgstore(root, {"unpack", "--no-cache", name, out});
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
      reference_[name] = ReadTree(out);
    }
  }

  void ExpectCleanStore(const std::string& root) {
    CliResult r = RunImgstore(root, {"check"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    Result<std::vector<std::string>> names = Env::Default()->ListDir(root + "/layers");
    ASSERT_TRUE(names.ok());
    for (const std::string& n : *names) {
      EXPECT_FALSE(n.starts_with(".staging-")) << "staging directory left: " << n;
    }
  }

  TempDir dir_;
  Digest base_chain_;
  std::map<std::string, std::map<std::string, std::string>> reference_;
};

TEST_F(UnpackCrashTest, ConcurrentUnpacksExtractTheSharedLayerOnce) {
  ASSERT_NO_FATAL_FAILURE(MakeReference());
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string root = dir_.Sub("store-" + std::to_string(round));
    ASSERT_NO_FATAL_FAILURE(Populate(root));
    CliResult results[2];
    std::thread threads[2];
    const char* names[2] = {"a", "b"};
    for (int i = 0; i < 2; ++i) {
      threads[i] = std::thread([&, i] {
        results[i] = RunImgstore(root, {"--log-level", "debug", "unpack", names[i],
                                        dir_.Sub(std::to_string(round) + "-" + names[i])});
      });
    }
    for (std::thread& t : threads) t.join();
    const std::string line = "extracting layer " + base_chain_.ToString();
    size_t base_extractions = 0;
    size_t extractions = 0;
    for (const CliResult& r : results) {
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
      base_extractions += Count(r.err, line);
      extractions += Count(r.err, "extracting layer ");
    }
    EXPECT_EQ(base_extractions, 1u) << results[0].err << results[1].err;
    EXPECT_EQ(extractions, 3u) << results[0].err << results[1].err;  // the base and two tops
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(ReadTree(dir_.Sub(std::to_string(round) + "-" + names[i])), reference_[names[i]]);
    }
    ExpectCleanStore(root);
  }
}

TEST_F(UnpackCrashTest, KilledUnpacksAreRedoneCompletely) {
  ASSERT_NO_FATAL_FAILURE(MakeReference());
  // How long a cold unpack of "a" takes here (the fastest of two), so that kills spread over it.
  int64_t full_us = std::numeric_limits<int64_t>::max();
  for (int probe = 0; probe < 2; ++probe) {
    const std::string root = dir_.Sub("probe-" + std::to_string(probe));
    ASSERT_NO_FATAL_FAILURE(Populate(root));
    auto start = std::chrono::steady_clock::now();
    CliResult r =
        RunImgstore(root, {"unpack", "a", dir_.Sub("probe-out-" + std::to_string(probe))});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    full_us = std::min<int64_t>(full_us, std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::steady_clock::now() - start)
                                             .count());
  }

  std::mt19937 rng(4242);
  std::uniform_int_distribution<int64_t> instant(0, full_us);
  int killed_while_running = 0;
  for (int i = 0; i < kKills; ++i) {
    SCOPED_TRACE("kill " + std::to_string(i));
    const std::string root = dir_.Sub("store-" + std::to_string(i));
    ASSERT_NO_FATAL_FAILURE(Populate(root));
    const std::string victim_dir = dir_.Sub("victim-" + std::to_string(i));
    const std::string other_dir = dir_.Sub("other-" + std::to_string(i));
    // The victim unpacks "a"; a second process unpacks "b" (sharing the base) at the same time.
    Subprocess victim;
    Subprocess other;
    std::string error;
    ASSERT_TRUE(victim.Start(ImgstoreBinary(), {"--root", root, "unpack", "a", victim_dir}, &error))
        << error;
    ASSERT_TRUE(other.Start(ImgstoreBinary(), {"--root", root, "unpack", "b", other_dir}, &error))
        << error;
    std::this_thread::sleep_for(std::chrono::microseconds(instant(rng)));  // the random instant
    if (victim.running() && victim.Kill(SIGKILL)) {
      std::optional<int> status = victim.Wait(60s);
      ASSERT_TRUE(status.has_value());
      if (WIFSIGNALED(*status)) ++killed_while_running;
    }
    std::optional<int> other_status = other.Wait(120s);
    ASSERT_TRUE(other_status.has_value());
    ASSERT_TRUE(WIFEXITED(*other_status) && WEXITSTATUS(*other_status) == 0)
        << Subprocess::DescribeStatus(*other_status);
    EXPECT_EQ(ReadTree(other_dir), reference_["b"]);

    // Again, into a new directory (the killed one's is the user's to remove): complete.
    const std::string redo_dir = dir_.Sub("redo-" + std::to_string(i));
    CliResult r = RunImgstore(root, {"unpack", "a", redo_dir});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(ReadTree(redo_dir), reference_["a"]);
    ExpectCleanStore(root);
    ASSERT_TRUE(RemoveTree(root));  // keeps the disk use of the test bounded
    for (const std::string& d : {victim_dir, other_dir, redo_dir}) ASSERT_TRUE(RemoveTree(d));
  }
  // Most kills must have hit a running unpack, or the test proves nothing.
  EXPECT_GE(killed_while_running, kKills / 2);
}

}  // namespace
}  // namespace imgstore::testing
