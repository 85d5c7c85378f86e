// Helpers shared by the store tests: opening a store, making blob content, and asserting that a
// store is consistent (Check clean, nothing in ingest/).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>

#include "store/store.h"

namespace imgstore::store::testing {

inline std::unique_ptr<Store> OpenStore(const std::string& root, StoreOptions options = {}) {
  Result<std::unique_ptr<Store>> store = Store::Open(root, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

// size pseudo-random bytes (deterministic per seed).
inline std::string RandomBytes(size_t size, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

inline std::string Describe(const CheckReport& report) {
  std::string out;
  for (const CheckProblem& p : report.problems) {
    out += std::string(ProblemKindName(p.kind)) + ": " + p.message + "\n";
  }
  return out;
}

// Check (with content verification) finds nothing, and ingest/ is empty.
inline void ExpectConsistent(Store& store, Env* env = Env::Default()) {
  Result<CheckReport> report = store.Check(/*verify_content=*/true);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean()) << Describe(*report);
  Result<std::vector<std::string>> ingest = env->ListDir(IngestDir(store.root()));
  ASSERT_TRUE(ingest.ok());
  EXPECT_TRUE(ingest->empty()) << "leftover in ingest/: " << ingest->front();
}

}  // namespace imgstore::store::testing
