// src/store: the Store facade — one root directory with SQLite metadata and content-addressed
// blobs, per-operation locking, crash recovery, and the consistency check.
//
// CONTRACT
//
// Layout of a root (design.md):
//   ROOT/meta.db          SQLite (WAL): blobs, manifests, images, names, layers, leases
//   ROOT/blobs/sha256/HEX immutable, read-only (0444) blobs exactly as received
//   ROOT/ingest/          in-progress writes: sha256-HEX.<random>; never read as content;
//                         sha256-HEX.partial: a registry download kept for resumption
//   ROOT/layers/          unpacked layers: sha256-HEX (a chainID) per layer, one layer's own
//                         entries with overlay whiteouts; .staging-* while being extracted
//   ROOT/mounts/NAME/     a mount: merged/ (the mount point), upper/ and work/ (overlay)
//   ROOT/locks/           lock files and leases (src/locking)
//
// Invariant: a row in `blobs` means a complete, verified, durable file blobs/sha256/HEX of that
// size. A blob is written to ingest/, hashed while written, fsynced, verified (digest and size),
// renamed into blobs/sha256/ (born 0444), the directory fsynced, and only then recorded in a short
// write transaction. Bytes that fail verification are never stored.
//
// Concurrency: a Store is used by many threads at once, and many processes (each with its own
// Store) share a root. No store-wide lock exists. Reads are SQLite snapshots. An ingest holds the
// per-digest file lock "blob-sha256-HEX" (exclusive) from before it looks for the blob until after
// its row is committed, so two ingests of one digest — threads or processes — write it once: the
// second waits (up to StoreOptions::lock_timeout) and then finds it present. Lock order: a file
// lock is taken before a SQLite write transaction begins, never while one is open.
//
// Crash safety: Store::Open quietly removes what a killed writer left: ingest entries whose
// per-digest lock is free (their writer is dead), and dead leases (files and rows). A live
// writer's entries are left alone (its lock is held). The exception is a resumable download
// (IngestOptions::resume_at): its bytes so far stay in ingest/sha256-HEX.partial for the next
// ingest of the digest to go on from, until gc removes it or it is older than
// StoreOptions::partial_download_ttl. docs/store.md has the step-by-step crash analysis of the
// ingest protocol.
//
// All file I/O of the store goes through StoreOptions::env (SQLite does its own I/O; lock files
// are src/locking's), so tests can fail any write, sync, rename or mkdir.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "images/platform.h"
#include "images/transport.h"
#include "layers/extract.h"
#include "layers/tree.h"
#include "locking/locking.h"
#include "store/db.h"
#include "store/images.h"
#include "util/digest.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::store {

struct StoreOptions {
  Env* env = nullptr;  // nullptr: Env::Default()
  // Deadline of every wait for a per-object file lock (a second ingest of the same blob).
  locking::Duration lock_timeout = locking::kDefaultLockTimeout;
  // Backstop for waits on SQLite's write lock (db.h).
  std::chrono::milliseconds db_busy_timeout = std::chrono::seconds(30);
  // The SQLite VFS meta.db is opened with (DbOptions::vfs); empty: SQLite's default. For tests.
  std::string sqlite_vfs;
  // Called once per lock wait that lasts longer than a second: "waiting for lock NAME held by
  // pid N (OPERATION) for Ts". The CLI prints it on stderr.
  std::function<void(const std::string& line)> on_wait;
  // A partial download (IngestOptions::resume_at) that nobody resumed for this long is removed
  // by Store::Open, as gc removes any that no ingest holds.
  std::chrono::seconds partial_download_ttl = std::chrono::hours(24);
  // Bounds on the stored manifests and configs read back (Inspect, Commit's base image): those
  // a pull accepted, so a store that pulls with raised PullOptions::limits wants them raised too.
  images::ParseLimits limits;
};

struct BlobInfo {
  Digest digest;
  uint64_t size = 0;
  std::string media_type;       // as given by the ingest that recorded it ("" if none)
  int64_t created_unix_ns = 0;  // when it was recorded
};

