// Fault injection into the layer cache's commit steps (store.h "Layers on disk"): the row marked
// 'incomplete', the staging directory made, the rename into layers/CHAINID, the directory sync,
// and the row marked 'complete'. Every operation an unpack does through the Env (FaultEnv) and
// every write and sync SQLite does for it (FaultVfs, counted by the same FaultEnv) is failed in
// turn: the unpack must report one clear error, leave no staging directory, half layer or
// destination behind, check clean, and a retry must give the same tree. The one fault it outlives
// is in dropping its lease's row at the end: the row is left dead for gc.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/fault_env.h"
#include "common/fault_vfs.h"
#include "common/fs_tree.h"
#include "common/layer_image.h"
#include "store/store.h"
#include "store_test_util.h"

namespace imgstore::store {
namespace {

using imgstore::testing::FaultEnv;
using imgstore::testing::FaultVfs;
using imgstore::testing::FsOp;
using imgstore::testing::FsOpName;
using imgstore::testing::FsTree;
using imgstore::testing::ImageOfLayers;
using imgstore::testing::LayerCompression;
using imgstore::testing::SmallRootfsLayers;
using imgstore::testing::SnapshotTree;
using testing::ExpectConsistent;
using testing::TempDir;
using testing::TestImage;

const TestImage& Image() {
  static const TestImage image =
      ImageOfLayers(SmallRootfsLayers(), LayerCompression::kGzip, "cache-fault");
  return image;
}

// A store in root whose files go through fenv and whose database through vfs, holding Image()
// as "img". Counts start after it is set up.
std::unique_ptr<Store> OpenWithImage(const std::string& root, FaultEnv& fenv, FaultVfs& vfs) {
  StoreOptions options;
  options.env = &fenv;
  options.sqlite_vfs = vfs.name();
  std::unique_ptr<Store> store = testing::OpenStore(root, options);
  if (store == nullptr) return nullptr;
  testing::AddImageWithBlobs(*store, Image(), {"img"});
  fenv.ResetCounts();
  return store;
}

// The entries of ROOT/layers that are staging directories.
std::vector<std::string> StagingDirs(const std::string& root) {
  std::vector<std::string> out;
  Result<std::vector<std::string>> names = Env::Default()->ListDir(root + "/layers");
  EXPECT_TRUE(names.ok());
  for (const std::string& name : names.ok() ? *names : std::vector<std::string>{}) {
    if (name.starts_with(".staging-")) out.push_back(name);
  }
  return out;
}

// The path an injected fault names: "mkdir /x/y (mkdir #2)" → "/x/y".
std::string FaultPath(const std::string& fault) {
  const size_t space = fault.find(' ');
  const size_t paren = fault.rfind(" (");
  if (space == std::string::npos || paren == std::string::npos || paren <= space) return fault;
  return fault.substr(space + 1, paren - space - 1);
}

// The operations of a clean unpack of Image() into a fresh store's cache, by kind, and the tree
// it gives.
void CleanUnpack(std::map<FsOp, uint64_t>* counts, FsTree* tree) {
  TempDir dir;
  FaultEnv fenv;
  FaultVfs vfs({&fenv});
  std::unique_ptr<Store> store = OpenWithImage(dir.Sub("root"), fenv, vfs);
  ASSERT_NE(store, nullptr);
  Result<UnpackResult> r = store->Unpack("img", dir.Sub("out"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->layers_extracted, 2);
  for (size_t i = 0; i < imgstore::testing::kNumFsOps; ++i) {
    const FsOp op = static_cast<FsOp>(i);
    if (op != FsOp::kAny && fenv.count(op) > 0) (*counts)[op] = fenv.count(op);
  }
  *tree = SnapshotTree(dir.Sub("out"));
}

TEST(LayerCacheFaultTest, CleanUnpackDoesTheExpectedOperations) {
  imgstore::testing::PreferMemoryForTempDirs();
  std::map<FsOp, uint64_t> counts;
  FsTree tree;
  ASSERT_NO_FATAL_FAILURE(CleanUnpack(&counts, &tree));
  EXPECT_EQ(counts[FsOp::kMkdir], 3u);    // the destination, one staging directory per layer
  EXPECT_EQ(counts[FsOp::kRename], 2u);   // each staging directory into place
  EXPECT_EQ(counts[FsOp::kSyncDir], 2u);  // layers/ after each rename
  EXPECT_GE(counts[FsOp::kSync], 4u);     // SQLite: 'incomplete' and 'complete' per layer
  EXPECT_GE(counts[FsOp::kWrite], 4u);
  EXPECT_EQ(counts.count(FsOp::kRemove), 0u);
  EXPECT_EQ(tree.count("usr/tool"), 1u);
}

TEST(LayerCacheFaultTest, EachFailedOperationOfAnUnpackIsReportedAndLeavesNothing) {
  imgstore::testing::PreferMemoryForTempDirs();
  std::map<FsOp, uint64_t> counts;
  FsTree want;
  ASSERT_NO_FATAL_FAILURE(CleanUnpack(&counts, &want));
  int cases = 0;
  std::set<FsOp> in_lease_drop;  // the kinds whose last operations drop the lease row
  for (const auto& [op, count] : counts) {
    for (uint64_t n = 1; n <= count; ++n) {
      SCOPED_TRACE(std::string(FsOpName(op)) + " #" + std::to_string(n) + " of " +
                   std::to_string(count));
      TempDir dir;
      const std::string root = dir.Sub("root");
      FaultEnv fenv;
      FaultVfs vfs({&fenv});
      std::unique_ptr<Store> store = OpenWithImage(root, fenv, vfs);
      ASSERT_NE(store, nullptr);
      fenv.FailNth(op, n, op == FsOp::kWrite ? ENOSPC : EIO);
      Result<UnpackResult> r = store->Unpack("img", dir.Sub("out"));
      fenv.ClearFaults();
      ASSERT_EQ(fenv.faults_fired(), 1u);
      const std::string fault = fenv.last_fault();
      SCOPED_TRACE("failed: " + fault);
      ASSERT_FALSE(in_lease_drop.count(op) != 0 && !r.ok())
          << "a fault after the lease drop began failed the unpack: " << r.status().ToString();
      if (r.ok()) {
        // The one fault an unpack may outlive: dropping the row of its lease once the tree is
        // complete. The row stays behind, dead, for gc or the next open; nothing else may.
        EXPECT_TRUE(fault.starts_with("sqlite")) << "the injected fault was swallowed";
        EXPECT_EQ(testing::CountRows(*store, "SELECT count(*) FROM leases"), 1);
        EXPECT_EQ(SnapshotTree(dir.Sub("out")), want);
        Result<GcReport> gc = store->GarbageCollect();
        ASSERT_TRUE(gc.ok()) << gc.status().ToString();
        EXPECT_EQ(gc->leases_removed, 1);
        ExpectConsistent(*store);
        in_lease_drop.insert(op);
        continue;
      }
      // One line that says what was being done and what failed.
      const std::string message = r.status().ToString();
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
      EXPECT_NE(message.find("unpack img"), std::string::npos) << message;
      EXPECT_NE(message.find(fault.starts_with("sqlite") ? root + "/meta.db" : FaultPath(fault)),
                std::string::npos)
          << message;
      if (op == FsOp::kWrite) {
        EXPECT_EQ(r.status().code(), Code::kNoSpace) << message;
      }

      // Nothing left behind: no destination, no staging directory, no half-done layer row.
      EXPECT_FALSE(imgstore::testing::Exists(dir.Sub("out")));
      EXPECT_TRUE(StagingDirs(root).empty()) << StagingDirs(root).front();
      EXPECT_EQ(testing::CountRows(*store,
                                   "SELECT count(*) FROM layers WHERE unpack_state = 'incomplete'"),
                0);
      ExpectConsistent(*store);
      {
        // A later open finds nothing to recover either.
        std::unique_ptr<Store> again = testing::OpenStore(root);
        ASSERT_NE(again, nullptr);
        EXPECT_EQ(again->recovery().layer_stagings_removed, 0);
      }

      // The retry extracts what is missing and gives the same tree.
      Result<UnpackResult> retry = store->Unpack("img", dir.Sub("retry"));
      ASSERT_TRUE(retry.ok()) << retry.status().ToString();
      EXPECT_EQ(SnapshotTree(dir.Sub("retry")), want);
      EXPECT_EQ(
          testing::CountRows(*store, "SELECT count(*) FROM layers WHERE unpack_state = 'complete'"),
          2);
      ExpectConsistent(*store);
      ++cases;
    }
  }
  EXPECT_GE(cases, 15);
  // The lease drop is the last database write, and its sync the last sync.
  EXPECT_EQ(in_lease_drop, (std::set<FsOp>{FsOp::kWrite, FsOp::kSync}));
}

}  // namespace
}  // namespace imgstore::store
