// Resumable ingests (IngestOptions::resume_at): what a failed source delivered is kept as
// ingest/sha256-HEX.partial and the next ingest of the digest asks the source only for the rest;
// a damaged or oversized prefix is replaced by a whole download; a failed write or bad bytes
// leave nothing; Store::Open keeps a fresh partial and removes an expired one; check ignores it,
// df counts it, gc removes it. The kill -9 of a real pull is in
// tests/registry/registry_resume_integration_test.cc.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "common/fault_env.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::store {
namespace {

using imgstore::testing::FaultEnv;
using imgstore::testing::FsOp;
using testing::ExpectConsistent;
using testing::OpenStore;
using testing::OpenStoreOn;
using testing::RandomBytes;
using testing::TempDir;

const std::string& Blob() {
  static const std::string data = RandomBytes(5 * 1024 * 1024 + 123, 77);
  return data;
}
const Digest& BlobDigest() {
  static const Digest d = Digest::Of(Blob());
  return d;
}

// A source over `bytes` that can start at any offset, fails after `fail_after` bytes of this
// ingest (if set), and records where it was asked to start and how much it delivered.
struct ResumableSource {
  explicit ResumableSource(std::string b, std::optional<uint64_t> fail = std::nullopt)
      : bytes(std::move(b)), fail_after(fail) {}

  std::string bytes;
  std::optional<uint64_t> fail_after;
  std::vector<uint64_t> starts;  // resume_at calls, in order
  uint64_t pos = 0;
  uint64_t delivered = 0;

  IngestOptions Options() {
    IngestOptions o;
    o.expected_size = Blob().size();
    o.resume_at = [this](uint64_t offset) {
      starts.push_back(offset);
      pos = offset;
      return Status::OK();
    };
    return o;
  }
  BlobReader Reader() {
    return [this](std::span<std::byte> buf) -> Result<size_t> {
      if (fail_after && delivered >= *fail_after) {
        return Status(Code::kUnavailable, "connection reset by the test");
      }
      uint64_t n = std::min<uint64_t>(buf.size(), bytes.size() - pos);
      if (fail_after) n = std::min<uint64_t>(n, *fail_after - delivered);
      std::memcpy(buf.data(), bytes.data() + pos, n);
      pos += n;
      delivered += n;
      return static_cast<size_t>(n);
    };
  }
};

std::string PartialPath(const Store& store) {
  return IngestDir(store.root()) + "/" + PartialIngestName(BlobDigest());
}

uint64_t FileSize(const std::string& path) {
  Result<FileStat> st = Env::Default()->Stat(path);
  return st.ok() ? st->size : 0;
}

// Leaves a partial of `prefix` bytes of Blob() the way a broken download does.
void BreakAfter(Store& store, uint64_t prefix) {
  ResumableSource src{Blob(), prefix};
  Result<IngestResult> r = store.IngestBlob(BlobDigest(), src.Options(), src.Reader());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find("connection reset by the test"), std::string::npos)
      << r.status().ToString();
  ASSERT_EQ(FileSize(PartialPath(store)), prefix);
  EXPECT_FALSE(*store.HasBlob(BlobDigest()));
}

// Ingests Blob() from a source that does not fail; expects success, resume_at called with
// `starts` in order, and a consistent store with nothing left in ingest/. Returns the source.
ResumableSource IngestExpectingStarts(Store& store, const std::vector<uint64_t>& starts) {
  ResumableSource src{Blob()};
  Result<IngestResult> r = store.IngestBlob(BlobDigest(), src.Options(), src.Reader());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(src.starts, starts);
  ExpectConsistent(store);
  return src;
}

// Check with content verification is clean: a kept partial download is no problem.
void ExpectCleanBesidesPartial(Store& store) {
  Result<CheckReport> report = store.Check(/*verify_content=*/true);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean()) << testing::Describe(*report);
}

