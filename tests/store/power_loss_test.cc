// Power loss at every point of a sequence of store operations that commit (docs/power-loss.md):
// the store's files go through FaultEnv and meta.db through FaultVfs, both counted in one
// sequence. For each crash point N the sequence runs on a fresh store until operation N, from
// which the machine is "stopped" (every write and sync fails); the store is closed, what was not
// durable is dropped (files and database), and the store is reopened normally. It must open
// without help, check clean, show every acknowledged operation and no half of the one that was
// cut. A run with syncs that lie shows that these checks do catch a lost commit. First, FaultVfs
// on its own.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "common/fault_env.h"
#include "common/fault_vfs.h"
#include "common/fs_tree.h"
#include "common/layer_image.h"
#include "fake_transport.h"
#include "store/store.h"
#include "store_test_util.h"

namespace imgstore::store {
namespace {

using imgstore::testing::FaultEnv;
using imgstore::testing::FaultVfs;
using imgstore::testing::FsOp;
using imgstore::testing::ImageOfLayers;
using imgstore::testing::LayerCompression;
using imgstore::testing::SmallRootfsLayers;
using testing::ImageOf;
using testing::TempDir;
using testing::TestImage;

// --- FaultVfs on its own -----------------------------------------------------------------------

// A raw SQLite connection, closed on destruction.
class RawDb {
 public:
  RawDb(const std::string& path, const std::string& vfs) {
    rc_ = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                          vfs.empty() ? nullptr : vfs.c_str());
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  // SQLite's result code of the statements, and its message on error.
  int Exec(const std::string& sql, std::string* error = nullptr) {
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK && error != nullptr) *error = sqlite3_errmsg(db_);
    return rc;
  }
  int64_t Count(const std::string& table) {
    sqlite3_stmt* st = nullptr;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db_, ("SELECT count(*) FROM " + table).c_str(), -1, &st, nullptr) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
  }

 private:
  sqlite3* db_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

TEST(FaultVfsTest, SyncedCommitsSurviveAndUnsyncedOnesAreLost) {
  TempDir dir;
  const std::string path = dir.Sub("t.db");
  FaultVfs vfs;
  {
    RawDb db(path, vfs.name());
    ASSERT_TRUE(db.ok());
    ASSERT_EQ(db.Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t(x); "
                      "INSERT INTO t VALUES(1)"),
              SQLITE_OK);
  }
  {
    RawDb db(path, vfs.name());
    ASSERT_TRUE(db.ok());
    ASSERT_EQ(db.Exec("PRAGMA synchronous=FULL; INSERT INTO t VALUES(2)"), SQLITE_OK);
    ASSERT_EQ(db.Exec("PRAGMA synchronous=OFF; INSERT INTO t VALUES(3); INSERT INTO t VALUES(4)"),
              SQLITE_OK);
  }
  EXPECT_GT(vfs.writes(), 0u);
  ASSERT_TRUE(vfs.DropUnsyncedData().ok());
  EXPECT_FALSE(imgstore::testing::Exists(path + "-shm"));
  RawDb db(path, "");
  ASSERT_TRUE(db.ok());
  // The database was created, and its first commit made durable (the WAL's directory sync made
  // both names durable); the commits without a sync are gone whole.
  EXPECT_EQ(db.Count("t"), 2);
  EXPECT_EQ(db.Exec("PRAGMA integrity_check"), SQLITE_OK);
}

TEST(FaultVfsTest, ADatabaseNeverSyncedVanishes) {
  TempDir dir;
  const std::string path = dir.Sub("t.db");
  FaultVfs vfs;
  {
    RawDb db(path, vfs.name());
    ASSERT_TRUE(db.ok());
    ASSERT_EQ(db.Exec("PRAGMA synchronous=OFF; PRAGMA journal_mode=WAL; CREATE TABLE t(x)"),
              SQLITE_OK);
  }
  ASSERT_TRUE(imgstore::testing::Exists(path));
  ASSERT_TRUE(vfs.DropUnsyncedData().ok());
  EXPECT_FALSE(imgstore::testing::Exists(path));
  EXPECT_FALSE(imgstore::testing::Exists(path + "-wal"));
}

