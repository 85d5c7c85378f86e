// Tests of the blob half of store/store.h in one process: the store layout, ingest (happy path,
// digest and size mismatches, re-ingest, healing, adoption), reading, removal, recovery at open,
// and Check/Repair.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include "common/temp_dir.h"
#include "store/store.h"
#include "store_test_util.h"

namespace imgstore::store {
namespace {

using imgstore::testing::TempDir;
using testing::Describe;
using testing::ExpectConsistent;
using testing::OpenStore;
using testing::RandomBytes;

Env* env() { return Env::Default(); }

std::vector<std::string> ListOrDie(const std::string& dir) {
  Result<std::vector<std::string>> names = env()->ListDir(dir);
  EXPECT_TRUE(names.ok()) << names.status().ToString();
  return names.ok() ? *names : std::vector<std::string>{};
}

TEST(BlobStoreTest, OpenCreatesTheLayout) {
  TempDir dir;
  std::string root = dir.Sub("a/b/store");
  auto store = OpenStore(root);
  ASSERT_NE(store, nullptr);
  for (const char* sub : {"meta.db", "blobs/sha256", "ingest", "layers", "locks"}) {
    EXPECT_TRUE(env()->FileExists(root + "/" + sub)) << sub;
  }
  EXPECT_EQ(store->recovery().ingests_removed, 0);
  ExpectConsistent(*store);
  // A second handle on the same root opens the same store.
  auto again = OpenStore(root);
  ASSERT_NE(again, nullptr);
}

TEST(BlobStoreTest, IngestStoresAVerifiedReadOnlyBlob) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::string data = RandomBytes(3 * 1024 * 1024 + 17);  // several reads of the source
  Digest d = Digest::Of(data);
  IngestOptions opts;
  opts.expected_size = data.size();
  opts.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  Result<IngestResult> r = store->IngestBlob(d, opts, data);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->written);
  EXPECT_EQ(r->blob.digest, d);
  EXPECT_EQ(r->blob.size, data.size());

  EXPECT_TRUE(*store->HasBlob(d));
  Result<BlobInfo> info = store->GetBlobInfo(d);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, data.size());
  EXPECT_EQ(info->media_type, opts.media_type);
  EXPECT_GT(info->created_unix_ns, 0);

  std::string path = dir.path() + "/blobs/sha256/" + std::string(d.hex());
  EXPECT_EQ(store->BlobPath(d), path);
  Result<FileStat> st = env()->Stat(path);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->mode & 0777, 0444u);
  EXPECT_EQ(*store->ReadBlob(d, data.size()), data);
  Result<std::unique_ptr<SequentialFile>> file = store->OpenBlob(d);
  ASSERT_TRUE(file.ok());
  std::string back(data.size() + 10, '\0');
  Result<size_t> n = (*file)->Read(std::as_writable_bytes(std::span<char>(back)));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, data.size());
  EXPECT_EQ(back.substr(0, *n), data);

  Result<std::vector<BlobInfo>> all = store->ListBlobs();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  ExpectConsistent(*store);

  // Another handle (as another process) sees it at once.
  auto other = OpenStore(dir.path());
  EXPECT_TRUE(*other->HasBlob(d));
}

TEST(BlobStoreTest, EmptyBlobIsABlobToo) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  Result<IngestResult> r = store->IngestBlob(Digest::Of(""), {}, std::string_view());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->blob.size, 0u);
  ExpectConsistent(*store);
}

TEST(BlobStoreTest, DigestMismatchStoresNothing) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::string data = RandomBytes(100000);
  Digest claimed = Digest::Of("something else");
  Result<IngestResult> r = store->IngestBlob(claimed, {}, data);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find(claimed.ToString()), std::string::npos)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find(Digest::Of(data).ToString()), std::string::npos)
      << r.status().ToString();
  EXPECT_FALSE(*store->HasBlob(claimed));
  EXPECT_FALSE(*store->HasBlob(Digest::Of(data)));
  EXPECT_TRUE(ListOrDie(dir.Sub("blobs/sha256")).empty());
  ExpectConsistent(*store);
}

TEST(BlobStoreTest, SizeMismatchStoresNothing) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::string data = RandomBytes(50000);
  Digest d = Digest::Of(data);
  for (uint64_t expected : {uint64_t{49999}, uint64_t{50001}, uint64_t{0}}) {
    IngestOptions opts;
    opts.expected_size = expected;
    Result<IngestResult> r = store->IngestBlob(d, opts, data);
    ASSERT_FALSE(r.ok()) << expected;
    EXPECT_EQ(r.status().code(), Code::kCorruption);
    EXPECT_NE(r.status().message().find("expected " + std::to_string(expected) + " bytes"),
              std::string::npos)
        << r.status().ToString();
    EXPECT_FALSE(*store->HasBlob(d));
    ExpectConsistent(*store);
  }
  // A truncated stream with the right digest claim: digest mismatch, nothing stored.
  Result<IngestResult> r = store->IngestBlob(d, {}, std::string_view(data).substr(0, 100));
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(ListOrDie(dir.Sub("blobs/sha256")).empty());
  ExpectConsistent(*store);
}

