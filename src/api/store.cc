// imgstore::Store (include/imgstore/store.hpp): the public C++ API over store::Store and the
// transports. Each method converts the public options, calls the store, and converts back; the
// locking, crash and thread-safety rules are the store's.
#include "imgstore/store.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "api/convert.h"
#include "images/platform.h"
#include "locking/locking.h"
#include "transports/transports.h"
#include "util/env.h"

namespace imgstore {
namespace {

ImageSummary ToSummary(const store::ImageSummary& s) {
  ImageSummary out;
  out.id = s.id.ToString();
  out.names = s.names;
  out.manifest_digest = s.manifest_digest.ToString();
  out.size = s.size;
  out.created = s.created;
  out.created_unix_ns = s.created_unix_ns;
  out.added_unix_ns = s.added_unix_ns;
  out.os = s.os;
  out.architecture = s.architecture;
  out.variant = s.variant;
  return out;
}

void Report(const ProgressCallback& cb, const images::BlobProgress& p) {
  cb(Progress{p.digest.ToString(), p.done, p.total, p.skipped, p.mounted});
}

}  // namespace

const char* Version() { return IMGSTORE_VERSION; }

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(const std::string& root, const StoreOptions& options) {
  return api::Guarded("open store", [&]() -> Result<std::unique_ptr<Store>> {
    std::string dir = root;
    if (dir.empty()) {
      Result<std::string> d = store::Store::DefaultRoot();
      if (!d.ok()) return d.status();
      dir = std::move(*d);
    }
    if (options.lock_timeout.count() < 0) {
      return Status(Code::kInvalidArgument, "open store " + dir + ": negative lock timeout");
    }
    Status limits = api::CheckLimits(options.limits);
    if (!limits.ok()) return limits.WithContext("open store " + dir);
    store::StoreOptions so;
    so.lock_timeout = std::chrono::duration_cast<locking::Duration>(options.lock_timeout);
    so.on_wait = options.on_wait;
    so.limits = api::ToParseLimits(options.limits);
    Result<std::unique_ptr<store::Store>> s = store::Store::Open(dir, so);
    if (!s.ok()) return s.status();
    auto impl = std::make_unique<Impl>();
    impl->store = std::move(*s);
    impl->limits = options.limits;
    return std::unique_ptr<Store>(new Store(std::move(impl)));
  });
}

Result<std::string> Store::DefaultRoot() {
  return api::Guarded("default root", [] { return store::Store::DefaultRoot(); });
}

Result<bool> Store::Exists(const std::string& root) {
  return api::Guarded("open store", [&]() -> Result<bool> {
    const std::string db = root + "/meta.db";
    struct stat st;
    if (::stat(db.c_str(), &st) == 0) return true;
    if (errno == ENOENT || errno == ENOTDIR) return false;
    return Status::FromErrno(errno, "open store " + root + ": " + db);
  });
}

Result<LocksReport> Store::ListLocks(const std::string& root, bool all) {
  return api::Guarded("locks", [&]() -> Result<LocksReport> {
    Result<locking::LockSpace> space = locking::LockSpace::Open(root + "/locks");
    if (!space.ok()) return space.status();
    return api::ListLocks(*space, all);
  });
}

const std::string& Store::root() const { return impl_->store->root(); }

Result<PullResult> Store::Pull(std::string_view source, const PullOptions& options) {
  const std::string what = "pull " + std::string(source);
  return api::Guarded(what, [&]() -> Result<PullResult> {
    store::PullOptions po;
    if (!options.platform.empty()) {
      Result<images::Platform> p = images::ParsePlatform(options.platform);
      if (!p.ok()) return p.status().WithContext(what + ": platform");
      po.platform = *p;
    }
    po.names = options.names;
    po.verify_diff_ids = options.verify_diff_ids;
    const transports::SourceLimits limits = api::ToSourceLimits(impl_->limits);
    po.limits = limits.parse;
    po.decompress = limits.decompress;
    po.max_index_depth = static_cast<int>(impl_->limits.max_index_depth);
    po.max_parallel = options.max_parallel;
    po.cancelled = api::CancelHook(options.cancel);
    Result<registry::RegistryOptions> reg = api::ToRegistryOptions(options.registry, po.cancelled);
    if (!reg.ok()) return reg.status().WithContext(what);
    if (po.cancelled && po.cancelled()) return Status(Code::kCancelled, what + ": pull cancelled");
    Result<std::unique_ptr<images::ImageSource>> src =
        transports::OpenSource(Env::Default(), source, limits, *reg);
    if (!src.ok()) return src.status();
    po.operation = "pull " + (*src)->Describe();
    if (options.on_progress) {
      po.on_progress = [cb = options.on_progress](const images::BlobProgress& p) { Report(cb, p); };
    }
    if (options.on_blobs) {
      po.on_blobs = [cb = options.on_blobs](const std::vector<images::Descriptor>& blobs) {
        uint64_t bytes = 0;
        for (const images::Descriptor& d : blobs) bytes += static_cast<uint64_t>(d.size);
        cb(blobs.size(), bytes);
      };
    }
    Result<store::PullResult> r = impl_->store->Pull(**src, po);
    if (!r.ok()) return r.status();
    PullResult out;
    out.id = r->image.id.ToString();
    out.manifest_digest = r->image.manifest_digest.ToString();
    out.names = r->names;
    out.blobs_written = r->blobs_written;
    out.bytes_written = r->bytes_written;
    return out;
  });
}

Result<PushResult> Store::Push(std::string_view image, std::string_view destination,
                               const PushOptions& options) {
  const std::string dest_spec(destination.empty() ? image : destination);
  const std::string what = "push " + std::string(image) + " to " + dest_spec;
  return api::Guarded(what, [&]() -> Result<PushResult> {
    if (image.empty()) return Status(Code::kInvalidArgument, "push: no image given");
    if (destination.empty()) {
      // `push NAME` goes to the registry the name designates, as in docker and podman.
      // An id ("sha256:HEX") would parse as the reference docker.io/library/sha256:HEX.
      Result<transports::TransportSpec> t = transports::ParseTransportSpec(dest_spec);
      if (!t.ok() || t->kind != transports::TransportKind::kRegistry ||
          dest_spec.starts_with("sha256:")) {
        return Status(Code::kInvalidArgument,
                      "push " + std::string(image) +
                          ": without a destination, the image must be a registry reference");
      }
    }
    store::PushOptions po;
    po.max_parallel = options.max_parallel;
    po.on_warning = options.on_warning;
    po.cancelled = api::CancelHook(options.cancel);
    if (options.on_progress) {
      po.on_progress = [cb = options.on_progress](const images::BlobProgress& p) { Report(cb, p); };
    }
    Result<registry::RegistryOptions> reg = api::ToRegistryOptions(options.registry, po.cancelled);
    if (!reg.ok()) return reg.status().WithContext(what);
    // By id, so that the digest returned is that of the image pushed even if the name moves.
    Result<store::ImageDetails> details = impl_->store->InspectImage(image);
    if (!details.ok()) return details.status().WithContext("push");
    const std::string id = details->summary.id.ToString();
    if (po.cancelled && po.cancelled()) return Status(Code::kCancelled, what + ": push cancelled");
    Result<std::unique_ptr<images::ImageDestination>> dest =
        transports::OpenDestination(Env::Default(), dest_spec, *reg);
    if (!dest.ok()) return dest.status();
    po.operation = "push " + std::string(image) + " to " + (*dest)->Describe();
    IMGSTORE_RETURN_IF_ERROR(impl_->store->Push(id, **dest, po));
    return PushResult{id, details->summary.manifest_digest.ToString()};
  });
}

Result<std::vector<ImageSummary>> Store::List(std::string_view filter) {
  return api::Guarded("list", [&]() -> Result<std::vector<ImageSummary>> {
    Result<std::vector<store::ImageSummary>> rows = impl_->store->ListImages(filter);
    if (!rows.ok()) return rows.status();
    std::vector<ImageSummary> out;
    out.reserve(rows->size());
    for (const store::ImageSummary& s : *rows) out.push_back(ToSummary(s));
    return out;
  });
}

Result<ImageDetails> Store::Inspect(std::string_view image) {
  return api::Guarded("inspect", [&]() -> Result<ImageDetails> {
    Result<store::ImageDetails> d = impl_->store->InspectImage(image);
    if (!d.ok()) return d.status();
    ImageDetails out;
    out.summary = ToSummary(d->summary);
    out.manifest_media_type = std::move(d->manifest_media_type);
    out.manifest = std::move(d->manifest);
    out.config = std::move(d->config);
    for (const store::LayerRecord& l : d->layers) {
      out.layers.push_back(LayerInfo{l.digest.ToString(), l.media_type, l.size,
                                     l.diff_id.ToString(), l.chain_id.ToString()});
    }
    return out;
  });
}

Result<std::string> Store::Resolve(std::string_view image) {
  return api::Guarded("resolve", [&]() -> Result<std::string> {
    Result<Digest> id = impl_->store->ResolveImage(image);
    if (!id.ok()) return id.status();
    return id->ToString();
  });
}

Status Store::Tag(std::string_view image, std::string_view name) {
  return api::Guarded("tag", [&] { return impl_->store->Tag(image, name); });
}

Status Store::Untag(std::string_view image, const std::vector<std::string>& names) {
  return api::Guarded("untag", [&] { return impl_->store->Untag(image, names); });
}

Result<RemoveResult> Store::Remove(std::string_view image, bool force) {
  return api::Guarded("remove", [&]() -> Result<RemoveResult> {
    Result<store::RemoveImageResult> r = impl_->store->Remove(image, force);
    if (!r.ok()) return r.status();
    RemoveResult out;
    out.untagged = std::move(r->untagged);
    if (r->deleted) out.deleted = r->deleted->ToString();
    return out;
  });
}

Result<GcReport> Store::Gc(const GcOptions& options) {
  return api::Guarded("gc", [&]() -> Result<GcReport> {
    store::GcOptions go;
    go.dry_run = options.dry_run;
    Result<store::GcReport> r = impl_->store->GarbageCollect(go);
    if (!r.ok()) return r.status();
    GcReport out;
    for (const Digest& d : r->blobs_removed) out.blobs_removed.push_back(d.ToString());
    out.bytes_removed = r->bytes_removed;
    out.manifests_removed = r->manifests_removed;
    out.layers_removed = r->layers_removed;
    out.leases_removed = r->leases_removed;
    out.lock_files_removed = r->lock_files_removed;
    out.orphan_files_removed = r->orphan_files_removed;
    out.skipped_busy = r->skipped_busy;
    out.partial_downloads_removed = r->partial_downloads_removed;
    out.partial_bytes_removed = r->partial_bytes_removed;
    return out;
  });
}

Result<DiskUsage> Store::Df() {
  return api::Guarded("df", [&]() -> Result<DiskUsage> {
    Result<store::DiskUsage> u = impl_->store->GetDiskUsage();
    if (!u.ok()) return u.status();
    DiskUsage out;
    out.images = u->images;
    out.blobs = u->blobs;
    out.blob_bytes = u->blob_bytes;
    out.reclaimable_blobs = u->reclaimable_blobs;
    out.reclaimable_bytes = u->reclaimable_bytes;
    out.layers = u->layers;
    out.layer_bytes = u->layer_bytes;
    out.reclaimable_layers = u->reclaimable_layers;
    out.reclaimable_layer_bytes = u->reclaimable_layer_bytes;
    out.partial_downloads = u->partial_downloads;
    out.partial_bytes = u->partial_bytes;
    return out;
  });
}

Result<CheckReport> Store::Check(const CheckOptions& options) {
  return api::Guarded("check", [&]() -> Result<CheckReport> {
    Result<store::CheckReport> r = options.repair ? impl_->store->Repair(options.verify_content)
                                                  : impl_->store->Check(options.verify_content);
    if (!r.ok()) return r.status();
    CheckReport out;
    out.blobs_checked = r->blobs_checked;
    for (const store::CheckProblem& p : r->problems) {
      out.problems.push_back(
          CheckProblem{std::string(store::ProblemKindName(p.kind)), p.path, p.message, p.repaired});
    }
    return out;
  });
}

Result<LocksReport> Store::Locks(bool all) {
  return api::Guarded("locks", [&] { return api::ListLocks(impl_->store->locks(), all); });
}

}  // namespace imgstore