TEST(IngestResumeTest, ABrokenSourceKeepsItsBytesAndTheNextIngestAsksOnlyForTheRest) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  const uint64_t prefix = 2 * 1024 * 1024 + 17;
  ASSERT_NO_FATAL_FAILURE(BreakAfter(*store, prefix));
  ExpectCleanBesidesPartial(*store);

  ResumableSource src{Blob()};
  Result<IngestResult> r = store->IngestBlob(BlobDigest(), src.Options(), src.Reader());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->written);
  EXPECT_EQ(src.starts, std::vector<uint64_t>{prefix});
  EXPECT_EQ(src.delivered, Blob().size() - prefix);
  Result<std::string> stored = store->ReadBlob(BlobDigest(), Blob().size());
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE(*stored == Blob());
  Result<FileStat> st = Env::Default()->Stat(store->BlobPath(BlobDigest()));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->mode, 0444u) << "a resumed blob is read-only like any other";
  ExpectConsistent(*store);  // the partial became the blob: ingest/ is empty
}

TEST(IngestResumeTest, BreaksInARowEachGoOnFromTheLast) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_NO_FATAL_FAILURE(BreakAfter(*store, 1000));
  ResumableSource second{Blob(), 1 << 20};
  Result<IngestResult> r = store->IngestBlob(BlobDigest(), second.Options(), second.Reader());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(second.starts, std::vector<uint64_t>{1000});
  EXPECT_EQ(FileSize(PartialPath(*store)), 1000u + (1 << 20));

  IngestExpectingStarts(*store, {1000u + (1 << 20)});
}

TEST(IngestResumeTest, ADamagedPrefixIsReplacedByAWholeDownload) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  const uint64_t prefix = 3 * 1024 * 1024;
  ASSERT_NO_FATAL_FAILURE(BreakAfter(*store, prefix));
  {
    // What a power cut can leave of data never synced: a block of zeros in the middle.
    std::fstream f(PartialPath(*store), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1024 * 1024);
    std::string zeros(4096, '\0');
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  ResumableSource src = IngestExpectingStarts(*store, {prefix, 0});
  EXPECT_EQ(src.delivered, Blob().size() - prefix + Blob().size());
}

TEST(IngestResumeTest, APrefixLongerThanTheBlobIsDroppedUnread) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Env::Default()
                  ->WriteFileAtomically(PartialPath(*store), Blob() + "trailing garbage", 0644)
                  .ok());
  IngestExpectingStarts(*store, {0});
}

TEST(IngestResumeTest, ACompletePrefixLeftReadOnlyIsTakenWithoutReadingTheSource) {
  // A writer killed between making the finished file read-only and renaming it into blobs/.
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Env::Default()->WriteFileAtomically(PartialPath(*store), Blob(), 0444).ok());
  ResumableSource src = IngestExpectingStarts(*store, {});
  EXPECT_EQ(src.delivered, 0u);
}

TEST(IngestResumeTest, BytesThatFailVerificationAreNotKept) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  std::string lie = Blob();
  lie[lie.size() / 2] ^= 0x55;
  ResumableSource src{lie};
  Result<IngestResult> r = store->IngestBlob(BlobDigest(), src.Options(), src.Reader());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find("digest mismatch"), std::string::npos);
  ExpectConsistent(*store);  // nothing in ingest/

  // A source that sends more than the descriptor's size: stopped, nothing kept.
  ResumableSource longer{Blob() + "x"};
  IngestOptions o = longer.Options();
  r = store->IngestBlob(BlobDigest(), o, longer.Reader());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  ExpectConsistent(*store);
}

TEST(IngestResumeTest, AFailedWriteRemovesThePartialFile) {
  TempDir dir;
  FaultEnv fenv;
  auto store = OpenStoreOn(dir.path(), &fenv);
  ASSERT_NE(store, nullptr);
  ASSERT_NO_FATAL_FAILURE(BreakAfter(*store, 1 << 20));
  fenv.ResetCounts();
  fenv.FailNth(FsOp::kWrite, 2, ENOSPC);
  ResumableSource src{Blob()};
  Result<IngestResult> r = store->IngestBlob(BlobDigest(), src.Options(), src.Reader());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNoSpace) << r.status().ToString();
  EXPECT_FALSE(fenv.FileExists(PartialPath(*store))) << "a full disk wants its space back";
  fenv.ClearFaults();
  IngestExpectingStarts(*store, {0});
}