struct IngestOptions {
  // The size the caller expects (from a manifest or descriptor). More bytes than this stop the
  // ingest at once; fewer or more are kCorruption. Unset: any size.
  std::optional<uint64_t> expected_size;
  std::string media_type;
  // Published in the lock file for other processes' diagnostics ("pull docker.io/library/x").
  std::string operation;
  // Set for a source that can start at any byte (a registry, with Range). The ingest then keeps
  // what it read when the source fails or the process dies, as ingest/sha256-HEX.partial; the
  // next ingest of the digest hashes that prefix again, calls resume_at(its size) before its
  // first read, and reads only the rest. If the whole then fails verification (the prefix was
  // damaged, say by a power cut before it was synced), it starts over once with resume_at(0).
  // After resume_at(N) the reader must deliver the blob from byte N. A failed write (a full
  // disk) or a verification failure removes the partial file. Unset: every ingest reads from
  // byte 0 and leaves nothing behind.
  std::function<Status(uint64_t offset)> resume_at;
};

struct IngestResult {
  BlobInfo blob;
  // True when this call wrote the blob; false when it was already present (recorded by someone
  // else, or an unrecorded verified file adopted). The source is not read when false.
  bool written = false;
};

// The source of a blob's bytes: fills a prefix of buf and returns its length, 0 at the end.
using BlobReader = std::function<Result<size_t>(std::span<std::byte> buf)>;

enum class ProblemKind {
  kMissingFile,     // a blobs row without its file
  kSizeMismatch,    // the file's size differs from the row's
  kDigestMismatch,  // the file's content does not hash to its name (verify_content only)
  kWritableBlob,    // a blob file that is not read-only
  kOrphanFile,      // a file in blobs/ without a row
  kStaleIngest,     // an entry in ingest/ whose writer is dead
  kUnknownEntry,    // something in blobs/ or ingest/ that imgstore never writes
  // Metadata (docs/gc.md "Check"):
  kDatabase,          // PRAGMA quick_check found damage in meta.db (not repairable here)
  kDanglingName,      // a name whose image does not exist (repair: the name is dropped)
  kMissingReference,  // a row refers to a blob, manifest or lease that is not recorded (repair:
                      // only index entries and lease pins without their parent are dropped)
  kLayerChain,        // an image's layer chain disagrees with the layers rows
  kImageMismatch,     // an image's manifest is not an image manifest of that config
  kIndexMismatch,     // an image's index is not an index, or does not list its manifest
  // Layers on disk (docs/layers.md):
  kLayerDir,  // a 'complete' layer without its directory, a layer directory without a row, or
              // a dead staging directory (repair: the row goes back to 'none', strays removed)
  kMount,     // a mount row whose directories are missing, or a mounts/ entry without a row
};
std::string_view ProblemKindName(ProblemKind kind);

struct CheckProblem {
  ProblemKind kind;
  std::string path;     // the file or directory concerned
  std::string message;  // one line for a person
  bool repaired = false;
};

struct CheckReport {
  std::vector<CheckProblem> problems;
  uint64_t blobs_checked = 0;
  bool clean() const { return problems.empty(); }
  // Problems that remain (all of them for Check; the unrepaired ones for Repair).
  size_t unresolved() const;
};

// What Store::Open cleaned up after earlier crashes.
struct RecoveryStats {
  int ingests_removed = 0;
  int leases_removed = 0;             // lease files and lease rows of dead holders
  int layer_stagings_removed = 0;     // staging dirs and 'incomplete' layers of dead extractors
  int mounts_removed = 0;             // mounts whose creator or remover died half-way
  int partial_downloads_removed = 0;  // older than StoreOptions::partial_download_ttl
};

// A lease pins blobs against gc while an operation (pull, push) works with no lock held. It is
// alive while this object exists and its process lives (a liveness lock in ROOT/locks, plus a
// row in `leases`); a holder killed by SIGKILL voids it at once, and the next Store::Open or gc
// drops its rows. Destroying it releases it (best effort; errors are ignored there — use
// Release() to see them).
class StoreLease {
 public:
  virtual ~StoreLease() = default;
  virtual const std::string& id() const = 0;
  // Pins digests, present or not yet ingested: gc removes none of them while the lease lives.
  // One short write transaction. Pin before looking for a blob, so that a gc that runs between
  // the look and the use cannot take it.
  virtual Status Pin(std::span<const Digest> digests) = 0;
  // Drops the rows and the lease file now.
  virtual Status Release() = 0;
};

// How many origins (Store::BlobOrigins) a blob keeps: recording one more drops the least recently
// recorded. A base layer pushed to thousands of repositories must not gain a row per push
// forever, and a mount needs only one repository that still holds the blob; 16 recent ones
// cover the repositories a store pushes to in turn.
inline constexpr int kMaxBlobOrigins = 16;

