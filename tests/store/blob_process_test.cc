// Ingests between real processes (store_helper, fork + exec): two processes ingesting one blob
// both succeed and write it once; a second ingest waits for the first and, past its deadline,
// fails naming the lock and its holder; a writer killed with SIGKILL in the middle of an ingest
// leaves nothing that the next Store::Open does not clean.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "store/store.h"
#include "store_test_util.h"

namespace imgstore::store {
namespace {

using imgstore::testing::Subprocess;
using imgstore::testing::TempDir;
using testing::ExpectConsistent;
using testing::OpenStore;
using testing::RandomBytes;
using namespace std::chrono_literals;

const std::string kHelper = IMGSTORE_TEST_BIN_DIR "/tests/store/store_helper";

void ExpectLine(Subprocess& p, const std::string& want, std::chrono::milliseconds timeout = 10s) {
  std::optional<std::string> line = p.ReadLine(timeout);
  ASSERT_TRUE(line.has_value()) << "no line from helper (wanted \"" << want << "\")";
  EXPECT_EQ(*line, want);
}

TEST(BlobProcessTest, TwoProcessesIngestingOneBlobBothSucceedAndWriteItOnce) {
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    TempDir dir;
    std::string root = dir.Sub("root");
    std::string data = RandomBytes(2 * 1024 * 1024, static_cast<uint32_t>(round));
    std::string source = dir.Sub("source");
    ASSERT_TRUE(Env::Default()->WriteFileAtomically(source, data).ok());
    Digest d = Digest::Of(data);
    Subprocess a, b;
    for (Subprocess* p : {&a, &b}) {
      std::string error;
      // 32 reads of 64 KiB, 5 ms apart: each ingest lasts well over 100 ms, so they overlap.
      ASSERT_TRUE(p->Start(
          kHelper, {"ingest-file", root, d.ToString(), std::to_string(data.size()), source, "5"},
          &error))
          << error;
      ExpectLine(*p, "ready");
    }
    ASSERT_TRUE(a.WriteLine("go"));
    ASSERT_TRUE(b.WriteLine("go"));
    std::optional<std::string> ra = a.ReadLine(30s), rb = b.ReadLine(30s);
    ASSERT_TRUE(ra && rb);
    std::multiset<std::string> results{*ra, *rb};
    EXPECT_EQ(results, (std::multiset<std::string>{"ok written=0", "ok written=1"}))
        << *ra << " / " << *rb;
    for (Subprocess* p : {&a, &b}) {
      std::optional<int> status = p->Wait(10s);
      ASSERT_TRUE(status.has_value());
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
          << Subprocess::DescribeStatus(*status);
    }
    auto store = OpenStore(root);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(*store->ReadBlob(d, data.size()), data);
    ExpectConsistent(*store);
  }
}

TEST(BlobProcessTest, SecondIngestWaitsForTheFirstThenReusesIt) {
  TempDir dir;
  std::string root = dir.Sub("root");
  std::string data = "line one|line two|line three";
  Digest d = Digest::Of(data);
  Subprocess writer;
  std::string error;
  ASSERT_TRUE(writer.Start(
      kHelper, {"ingest-stdin", root, d.ToString(), std::to_string(data.size())}, &error))
      << error;
  ExpectLine(writer, "ready");
  ASSERT_TRUE(writer.WriteLine("line one|"));
  ExpectLine(writer, "ack 9");  // the writer now holds the blob's lock, mid-ingest

  StoreOptions options;
  options.lock_timeout = 300ms;
  auto store = OpenStore(root, options);
  ASSERT_NE(store, nullptr);
  auto start = std::chrono::steady_clock::now();
  Result<IngestResult> r = store->IngestBlob(d, {}, data);
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout) << r.status().ToString();
  EXPECT_GE(waited, 250ms);
  EXPECT_NE(r.status().message().find(BlobLockName(d)), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("pid " + std::to_string(writer.pid())), std::string::npos)
      << r.status().ToString();
  EXPECT_TRUE(store->Check().ok() && store->Check()->clean()) << "a live ingest is no problem";

  // Now wait without a tight deadline: the second ingest gets the first's result.
  StoreOptions patient;
  patient.lock_timeout = 30s;
  auto waiter_store = OpenStore(root, patient);
  int reads = 0;
  Result<IngestResult> waited_result = Status(Code::kInternal, "not run");
  std::thread waiter([&] {
    waited_result = waiter_store->IngestBlob(d, {}, [&](std::span<std::byte>) -> Result<size_t> {
      ++reads;
      return size_t{0};
    });
  });
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(writer.WriteLine("line two|"));
  ASSERT_TRUE(writer.WriteLine("line three"));
  ASSERT_TRUE(writer.WriteLine("end"));
  ExpectLine(writer, "ack 18");
  ExpectLine(writer, "ack 28");
  ExpectLine(writer, "ok written=1");
  waiter.join();
  ASSERT_TRUE(waited_result.ok()) << waited_result.status().ToString();
  EXPECT_FALSE(waited_result->written);
  EXPECT_EQ(reads, 0);
  ExpectConsistent(*store);
}

TEST(BlobProcessTest, WriterKilledMidIngestLeavesNothingAfterTheNextOpen) {
  // Kill after 1, 2, 4 and 8 of 10 lines, and once after the whole blob (the kill then lands
  // somewhere in sync/rename/commit, or after it).
  std::vector<std::string> lines;
  std::string data;
  for (int i = 0; i < 10; ++i) {
    lines.push_back(RandomBytes(50, static_cast<uint32_t>(i)));
    for (char& c : lines.back()) c = static_cast<char>('a' + (static_cast<unsigned char>(c) % 26));
    data += lines.back();
  }
  Digest d = Digest::Of(data);
  for (int fed : {1, 2, 4, 8, 10}) {
    SCOPED_TRACE("killed after " + std::to_string(fed) + " lines");
    TempDir dir;
    std::string root = dir.Sub("root");
    Subprocess writer;
    std::string error;
    ASSERT_TRUE(writer.Start(
        kHelper, {"ingest-stdin", root, d.ToString(), std::to_string(data.size())}, &error))
        << error;
    ExpectLine(writer, "ready");
    for (int i = 0; i < fed; ++i) {
      ASSERT_TRUE(writer.WriteLine(lines[i]));
      ExpectLine(writer, "ack " + std::to_string(50 * (i + 1)));
    }
    if (fed == 10) {
      ASSERT_TRUE(writer.WriteLine("end"));
    }
    Result<std::vector<std::string>> ingest = Env::Default()->ListDir(IngestDir(root));
    ASSERT_TRUE(ingest.ok());
    if (fed < 10) {
      EXPECT_EQ(ingest->size(), 1u) << "the writer's ingest entry should exist";
    }
    writer.KillAndWait();

    auto store = OpenStore(root);
    ASSERT_NE(store, nullptr);
    if (fed < 10) {
      EXPECT_EQ(store->recovery().ingests_removed, 1);
      EXPECT_FALSE(*store->HasBlob(d));
    }
    ExpectConsistent(*store);
    Result<IngestResult> retry = store->IngestBlob(d, {}, data);
    ASSERT_TRUE(retry.ok()) << retry.status().ToString();
    ExpectConsistent(*store);
  }
}

}  // namespace
}  // namespace imgstore::store
