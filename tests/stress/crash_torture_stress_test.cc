// Crash torture of every write operation of the imgstore command (issue 7): pull (registry, oci:,
// docker-archive:, a gzip oci-archive:), push (registry, oci:), tag, untag, rmi, gc, unpack, mount,
// umount, commit, login, logout and check --repair are each killed with SIGKILL at random
// instants drawn from their measured run time, so that kills land before, inside and after their
// write transactions. After every kill:
//   - nothing is left outside the store: no temporary file in the store's parent, in the
//     command's $TMPDIR, in /tmp or /var/tmp, or beside the auth file or an OCI destination;
//   - the store opens without a person's help (`imgstore list`, no flag) and `imgstore check`
//     exits 0 with nothing to report;
//   - what the operation changes is all or nothing (names of an untag, an rmi'd image, a mount);
//   - the operation retried succeeds and its result is right (the pulled image unpacks to its
//     tree, the pushed manifest has the stored digest, the committed image unpacks with the
//     change, …);
//   - after a gc the store holds exactly what its images and mounts need (blob files, layer
//     directories, mounts), and df finds nothing reclaimable.
// IMGSTORE_CRASH_TRIALS=N spreads N trials over the operations (default 64, 4 each);
// IMGSTORE_CRASH_SEED=S replays the instants of a run (each test prints its seed).
// docs/crash-torture.md.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/cli_runner.h"
#include "common/fs_tree.h"
#include "common/layer_image.h"
#include "common/registry_fixture.h"
#include "common/tar_builder.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "store/store.h"
#include "store/store_test_util.h"
#include "stress/crash_torture.h"