// Store::Pull: an image from any source (src/transports, src/registry) into the store.
using PullProgress = images::BlobProgress;

struct PullOptions {
  // The platform chosen when the source's top is an index (SelectManifest).
  images::Platform platform = images::HostPlatform();
  // Names given to the image besides those the source carries (ImageSource::Names()); each is
  // a reference (normalized; default tag "latest").
  std::vector<std::string> names;
  // Published in lock diagnostics and the lease label ("pull oci:/srv/x:v1").
  std::string operation;
  // Also decompress each layer while it is copied and check it against the config's diffID.
  bool verify_diff_ids = false;
  // Called as bytes arrive (progress bars); may be empty. With parallel blobs it is called from
  // several threads, but never concurrently: the store serializes the calls. Each config or
  // layer blob ends with one call where done == total (copied) or skipped is set (present).
  std::function<void(const PullProgress&)> on_progress;
  // Called once, on the calling thread, when the image manifest is known and before the first
  // blob is fetched: the config and the distinct layers the pull will copy or find present (the
  // blobs on_progress will report), so that a display knows the totals. May be empty.
  std::function<void(const std::vector<images::Descriptor>& blobs)> on_blobs;
  // How many blobs are fetched at once when the source allows it (ImageSource::ConcurrentBlobs):
  // registries. 1 or less: one at a time.
  int max_parallel = 3;
  // How many indexes deep a pull follows an index whose chosen entry is itself an index. Real
  // images nest one (rarely two); the bound stops a hostile source that nests without end.
  int max_index_depth = 8;
  // Bounds on the manifests, indexes and config read from the source.
  images::ParseLimits limits;
  // Bounds on the decompression of verify_diff_ids.
  layers::DecompressLimits decompress;
  // Polled between blobs and while bytes stream (at least every few hundred milliseconds while
  // data flows): when it returns true the pull stops with kCancelled, records nothing, and
  // leaves no ingest behind. May be empty.
  std::function<bool()> cancelled;
};

struct PullResult {
  AddImageResult image;
  std::vector<std::string> names;  // normalized names the image was given
  int blobs_written = 0;           // blobs this pull wrote (the rest were present)
  uint64_t bytes_written = 0;
};

struct PushOptions {
  std::string operation;  // published in the lease label ("push oci:/srv/x")
  // Blobs written at once by destinations that can (registries).
  int max_parallel = 3;
  // Bytes read from the store per blob, and blobs the destination skipped; serialized as for
  // PullOptions::on_progress. May be empty.
  images::ProgressCallback on_progress;
  // A problem that does not fail the push, one line: the image was written, but recording the
  // destination as an origin of its blobs failed (docs/pull-push.md, "Blob origins"). May be
  // empty (the problem is then dropped: the push itself succeeded).
  std::function<void(const std::string& line)> on_warning;
  // As PullOptions::cancelled: the push stops with kCancelled (uploads in flight are cancelled
  // at the destination where it allows it); the store is unchanged.
  std::function<bool()> cancelled;
};

// --- Layers on disk (layer_cache.cc, unpack.cc, mounts.cc, commit.cc; docs/layers.md) ---------

// The layer cache. ROOT/layers/sha256-HEX holds one layer's own entries (extracted with
// WhiteoutMode::kOverlay), shared by every image and mount whose chain has that chainID.
// Protocol, per layer, under the lock LayerLockName(chain):
//   - use: shared; the `layers` row must say unpack_state = 'complete' and the directory exist;
//   - extract: upgradable (one extractor per layer; users of other layers never wait), the row
//     set to 'incomplete', the tar extracted into ROOT/layers/.staging-sha256-HEX.<random>, the
//     file system synced, the staging directory renamed to LayerDir, ROOT/layers synced, and
//     only then, in a short write transaction, 'complete' with unpacked_size;
//   - a second process that wants the same layer waits for the lock (deadline, "waiting for"
//     notice through StoreOptions::on_wait) and then finds it complete;
//   - a staging directory whose lock is free, or an 'incomplete' row whose lock is free, was left
//     by a killed extractor: removed by Store::Open and redone by the next use.
struct LayerUseOptions {
  std::string operation;  // published in the layer locks ("unpack docker.io/library/x")
  layers::ExtractOptions extract;
  // Called when this call extracts a layer, before and after (progress display). May be empty.
  std::function<void(const Digest& chain_id, bool done)> on_extract;
};

