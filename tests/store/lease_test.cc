// Store leases: pins recorded in lease_blobs, release (explicit and by destruction), and a
// lease whose holder process was killed with SIGKILL: dead at once, removed by the next open.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::store {
namespace {

using imgstore::testing::Subprocess;
using imgstore::testing::TempDir;
using testing::OpenStore;

const std::string kHelper = IMGSTORE_TEST_BIN_DIR "/tests/store/store_helper";

// The rows `sql` (a query of two columns) returns, each as "COL0 COL1".
std::set<std::string> RowPairs(Store& store, const std::string& sql) {
  std::set<std::string> out;
  Result<ReadTransaction> txn = store.db().BeginRead();
  EXPECT_TRUE(txn.ok());
  if (!txn.ok()) return out;
  Result<Statement> st = txn->Prepare(sql);
  EXPECT_TRUE(st.ok());
  while (true) {
    Result<bool> row = st->Step();
    EXPECT_TRUE(row.ok());
    if (!row.ok() || !*row) break;
    out.insert(st->ColumnText(0) + " " + st->ColumnText(1));
  }
  return out;
}

// Rows of (lease id, blob digest) in lease_blobs, as "ID DIGEST".
std::set<std::string> Pins(Store& store) {
  return RowPairs(store, "SELECT lease_id, blob_digest FROM lease_blobs");
}

// Lease rows as "ID LABEL".
std::set<std::string> LeaseRows(Store& store) {
  return RowPairs(store, "SELECT id, label FROM leases");
}

TEST(LeaseTest, PinsAreRecordedAndReleaseDropsThem) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  const Digest a = Digest::Of("a");
  const Digest b = Digest::Of("b");

  Result<std::unique_ptr<StoreLease>> lease = store->CreateLease("pull test");
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  const std::string id = (*lease)->id();
  EXPECT_EQ(LeaseRows(*store), (std::set<std::string>{id + " pull test"}));
  Result<bool> alive = store->locks().LeaseAlive(id);
  ASSERT_TRUE(alive.ok());
  EXPECT_TRUE(*alive);

  std::vector<Digest> digests = {a, b, a};  // a repeated pin is one row
  ASSERT_TRUE((*lease)->Pin(digests).ok());
  EXPECT_EQ(Pins(*store),
            (std::set<std::string>{id + " " + a.ToString(), id + " " + b.ToString()}));
  // Pinning does not need the blob to exist, and is visible to other handles of the store.
  auto other = OpenStore(dir.path());
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(Pins(*other).size(), 2u);
  EXPECT_EQ(other->recovery().leases_removed, 0);  // a live lease is not recovered

  ASSERT_TRUE((*lease)->Release().ok());
  EXPECT_TRUE(Pins(*store).empty());
  EXPECT_TRUE(LeaseRows(*store).empty());
  alive = store->locks().LeaseAlive(id);
  EXPECT_TRUE(!alive.ok() || !*alive);
  // Released twice is harmless; pinning after release is refused.
  EXPECT_TRUE((*lease)->Release().ok());
  std::vector<Digest> more = {a};
  EXPECT_EQ((*lease)->Pin(more).code(), Code::kFailedPrecondition);
}

TEST(LeaseTest, DestructionReleases) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  std::string id;
  {
    Result<std::unique_ptr<StoreLease>> lease = store->CreateLease("scoped");
    ASSERT_TRUE(lease.ok());
    id = (*lease)->id();
    std::vector<Digest> d = {Digest::Of("x")};
    ASSERT_TRUE((*lease)->Pin(d).ok());
    EXPECT_EQ(Pins(*store).size(), 1u);
  }
  EXPECT_TRUE(Pins(*store).empty());
  EXPECT_TRUE(LeaseRows(*store).empty());
  Result<std::vector<locking::LeaseInfo>> files = store->locks().ListLeases();
  ASSERT_TRUE(files.ok());
  for (const locking::LeaseInfo& l : *files) EXPECT_NE(l.id, id);
}

