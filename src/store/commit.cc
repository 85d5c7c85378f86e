// Store::Commit: the changes of a mount (or of a directory against an image) become one new
// layer and a new image on top of the base image (docs/commit.md).
//
// Steps, all under one lease so that gc cannot take the base's blobs or the new ones before
// AddImage records them:
//   1. the layer is written to ROOT/ingest/sha256-<R>.commit, where R is a random 256-bit name
//      whose blob lock this call holds: to Store::Open and check the file is a live ingest while
//      it is written, and a stale one (removed quietly) if this process is killed;
//   2. the file is synced, opened for reading and unlinked (the open descriptor keeps the bytes),
//      the lock released, and IngestBlob copies it into the store under its real digest;
//   3. the config and manifest are derived from the base's and recorded with AddImage.
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "images/image_config.h"
#include "images/manifest.h"
#include "images/media_types.h"
#include "layers/tree.h"
#include "store/images_internal.h"
#include "store/mounts_internal.h"
#include "store/store.h"

namespace imgstore::store {
namespace {

namespace mt = images::media_type;
using Json = nlohmann::ordered_json;

// A name nobody else will ever lock or ingest: 256 random bits, as a sha256 digest.
Digest RandomIngestName() {
  std::random_device rd;
  std::string seed;
  for (int i = 0; i < 8; ++i) seed += std::to_string(rd()) + ".";
  seed += std::to_string(getpid()) + "." +
          std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  return Digest::Of(seed);
}

std::string LayerMediaType(bool oci, layers::Compression c) {
  switch (c) {
    case layers::Compression::kNone:
      return std::string(oci ? mt::kOciLayerTar : mt::kDockerLayerTar);
    case layers::Compression::kGzip:
      return std::string(oci ? mt::kOciLayerTarGzip : mt::kDockerLayerTarGzip);
    case layers::Compression::kZstd:
      return std::string(mt::kOciLayerTarZstd);
  }
  return "";
}

// The OCI type of a base layer when a Docker manifest becomes OCI (zstd layers need OCI).
std::string OciLayerType(const std::string& type) {
  if (type == mt::kDockerLayerTarGzip) return std::string(mt::kOciLayerTarGzip);
  if (type == mt::kDockerLayerTar) return std::string(mt::kOciLayerTar);
  if (type == mt::kDockerForeignLayerTarGzip) {
    return std::string(mt::kOciLayerNondistributableTarGzip);
  }
  if (type == mt::kDockerForeignLayerTar) return std::string(mt::kOciLayerNondistributableTar);
  return type;
}

// Removes the layer temp file unless disarmed (any error path).
class TempRemover {
 public:
  TempRemover(Env* env, std::string path) : env_(env), path_(std::move(path)) {}
  ~TempRemover() {
    if (!path_.empty()) (void)env_->RemoveFile(path_);
  }
  TempRemover(const TempRemover&) = delete;
  TempRemover& operator=(const TempRemover&) = delete;
  Status RemoveNow() {
    std::string p = std::move(path_);
    path_.clear();
    return env_->RemoveFile(p);
  }

