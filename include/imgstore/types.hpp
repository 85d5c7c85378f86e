// The value types of the public C++ API: options, results, progress and the cancel token that
// imgstore::Store (store.hpp) takes and returns. Plain structs of standard types; digests and
// image ids are text ("sha256:HEX").
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace imgstore {

// Stops a long operation (pull, push, unpack, mount, commit) from another thread. Copies share
// one state: keep a copy, hand one to the options, call Cancel() from any thread at any time.
// The operation then returns Code::kCancelled promptly (within a second, also when a registry
// sends nothing) and leaves the store as it was before the call. Cancel() is final; a token is
// thread-safe and cheap to copy.
class CancelToken {
 public:
  CancelToken() : state_(std::make_shared<std::atomic<bool>>(false)) {}
  void Cancel() const { state_->store(true, std::memory_order_release); }
  bool cancelled() const { return state_->load(std::memory_order_acquire); }

 private:
  std::shared_ptr<std::atomic<bool>> state_;
};

// Bounds on untrusted input: what a hostile or broken image, registry or archive can make
// imgstore hold in memory, compute or write (docs/limits.md). The defaults are far above real
// images; an error that a bound stops names it ("... exceeds max_tar_bytes (N bytes)"), and
// SetLimit (parse.hpp) and `imgstore --limit NAME=VALUE` take the same names. 0 turns off the
// bounds that say so; the others must be positive.
struct Limits {
  uint64_t max_manifest_bytes = 4 << 20;  // a manifest or index (registries accept 4 MiB)
  uint64_t max_config_bytes = 8 << 20;    // an image config
  uint64_t max_nesting_depth = 64;        // JSON nesting of manifests and configs
  uint64_t max_index_depth = 8;           // indexes a pull follows inside an index
  uint64_t max_tar_bytes = 64ull << 30;   // uncompressed bytes of one layer (0: none)
  uint64_t max_entries = 4'000'000;       // entries of one layer (0: none)
  uint64_t max_path_bytes = 4096;         // a path or link target in a layer (0: none)
  uint64_t max_xattr_bytes = 1 << 20;     // extended attributes of one entry (0: none)
  uint64_t max_ratio = 1000;              // decompressed per compressed byte, after 8 MiB (0: none)
  uint64_t zstd_max_window_log = 27;      // the largest zstd window, 2^N bytes (10-31)
  uint64_t max_archive_members = 1'000'000;     // members of a docker-archive tar
  uint64_t max_archive_header_bytes = 1 << 20;  // one pax or GNU long-name header
  uint64_t max_manifest_json_bytes = 8 << 20;   // a docker-archive's manifest.json
};

struct StoreOptions {
  // How long a call waits for a lock another thread or process holds (a second pull of the same
  // blob, an unpack of the same layer) before it fails with kTimeout naming the holder.
  std::chrono::milliseconds lock_timeout = std::chrono::seconds(60);
  // Called once per lock wait that lasts longer than a second ("waiting for lock NAME held by
  // pid N (OPERATION) for Ts"), on the waiting thread. May be empty.
  std::function<void(const std::string& line)> on_wait;
  // Applied by every operation of this Store: pulls (manifests, configs, archives, diffID
  // checks), unpack and mount (layers), inspect and commit (the stored documents).
  Limits limits;
};

// How to reach a registry (sources and destinations "docker://..." or a bare reference); the
// other transports ignore it.
struct RegistryOptions {
  std::string credentials;  // "USER:PASSWORD"; "": from the auth files
  std::string auth_file;    // "": containers auth.json, then ~/.docker/config.json
  // false accepts any certificate and allows plain http. true: verified https, except a
  // loopback registry without TLS.
  bool tls_verify = true;
  std::string cert_dir;  // a certs.d-style directory (CA *.crt, client.cert/client.key)
  int retry_times = 3;   // retries of a request that failed for a passing reason
  // The delay before the first retry, doubled for each next one; unset: 500 ms.
  std::optional<std::chrono::milliseconds> retry_delay;
};

// Progress of one blob of a pull or push.
struct Progress {
  std::string digest;
  uint64_t done = 0;     // bytes copied so far
  uint64_t total = 0;    // the blob's size
  bool skipped = false;  // not copied: already present at the other end
  bool mounted = false;  // skipped because a registry mounted it from another repository
};
// Called from the operation's threads, never concurrently (calls are serialized).
using ProgressCallback = std::function<void(const Progress&)>;

struct PullOptions {
  std::string platform;            // "os/arch[/variant]" chosen from an index; "": this host's
  std::vector<std::string> names;  // names given to the image besides the source's own
  int max_parallel = 3;            // registry blobs fetched at once
  bool verify_diff_ids = false;    // also decompress each layer and check its diffID
  RegistryOptions registry;
  ProgressCallback on_progress;
  // Called once, before the first blob is fetched, with the number of blobs on_progress will
  // report (config and distinct layers) and their total size, for a display's totals. May be
  // empty.
  std::function<void(size_t blobs, uint64_t bytes)> on_blobs;
  std::optional<CancelToken> cancel;
};

struct PullResult {
  std::string id;               // the image id (config digest)
  std::string manifest_digest;  // the stored image's manifest
  std::vector<std::string> names;
  int blobs_written = 0;  // blobs this pull wrote (the others were present)
  uint64_t bytes_written = 0;
};

struct PushOptions {
  int max_parallel = 3;  // registry blobs sent at once
  RegistryOptions registry;
  ProgressCallback on_progress;
  // A problem that does not fail the push (one line). May be empty.
  std::function<void(const std::string& line)> on_warning;
  std::optional<CancelToken> cancel;
};

struct PushResult {
  std::string id;               // the image pushed
  std::string manifest_digest;  // its manifest, as the destination now holds it
};

// A row of Store::List.
struct ImageSummary {
  std::string id;                  // the config digest
  std::vector<std::string> names;  // normalized references, sorted
  std::string manifest_digest;
  uint64_t size = 0;            // compressed bytes (layers, config, manifest)
  std::string created;          // RFC 3339 UTC, "" when the config says nothing
  int64_t created_unix_ns = 0;  // the same in Unix nanoseconds; 0 when unknown
  int64_t added_unix_ns = 0;    // when it entered this store
  std::string os;
  std::string architecture;
  std::string variant;
};

struct LayerInfo {
  std::string digest;  // the compressed blob
  std::string media_type;
  uint64_t size = 0;
  std::string diff_id;
  std::string chain_id;
};

// Store::Inspect: the summary, the stored documents verbatim, and the layers (base first).
struct ImageDetails {
  ImageSummary summary;
  std::string manifest_media_type;
  std::string manifest;
  std::string config;
  std::vector<LayerInfo> layers;
};

struct RemoveResult {
  std::vector<std::string> untagged;  // names removed
  std::string deleted;                // the image id when its record was removed, else ""
};

// The options of the operations that extract layers (unpack, mount).
struct LayerOptions {
  // Called when the call extracts a layer (the rest come from the layer cache): before
  // (done=false) and after (done=true). May be empty.
  std::function<void(const std::string& chain_id, bool done)> on_extract;
  // A problem of a layer that does not fail the call (entries skipped, one line). May be empty.
  std::function<void(const std::string& line)> on_warning;
  std::optional<CancelToken> cancel;
};

struct UnpackOptions {
  LayerOptions layers;
  // Fill the layer cache on the way (default). false: layers not cached are extracted straight
  // into the destination, and the cache stays as it was.
  bool use_cache = true;
};

struct UnpackResult {
  std::string id;
  int layers = 0;
  int layers_extracted = 0;
  uint64_t entries = 0;
  uint64_t file_bytes = 0;
};

struct MountOptions {
  std::string name;           // [A-Za-z0-9][A-Za-z0-9_.-]{0,127}; "": a generated one
  std::string kind = "auto";  // "auto", "overlay" or "copy"
  LayerOptions layers;
};

struct MountInfo {
  std::string name;
  std::string image_id;
  std::string manifest_digest;
  std::string image_name;  // the name it was mounted by ("" when by id)
  std::string path;        // the mount point
  std::string upper_dir;   // overlay: the container's changes; copy: ""
  std::string kind;        // "overlay" or "copy"
  bool mounted = false;
  int64_t created_unix_ns = 0;
  std::vector<std::string> layers;  // the chain ids of its layers, base first
};

struct CommitOptions {
  std::string compression = "gzip";  // of the new layer: "gzip", "zstd" or "none"
  std::vector<std::string> names;    // names of the new image
  std::string author;                // the config's and the history entry's author
  std::string message;               // the history entry's comment
  std::string created_by;            // the history entry's created_by ("" → "imgstore commit")
  std::optional<CancelToken> cancel;
};

struct CommitResult {
  std::string id;
  std::string manifest_digest;
  std::string layer_digest;  // "" when there were no changes (no layer added)
  uint64_t layer_size = 0;   // the new layer blob's size (0 without a layer)
  std::string diff_id;       // the new layer's diffID ("" without a layer)
};

struct GcOptions {
  bool dry_run = false;
};

struct GcReport {
  std::vector<std::string> blobs_removed;
  uint64_t bytes_removed = 0;
  int manifests_removed = 0;
  int layers_removed = 0;
  int leases_removed = 0;
  int lock_files_removed = 0;    // idle lock files (those held stay)
  int orphan_files_removed = 0;  // blob files without a record, left by a crash
  int skipped_busy = 0;          // candidates in use by an ingest or unpack now
  // Downloads kept for a later pull to resume (a pull from a registry that broke or was killed)
  // that no pull was resuming.
  int partial_downloads_removed = 0;
  uint64_t partial_bytes_removed = 0;
};

// Store::Df: the space the store takes, and what Gc would reclaim now.
struct DiskUsage {
  uint64_t images = 0;
  uint64_t blobs = 0;
  uint64_t blob_bytes = 0;
  uint64_t reclaimable_blobs = 0;
  uint64_t reclaimable_bytes = 0;
  uint64_t layers = 0;       // unpacked layers in the layer cache
  uint64_t layer_bytes = 0;  // their unpacked size
  uint64_t reclaimable_layers = 0;
  uint64_t reclaimable_layer_bytes = 0;
  uint64_t partial_downloads = 0;  // kept for a later pull to resume; Gc removes them
  uint64_t partial_bytes = 0;
};

struct CheckOptions {
  bool verify_content = false;  // also hash every blob
  bool repair = false;          // fix what can be fixed
};

struct CheckProblem {
  std::string kind;  // "missing-file", "orphan-file", ... (stable words)
  std::string path;
  std::string message;
  bool repaired = false;
};

struct CheckReport {
  std::vector<CheckProblem> problems;
  uint64_t blobs_checked = 0;
  // No problem found, or (with repair) every problem repaired.
  bool clean() const {
    for (const CheckProblem& p : problems) {
      if (!p.repaired) return false;
    }
    return true;
  }
};

// One process's hold on (or wait for) a lock of the store.
struct LockHolder {
  int pid = 0;
  std::string mode;  // "shared", "upgradable", "exclusive"
  std::string operation;
  int64_t since_unix_ns = 0;
  int threads = 0;  // threads of the process that hold it (shared holds of one process)
};

struct LockEntry {
  std::string name;
  std::vector<LockHolder> holders;
  std::vector<LockHolder> waiters;
};

struct LeaseEntry {
  std::string id;
  int pid = 0;
  std::string label;
  int64_t since_unix_ns = 0;
  bool alive = false;
};

struct LocksReport {
  std::vector<LockEntry> locks;
  std::vector<LeaseEntry> leases;
};

// A parsed, normalized image reference (ParseReference, parse.hpp). Every form is filled.
struct Reference {
  std::string domain;               // "docker.io", "localhost:5000"
  std::string path;                 // "library/alpine"
  std::string tag;                  // "latest"; "" when none was given
  std::string digest;               // "sha256:..."; "" when none was given
  std::string name;                 // fully qualified: "docker.io/library/alpine:latest"
  std::string repository;           // domain/path: "docker.io/library/alpine"
  std::string familiar;             // docker's short form: "alpine:latest", "localhost:5000/x"
  std::string familiar_repository;  // familiar without tag and digest: "alpine"
};

// "os/arch[/variant]" parsed (ParsePlatform, parse.hpp).
struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
};

// Registry credentials (ParseCredentials, parse.hpp; Login, registry.hpp).
struct Credentials {
  std::string username;
  std::string password;  // a secret: no message of the library quotes it
};

// A pull source or push destination split into its transport and the rest (ParseTransport).
struct TransportSpec {
  std::string transport;  // "docker", "oci", "oci-archive", "docker-archive"
  std::string rest;       // the reference without "docker://", or "DIR[:REF]", "FILE[:REF]"
};

// The shortest hex prefix of an image id that names an image (Store::Resolve).
inline constexpr size_t kMinIdPrefix = 3;

}  // namespace imgstore