TEST(LeaseTest, ManyLeasesAtOnceAreIndependent) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  const Digest d = Digest::Of("shared");
  std::vector<std::unique_ptr<StoreLease>> leases;
  for (int i = 0; i < 20; ++i) {
    Result<std::unique_ptr<StoreLease>> l = store->CreateLease("l" + std::to_string(i));
    ASSERT_TRUE(l.ok());
    std::vector<Digest> one = {d};
    ASSERT_TRUE((*l)->Pin(one).ok());
    leases.push_back(std::move(*l));
  }
  EXPECT_EQ(Pins(*store).size(), 20u);
  leases.erase(leases.begin() + 3);
  EXPECT_EQ(Pins(*store).size(), 19u);
  EXPECT_EQ(LeaseRows(*store).size(), 19u);
}

TEST(LeaseTest, HolderReleasesOnRequestInAnotherProcess) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  const Digest d = Digest::Of("held elsewhere");
  Subprocess child;
  std::string error;
  ASSERT_TRUE(child.Start(kHelper, {"lease", dir.path(), d.ToString(), "other process"}, &error))
      << error;
  std::optional<std::string> line = child.ReadLine(std::chrono::seconds(20));
  ASSERT_TRUE(line.has_value());
  line = child.ReadLine(std::chrono::seconds(20));  // "ready" comes first
  ASSERT_TRUE(line.has_value());
  ASSERT_TRUE(line->starts_with("lease ")) << *line;
  const std::string id = line->substr(6);
  EXPECT_EQ(Pins(*store), (std::set<std::string>{id + " " + d.ToString()}));
  EXPECT_EQ(LeaseRows(*store), (std::set<std::string>{id + " other process"}));

  child.CloseStdin();
  line = child.ReadLine(std::chrono::seconds(20));
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(*line, "released");
  std::optional<int> status = child.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(Pins(*store).empty());
  EXPECT_TRUE(LeaseRows(*store).empty());
}

TEST(LeaseTest, KilledHolderIsDeadAtOnceAndRemovedByNextOpen) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  const Digest d = Digest::Of("pinned by a process that dies");
  Subprocess child;
  std::string error;
  ASSERT_TRUE(child.Start(kHelper, {"lease", dir.path(), d.ToString(), "doomed"}, &error)) << error;
  std::optional<std::string> ready = child.ReadLine(std::chrono::seconds(20));
  std::optional<std::string> line = child.ReadLine(std::chrono::seconds(20));
  ASSERT_TRUE(ready.has_value() && line.has_value());
  ASSERT_TRUE(line->starts_with("lease ")) << *line;
  const std::string id = line->substr(6);
  Result<bool> alive = store->locks().LeaseAlive(id);
  ASSERT_TRUE(alive.ok());
  EXPECT_TRUE(*alive);

  // A live lease survives another process's open.
  {
    auto other = OpenStore(dir.path());
    ASSERT_NE(other, nullptr);
    EXPECT_EQ(other->recovery().leases_removed, 0);
    EXPECT_EQ(Pins(*other).size(), 1u);
  }

  child.KillAndWait();
  alive = store->locks().LeaseAlive(id);
  ASSERT_TRUE(alive.ok());
  EXPECT_FALSE(*alive);                // at once: no expiry time
  EXPECT_EQ(Pins(*store).size(), 1u);  // the rows stay until someone recovers them

  auto reopened = OpenStore(dir.path());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->recovery().leases_removed, 2);  // the row and the file
  EXPECT_TRUE(Pins(*reopened).empty());
  EXPECT_TRUE(LeaseRows(*reopened).empty());
  Result<std::vector<locking::LeaseInfo>> files = reopened->locks().ListLeases();
  ASSERT_TRUE(files.ok());
  EXPECT_TRUE(files->empty());
}

}  // namespace
}  // namespace imgstore::store
