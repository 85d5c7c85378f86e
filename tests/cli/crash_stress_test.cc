// Crash torture of the commands that change metadata: `imgstore gc`, `rmi` and `tag` killed with
// SIGKILL at random instants, 15 times each, on a store with many images. After every kill the
// store must be consistent (`imgstore check` exits 0: a gc killed between its commit and its
// unlinks left its intent log, gc_pending, and the open of `check` finishes those removals) and
// the next operation must succeed. The instants are drawn from the command's measured run time, so
// that kills land before, inside and after its write transaction.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <thread>

#include "cli/populate.h"
#include "common/cli_runner.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "store/db.h"

namespace imgstore::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Per command. The crash torture (tests/stress/crash_torture_stress_test.cc) kills gc, rmi and tag
// too, with its checks of what is left; these keep a store of many images and count the kills
// that land in gc's intent-log window.
constexpr int kKills = 15;

class CrashStressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.Sub("root");
    auto st = store::Store::Open(root_);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    store_ = std::move(*st);
    for (int i = 0; i < kKills + 10; ++i) {
      AddImageForTest(*store_, static_cast<uint32_t>(100 + i), "img" + std::to_string(i) + ":1");
    }
  }

  // Starts `imgstore --root ROOT args...`, kills it after `delay` (if still running), and reaps
  // it. Returns true when the kill came before the command ended.
  bool RunAndKill(const std::vector<std::string>& args, std::chrono::microseconds delay) {
    std::vector<std::string> argv = {"--root", root_};
    argv.insert(argv.end(), args.begin(), args.end());
    Subprocess p;
    std::string error;
    EXPECT_TRUE(p.Start(ImgstoreBinary(), argv, &error)) << error;
    std::this_thread::sleep_for(delay);
    bool running = !p.Wait(0ms).has_value();
    if (running) p.KillAndWait();
    return running;
  }

  // How long the command takes when it is not killed (median of 3), to spread kill instants.
  // args_for(i) gives the arguments of run i (an rmi needs another image each time).
  std::chrono::microseconds Measure(const std::function<std::vector<std::string>(int)>& args_for) {
    std::vector<int64_t> us;
    for (int i = 0; i < 3; ++i) {
      auto t0 = Clock::now();
      CliResult r = RunImgstore(root_, args_for(i));
      us.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
      EXPECT_EQ(r.exit_code, 0) << r.Describe();
    }
    // The fastest: a slow first run (cold caches, a loaded machine) would spread the kills past
    // the end of most runs.
    std::sort(us.begin(), us.end());
    return std::chrono::microseconds(us[0]);
  }

  // `imgstore check` exits 0 and reports nothing.
  void ExpectChecked(const std::string& after) {
    CliResult r = RunImgstore(root_, {"check"});
    EXPECT_EQ(r.exit_code, 0) << "after " << after << ": " << r.Describe() << "\n" << r.out;
    EXPECT_EQ(r.out, "") << "after " << after;
  }

  // Entries of gc's intent log, read from meta.db without opening the store (an open would
  // finish them): non-zero right after a kill that landed between gc's commit and its unlinks.
  int64_t PendingEntries() {
    auto db = store::Db::Open(root_ + "/meta.db");
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    if (!db.ok()) return 0;
    auto txn = (*db)->BeginRead();
    EXPECT_TRUE(txn.ok());
    auto st = txn->Prepare("SELECT count(*) FROM gc_pending");
    EXPECT_TRUE(st.ok());
    return st.ok() && *st->Step() ? st->ColumnInt64(0) : 0;
  }

  TempDir tmp_;
  std::string root_;
  std::unique_ptr<store::Store> store_;
  std::mt19937 rng_{12345};
};

