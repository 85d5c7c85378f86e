// `imgstore gc`, `df` and `check` run as whole processes on a store filled through the API:
// output, --dry-run, --format json, exit statuses, and check's one line per problem.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/populate.h"
#include "common/cli_runner.h"
#include "common/temp_dir.h"

namespace imgstore::testing {
namespace {

class MaintenanceCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.Sub("root");
    auto st = store::Store::Open(root_);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    keep_ = AddImageForTest(**st, 1, "keep:1");
    gone_ = AddImageForTest(**st, 2, "gone:1");
    ASSERT_TRUE((*st)->Remove("gone:1").ok());
  }

  std::string BlobPath(const Digest& d) { return root_ + "/blobs/sha256/" + std::string(d.hex()); }
  bool Exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

  TempDir tmp_;
  std::string root_;
  TestImage keep_;
  TestImage gone_;
};

TEST_F(MaintenanceCliTest, GcPrintsRemovedDigestsAndIsQuietWhenNothingIsLeft) {
  CliResult dry = RunImgstore(root_, {"gc", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.Describe();
  EXPECT_NE(dry.out.find(gone_.id.ToString()), std::string::npos) << dry.out;
  EXPECT_NE(dry.err.find("would remove 4 blobs"), std::string::npos) << dry.err;
  EXPECT_TRUE(Exists(BlobPath(gone_.id))) << "--dry-run removed a blob";

  CliResult gc = RunImgstore(root_, {"gc"});
  ASSERT_EQ(gc.exit_code, 0) << gc.Describe();
  EXPECT_EQ(gc.out, dry.out);
  EXPECT_TRUE(gc.err.empty()) << gc.err;
  EXPECT_FALSE(Exists(BlobPath(gone_.id)));
  EXPECT_TRUE(Exists(BlobPath(keep_.id)));

  CliResult again = RunImgstore(root_, {"gc"});
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  EXPECT_TRUE(again.out.empty()) << again.out;

  CliResult check = RunImgstore(root_, {"check", "--verify-content"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe();
  EXPECT_TRUE(check.out.empty()) << check.out;
}

TEST_F(MaintenanceCliTest, GcJsonReport) {
  CliResult r = RunImgstore(root_, {"gc", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["blobs_removed"].size(), 4u);
  EXPECT_EQ(j["manifests_removed"], 0);  // rmi dropped the row; gc removes its blob
  EXPECT_EQ(j["layers_removed"], 2);
  EXPECT_EQ(j["dry_run"], false);
}

TEST_F(MaintenanceCliTest, DfShowsTableAndJson) {
  CliResult table = RunImgstore(root_, {"df"});
  ASSERT_EQ(table.exit_code, 0) << table.Describe();
  EXPECT_EQ(table.out.rfind("TYPE", 0), 0u) << table.out;
  EXPECT_NE(table.out.find("RECLAIMABLE"), std::string::npos);
  EXPECT_NE(table.out.find("Blobs"), std::string::npos);

  CliResult json = RunImgstore(root_, {"df", "--format", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.Describe();
  auto j = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << json.out;
  EXPECT_EQ(j["images"], 1);
  EXPECT_EQ(j["blobs"], 8);
  EXPECT_EQ(j["reclaimable_blobs"], 4);

  ASSERT_EQ(RunImgstore(root_, {"gc"}).exit_code, 0);
  json = RunImgstore(root_, {"df", "--format", "json"});
  j = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << json.out;
  EXPECT_EQ(j["blobs"], 4);
  EXPECT_EQ(j["reclaimable_blobs"], 0);
  EXPECT_EQ(j["reclaimable_bytes"], 0);
}

TEST_F(MaintenanceCliTest, CheckPrintsOneLinePerProblemAndExitsOneUntilRepaired) {
  // An orphan file and a writable blob: both repairable.
  const std::string orphan = BlobPath(Digest::Of("orphan"));
  { std::ofstream(orphan) << "orphan"; }
  ASSERT_EQ(::chmod(BlobPath(keep_.id).c_str(), 0644), 0);

  CliResult r = RunImgstore(root_, {"check"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.out.find("orphan-file: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("writable-blob: "), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  EXPECT_EQ(r.err.rfind("imgstore: error: check found 2 problems", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  CliResult json = RunImgstore(root_, {"check", "--format", "json"});
  EXPECT_EQ(json.exit_code, 1);
  auto j = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << json.out;
  EXPECT_EQ(j["clean"], false);
  EXPECT_EQ(j["problems"].size(), 2u);

  CliResult fixed = RunImgstore(root_, {"check", "--repair"});
  EXPECT_EQ(fixed.exit_code, 0) << fixed.Describe();
  EXPECT_NE(fixed.out.find("(repaired)"), std::string::npos) << fixed.out;
  EXPECT_FALSE(Exists(orphan));

  CliResult clean = RunImgstore(root_, {"check"});
  EXPECT_EQ(clean.exit_code, 0) << clean.Describe();
  EXPECT_TRUE(clean.out.empty());
}

TEST_F(MaintenanceCliTest, CheckRepairExitsOneWhenSomethingCannotBeRepaired) {
  // A recorded blob whose file is gone, still used by an image: only a new pull can restore it.
  ASSERT_EQ(::unlink(BlobPath(Digest::Of(keep_.layers[0])).c_str()), 0);
  CliResult r = RunImgstore(root_, {"check", "--repair"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.out.find("missing-file: "), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("0 repaired, 1 left"), std::string::npos) << r.err;
}

TEST_F(MaintenanceCliTest, UsageErrors) {
  CliResult r = RunImgstore(root_, {"df", "--format", "yaml"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  r = RunImgstore(root_, {"gc", "--bogus"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
}

}  // namespace
}  // namespace imgstore::testing
