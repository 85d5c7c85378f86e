// Fault injection into the store's file-system operations (tests/common/fault_env.h): every
// create, write, sync, rename and directory sync of an ingest, and every mkdir and directory sync
// of opening a new store, is failed in turn; each time the error must be reported, the store must
// check clean afterwards, and a retry must succeed. Then power losses at every step of an ingest.
// The ingest tests run with a blob written on one thread and with one large enough to be read
// and written on two (CopyPipelined in src/store/blob_store.cc).
#include <gtest/gtest.h>

#include "common/fault_env.h"
#include "common/temp_dir.h"
#include "store/store.h"
#include "store_test_util.h"

namespace imgstore::store {
namespace {

using imgstore::testing::FaultEnv;
using imgstore::testing::FsOp;
using imgstore::testing::FsOpName;
using testing::ExpectConsistent;
using testing::OpenStore;
using testing::OpenStoreOn;
using testing::RandomBytes;
using testing::TempDir;

// Blob sizes: the small one is read, hashed and written on one thread (four writes of 1 MiB);
// the large one, above the store's 4 MiB threshold, on two (the writer thread a few chunks
// behind the reader), so a fault can strike while the next chunks are being read.
constexpr size_t kSmall = 3 * 1024 * 1024 + 5;
constexpr size_t kLarge = 6 * 1024 * 1024 + 5;

const std::string& Data(size_t size) {
  static const std::string small = RandomBytes(kSmall);
  static const std::string large = RandomBytes(kLarge, 9);
  return size == kSmall ? small : large;
}

Result<IngestResult> Ingest(Store& store, const std::string& data) {
  IngestOptions opts;
  opts.expected_size = data.size();
  return store.IngestBlob(Digest::Of(data), opts, data);
}

// Ingests `data` into a fresh store whose operations `fenv` counts from after the open: the
// operations of a clean ingest, to count before failing each in turn.
void CleanIngest(FaultEnv& fenv, const std::string& data) {
  TempDir dir;
  auto store = OpenStoreOn(dir.path(), &fenv);
  ASSERT_NE(store, nullptr);
  fenv.ResetCounts();
  ASSERT_TRUE(Ingest(*store, data).ok());
}

class BlobIngestFaultTest : public ::testing::TestWithParam<size_t> {
 protected:
  const std::string& data() const { return Data(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Sizes, BlobIngestFaultTest, ::testing::Values(kSmall, kLarge),
                         [](const auto& info) {
                           return std::string(info.param == kSmall ? "OneThread" : "TwoThreads");
                         });

constexpr FsOp kIngestOps[] = {FsOp::kCreate,  FsOp::kWrite, FsOp::kSync,   FsOp::kRename,
                               FsOp::kSyncDir, FsOp::kChmod, FsOp::kRemove, FsOp::kMkdir};

TEST_P(BlobIngestFaultTest, CleanIngestDoesTheExpectedOperations) {
  FaultEnv fenv;
  ASSERT_NO_FATAL_FAILURE(CleanIngest(fenv, data()));
  EXPECT_EQ(fenv.count(FsOp::kCreate), 1u);
  EXPECT_EQ(fenv.count(FsOp::kWrite), GetParam() / (1024 * 1024) + 1);  // 1 MiB per write
  EXPECT_EQ(fenv.count(FsOp::kSync), 1u);
  EXPECT_EQ(fenv.count(FsOp::kRename), 1u);
  EXPECT_EQ(fenv.count(FsOp::kSyncDir), 1u);
  EXPECT_EQ(fenv.count(FsOp::kRemove), 0u);
}

TEST_P(BlobIngestFaultTest, EachFailedOperationOfAnIngestIsReportedAndLeavesNothing) {
  // Count a clean run first.
  std::map<FsOp, uint64_t> counts;
  {
    FaultEnv fenv;
    ASSERT_NO_FATAL_FAILURE(CleanIngest(fenv, data()));
    for (FsOp op : kIngestOps) counts[op] = fenv.count(op);
  }
  int cases = 0;
  for (FsOp op : kIngestOps) {
    for (uint64_t n = 1; n <= counts[op]; ++n) {
      SCOPED_TRACE(std::string(FsOpName(op)) + " #" + std::to_string(n));
      TempDir dir;
      FaultEnv fenv;
      auto store = OpenStoreOn(dir.path(), &fenv);
      ASSERT_NE(store, nullptr);
      fenv.ResetCounts();
      fenv.FailNth(op, n, op == FsOp::kWrite ? ENOSPC : EIO);
      Result<IngestResult> r = Ingest(*store, data());
      EXPECT_FALSE(r.ok()) << "the injected fault was swallowed";
      EXPECT_EQ(fenv.faults_fired(), 1u);
      if (op == FsOp::kWrite) {
        EXPECT_EQ(r.status().code(), Code::kNoSpace);
      }
      EXPECT_NE(r.status().message().find(Digest::Of(data()).ToString()), std::string::npos)
          << r.status().ToString();
      fenv.ClearFaults();
      EXPECT_FALSE(*store->HasBlob(Digest::Of(data())));
      ExpectConsistent(*store);
      Result<IngestResult> retry = Ingest(*store, data());
      ASSERT_TRUE(retry.ok()) << retry.status().ToString();
      EXPECT_TRUE(retry->written);
      ExpectConsistent(*store);
      ++cases;
    }
  }
  EXPECT_GE(cases, 8);
}

TEST(BlobFaultTest, EachFailedOperationOfOpeningANewStoreIsReported) {
  std::map<FsOp, uint64_t> counts;
  {
    TempDir dir;
    FaultEnv fenv;
    ASSERT_NE(OpenStoreOn(dir.Sub("root"), &fenv), nullptr);
    counts[FsOp::kMkdir] = fenv.count(FsOp::kMkdir);
    counts[FsOp::kSyncDir] = fenv.count(FsOp::kSyncDir);
  }
  ASSERT_GE(counts[FsOp::kMkdir], 6u);  // root, blobs, blobs/sha256, ingest, layers, locks
  for (FsOp op : {FsOp::kMkdir, FsOp::kSyncDir}) {
    for (uint64_t n = 1; n <= counts[op]; ++n) {
      SCOPED_TRACE(std::string(FsOpName(op)) + " #" + std::to_string(n));
      TempDir dir;
      FaultEnv fenv;
      StoreOptions options;
      options.env = &fenv;
      fenv.FailNth(op, n);
      Result<std::unique_ptr<Store>> failed = Store::Open(dir.Sub("root"), options);
      EXPECT_FALSE(failed.ok());
      EXPECT_NE(failed.status().message().find(dir.Sub("root")), std::string::npos)
          << failed.status().ToString();
      fenv.ClearFaults();
      auto store = OpenStore(dir.Sub("root"), options);
      ASSERT_NE(store, nullptr);
      ExpectConsistent(*store);
      ASSERT_TRUE(Ingest(*store, Data(kSmall)).ok());
    }
  }
}

TEST_P(BlobIngestFaultTest, PowerLossAtEveryStepLeavesAConsistentStore) {
  uint64_t total = 0;
  {
    FaultEnv fenv;
    ASSERT_NO_FATAL_FAILURE(CleanIngest(fenv, data()));
    total = fenv.count(FsOp::kAny);
  }
  ASSERT_GE(total, 8u);
  // Power is cut before operation n: it and everything after fail, then what was not durable
  // is dropped. n = total + 1 is a loss just after a successful ingest.
  for (uint64_t n = 1; n <= total + 1; ++n) {
    SCOPED_TRACE("power loss before operation #" + std::to_string(n));
    TempDir dir;
    FaultEnv fenv;
    bool succeeded = false;
    {
      auto store = OpenStoreOn(dir.path(), &fenv);
      ASSERT_NE(store, nullptr);
      fenv.ForgetUnsyncedData();
      fenv.ResetCounts();
      fenv.FailFrom(FsOp::kAny, n);
      succeeded = Ingest(*store, data()).ok();
    }
    EXPECT_EQ(succeeded, n > total);
    fenv.ClearFaults();
    ASSERT_TRUE(fenv.DropUnsyncedData().ok());

    auto store = OpenStore(dir.path());
    ASSERT_NE(store, nullptr);
    ExpectConsistent(*store);
    // A reported success survives the power loss.
    if (succeeded) {
      EXPECT_TRUE(*store->HasBlob(Digest::Of(data())));
    }
    Result<IngestResult> retry = Ingest(*store, data());
    ASSERT_TRUE(retry.ok()) << retry.status().ToString();
    ExpectConsistent(*store);
  }
}

}  // namespace
}  // namespace imgstore::store
