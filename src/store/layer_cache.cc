// The layer cache: ROOT/layers/sha256-HEX, one directory per chainID, extracted once under its
// layer lock and shared by every image and mount that uses it (store.h "Layers on disk",
// docs/layers.md). Store::AcquireLayers, the per-layer protocol, and what Store::Open and
// Store::Check do about what a killed extractor left.
#include "store/layer_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "layers/decompress.h"
#include "layers/tee_stream.h"

namespace imgstore::store {
namespace layer_cache {
namespace {

constexpr std::string_view kStagingPrefix = ".staging-";
constexpr std::string_view kDirPrefix = "sha256-";

std::string LayersDir(const std::string& root) { return root + "/layers"; }

Status ImageRemoved(const Digest& chain) {
  return Status(Code::kNotFound,
                "layer " + chain.ToString() + " is no longer recorded: image removed");
}

std::string RandomSuffix() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

// The chain a directory name of ROOT/layers belongs to: "sha256-HEX" (a layer) or
// ".staging-sha256-HEX.<random>" (an extraction); an empty Digest for anything else.
Digest ChainOfName(std::string_view name, bool staging) {
  if (staging) {
    if (!name.starts_with(kStagingPrefix)) return Digest();
    name.remove_prefix(kStagingPrefix.size());
    size_t dot = name.find('.');
    if (dot == std::string_view::npos || dot + 1 == name.size()) return Digest();
    name = name.substr(0, dot);
  }
  if (!name.starts_with(kDirPrefix)) return Digest();
  Result<Digest> d = Digest::Parse("sha256:" + std::string(name.substr(kDirPrefix.size())));
  if (!d.ok() || !d->IsSha256()) return Digest();
  return *d;
}

// The unpack_state of the layer's row; nullopt when there is no row.
Result<std::optional<std::string>> RowState(Db& db, const Digest& chain) {
  Result<ReadTransaction> txn = db.BeginRead();
  if (!txn.ok()) return txn.status();
  Result<Statement> st = txn->Prepare("SELECT unpack_state FROM layers WHERE chain_id = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, chain.ToString());
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<std::string>();
  return std::optional<std::string>(st->ColumnText(0));
}

bool IsDir(Env* env, const std::string& path) {
  Result<FileStat> st = env->Stat(path);
  return st.ok() && st->type == FileType::kDirectory;
}

// Sets the row's state in a short write transaction; false when the row is gone (or, with
// `only_from`, not in that state).
Result<bool> SetState(Db& db, const Digest& chain, std::string_view state,
                      std::optional<uint64_t> size, std::string_view only_from = "") {
  Result<WriteTransaction> txn = db.BeginWrite();
  if (!txn.ok()) return txn.status();
  Result<Statement> st = txn->Prepare(
      only_from.empty()
          ? "UPDATE layers SET unpack_state = ?1, unpacked_size = ?2 WHERE chain_id = ?3"
          : "UPDATE layers SET unpack_state = ?1, unpacked_size = ?2 WHERE chain_id = ?3 "
            "AND unpack_state = ?4");
  if (!st.ok()) return st.status();
  st->Bind(1, state);
  if (size) {
    st->Bind(2, static_cast<int64_t>(*size));
  } else {
    st->BindNull(2);
  }
  st->Bind(3, chain.ToString());
  if (!only_from.empty()) st->Bind(4, only_from);
  IMGSTORE_RETURN_IF_ERROR(st->Run());
  const bool changed = txn->Changes() > 0;
  IMGSTORE_RETURN_IF_ERROR(txn->Commit());
  return changed;
}

// A directory removed (with everything in it) when this object goes, unless Keep() was called.
class TreeRemover {
 public:
  TreeRemover(Env* env, std::string path) : env_(env), path_(std::move(path)) {}
  ~TreeRemover() {
    if (!path_.empty()) (void)env_->RemoveTree(path_);
  }
  TreeRemover(const TreeRemover&) = delete;
  TreeRemover& operator=(const TreeRemover&) = delete;
  void Keep() { path_.clear(); }

 private:
  Env* env_;
  std::string path_;
};

// The layer's blob, with the compression to read it with: the media type's, except that the
// Docker types are sniffed (docker save has written uncompressed tars under the gzip type).
Result<std::pair<std::unique_ptr<SequentialFile>, layers::Compression>> OpenLayerBlob(
    Store& store, const LayerRecord& layer) {
  Result<layers::Compression> c = layers::CompressionOfMediaType(layer.media_type);
  if (!c.ok()) return c.status().WithContext("layer " + layer.digest.ToString());
  layers::Compression compression = *c;
  if (layer.media_type.starts_with("application/vnd.docker.")) {
    Result<std::unique_ptr<SequentialFile>> head = store.OpenBlob(layer.digest);
    if (!head.ok()) return head.status();
    std::array<std::byte, 4> buf{};
    size_t got = 0;
    while (got < buf.size()) {
      Result<size_t> n = (*head)->Read(std::span<std::byte>(buf).subspan(got));
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      got += *n;
    }
    compression = layers::SniffCompression(std::span<const std::byte>(buf.data(), got));
  }
  Result<std::unique_ptr<SequentialFile>> blob = store.OpenBlob(layer.digest);
  if (!blob.ok()) return blob.status();
  return std::make_pair(std::move(*blob), compression);
}

layers::ExtractOptions ExtractOptionsFor(const LayerRecord& layer, const LayerUseOptions& options) {
  layers::ExtractOptions eo = options.extract;
  eo.expected_diff_id = layer.diff_id;
  return eo;
}

// Extracts the layer into `staging` (overlay whiteouts) and, when apply_dir is set, onto
// apply_dir (whiteouts applied). Writing the files is what costs on a small machine (kernel time
// per file and per byte), so the two trees are written by two passes on two threads rather than
// by one pass that writes each entry twice; the blob is decompressed once for both (TeeStream),
// since decompressing gzip is the other half of the cost. Each pass hashes the stream and checks
// the diffID itself (docs/performance.md, "Unpack and mount"). Progress and warnings come from
// the destination's pass only: they would say the same twice.
Result<layers::ExtractStats> ExtractToCacheAndDestination(Store& store, const LayerRecord& layer,
                                                          const std::string& staging,
                                                          std::span<const std::string> lower_dirs,
                                                          const LayerUseOptions& options,
                                                          const std::string& apply_dir) {
  const std::vector<layers::ExtractTarget> cache{
      {staging, layers::WhiteoutMode::kOverlay,
       std::vector<std::string>(lower_dirs.begin(), lower_dirs.end())}};
  layers::ExtractOptions eo = ExtractOptionsFor(layer, options);
  auto blob = OpenLayerBlob(store, layer);
  if (!blob.ok()) return blob.status();
  if (apply_dir.empty()) {
    return layers::ExtractLayerBlob(std::move(blob->first), blob->second, cache, eo);
  }
  Result<std::unique_ptr<SequentialFile>> tar =
      layers::OpenDecompressed(std::move(blob->first), blob->second, eo.limits.decompress);
  if (!tar.ok()) return tar.status();
  layers::TeeStream tee(std::move(*tar), 2);
  std::unique_ptr<SequentialFile> cache_in = tee.Reader(0);
  std::unique_ptr<SequentialFile> apply_in = tee.Reader(1);

  // A pass that fails stops the other (which then ends as cancelled): its error is the one told.
  std::atomic<bool> failed{false};
  const std::function<bool()> caller_cancelled = eo.cancelled;
  eo.cancelled = [&failed, caller_cancelled] {
    return failed.load() || (caller_cancelled && caller_cancelled());
  };
  layers::ExtractOptions quiet = eo;
  quiet.on_progress = nullptr;
  quiet.on_warning = nullptr;
  Result<layers::ExtractStats> cached = Status(Code::kInternal, "cache extraction did not run");
  std::thread cache_pass([&] {
    cached = layers::ExtractLayer(*cache_in, cache, quiet);
    if (!cached.ok()) failed = true;
    cache_in.reset();  // the tee no longer waits for this reader
  });
  const std::vector<layers::ExtractTarget> destination{
      {apply_dir, layers::WhiteoutMode::kApply, {}}};
  Result<layers::ExtractStats> applied = layers::ExtractLayer(*apply_in, destination, eo);
  if (!applied.ok()) failed = true;
  apply_in.reset();
  cache_pass.join();
  const bool applied_first = !applied.ok() && applied.status().code() != Code::kCancelled;
  if (applied_first || (!applied.ok() && cached.ok())) return applied;
  if (!cached.ok()) return cached.status();
  return applied;
}

// Extracts the layer into a fresh staging directory (and apply_dir), makes it durable, renames
// it into place and records it complete. The caller holds the layer lock (upgradable).
Result<layers::ExtractStats> ExtractAndPublish(const Context& ctx, const LayerRecord& layer,
                                               std::span<const std::string> lower_dirs,
                                               const LayerUseOptions& options,
                                               const std::string& apply_dir) {
  const Digest& chain = layer.chain_id;
  const std::string final_dir = LayerDir(ctx.root, chain);
  Result<bool> marked = SetState(ctx.db, chain, "incomplete", std::nullopt);
  if (!marked.ok()) return marked.status();
  if (!*marked) return ImageRemoved(chain);

  bool published = false;
  auto fail = [&](Status s) -> Status {
    // Best effort: the next Store::Open redoes this if it fails (the lock is then free).
    if (published) (void)ctx.env->RemoveTree(final_dir);
    (void)SetState(ctx.db, chain, "none", std::nullopt, "incomplete");
    return s;
  };

  // A directory at the final name without a complete row is a leftover (a gc killed before it
  // removed it, or a crash between the rename and the commit): nobody uses it, since users need
  // a complete row, and we hold the lock.
  if (ctx.env->FileExists(final_dir)) {
    Status s = ctx.env->RemoveTree(final_dir);
    if (!s.ok()) return fail(s);
  }
  const std::string staging = LayersDir(ctx.root) + "/" + std::string(kStagingPrefix) +
                              std::string(kDirPrefix) + std::string(chain.hex()) + "." +
                              RandomSuffix();
  Status s = ctx.env->CreateDir(staging, 0755);
  if (!s.ok()) return fail(s);
  TreeRemover remove_staging(ctx.env, staging);

  if (options.on_extract) options.on_extract(chain, false);
  Result<layers::ExtractStats> stats =
      ExtractToCacheAndDestination(*ctx.store, layer, staging, lower_dirs, options, apply_dir);
  if (!stats.ok()) return fail(stats.status().WithContext("extract layer " + chain.ToString()));

  s = SyncFileSystem(staging);
  if (!s.ok()) return fail(s);
  s = ctx.env->RenameNoReplace(staging, final_dir);
  if (!s.ok()) return fail(s);
  remove_staging.Keep();
  published = true;
  s = ctx.env->SyncDir(LayersDir(ctx.root));
  if (!s.ok()) return fail(s);
  Result<bool> done = SetState(ctx.db, chain, "complete", stats->file_bytes);
  if (!done.ok()) return fail(done.status());
  if (!*done) return fail(ImageRemoved(chain));
  if (options.on_extract) options.on_extract(chain, true);
  return stats;
}

}  // namespace

Status SyncFileSystem(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + dir);
  int rc = ::syncfs(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::FromErrno(err, "syncfs " + dir);
  return Status::OK();
}

Result<HeldLayer> UseLayer(const Context& ctx, const LayerRecord& layer,
                           std::span<const std::string> lower_dirs, const LayerUseOptions& options,
                           const std::string& apply_dir, bool extract) {
  const Digest& chain = layer.chain_id;
  const std::string dir = LayerDir(ctx.root, chain);
  Result<locking::Lock> lock = ctx.locks.Get(LayerLockName(chain));
  if (!lock.ok()) return lock.status();
  locking::LockOptions lo;
  lo.timeout = ctx.lock_timeout;
  lo.operation = options.operation.empty() ? "use layer" : options.operation;
  lo.on_wait = ctx.on_wait;

  // Whether the layer is usable now: a complete row and its directory. Looked at again after
  // every acquisition, since the lock was free (for gc, or another extractor) before it.
  auto ready = [&]() -> Result<bool> {
    Result<std::optional<std::string>> state = RowState(ctx.db, chain);
    if (!state.ok()) return state.status();
    if (!state->has_value()) return ImageRemoved(chain);
    return **state == "complete" && IsDir(ctx.env, dir);
  };

  HeldLayer held;
  Result<locking::LockGuard> g = lock->Acquire(locking::LockMode::kShared, lo);
  if (!g.ok()) return g.status();
  Result<bool> r = ready();
  if (!r.ok()) return r.status();
  if (*r) {
    held.guard = std::move(*g);
    held.dir = dir;
    return held;
  }
  g->Release();
  if (!extract) return held;

  // One extractor per layer: the upgradable mode. Users that hold the layer shared (none while
  // it is not complete) and users of other layers never wait for it.
  g = lock->Acquire(locking::LockMode::kUpgradable, lo);
  if (!g.ok()) return g.status();
  r = ready();
  if (!r.ok()) return r.status();
  if (!*r) {
    Result<layers::ExtractStats> stats =
        ExtractAndPublish(ctx, layer, lower_dirs, options, apply_dir);
    if (!stats.ok()) return stats.status();
    held.extracted = true;
    held.stats = *stats;
  }
  g->Downgrade(locking::LockMode::kShared);
  held.guard = std::move(*g);
  held.dir = dir;
  return held;
}

Result<layers::ExtractStats> ExtractInto(const Context& ctx, const LayerRecord& layer,
                                         const LayerUseOptions& options, const std::string& dir) {
  auto blob = OpenLayerBlob(*ctx.store, layer);
  if (!blob.ok()) return blob.status();
  std::vector<layers::ExtractTarget> targets{{dir, layers::WhiteoutMode::kApply, {}}};
  Result<layers::ExtractStats> stats = layers::ExtractLayerBlob(
      std::move(blob->first), blob->second, targets, ExtractOptionsFor(layer, options));
  if (!stats.ok()) return stats.status().WithContext("extract layer " + layer.chain_id.ToString());
  return stats;
}

namespace {

// Try-locks a layer exclusively: the guard, or nullopt when someone uses or extracts it.
Result<std::optional<locking::LockGuard>> TryLockLayer(const locking::LockSpace& locks,
                                                       const Digest& chain,
                                                       std::string_view operation) {
  Result<locking::Lock> lock = locks.Get(LayerLockName(chain));
  if (!lock.ok()) return lock.status();
  Result<locking::LockGuard> g = lock->TryAcquire(locking::LockMode::kExclusive, operation);
  if (g.ok()) return std::optional<locking::LockGuard>(std::move(*g));
  if (g.status().code() == Code::kBusy) return std::optional<locking::LockGuard>();
  return g.status();
}

Result<std::vector<Digest>> IncompleteRows(Db& db) {
  Result<ReadTransaction> txn = db.BeginRead();
  if (!txn.ok()) return txn.status();
  Result<std::vector<std::string>> rows =
      txn->SelectColumn("SELECT chain_id FROM layers WHERE unpack_state = 'incomplete'");
  if (!rows.ok()) return rows.status();
  std::vector<Digest> out;
  for (const std::string& text : *rows) {
    Result<Digest> d = Digest::Parse(text);
    if (d.ok()) out.push_back(*d);
  }
  return out;
}

// Resets an 'incomplete' row whose extractor is dead (the caller holds the lock exclusively):
// the row back to 'none', and a directory renamed into place just before the kill removed
// (it may not be durable, and nothing recorded it). The row is read again first: the caller saw
// it 'incomplete' before it took the lock, and an extractor that finished in between (its row
// now 'complete') must keep its directory.
Result<bool> ResetIncomplete(Db& db, Env* env, const std::string& root, const Digest& chain) {
  Result<std::optional<std::string>> now = RowState(db, chain);
  if (!now.ok()) return now.status();
  if (!now->has_value() || **now != "incomplete") return false;
  Status s = env->RemoveTree(LayerDir(root, chain));
  if (!s.ok()) return s;
  return SetState(db, chain, "none", std::nullopt, "incomplete");
}

}  // namespace

Result<int> RecoverLayers(Db& db, Env* env, const locking::LockSpace& locks,
                          const std::string& root, const std::function<void()>& after_listing) {
  int cleaned = 0;
  Result<std::vector<std::string>> names = env->ListDir(LayersDir(root));
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    Digest chain = ChainOfName(name, /*staging=*/true);
    if (chain.empty()) continue;  // not a staging dir (or not ours): Check reports strays
    Result<std::optional<locking::LockGuard>> g = TryLockLayer(locks, chain, "recover layer");
    if (!g.ok()) return g.status();
    if (!g->has_value()) continue;  // a live extractor
    Status s = env->RemoveTree(LayersDir(root) + "/" + name);
    if (!s.ok()) return s;
    ++cleaned;
  }
  Result<std::vector<Digest>> incomplete = IncompleteRows(db);
  if (!incomplete.ok()) return incomplete.status();
  if (after_listing) after_listing();
  for (const Digest& chain : *incomplete) {
    Result<std::optional<locking::LockGuard>> g = TryLockLayer(locks, chain, "recover layer");
    if (!g.ok()) return g.status();
    if (!g->has_value()) continue;
    Result<bool> reset = ResetIncomplete(db, env, root, chain);
    if (!reset.ok()) return reset.status();
    if (*reset) ++cleaned;
  }
  return cleaned;
}

Status CheckLayers(Db& db, Env* env, const locking::LockSpace& locks, const std::string& root,
                   bool repair, CheckReport* report) {
  std::map<std::string, std::string> states;  // chain id text → unpack_state
  std::set<std::string> pending;              // chain ids whose directory gc is removing
  {
    Result<ReadTransaction> txn = db.BeginRead();
    if (!txn.ok()) return txn.status();
    Result<Statement> st = txn->Prepare("SELECT chain_id, unpack_state FROM layers");
    if (!st.ok()) return st.status();
    for (;;) {
      Result<bool> row = st->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      states[st->ColumnText(0)] = st->ColumnText(1);
    }
    Result<std::vector<std::string>> p =
        txn->SelectColumn("SELECT digest FROM gc_pending WHERE kind = 'layer'");
    if (!p.ok()) return p.status();
    pending.insert(p->begin(), p->end());
  }
  auto add = [&](std::string path, std::string message) -> CheckProblem& {
    report->problems.push_back({ProblemKind::kLayerDir, std::move(path), std::move(message)});
    return report->problems.back();
  };

  // 1. Rows: a complete layer has its directory; an incomplete one has a live extractor. Each
  //    is confirmed under the lock (a try: a held lock is work in progress, not a problem).
  for (const auto& [text, state] : states) {
    if (state == "none") continue;
    Result<Digest> chain = Digest::Parse(text);
    if (!chain.ok()) continue;  // the metadata checks report bad rows
    const std::string dir = LayerDir(root, *chain);
    if (state == "complete" && IsDir(env, dir)) continue;
    Result<std::optional<locking::LockGuard>> g = TryLockLayer(locks, *chain, "check");
    if (!g.ok()) return g.status();
    if (!g->has_value()) continue;
    Result<std::optional<std::string>> now = RowState(db, *chain);
    if (!now.ok()) return now.status();
    if (!now->has_value() || **now != state) continue;  // changed meanwhile
    if (state == "complete") {
      if (IsDir(env, dir)) continue;
      CheckProblem& p =
          add(dir, "layer " + text + " is recorded as unpacked but " +
                       (env->FileExists(dir) ? "is not a directory" : "its directory is missing"));
      if (repair) {
        IMGSTORE_RETURN_IF_ERROR(env->RemoveTree(dir));
        Result<bool> done = SetState(db, *chain, "none", std::nullopt, "complete");
        if (!done.ok()) return done.status();
        p.repaired = true;
      }
    } else {
      CheckProblem& p =
          add(dir, "layer " + text + " was left half-unpacked by an extractor that is gone");
      if (repair) {
        Result<bool> done = ResetIncomplete(db, env, root, *chain);
        if (!done.ok()) return done.status();
        p.repaired = true;
      }
    }
  }

  // 2. Entries of ROOT/layers: each is a complete layer's directory or a live extraction.
  Result<std::vector<std::string>> names = env->ListDir(LayersDir(root));
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    const std::string path = LayersDir(root) + "/" + name;
    const bool staging = name.starts_with(kStagingPrefix);
    Digest chain = ChainOfName(name, staging);
    if (chain.empty()) {
      CheckProblem& p = add(path, "unexpected entry in layers/: " + name);
      if (repair) {
        IMGSTORE_RETURN_IF_ERROR(env->RemoveTree(path));
        p.repaired = true;
      }
      continue;
    }
    const std::string text = chain.ToString();
    if (!staging) {
      auto it = states.find(text);
      if (it != states.end() && it->second != "none") continue;  // checked above
      if (pending.count(text) != 0) continue;                    // gc (or the next open) removes it
    }
    Result<std::optional<locking::LockGuard>> g = TryLockLayer(locks, chain, "check");
    if (!g.ok()) return g.status();
    if (!g->has_value()) continue;  // being extracted or used
    if (!env->FileExists(path)) continue;
    if (!staging) {
      Result<std::optional<std::string>> now = RowState(db, chain);
      if (!now.ok()) return now.status();
      if (now->has_value() && **now != "none") continue;
    }
    CheckProblem& p =
        add(path, staging ? "layers/" + name + " was left by an extractor that is gone"
                          : "layers/" + name + " has no unpacked layer recorded");
    if (repair) {
      IMGSTORE_RETURN_IF_ERROR(env->RemoveTree(path));
      p.repaired = true;
    }
  }
  return Status::OK();
}

}  // namespace layer_cache

