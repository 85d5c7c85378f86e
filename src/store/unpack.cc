// Store::Unpack: a flattened root filesystem of an image in a new directory. A layer in the
// cache is copied from its directory; a layer that is not is extracted from its blob in one
// pass into both the cache (its staging directory) and the destination (docs/layers.md).
#include <string>
#include <utility>
#include <vector>

#include "store/layer_cache.h"
#include "store/store.h"

namespace imgstore::store {
namespace {

layers::CopyOptions CopyOptionsFor(const layers::ExtractOptions& eo) {
  layers::CopyOptions co;
  co.preserve_owners = eo.preserve_owners;
  co.xattrs = eo.xattrs;
  co.on_warning = eo.on_warning;
  co.cancelled = eo.cancelled;
  return co;
}

// The destination, removed with everything in it unless the unpack succeeded.
class Destination {
 public:
  Destination(Env* env, std::string dir) : env_(env), dir_(std::move(dir)) {}
  ~Destination() {
    if (!kept_) (void)env_->RemoveTree(dir_);
  }
  Destination(const Destination&) = delete;
  Destination& operator=(const Destination&) = delete;
  void Keep() { kept_ = true; }

 private:
  Env* env_;
  std::string dir_;
  bool kept_ = false;
};

}  // namespace

Result<UnpackResult> Store::Unpack(std::string_view image, const std::string& dir,
                                   const UnpackOptions& options) {
  const std::string what = "unpack " + std::string(image) + " into " + dir;
  if (dir.empty()) return Status(Code::kInvalidArgument, what + ": empty directory name");
  Result<ImageDetails> details = InspectImage(image);
  if (!details.ok()) return details.status();
  // The blobs stay until the end: a layer not in the cache is extracted from its blob, and an
  // rmi and gc may run meanwhile.
  Result<std::unique_ptr<StoreLease>> lease = PinImage(*details, "unpack " + dir, what);
  if (!lease.ok()) return lease.status();
  if (env_->FileExists(dir)) return Status(Code::kAlreadyExists, what + ": " + dir + " exists");
  const std::string parent = DirName(dir);
  Result<FileStat> pst = env_->Stat(parent);
  if (!pst.ok() && pst.status().code() == Code::kNotFound) {
    return Status(Code::kNotFound, what + ": " + parent + " does not exist");
  }
  if (!pst.ok()) return pst.status().WithContext(what);
  // Stat does not follow a symlink; a parent that is a symlink to a directory is fine.
  if (pst->type != FileType::kDirectory && pst->type != FileType::kSymlink) {
    return Status(Code::kFailedPrecondition, what + ": " + parent + " is not a directory");
  }
  Status s = env_->CreateDir(dir, 0755);
  if (!s.ok()) return s.WithContext(what);
  Destination destination(env_, dir);

  const layer_cache::Context ctx{
      this, root_, env_, *db_, locks_, options_.lock_timeout, options_.on_wait};
  const layers::CopyOptions copy = CopyOptionsFor(options.layers.extract);
  UnpackResult result;
  result.image_id = details->summary.id;
  // The layers held (shared) until the end: a later layer's extraction resolves hardlinks
  // through the lower directories, and gc must not take them meanwhile.
  std::vector<locking::LockGuard> guards;
  std::vector<std::string> lower;  // cached dirs of the layers below, nearest first
  for (const LayerRecord& layer : details->layers) {
    ++result.layers;
    Result<layer_cache::HeldLayer> held = layer_cache::UseLayer(ctx, layer, lower, options.layers,
                                                                dir, /*extract=*/options.use_cache);
    if (!held.ok()) return held.status().WithContext(what);
    if (held->extracted) {
      ++result.layers_extracted;
      result.entries += held->stats.entries;
      result.file_bytes += held->stats.file_bytes;
    } else if (held->guard.held()) {
      Result<layers::CopyStats> c = layers::ApplyLayerDir(held->dir, dir, copy);
      if (!c.ok()) {
        return c.status().WithContext(what + ": apply layer " + layer.chain_id.ToString());
      }
      result.entries += c->entries;
      result.file_bytes += c->file_bytes;
    } else {
      // --no-cache and not in the cache: straight into the destination only.
      if (options.layers.on_extract) options.layers.on_extract(layer.chain_id, false);
      Result<layers::ExtractStats> e = layer_cache::ExtractInto(ctx, layer, options.layers, dir);
      if (!e.ok()) return e.status().WithContext(what);
      if (options.layers.on_extract) options.layers.on_extract(layer.chain_id, true);
      ++result.layers_extracted;
      result.entries += e->entries;
      result.file_bytes += e->file_bytes;
    }
    if (held->guard.held()) {
      lower.insert(lower.begin(), held->dir);
      guards.push_back(std::move(held->guard));
    }
  }
  s = layer_cache::SyncFileSystem(dir);
  if (!s.ok()) return s.WithContext(what);
  destination.Keep();
  return result;
}

}  // namespace imgstore::store
