// The layer cache (Store::AcquireLayers): each layer extracted once and then reused, layers shared
// between images extracted once, concurrent users extract once, a bad layer leaves nothing, gc
// keeps held layers and takes unused ones, a removed image fails cleanly, Store::Open recovers
// what a dead extractor left, and Check/Repair find and fix stray layer directories.
#include "store/layer_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/fs_tree.h"
#include "common/layer_image.h"
#include "common/tar_builder.h"
#include "store/store.h"
#include "store_test_util.h"

namespace imgstore::store {
namespace {

using namespace std::chrono_literals;
using imgstore::testing::ImageOfLayers;
using imgstore::testing::TarBuilder;
using testing::CountRows;
using testing::ExpectConsistent;
using testing::StoreTest;
using testing::TestImage;

using imgstore::testing::Exists;
using imgstore::testing::ReadFile;

std::string BaseTar() {
  return TarBuilder()
      .Dir("etc")
      .File("etc/os-release", "ID=test\n")
      .Dir("bin")
      .File("bin/sh", "#!shell\n", 0755)
      .Finish();
}

std::string TopTar(const std::string& what) {
  return TarBuilder().Dir("app").File("app/" + what, what + "\n").Whiteout("bin/sh").Finish();
}

std::string StateOf(Store& store, const Digest& chain) {
  return testing::QueryOneRow(
      store, "SELECT unpack_state FROM layers WHERE chain_id = '" + chain.ToString() + "'",
      [](const Statement& st) { return st.ColumnText(0); });
}

// The entries of ROOT/layers whose name starts with ".staging-".
int StagingDirs(Store& store) {
  Result<std::vector<std::string>> names = Env::Default()->ListDir(store.root() + "/layers");
  EXPECT_TRUE(names.ok());
  int n = 0;
  for (const std::string& name : *names) n += name.starts_with(".staging-") ? 1 : 0;
  return n;
}

class LayerCacheTest : public StoreTest {
 protected:
  TestImage Add(const std::vector<std::string>& tars, const std::string& name) {
    TestImage image = ImageOfLayers(tars, imgstore::testing::LayerCompression::kGzip, name);
    testing::AddImageWithBlobs(*store_, image, {name});
    return image;
  }
  std::vector<Digest> Chains(const TestImage& image) { return ChainIds(image.diff_ids); }
};

TEST_F(LayerCacheTest, ExtractsOnceThenReuses) {
  TestImage image = Add({BaseTar(), TopTar("one")}, "one");
  std::vector<Digest> chains = Chains(image);
  {
    Result<LayerSet> set = store_->AcquireLayers("one");
    ASSERT_TRUE(set.ok()) << set.status().ToString();
    EXPECT_EQ(set->extracted(), 2);
    ASSERT_EQ(set->dirs().size(), 2u);
    EXPECT_EQ(set->chain_ids(), chains);
    EXPECT_EQ(set->dirs()[0], LayerDir(store_->root(), chains[0]));
    EXPECT_EQ(ReadFile(set->dirs()[0] + "/etc/os-release"), "ID=test\n");
    EXPECT_EQ(ReadFile(set->dirs()[1] + "/app/one"), "one\n");
    // The upper layer holds an overlay whiteout (0/0 char device) for the deleted file.
    struct stat st;
    ASSERT_EQ(::lstat((set->dirs()[1] + "/bin/sh").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(st.st_rdev, 0u);
  }
  EXPECT_EQ(StateOf(*store_, chains[0]), "complete");
  EXPECT_EQ(StateOf(*store_, chains[1]), "complete");
  EXPECT_GT(CountRows(*store_, "SELECT unpacked_size FROM layers WHERE chain_id = '" +
                                   chains[0].ToString() + "'"),
            0);

  Result<LayerSet> again = store_->AcquireLayers(image.id.ToString());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->extracted(), 0);
  EXPECT_EQ(StagingDirs(*store_), 0);
  again = LayerSet();
  ExpectConsistent(*store_);

  Result<DiskUsage> usage = store_->GetDiskUsage();
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->layers, 2u);
  EXPECT_GT(usage->layer_bytes, 0u);
}

TEST_F(LayerCacheTest, SharedBaseLayerIsExtractedOnce) {
  Add({BaseTar(), TopTar("a")}, "a");
  Add({BaseTar(), TopTar("b")}, "b");
  Result<LayerSet> a = store_->AcquireLayers("a");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->extracted(), 2);
  Result<LayerSet> b = store_->AcquireLayers("b");  // while a's are still held (shared)
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->extracted(), 1);
  EXPECT_EQ(a->dirs()[0], b->dirs()[0]);
  EXPECT_NE(a->dirs()[1], b->dirs()[1]);
}