TEST(FaultVfsTest, FailedSyncIsAnIoErrorAndTheCommitDoesNotHappen) {
  TempDir dir;
  const std::string path = dir.Sub("t.db");
  FaultEnv counter;
  FaultVfs vfs({&counter});
  RawDb db(path, vfs.name());
  ASSERT_TRUE(db.ok());
  ASSERT_EQ(db.Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t(x)"),
            SQLITE_OK);
  const uint64_t syncs = counter.count(FsOp::kSync);
  EXPECT_GT(syncs, 0u);
  counter.FailNth(FsOp::kSync, syncs + 1);
  std::string error;
  EXPECT_EQ(db.Exec("INSERT INTO t VALUES(1)", &error) & 0xff, SQLITE_IOERR);
  EXPECT_NE(error.find("I/O error"), std::string::npos) << error;
  EXPECT_EQ(counter.faults_fired(), 1u);
  EXPECT_NE(counter.last_fault().find("sqlite sync " + path + "-wal"), std::string::npos)
      << counter.last_fault();
  EXPECT_EQ(db.Count("t"), 0);
  ASSERT_EQ(db.Exec("INSERT INTO t VALUES(2)"), SQLITE_OK);
  EXPECT_EQ(db.Count("t"), 1);
}

TEST(FaultVfsTest, StoppedMachineWritesNothing) {
  TempDir dir;
  const std::string path = dir.Sub("t.db");
  FaultEnv counter;
  FaultVfs vfs({&counter});
  {
    RawDb db(path, vfs.name());
    ASSERT_EQ(db.Exec("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1)"),
              SQLITE_OK);
    const uint64_t writes = vfs.writes();
    counter.FailFrom(FsOp::kAny, counter.count(FsOp::kAny) + 1, ENOSPC);
    std::string error;
    EXPECT_EQ(db.Exec("INSERT INTO t VALUES(2)", &error), SQLITE_FULL) << error;
    EXPECT_EQ(vfs.writes(), writes);
  }
  EXPECT_GT(counter.faults_fired(), 0u);
  counter.ClearFaults();
  RawDb db(path, "");
  EXPECT_EQ(db.Count("t"), 1);
}

// --- The store under power loss ------------------------------------------------------------------

const TestImage& ImageA() {
  static const TestImage image = ImageOfLayers(SmallRootfsLayers(), LayerCompression::kGzip, "a");
  return image;
}
const TestImage& ImageB() {
  static const TestImage image = ImageOf(/*seed=*/7, /*layers=*/2);
  return image;
}

// What a pull leaves: the blobs, then the record.
Status AddWithBlobs(Store& store, const TestImage& image, const std::string& name) {
  for (const std::string& layer : image.layers) {
    IMGSTORE_RETURN_IF_ERROR(store.IngestBlob(Digest::Of(layer), {}, layer).status());
  }
  IMGSTORE_RETURN_IF_ERROR(store.IngestBlob(Digest::Of(image.config), {}, image.config).status());
  const std::vector<std::string> names{name};
  return store.AddImage(image.manifest, image.manifest_media_type, image.config, names).status();
}

struct Step {
  const char* name;
  std::function<Status(Store& store, const std::string& work)> run;
};

// Indexes of the steps whose effect is not in the image list (checked on their own).
constexpr size_t kGcStep = 6;
constexpr size_t kUnpackStep = 7;

const std::vector<Step>& Steps() {
  static const std::vector<Step> steps{
      {"add a:1", [](Store& s, const std::string&) { return AddWithBlobs(s, ImageA(), "a:1"); }},
      {"pull b:1",
       [](Store& s, const std::string&) {
         testing::FakeSource source;
         source.AddImage(ImageB());
         PullOptions options;
         options.names = {"b:1"};
         options.max_parallel = 1;  // the same order of operations in every run
         return s.Pull(source, options).status();
       }},
      {"unpack b:1",
       [](Store& s, const std::string& work) {
         return s.Unpack("b:1", work + "/rootfs-b").status();
       }},
      {"tag a:2", [](Store& s, const std::string&) { return s.Tag("a:1", "a:2"); }},
      {"untag a:1",
       [](Store& s, const std::string&) {
         const std::vector<std::string> names{"a:1"};
         return s.Untag("a:2", names);
       }},
      {"rmi b:1", [](Store& s, const std::string&) { return s.Remove("b:1").status(); }},
      {"gc", [](Store& s, const std::string&) { return s.GarbageCollect().status(); }},
      {"unpack a:2",
       [](Store& s, const std::string& work) {
         return s.Unpack("a:2", work + "/rootfs").status();
       }},
      {"commit c:1",
       [](Store& s, const std::string& work) {
         // Plain writes: the user's directory, not the store's files.
         imgstore::testing::WriteFile(work + "/rootfs/etc/motd", "changed\n");
         imgstore::testing::WriteFile(work + "/rootfs/new-file", "new");
         CommitOptions options;
         options.names = {"c:1"};
         return s.Commit(work + "/rootfs", "a:2", options).status();
       }},
  };
  return steps;
}

