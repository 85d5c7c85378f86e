// Tests of src/locking's leases: a lease is alive exactly as long as its holder holds it and its
// process lives; a killed holder's lease reads dead at once (no expiry time), and only dead
// leases are removed.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "locking/locking.h"
#include "locking_test_util.h"

namespace imgstore::locking {
namespace {

// A lease's liveness as the contract allows it to be reported for a lease that is gone: false,
// or kNotFound once its file is removed. Anything else (true, another error) is wrong.
::testing::AssertionResult ReadsDead(const LockSpace& space, const std::string& id) {
  auto r = space.LeaseAlive(id);
  if (r.ok() && !r.value()) return ::testing::AssertionSuccess();
  if (!r.ok() && r.status().code() == Code::kNotFound) return ::testing::AssertionSuccess();
  if (r.ok()) return ::testing::AssertionFailure() << "lease " << id << " reads alive";
  return ::testing::AssertionFailure() << "lease " << id << ": " << r.status().ToString();
}

::testing::AssertionResult ReadsAlive(const LockSpace& space, const std::string& id) {
  auto r = space.LeaseAlive(id);
  if (r.ok() && r.value()) return ::testing::AssertionSuccess();
  if (r.ok()) return ::testing::AssertionFailure() << "lease " << id << " reads dead";
  return ::testing::AssertionFailure() << "lease " << id << ": " << r.status().ToString();
}

const LeaseInfo* Find(const std::vector<LeaseInfo>& leases, const std::string& id) {
  for (const auto& l : leases) {
    if (l.id == id) return &l;
  }
  return nullptr;
}

using LeaseTest = LockingTest;

TEST_F(LeaseTest, KilledHoldersLeaseIsDeadAtOnceAndOnlyItIsRemoved) {
  Subprocess doomed = Helper({"lease", dir(), "push registry.local/doomed"});
  Subprocess live = Helper({"lease", dir(), "push registry.local/live"});
  std::string doomed_id, live_id;
  ASSERT_TRUE(ExpectReport(doomed, "lease", 10s, &doomed_id));
  ASSERT_TRUE(ExpectReport(live, "lease", 10s, &live_id));
  ASSERT_FALSE(doomed_id.empty());
  ASSERT_NE(doomed_id, live_id);
  EXPECT_TRUE(ReadsAlive(space(), doomed_id));
  EXPECT_TRUE(ReadsAlive(space(), live_id));

  auto before = space().ListLeases();
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  const LeaseInfo* d = Find(*before, doomed_id);
  ASSERT_NE(d, nullptr) << "ListLeases misses a live lease";
  EXPECT_EQ(d->pid, doomed.pid());
  EXPECT_EQ(d->label, "push registry.local/doomed");
  EXPECT_TRUE(d->alive);
  EXPECT_GT(d->since_unix_ns, 0);

  // kill -9 and reap: from this moment the lease is void, with no expiry to wait for.
  doomed.KillAndWait();
  EXPECT_TRUE(ReadsDead(space(), doomed_id)) << "right after kill -9 + waitpid";
  EXPECT_TRUE(ReadsAlive(space(), live_id)) << "a killed neighbour voided a live lease";

  auto after = space().ListLeases();
  ASSERT_TRUE(after.ok());
  const LeaseInfo* dead = Find(*after, doomed_id);
  ASSERT_NE(dead, nullptr) << "the dead lease vanished before RemoveDeadLeases";
  EXPECT_FALSE(dead->alive);
  const LeaseInfo* alive = Find(*after, live_id);
  ASSERT_NE(alive, nullptr);
  EXPECT_TRUE(alive->alive);

  auto removed = space().RemoveDeadLeases();
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(removed.value(), 1);
  auto final_list = space().ListLeases();
  ASSERT_TRUE(final_list.ok());
  EXPECT_EQ(Find(*final_list, doomed_id), nullptr) << "the dead lease was not removed";
  EXPECT_NE(Find(*final_list, live_id), nullptr) << "a live lease was removed";
  EXPECT_TRUE(ReadsAlive(space(), live_id));
  EXPECT_TRUE(ReadsDead(space(), doomed_id));
  auto again = space().RemoveDeadLeases();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value(), 0);

