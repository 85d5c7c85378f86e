// LockSpace::RemoveIfUnused: a lock file is deleted only when nobody holds it, and a process that
// locks a file at the moment it is unlinked notices and moves to the new file, so two holders of
// one name can never sit on two different files (tested between real processes).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <thread>

#include "locking/lock_record.h"
#include "locking_test_util.h"

namespace imgstore::locking {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

ino_t InodeOf(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class LockRemoveTest : public LockingTest {
 protected:
  std::string PathOf(const std::string& name) { return dir() + "/" + name + ".lock"; }

  // Creates the lock file (and closes it again: no handle remains in this process).
  void Touch(const std::string& name) {
    Lock lock = GetLock(name);
    auto g = lock.TryAcquire(LockMode::kExclusive, "touch");
    ASSERT_TRUE(g.ok()) << g.status().ToString();
  }
};

TEST_F(LockRemoveTest, RemovesAFileNobodyUses) {
  Touch("a");
  ASSERT_TRUE(Exists(PathOf("a")));
  auto removed = space().RemoveIfUnused("a");
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(Exists(PathOf("a")));
  // Absent: nothing to do, and nothing is created.
  removed = space().RemoveIfUnused("a");
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE(*removed);
  EXPECT_FALSE(Exists(PathOf("a")));
}

TEST_F(LockRemoveTest, RefusesInvalidNames) {
  auto removed = space().RemoveIfUnused("../x");
  ASSERT_FALSE(removed.ok());
  EXPECT_EQ(removed.status().code(), Code::kInvalidArgument);
  removed = space().RemoveIfUnused(".hidden");
  EXPECT_FALSE(removed.ok());
}

TEST_F(LockRemoveTest, AHolderInThisProcessKeepsTheFile) {
  for (LockMode mode : {LockMode::kShared, LockMode::kUpgradable, LockMode::kExclusive}) {
    SCOPED_TRACE(ModeArg(mode));
    Lock lock = GetLock("held");
    auto g = lock.Acquire(mode, Opts(1s));
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    auto removed = space().RemoveIfUnused("held");
    ASSERT_TRUE(removed.ok()) << removed.status().ToString();
    EXPECT_FALSE(*removed);
    EXPECT_TRUE(Exists(PathOf("held")));
    g->Release();
    removed = space().RemoveIfUnused("held");
    ASSERT_TRUE(removed.ok());
    EXPECT_TRUE(*removed);
    EXPECT_FALSE(Exists(PathOf("held")));
  }
}

TEST_F(LockRemoveTest, AHolderInAnotherProcessKeepsTheFile) {
  for (LockMode mode : {LockMode::kShared, LockMode::kExclusive}) {
    SCOPED_TRACE(ModeArg(mode));
    Subprocess holder = HoldNow("other", mode, "holder");
    auto removed = space().RemoveIfUnused("other");
    ASSERT_TRUE(removed.ok()) << removed.status().ToString();
    EXPECT_FALSE(*removed);
    EXPECT_TRUE(Exists(PathOf("other")));
    holder.WriteLine("release");
    holder.CloseStdin();
    ASSERT_TRUE(holder.Wait(10s).has_value());
    removed = space().RemoveIfUnused("other");
    ASSERT_TRUE(removed.ok());
    EXPECT_TRUE(*removed);
  }
}

TEST_F(LockRemoveTest, AHandleOpenedBeforeTheRemovalLocksTheNewFile) {
  Lock before = GetLock("moved");
  const ino_t old_inode = InodeOf(PathOf("moved"));
  // The handle keeps the old file open, but holds nothing: removal goes ahead.
  auto removed = space().RemoveIfUnused("moved");
  ASSERT_TRUE(removed.ok());
  ASSERT_TRUE(*removed);
  auto g = before.Acquire(LockMode::kExclusive, Opts(1s));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  // The lock is on the file now at the path, where another process looks for it.
  ASSERT_TRUE(Exists(PathOf("moved")));
  EXPECT_NE(InodeOf(PathOf("moved")), old_inode);
  Subprocess other = Hold("moved", LockMode::kExclusive, "other", "try");
  EXPECT_TRUE(ExpectReport(other, "busy", 10s));
  g->Release();
  // And a try through the old handle works too.
  auto t = before.TryAcquire(LockMode::kShared, "try");
  EXPECT_TRUE(t.ok()) << t.status().ToString();
}

TEST_F(LockRemoveTest, AWaiterInAnotherProcessMovesToTheNewFile) {
  // This process holds the lock; a helper waits for it; we release and remove at once. The
  // helper may wake on the unlinked file: it must notice, and hold the file at the path.
  Lock lock = GetLock("handoff");
  auto g = lock.Acquire(LockMode::kExclusive, Opts(1s));
  ASSERT_TRUE(g.ok());
  Subprocess waiter = Hold("handoff", LockMode::kExclusive, "waiter", "10000");
  ASSERT_TRUE(ExpectReport(waiter, "waiting", 10s));
  std::this_thread::sleep_for(50ms);  // let it really wait in the kernel
  g->Release();
  (void)space().RemoveIfUnused("handoff");  // wins or loses the race; both are fine
  ASSERT_TRUE(ExpectReport(waiter, "acquired", 10s));
  // Whatever happened, the waiter's lock is on the file at the path: we cannot take it.
  Lock again = GetLock("handoff");
  auto t = again.TryAcquire(LockMode::kShared, "probe");
  EXPECT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kBusy) << t.status().ToString();
  auto removed = space().RemoveIfUnused("handoff");
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE(*removed);
}

// Many processes and threads count under the lock while this process removes its file as often
// as it can: a lost update means two holders overlapped on two different files. A removal only
// succeeds in the instants when nobody holds or waits, so a round may see none: rounds repeat
// (each checked for lost updates) until removals have happened.
int CountRound(LockSpace& space, const std::string& dir, const std::string& counter,
               const std::function<Subprocess(const std::vector<std::string>&)>& helper) {
  { std::ofstream(counter) << "0\n"; }
  constexpr int kProcesses = 2;
  constexpr int kPerProcess = 500;
  std::vector<Subprocess> helpers;
  for (int i = 0; i < kProcesses; ++i) {
    helpers.push_back(helper({"count", dir, "race", counter, std::to_string(kPerProcess),
                              i == 0 ? "upgrade" : "exclusive"}));
  }
  // Threads of this process count too, through one Lock handle shared by them.
  constexpr int kThreads = 2;
  std::atomic<int> thread_errors{0};
  auto handle = space.Get("race");
  EXPECT_TRUE(handle.ok());
  if (!handle.ok()) return 0;
  std::vector<std::thread> threads;
  for (int n = 0; n < kThreads; ++n) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerProcess; ++i) {
        auto g = handle->Acquire(LockMode::kExclusive, Opts(20s));
        if (!g.ok()) {
          ++thread_errors;
          return;
        }
        std::fstream f(counter, std::ios::in | std::ios::out);
        long v = 0;
        f >> v;
        std::this_thread::yield();
        f.seekp(0);
        f << v + 1 << "\n";
      }
    });
  }
  std::atomic<bool> done{false};
  std::atomic<int> removals{0};
  std::atomic<int> remove_errors{0};
  std::thread remover([&] {
    while (!done.load()) {
      auto r = space.RemoveIfUnused("race");
      if (!r.ok()) {
        ++remove_errors;
      } else if (*r) {
        ++removals;
      }
    }
  });
  for (auto& h : helpers) EXPECT_TRUE(ExpectReport(h, "done", 120s));
  for (auto& th : threads) th.join();
  done = true;
  remover.join();
  EXPECT_EQ(thread_errors.load(), 0);
  EXPECT_EQ(remove_errors.load(), 0);
  std::ifstream in(counter);
  long total = 0;
  in >> total;
  EXPECT_EQ(total, (kProcesses + kThreads) * kPerProcess) << "lost updates: two holders at once";
  return removals.load();
}

