// Processes working on one store at once, through the binary: two pulls of one image both
// succeed and write each blob once; `imgstore list` keeps answering while a large pull writes
// and while gc sweeps (design.md: nothing waits for a long operation).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "common/cli_runner.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "common/test_image.h"

namespace imgstore::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Occurrences(const std::string& text, const std::string& word) {
  int n = 0;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

// `imgstore ARGS` with stderr to err_file, as a Subprocess (started from the test's thread).
bool StartImgstore(Subprocess& p, const std::string& root, const std::string& args,
                   const std::string& err_file) {
  std::string error;
  bool ok = p.Start("/bin/sh",
                    {"-c", "exec '" + ImgstoreBinary() + "' --root '" + root + "' " + args +
                               " 2>'" + err_file + "'"},
                    &error);
  EXPECT_TRUE(ok) << error;
  return ok;
}

TestImage BigImage(uint32_t seed, size_t layer_bytes) {
  TestImageSpec spec;
  spec.seed = seed;
  spec.layers = 4;
  spec.layer_bytes = layer_bytes;
  spec.compression = LayerCompression::kNone;
  return MakeTestImage(spec);
}

TEST(ConcurrencyStressTest, TwoPullsOfOneImageWriteEachBlobOnce) {
  TempDir dir;
  TestImage img = BigImage(91, 8 << 20);
  WriteOciLayout(img, dir.Sub("src"), "v1");
  const std::string root = dir.Sub("store");
  ASSERT_EQ(RunImgstore(root, {"list"}).exit_code, 0);  // the store exists before the race
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    if (round > 0) {
      ASSERT_EQ(RunImgstore(root, {"rmi", img.id.ToString()}).exit_code, 0);
      ASSERT_EQ(RunImgstore(root, {"gc"}).exit_code, 0);
    }
    Subprocess a, b;
    const std::string args = "--log-level debug pull oci:" + dir.Sub("src") + ":v1";
    ASSERT_TRUE(StartImgstore(a, root, args, dir.Sub("a.err")));
    ASSERT_TRUE(StartImgstore(b, root, args, dir.Sub("b.err")));
    std::optional<std::string> out_a = a.ReadLine(milliseconds(60000));
    std::optional<std::string> out_b = b.ReadLine(milliseconds(60000));
    std::optional<int> st_a = a.Wait(milliseconds(60000));
    std::optional<int> st_b = b.Wait(milliseconds(60000));
    const std::string err_a = ReadFile(dir.Sub("a.err"));
    const std::string err_b = ReadFile(dir.Sub("b.err"));
    ASSERT_TRUE(st_a && WIFEXITED(*st_a) && WEXITSTATUS(*st_a) == 0) << err_a;
    ASSERT_TRUE(st_b && WIFEXITED(*st_b) && WEXITSTATUS(*st_b) == 0) << err_b;
    EXPECT_EQ(out_a.value_or(""), img.id.ToString());
    EXPECT_EQ(out_b.value_or(""), img.id.ToString());
    // Config and four layers: each written by exactly one of the two, skipped by the other.
    EXPECT_EQ(Occurrences(err_a + err_b, " written ("), 5) << err_a << err_b;
    EXPECT_EQ(Occurrences(err_a + err_b, " skipped "), 5) << err_a << err_b;
    CliResult check = RunImgstore(root, {"check", "--verify-content"});
    EXPECT_EQ(check.exit_code, 0) << check.Describe();
  }
}

// Runs `imgstore list` until `busy` exits; every call must answer within a second.
void ListWhileRunning(const std::string& root, Subprocess& busy, const std::string& what) {
  int calls = 0;
  milliseconds slowest(0);
  while (busy.running()) {
    auto t0 = steady_clock::now();
    CliResult r = RunImgstore(root, {"list"}, {}, std::chrono::seconds(30));
    auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - t0);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    slowest = std::max(slowest, took);
    ++calls;
    if (busy.Wait(milliseconds(1))) break;
  }
  EXPECT_GT(calls, 0) << what << " ended before list ran: nothing was tested";
  EXPECT_LT(slowest.count(), 1000) << "list took " << slowest.count() << " ms during " << what;
}

TEST(ConcurrencyStressTest, ListAnswersWhileALargePullWrites) {
  TempDir dir;
  TestImage small = BigImage(92, 1024);
  WriteOciLayout(small, dir.Sub("small"), "v1");
  TestImage big = BigImage(93, 48 << 20);
  WriteOciLayout(big, dir.Sub("big"), "v1");
  const std::string root = dir.Sub("store");
  ASSERT_EQ(RunImgstore(root, {"pull", "oci:" + dir.Sub("small") + ":v1"}).exit_code, 0);
  Subprocess pull;
  ASSERT_TRUE(StartImgstore(pull, root, "pull oci:" + dir.Sub("big") + ":v1", dir.Sub("p.err")));
  ListWhileRunning(root, pull, "a pull");
  std::optional<int> st = pull.Wait(milliseconds(60000));
  ASSERT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << ReadFile(dir.Sub("p.err"));
}

TEST(ConcurrencyStressTest, ListAnswersWhileGcSweeps) {
  TempDir dir;
  const std::string root = dir.Sub("store");
  // Garbage for gc: large images pulled and then removed.
  for (uint32_t seed = 94; seed < 97; ++seed) {
    TestImage img = BigImage(seed, 16 << 20);
    const std::string layout = dir.Sub("img" + std::to_string(seed));
    WriteOciLayout(img, layout, "v1");
    ASSERT_EQ(RunImgstore(root, {"pull", "oci:" + layout + ":v1"}).exit_code, 0);
    ASSERT_EQ(RunImgstore(root, {"rmi", img.id.ToString()}).exit_code, 0);
  }
  TestImage kept = BigImage(97, 1024);
  WriteOciLayout(kept, dir.Sub("kept"), "v1");
  ASSERT_EQ(RunImgstore(root, {"pull", "oci:" + dir.Sub("kept") + ":v1"}).exit_code, 0);
  Subprocess gc;
  ASSERT_TRUE(StartImgstore(gc, root, "gc", dir.Sub("gc.err")));
  ListWhileRunning(root, gc, "gc");
  std::optional<int> st = gc.Wait(milliseconds(60000));
  ASSERT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << ReadFile(dir.Sub("gc.err"));
  CliResult list = RunImgstore(root, {"list", "-q", "--no-trunc"});
  EXPECT_NE(list.out.find(kept.id.ToString()), std::string::npos) << list.Describe();
}

}  // namespace
}  // namespace imgstore::testing
