// The stress test's checks fed synthetic logs: each invariant's checker fires on a log that
// breaks it, and accepts an expected failure only when another operation accounts for it.
#include "stress/op_log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace imgstore::testing::stress {
namespace {

constexpr int64_t kMs = 1'000'000;
const std::string kId = "sha256:" + std::string(64, 'a');
const std::string kOtherId = "sha256:" + std::string(64, 'b');

int next_seq = 0;

OpRecord Op(const std::string& kind, int64_t start_ms, int64_t end_ms, int exit_code = 0,
            const std::string& err = "") {
  OpRecord r;
  r.worker = 1;
  r.seq = next_seq++;
  r.kind = kind;
  r.args = {kind};
  r.start_ns = start_ms * kMs;
  r.end_ns = end_ms * kMs;
  r.exit_code = exit_code;
  r.err = err;
  return r;
}

Outcome Judge(const OpRecord& op, std::vector<OpRecord> others, std::string* why) {
  others.push_back(op);
  return Classify(op, others, {.deadline_ns = 60'000 * kMs}, why);
}

// An inspect of kId, listed at 100 ms, that found it gone.
OpRecord InspectNotKnown() {
  OpRecord r = Op("inspect", 200, 210, 1, "imgstore: error: image not known: " + kId + "\n");
  r.target_id = kId;
  r.seen_ns = 100 * kMs;
  return r;
}

OpRecord RmiDeleting(const std::string& id, int64_t start_ms, int64_t end_ms) {
  OpRecord r = Op("rmi", start_ms, end_ms);
  r.deleted_ids = {id};
  return r;
}

TEST(OpLogTest, ACleanSuccessIsASuccess) {
  std::string why;
  EXPECT_EQ(Judge(Op("list", 0, 5, 0, ""), {}, &why), Outcome::kSuccess) << why;
  // Progress lines and lock-wait notices are not errors.
  EXPECT_EQ(
      Judge(Op("pull", 0, 5, 0, "imgstore: waiting for lock layer-x held by pid 3\n"), {}, &why),
      Outcome::kSuccess)
      << why;
}

TEST(OpLogTest, ABusyErrorIsAViolationEvenWhenTheOperationSucceeded) {
  std::string why;
  EXPECT_EQ(Judge(Op("tag", 0, 5, 1,
                     "imgstore: error: database /r/meta.db: step: database is "
                     "locked\n"),
                  {}, &why),
            Outcome::kViolation);
  EXPECT_NE(why.find("busy"), std::string::npos) << why;
  EXPECT_EQ(Judge(Op("list", 0, 5, 0, "warning: SQLITE_BUSY\n"), {}, &why), Outcome::kViolation);
  EXPECT_EQ(Judge(Op("rmi", 0, 5, 1,
                     "imgstore: error: timed out after 5.0s waiting for the database /r/meta.db "
                     "(another process holds its write lock): rmi\n"),
                  {}, &why),
            Outcome::kViolation);
  EXPECT_NE(why.find("busy"), std::string::npos) << why;
}

TEST(OpLogTest, AnUnexpectedErrorIsAViolation) {
  std::string why;
  EXPECT_EQ(Judge(Op("pull", 0, 5, 1, "imgstore: error: pull: connection refused\n"), {}, &why),
            Outcome::kViolation);
  EXPECT_NE(why.find("unexpected error: imgstore: error: pull: connection refused"),
            std::string::npos)
      << why;
  EXPECT_EQ(Judge(Op("gc", 0, 5, 0, "imgstore: error: gc: cannot remove x\n"), {}, &why),
            Outcome::kViolation);
  // A failure that says nothing is no clean failure either.
  EXPECT_EQ(Judge(Op("gc", 0, 5, 1, ""), {}, &why), Outcome::kViolation);
}

TEST(OpLogTest, MoreThanOneErrorLineIsAViolation) {
  OpRecord r = InspectNotKnown();
  r.err += "imgstore: error: image not known: " + kId + "\n";
  std::string why;
  EXPECT_EQ(Judge(r, {RmiDeleting(kId, 150, 160)}, &why), Outcome::kViolation);
  EXPECT_NE(why.find("2 error lines"), std::string::npos) << why;
}

TEST(OpLogTest, AnOperationOverItsDeadlineIsAViolation) {
  std::string why;
  EXPECT_EQ(Judge(Op("list", 0, 60'001, 0), {}, &why), Outcome::kViolation);
  EXPECT_NE(why.find("deadline"), std::string::npos) << why;
  EXPECT_EQ(Judge(Op("list", 0, 59'999, 0), {}, &why), Outcome::kSuccess) << why;
  OpRecord running = Op("gc", 0, 0);
  EXPECT_EQ(Judge(running, {}, &why), Outcome::kViolation);
  EXPECT_EQ(why, "never finished");
}

TEST(OpLogTest, CrashesTimeoutsAndUsageErrorsAreViolations) {
  std::string why;
  EXPECT_EQ(Judge(Op("pull", 0, 5, -9), {}, &why), Outcome::kViolation);
  EXPECT_NE(why.find("signal 9"), std::string::npos) << why;
  EXPECT_EQ(Judge(Op("pull", 0, 5, -1000), {}, &why), Outcome::kViolation);
  EXPECT_EQ(Judge(Op("pull", 0, 5, 2, "imgstore: error: unknown option\n"), {}, &why),
            Outcome::kViolation);
  EXPECT_EQ(Judge(Op("pull", 0, 5, 134, "imgstore: error: x\n"), {}, &why), Outcome::kViolation);
}

TEST(OpLogTest, ImageNotKnownIsExpectedOnlyAfterAnRmiOfItInTheWindow) {
  std::string why;
  OpRecord op = InspectNotKnown();
  EXPECT_EQ(Judge(op, {}, &why), Outcome::kViolation);
  EXPECT_NE(why.find("no other operation removed it"), std::string::npos) << why;
  // Removed between the list and the inspect, or while either ran.
  EXPECT_EQ(Judge(op, {RmiDeleting(kId, 150, 160)}, &why), Outcome::kExpectedFailure) << why;
  EXPECT_EQ(Judge(op, {RmiDeleting(kId, 90, 101)}, &why), Outcome::kExpectedFailure) << why;
  EXPECT_EQ(Judge(op, {RmiDeleting(kId, 205, 230)}, &why), Outcome::kExpectedFailure) << why;
  // Not: an rmi that ended before the list saw the image, one that began after the inspect
  // ended, one of another image, one that failed.
  EXPECT_EQ(Judge(op, {RmiDeleting(kId, 10, 99)}, &why), Outcome::kViolation);
  EXPECT_EQ(Judge(op, {RmiDeleting(kId, 211, 220)}, &why), Outcome::kViolation);
  EXPECT_EQ(Judge(op, {RmiDeleting(kOtherId, 150, 160)}, &why), Outcome::kViolation);
  OpRecord failed = RmiDeleting(kId, 150, 160);
  failed.exit_code = 1;
  failed.err = "imgstore: error: image not known: x\n";
  EXPECT_EQ(Judge(op, {failed}, &why), Outcome::kViolation);
}

TEST(OpLogTest, AMissingNameIsExpectedOnlyWhenAnotherOperationMovedIt) {
  OpRecord untag = Op("untag", 200, 210, 1,
                      "imgstore: error: untag: image " + kId + " has no name stress.test/a:1\n");
  untag.target_id = kId;
  untag.target_name = "stress.test/a:1";
  untag.seen_ns = 100 * kMs;
  std::string why;
  EXPECT_EQ(Judge(untag, {}, &why), Outcome::kViolation);
  OpRecord tag = Op("tag", 120, 130);
  tag.changed_names = {"stress.test/a:1"};
  EXPECT_EQ(Judge(untag, {tag}, &why), Outcome::kExpectedFailure) << why;
  tag.changed_names = {"stress.test/b:1"};
  EXPECT_EQ(Judge(untag, {tag}, &why), Outcome::kViolation);
  // rmi by a name that an untag removed meanwhile.
  OpRecord rmi = Op("rmi", 200, 210, 1, "imgstore: error: image not known: stress.test/a:1\n");
  rmi.target_name = "stress.test/a:1";
  rmi.seen_ns = 100 * kMs;
  OpRecord other = Op("untag", 150, 160);
  other.changed_names = {"stress.test/a:1"};
  EXPECT_EQ(Judge(rmi, {other}, &why), Outcome::kExpectedFailure) << why;
  EXPECT_EQ(Judge(rmi, {}, &why), Outcome::kViolation);
}

TEST(OpLogTest, AMissingMountIsExpectedOnlyAfterAnotherUmountOfIt) {
  OpRecord umount = Op("umount", 200, 210, 1, "imgstore: error: mount not known: w1-m3\n");
  umount.target_mount = "w1-m3";
  umount.seen_ns = 100 * kMs;
  std::string why;
  EXPECT_EQ(Judge(umount, {}, &why), Outcome::kViolation);
  OpRecord other = Op("umount", 150, 205);
  other.worker = 2;
  other.removed_mounts = {"w1-m3"};
  EXPECT_EQ(Judge(umount, {other}, &why), Outcome::kExpectedFailure) << why;
  other.removed_mounts = {"w1-m4"};
  EXPECT_EQ(Judge(umount, {other}, &why), Outcome::kViolation);
  // A write into a mount: the same rule.
  OpRecord write = Op("write", 200, 201, 1, "cannot write /r/mounts/w1-m3/merged/f");
  write.target_mount = "w1-m3";
  write.seen_ns = 100 * kMs;
  EXPECT_EQ(Judge(write, {}, &why), Outcome::kViolation);
  EXPECT_NE(why.find("cannot write into a mount nobody removed"), std::string::npos) << why;
  other.removed_mounts = {"w1-m3"};
  EXPECT_EQ(Judge(write, {other}, &why), Outcome::kExpectedFailure) << why;
  // A commit of a mount nobody removed must not need its base image's record.
  OpRecord commit = Op("commit", 200, 210, 1,
                       "imgstore: error: commit: base image: image not known: " + kId + "\n");
  commit.target_mount = "w1-m3";
  commit.target_id = kId;
  commit.seen_ns = 100 * kMs;
  EXPECT_EQ(Judge(commit, {RmiDeleting(kId, 150, 160)}, &why), Outcome::kViolation);
  EXPECT_NE(why.find("base image"), std::string::npos) << why;
}

TEST(OpLogTest, AListedImageWithoutItsBlobsIsAViolationUnlessRemoved) {
  OpRecord blobs = Op("blobs", 200, 201, 1, "blob sha256:cc of image " + kId + " is missing");
  blobs.target_id = kId;
  blobs.seen_ns = 100 * kMs;
  std::string why;
  EXPECT_EQ(Judge(blobs, {}, &why), Outcome::kViolation);
  EXPECT_NE(why.find("lacks a blob"), std::string::npos) << why;
  EXPECT_EQ(Judge(blobs, {RmiDeleting(kId, 150, 160)}, &why), Outcome::kExpectedFailure) << why;
  EXPECT_EQ(Judge(Op("snapshot", 0, 1, 1, "list entry without id"), {}, &why), Outcome::kViolation);
}

TEST(OpLogTest, LogLinesRoundTripAndRunningOperationsAreFound) {
  OpRecord a = InspectNotKnown();
  a.deleted_ids = {kId};
  a.changed_names = {"x:1"};
  a.removed_mounts = {"m"};
  a.err = "line one\nline \"two\"\n";
  OpRecord b = Op("gc", 300, 0);
  std::string text = StartJsonLine(a) + "\n" + ToJsonLine(a) + "\n" + StartJsonLine(b) + "\n" +
                     "{\"worker\": 1, \"seq\"";  // a line cut short
  WorkerLog log = ParseLog(text);
  ASSERT_EQ(log.finished.size(), 1u);
  ASSERT_EQ(log.running.size(), 1u);
  EXPECT_EQ(ToJsonLine(log.finished[0]), ToJsonLine(a));
  EXPECT_EQ(log.running[0].kind, "gc");
  EXPECT_EQ(log.running[0].end_ns, 0);
  EXPECT_EQ(log.running[0].start_ns, 300 * kMs);
}

TEST(OpLogTest, AnalyzeCountsEveryOutcomeAndTheTableShowsThem) {
  std::vector<OpRecord> all = {Op("list", 0, 10), Op("list", 0, 30), InspectNotKnown(),
                               RmiDeleting(kId, 150, 160),
                               Op("gc", 0, 5, 1, "imgstore: error: gc: boom\n")};
  Analysis a = Analyze(all, {});
  ASSERT_EQ(a.violations.size(), 1u);
  EXPECT_EQ(a.violations[0].op.kind, "gc");
  EXPECT_EQ(a.by_kind["list"].count, 2);
  EXPECT_EQ(a.by_kind["list"].success, 2);
  EXPECT_EQ(a.by_kind["inspect"].expected, 1);
  EXPECT_EQ(a.by_kind["gc"].violations, 1);
  std::string table = SummaryTable(a);
  EXPECT_NE(table.find("list"), std::string::npos) << table;
  // p50 of {10, 30} ms is one of them; max is 30.
  EXPECT_NE(table.find("30.0"), std::string::npos) << table;
}

}  // namespace
}  // namespace imgstore::testing::stress