TEST_F(LockRemoveTest, RemovalsRacingAcquirersNeverLetTwoHolders) {
  int removals = 0;
  for (int round = 0; round < 20 && removals < 3 && !HasFailure(); ++round) {
    removals += CountRound(space(), dir(), tmp_.Sub("counter"),
                           [this](const std::vector<std::string>& args) { return Helper(args); });
  }
  EXPECT_GE(removals, 3) << "the race was not exercised";
}

// A remover killed after marking the file but before unlinking it leaves a linked file with the
// mark set: acquisitions still work on it (and clear the mark).
TEST_F(LockRemoveTest, AMarkLeftByAKilledRemoverIsHarmless) {
  Touch("marked");
  int fd = ::open(PathOf("marked").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  void* map = ::mmap(nullptr, kHeaderSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  auto* page = static_cast<WakePage*>(map);
  page->removed.store(1);
  const ino_t inode = InodeOf(PathOf("marked"));
  {
    Lock lock = GetLock("marked");
    auto g = lock.Acquire(LockMode::kShared, Opts(1s));
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ(InodeOf(PathOf("marked")), inode);  // same file, not replaced
    EXPECT_EQ(page->removed.load(), 0u);
    Subprocess other = Hold("marked", LockMode::kExclusive, "other", "try");
    EXPECT_TRUE(ExpectReport(other, "busy", 10s));
  }
  ::munmap(map, kHeaderSize);
  ::close(fd);
}

}  // namespace
}  // namespace imgstore::locking