  // Released by its holder: dead, and removable.
  ASSERT_TRUE(live.WriteLine("release"));
  ASSERT_TRUE(ExpectReport(live, "released", 5s));
  EXPECT_TRUE(ReadsDead(space(), live_id));
  auto last = space().RemoveDeadLeases();
  ASSERT_TRUE(last.ok());
  EXPECT_LE(last.value(), 1);  // 0 if Release already removed its file
  auto empty = space().ListLeases();
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(Find(*empty, live_id), nullptr);
}

TEST_F(LeaseTest, OwnLeaseIsAliveUntilReleasedOrDestroyed) {
  std::string id1, id2;
  {
    auto l1 = space().CreateLease("export a");
    auto l2 = space().CreateLease("export b");
    ASSERT_TRUE(l1.ok()) << l1.status().ToString();
    ASSERT_TRUE(l2.ok()) << l2.status().ToString();
    Lease a = std::move(l1).value();
    Lease b = std::move(l2).value();
    id1 = a.id();
    id2 = b.id();
    EXPECT_NE(id1, id2);
    EXPECT_TRUE(a.held());
    // This process's own lease reads alive too (the test must not depend on another process).
    EXPECT_TRUE(ReadsAlive(space(), id1));
    EXPECT_TRUE(ReadsAlive(space(), id2));
    auto list = space().ListLeases();
    ASSERT_TRUE(list.ok());
    const LeaseInfo* info = Find(*list, id1);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->pid, ::getpid());
    EXPECT_EQ(info->label, "export a");
    EXPECT_TRUE(info->alive);

    // RemoveDeadLeases never removes a live lease.
    auto removed = space().RemoveDeadLeases();
    ASSERT_TRUE(removed.ok());
    EXPECT_EQ(removed.value(), 0);
    EXPECT_TRUE(ReadsAlive(space(), id1));

    Lease moved = std::move(a);
    EXPECT_FALSE(a.held());  // NOLINT(bugprone-use-after-move): moved-from state is specified
    EXPECT_TRUE(moved.held());
    EXPECT_TRUE(ReadsAlive(space(), id1)) << "moving a lease released it";
    moved.Release();
    EXPECT_FALSE(moved.held());
    EXPECT_TRUE(ReadsDead(space(), id1));
    EXPECT_TRUE(ReadsAlive(space(), id2));
  }  // b's destructor releases
  EXPECT_TRUE(ReadsDead(space(), id2));
}

TEST_F(LeaseTest, UnknownOrMalformedLeaseIdIsNeverAlive) {
  for (const std::string& id : {std::string("no-such-lease"), std::string("../../etc/passwd"),
                                std::string(""), std::string("a/b")}) {
    auto r = space().LeaseAlive(id);
    EXPECT_FALSE(r.ok() && r.value()) << "'" << id << "' reads alive";
  }
}

TEST_F(LeaseTest, LeasesOfManyProcessesAreTrackedSeparately) {
  constexpr int kProcs = 6;
  std::vector<Subprocess> procs;
  std::vector<std::string> ids;
  for (int i = 0; i < kProcs; ++i) {
    procs.push_back(Helper({"lease", dir(), "holder " + std::to_string(i)}));
  }
  for (auto& p : procs) {
    std::string id;
    ASSERT_TRUE(ExpectReport(p, "lease", 10s, &id));
    ids.push_back(id);
  }
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size()) << "duplicate ids";
  // Kill the even ones.
  for (int i = 0; i < kProcs; i += 2) procs[i].KillAndWait();
  for (int i = 0; i < kProcs; ++i) {
    if (i % 2 == 0) {
      EXPECT_TRUE(ReadsDead(space(), ids[i])) << i;
    } else {
      EXPECT_TRUE(ReadsAlive(space(), ids[i])) << i;
    }
  }
  auto removed = space().RemoveDeadLeases();
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed.value(), kProcs / 2);
  auto list = space().ListLeases();
  ASSERT_TRUE(list.ok());
  for (int i = 0; i < kProcs; ++i) {
    EXPECT_EQ(Find(*list, ids[i]) != nullptr, i % 2 == 1) << i;
  }
}

}  // namespace
}  // namespace imgstore::locking
