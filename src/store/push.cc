// Store::Push: writes a stored image to any ImageDestination, byte for byte (the manifest and
// blobs as they were pulled, so digests survive the copy). docs/pull-push.md has the details.
//
// No store lock is held while the destination is written: the image is resolved in a read
// snapshot, and a lease pins its blobs so that a gc (or an rmi followed by a gc) running during
// a long push cannot take them. The lease exists before the snapshot is read, so there is no
// moment at which the blobs are neither referenced by the resolved record nor pinned, except
// for a gc that finished between the snapshot and the pin, which the check after the pin sees.
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "images/manifest.h"
#include "store/images_internal.h"
#include "store/store.h"

namespace imgstore::store {
namespace {

// The caller's progress callback behind one mutex: the destination's threads (skipped and
// mounted blobs) and the files they read (bytes) take turns.
class SerializedProgress {
 public:
  explicit SerializedProgress(images::ProgressCallback callback) : callback_(std::move(callback)) {}
  void operator()(const images::BlobProgress& p) {
    std::lock_guard lock(mu_);
    callback_(p);
  }

 private:
  std::mutex mu_;
  images::ProgressCallback callback_;
};

// A blob of the store as the destination reads it, reporting the bytes read so far (progress
// may be null) and failing the read once the caller cancelled (cancelled may be empty).
class ProgressFile final : public SequentialFile {
 public:
  ProgressFile(std::unique_ptr<SequentialFile> file, Digest digest, uint64_t total,
               std::shared_ptr<SerializedProgress> progress, std::function<bool()> cancelled)
      : SequentialFile(file->path()),
        file_(std::move(file)),
        digest_(std::move(digest)),
        total_(total),
        progress_(std::move(progress)),
        cancelled_(std::move(cancelled)) {}

  Result<size_t> Read(std::span<std::byte> buf) override {
    if (cancelled_ && cancelled_()) return Status(Code::kCancelled, "push cancelled");
    Result<size_t> n = file_->Read(buf);
    if (!n.ok()) return n;
    if (*n > 0) {
      done_ += *n;
      Report();
    } else if (!reported_) {
      Report();  // an empty blob: its end is all there is to report
    }
    return n;
  }
  Status Skip(uint64_t n) override {
    // A destination that resumes an upload skips what the registry already holds: that part
    // is done as far as this copy is concerned.
    IMGSTORE_RETURN_IF_ERROR(file_->Skip(n));
    done_ = std::min(total_, done_ + n);
    Report();
    return Status::OK();
  }

 private:
  void Report() {
    reported_ = true;
    if (progress_ == nullptr) return;
    (*progress_)(images::BlobProgress{digest_, done_, total_});
  }

