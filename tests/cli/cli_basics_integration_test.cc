// The command-line conventions every command shares: help, usage errors, exit statuses.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "common/cli_runner.h"
#include "common/temp_dir.h"

namespace imgstore::testing {
namespace {

TEST(CliBasicsTest, NoArgumentsPrintsHelpAndTouchesNothing) {
  TempDir dir;
  std::string root = dir.path() + "/store";
  CliResult r = RunImgstore("", {}, {"IMGSTORE_ROOT=" + root});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.out.find("Subcommands:"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_NE(::access(root.c_str(), F_OK), 0) << "the store was created";
}

TEST(CliBasicsTest, UnknownCommandIsAUsageError) {
  TempDir dir;
  CliResult r = RunImgstore(dir.path(), {"frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(r.err.rfind("imgstore: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(CliBasicsTest, BadLockTimeoutIsAUsageError) {
  TempDir dir;
  CliResult r = RunImgstore(dir.path(), {"--lock-timeout", "soon", "locks"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_NE(r.err.find("--lock-timeout"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace imgstore::testing