 private:
  Env* env_;
  std::string path_;
};

struct NewDocs {
  std::string config;
  std::string manifest;
  std::string manifest_type;
};

// The new config and manifest: the base's with the layer (if any) and a history entry added.
Result<NewDocs> BuildDocs(const ImageDetails& base, const images::ImageManifest& manifest,
                          const CommitOptions& options, const layers::WrittenLayer* layer,
                          const std::string& layer_type, bool to_oci) {
  NewDocs out;
  try {
    Json config = Json::parse(base.config);
    Json manifest_json = Json::parse(base.manifest);
    const std::string created = internal::FormatRfc3339(internal::NowUnixNs());
    config["created"] = created;
    if (!options.author.empty()) config["author"] = options.author;
    Json& rootfs = config["rootfs"];
    if (!rootfs.is_object()) rootfs = Json::object();
    rootfs["type"] = "layers";
    if (!rootfs["diff_ids"].is_array()) rootfs["diff_ids"] = Json::array();
    if (layer != nullptr) rootfs["diff_ids"].push_back(layer->diff_id.ToString());
    Json& history = config["history"];
    if (!history.is_array()) {
      // No history in the base: one empty entry per base layer keeps the count right
      // (image-spec: one non-empty_layer entry per diffID) without inventing anything.
      history = Json::array();
      for (size_t i = 0; i < base.layers.size(); ++i) history.push_back(Json::object());
    }
    Json entry = Json::object();
    entry["created"] = created;
    entry["created_by"] = options.created_by.empty() ? "imgstore commit" : options.created_by;
    if (!options.author.empty()) entry["author"] = options.author;
    if (!options.message.empty()) entry["comment"] = options.message;
    if (layer == nullptr) entry["empty_layer"] = true;
    history.push_back(std::move(entry));
    out.config = config.dump();

    const bool oci = to_oci || manifest.media_type != mt::kDockerManifest;
    out.manifest_type = std::string(oci ? mt::kOciManifest : mt::kDockerManifest);
    Json cfg = Json::object();
    cfg["mediaType"] = oci ? mt::kOciConfig : mt::kDockerConfig;
    cfg["digest"] = Digest::Of(out.config).ToString();
    cfg["size"] = out.config.size();
    manifest_json["config"] = std::move(cfg);
    if (oci) manifest_json["mediaType"] = mt::kOciManifest;
    Json& layers = manifest_json["layers"];
    if (!layers.is_array()) layers = Json::array();
    if (to_oci) {
      for (Json& l : layers) {
        if (l.is_object() && l["mediaType"].is_string()) {
          l["mediaType"] = OciLayerType(l["mediaType"].get<std::string>());
        }
      }
    }
    if (layer != nullptr) {
      Json l = Json::object();
      l["mediaType"] = layer_type;
      l["digest"] = layer->digest.ToString();
      l["size"] = layer->size;
      layers.push_back(std::move(l));
    }
    // The base's subject (what it was attached to) does not describe the new image.
    manifest_json.erase("subject");
    out.manifest = manifest_json.dump();
  } catch (const std::exception& e) {
    return Status(
        Code::kInvalidArgument,
        "commit: cannot derive the new config from the base image: " + std::string(e.what()));
  }
  return out;
}

// The base of a mount, from what the mount itself keeps (its manifest and config blobs and its
// layers stay while it exists): its image may have been removed since it was mounted.
Result<ImageDetails> MountBase(Store& store, const MountInfo& mount) {
  const std::string what = "mount " + mount.name + ": base image " + mount.image_id.ToString();
  const images::ParseLimits& limits = store.limits();
  ImageDetails d;
  Result<std::string> manifest = store.ReadBlob(mount.manifest_digest, limits.max_manifest_bytes);
  if (!manifest.ok()) {
    return images::NameLimit(manifest.status(), "max_manifest_bytes", limits.max_manifest_bytes)
        .WithContext(what);
  }
  Result<std::string> config = store.ReadBlob(mount.image_id, limits.max_config_bytes);
  if (!config.ok()) {
    return images::NameLimit(config.status(), "max_config_bytes", limits.max_config_bytes)
        .WithContext(what);
  }
  Result<images::ImageManifest> m = images::ParseImageManifest(*manifest, "", limits);
  if (!m.ok()) return m.status().WithContext(what);
  Result<images::ImageConfig> c = images::ParseImageConfig(*config, limits);
  if (!c.ok()) return c.status().WithContext(what);
  const std::vector<Digest> chains = ChainIds(c->diff_ids);
  if (m->layers.size() != c->diff_ids.size() || chains != mount.chain_ids) {
    return Status(Code::kCorruption, what + ": its layers disagree with the mount's");
  }
  for (size_t i = 0; i < m->layers.size(); ++i) {
    LayerRecord l;
    l.digest = m->layers[i].digest;
    l.media_type = m->layers[i].media_type;
    l.size = m->layers[i].size;
    l.diff_id = c->diff_ids[i];
    l.chain_id = chains[i];
    d.layers.push_back(std::move(l));
  }
  d.summary.id = mount.image_id;
  d.summary.manifest_digest = mount.manifest_digest;
  d.manifest_media_type = m->media_type;
  d.manifest = std::move(*manifest);
  d.config = std::move(*config);
  return d;
}

}  // namespace

Result<CommitResult> Store::Commit(std::string_view source, std::string_view base_image,
                                   const CommitOptions& options) {
  const std::string src(source);
  const std::string op = options.operation.empty() ? "commit " + src : options.operation;
  // What to diff, and against what.
  std::string base;
  std::string upper_dir;  // an overlay mount: its upper directory holds the changes
  std::string dir;        // otherwise: a tree compared with the base's layers
  std::optional<MountInfo> mount;
  // A mount's lock, held shared until its changes are written: an umount (exclusive) then waits
  // for the diff instead of removing the upper directory under it.
  std::optional<locking::LockGuard> mount_guard;
  if (!base_image.empty()) {
    base = std::string(base_image);
    dir = src;
    Result<FileStat> st = env_->Stat(dir);
    if (!st.ok()) return st.status().WithContext("commit");
    if (st->type != FileType::kDirectory) {
      return Status(Code::kInvalidArgument, "commit: " + dir + " is not a directory");
    }
  } else {
    Result<MountInfo> got = GetMount(src);
    if (!got.ok()) {
      return got.status().WithContext("commit (give a base image to commit a directory)");
    }
    Result<locking::LockGuard> g =
        Lock(mounts::MountLockName(got->name), locking::LockMode::kShared, op);
    if (!g.ok()) return g.status().WithContext("commit " + src);
    mount_guard = std::move(*g);
    got = GetMount(got->name);  // an umount that finished before the lock shows here
    if (!got.ok()) return got.status().WithContext("commit");
    mount = std::move(*got);
    base = mount->image_id.ToString();
    if (mount->kind == "overlay") {
      upper_dir = mount->upper_dir;
    } else {
      dir = mount->path;
    }
  }

  Result<ImageDetails> details = mount ? MountBase(*this, *mount) : InspectImage(base);
  if (!details.ok()) return details.status().WithContext("commit: base image");
  Result<std::unique_ptr<StoreLease>> lease = PinImage(*details, op, "commit: base image " + base);
  if (!lease.ok()) return lease.status();
  Result<images::ImageManifest> manifest =
      images::ParseImageManifest(details->manifest, details->manifest_media_type, limits());
  if (!manifest.ok()) return manifest.status().WithContext("commit: base image manifest");
  const bool to_oci = options.compression == layers::Compression::kZstd &&
                      manifest->media_type == images::media_type::kDockerManifest;
  const bool oci = to_oci || manifest->media_type != images::media_type::kDockerManifest;
  const std::string layer_type = LayerMediaType(oci, options.compression);

  // The layers below (a copy mount, or a directory): held for the diff.
  LayerSet lower;
  if (upper_dir.empty()) {
    LayerUseOptions use;
    use.operation = op;
    Result<LayerSet> got = AcquireLayerRecords(details->layers, use);
    if (!got.ok()) return got.status().WithContext("commit: layers of " + base);
    lower = std::move(*got);
  }

  // 1. The layer, into a temp file that recovery and check see as a live ingest.
  const Digest temp_name = RandomIngestName();
  Result<locking::LockGuard> temp_lock = LockBlob(temp_name, op);
  if (!temp_lock.ok()) return temp_lock.status();
  const std::string temp_path =
      IngestDir(root_) + "/sha256-" + std::string(temp_name.hex()) + ".commit";
  WritableFileOptions wo;
  wo.mode = OpenMode::kCreateNew;
  Result<std::unique_ptr<WritableFile>> file = env_->NewWritableFile(temp_path, wo);
  if (!file.ok()) return file.status().WithContext("commit");
  TempRemover remover(env_, temp_path);
  layers::LayerWriteOptions lw;
  lw.compression = options.compression;
  lw.cancelled = options.cancelled;
  Result<layers::WrittenLayer> written =
      upper_dir.empty() ? layers::WriteDirDiffLayer(dir, lower.dirs(), **file, lw)
                        : layers::WriteUpperDirLayer(upper_dir, **file, lw);
  if (!written.ok()) return written.status().WithContext("commit " + src);
  IMGSTORE_RETURN_IF_ERROR((*file)->Sync());
  IMGSTORE_RETURN_IF_ERROR((*file)->Close());
  mount_guard.reset();  // the changes are read: an umount may go ahead

  CommitResult result;
  const layers::WrittenLayer* layer = written->empty ? nullptr : &*written;
  std::unique_ptr<SequentialFile> in;
  if (layer != nullptr) {
    Result<std::unique_ptr<SequentialFile>> opened = env_->NewSequentialFile(temp_path);
    if (!opened.ok()) return opened.status().WithContext("commit");
    in = std::move(*opened);
  }
  // 2. The open descriptor keeps the bytes: the name goes now, and with it the temp lock, so
  // that no file lock is held while IngestBlob waits for the digest's own.
  IMGSTORE_RETURN_IF_ERROR(remover.RemoveNow());
  temp_lock->Release();
  if (layer != nullptr) {
    // Pinned first: nothing refers to the blob until AddImage.
    const Digest digests[] = {layer->digest};
    IMGSTORE_RETURN_IF_ERROR((*lease)->Pin(digests));
    IngestOptions io;
    io.expected_size = layer->size;
    io.media_type = layer_type;
    io.operation = op;
    Result<IngestResult> ingested = IngestBlob(layer->digest, io, *in);
    if (!ingested.ok()) return ingested.status().WithContext("commit: ingest the new layer");
    result.layer_digest = layer->digest;
    result.layer_size = layer->size;
    result.diff_id = layer->diff_id;
  }

  // 3. The config and manifest of the new image.
  Result<NewDocs> docs = BuildDocs(*details, *manifest, options, layer, layer_type, to_oci);
  if (!docs.ok()) return docs.status();
  const Digest config_digest = Digest::Of(docs->config);
  const Digest doc_pins[] = {config_digest, Digest::Of(docs->manifest)};
  IMGSTORE_RETURN_IF_ERROR((*lease)->Pin(doc_pins));
  IngestOptions co;
  co.expected_size = docs->config.size();
  co.media_type = oci ? std::string(images::media_type::kOciConfig)
                      : std::string(images::media_type::kDockerConfig);
  co.operation = op;
  Result<IngestResult> cfg = IngestBlob(config_digest, co, std::string_view(docs->config));
  if (!cfg.ok()) return cfg.status().WithContext("commit: ingest the new config");
  Result<AddImageResult> added =
      AddImage(docs->manifest, docs->manifest_type, docs->config, options.names);
  if (!added.ok()) return added.status().WithContext("commit");
  result.image = *added;
  Status released = (*lease)->Release();
  (void)released;  // the image is recorded; a lease left behind dies with this process
  return result;
}

}  // namespace imgstore::store