// The cached layers of one image held for use: the layer locks stay held (shared) until the
// object is destroyed, so gc cannot take the directories meanwhile.
class LayerSet {
 public:
  LayerSet() = default;
  LayerSet(LayerSet&&) noexcept = default;
  LayerSet& operator=(LayerSet&&) noexcept = default;
  // Chain ids and directories, base layer first.
  const std::vector<Digest>& chain_ids() const { return chain_ids_; }
  const std::vector<std::string>& dirs() const { return dirs_; }
  int extracted() const { return extracted_; }  // layers this call extracted (the rest were cached)

 private:
  friend class Store;
  std::vector<Digest> chain_ids_;
  std::vector<std::string> dirs_;
  std::vector<locking::LockGuard> guards_;
  int extracted_ = 0;
};

struct UnpackOptions {
  LayerUseOptions layers;
  // Populate the layer cache on the way (default). Without it, layers not in the cache are
  // extracted straight into the destination and the cache is left as it is.
  bool use_cache = true;
};

struct UnpackResult {
  Digest image_id;
  int layers = 0;
  int layers_extracted = 0;  // extracted from their blobs by this call (the rest: cached)
  uint64_t entries = 0;
  uint64_t file_bytes = 0;
};

// A mount: a container's writable view of an image (overlay, or a copy where overlay is not
// available). Recorded in meta.db (schema v4, tables mounts and mount_layers), so that rmi and
// gc never take the layers or blobs of a mounted image, even after the mounting process exited.
struct MountInfo {
  std::string name;
  Digest image_id;
  Digest manifest_digest;
  std::string image_name;  // the name the image was mounted by ("" when by id)
  std::string path;        // the mount point: ROOT/mounts/NAME/merged
  std::string upper_dir;   // overlay: ROOT/mounts/NAME/upper; copy: ""
  std::string kind;        // "overlay" or "copy"
  bool mounted = false;    // overlay: whether path is mounted now (false after a reboot)
  int64_t created_unix_ns = 0;
  std::vector<Digest> chain_ids;  // the layers it uses, base first
};

struct MountOptions {
  std::string name;  // [A-Za-z0-9][A-Za-z0-9_.-]{0,127}; empty: a generated one
  // "auto" (overlay when OverlaySupported, else copy), "overlay" (fail if unavailable), "copy".
  std::string kind = "auto";
  LayerUseOptions layers;
};

struct CommitOptions {
  layers::Compression compression = layers::Compression::kGzip;
  std::vector<std::string> names;  // names of the new image (references; default tag latest)
  std::string author;              // config "author" and the history entry's
  std::string message;             // the history entry's comment
  std::string created_by;          // the history entry's created_by ("" → "imgstore commit")
  std::string operation;
  std::function<bool()> cancelled;
};

struct CommitResult {
  AddImageResult image;
  Digest layer_digest;  // the new layer blob (unset when the changes were empty: no layer added)
  uint64_t layer_size = 0;
  Digest diff_id;
};

// Store::GarbageCollect: what no image references and nothing leases or is ingesting.
struct GcOptions {
  bool dry_run = false;  // decide and report, remove nothing
};

struct GcReport {
  std::vector<Digest> blobs_removed;  // (dry run: would be removed), ordered by digest
  uint64_t bytes_removed = 0;         // their total size
  int manifests_removed = 0;          // manifest/index rows no image refers to
  int layers_removed = 0;             // layer-chain rows no image refers to (and their dirs)
  int leases_removed = 0;             // dead leases (rows and files)
  int lock_files_removed = 0;         // idle lock files of blobs and layers (held ones stay)
  int orphan_files_removed = 0;       // files in blobs/ without a row (left by a crash)
  int partial_downloads_removed = 0;  // kept downloads no ingest was resuming (resume_at)
  uint64_t partial_bytes_removed = 0;
  int skipped_busy = 0;  // candidates skipped because an ingest or unpack holds them
  // (Blobs that a live lease pins are not candidates at all: they are kept silently.)
};