// The images as a user sees them, one sorted line per image: "a", "b" or "new" (the committed
// image, whose id holds the time of the commit), then its names.
Result<std::vector<std::string>> ImageList(Store& store) {
  Result<std::vector<ImageSummary>> images = store.ListImages();
  if (!images.ok()) return images.status();
  std::vector<std::string> out;
  for (const ImageSummary& image : *images) {
    std::string line = image.id == ImageA().id ? "a" : image.id == ImageB().id ? "b" : "new";
    for (const std::string& name : image.names) line += " " + name;
    out.push_back(line);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string Join(const std::vector<std::string>& lines, const std::string& sep) {
  std::string out;
  for (const std::string& l : lines) out += (out.empty() ? "" : sep) + l;
  return out;
}

struct RunResult {
  size_t acked = 0;                     // steps that returned OK, in order
  std::string error;                    // of the first step that failed
  std::vector<uint64_t> ops_after;      // the operation count when each acked step returned
  std::vector<std::string> image_list;  // clean run: ImageList before the steps and after each
  uint64_t ops = 0;                     // operations counted, closing the store included
};

// Runs the steps, on a store opened in root with every file and database operation counted by
// fenv, until the first that fails. From operation crash_at on (0: never) every operation fails:
// the machine stopped. Closes the store before returning.
void RunSteps(const std::string& root, const std::string& work, FaultEnv& fenv, FaultVfs& vfs,
              uint64_t crash_at, bool record_images, RunResult* out) {
  ASSERT_EQ(::mkdir(work.c_str(), 0755), 0);
  StoreOptions options;
  options.env = &fenv;
  options.sqlite_vfs = vfs.name();
  std::unique_ptr<Store> store = testing::OpenStore(root, options);
  ASSERT_NE(store, nullptr);
  // The fresh store is the durable starting point.
  fenv.ForgetUnsyncedData();
  vfs.ForgetUnsyncedData();
  fenv.ResetCounts();
  if (crash_at != 0) fenv.FailFrom(FsOp::kAny, crash_at);
  if (record_images) {
    Result<std::vector<std::string>> list = ImageList(*store);
    ASSERT_TRUE(list.ok());
    out->image_list.push_back(Join(*list, ", "));
  }
  for (const Step& step : Steps()) {
    Status s = step.run(*store, work);
    if (!s.ok()) {
      out->error = std::string(step.name) + ": " + s.ToString();
      break;
    }
    ++out->acked;
    out->ops_after.push_back(fenv.count(FsOp::kAny));
    if (record_images) {
      Result<std::vector<std::string>> list = ImageList(*store);
      ASSERT_TRUE(list.ok());
      out->image_list.push_back(Join(*list, ", "));
    }
  }
  store.reset();
  out->ops = fenv.count(FsOp::kAny);
}

// What the clean run showed, for judging the state after a crash.
struct Expected {
  std::vector<std::string> image_list;    // before the steps and after each
  std::vector<Digest> gc_removed;         // the blobs of b, which the gc step removes
  std::vector<Digest> gc_removed_layers;  // and b's layers (chain ids), unpacked before
};

// Reopens the store as a person would after the power came back and lists what is wrong: an
// empty list is a pass. `acked` steps returned OK before the crash (all: all_acked).
std::vector<std::string> Judge(const std::string& root, size_t acked, const Expected& expected) {
  std::vector<std::string> problems;
  Result<std::unique_ptr<Store>> opened = Store::Open(root);
  if (!opened.ok()) return {"open: " + opened.status().ToString()};
  Store& store = **opened;

  Result<CheckReport> report = store.Check(/*verify_content=*/true);
  if (!report.ok()) return {"check: " + report.status().ToString()};
  // Strict: Store::Open has already recovered what a crash leaves (dead ingests and staging
  // directories, incomplete layers, gc's intent log), so no kind of problem is excused here.
  for (const CheckProblem& p : report->problems) {
    problems.push_back("check: " + std::string(ProblemKindName(p.kind)) + ": " + p.message);
  }
  Result<std::vector<std::string>> ingest = Env::Default()->ListDir(IngestDir(root));
  if (!ingest.ok() || !ingest->empty()) problems.push_back("ingest/ is not empty after open");

  // Every acknowledged step is there; the one cut is there whole or not at all.
  Result<std::vector<std::string>> list = ImageList(store);
  if (!list.ok()) return {"list: " + list.status().ToString()};
  const std::string got = Join(*list, ", ");
  const size_t steps = Steps().size();
  const bool ok =
      got == expected.image_list[acked] || (acked < steps && got == expected.image_list[acked + 1]);
  if (!ok) {
    problems.push_back("images: [" + got + "], want [" + expected.image_list[acked] + "]" +
                       (acked < steps ? " or [" + expected.image_list[acked + 1] + "]" : ""));
  }
  if (acked > kGcStep) {
    for (const Digest& d : expected.gc_removed) {
      Result<bool> has = store.HasBlob(d);
      if (!has.ok() || *has) {
        problems.push_back("gc acknowledged, but blob " + d.ToString() + " is back");
      }
    }
    for (const Digest& chain : expected.gc_removed_layers) {
      if (imgstore::testing::Exists(LayerDir(root, chain))) {
        problems.push_back("gc acknowledged, but layer " + chain.ToString() + " is back");
      }
    }
  }
  if (acked > kUnpackStep) {
    Result<ImageDetails> a = store.InspectImage("a:2");
    if (!a.ok()) {
      problems.push_back("inspect a:2: " + a.status().ToString());
    } else {
      for (const LayerRecord& layer : a->layers) {
        const int64_t complete = testing::CountRows(
            store, "SELECT count(*) FROM layers WHERE unpack_state = 'complete' AND chain_id = '" +
                       layer.chain_id.ToString() + "'");
        if (complete != 1 || !imgstore::testing::Exists(LayerDir(root, layer.chain_id))) {
          problems.push_back("unpack acknowledged, but layer " + layer.chain_id.ToString() +
                             " is not in the layer cache");
        }
      }
    }
  }
  // Every image listed is whole (Check verified every blob's content already).
  Result<std::vector<ImageSummary>> images = store.ListImages();
  for (const ImageSummary& image : images.ok() ? *images : std::vector<ImageSummary>{}) {
    Result<ImageDetails> d = store.InspectImage(image.id.ToString());
    if (!d.ok())
      problems.push_back("inspect " + image.id.ToString() + ": " + d.status().ToString());
  }
  // And the store takes new work.
  const std::string more = "written after the power came back";
  Result<IngestResult> ingested = store.IngestBlob(Digest::Of(more), {}, more);
  if (!ingested.ok()) problems.push_back("ingest after recovery: " + ingested.status().ToString());
  return problems;
}

// The clean run: the operation count, where each step ended, and the image lists to expect.
void CleanRun(RunResult* clean, Expected* expected) {
  TempDir dir;
  FaultEnv fenv;
  FaultVfs vfs({&fenv});
  ASSERT_NO_FATAL_FAILURE(RunSteps(dir.Sub("root"), dir.Sub("work"), fenv, vfs, /*crash_at=*/0,
                                   /*record_images=*/true, clean));
  ASSERT_EQ(clean->acked, Steps().size()) << clean->error;
  expected->image_list = clean->image_list;
  for (const std::string& layer : ImageB().layers)
    expected->gc_removed.push_back(Digest::Of(layer));
  expected->gc_removed.push_back(ImageB().id);
  expected->gc_removed.push_back(ImageB().manifest_digest);
  expected->gc_removed_layers = ChainIds(ImageB().diff_ids);
  // The scenario does what the checks assume.
  ASSERT_STREQ(Steps()[kGcStep].name, "gc");
  ASSERT_STREQ(Steps()[kUnpackStep].name, "unpack a:2");
  ASSERT_EQ(expected->image_list.front(), "");
  ASSERT_NE(expected->image_list[kGcStep], expected->image_list[kGcStep - 1]);  // rmi b
  ASSERT_EQ(expected->image_list[kGcStep + 1], expected->image_list[kGcStep]);
  ASSERT_EQ(expected->image_list.back().substr(0, 4), "a do") << expected->image_list.back();
}

// Crash points: every operation of the run, or an even spread of kMaxPoints when the run has
// more (every one again with IMGSTORE_POWER_LOSS_ALL=1), plus the last operation of each step and
// the first after it (a loss just after an acknowledgment), and a loss after the store was closed.
std::vector<uint64_t> CrashPoints(const RunResult& clean) {
  constexpr uint64_t kMaxPoints = 500;
  const char* all = std::getenv("IMGSTORE_POWER_LOSS_ALL");
  const uint64_t stride =
      all != nullptr && std::string(all) == "1" ? 1 : (clean.ops + kMaxPoints - 1) / kMaxPoints;
  std::set<uint64_t> points;
  for (uint64_t n = 1; n <= clean.ops; n += stride) points.insert(n);
  for (uint64_t end : clean.ops_after) {
    if (end > 0) points.insert(end);
    points.insert(end + 1);
  }
  points.insert(clean.ops);
  points.insert(clean.ops + 1);
  return {points.begin(), points.end()};
}

// One crash run and its judgment: the problems found, prefixed with where the crash was.
std::vector<std::string> CrashAt(uint64_t n, const Expected& expected, bool lying_syncs,
                                 bool* crashed) {
  TempDir dir;
  FaultEnv fenv;
  FaultVfs vfs({&fenv, lying_syncs});
  RunResult run;
  RunSteps(dir.Sub("root"), dir.Sub("work"), fenv, vfs, n, /*record_images=*/false, &run);
  if (::testing::Test::HasFatalFailure()) return {"the run could not start"};
  *crashed = fenv.faults_fired() > 0;
  fenv.ClearFaults();
  Status env_loss = fenv.DropUnsyncedData();
  Status vfs_loss = vfs.DropUnsyncedData();
  if (!env_loss.ok() || !vfs_loss.ok()) {
    return {"simulation failed: " + env_loss.ToString() + "; " + vfs_loss.ToString()};
  }
  return Judge(dir.Sub("root"), run.acked, expected);
}

TEST(StorePowerLossTest, EveryCrashPointLeavesAConsistentStoreWithEveryAcknowledgedCommit) {
  imgstore::testing::PreferMemoryForTempDirs();
  RunResult clean;
  Expected expected;
  ASSERT_NO_FATAL_FAILURE(CleanRun(&clean, &expected));
  const std::vector<uint64_t> points = CrashPoints(clean);
  ASSERT_GE(points.size(), std::min<uint64_t>(100, clean.ops + 1));
  int crashed_runs = 0;
  for (uint64_t n : points) {
    SCOPED_TRACE("power loss at operation #" + std::to_string(n) + " of " +
                 std::to_string(clean.ops));
    bool crashed = false;
    std::vector<std::string> problems = CrashAt(n, expected, /*lying_syncs=*/false, &crashed);
    crashed_runs += crashed ? 1 : 0;
    EXPECT_TRUE(problems.empty()) << Join(problems, "\n");
    if (::testing::Test::HasFatalFailure()) return;
  }
  // Runs are not exactly alike (thread timing), but nearly every point must have cut something.
  EXPECT_GE(crashed_runs, static_cast<int>(points.size()) * 9 / 10);
  std::printf("%zu crash points over %llu operations (%zu steps)\n", points.size(),
              static_cast<unsigned long long>(clean.ops), Steps().size());
}

// The checks have teeth: with syncs that lie (synchronous=OFF, or a disk that ignores flushes)
// a loss just after any acknowledged step loses it, and Judge says so.
TEST(StorePowerLossTest, LyingSyncsLoseAcknowledgedCommitsAndTheChecksSeeIt) {
  imgstore::testing::PreferMemoryForTempDirs();
  RunResult clean;
  Expected expected;
  ASSERT_NO_FATAL_FAILURE(CleanRun(&clean, &expected));
  for (size_t k : {size_t{0}, size_t{2}, Steps().size() - 1}) {
    SCOPED_TRACE(std::string("power loss just after ") + Steps()[k].name);
    bool crashed = false;
    std::vector<std::string> problems =
        CrashAt(clean.ops_after[k] + 1, expected, /*lying_syncs=*/true, &crashed);
    ASSERT_FALSE(problems.empty()) << "a lost commit went unnoticed";
    EXPECT_NE(Join(problems, "\n").find("images: "), std::string::npos) << Join(problems, "\n");
  }
}

}  // namespace
}  // namespace imgstore::store
