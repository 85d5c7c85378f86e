// The harness of the crash torture (crash_torture_stress_test.cc): how many trials and which
// seed, the kill instants, killing a command with SIGKILL, and the checks every trial makes
// after a kill — nothing left outside the store, and after a gc a store that holds only what its
// images and mounts need. Header-only: each tests/<dir>/*_test.cc is a binary of its own.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/cli_runner.h"
#include "common/fs_tree.h"
#include "common/subprocess.h"
#include "util/env.h"

namespace imgstore::testing::torture {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// Trials over all operations when IMGSTORE_CRASH_TRIALS is not set (CI).
inline constexpr int kDefaultTotalTrials = 64;

// IMGSTORE_CRASH_TRIALS (a total over all operations) spread evenly over `operations`, at least
// 2 each (one kill inside the run and one after it are the least a trial set can prove).
inline int TrialsPerOperation(int operations) {
  int total = kDefaultTotalTrials;
  if (const char* v = std::getenv("IMGSTORE_CRASH_TRIALS"); v != nullptr && *v != '\0') {
    total = std::atoi(v);
  }
  return std::max(2, (total + operations - 1) / operations);
}

// IMGSTORE_CRASH_SEED, else a fresh one: every run of CI tries other instants, and the seed
// printed by a failing run replays its choices.
inline uint64_t BaseSeed() {
  static const uint64_t seed = [] {
    if (const char* v = std::getenv("IMGSTORE_CRASH_SEED"); v != nullptr && *v != '\0') {
      return static_cast<uint64_t>(std::strtoull(v, nullptr, 10));
    }
    return static_cast<uint64_t>(std::random_device{}()) << 32 | std::random_device{}();
  }();
  return seed;
}

// The kill instants of n trials as fractions of the command's measured run time: one per
// stratum of [0, 1.25), jittered, in random order, so that every set of trials has kills early,
// late and after the end (the measured time is the fastest run; a killed run is often slower).
inline std::vector<double> KillFractions(int n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> jitter(0.0, 1.0);
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back((i + jitter(rng)) / n * 1.25);
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

// `env NAME=value... imgstore ARGS...`: the environment of the command under test, without
// touching the test's own.
inline std::vector<std::string> EnvArgv(const std::vector<std::string>& env,
                                        const std::vector<std::string>& args) {
  std::vector<std::string> argv = env;
  argv.push_back(ImgstoreBinary());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

struct KillOutcome {
  bool killed = false;  // SIGKILL came while the command ran
  int status = 0;       // its wait status
  pid_t pid = 0;        // its pid (env execs the command: the same process)
};

// Starts the command, sleeps until the instant, and kills it if it still runs.
inline KillOutcome RunAndKill(const std::vector<std::string>& env,
                              const std::vector<std::string>& args,
                              std::chrono::microseconds instant) {
  Subprocess p;
  std::string error;
  EXPECT_TRUE(p.Start("/usr/bin/env", EnvArgv(env, args), &error)) << error;
  std::this_thread::sleep_for(instant);  // the random instant itself, not a synchronization
  KillOutcome out;
  out.pid = p.pid();
  out.status = p.KillAndWait();
  out.killed = WIFSIGNALED(out.status) && WTERMSIG(out.status) == SIGKILL;
  return out;
}

// Names of `dir`'s entries (none when it does not exist).
inline std::set<std::string> Entries(const std::string& dir) {
  Result<std::vector<std::string>> names = Env::Default()->ListDir(dir);
  if (!names.ok()) return {};
  return std::set<std::string>(names->begin(), names->end());
}

// Entries of the shared temporary directories that an imgstore process could have made there
// (its temporary files are named .imgstore-*, .tmp-*, *.tmp-*).
inline std::set<std::string> SharedTempEntries() {
  std::set<std::string> out;
  for (const char* dir : {"/tmp", "/var/tmp"}) {
    for (const std::string& n : Entries(dir)) {
      if (n.starts_with(".imgstore") || n.starts_with(".tmp-") ||
          n.find(".tmp-") != std::string::npos) {
        out.insert(std::string(dir) + "/" + n);
      }
    }
  }
  return out;
}

// The result of a command that must succeed, parsed as JSON.
inline Json JsonOf(const std::string& root, const std::vector<std::string>& args) {
  CliResult r = RunImgstore(root, args);
  EXPECT_EQ(r.exit_code, 0) << "imgstore " << args[0] << ": " << r.Describe();
  Json j = Json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "imgstore " << args[0] << " printed no JSON: " << r.out;
  return j;
}

// What the store at root holds after a gc, against what its images and mounts need (asked of the
// store itself: list, inspect, mounts): every file of blobs/sha256 is a needed blob and every
// needed blob is there; ingest/ is empty; layers/ holds only chains of those images or mounts;
// mounts/ holds exactly the listed mounts; df finds nothing reclaimable.
inline void ExpectOnlyWhatIsNeeded(const std::string& root, const std::string& what) {
  SCOPED_TRACE(what);
  std::set<std::string> blobs;   // hex
  std::set<std::string> chains;  // "sha256-HEX", as layers/ names them
  auto hex = [](const std::string& digest) { return digest.substr(digest.find(':') + 1); };
  Json images = JsonOf(root, {"list", "--format", "json"});
  std::vector<std::string> inspect = {"inspect"};
  for (const Json& i : images) inspect.push_back(i.at("id").get<std::string>());
  if (inspect.size() > 1) {
    for (const Json& d : JsonOf(root, inspect)) {
      blobs.insert(hex(d.at("id").get<std::string>()));
      blobs.insert(hex(d.at("digest").get<std::string>()));
      for (const Json& l : d.at("layers")) {
        blobs.insert(hex(l.at("digest").get<std::string>()));
        chains.insert("sha256-" + hex(l.at("chainID").get<std::string>()));
      }
    }
  }
  std::set<std::string> mounts;
  for (const Json& m : JsonOf(root, {"mounts", "--format", "json"})) {
    mounts.insert(m.at("name").get<std::string>());
    blobs.insert(hex(m.at("image_id").get<std::string>()));
    blobs.insert(hex(m.at("manifest_digest").get<std::string>()));
    for (const Json& c : m.at("layers")) chains.insert("sha256-" + hex(c.get<std::string>()));
  }
  EXPECT_EQ(Entries(root + "/blobs/sha256"), blobs) << "blob files against the needed blobs";
  EXPECT_EQ(Entries(root + "/ingest"), std::set<std::string>{}) << "ingest/ after a gc";
  for (const std::string& l : Entries(root + "/layers")) {
    EXPECT_TRUE(chains.count(l)) << "layers/" << l << " is no layer of an image or mount";
  }
  EXPECT_EQ(Entries(root + "/mounts"), mounts) << "mounts/ against the listed mounts";
  Json df = JsonOf(root, {"df", "--format", "json"});
  EXPECT_EQ(df.value("reclaimable_blobs", -1), 0) << df.dump();
  EXPECT_EQ(df.value("reclaimable_layers", -1), 0) << df.dump();
}

}  // namespace imgstore::testing::torture