TEST(BlobStoreTest, ReingestIsSuccessWithoutReadingOrRewriting) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::string data = RandomBytes(10000);
  Digest d = Digest::Of(data);
  ASSERT_TRUE(store->IngestBlob(d, {}, data).ok());
  Result<FileStat> before = env()->Stat(store->BlobPath(d));
  ASSERT_TRUE(before.ok());

  int reads = 0;
  IngestOptions opts;
  opts.expected_size = data.size();
  Result<IngestResult> r = store->IngestBlob(d, opts, [&](std::span<std::byte>) -> Result<size_t> {
    ++reads;
    return Status(Code::kIOError, "the source must not be read");
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->written);
  EXPECT_EQ(reads, 0);
  Result<FileStat> after = env()->Stat(store->BlobPath(d));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->inode, before->inode) << "the blob was rewritten";
  EXPECT_EQ(after->mtime_ns, before->mtime_ns);

  // A wrong expected size for a present blob is the caller's error, reported as such.
  opts.expected_size = data.size() + 1;
  r = store->IngestBlob(d, opts, data);
  EXPECT_EQ(r.status().code(), Code::kCorruption);
}

TEST(BlobStoreTest, SourceErrorIsReportedAndLeavesNothing) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  int calls = 0;
  Result<IngestResult> r =
      store->IngestBlob(Digest::Of("x"), {}, [&](std::span<std::byte> buf) -> Result<size_t> {
        if (++calls == 1) {
          buf[0] = std::byte{'x'};
          return size_t{1};
        }
        return Status(Code::kUnavailable, "connection reset");
      });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("connection reset"), std::string::npos);
  ExpectConsistent(*store);
}

TEST(BlobStoreTest, RejectsDigestsItCannotStore) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  Result<Digest> sha512 = Digest::Parse("sha512:" + std::string(128, 'a'));
  ASSERT_TRUE(sha512.ok());
  EXPECT_EQ(store->IngestBlob(*sha512, {}, "x").status().code(), Code::kUnsupported);
  EXPECT_EQ(store->IngestBlob(Digest(), {}, "x").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store->GetBlobInfo(Digest::Of("nope")).status().code(), Code::kNotFound);
  EXPECT_EQ(store->OpenBlob(Digest::Of("nope")).status().code(), Code::kNotFound);
}

TEST(BlobStoreTest, IngestHealsARowWhoseFileIsMissing) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::string data = RandomBytes(4096);
  Digest d = Digest::Of(data);
  ASSERT_TRUE(store->IngestBlob(d, {}, data).ok());
  ASSERT_TRUE(env()->RemoveFile(store->BlobPath(d)).ok());
  Result<CheckReport> report = store->Check();
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->problems.size(), 1u) << Describe(*report);
  EXPECT_EQ(report->problems[0].kind, ProblemKind::kMissingFile);

  Result<IngestResult> r = store->IngestBlob(d, {}, data);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->written);
  ExpectConsistent(*store);
}

TEST(BlobStoreTest, IngestAdoptsAVerifiedUnrecordedFileAndReplacesABadOne) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::string data = RandomBytes(4096, 7);
  Digest d = Digest::Of(data);
  // What a crash between the rename and the commit leaves: the file without its row.
  ASSERT_TRUE(env()->WriteFileAtomically(store->BlobPath(d), data, 0444).ok());
  int reads = 0;
  Result<IngestResult> r = store->IngestBlob(d, {}, [&](std::span<std::byte>) -> Result<size_t> {
    ++reads;
    return size_t{0};
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->written);
  EXPECT_EQ(reads, 0) << "a verified file must be adopted, not downloaded again";
  ExpectConsistent(*store);

  // A file under another digest's name with wrong bytes is replaced by the real ones.
  std::string other = RandomBytes(2048, 8);
  Digest od = Digest::Of(other);
  ASSERT_TRUE(env()->WriteFileAtomically(store->BlobPath(od), "garbage", 0444).ok());
  r = store->IngestBlob(od, {}, other);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->written);
  EXPECT_EQ(*store->ReadBlob(od, 1 << 20), other);
  ExpectConsistent(*store);
}