namespace imgstore::testing {
namespace {

using namespace torture;

// The operations below: the CI trials are spread over them.
constexpr int kOperations = 16;

// An image with a known tree: three gzip layers (a base that is the same for every image made
// with shared_base, so that later unpacks find it cached), a whiteout in the second.
struct TreeImage {
  TestImage image;
  std::map<std::string, std::string> files;  // path → content
  std::vector<std::string> gone;             // paths the layers remove
};

TreeImage MakeTreeImage(uint32_t seed, size_t bytes, bool shared_base = false) {
  using store::testing::RandomBytes;
  const uint32_t base_seed = shared_base ? 0 : seed;
  TreeImage t;
  t.files["etc/hostname"] = "crash-" + std::to_string(base_seed) + "\n";
  t.files["data/blob0"] = RandomBytes(bytes, base_seed * 10 + 1);
  t.files["data/blob1"] = RandomBytes(bytes, seed * 10 + 2);
  t.files["data/blob2"] = RandomBytes(bytes, seed * 10 + 3);
  t.gone = {"etc/removed"};
  std::vector<std::string> tars = {
      TarBuilder()
          .Dir("etc")
          .File("etc/hostname", t.files["etc/hostname"])
          .File("etc/removed", "soon gone")
          .Dir("data")
          .File("data/blob0", t.files["data/blob0"])
          .Finish(),
      TarBuilder().Whiteout("etc/removed").File("data/blob1", t.files["data/blob1"]).Finish(),
      TarBuilder().File("data/blob2", t.files["data/blob2"]).Finish()};
  t.image = ImageOfLayers(tars, LayerCompression::kGzip, "crash-" + std::to_string(seed));
  return t;
}

// The tree of `image` is at dir.
void ExpectTree(const std::string& dir, const TreeImage& image) {
  for (const auto& [path, content] : image.files) {
    EXPECT_TRUE(ReadFile(dir + "/" + path) == content) << dir << "/" << path << " differs";
  }
  for (const std::string& path : image.gone) {
    EXPECT_FALSE(Exists(dir + "/" + path)) << dir << "/" << path << " should be gone";
  }
}

std::string Hex(const Digest& d) { return std::string(d.hex()); }

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

// One write operation under torture. Each function gets the trial number (probes, the runs that
// measure the operation, get 1000 and 1001), so that a trial can use objects of its own.
struct Operation {
  std::string name;
  bool uses_store = true;        // false: login, logout (only the auth file)
  bool check_after_kill = true;  // false: check --repair (the store holds planted damage)
  // Whether to retry when the killed run had already done its work: commands that fail when
  // there is nothing left to do (rmi of a removed image) are not retried, their result is
  // checked instead.
  bool retry_when_done = true;
  std::function<void(int)> prepare = [](int) {};
  std::function<std::vector<std::string>(int)> args;        // without --root
  std::function<std::vector<std::string>(int)> retry_args;  // empty: args
  std::function<bool(int)> done;                            // empty: not known
  std::function<void(int)> after_kill = [](int) {};         // atomicity, leftovers
  std::function<void(int, const CliResult*)> verify;        // the result (null: not retried)
};

class CrashTortureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* d : {"parent", "tmp", "home", "xdg", "out", "auth", "inputs"}) {
      ASSERT_EQ(::mkdir(tmp_.Sub(d).c_str(), 0755), 0) << d;
    }
    root_ = tmp_.Sub("parent/store");
    env_ = {"TMPDIR=" + tmp_.Sub("tmp"), "HOME=" + tmp_.Sub("home"),
            "XDG_RUNTIME_DIR=" + tmp_.Sub("xdg"), "REGISTRY_AUTH_FILE=", "IMGSTORE_ROOT="};
  }

  // Overlay mounts made by the mount tests would keep the temporary directory busy.
  void TearDown() override {
    std::ifstream info("/proc/self/mountinfo");
    std::vector<std::string> points;
    for (std::string line; std::getline(info, line);) {
      std::istringstream fields(line);
      std::string id, parent, dev, rootdir, point;
      fields >> id >> parent >> dev >> rootdir >> point;
      if (point.starts_with(tmp_.path() + "/")) points.push_back(point);
    }
    for (auto it = points.rbegin(); it != points.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  }

  std::vector<std::string> WithRoot(const std::vector<std::string>& args) const {
    std::vector<std::string> out = {"--root", root_};
    out.insert(out.end(), args.begin(), args.end());
    return out;
  }

  // `imgstore --root ROOT args` run to its end, in the command's environment.
  CliResult Cli(const std::vector<std::string>& args) const {
    return RunProgram("/usr/bin/env", EnvArgv(env_, WithRoot(args)));
  }
  void MustRun(const std::vector<std::string>& args) const {
    CliResult r = Cli(args);
    ASSERT_EQ(r.exit_code, 0) << "imgstore " << args[0] << ": " << r.Describe();
  }

  bool Resolves(const std::string& image) const { return Cli({"inspect", image}).exit_code == 0; }

  // The id `image` names, or "" when it names none (a killed tag may not have landed yet).
  std::string IdOf(const std::string& image) const {
    CliResult r = Cli({"inspect", image});
    if (r.exit_code == 1 && r.err.find("image not known") != std::string::npos) return "";
    EXPECT_EQ(r.exit_code, 0) << "imgstore inspect " << image << ": " << r.Describe();
    Json j = Json::parse(r.out, nullptr, false);
    return j.is_array() && !j.empty() ? j[0].value("id", "") : "";
  }

  bool HasMount(const std::string& name) const {
    for (const Json& m : JsonOf(root_, {"mounts", "--format", "json"})) {
      if (m.value("name", "") == name) return true;
    }
    return false;
  }

  // Adds the image to the store (created if missing) under `name`, through the store API: fast,
  // and not one of the operations under test.
  void AddImage(const TestImage& image, const std::string& name) const {
    auto store = store::testing::OpenStore(root_);
    ASSERT_NE(store, nullptr);
    store::testing::AddImageWithBlobs(*store, image, {name});
  }

  // No temporary file of the killed command anywhere outside the store. Right after a kill
  // (`killed_pid` set), the killed login's or logout's own temporary file may still sit beside
  // the auth file: the next edit removes it (RemoveDeadTempFiles), which the check after the
  // retry proves.
  void ExpectNothingOutside(const std::set<std::string>& shared_before,
                            pid_t killed_pid = 0) const {
    EXPECT_EQ(Entries(tmp_.Sub("tmp")), std::set<std::string>{}) << "left in the command's TMPDIR";
    for (const std::string& n : Entries(tmp_.Sub("parent"))) {
      EXPECT_EQ(n, "store") << "left in the store's parent";
    }
    for (const std::string& n : SharedTempEntries()) {
      EXPECT_TRUE(shared_before.count(n)) << "left in a shared temporary directory: " << n;
    }
    for (const std::string& n : Entries(tmp_.Sub("auth"))) {
      if (killed_pid > 0 && n.starts_with(".auth.json.tmp-" + std::to_string(killed_pid) + ".")) {
        continue;
      }
      EXPECT_EQ(n, "auth.json") << "left beside the auth file";
    }
  }

  // The store after a trial: check clean, and after a gc only what is needed.
  void ExpectSettled(const std::string& what) const {
    CliResult check = Cli({"check"});
    EXPECT_EQ(check.exit_code, 0) << what << ": " << check.Describe() << "\n" << check.out;
    EXPECT_EQ(check.out, "") << what;
    MustRun({"gc"});
    ExpectOnlyWhatIsNeeded(root_, what);
  }

  // The torture of one operation: measure it, then kill it at instants spread over its run time.
  void Torture(const Operation& op) {
    const int trials = TrialsPerOperation(kOperations);
    const uint64_t seed = BaseSeed();
    std::printf("[ crash    ] %s: %d trials, IMGSTORE_CRASH_SEED=%llu replays them\n",
                op.name.c_str(), trials, static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    // The fastest of two whole runs (each also a happy-path test of the operation).
    int64_t span_us = std::numeric_limits<int64_t>::max();
    for (int probe = 1000; probe < 1002; ++probe) {
      SCOPED_TRACE(op.name + " probe run " + std::to_string(probe));
      op.prepare(probe);
      if (HasFatalFailure()) return;
      auto start = Clock::now();
      CliResult r = Cli(op.args(probe));
      span_us = std::min<int64_t>(
          span_us,
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
      op.verify(probe, &r);
      if (op.uses_store) ExpectSettled(op.name + " probe");
      if (HasFailure()) return;
    }
    std::mt19937_64 rng(seed ^ Fnv1a(op.name));
    const std::vector<double> fractions = KillFractions(trials, rng);
    int killed = 0;
    int done_before_kill = 0;
    for (int t = 0; t < trials; ++t) {
      const auto instant = std::chrono::microseconds(static_cast<int64_t>(fractions[t] * span_us));
      const std::string what = op.name + " trial " + std::to_string(t) + ", killed at " +
                               std::to_string(instant.count()) + " us of " +
                               std::to_string(span_us) +
                               " us (IMGSTORE_CRASH_SEED=" + std::to_string(seed) + ")";
      SCOPED_TRACE(what);
      op.prepare(t);
      if (HasFatalFailure()) return;
      const std::set<std::string> shared_before = SharedTempEntries();
      KillOutcome k = RunAndKill(env_, WithRoot(op.args(t)), instant);
      if (k.killed) {
        ++killed;
      } else {
        ASSERT_TRUE(WIFEXITED(k.status) && WEXITSTATUS(k.status) == 0)
            << "the run that was not killed failed: " << Subprocess::DescribeStatus(k.status);
      }
      ExpectNothingOutside(shared_before, k.pid);
      if (op.uses_store) {
        CliResult list = Cli({"list"});  // the next command, with no flag
        ASSERT_EQ(list.exit_code, 0)
            << "the store does not open after the kill: " << list.Describe();
      }
      if (op.check_after_kill) {
        CliResult check = Cli({"check"});
        ASSERT_EQ(check.exit_code, 0) << check.Describe() << "\n" << check.out;
        EXPECT_EQ(check.out, "");
      }
      op.after_kill(t);
      const bool done = op.done && op.done(t);
      if (done && k.killed) ++done_before_kill;
      if (!done || op.retry_when_done) {
        CliResult r = Cli(op.retry_args ? op.retry_args(t) : op.args(t));
        ASSERT_EQ(r.exit_code, 0) << "the retry failed: " << r.Describe();
        op.verify(t, &r);
      } else {
        op.verify(t, nullptr);
      }
      if (op.uses_store) ExpectSettled(what);
      ExpectNothingOutside(shared_before);
      if (HasFailure()) return;
    }
    std::printf(
        "[ crash    ] %s: %d of %d runs killed while running (%d after their commit), "
        "span %lld us\n",
        op.name.c_str(), killed, trials, done_before_kill, static_cast<long long>(span_us));
    // Runs are often faster than the measured one on a busy machine: few kills are enough, none
    // would prove nothing.
    EXPECT_GE(killed, std::max(1, trials / 4)) << "every kill came after the command ended";
  }

  // --- Operations shared by several tests ------------------------------------------------------

  // A pull of `source` (the image `image`) named pulled:1: every third trial into no store at
  // all, the others into a store holding another image, after the pulled one was removed.
  Operation Pull(const std::string& name, std::function<std::string(int)> source,
                 const TreeImage& image, bool same_manifest) {
    static const TreeImage keeper = MakeTreeImage(8, 4096);
    Operation op;
    op.name = name;
    op.prepare = [this, &image](int t) {
      if (t % 3 == 0) {
        ASSERT_TRUE(RemoveTree(root_));
        return;
      }
      if (!Resolves("keeper:1")) AddImage(keeper.image, "keeper:1");
      if (Resolves(image.image.id.ToString())) {
        MustRun({"rmi", "-f", image.image.id.ToString()});
        MustRun({"gc"});
      }
    };
    op.args = [source](int t) {
      return std::vector<std::string>{"pull", "-q", source(t), "--name", "pulled:1"};
    };
    op.done = [this, &image](int) { return Resolves(image.image.id.ToString()); };
    op.verify = [this, &image, same_manifest](int t, const CliResult*) {
      Json j = JsonOf(root_, {"inspect", "pulled:1"});
      ASSERT_TRUE(j.is_array() && j.size() == 1) << j.dump();
      EXPECT_EQ(j[0].value("id", ""), image.image.id.ToString());
      if (same_manifest) {
        EXPECT_EQ(j[0].value("digest", ""), image.image.manifest_digest.ToString());
      }
      const std::string out = tmp_.Sub("out/pulled-" + std::to_string(t));
      MustRun({"unpack", "pulled:1", out});
      ExpectTree(out, image);
      ASSERT_TRUE(RemoveTree(out));
    };
    return op;
  }

  TempDir tmp_;
  std::string root_;
  std::vector<std::string> env_;
};

// --- Pull ----------------------------------------------------------------------------------------

TEST_F(CrashTortureTest, PullFromARegistry) {
  if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry or skopeo is not installed";
  TestRegistry registry;
  std::string error;
  ASSERT_TRUE(registry.Start({}, &error)) << error;
  static const TreeImage image = MakeTreeImage(7, 1 << 20);
  WriteOciLayout(image.image, tmp_.Sub("inputs/layout"), "v1");
  ASSERT_EQ(registry.SkopeoPush("oci:" + tmp_.Sub("inputs/layout") + ":v1", "crash/src:1"), "");
  const std::string ref = registry.host() + "/crash/src:1";
  Torture(Pull(
      "pull registry", [ref](int) { return ref; }, image, true));
}

TEST_F(CrashTortureTest, PullFromAnOciLayout) {
  static const TreeImage image = MakeTreeImage(7, 1 << 20);
  WriteOciLayout(image.image, tmp_.Sub("inputs/layout"), "v1");
  const std::string source = "oci:" + tmp_.Sub("inputs/layout") + ":v1";
  Torture(Pull(
      "pull oci", [source](int) { return source; }, image, true));
}

TEST_F(CrashTortureTest, PullFromAnArchive) {
  // The archives are written by imgstore itself from a store of its own: a docker-archive (even
  // trials) and a gzip-compressed oci-archive, which the pull decompresses into $TMPDIR (odd
  // trials).
  static const TreeImage image = MakeTreeImage(7, 1 << 20);
  const std::string seed_root = tmp_.Sub("inputs/seed-store");
  {
    auto store = store::testing::OpenStore(seed_root);
    ASSERT_NE(store, nullptr);
    store::testing::AddImageWithBlobs(*store, image.image, {"crash/src:1"});
  }
  const std::string docker = tmp_.Sub("inputs/docker.tar");
  const std::string oci = tmp_.Sub("inputs/oci.tar");
  for (const std::string& dest : {"docker-archive:" + docker, "oci-archive:" + oci + ":v1"}) {
    CliResult r = RunImgstore(seed_root, {"push", "-q", "crash/src:1", dest});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }
  const std::string gz = tmp_.Sub("inputs/oci.tar.gz");
  WriteFile(gz, Gzip(ReadFile(oci)));
  Torture(Pull(
      "pull docker-archive, oci-archive.gz",
      [docker, gz](int t) {
        return t % 2 == 0 ? "docker-archive:" + docker : "oci-archive:" + gz + ":v1";
      },
      image, false));
}

// --- Push ----------------------------------------------------------------------------------------

TEST_F(CrashTortureTest, PushToARegistry) {
  if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry or skopeo is not installed";
  TestRegistry registry;
  std::string error;
  ASSERT_TRUE(registry.Start({}, &error)) << error;
  static const TreeImage image = MakeTreeImage(9, 1 << 20);
  AddImage(image.image, "crash/src:1");
  // A repository of its own for each trial: one that holds the blobs would make the push skip
  // them.
  auto dest = [&registry](int t) {
    return registry.host() + "/pushed" + std::to_string(t) + "/x:1";
  };
  Operation op;
  op.name = "push registry";
  op.args = [dest](int t) { return std::vector<std::string>{"push", "crash/src:1", dest(t)}; };
  op.verify = [&registry](int t, const CliResult* r) {
    EXPECT_EQ(r->out, image.image.manifest_digest.ToString() + "\n");
    std::string error;
    EXPECT_EQ(registry.SkopeoManifestDigest("pushed" + std::to_string(t) + "/x:1", &error),
              image.image.manifest_digest.ToString())
        << error;
  };
  Torture(op);
}

TEST_F(CrashTortureTest, PushToAnOciLayout) {
  static const TreeImage image = MakeTreeImage(9, 1 << 20);
  AddImage(image.image, "crash/src:1");
  auto dir = [this](int t) { return tmp_.Sub("out/oci-" + std::to_string(t)); };
  Operation op;
  op.name = "push oci";
  op.args = [dir](int t) {
    return std::vector<std::string>{"push", "crash/src:1", "oci:" + dir(t) + ":v1"};
  };
  op.verify = [dir](int t, const CliResult* r) {
    EXPECT_EQ(r->out, image.image.manifest_digest.ToString() + "\n");
    // The layout holds the image and nothing else: no temporary file of the killed push.
    EXPECT_EQ(Entries(dir(t)), (std::set<std::string>{"blobs", "index.json", "oci-layout"}));
    std::set<std::string> want = {Hex(image.image.manifest_digest), Hex(image.image.id)};
    for (const std::string& l : image.image.layers) want.insert(Hex(Digest::Of(l)));
    EXPECT_EQ(Entries(dir(t) + "/blobs/sha256"), want);
    for (const std::string& hex : want) {
      EXPECT_EQ(Hex(Digest::Of(ReadFile(dir(t) + "/blobs/sha256/" + hex))), hex);
    }
    EXPECT_NE(ReadFile(dir(t) + "/index.json").find(image.image.manifest_digest.ToString()),
              std::string::npos);
  };
  Torture(op);
}

// --- Names ---------------------------------------------------------------------------------------

TEST_F(CrashTortureTest, Tag) {
  for (uint32_t i = 0; i < 5; ++i) {
    AddImage(MakeTreeImage(100 + i, 1024).image, "img" + std::to_string(i) + ":1");
  }
  Operation op;
  op.name = "tag";
  // The name moves between images: each tag is a real change.
  auto image = [](int t) { return "img" + std::to_string(t % 5) + ":1"; };
  auto name = [](int t) { return "moving:" + std::to_string(t % 3); };
  op.args = [=](int t) { return std::vector<std::string>{"tag", image(t), name(t)}; };
  op.done = [=, this](int t) { return IdOf(name(t)) == IdOf(image(t)); };
  op.verify = [=, this](int t, const CliResult*) {
    EXPECT_EQ(IdOf(name(t)), IdOf(image(t)));
    EXPECT_NE(IdOf(name(t)), "");
  };
  Torture(op);
}

TEST_F(CrashTortureTest, Untag) {
  Operation op;
  op.name = "untag";
  op.retry_when_done = false;  // the names are gone: "has no name"
  auto image = [](int t) { return "u" + std::to_string(t) + ":1"; };
  auto a = [](int t) { return "u" + std::to_string(t) + "-a:1"; };
  auto b = [](int t) { return "u" + std::to_string(t) + "-b:1"; };
  op.prepare = [=, this](int t) {
    AddImage(MakeTreeImage(200 + t, 1024).image, image(t));
    MustRun({"tag", image(t), a(t), b(t)});
  };
  op.args = [=](int t) { return std::vector<std::string>{"untag", image(t), a(t), b(t)}; };
  op.after_kill = [=, this](int t) {
    EXPECT_EQ(Resolves(a(t)), Resolves(b(t))) << "an untag of two names was half done";
  };
  op.done = [=, this](int t) { return !Resolves(a(t)); };
  op.verify = [=, this](int t, const CliResult*) {
    EXPECT_FALSE(Resolves(a(t)));
    EXPECT_FALSE(Resolves(b(t)));
    EXPECT_TRUE(Resolves(image(t))) << "untag removed the image";
  };
  Torture(op);
}

TEST_F(CrashTortureTest, Rmi) {
  Operation op;
  op.name = "rmi";
  op.retry_when_done = false;  // the image is gone: "image not known"
  AddImage(MakeTreeImage(300, 1024).image, "stays:1");
  auto name = [](int t) { return "victim" + std::to_string(t) + ":1"; };
  std::map<int, std::string> ids;
  op.prepare = [=, &ids, this](int t) {
    TreeImage img = MakeTreeImage(300 + 1 + t, 64 << 10);
    ids[t] = img.image.id.ToString();
    AddImage(img.image, name(t));
  };
  op.args = [=](int t) { return std::vector<std::string>{"rmi", name(t)}; };
  op.after_kill = [=, &ids, this](int t) {
    // All or nothing: the name and the image go together.
    EXPECT_EQ(Resolves(name(t)), Resolves(ids[t])) << "rmi left half of its change";
  };
  op.done = [=, this](int t) { return !Resolves(name(t)); };
  op.verify = [=, &ids, this](int t, const CliResult*) {
    EXPECT_FALSE(Resolves(name(t)));
    EXPECT_FALSE(Resolves(ids[t]));
    EXPECT_TRUE(Resolves("stays:1"));
  };
  Torture(op);
}

// --- gc ------------------------------------------------------------------------------------------

TEST_F(CrashTortureTest, Gc) {
  static const TreeImage kept = MakeTreeImage(400, 64 << 10);
  AddImage(kept.image, "kept:1");
  Operation op;
  op.name = "gc";
  // Garbage for each run: an image unpacked into the layer cache, then removed (blobs, manifest,
  // layer rows and directories), and stray blobs nobody uses.
  op.prepare = [this](int t) {
    TreeImage img = MakeTreeImage(400 + 1 + t, 256 << 10);
    AddImage(img.image, "garbage:1");
    const std::string out = tmp_.Sub("out/garbage");
    MustRun({"unpack", "garbage:1", out});
    ASSERT_TRUE(RemoveTree(out));
    MustRun({"rmi", "garbage:1"});
    auto store = store::testing::OpenStore(root_);
    ASSERT_NE(store, nullptr);
    for (int s = 0; s < 3; ++s) {
      std::string bytes = store::testing::RandomBytes(32 << 10, 4000 + t * 10 + s);
      ASSERT_TRUE(store->IngestBlob(Digest::Of(bytes), {}, bytes).ok());
    }
  };
  op.args = [](int) { return std::vector<std::string>{"gc"}; };
  op.verify = [this](int t, const CliResult*) {
    EXPECT_TRUE(Resolves("kept:1"));
    const std::string out = tmp_.Sub("out/kept-" + std::to_string(t));
    MustRun({"unpack", "kept:1", out});
    ExpectTree(out, kept);
    ASSERT_TRUE(RemoveTree(out));
  };
  Torture(op);
}

// --- Layers: unpack, mount, umount, commit -------------------------------------------------------

TEST_F(CrashTortureTest, Unpack) {
  Operation op;
  op.name = "unpack";
  std::map<int, TreeImage> images;
  auto name = [](int t) { return "unpack" + std::to_string(t) + ":1"; };
  auto dir = [this](int t) { return tmp_.Sub("out/unpack-" + std::to_string(t)); };
  // A new image each time: its base is cached after the first trial, its other layers are not.
  op.prepare = [=, &images, this](int t) {
    images[t] = MakeTreeImage(500 + t, 1 << 20, /*shared_base=*/true);
    AddImage(images[t].image, name(t));
  };
  op.args = [=](int t) { return std::vector<std::string>{"unpack", name(t), dir(t)}; };
  // Again into a new directory: the killed one's is the user's to remove.
  op.retry_args = [=](int t) {
    return std::vector<std::string>{"unpack", name(t), dir(t) + "-retry"};
  };
  op.after_kill = [this](int t) {
    for (const std::string& n : Entries(tmp_.Sub("out"))) {
      EXPECT_TRUE(n == "unpack-" + std::to_string(t)) << "left beside the destination: " << n;
    }
  };
  // Probes run `args`, the trials `retry_args`.
  op.verify = [=, &images](int t, const CliResult*) {
    ExpectTree(t >= 1000 ? dir(t) : dir(t) + "-retry", images[t]);
    ASSERT_TRUE(RemoveTree(dir(t)));
    ASSERT_TRUE(RemoveTree(dir(t) + "-retry"));
  };
  Torture(op);
}

TEST_F(CrashTortureTest, Mount) {
  Operation op;
  op.name = "mount";
  op.retry_when_done = false;  // the name is taken: "already exists"
  std::map<int, TreeImage> images;
  auto image = [](int t) { return "mnt" + std::to_string(t) + ":1"; };
  auto name = [](int t) { return "m" + std::to_string(t); };
  op.prepare = [=, &images, this](int t) {
    images[t] = MakeTreeImage(600 + t, 1 << 20, /*shared_base=*/true);
    AddImage(images[t].image, image(t));
  };
  // Overlay and copy mounts in turn.
  op.args = [=](int t) {
    return std::vector<std::string>{"mount", image(t), "--name",
                                    name(t), "--type", t % 2 == 0 ? "overlay" : "copy"};
  };
  op.done = [=, this](int t) { return HasMount(name(t)); };
  op.verify = [=, &images, this](int t, const CliResult* r) {
    const std::string merged = root_ + "/mounts/" + name(t) + "/merged";
    if (r != nullptr) {
      EXPECT_EQ(r->out, merged + "\n");
    }
    EXPECT_TRUE(HasMount(name(t)));
    ExpectTree(merged, images[t]);
  };
  Torture(op);
}

TEST_F(CrashTortureTest, Umount) {
  static const TreeImage img = MakeTreeImage(700, 256 << 10, /*shared_base=*/true);
  AddImage(img.image, "base:1");
  Operation op;
  op.name = "umount";
  op.retry_when_done = false;  // the mount is gone: "mount not known"
  auto name = [](int t) { return "um" + std::to_string(t); };
  op.prepare = [=, this](int t) {
    MustRun({"mount", "base:1", "--name", name(t), "--type", t % 2 == 0 ? "overlay" : "copy"});
    WriteFile(root_ + "/mounts/" + name(t) + "/merged/etc/change", "changed");
  };
  op.args = [=](int t) { return std::vector<std::string>{"umount", name(t)}; };
  op.after_kill = [=, this](int t) {
    // Either still a whole mount (listed, its tree there) or gone.
    if (HasMount(name(t))) {
      const std::string merged = root_ + "/mounts/" + name(t) + "/merged";
      ExpectTree(merged, img);
      EXPECT_EQ(ReadFile(merged + "/etc/change"), "changed");
    }
  };
  op.done = [=, this](int t) { return !HasMount(name(t)); };
  op.verify = [=, this](int t, const CliResult*) {
    EXPECT_FALSE(HasMount(name(t)));
    EXPECT_FALSE(Exists(root_ + "/mounts/" + name(t)));
    EXPECT_EQ(ReadFile("/proc/self/mountinfo").find(root_ + "/mounts/" + name(t) + "/"),
              std::string::npos)
        << "still mounted";
  };
  Torture(op);
}

TEST_F(CrashTortureTest, Commit) {
  static const TreeImage img = MakeTreeImage(800, 256 << 10, /*shared_base=*/true);
  AddImage(img.image, "base:1");
  Operation op;
  op.name = "commit";
  auto mount = [](int t) { return "c" + std::to_string(t); };
  auto image = [](int t) { return "committed" + std::to_string(t) + ":1"; };
  // A mount with changes: a new file, a changed one, a deleted one.
  op.prepare = [=, this](int t) {
    MustRun({"mount", "base:1", "--name", mount(t), "--type", t % 2 == 0 ? "overlay" : "copy"});
    const std::string merged = root_ + "/mounts/" + mount(t) + "/merged";
    WriteFile(merged + "/new-" + std::to_string(t), store::testing::RandomBytes(512 << 10, t));
    WriteFile(merged + "/etc/hostname", "changed\n");
    ASSERT_EQ(::unlink((merged + "/data/blob1").c_str()), 0);
  };
  op.args = [=](int t) { return std::vector<std::string>{"commit", mount(t), image(t)}; };
  op.done = [=, this](int t) { return Resolves(image(t)); };
  op.verify = [=, this](int t, const CliResult* r) {
    EXPECT_EQ(r->out, IdOf(image(t)) + "\n");
    const std::string out = tmp_.Sub("out/commit-" + std::to_string(t));
    MustRun({"unpack", image(t), out});
    EXPECT_TRUE(ReadFile(out + "/new-" + std::to_string(t)) ==
                store::testing::RandomBytes(512 << 10, t));
    EXPECT_EQ(ReadFile(out + "/etc/hostname"), "changed\n");
    EXPECT_FALSE(Exists(out + "/data/blob1"));
    EXPECT_TRUE(ReadFile(out + "/data/blob2") == img.files.at("data/blob2"));
    ASSERT_TRUE(RemoveTree(out));
    MustRun({"umount", mount(t)});
  };
  Torture(op);
}

// --- The auth file: login, logout ----------------------------------------------------------------

// The entry of `key` in the auth file ("" when absent); fails the test when the file exists and
// is not an auth file.
std::string AuthEntry(const std::string& path, const std::string& key) {
  if (!Exists(path)) return "";
  Json doc = Json::parse(ReadFile(path), nullptr, false);
  EXPECT_TRUE(doc.is_object() && doc.contains("auths")) << "a torn auth file: " << ReadFile(path);
  if (!doc.is_object() || !doc.contains("auths") || !doc["auths"].contains(key)) return "";
  return doc["auths"][key].value("auth", "");
}

constexpr const char* kOtherAuths =
    R"({"auths":{"other.example":{"auth":"b3RoZXI6cHc="}},"credHelpers":{"x.example":"x"}})";

TEST_F(CrashTortureTest, Login) {
  if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry or skopeo is not installed";
  TestRegistry registry;
  std::string error;
  ASSERT_TRUE(registry.Start(TlsBasicAuth(), &error)) << error;
  const std::string file = tmp_.Sub("auth/auth.json");
  const std::string creds = "dGVzdGVyOnMzY3JldC1QYTU1";  // base64("tester:s3cret-Pa55")
  Operation op;
  op.name = "login";
  op.uses_store = false;
  op.check_after_kill = false;
  // An auth file with other entries to keep (even trials), or none.
  op.prepare = [=](int t) {
    ASSERT_TRUE(RemoveTree(file));
    if (t % 2 == 0) WriteFile(file, kOtherAuths, 0600);
  };
  op.args = [&registry, file](int) {
    return std::vector<std::string>{"login",      registry.host(),    "-u",         "tester",
                                    "-p",         "s3cret-Pa55",      "--authfile", file,
                                    "--cert-dir", registry.cert_dir()};
  };
  op.after_kill = [=](int t) {
    if (t % 2 == 0) {
      EXPECT_EQ(AuthEntry(file, "other.example"), "b3RoZXI6cHc=");
    }
  };
  op.verify = [&registry, file, creds](int t, const CliResult* r) {
    EXPECT_EQ(r->out, "Login Succeeded!\n");
    EXPECT_EQ(AuthEntry(file, registry.host()), creds);
    if (t % 2 == 0) {
      EXPECT_EQ(AuthEntry(file, "other.example"), "b3RoZXI6cHc=");
    }
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  };
  Torture(op);
}

TEST_F(CrashTortureTest, Logout) {
  const std::string file = tmp_.Sub("auth/auth.json");
  const std::string host = "127.0.0.1:5999";
  Operation op;
  op.name = "logout";
  op.uses_store = false;
  op.check_after_kill = false;
  op.retry_when_done = false;  // the entry is gone: "not logged in"
  op.prepare = [=](int) {
    Json doc = Json::parse(kOtherAuths);
    doc["auths"][host] = {{"auth", "dGVzdGVyOnB3"}};
    WriteFile(file, doc.dump(), 0600);
  };
  op.args = [=](int) { return std::vector<std::string>{"logout", host, "--authfile", file}; };
  op.after_kill = [=](int) { EXPECT_EQ(AuthEntry(file, "other.example"), "b3RoZXI6cHc="); };
  op.done = [=](int) { return AuthEntry(file, host).empty(); };
  op.verify = [this, file, host](int, const CliResult* retry) {
    EXPECT_EQ(AuthEntry(file, host), "");
    EXPECT_EQ(AuthEntry(file, "other.example"), "b3RoZXI6cHc=");
    if (retry == nullptr) {
      // Not retried (the killed run had removed the entry): the next logout says so, and like
      // every edit it removes what the killed one left beside the file.
      EXPECT_NE(Cli({"logout", host, "--authfile", file}).exit_code, 0);
    }
  };
  Torture(op);
}

// --- check --repair ------------------------------------------------------------------------------

TEST_F(CrashTortureTest, CheckRepair) {
  static const TreeImage img = MakeTreeImage(900, 256 << 10);
  AddImage(img.image, "img:1");
  Operation op;
  op.name = "check --repair";
  op.check_after_kill = false;  // the damage planted for the repair is still there
  // Damage that --repair fixes: an orphan blob file, a cached layer whose directory went, a
  // stray entry in layers/.
  op.prepare = [this](int t) {
    const std::string out = tmp_.Sub("out/unpacked");
    MustRun({"unpack", "img:1", out});
    ASSERT_TRUE(RemoveTree(out));
    const std::string orphan = store::testing::RandomBytes(4096, 9000 + t);
    WriteFile(root_ + "/blobs/sha256/" + Hex(Digest::Of(orphan)), orphan, 0444);
    Json j = JsonOf(root_, {"inspect", "img:1"});
    const std::string chain = j[0]["layers"][1].value("chainID", "");
    ASSERT_TRUE(RemoveTree(root_ + "/layers/sha256-" + chain.substr(chain.find(':') + 1)));
    ASSERT_EQ(::mkdir((root_ + "/layers/stray-" + std::to_string(t)).c_str(), 0755), 0);
    ASSERT_EQ(Cli({"check"}).exit_code, 1) << "the planted damage is not seen";
  };
  op.args = [](int) { return std::vector<std::string>{"check", "--repair"}; };
  op.verify = [this](int t, const CliResult*) {
    CliResult check = Cli({"check"});
    EXPECT_EQ(check.exit_code, 0) << check.Describe() << "\n" << check.out;
    const std::string out = tmp_.Sub("out/repaired-" + std::to_string(t));
    MustRun({"unpack", "img:1", out});
    ExpectTree(out, img);
    ASSERT_TRUE(RemoveTree(out));
  };
  Torture(op);
}

}  // namespace
}  // namespace imgstore::testing