// Store::DiskUsage (df).
struct DiskUsage {
  uint64_t images = 0;
  uint64_t blobs = 0;
  uint64_t blob_bytes = 0;         // sum of the recorded blob sizes
  uint64_t layers = 0;             // unpacked layer dirs
  uint64_t layer_bytes = 0;        // their recorded unpacked size
  uint64_t reclaimable_blobs = 0;  // what gc would remove now
  uint64_t reclaimable_bytes = 0;
  uint64_t reclaimable_layers = 0;  // unpacked layers gc would remove now
  uint64_t reclaimable_layer_bytes = 0;
  uint64_t partial_downloads = 0;  // kept for resumption (IngestOptions::resume_at); gc removes
  uint64_t partial_bytes = 0;      // those no ingest is resuming now
};

class Store {
 public:
  // Creates ROOT and its layout if missing, opens (and migrates) meta.db, opens the lock space,
  // and removes what dead writers left (recovery()).
  static Result<std::unique_ptr<Store>> Open(const std::string& root,
                                             const StoreOptions& options = {});
  // The default root: $IMGSTORE_ROOT, else /var/lib/imgstore for root, else
  // $XDG_DATA_HOME/imgstore, else ~/.local/share/imgstore.
  static Result<std::string> DefaultRoot();

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& root() const { return root_; }
  // Bounds on the stored documents read back (StoreOptions::limits).
  const images::ParseLimits& limits() const { return options_.limits; }
  const RecoveryStats& recovery() const { return recovery_; }

  // --- Blobs -----------------------------------------------------------------------------------
  // Stores the blob whose digest must be `expected` (sha256 only), reading it from `read`.
  // Success if it is already present (without reading). kCorruption naming expected and actual
  // digest or size when the bytes do not match; nothing is stored then. kTimeout when another
  // ingest of the same digest holds its lock past lock_timeout.
  Result<IngestResult> IngestBlob(const Digest& expected, const IngestOptions& options,
                                  const BlobReader& read);
  Result<IngestResult> IngestBlob(const Digest& expected, const IngestOptions& options,
                                  SequentialFile& source);
  Result<IngestResult> IngestBlob(const Digest& expected, const IngestOptions& options,
                                  std::string_view bytes);

  // Whether the blob is recorded (and so, by the invariant, complete on disk).
  Result<bool> HasBlob(const Digest& digest);
  // The row of a recorded blob; kNotFound otherwise.
  Result<BlobInfo> GetBlobInfo(const Digest& digest);
  // Every recorded blob, ordered by digest.
  Result<std::vector<BlobInfo>> ListBlobs();
  // The blob's bytes from the start; kNotFound if it is not recorded.
  Result<std::unique_ptr<SequentialFile>> OpenBlob(const Digest& digest);
  // The whole blob in memory, or kCorruption if larger than max_bytes (manifests, configs).
  Result<std::string> ReadBlob(const Digest& digest, uint64_t max_bytes);
  // The registry repositories ("host/path") known to hold the blob, sorted: recorded by pulls
  // from a registry (ImageSource::BlobOrigin) and pushes to one (schema v3, table blob_origins;
  // rows go with the blob). Empty when none is known. At most kMaxBlobOrigins, the most
  // recently recorded.
  Result<std::vector<std::string>> BlobOrigins(const Digest& digest);
  // Where a sha256 blob lives (whether or not it is present).
  std::string BlobPath(const Digest& digest) const;

  // Deletes a blob: its row in a write transaction, then the file. kFailedPrecondition if a
  // manifest, image or layer still refers to it; kBusy if it is being ingested; kNotFound if
  // absent. For gc: it does not look at leases.
  Status RemoveBlob(const Digest& digest);

