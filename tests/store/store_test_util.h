// Helpers shared by the store tests: opening a store, making blob content, adding a test image's
// blobs and record, asserting that a store is consistent (Check clean, nothing in ingest/), and
// StoreTest, the fixture of a fresh store in a temporary directory.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/temp_dir.h"
#include "common/test_image.h"
#include "store/store.h"

namespace imgstore::store::testing {

// The shared test-only names (tests/common) the store tests use, so that each test file need not
// repeat the same using-declarations.
using imgstore::testing::MakeTestImage;
using imgstore::testing::TempDir;
using imgstore::testing::TestImage;
using imgstore::testing::TestImageSpec;

inline std::unique_ptr<Store> OpenStore(const std::string& root, StoreOptions options = {}) {
  Result<std::unique_ptr<Store>> store = Store::Open(root, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

// OpenStore with every file-system operation going through `env` (a FaultEnv that counts or fails
// them, in the fault tests).
inline std::unique_ptr<Store> OpenStoreOn(const std::string& root, Env* env) {
  StoreOptions options;
  options.env = env;
  return OpenStore(root, options);
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

// Runs `sql`, a query of one row, in a read transaction and returns read(statement) on that row.
// Fails the test if the query fails or returns no row.
template <typename Read>
auto QueryOneRow(Store& store, const std::string& sql, Read read) {
  Result<ReadTransaction> txn = store.db().BeginRead();
  EXPECT_TRUE(txn.ok());
  Result<Statement> st = txn->Prepare(sql);
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  Result<bool> row = st->Step();
  EXPECT_TRUE(row.ok() && *row);
  return read(*st);
}

// The integer the one row of `sql` holds in its first column (e.g. SELECT count(*) ...).
inline int64_t CountRows(Store& store, const std::string& sql) {
  return QueryOneRow(store, sql, [](const Statement& st) { return st.ColumnInt64(0); });
}

// Ingests `config` and each of `layers` as blobs: what AddImage needs present before it records an
// image. Fails the test on any error.
inline void IngestImageBlobs(Store& store, const std::string& config,
                             const std::vector<std::string>& layers) {
  for (const std::string& layer : layers) {
    Result<IngestResult> r = store.IngestBlob(Digest::Of(layer), {}, layer);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  }
  Result<IngestResult> c = store.IngestBlob(Digest::Of(config), {}, config);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
}

// Records `image` under `names` with every blob it needs ingested first: what a pull would leave,
// without a transport. Fails the test on any error.
inline void AddImageWithBlobs(Store& store, const TestImage& image,
                              const std::vector<std::string>& names) {
  IngestImageBlobs(store, image.config, image.layers);
  Result<AddImageResult> added =
      store.AddImage(image.manifest, image.manifest_media_type, image.config, names);
  EXPECT_TRUE(added.ok()) << added.status().ToString();
}

// A TestImage of `layers` layers whose content (and so every digest) depends on `seed`.
inline TestImage ImageOf(uint32_t seed, int layers) {
  TestImageSpec spec;
  spec.seed = seed;
  spec.layers = layers;
  return MakeTestImage(spec);
}

// The fixture of most store tests: a fresh store, opened in SetUp, in a temporary directory that
// goes when the test ends.
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore(dir_.Sub("root"));
    ASSERT_NE(store_, nullptr);
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace imgstore::store::testing