TEST_F(LayerCacheTest, ConcurrentUsersExtractEachLayerOnce) {
  TestImage image = Add({BaseTar(), TopTar("x"), TopTar("y")}, "xy");
  constexpr int kThreads = 4;
  std::atomic<int> extracted{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      Result<LayerSet> set = store_->AcquireLayers("xy");
      if (!set.ok()) {
        ADD_FAILURE() << set.status().ToString();
        ++failures;
        return;
      }
      extracted += set->extracted();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(extracted.load(), 3);
  ExpectConsistent(*store_);
}

// An image whose config claims `claimed_tar`'s diffID for a layer that holds `real_tar`.
TestImage LyingImage(const std::string& real_tar, const std::string& claimed_tar) {
  TestImage image = ImageOfLayers({real_tar}, imgstore::testing::LayerCompression::kGzip, "liar");
  const std::string real = image.diff_ids[0].ToString();
  const std::string claimed = Digest::Of(claimed_tar).ToString();
  const std::string old_config = image.id.ToString();
  image.config.replace(image.config.find(real), real.size(), claimed);
  image.diff_ids[0] = Digest::Of(claimed_tar);
  image.id = Digest::Of(image.config);
  image.manifest.replace(image.manifest.find(old_config), old_config.size(), image.id.ToString());
  image.manifest_digest = Digest::Of(image.manifest);
  return image;
}

TEST_F(LayerCacheTest, WrongDiffIdLeavesNothing) {
  TestImage image = LyingImage(BaseTar(), TopTar("other"));
  testing::AddImageWithBlobs(*store_, image, {"liar"});
  Result<LayerSet> set = store_->AcquireLayers("liar");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), Code::kCorruption) << set.status().ToString();
  const Digest chain = ChainIds(image.diff_ids)[0];
  EXPECT_NE(set.status().message().find(chain.ToString()), std::string::npos)
      << set.status().ToString();
  EXPECT_EQ(StateOf(*store_, chain), "none");
  EXPECT_FALSE(Exists(LayerDir(store_->root(), chain)));
  EXPECT_EQ(StagingDirs(*store_), 0);
  ExpectConsistent(*store_);
}

TEST_F(LayerCacheTest, UnknownImageIsNotFound) {
  Result<LayerSet> set = store_->AcquireLayers("nothing-here:latest");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), Code::kNotFound);
}

TEST_F(LayerCacheTest, GcKeepsHeldLayersAndTakesThemAfterRelease) {
  TestImage image = Add({BaseTar(), TopTar("gc")}, "gc");
  std::vector<Digest> chains = Chains(image);
  Result<LayerSet> set = store_->AcquireLayers("gc");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  ASSERT_TRUE(store_->Remove("gc").ok());

  Result<GcReport> gc = store_->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_EQ(gc->layers_removed, 0);
  EXPECT_GE(gc->skipped_busy, 1);
  for (const Digest& c : chains) EXPECT_TRUE(Exists(LayerDir(store_->root(), c)));

  *set = LayerSet();  // releases the locks
  gc = store_->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_EQ(gc->layers_removed, 2);
  for (const Digest& c : chains) EXPECT_FALSE(Exists(LayerDir(store_->root(), c)));
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM layers"), 0);
  ExpectConsistent(*store_);
}

TEST_F(LayerCacheTest, GcKeepsLayersOfImagesThatRemain) {
  Add({BaseTar(), TopTar("a")}, "a");
  TestImage b = Add({BaseTar(), TopTar("b")}, "b");
  ASSERT_TRUE(store_->AcquireLayers("a").ok());
  ASSERT_TRUE(store_->AcquireLayers("b").ok());
  ASSERT_TRUE(store_->Remove("a").ok());
  Result<GcReport> gc = store_->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_EQ(gc->layers_removed, 1);  // a's top layer; the shared base stays for b
  for (const Digest& c : Chains(b)) EXPECT_TRUE(Exists(LayerDir(store_->root(), c)));
  Result<LayerSet> again = store_->AcquireLayers("b");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->extracted(), 0);
  again = LayerSet();
  ExpectConsistent(*store_);
}