  // --- Images and names (images.cc, names.cc; docs/store.md "Images and names") -------------
  // Records an image whose config and layer blobs are already ingested. manifest_bytes is an
  // image manifest (OCI or Docker v2s2; an index is kInvalidArgument) whose type is
  // manifest_media_type ("" if unknown); config_bytes must hash to its config descriptor. The
  // manifest bytes are ingested as a blob, then one write transaction records the manifest, the
  // image (id = config digest), its layers (chainIDs) and `names`. Already recorded: only the
  // names are added (and moved here from other images). Refusals change nothing in the metadata:
  // kInvalidArgument (malformed manifest/config, a mismatch between them, a bad name), kNotFound
  // (a referenced blob is not in the store), kUnsupported (not an image; not sha256).
  Result<AddImageResult> AddImage(std::string_view manifest_bytes,
                                  std::string_view manifest_media_type,
                                  std::string_view config_bytes,
                                  std::span<const std::string> names = {});
  // The id of the image `text` names: a reference (normalized, default tag "latest"; with a
  // digest, the image of that manifest digest), a full id ("sha256:HEX" or HEX), a manifest
  // digest, or a unique id prefix of at least kMinIdPrefix hex digits. kNotFound: "image not
  // known: TEXT"; an ambiguous prefix is kInvalidArgument naming the candidates.
  Result<Digest> ResolveImage(std::string_view text);
  // Gives the image the name (a reference without digest; default tag "latest"). A name held by
  // another image moves to this one, as in docker.
  Status Tag(std::string_view image, std::string_view name);
  // Removes the given names of the image (each must be one of its names: kNotFound otherwise),
  // or all of its names when `names` is empty. The image stays (dangling when nameless).
  Status Untag(std::string_view image, std::span<const std::string> names = {});
  // rmi. By name: removes that name, and the image record when no name is left. By id or digest:
  // removes the record and all names; an image with several names is kFailedPrecondition unless
  // force. With force, always removes the record. Blobs stay for gc.
  Result<RemoveImageResult> Remove(std::string_view image, bool force = false);
  // Every image, newest first (then by id), read in one snapshot. filter: "" for all, or a
  // reference: with a tag, the images of that name; without, the images with a name in that
  // repository.
  Result<std::vector<ImageSummary>> ListImages(std::string_view filter = "");
  // The image `image` names (as ResolveImage), with its manifest and config bytes and layers.
  Result<ImageDetails> InspectImage(std::string_view image);

  // --- Leases, pull, push (lease.cc, pull.cc, push.cc) ------------------------------------------
  // A new lease labelled `label` (for diagnostics: `imgstore locks`, gc's report).
  Result<std::unique_ptr<StoreLease>> CreateLease(std::string_view label);

  // Copies the image `source` names into the store, then records it (AddImage) with its names.
  // Locking (design.md): reads what is present, pins every blob with a lease before looking
  // for it, ingests missing blobs with no store lock (per-digest locks make two pulls of one
  // blob write it once), and takes the write lock only for the final commit. A source whose
  // top is an index is resolved to `options.platform`; the index is stored too. Nothing is
  // recorded unless every blob verified. Errors name the source.
  Result<PullResult> Pull(images::ImageSource& source, const PullOptions& options = {});

  // Writes the image `image` names (as ResolveImage) to `destination`: resolves it in a read
  // snapshot, pins its blobs with a lease, then streams with no store lock held, so list, tag
  // and other pulls never wait for it and gc cannot take its blobs meanwhile.
  Status Push(std::string_view image, images::ImageDestination& destination,
              const PushOptions& options = {});

  // --- Layers on disk (docs/layers.md) ----------------------------------------------------
  // Makes sure every layer of the image is in the layer cache (extracting what is missing, as
  // the protocol above says) and returns them held for use.
  Result<LayerSet> AcquireLayers(std::string_view image, const LayerUseOptions& options = {});
  // The same for layers given by their records, base first: a mount's, whose image may have
  // been removed since (its layers and blobs stay while it exists).
  Result<LayerSet> AcquireLayerRecords(std::span<const LayerRecord> layers,
                                       const LayerUseOptions& options = {});
  // A flattened root filesystem of the image in `dir`, which must not exist (its parent must):
  // created, filled, synced; removed again on any error. Bad layers (a tar that escapes, a
  // wrong diffID, a bound exceeded) are one clear error and leave the store unchanged.
  Result<UnpackResult> Unpack(std::string_view image, const std::string& dir,
                              const UnpackOptions& options = {});
  // A new mount of the image (see MountInfo). kAlreadyExists for a name in use.
  Result<MountInfo> Mount(std::string_view image, const MountOptions& options = {});
  // Unmounts and removes the mount `name_or_path` (its name, mount point or directory), upper
  // directory included. kNotFound when no such mount is recorded.
  Status Unmount(std::string_view name_or_path);
  Result<std::vector<MountInfo>> ListMounts();
  Result<MountInfo> GetMount(std::string_view name_or_path);
  // A new image: the base image plus one layer with the changes of the mount `source` (name or
  // path: its upper directory, or for a copy mount its tree against the image) or, with
  // `base_image` set, of the directory `source` against that image. The new config has the
  // base's config with the diffID appended, a history entry, and a new created time; the
  // manifest keeps the base's type (Docker v2s2 stays Docker unless the compression is zstd,
  // which only OCI manifests carry: then the manifest and config become OCI).
  Result<CommitResult> Commit(std::string_view source, std::string_view base_image,
                              const CommitOptions& options = {});

