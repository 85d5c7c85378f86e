// Store::Pull: copies an image from any ImageSource into the store. docs/pull-push.md has the
// algorithm, the locking and what a crash at each step leaves.
//
// The order matters for gc and for crashes: everything is fetched and parsed before the store is
// touched; a lease pins every digest before the pull looks whether it is present (a gc between
// the look and the commit could otherwise take a blob the image needs); blobs are ingested with
// no store lock (the per-digest lock inside IngestBlob makes two pulls of one blob write it
// once); and one short write transaction records the image at the end, so a failure anywhere
// leaves no record, only verified blobs for gc. Layers are fetched by several threads when the
// source allows it (RunParallel); the config stays first and alone, so that a config that does
// not match the manifest fails before any layer is fetched.
#include <algorithm>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "images/image_config.h"
#include "images/manifest.h"
#include "images/reference.h"
#include "layers/decompress.h"
#include "store/images_internal.h"
#include "store/parallel.h"
#include "store/store.h"

namespace imgstore::store {
namespace {

// A manifest-level document fetched from the source, verified and parsed.
struct Fetched {
  images::RawManifest raw;
  Digest digest;
  images::ParsedManifest parsed;
};

Result<Fetched> ParseFetched(images::RawManifest raw, std::string_view content_type,
                             const images::ParseLimits& limits) {
  Result<images::ParsedManifest> parsed = images::ParseManifest(raw.bytes, content_type, limits);
  if (!parsed.ok()) return parsed.status();
  Fetched f;
  f.digest = Digest::Of(raw.bytes);
  f.raw = std::move(raw);
  f.parsed = std::move(*parsed);
  return f;
}

// The child that `descriptor` names, checked against the descriptor: a source may not substitute
// another document for the one the index lists.
Result<Fetched> FetchChild(images::ImageSource& source, const images::Descriptor& descriptor,
                           const images::ParseLimits& limits) {
  const std::string what = "manifest " + descriptor.digest.ToString();
  if (!descriptor.digest.IsSha256()) {
    return Status(Code::kUnsupported, what + ": only sha256 manifests can be stored");
  }
  if (static_cast<uint64_t>(descriptor.size) > limits.max_manifest_bytes) {
    return Status(Code::kInvalidArgument, what + ": its size " + std::to_string(descriptor.size) +
                                              " is over the limit max_manifest_bytes (" +
                                              std::to_string(limits.max_manifest_bytes) +
                                              " bytes)");
  }
  Result<images::RawManifest> raw = source.GetManifest(descriptor);
  if (!raw.ok()) return raw.status();
  Digest actual = Digest::Of(raw->bytes);
  if (actual != descriptor.digest || raw->bytes.size() != static_cast<uint64_t>(descriptor.size)) {
    return Status(Code::kCorruption,
                  what + ": the source gave " + actual.ToString() + " (" +
                      std::to_string(raw->bytes.size()) + " bytes) instead of the " +
                      std::to_string(descriptor.size) + " bytes the index lists");
  }
  // The index's word on the type is what the digest covers; the source's is a fallback.
  std::string type = descriptor.media_type.empty() ? raw->media_type : descriptor.media_type;
  Result<Fetched> f = ParseFetched(std::move(*raw), type, limits);
  if (!f.ok()) return f.status().WithContext(what);
  return f;
}

// The sha256 of a stored layer's decompressed bytes: its diffID.
Result<Digest> DecompressedDigest(Store& store, const images::Descriptor& layer,
                                  const layers::DecompressLimits& limits) {
  Result<layers::Compression> c = layers::CompressionOfMediaType(layer.media_type);
  if (!c.ok()) return c.status();
  Result<std::unique_ptr<SequentialFile>> blob = store.OpenBlob(layer.digest);
  if (!blob.ok()) return blob.status();
  Result<std::unique_ptr<SequentialFile>> tar =
      layers::OpenDecompressed(std::move(*blob), *c, limits);
  if (!tar.ok()) return tar.status();
  Sha256Hasher hasher;
  std::vector<std::byte> buf(1 << 20);
  while (true) {
    Result<size_t> n = (*tar)->Read(buf);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    hasher.Update(std::span<const std::byte>(buf.data(), *n));
  }
  return hasher.Finish();
}

class Puller {
 public:
  Puller(Store& store, images::ImageSource& source, const PullOptions& options)
      : store_(store), source_(source), options_(options) {
    operation_ = options.operation.empty() ? "pull " + source.Describe() : options.operation;
  }