// The image is removed (and gc takes its layer rows) while an acquirer waits for the layer lock:
// the acquirer looks again after the lock and fails cleanly.
TEST_F(LayerCacheTest, ImageRemovedWhileWaitingIsNotFound) {
  TestImage image = Add({BaseTar()}, "gone");
  const Digest chain = Chains(image)[0];
  Result<locking::Lock> lock = store_->locks().Get(LayerLockName(chain));
  ASSERT_TRUE(lock.ok());
  Result<locking::LockGuard> blocker =
      lock->TryAcquire(locking::LockMode::kUpgradable, "test extractor");
  ASSERT_TRUE(blocker.ok()) << blocker.status().ToString();

  Result<LayerSet> result = Status(Code::kInternal, "not run");
  std::thread t([&] { result = store_->AcquireLayers("gone"); });
  // Wait until it queues for the lock (it holds the image's details by then).
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  bool waiting = false;
  while (!waiting && std::chrono::steady_clock::now() < deadline) {
    Result<std::vector<locking::LockInfo>> locks = store_->locks().List();
    ASSERT_TRUE(locks.ok());
    for (const locking::LockInfo& info : *locks) {
      if (info.name == LayerLockName(chain) && !info.waiters.empty()) waiting = true;
    }
    if (!waiting) std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(waiting) << "the acquirer never waited for the layer lock";
  ASSERT_TRUE(store_->Remove("gone").ok());
  {
    // What gc does under the lock we hold: the row goes.
    Result<WriteTransaction> txn = store_->db().BeginWrite();
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(txn->Exec("DELETE FROM layers WHERE chain_id = '" + chain.ToString() + "'").ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  blocker->Release();
  t.join();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), Code::kNotFound);
  EXPECT_NE(result.status().message().find("image removed"), std::string::npos)
      << result.status().ToString();
  EXPECT_FALSE(Exists(LayerDir(store_->root(), chain)));
  EXPECT_EQ(StagingDirs(*store_), 0);
}

TEST_F(LayerCacheTest, WaitForAnExtractorHasADeadline) {
  StoreOptions options;
  options.lock_timeout = 200ms;
  std::unique_ptr<Store> store = testing::OpenStore(store_->root(), options);
  TestImage image = Add({BaseTar()}, "slow");
  Result<locking::Lock> lock = store_->locks().Get(LayerLockName(Chains(image)[0]));
  ASSERT_TRUE(lock.ok());
  Result<locking::LockGuard> blocker = lock->TryAcquire(locking::LockMode::kUpgradable, "busy");
  ASSERT_TRUE(blocker.ok());
  Result<LayerSet> set = store->AcquireLayers("slow");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), Code::kTimeout) << set.status().ToString();
  blocker->Release();
  set = store->AcquireLayers("slow");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->extracted(), 1);
}

// What a killed extractor leaves: a staging directory and an 'incomplete' row (with, after a kill
// between the rename and the commit, the directory itself).
void LeaveDeadExtraction(Store& store, const Digest& chain) {
  const std::string hex(chain.hex());
  ASSERT_TRUE(
      Env::Default()
          ->CreateDirs(store.root() + "/layers/.staging-sha256-" + hex + ".0123456789abcdef/etc")
          .ok());
  ASSERT_TRUE(Env::Default()->CreateDirs(LayerDir(store.root(), chain) + "/etc").ok());
  Result<WriteTransaction> txn = store.db().BeginWrite();
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE(txn->Exec("UPDATE layers SET unpack_state = 'incomplete' WHERE chain_id = '" +
                        chain.ToString() + "'")
                  .ok());
  ASSERT_TRUE(txn->Commit().ok());
}

TEST_F(LayerCacheTest, OpenRecoversDeadExtraction) {
  TestImage image = Add({BaseTar()}, "crash");
  const Digest chain = Chains(image)[0];
  LeaveDeadExtraction(*store_, chain);
  Result<CheckReport> report = store_->Check();
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->clean());

  std::unique_ptr<Store> reopened = testing::OpenStore(store_->root());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->recovery().layer_stagings_removed, 2);  // the staging dir and the row
  EXPECT_EQ(StagingDirs(*reopened), 0);
  EXPECT_FALSE(Exists(LayerDir(reopened->root(), chain)));
  EXPECT_EQ(StateOf(*reopened, chain), "none");
  ExpectConsistent(*reopened);
  Result<LayerSet> set = reopened->AcquireLayers("crash");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->extracted(), 1);
}