  // --- Garbage collection and space (gc.cc) --------------------------------------------------
  // Removes blobs, manifests and layer chains no image references, that no live lease pins and
  // no ingest holds (design.md: a short write transaction decides, files go after it), dead
  // leases, and lock files of blobs that no longer exist.
  Result<GcReport> GarbageCollect(const GcOptions& options = {});
  // Space used, and what gc would reclaim now (a read snapshot; nothing changes).
  Result<DiskUsage> GetDiskUsage();

  // --- Consistency -----------------------------------------------------------------------------
  // Verifies the invariants (see ProblemKind): every row has its read-only file of the right
  // size (and content, with verify_content); no file without a row; no dead ingest. Objects being
  // ingested right now (their lock is held) are not problems.
  Result<CheckReport> Check(bool verify_content = false);
  // Check, then fixes what can be fixed: removes orphan files, dead ingests and unknown entries,
  // makes writable blobs read-only, drops the rows of missing or corrupt files (and the corrupt
  // files) unless something still refers to them. Each problem says whether it was repaired.
  Result<CheckReport> Repair(bool verify_content = false);

  // --- For the rest of src/store ---------------------------------------------------------------
  Db& db() { return *db_; }
  const locking::LockSpace& locks() const { return locks_; }
  Env* env() const { return env_; }

 private:
  Store(std::string root, StoreOptions options, Env* env, std::unique_ptr<Db> db,
        locking::LockSpace locks);

  Status Recover();
  // Takes the named lock of locks_ in `mode`, waiting as StoreOptions say (lock_timeout, on_wait).
  Result<locking::LockGuard> Lock(const std::string& lock_name, locking::LockMode mode,
                                  const std::string& operation);
  Result<locking::LockGuard> LockBlob(const Digest& digest, const std::string& operation);
  Result<std::optional<BlobInfo>> FindBlob(const Digest& digest);
  // The intent log (table gc_pending): a blob file that may exist without its row. Entries are
  // written before such a window opens and cleared when it closes; Store::Open finishes the
  // entries of killed writers and removers (docs/gc.md "The intent log").
  Status SetPendingBlob(Transaction& txn, const Digest& digest, bool pending);
  Status LogPendingBlob(const Digest& digest);
  Status ClearPendingBlob(const Digest& digest);
  Result<CheckReport> CheckImpl(bool verify_content, bool repair);
  // A lease (labelled `operation`) pinning the config and layer blobs of an image that was just
  // inspected, so that a gc after an rmi cannot take them while they are read. A blob that a gc
  // removed between the inspect and the pin is kNotFound "<what>: image removed meanwhile".
  Result<std::unique_ptr<StoreLease>> PinImage(const ImageDetails& image,
                                               std::string_view operation, std::string_view what);

  std::string root_;
  StoreOptions options_;
  Env* env_;
  std::unique_ptr<Db> db_;
  locking::LockSpace locks_;
  RecoveryStats recovery_;
};

// Paths and names of the layout, shared by the files of src/store.
std::string BlobsDir(const std::string& root);   // ROOT/blobs/sha256
std::string IngestDir(const std::string& root);  // ROOT/ingest
// The name of a digest's kept partial download in ingest/ ("sha256-HEX.partial"), and whether an
// ingest/ entry is one.
std::string PartialIngestName(const Digest& digest);
bool IsPartialIngest(std::string_view name);
// The per-digest lock: "blob-sha256-HEX".
std::string BlobLockName(const Digest& digest);
// The digest an ingest entry belongs to ("sha256-HEX.<random>"), or an empty Digest.
Digest IngestEntryDigest(std::string_view name);
// Where an unpacked layer lives: ROOT/layers/sha256-HEX (no ':' — overlayfs separates lowerdirs
// with it), and its lock "layer-sha256-HEX" (held while the directory is used or extracted; gc
// removes the directory only after its row is gone and with this lock held). docs/gc.md.
std::string LayerDir(const std::string& root, const Digest& chain_id);
std::string LayerLockName(const Digest& chain_id);

}  // namespace imgstore::store