  std::unique_ptr<SequentialFile> file_;
  Digest digest_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool reported_ = false;
  std::shared_ptr<SerializedProgress> progress_;
  std::function<bool()> cancelled_;
};

}  // namespace

Status Store::Push(std::string_view image, images::ImageDestination& destination,
                   const PushOptions& options) {
  const std::string what = "push " + std::string(image) + " to " + destination.Describe();
  const std::string label = options.operation.empty() ? what : options.operation;

  Result<std::unique_ptr<StoreLease>> lease = CreateLease(label);
  if (!lease.ok()) return lease.status().WithContext(what);
  Result<ImageDetails> details = InspectImage(image);
  if (!details.ok()) return details.status().WithContext(what);

  std::vector<Digest> blobs = {details->summary.manifest_digest, details->summary.id};
  for (const LayerRecord& l : details->layers) blobs.push_back(l.digest);
  Status s = (*lease)->Pin(blobs);
  if (!s.ok()) return s.WithContext(what);
  // A gc that removed the image and its blobs between the snapshot and the pin: say so now
  // rather than half-way through the destination.
  for (const Digest& d : blobs) {
    Result<bool> has = HasBlob(d);
    if (!has.ok()) return has.status().WithContext(what);
    if (!*has) {
      return Status(Code::kNotFound, what + ": blob " + d.ToString() +
                                         " was removed while the push began (image removed?)");
    }
  }
  // The config and layers: what origins are about (manifests are not blobs a registry mounts).
  const std::vector<Digest> content(blobs.begin() + 1, blobs.end());

  images::ImageToWrite out;
  out.manifest.bytes = std::move(details->manifest);
  Result<images::ImageManifest> parsed =
      images::ParseImageManifest(out.manifest.bytes, details->manifest_media_type, limits());
  if (!parsed.ok()) return parsed.status().WithContext(what + ": stored manifest");
  out.manifest.media_type =
      details->manifest_media_type.empty() ? parsed->media_type : details->manifest_media_type;
  out.parsed = std::move(*parsed);
  out.config = std::move(details->config);
  for (const LayerRecord& l : details->layers) out.diff_ids.push_back(l.diff_id);
  out.names = details->summary.names;
  std::sort(out.names.begin(), out.names.end());
  {
    // Read before the push, in a snapshot of its own: no transaction stays open while bytes move.
    Result<ReadTransaction> txn = db_->BeginRead();
    if (!txn.ok()) return txn.status().WithContext(what);
    Result<std::map<Digest, std::vector<std::string>>> origins =
        internal::ReadBlobOrigins(*txn, content);
    if (!origins.ok()) return origins.status().WithContext(what + ": blob origins");
    out.origins = std::move(*origins);
  }
  out.max_parallel = options.max_parallel;
  std::shared_ptr<SerializedProgress> progress;
  if (options.on_progress) {
    progress = std::make_shared<SerializedProgress>(options.on_progress);
    out.on_progress = [progress](const images::BlobProgress& p) { (*progress)(p); };
  }
  // Only the image's own blobs: a destination asking for anything else is a bug, not a reason
  // to read some other blob of the store. The map is only read after this point, so the
  // function is safe to call from several threads (OpenBlob is).
  std::map<Digest, uint64_t> sizes = {{details->summary.manifest_digest, out.manifest.bytes.size()},
                                      {details->summary.id, out.config.size()}};
  for (const LayerRecord& l : details->layers) sizes[l.digest] = l.size;
  out.open_blob = [this, sizes = std::move(sizes), progress, cancelled = options.cancelled](
                      const images::Descriptor& d) -> Result<std::unique_ptr<SequentialFile>> {
    auto it = sizes.find(d.digest);
    if (it == sizes.end()) {
      return Status(Code::kNotFound, "blob " + d.digest.ToString() + " is not part of the image");
    }
    if (cancelled && cancelled()) return Status(Code::kCancelled, "push cancelled");
    Result<std::unique_ptr<SequentialFile>> file = OpenBlob(d.digest);
    if (!file.ok() || (progress == nullptr && !cancelled)) return file;
    return std::unique_ptr<SequentialFile>(std::make_unique<ProgressFile>(
        std::move(*file), d.digest, it->second, progress, cancelled));
  };

  auto is_cancelled = [&options] { return options.cancelled && options.cancelled(); };
  if (is_cancelled()) return Status(Code::kCancelled, what + ": push cancelled");
  s = destination.PutImage(out);
  // A cancel noticed anywhere inside the destination (a blob read, a registry request) is one
  // plain error. A push that completed in spite of a late cancel stands.
  if (!s.ok() && (s.code() == Code::kCancelled || is_cancelled())) {
    return Status(Code::kCancelled, what + ": push cancelled");
  }
  if (!s.ok()) return s.WithContext(what);

  // The destination now holds the blobs: remember where, for mounts by later pushes. The push
  // has happened whatever follows, so a failure here is a warning, not the push's error.
  const std::string origin = destination.BlobOrigin();
  if (!origin.empty()) {
    Status recorded = [&]() -> Status {
      Result<WriteTransaction> txn = db_->BeginWrite();
      if (!txn.ok()) return txn.status();
      IMGSTORE_RETURN_IF_ERROR(
          internal::RecordBlobOrigins(*txn, content, origin, internal::NowUnixNs()));
      return txn->Commit();
    }();
    if (!recorded.ok() && options.on_warning) {
      options.on_warning(what + ": pushed, but recording " + origin +
                         " as the origin of its blobs failed: " + recorded.message());
    }
  }
  return (*lease)->Release().WithContext(what);
}

}  // namespace imgstore::store