TEST(BlobStoreTest, RemoveBlobDeletesRowThenFile) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::string data = RandomBytes(1000);
  Digest d = Digest::Of(data);
  ASSERT_TRUE(store->IngestBlob(d, {}, data).ok());
  ASSERT_TRUE(store->RemoveBlob(d).ok());
  EXPECT_FALSE(*store->HasBlob(d));
  EXPECT_FALSE(env()->FileExists(store->BlobPath(d)));
  EXPECT_EQ(store->RemoveBlob(d).code(), Code::kNotFound);
  ExpectConsistent(*store);
}

TEST(BlobStoreTest, RemoveBlobRefusesAReferencedBlob) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::string manifest = "{\"manifest\":1}", config = "{\"config\":1}";
  Digest m = Digest::Of(manifest), c = Digest::Of(config);
  ASSERT_TRUE(store->IngestBlob(m, {}, manifest).ok());
  ASSERT_TRUE(store->IngestBlob(c, {}, config).ok());
  {
    Result<WriteTransaction> txn = store->db().BeginWrite();
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(txn->Exec("INSERT INTO manifests VALUES ('" + m.ToString() +
                          "', 'application/vnd.oci.image.manifest.v1+json', 'manifest', '" +
                          c.ToString() + "', 1)")
                    .ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  Status s = store->RemoveBlob(c);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.ToString();
  EXPECT_TRUE(*store->HasBlob(c));
  EXPECT_TRUE(env()->FileExists(store->BlobPath(c)));
  ExpectConsistent(*store);
}

TEST(BlobStoreTest, RemoveBlobDoesNotWaitForAnIngestInProgress) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::string data = RandomBytes(1000);
  Digest d = Digest::Of(data);
  ASSERT_TRUE(store->IngestBlob(d, {}, data).ok());
  Result<locking::Lock> lock = store->locks().Get(BlobLockName(d));
  ASSERT_TRUE(lock.ok());
  Result<locking::LockGuard> g = lock->TryAcquire(locking::LockMode::kExclusive, "test ingest");
  ASSERT_TRUE(g.ok());
  std::thread t([&] {
    Status s = store->RemoveBlob(d);
    EXPECT_EQ(s.code(), Code::kBusy) << s.ToString();
  });
  t.join();
  g->Release();
  EXPECT_TRUE(*store->HasBlob(d));
}

TEST(BlobStoreTest, OpenRemovesDeadIngestsAndKeepsLiveOnes) {
  TempDir dir;
  Digest dead = Digest::Of("dead"), live = Digest::Of("live");
  std::string dead_entry =
      dir.Sub("ingest/sha256-" + std::string(dead.hex()) + ".0123456789abcdef");
  std::string live_entry =
      dir.Sub("ingest/sha256-" + std::string(live.hex()) + ".fedcba9876543210");
  std::string stranger = dir.Sub("ingest/not-ours");
  {
    auto store = OpenStore(dir.path());
    ASSERT_TRUE(env()->WriteFileAtomically(dead_entry, "partial").ok());
    ASSERT_TRUE(env()->WriteFileAtomically(live_entry, "partial").ok());
    ASSERT_TRUE(env()->WriteFileAtomically(stranger, "?").ok());
  }
  Result<locking::LockSpace> locks = locking::LockSpace::Open(dir.Sub("locks"));
  ASSERT_TRUE(locks.ok());
  Result<locking::Lock> lock = locks->Get(BlobLockName(live));
  ASSERT_TRUE(lock.ok());
  Result<locking::LockGuard> writer = lock->TryAcquire(locking::LockMode::kExclusive, "writer");
  ASSERT_TRUE(writer.ok());

  // Opened from another thread: the live writer's lock belongs to this one.
  std::unique_ptr<Store> store;
  std::thread([&] { store = OpenStore(dir.path()); }).join();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->recovery().ingests_removed, 1);
  EXPECT_FALSE(env()->FileExists(dead_entry));
  EXPECT_TRUE(env()->FileExists(live_entry));
  EXPECT_TRUE(env()->FileExists(stranger)) << "Open removes only what it can prove dead";

  Result<CheckReport> report = Status(Code::kInternal, "not run");
  std::thread([&] { report = store->Check(); }).join();
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->problems.size(), 1u) << Describe(*report);
  EXPECT_EQ(report->problems[0].kind, ProblemKind::kUnknownEntry);

  writer->Release();
  report = store->Repair();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->problems.size(), 2u) << Describe(*report);  // the stranger, the now-dead one
  EXPECT_EQ(report->unresolved(), 0u) << Describe(*report);
  ExpectConsistent(*store);
}