  Result<PullResult> Run() {
    blob_origin_ = source_.BlobOrigin();
    // 0. Names first: a typo in --name must not cost a download.
    std::vector<std::string> wanted = options_.names;
    for (std::string& n : source_.Names()) wanted.push_back(std::move(n));
    for (const std::string& n : wanted) {
      Result<images::Reference> ref = internal::ParseName(n);
      if (!ref.ok()) return ref.status();
      std::string text = ref->String();
      if (std::find(result_.names.begin(), result_.names.end(), text) == result_.names.end()) {
        result_.names.push_back(std::move(text));
      }
    }
    std::sort(result_.names.begin(), result_.names.end());

    // 1. The documents: the top, down through indexes to one image manifest.
    IMGSTORE_RETURN_IF_ERROR(CheckCancelled());
    IMGSTORE_RETURN_IF_ERROR(Resolve());
    const images::ImageManifest& manifest = *top_.parsed.manifest();
    if (!manifest.IsImage()) {
      return Status(Code::kUnsupported,
                    "manifest " + top_.digest.ToString() + " is not an image: its config is " +
                        (manifest.config.media_type.empty() ? std::string("untyped")
                                                            : manifest.config.media_type) +
                        " (an artifact)");
    }

    // The distinct layers: an image may list one blob twice (empty layers of docker images), and
    // two threads must not wait on each other's ingest of it.
    std::vector<size_t> distinct;
    std::vector<images::Descriptor> blobs = {manifest.config};
    for (size_t i = 0; i < manifest.layers.size(); ++i) {
      auto same = [&](size_t j) { return manifest.layers[j].digest == manifest.layers[i].digest; };
      if (std::any_of(distinct.begin(), distinct.end(), same)) continue;
      distinct.push_back(i);
      blobs.push_back(manifest.layers[i]);
    }

    // 2. Pin everything the image consists of before looking at what is present.
    Result<std::unique_ptr<StoreLease>> lease = store_.CreateLease(operation_);
    if (!lease.ok()) return lease.status();
    std::vector<Digest> pins;
    for (const internal::IndexRecord& rec : indexes_) pins.push_back(rec.digest);
    pins.push_back(top_.digest);
    pins.push_back(manifest.config.digest);
    for (const images::Descriptor& l : manifest.layers) pins.push_back(l.digest);
    IMGSTORE_RETURN_IF_ERROR((*lease)->Pin(pins));
    if (options_.on_blobs) options_.on_blobs(blobs);
    IMGSTORE_RETURN_IF_ERROR(CheckCancelled());

    // 3. The config, parsed and matched before any layer is fetched.
    IMGSTORE_RETURN_IF_ERROR(Ingest(manifest.config, "config"));
    Result<std::string> config_bytes =
        store_.ReadBlob(manifest.config.digest, options_.limits.max_config_bytes);
    if (!config_bytes.ok()) {
      return images::NameLimit(config_bytes.status(), "max_config_bytes",
                               options_.limits.max_config_bytes)
          .WithContext("config");
    }
    Result<images::ImageConfig> config = images::ParseImageConfig(*config_bytes, options_.limits);
    if (!config.ok())
      return config.status().WithContext("config " + manifest.config.digest.ToString());
    IMGSTORE_RETURN_IF_ERROR(images::CheckConfigMatchesManifest(manifest, *config));

    // 4. The layers (several at once when the source allows it), then optionally their diffIDs.
    const int workers = source_.ConcurrentBlobs() ? options_.max_parallel : 1;
    IMGSTORE_RETURN_IF_ERROR(internal::RunParallel(distinct.size(), workers, [&](size_t k) {
      const size_t i = distinct[k];
      IMGSTORE_RETURN_IF_ERROR(CheckCancelled());
      return Ingest(manifest.layers[i], "layer " + std::to_string(i));
    }));
    internal::AddImageExtras extras;
    extras.blob_origin = blob_origin_;
    if (options_.verify_diff_ids) {
      for (size_t i = 0; i < manifest.layers.size(); ++i) {
        IMGSTORE_RETURN_IF_ERROR(CheckCancelled());
        const images::Descriptor& l = manifest.layers[i];
        const std::string what = "layer " + std::to_string(i) + " (" + l.digest.ToString() + ")";
        Result<Digest> diff = DecompressedDigest(store_, l, options_.decompress);
        if (!diff.ok()) return diff.status().WithContext("verify diffID of " + what);
        if (*diff != config->diff_ids[i]) {
          return Status(Code::kCorruption, "verify diffID of " + what + ": the config says " +
                                               config->diff_ids[i].ToString() +
                                               ", the decompressed layer is " + diff->ToString());
        }
      }
      extras.diff_id_verified.assign(manifest.layers.size(), true);
    }

    // 5. The documents as blobs (so that a push sends them verbatim), then the one commit. A
    // cancel that comes after this check is too late: the pull completes.
    IMGSTORE_RETURN_IF_ERROR(CheckCancelled());
    IMGSTORE_RETURN_IF_ERROR(IngestBytes(top_, "manifest"));
    for (const Fetched& idx : index_docs_) IMGSTORE_RETURN_IF_ERROR(IngestBytes(idx, "index"));
    extras.indexes = indexes_;
    Result<AddImageResult> added = internal::AddImageWith(
        store_, top_.raw.bytes, top_.parsed.media_type(), *config_bytes, result_.names, extras);
    if (!added.ok()) return added.status();
    result_.image = std::move(*added);
    IMGSTORE_RETURN_IF_ERROR((*lease)->Release());
    return std::move(result_);
  }

