// Blobs of a Store: the ingest protocol (lock, write into ingest/, hash, sync, verify, rename,
// sync the directory, record), lookups, reading, and removal. docs/store.md walks through the
// protocol and what a crash at each step leaves.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "store/hash_file.h"
#include "store/store.h"
#include "util/block_pipe.h"

namespace imgstore::store {
namespace {

constexpr size_t kChunk = 1 << 20;  // bytes per read of the source and per write(2)
// Blobs larger than this are read and written on two threads (CopyPipelined): below it, a
// thread costs more than it saves.
constexpr uint64_t kPipelineAbove = 4 << 20;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status CheckDigest(const Digest& d) {
  if (d.empty()) return Status(Code::kInvalidArgument, "empty blob digest");
  if (!d.IsSha256()) {
    return Status(Code::kUnsupported, "blob " + d.ToString() + ": only sha256 blobs can be stored");
  }
  return Status::OK();
}

// What an ingest wrote into ingest/: its size and digest.
struct Written {
  uint64_t size = 0;
  Digest digest;
};

Status Verify(const Digest& expected, const IngestOptions& options, const Written& w) {
  if (options.expected_size && w.size != *options.expected_size) {
    return Status(Code::kCorruption, "size mismatch: expected " +
                                         std::to_string(*options.expected_size) + " bytes, got " +
                                         std::to_string(w.size));
  }
  if (w.digest != expected) {
    return Status(Code::kCorruption, "digest mismatch: expected " + expected.ToString() + ", got " +
                                         w.digest.ToString() + " (" + std::to_string(w.size) +
                                         " bytes)");
  }
  return Status::OK();
}

// What a read of the source returned, checked before its bytes are hashed or written: no more
// than asked (`capacity`), and nothing past expected_size (`so_far` bytes came before).
Status CheckRead(const IngestOptions& options, size_t n, size_t capacity, uint64_t so_far) {
  if (n > capacity) return Status(Code::kInternal, "the source returned more bytes than asked");
  if (options.expected_size && so_far + n > *options.expected_size) {
    return Status(
        Code::kCorruption,
        "size mismatch: expected " + std::to_string(*options.expected_size) + " bytes, got more");
  }
  return Status::OK();
}

// CopySource for a small blob: reads, hashes and writes on the caller's thread.
Status CopySerially(const IngestOptions& options, const BlobReader& read, TempFile& tmp,
                    Sha256Hasher& hasher, bool* source_failed) {
  std::vector<std::byte> buf(kChunk);
  while (true) {
    Result<size_t> n = read(buf);
    if (!n.ok()) {
      *source_failed = true;
      return n.status().WithContext("read source");
    }
    if (*n == 0) return Status::OK();
    IMGSTORE_RETURN_IF_ERROR(CheckRead(options, *n, buf.size(), hasher.size()));
    std::span<const std::byte> chunk(buf.data(), *n);
    hasher.Update(chunk);
    IMGSTORE_RETURN_IF_ERROR(tmp.Append(chunk));
  }
}

// CopySource for a large blob: the caller's thread reads (a socket, a file, a decompressor)
// while a second thread hashes and writes what was read, a few chunks behind; a download then
// runs at the rate of the slower of the two, not of their sum. A failure of either stops both.
// Returns nullopt when no thread could be started.
std::optional<Status> CopyPipelined(const IngestOptions& options, const BlobReader& read,
                                    TempFile& tmp, Sha256Hasher& hasher, bool* source_failed) {
  uint64_t total = hasher.size();  // a resumed ingest's kept prefix is hashed already
  BlockPipe pipe(3, kChunk);
  Status sink;  // the writer's first error
  std::thread writer;
  try {
    writer = std::thread([&] {
      while (BlockPipe::Block* b = pipe.Receive()) {
        hasher.Update(b->bytes());
        Status s = tmp.Append(b->bytes());
        pipe.Return(b);
        if (!s.ok()) {
          sink = s;
          return pipe.Cancel();
        }
      }
    });
  } catch (const std::system_error&) {
    return std::nullopt;
  }
  // An exception out of `read` (a caller's progress callback, say) must not leave the writer
  // waiting for blocks: the thread would be destroyed joinable, and the process terminated.
  struct StopWriter {
    BlockPipe& pipe;
    std::thread& writer;
    ~StopWriter() {
      if (!writer.joinable()) return;
      pipe.Finish(Status::OK());
      writer.join();
    }
  } stop_writer{pipe, writer};
  Status source = Status::OK();
  bool from_source = false;
  while (BlockPipe::Block* b = pipe.Free()) {
    Result<size_t> n = read(b->buffer());
    if (!n.ok()) {
      source = n.status().WithContext("read source");
      from_source = true;
    } else if (*n > 0) {
      source = CheckRead(options, *n, b->capacity, total);
    }
    if (!source.ok() || *n == 0) {  // the end, or an error
      pipe.Return(b);
      break;
    }
    total += *n;
    b->size = *n;
    pipe.Send(b);
  }
  pipe.Finish(Status::OK());  // the writer drains what was sent, then stops
  writer.join();
  // A write error wins: what was read after it is not in the file, which must not be resumed.
  if (!sink.ok()) return sink;
  *source_failed = from_source;
  return source;
}

// Reads the source to its end into tmp, hashing. *source_failed tells a failure of the source
// (a broken download, worth resuming) from the others.
Status CopySource(const IngestOptions& options, const BlobReader& read, TempFile& tmp,
                  Sha256Hasher& hasher, bool* source_failed) {
  if (!options.expected_size || *options.expected_size - hasher.size() > kPipelineAbove) {
    if (std::optional<Status> s = CopyPipelined(options, read, tmp, hasher, source_failed)) {
      return *s;
    }
  }
  return CopySerially(options, read, tmp, hasher, source_failed);
}

Written Finish(Sha256Hasher& hasher) {
  const uint64_t size = hasher.size();  // Finish resets it
  return Written{size, hasher.Finish()};
}

// An ingest from the first byte into a fresh temporary file, removed on any failure.
Result<Written> WriteFresh(Env* env, const std::string& root, const Digest& expected,
                           const IngestOptions& options, const BlobReader& read,
                           std::optional<TempFile>* tmp) {
  // Born read-only: the descriptor may write, nobody else.
  Result<TempFile> file =
      TempFile::Create(env, IngestDir(root), "sha256-" + std::string(expected.hex()) + ".", 0444);
  if (!file.ok()) return file.status();
  tmp->emplace(std::move(*file));
  Sha256Hasher hasher;
  bool source_failed = false;
  IMGSTORE_RETURN_IF_ERROR(CopySource(options, read, **tmp, hasher, &source_failed));
  return Finish(hasher);
}

// An ingest into ingest/sha256-HEX.partial that goes on from what an earlier one kept there
// (IngestOptions::resume_at). The caller holds the digest's lock: no other writer appends.
Result<Written> WriteResumable(Env* env, const std::string& root, const Digest& expected,
                               const IngestOptions& options, const BlobReader& read,
                               std::optional<TempFile>* tmp) {
  const std::string path = IngestDir(root) + "/" + PartialIngestName(expected);
  Sha256Hasher hasher;
  // The kept prefix is hashed again (a hasher's state is not saved), unless it is longer than
  // the blob can be.
  uint64_t kept = 0;
  if (Result<FileStat> st = env->Stat(path); st.ok()) {
    if (options.expected_size && st->size > *options.expected_size) {
      IMGSTORE_RETURN_IF_ERROR(env->RemoveFile(path));
    } else {
      // Made read-only just before its rename into blobs/ by a writer killed right then.
      if ((st->mode & 0200) == 0) IMGSTORE_RETURN_IF_ERROR(env->Chmod(path, 0644));
      Result<std::unique_ptr<SequentialFile>> in = env->NewSequentialFile(path);
      if (!in.ok()) return in.status();
      std::vector<std::byte> buf(kChunk);
      while (kept < st->size) {
        Result<size_t> n = (*in)->Read(buf);
        if (!n.ok()) return n.status();
        if (*n == 0) break;
        size_t take = static_cast<size_t>(std::min<uint64_t>(*n, st->size - kept));
        hasher.Update(std::span<const std::byte>(buf.data(), take));
        kept += take;
      }
    }
  } else if (st.status().code() != Code::kNotFound) {
    return st.status();
  }

  // Appends the rest of the blob from byte `from`. A failure of the source keeps the file for
  // the next ingest; any other failure removes it (a full disk wants its space back; bytes that
  // broke a limit must not be resumed).
  auto append_from = [&](uint64_t from) -> Status {
    Result<TempFile> file = TempFile::OpenToAppend(env, path, 0644);
    if (!file.ok()) return file.status();
    tmp->emplace(std::move(*file));
    if (from > 0 && options.expected_size && from == *options.expected_size) {
      return Status::OK();  // all there already: nothing to ask the source for
    }
    IMGSTORE_RETURN_IF_ERROR(options.resume_at(from));
    bool source_failed = false;
    Status s = CopySource(options, read, **tmp, hasher, &source_failed);
    if (!s.ok() && source_failed && hasher.size() > 0) {  // an empty file is worth nothing
      (void)(*tmp)->Keep();
      tmp->reset();
    }
    return s;
  };
  if (kept > 0) {
    IMGSTORE_RETURN_IF_ERROR(append_from(kept));
    Written w = Finish(hasher);
    if (Verify(expected, options, w).ok()) return w;
    // The kept prefix was not the blob's (damaged by a power cut before it was synced, or sent
    // by a source that lied): once more from the first byte.
    IMGSTORE_RETURN_IF_ERROR((*tmp)->Abandon());
    tmp->reset();
  }
  IMGSTORE_RETURN_IF_ERROR(append_from(0));
  return Finish(hasher);
}

}  // namespace

std::string Store::BlobPath(const Digest& digest) const {
  return BlobsDir(root_) + "/" + std::string(digest.hex());
}

Result<std::optional<BlobInfo>> Store::FindBlob(const Digest& digest) {
  Result<ReadTransaction> txn = db_->BeginRead();
  if (!txn.ok()) return txn.status();
  Result<Statement> st =
      txn->Prepare("SELECT size, media_type, created FROM blobs WHERE digest = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, digest.ToString());
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<BlobInfo>();
  BlobInfo info;
  info.digest = digest;
  info.size = static_cast<uint64_t>(st->ColumnInt64(0));
  info.media_type = st->ColumnText(1);
  info.created_unix_ns = st->ColumnInt64(2);
  return std::optional<BlobInfo>(std::move(info));
}

Result<bool> Store::HasBlob(const Digest& digest) {
  Result<std::optional<BlobInfo>> info = FindBlob(digest);
  if (!info.ok()) return info.status();
  return info->has_value();
}

Result<BlobInfo> Store::GetBlobInfo(const Digest& digest) {
  Result<std::optional<BlobInfo>> info = FindBlob(digest);
  if (!info.ok()) return info.status();
  if (!info->has_value()) {
    return Status(Code::kNotFound, "blob " + digest.ToString() + " is not in the store");
  }
  return std::move(**info);
}

Result<std::vector<BlobInfo>> Store::ListBlobs() {
  Result<ReadTransaction> txn = db_->BeginRead();
  if (!txn.ok()) return txn.status();
  Result<Statement> st =
      txn->Prepare("SELECT digest, size, media_type, created FROM blobs ORDER BY digest");
  if (!st.ok()) return st.status();
  std::vector<BlobInfo> out;
  while (true) {
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Result<Digest> d = Digest::Parse(st->ColumnText(0));
    if (!d.ok()) {
      return Status(Code::kCorruption,
                    "database " + db_->path() + ": bad blob digest \"" + st->ColumnText(0) + "\"");
    }
    BlobInfo info;
    info.digest = std::move(*d);
    info.size = static_cast<uint64_t>(st->ColumnInt64(1));
    info.media_type = st->ColumnText(2);
    info.created_unix_ns = st->ColumnInt64(3);
    out.push_back(std::move(info));
  }
  return out;
}

Result<std::unique_ptr<SequentialFile>> Store::OpenBlob(const Digest& digest) {
  IMGSTORE_RETURN_IF_ERROR(CheckDigest(digest));
  Result<BlobInfo> info = GetBlobInfo(digest);
  if (!info.ok()) return info.status();
  return env_->NewSequentialFile(BlobPath(digest));
}

Result<std::string> Store::ReadBlob(const Digest& digest, uint64_t max_bytes) {
  IMGSTORE_RETURN_IF_ERROR(CheckDigest(digest));
  Result<BlobInfo> info = GetBlobInfo(digest);
  if (!info.ok()) return info.status();
  return env_->ReadFileToString(BlobPath(digest), max_bytes);
}

Result<IngestResult> Store::IngestBlob(const Digest& expected, const IngestOptions& options,
                                       std::string_view bytes) {
  size_t offset = 0;
  return IngestBlob(expected, options, [&](std::span<std::byte> buf) -> Result<size_t> {
    size_t n = std::min(buf.size(), bytes.size() - offset);
    // An empty view may have no data pointer, and memcpy from null is undefined even for 0 bytes.
    if (n > 0) std::memcpy(buf.data(), bytes.data() + offset, n);
    offset += n;
    return n;
  });
}

Result<IngestResult> Store::IngestBlob(const Digest& expected, const IngestOptions& options,
                                       SequentialFile& source) {
  return IngestBlob(expected, options, [&](std::span<std::byte> buf) { return source.Read(buf); });
}

Result<IngestResult> Store::IngestBlob(const Digest& expected, const IngestOptions& options,
                                       const BlobReader& read) {
  IMGSTORE_RETURN_IF_ERROR(CheckDigest(expected));
  const std::string what = "ingest blob " + expected.ToString();
  const std::string target = BlobPath(expected);

  // Present means: recorded, and its file is there with the recorded size. (A row whose file
  // was lost is rewritten below: an ingest heals it.)
  auto present = [&]() -> Result<std::optional<BlobInfo>> {
    Result<std::optional<BlobInfo>> info = FindBlob(expected);
    if (!info.ok() || !info->has_value()) return info;
    Result<FileStat> st = env_->Stat(target);
    if (!st.ok() || st->type != FileType::kRegular || st->size != (*info)->size) {
      return std::optional<BlobInfo>();
    }
    if (options.expected_size && *options.expected_size != (*info)->size) {
      return Status(Code::kCorruption,
                    what + ": size mismatch: expected " + std::to_string(*options.expected_size) +
                        " bytes, the stored blob has " + std::to_string((*info)->size));
    }
    return info;
  };

  // Fast path, without the lock: most ingests of a present blob (a re-pull) end here.
  Result<std::optional<BlobInfo>> found = present();
  if (!found.ok()) return found.status();
  if (found->has_value()) return IngestResult{std::move(**found), false};

  // The per-digest lock, taken before any write transaction (lock order). A second ingest of
  // this digest waits here and then finds the first's result.
  Result<locking::LockGuard> guard =
      LockBlob(expected, options.operation.empty() ? what : options.operation);
  if (!guard.ok()) return guard.status().WithContext(what);
  found = present();
  if (!found.ok()) return found.status();
  if (found->has_value()) return IngestResult{std::move(**found), false};
  bool had_row = false;
  {
    Result<std::optional<BlobInfo>> row = FindBlob(expected);
    if (!row.ok()) return row.status();
    had_row = row->has_value();
  }

  // The row, and the end of the intent-log entry (below) in the same transaction.
  auto record = [&](uint64_t size) -> Result<BlobInfo> {
    BlobInfo info{expected, size, options.media_type, NowNs()};
    Result<WriteTransaction> txn = db_->BeginWrite();
    if (!txn.ok()) return txn.status();
    {
      Result<Statement> st = txn->Prepare(
          "INSERT INTO blobs (digest, size, media_type, created) VALUES (?, ?, ?, ?) "
          "ON CONFLICT (digest) DO UPDATE SET size = excluded.size");
      if (!st.ok()) return st.status();
      st->Bind(1, expected.ToString())
          .Bind(2, static_cast<int64_t>(size))
          .Bind(3, info.media_type)
          .Bind(4, info.created_unix_ns);
      IMGSTORE_RETURN_IF_ERROR(st->Run());
    }
    IMGSTORE_RETURN_IF_ERROR(SetPendingBlob(*txn, expected, false));
    IMGSTORE_RETURN_IF_ERROR(txn->Commit());
    return info;
  };

  // A file with no row: what a crash between the rename and the commit leaves (or a row whose
  // file is damaged). Only verified bytes are ever renamed here, but verify again rather than
  // trust the disk; adopting it saves reading the source.
  Result<FileStat> existing = env_->Stat(target);
  if (existing.ok()) {
    Result<FileHash> hashed = HashFile(env_, target);
    if (hashed.ok() && hashed->digest == expected &&
        (!options.expected_size || *options.expected_size == hashed->size)) {
      Result<BlobInfo> info = record(hashed->size);
      if (!info.ok()) return info.status().WithContext(what);
      return IngestResult{std::move(*info), false};
    }
    // Wrong bytes under a content address: nobody may rely on them; replace them.
    IMGSTORE_RETURN_IF_ERROR(env_->RemoveFile(target));
  } else if (existing.status().code() != Code::kNotFound) {
    return existing.status();
  }

  // Write into ingest/, named after the digest so that recovery can find the lock that tells a
  // live writer from a dead one.
  std::optional<TempFile> tmp;
  Result<Written> w = options.resume_at ? WriteResumable(env_, root_, expected, options, read, &tmp)
                                        : WriteFresh(env_, root_, expected, options, read, &tmp);
  Status verified = w.ok() ? Verify(expected, options, *w) : w.status();
  if (!verified.ok()) return verified.WithContext(what);
  const uint64_t size = w->size;
  if (options.resume_at) {
    // Kept partial files are writable so that a later writer can append; blobs are read-only.
    Status s = env_->Chmod(tmp->path(), 0444);
    if (!s.ok()) return s.WithContext(what);
  }

  // Before the file appears in blobs/ without a row, the intent log names it (docs/store.md
  // "Crash analysis"): a kill between the rename and the commit of the row then leaves an entry
  // that the next Store::Open finishes (it removes the file, since the lock is free and no row
  // came), instead of an orphan file that check would report.
  if (!had_row) {
    Status logged = LogPendingBlob(expected);
    if (!logged.ok()) return logged.WithContext(what);
  }
  // Sync, close, rename into blobs/sha256/ (never over an existing name), sync the directory.
  Status s = tmp->Commit(target, CommitMode::kNoReplace);
  if (!s.ok()) {
    // If the rename happened but the directory sync failed, the file is at its final name yet
    // not known to be durable: take it away so that nothing unrecorded stays behind.
    if (s.code() != Code::kAlreadyExists && env_->FileExists(target)) {
      (void)env_->RemoveFile(target);
    }
    return s.WithContext(what);
  }

  Result<BlobInfo> info = record(size);
  if (!info.ok()) {
    // Keep "no file without a row"; if this removal fails too, the log entry stays and the
    // next open finishes it.
    if (!had_row && env_->RemoveFile(target).ok() && env_->SyncDir(BlobsDir(root_)).ok()) {
      (void)ClearPendingBlob(expected);
    }
    return info.status().WithContext(what);
  }
  return IngestResult{std::move(*info), true};
}

Status Store::RemoveBlob(const Digest& digest) {
  IMGSTORE_RETURN_IF_ERROR(CheckDigest(digest));
  const std::string what = "remove blob " + digest.ToString();
  // Try only: a remover never waits for an ingest (gc skips what is being written).
  Result<locking::Lock> lock = locks_.Get(BlobLockName(digest));
  if (!lock.ok()) return lock.status();
  Result<locking::LockGuard> guard = lock->TryAcquire(locking::LockMode::kExclusive, what);
  if (!guard.ok()) {
    if (guard.status().code() == Code::kBusy) {
      return Status(Code::kBusy, what + ": it is being ingested");
    }
    return guard.status().WithContext(what);
  }
  int64_t removed_rows = 0;
  {
    Result<WriteTransaction> txn = db_->BeginWrite();
    if (!txn.ok()) return txn.status().WithContext(what);
    {
      Result<Statement> st = txn->Prepare("DELETE FROM blobs WHERE digest = ?");
      if (!st.ok()) return st.status();
      Status s = st->Bind(1, digest.ToString()).Run();
      if (s.code() == Code::kFailedPrecondition) {
        return Status(Code::kFailedPrecondition, what + ": still referenced (" + s.message() + ")");
      }
      IMGSTORE_RETURN_IF_ERROR(s);
    }
    removed_rows = txn->Changes();
    IMGSTORE_RETURN_IF_ERROR(SetPendingBlob(*txn, digest, true));
    IMGSTORE_RETURN_IF_ERROR(txn->Commit());
  }
  // Row first, then the file: a crash in between leaves a file that the intent log names (the
  // next open removes it), never a row without its file.
  Status s = env_->RemoveFile(BlobPath(digest));
  if (s.code() == Code::kNotFound) s = Status::OK();
  if (!s.ok()) return s.WithContext(what);  // the log entry stays: the next open retries
  // The unlink must be durable before the log entry goes (a power loss would bring it back).
  s = env_->SyncDir(BlobsDir(root_));
  if (!s.ok()) return s.WithContext(what);
  IMGSTORE_RETURN_IF_ERROR(ClearPendingBlob(digest));
  if (removed_rows == 0) return Status(Code::kNotFound, what + ": not in the store");
  return Status::OK();
}

Status Store::SetPendingBlob(Transaction& txn, const Digest& digest, bool pending) {
  Result<Statement> st =
      txn.Prepare(pending ? "INSERT OR IGNORE INTO gc_pending (kind, digest) VALUES ('blob', ?)"
                          : "DELETE FROM gc_pending WHERE kind = 'blob' AND digest = ?");
  if (!st.ok()) return st.status();
  return st->Bind(1, digest.ToString()).Run();
}

Status Store::LogPendingBlob(const Digest& digest) {
  Result<WriteTransaction> txn = db_->BeginWrite();
  if (!txn.ok()) return txn.status();
  IMGSTORE_RETURN_IF_ERROR(SetPendingBlob(*txn, digest, true));
  return txn->Commit();
}

Status Store::ClearPendingBlob(const Digest& digest) {
  Result<WriteTransaction> txn = db_->BeginWrite();
  if (!txn.ok()) return txn.status();
  IMGSTORE_RETURN_IF_ERROR(SetPendingBlob(*txn, digest, false));
  return txn->Commit();
}

}  // namespace imgstore::store