TEST(BlobStoreTest, OpenRemovesDeadLeaseRowsAndFiles) {
  TempDir dir;
  std::string live_id;
  locking::Lease live;
  {
    auto store = OpenStore(dir.path());
    Result<locking::Lease> dead = store->locks().CreateLease("dead");
    Result<locking::Lease> alive = store->locks().CreateLease("alive");
    ASSERT_TRUE(dead.ok() && alive.ok());
    Result<WriteTransaction> txn = store->db().BeginWrite();
    ASSERT_TRUE(txn.ok());
    for (const std::string& id : {dead->id(), alive->id(), std::string("not-a-lease-id")}) {
      ASSERT_TRUE(txn->Exec("INSERT INTO leases VALUES ('" + id +
                            "', '', 1);"
                            "INSERT INTO lease_blobs VALUES ('" +
                            id + "', 'sha256:x')")
                      .ok());
    }
    ASSERT_TRUE(txn->Commit().ok());
    live_id = alive->id();
    live = std::move(*alive);
  }  // the "dead" lease is released here: its holder is gone
  auto store = OpenStore(dir.path());
  // Two rows: the released lease and the malformed id (a released lease's file is already gone).
  EXPECT_EQ(store->recovery().leases_removed, 2);
  Result<ReadTransaction> txn = store->db().BeginRead();
  ASSERT_TRUE(txn.ok());
  Result<Statement> st = txn->Prepare("SELECT lease_id FROM lease_blobs");
  ASSERT_TRUE(st.ok());
  std::vector<std::string> left;
  while (*st->Step()) left.push_back(st->ColumnText(0));
  EXPECT_EQ(left, std::vector<std::string>{live_id});
}

TEST(BlobStoreTest, CheckFindsEveryKindOfDamageAndRepairFixesIt) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::vector<Digest> ds;
  for (uint32_t i = 0; i < 5; ++i) {
    std::string data = RandomBytes(1000 + i, i);
    ds.push_back(Digest::Of(data));
    ASSERT_TRUE(store->IngestBlob(ds.back(), {}, data).ok());
  }
  ExpectConsistent(*store);
  // 0: missing file; 1: truncated; 2: same size, other bytes; 3: writable; orphan; stray entry.
  ASSERT_TRUE(env()->RemoveFile(store->BlobPath(ds[0])).ok());
  ASSERT_TRUE(env()->Chmod(store->BlobPath(ds[1]), 0644).ok());
  ASSERT_EQ(::truncate(store->BlobPath(ds[1]).c_str(), 10), 0);
  ASSERT_TRUE(env()->Chmod(store->BlobPath(ds[1]), 0444).ok());
  ASSERT_TRUE(env()->RemoveFile(store->BlobPath(ds[2])).ok());
  ASSERT_TRUE(
      env()->WriteFileAtomically(store->BlobPath(ds[2]), std::string(1002, 'z'), 0444).ok());
  ASSERT_TRUE(env()->Chmod(store->BlobPath(ds[3]), 0644).ok());
  Digest orphan = Digest::Of("orphan");
  ASSERT_TRUE(env()->WriteFileAtomically(store->BlobPath(orphan), "orphan", 0444).ok());
  ASSERT_TRUE(env()->WriteFileAtomically(dir.Sub("blobs/sha256/README"), "?").ok());

  Result<CheckReport> quick = store->Check(false);
  ASSERT_TRUE(quick.ok());
  std::multiset<ProblemKind> kinds;
  for (const auto& p : quick->problems) kinds.insert(p.kind);
  EXPECT_EQ(kinds,
            (std::multiset<ProblemKind>{ProblemKind::kMissingFile, ProblemKind::kSizeMismatch,
                                        ProblemKind::kWritableBlob, ProblemKind::kOrphanFile,
                                        ProblemKind::kUnknownEntry}))
      << Describe(*quick);
  EXPECT_EQ(quick->blobs_checked, 5u);

  Result<CheckReport> full = store->Check(true);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->problems.size(), 6u) << Describe(*full);  // + the digest mismatch

  Result<CheckReport> repaired = store->Repair(true);
  ASSERT_TRUE(repaired.ok());
  EXPECT_EQ(repaired->problems.size(), 6u) << Describe(*repaired);
  EXPECT_EQ(repaired->unresolved(), 0u) << Describe(*repaired);
  ExpectConsistent(*store);
  EXPECT_FALSE(*store->HasBlob(ds[0]));
  EXPECT_FALSE(*store->HasBlob(ds[1]));
  EXPECT_FALSE(*store->HasBlob(ds[2]));
  EXPECT_TRUE(*store->HasBlob(ds[3]));
  EXPECT_TRUE(*store->HasBlob(ds[4]));
}

TEST(BlobStoreTest, ThreadsIngestingOneBlobWriteItOnce) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::string data = RandomBytes(2 * 1024 * 1024);
  Digest d = Digest::Of(data);
  std::atomic<int> written{0}, failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      Result<IngestResult> r = store->IngestBlob(d, {}, data);
      if (!r.ok()) ++failed;
      if (r.ok() && r->written) ++written;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(written.load(), 1);
  ExpectConsistent(*store);
}

}  // namespace
}  // namespace imgstore::store