 private:
  // The caller's cancel hook, asked between blobs and between reads of a blob.
  Status CheckCancelled() const {
    if (options_.cancelled && options_.cancelled()) return Status(Code::kCancelled, "cancelled");
    return Status::OK();
  }

  Status Resolve() {
    Result<images::RawManifest> raw = source_.GetManifest();
    if (!raw.ok()) return raw.status();
    std::string type = raw->media_type;
    Result<Fetched> top = ParseFetched(std::move(*raw), type, options_.limits);
    if (!top.ok()) return top.status().WithContext("manifest");
    top_ = std::move(*top);
    while (top_.parsed.is_index()) {
      if (static_cast<int>(index_docs_.size()) >= options_.max_index_depth) {
        return Status(Code::kInvalidArgument, "indexes nest deeper than " +
                                                  std::to_string(options_.max_index_depth) +
                                                  " levels (the limit max_index_depth)");
      }
      const images::ImageIndex& index = *top_.parsed.index();
      Result<images::Descriptor> chosen = images::SelectManifest(index, options_.platform);
      if (!chosen.ok()) {
        return chosen.status().WithContext("index " + top_.digest.ToString());
      }
      Result<Fetched> child = FetchChild(source_, *chosen, options_.limits);
      if (!child.ok()) return child.status();
      internal::IndexRecord rec;
      rec.digest = top_.digest;
      rec.size = top_.raw.bytes.size();
      rec.index = index;
      indexes_.push_back(std::move(rec));
      index_docs_.push_back(std::move(top_));
      top_ = std::move(*child);
    }
    return Status::OK();
  }

