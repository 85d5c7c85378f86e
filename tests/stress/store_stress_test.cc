// The multi-process stress test (issue 7, docs/stress.md): 8 worker processes (stress_worker)
// run a seeded random mix of imgstore commands for a bounded time against one store and one
// docker-registry, while a watchdog thread looks for an operation past its deadline. Then the
// merged operation log must account for every outcome (op_log.h), and the store, once every
// mount is gone and gc ran, must be clean: check exits 0, nothing is mounted, df agrees with
// check and with the files on disk.
//
// IMGSTORE_STRESS_SECONDS (default 60), IMGSTORE_STRESS_SEED (replay), IMGSTORE_STRESS_WORKERS
// (default 8) and IMGSTORE_STRESS_DEADLINE_SECONDS (default 60) steer it.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/cli_runner.h"
#include "common/fs_tree.h"
#include "common/layer_image.h"
#include "common/registry_fixture.h"
#include "common/subprocess.h"
#include "common/tar_builder.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "stress/op_log.h"

namespace imgstore::testing::stress {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

std::string WorkerBinary() { return IMGSTORE_TEST_BIN_DIR "/tests/stress/stress_worker"; }

// A layer tar of `files` files of `bytes` pseudo-random bytes each, under dir/.
std::string RandomLayer(uint32_t seed, const std::string& dir, int files, size_t bytes) {
  std::mt19937 rng(seed);
  TarBuilder t;
  t.Dir(dir);
  for (int i = 0; i < files; ++i) {
    std::string content(bytes, '\0');
    for (char& c : content) c = static_cast<char>('a' + rng() % 26);  // compressible, not empty
    t.File(dir + "/f" + std::to_string(i), content);
  }
  return t.Finish();
}

CliResult MustRun(const std::string& root, const std::vector<std::string>& args) {
  CliResult r = RunImgstore(root, args, {}, seconds(120));
  EXPECT_EQ(r.exit_code, 0) << "imgstore " << args[0] << ": " << r.Describe();
  return r;
}

// Polls the workers' logs for an operation running longer than the deadline; on one, prints
// `imgstore locks` (who holds what) and remembers the deadlock for the main thread.
class Watchdog {
 public:
  Watchdog(std::string root, std::vector<std::string> logs, int64_t deadline_ns)
      : root_(std::move(root)), logs_(std::move(logs)), deadline_ns_(deadline_ns) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  std::vector<std::string> findings() {
    std::lock_guard<std::mutex> lock(mu_);
    return findings_;
  }

 private:
  void Loop() {
    std::set<std::pair<int, int>> reported;
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, milliseconds(500), [this] { return stop_; })) {
      lock.unlock();
      for (const std::string& path : logs_) {
        for (const OpRecord& r : ParseLog(ReadFile(path)).running) {
          int64_t took = NowNs() - r.start_ns;
          if (took <= deadline_ns_ || !reported.insert({r.worker, r.seq}).second) continue;
          CliResult locks = RunImgstore(root_, {"locks"}, {}, seconds(30));
          std::string finding = "deadlock? " + Describe(r) + " has run for " +
                                std::to_string(took / 1'000'000) + " ms; imgstore locks said (" +
                                locks.Describe() + ")";
          std::fprintf(stderr, "watchdog: %s\n", finding.c_str());
          std::lock_guard<std::mutex> g(mu_);
          findings_.push_back(finding);
        }
      }
      lock.lock();
    }
  }

  std::string root_;
  std::vector<std::string> logs_;
  int64_t deadline_ns_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::string> findings_;
  std::thread thread_;
};

// Files directly in dir, and their total size.
std::pair<uint64_t, uint64_t> CountFiles(const std::string& dir) {
  uint64_t n = 0, bytes = 0;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return {0, 0};
  while (struct dirent* e = ::readdir(d)) {
    struct stat st;
    if (e->d_name[0] == '.' || ::stat((dir + "/" + e->d_name).c_str(), &st) != 0) continue;
    if (S_ISREG(st.st_mode)) {
      ++n;
      bytes += static_cast<uint64_t>(st.st_size);
    }
  }
  ::closedir(d);
  return {n, bytes};
}

class StoreStressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry or skopeo is not installed";
    std::string error;
    ASSERT_TRUE(registry_.Start({}, &error)) << error;
    root_ = dir_.Sub("store");
  }

  // The images the workers pull: four small ones, A and B sharing their base layer, in an OCI
  // layout, in docker archives and in the registry. Returns the pull specs.
  std::vector<std::string> PrepareSources() {
    const std::string base = RandomLayer(1, "base", 4, 32 << 10);
    std::vector<TestImage> images;
    images.push_back(
        ImageOfLayers({base, RandomLayer(2, "a", 2, 16 << 10)}, LayerCompression::kGzip, "a"));
    images.push_back(
        ImageOfLayers({base, RandomLayer(3, "b", 3, 8 << 10), RandomLayer(4, "b2", 1, 200 << 10)},
                      LayerCompression::kZstd, "b"));
    TestImageSpec c;
    c.seed = 7;
    c.layers = 3;
    c.layer_bytes = 64 << 10;
    images.push_back(MakeTestImage(c));
    TestImageSpec d;
    d.seed = 8;
    d.layers = 2;
    d.layer_bytes = 512 << 10;
    d.docker_media_types = true;
    images.push_back(MakeTestImage(d));

    const std::string layout = dir_.Sub("sources/oci");
    const std::string setup_root = dir_.Sub("setup-store");
    std::vector<std::string> specs;
    for (size_t i = 0; i < images.size(); ++i) {
      const std::string ref = "img" + std::to_string(i);
      WriteOciLayout(images[i], layout, ref);
      MustRun(setup_root, {"pull", "-q", "oci:" + layout + ":" + ref});
      const std::string id = images[i].id.ToString();
      const std::string remote = registry_.host() + "/stress/src:" + ref;
      MustRun(setup_root, {"push", "-q", id, remote});
      // docker-archive needs a Docker config: the v2s2 image (d) and the gzip ones are fine.
      const std::string archive = dir_.Sub("sources/" + ref + ".tar");
      MustRun(setup_root, {"push", "-q", id, "docker-archive:" + archive});
      specs.push_back("oci:" + layout + ":" + ref);
      specs.push_back(remote);
      specs.push_back("docker-archive:" + archive);
    }
    return specs;
  }

  TempDir dir_;
  TestRegistry registry_;
  std::string root_;
};