TEST_F(CrashStressTest, GcKilledAtRandomInstants) {
  const auto span = Measure([](int) { return std::vector<std::string>{"gc"}; });
  int killed = 0;
  int in_window = 0;  // kills that left gc_pending entries (between the commit and the unlinks)
  for (int i = 0; i < kKills; ++i) {
    // Garbage for this round: an image removed (its 4 blobs, manifest row, 2 layer rows) and
    // a few stray blobs.
    ASSERT_TRUE(store_->Remove("img" + std::to_string(i) + ":1").ok());
    for (int s = 0; s < 3; ++s) {
      std::string bytes = "stray " + std::to_string(i) + " " + std::to_string(s);
      ASSERT_TRUE(store_->IngestBlob(Digest::Of(bytes), {}, bytes).ok());
    }
    std::uniform_int_distribution<int64_t> pick(0, span.count());
    killed += RunAndKill({"gc"}, std::chrono::microseconds(pick(rng_))) ? 1 : 0;
    const std::string what = "gc kill #" + std::to_string(i);
    in_window += PendingEntries() > 0 ? 1 : 0;
    ExpectChecked(what);
    EXPECT_EQ(PendingEntries(), 0) << what << ": the open of `check` did not finish the gc";
    CliResult next = RunImgstore(root_, {"gc"});
    ASSERT_EQ(next.exit_code, 0) << what << ": " << next.Describe();
    ExpectChecked(what + " and a complete gc");
    if (::testing::Test::HasFailure()) return;
  }
  auto usage = store_->GetDiskUsage();
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->reclaimable_blobs, 0u);
  EXPECT_EQ(usage->images, 10u);
  EXPECT_GT(killed, kKills / 4) << "most kills came after the command ended";
  std::printf("gc: %d of %d runs killed, %d of them between the commit and the unlinks\n", killed,
              kKills, in_window);
}

TEST_F(CrashStressTest, RmiKilledAtRandomInstants) {
  const auto span = Measure([](int i) {
    return std::vector<std::string>{"rmi", "img" + std::to_string(i) + ":1"};
  });
  int killed = 0;
  for (int i = 3; i < kKills + 3; ++i) {
    const std::string name = "img" + std::to_string(i) + ":1";
    std::uniform_int_distribution<int64_t> pick(0, span.count() * 3 / 2);
    killed += RunAndKill({"rmi", name}, std::chrono::microseconds(pick(rng_))) ? 1 : 0;
    const std::string what = "rmi kill #" + std::to_string(i);
    ExpectChecked(what);
    // Either the image is gone entirely or it is intact; the next rmi of it settles it.
    auto resolved = store_->ResolveImage(name);
    if (resolved.ok()) {
      auto details = store_->InspectImage(name);
      ASSERT_TRUE(details.ok()) << what << ": " << details.status().ToString();
      CliResult next = RunImgstore(root_, {"rmi", name});
      ASSERT_EQ(next.exit_code, 0) << what << ": " << next.Describe();
    } else {
      ASSERT_EQ(resolved.status().code(), Code::kNotFound) << resolved.status().ToString();
    }
    ExpectChecked(what + " and a complete rmi");
    if (::testing::Test::HasFailure()) return;
  }
  CliResult gc = RunImgstore(root_, {"gc"});
  EXPECT_EQ(gc.exit_code, 0) << gc.Describe();
  ExpectChecked("the final gc");
  EXPECT_GT(killed, kKills / 4) << "most kills came after the command ended";
}

TEST_F(CrashStressTest, TagKilledAtRandomInstants) {
  const auto span = Measure([](int) {
    return std::vector<std::string>{"tag", "img0:1", "warmup:1"};
  });
  int killed = 0;
  for (int i = 0; i < kKills; ++i) {
    // The name moves between images: each tag is a real change.
    const std::string image = "img" + std::to_string(i % 7) + ":1";
    const std::string name = "moving:" + std::to_string(i % 3);
    std::uniform_int_distribution<int64_t> pick(0, span.count() * 3 / 2);
    killed += RunAndKill({"tag", image, name}, std::chrono::microseconds(pick(rng_))) ? 1 : 0;
    const std::string what = "tag kill #" + std::to_string(i);
    ExpectChecked(what);
    CliResult next = RunImgstore(root_, {"tag", image, name});
    ASSERT_EQ(next.exit_code, 0) << what << ": " << next.Describe();
    auto a = store_->ResolveImage(name);
    auto b = store_->ResolveImage(image);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b) << what;
    ExpectChecked(what + " and a complete tag");
    if (::testing::Test::HasFailure()) return;
  }
  EXPECT_GT(killed, kKills / 4) << "most kills came after the command ended";
}

}  // namespace
}  // namespace imgstore::testing