Result<LayerSet> Store::AcquireLayers(std::string_view image, const LayerUseOptions& options) {
  Result<ImageDetails> details = InspectImage(image);
  if (!details.ok()) return details.status();
  // Until every layer is held: one not in the cache is extracted from its blob, and an rmi and
  // gc may run meanwhile. A held layer needs its blob no more.
  const std::string what = "layers of " + std::string(image);
  Result<std::unique_ptr<StoreLease>> lease = PinImage(*details, what, what);
  if (!lease.ok()) return lease.status();
  Result<LayerSet> set = AcquireLayerRecords(details->layers, options);
  if (!set.ok()) return set.status().WithContext(what);
  return set;
}

Result<LayerSet> Store::AcquireLayerRecords(std::span<const LayerRecord> layers,
                                            const LayerUseOptions& options) {
  const layer_cache::Context ctx{
      this, root_, env_, *db_, locks_, options_.lock_timeout, options_.on_wait};
  LayerSet set;
  std::vector<std::string> lower;  // nearest first
  for (const LayerRecord& layer : layers) {
    Result<layer_cache::HeldLayer> held =
        layer_cache::UseLayer(ctx, layer, lower, options, /*apply_dir=*/"", /*extract=*/true);
    if (!held.ok()) return held.status();
    lower.insert(lower.begin(), held->dir);
    set.chain_ids_.push_back(layer.chain_id);
    set.dirs_.push_back(held->dir);
    set.guards_.push_back(std::move(held->guard));
    set.extracted_ += held->extracted ? 1 : 0;
  }
  return set;
}

}  // namespace imgstore::store