TEST_F(StoreStressTest, WorkersKeepEveryInvariant) {
  const uint64_t run_seconds = EnvNumber("IMGSTORE_STRESS_SECONDS", 60);
  const int workers = static_cast<int>(EnvNumber("IMGSTORE_STRESS_WORKERS", 8));
  const int64_t deadline_ns =
      static_cast<int64_t>(EnvNumber("IMGSTORE_STRESS_DEADLINE_SECONDS", 60)) * 1'000'000'000;
  const uint64_t seed = EnvNumber("IMGSTORE_STRESS_SEED", std::random_device{}());
  std::printf("stress: seed %llu (replay with IMGSTORE_STRESS_SEED=%llu), %d workers, %llu s\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed), workers,
              static_cast<unsigned long long>(run_seconds));
  std::fflush(stdout);
  RecordProperty("seed", std::to_string(seed));

  std::vector<std::string> sources = PrepareSources();
  ASSERT_FALSE(HasFailure()) << "could not prepare the source images";
  ::mkdir(dir_.Sub("work").c_str(), 0755);
  const std::string plan_path = dir_.Sub("plan.json");
  {
    json plan = {{"root", root_},
                 {"registry", registry_.host()},
                 {"sources", sources},
                 {"work_dir", dir_.Sub("work")},
                 // RunImgstore's kill comes well after the watchdog's report.
                 {"op_timeout_ms", deadline_ns / 1'000'000 * 2 + 30'000}};
    std::ofstream(plan_path) << plan.dump(2);
  }

  const int64_t until_ns = NowNs() + static_cast<int64_t>(run_seconds) * 1'000'000'000;
  std::vector<std::string> logs;
  std::vector<Subprocess> procs(static_cast<size_t>(workers));
  for (int w = 0; w < workers; ++w) {
    logs.push_back(dir_.Sub("work/w" + std::to_string(w) + ".log"));
    std::string error;
    ASSERT_TRUE(procs[static_cast<size_t>(w)].Start(
        WorkerBinary(),
        {plan_path, std::to_string(w), std::to_string(seed * 1000 + static_cast<uint64_t>(w)),
         std::to_string(until_ns), logs.back()},
        &error))
        << error;
  }
  std::vector<std::string> deadlocks;
  {
    Watchdog watchdog(root_, logs, deadline_ns);
    // A worker ends after its last operation: at most the run, one operation's timeout and its
    // final umounts later.
    const auto wait = milliseconds(deadline_ns / 1'000'000 * 4 + 120'000);
    auto end = std::chrono::steady_clock::now() + seconds(run_seconds) + wait;
    for (int w = 0; w < workers; ++w) {
      auto left = std::chrono::duration_cast<milliseconds>(end - std::chrono::steady_clock::now());
      std::optional<int> st = procs[static_cast<size_t>(w)].Wait(std::max(left, milliseconds(1)));
      EXPECT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
          << "worker " << w << ": "
          << (st ? Subprocess::DescribeStatus(*st) : "still running at the end");
    }
    deadlocks = watchdog.findings();
  }
  for (const std::string& d : deadlocks) ADD_FAILURE() << d;

  std::vector<OpRecord> all;
  for (const std::string& path : logs) {
    WorkerLog log = ParseLog(ReadFile(path));
    all.insert(all.end(), log.finished.begin(), log.finished.end());
    all.insert(all.end(), log.running.begin(), log.running.end());
  }
  Analysis analysis = Analyze(all, {.deadline_ns = deadline_ns});
  std::printf("stress: %zu operations, seed %llu\n%s", all.size(),
              static_cast<unsigned long long>(seed), SummaryTable(analysis).c_str());
  std::fflush(stdout);
  EXPECT_GT(all.size(), static_cast<size_t>(workers) * 5) << "too few operations ran to test";
  size_t shown = 0;
  for (const Violation& v : analysis.violations) {
    if (++shown > 25) {
      ADD_FAILURE() << analysis.violations.size() - 25 << " more violations";
      break;
    }
    ADD_FAILURE() << v.why << "\n  " << Describe(v.op) << "\n  stderr: " << v.op.err;
  }

  // The end: every mount gone, gc, and a store that check, df and the disk agree on.
  CliResult mounts = MustRun(root_, {"mounts", "--format", "json"});
  json mj = json::parse(mounts.out, nullptr, false);
  ASSERT_TRUE(mj.is_array()) << mounts.out;
  for (const json& m : mj) MustRun(root_, {"umount", m.value("name", "")});
  MustRun(root_, {"gc"});
  CliResult check = MustRun(root_, {"check", "--verify-content", "--format", "json"});
  CliResult df = MustRun(root_, {"df", "--format", "json"});
  CliResult list = MustRun(root_, {"list", "--format", "json"});
  json cj = json::parse(check.out, nullptr, false);
  json dj = json::parse(df.out, nullptr, false);
  json lj = json::parse(list.out, nullptr, false);
  ASSERT_TRUE(cj.is_object() && dj.is_object() && lj.is_array()) << check.out << "\n"
                                                                 << df.out << "\n"
                                                                 << list.out;
  EXPECT_TRUE(cj.value("clean", false)) << check.out;
  auto [files, bytes] = CountFiles(root_ + "/blobs/sha256");
  EXPECT_EQ(dj.value("blobs", 0ull), files) << df.out;
  EXPECT_EQ(dj.value("blob_bytes", 0ull), bytes) << df.out;
  EXPECT_EQ(cj.value("blobs_checked", 0ull), files) << check.out;
  EXPECT_EQ(dj.value("images", 0ull), lj.size()) << df.out << list.out;
  EXPECT_EQ(dj.value("reclaimable_blobs", 1ull), 0u) << "gc left garbage: " << df.out;
  EXPECT_EQ(dj.value("reclaimable_layers", 1ull), 0u) << "gc left garbage: " << df.out;
  for (const json& img : lj) MustRun(root_, {"inspect", img.value("id", "")});
  CliResult findmnt = RunProgram("/usr/bin/findmnt", {"-rn", "-o", "TARGET"});
  std::istringstream mounted(findmnt.out);
  for (std::string line; std::getline(mounted, line);) {
    EXPECT_NE(line.rfind(root_, 0), 0u) << "still mounted after every umount: " << line;
  }
  EXPECT_FALSE(Exists(root_ + "/mounts") && !SnapshotTree(root_ + "/mounts").empty())
      << TreeText(SnapshotTree(root_ + "/mounts"));
  if (HasFailure()) {
    // The logs outlive the test's directory, for a look at what each worker did.
    const char* tmp = std::getenv("TMPDIR");
    const std::string kept =
        std::string(tmp && *tmp ? tmp : "/tmp") + "/imgstore-stress-" + std::to_string(seed);
    RunProgram("/bin/sh", {"-c", "mkdir -p '" + kept + "' && cp '" + dir_.Sub("work") +
                                     "'/*.log '" + kept + "'/"});
    std::printf("stress: failed; replay with IMGSTORE_STRESS_SEED=%llu; worker logs in %s\n",
                static_cast<unsigned long long>(seed), kept.c_str());
  }
}

}  // namespace
}  // namespace imgstore::testing::stress