TEST(IngestResumeTest, ASourceThatFailsBeforeItsFirstByteLeavesNothing) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  ResumableSource src{Blob(), 0};
  Result<IngestResult> r = store->IngestBlob(BlobDigest(), src.Options(), src.Reader());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  ExpectConsistent(*store);  // no empty partial file
}

TEST(IngestResumeTest, WithoutResumeAtABrokenSourceLeavesNothing) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  ResumableSource src{Blob(), 1 << 20};
  IngestOptions o;
  o.expected_size = Blob().size();
  Result<IngestResult> r = store->IngestBlob(BlobDigest(), o, src.Reader());
  ASSERT_FALSE(r.ok());
  ExpectConsistent(*store);
}

TEST(IngestResumeTest, OpenKeepsAFreshPartialAndRemovesOneOlderThanItsTtl) {
  TempDir dir;
  {
    auto store = OpenStore(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_NO_FATAL_FAILURE(BreakAfter(*store, 1 << 20));
  }
  const std::string partial = dir.path() + "/ingest/" + PartialIngestName(BlobDigest());
  {
    auto store = OpenStore(dir.path());
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->recovery().partial_downloads_removed, 0);
    EXPECT_EQ(store->recovery().ingests_removed, 0);
    EXPECT_EQ(FileSize(partial), 1u << 20);
  }
  StoreOptions expire;
  expire.partial_download_ttl = std::chrono::seconds(0);
  auto store = OpenStore(dir.path(), expire);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->recovery().partial_downloads_removed, 1);
  EXPECT_FALSE(Env::Default()->FileExists(partial));
  ExpectConsistent(*store);
}

TEST(IngestResumeTest, DfCountsAPartialDownloadAndGcRemovesIt) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_NO_FATAL_FAILURE(BreakAfter(*store, 1 << 20));

  Result<DiskUsage> du = store->GetDiskUsage();
  ASSERT_TRUE(du.ok()) << du.status().ToString();
  EXPECT_EQ(du->partial_downloads, 1u);
  EXPECT_EQ(du->partial_bytes, 1u << 20);

  GcOptions dry;
  dry.dry_run = true;
  Result<GcReport> g = store->GarbageCollect(dry);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->partial_downloads_removed, 1);
  EXPECT_EQ(g->partial_bytes_removed, 1u << 20);
  EXPECT_TRUE(Env::Default()->FileExists(PartialPath(*store))) << "a dry run removes nothing";

  g = store->GarbageCollect({});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->partial_downloads_removed, 1);
  EXPECT_EQ(g->partial_bytes_removed, 1u << 20);
  ExpectConsistent(*store);
  du = store->GetDiskUsage();
  ASSERT_TRUE(du.ok());
  EXPECT_EQ(du->partial_downloads, 0u);
}

TEST(IngestResumeTest, GcLeavesAPartialThatAnIngestIsResuming) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_NO_FATAL_FAILURE(BreakAfter(*store, 1 << 20));
  // The ingest holds the digest's lock while it reads: run gc from inside its source.
  ResumableSource src{Blob()};
  BlobReader inner = src.Reader();
  std::optional<Result<GcReport>> during;
  BlobReader reader = [&](std::span<std::byte> buf) -> Result<size_t> {
    if (!during) during.emplace(store->GarbageCollect({}));
    return inner(buf);
  };
  Result<IngestResult> r = store->IngestBlob(BlobDigest(), src.Options(), reader);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(during.has_value());
  ASSERT_TRUE(during->ok()) << during->status().ToString();
  EXPECT_EQ((*during)->partial_downloads_removed, 0);
  EXPECT_EQ(src.starts, std::vector<uint64_t>{1 << 20});
  ExpectConsistent(*store);
}

}  // namespace
}  // namespace imgstore::store