  // Called by the layer threads: the callback sees one call at a time (store.h).
  void Progress(const Digest& d, uint64_t done, uint64_t total, bool skipped) {
    if (!options_.on_progress) return;
    std::lock_guard lock(progress_mu_);
    options_.on_progress(PullProgress{d, done, total, skipped});
  }

  void Count(const IngestResult& r) {
    std::lock_guard lock(result_mu_);
    if (r.written) {
      ++result_.blobs_written;
      result_.bytes_written += r.blob.size;
    }
  }

  // A config or layer blob, read from the source only if the store lacks it. Called by several
  // threads at once for different blobs; everything it touches besides its locals is guarded.
  Status Ingest(const images::Descriptor& d, const std::string& what) {
    IngestOptions io;
    io.expected_size = static_cast<uint64_t>(d.size);
    io.media_type = d.media_type;
    io.operation = operation_;
    std::unique_ptr<SequentialFile> blob;
    uint64_t start = 0;  // the first byte to ask the source for
    uint64_t done = 0;
    if (source_.ResumableBlobs()) {
      // A registry download that breaks (or whose process is killed) is kept and resumed by the
      // next pull of the blob; IngestBlob says where to start.
      io.resume_at = [&](uint64_t offset) {
        blob.reset();
        start = offset;
        done = offset;
        return Status::OK();
      };
    }
    Result<IngestResult> r =
        store_.IngestBlob(d.digest, io, [&](std::span<std::byte> buf) -> Result<size_t> {
          // An error from the reader makes IngestBlob drop its ingest entry (or keep it for
          // resumption): nothing half-written is ever taken for the blob.
          IMGSTORE_RETURN_IF_ERROR(CheckCancelled());
          if (blob == nullptr) {
            Result<std::unique_ptr<SequentialFile>> opened =
                start > 0 ? source_.GetBlobFrom(d, start) : source_.GetBlob(d);
            if (!opened.ok()) return opened.status();
            blob = std::move(*opened);
          }
          Result<size_t> n = blob->Read(buf);
          if (n.ok() && *n > 0) {
            done += *n;
            Progress(d.digest, done, io.expected_size.value_or(0), false);
          }
          return n;
        });
    if (!r.ok()) return r.status().WithContext(what);
    if (!r->written) Progress(d.digest, r->blob.size, r->blob.size, true);
    if (r->written && r->blob.size == 0) Progress(d.digest, 0, 0, false);  // no read reported it
    Count(*r);
    return Status::OK();
  }

  Status IngestBytes(const Fetched& doc, const std::string& what) {
    IngestOptions io;
    io.expected_size = doc.raw.bytes.size();
    io.media_type = doc.parsed.media_type();
    io.operation = operation_;
    Result<IngestResult> r = store_.IngestBlob(doc.digest, io, doc.raw.bytes);
    if (!r.ok()) return r.status().WithContext(what);
    Count(*r);
    return Status::OK();
  }

  Store& store_;
  images::ImageSource& source_;
  const PullOptions& options_;
  std::string operation_;
  Fetched top_;                                 // the image manifest once Resolve() is done
  std::vector<Fetched> index_docs_;             // the indexes on the way, top first
  std::vector<internal::IndexRecord> indexes_;  // the same, as AddImageWith records them
  std::string blob_origin_;                     // source_.BlobOrigin(), asked once
  std::mutex progress_mu_;                      // serializes options_.on_progress
  std::mutex result_mu_;                        // guards the counts of result_ while layers run
  PullResult result_;
};

}  // namespace

Result<PullResult> Store::Pull(images::ImageSource& source, const PullOptions& options) {
  Result<PullResult> r = Puller(*this, source, options).Run();
  // However deep the cancel was noticed (a read, a registry request), it is one plain error.
  if (!r.ok() && r.status().code() == Code::kCancelled) {
    return Status(Code::kCancelled, "pull " + source.Describe() + ": pull cancelled");
  }
  if (!r.ok()) return r.status().WithContext("pull " + source.Describe());
  return r;
}

}  // namespace imgstore::store