TEST_F(LayerCacheTest, OpenLeavesLiveExtractionAlone) {
  TestImage image = Add({BaseTar()}, "live");
  const Digest chain = Chains(image)[0];
  LeaveDeadExtraction(*store_, chain);
  // A live extractor holds the layer lock (here: this process, through the first Store).
  Result<locking::Lock> lock = store_->locks().Get(LayerLockName(chain));
  ASSERT_TRUE(lock.ok());
  Result<locking::LockGuard> extractor = lock->TryAcquire(locking::LockMode::kUpgradable, "x");
  ASSERT_TRUE(extractor.ok());
  std::unique_ptr<Store> reopened = testing::OpenStore(store_->root());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->recovery().layer_stagings_removed, 0);
  EXPECT_EQ(StagingDirs(*reopened), 1);
  EXPECT_EQ(StateOf(*reopened, chain), "incomplete");
  Result<CheckReport> report = reopened->Check();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean()) << testing::Describe(*report);  // work in progress
}

// Every command's Store::Open recovers layers: it reads the 'incomplete' rows, then try-locks
// each. An extractor that finishes in between (row 'complete', lock released) must keep its
// layer; found by the multi-process stress test as "recorded as unpacked but its directory is
// missing".
TEST_F(LayerCacheTest, OpenLeavesALayerWhoseExtractorFinishedAfterTheListing) {
  TestImage image = Add({BaseTar()}, "done");
  const Digest chain = Chains(image)[0];
  { ASSERT_TRUE(store_->AcquireLayers("done").ok()); }
  ASSERT_EQ(StateOf(*store_, chain), "complete");
  // The extractor as the listing sees it: row 'incomplete', its lock held.
  auto set_state = [&](const std::string& state) {
    Result<WriteTransaction> txn = store_->db().BeginWrite();
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(txn->Exec("UPDATE layers SET unpack_state = '" + state + "' WHERE chain_id = '" +
                          chain.ToString() + "'")
                    .ok());
    ASSERT_TRUE(txn->Commit().ok());
  };
  set_state("incomplete");
  Result<locking::Lock> lock = store_->locks().Get(LayerLockName(chain));
  ASSERT_TRUE(lock.ok());
  Result<locking::LockGuard> extractor = lock->TryAcquire(locking::LockMode::kUpgradable, "x");
  ASSERT_TRUE(extractor.ok());
  bool finished = false;
  Result<int> cleaned = layer_cache::RecoverLayers(store_->db(), Env::Default(), store_->locks(),
                                                   store_->root(), [&] {
                                                     set_state("complete");
                                                     extractor->Release();
                                                     finished = true;
                                                   });
  ASSERT_TRUE(cleaned.ok()) << cleaned.status().ToString();
  ASSERT_TRUE(finished);
  EXPECT_EQ(*cleaned, 0);
  EXPECT_TRUE(Exists(LayerDir(store_->root(), chain) + "/etc/os-release"));
  EXPECT_EQ(StateOf(*store_, chain), "complete");
  ExpectConsistent(*store_);
}

TEST_F(LayerCacheTest, RepairFixesLayerDirectories) {
  TestImage image = Add({BaseTar(), TopTar("r")}, "r");
  std::vector<Digest> chains = Chains(image);
  ASSERT_TRUE(store_->AcquireLayers("r").ok());
  ASSERT_TRUE(Env::Default()->RemoveTree(LayerDir(store_->root(), chains[1])).ok());
  const std::string stray = store_->root() + "/layers/sha256-" + std::string(64, 'e');
  ASSERT_TRUE(Env::Default()->CreateDirs(stray + "/x").ok());
  const std::string junk = store_->root() + "/layers/junk";
  ASSERT_TRUE(Env::Default()->CreateDirs(junk).ok());

  Result<CheckReport> report = store_->Check();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::set<std::string> paths;
  for (const CheckProblem& p : report->problems) {
    EXPECT_EQ(p.kind, ProblemKind::kLayerDir) << p.message;
    paths.insert(p.path);
  }
  EXPECT_EQ(paths, (std::set<std::string>{LayerDir(store_->root(), chains[1]), stray, junk}));

  report = store_->Repair();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->problems.size(), 3u);
  EXPECT_EQ(report->unresolved(), 0u) << testing::Describe(*report);
  EXPECT_EQ(StateOf(*store_, chains[1]), "none");
  EXPECT_FALSE(Exists(stray));
  EXPECT_FALSE(Exists(junk));
  ExpectConsistent(*store_);

  Result<LayerSet> set = store_->AcquireLayers("r");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->extracted(), 1);  // the repaired layer, extracted again
  EXPECT_EQ(ReadFile(set->dirs()[1] + "/app/r"), "r\n");
}

}  // namespace
}  // namespace imgstore::store
