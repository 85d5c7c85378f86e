// RegistryDestination (see registry_destination.h): the blobs of an image pushed by worker
// threads (BlobUploader does each one), then the manifest.
#include "registry/registry_destination.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "registry/auth.h"
#include "registry/blob_upload.h"
#include "registry/registry_client.h"

namespace imgstore::registry {
namespace {

// Runs the blobs' pushes on up to `parallel` threads (the caller's among them). The first error
// stops the others from starting a blob (and from waiting to retry one) and is returned.
class BlobWorkers {
 public:
  explicit BlobWorkers(const std::vector<images::Descriptor>& blobs) : blobs_(blobs) {}

  // `first_present`: what a HEAD already said about blobs[0].
  Status Run(const BlobUploader& uploader, int parallel, std::optional<bool> first_present) {
    uploader_ = &uploader;
    first_present_ = first_present;
    const size_t n = std::clamp<size_t>(static_cast<size_t>(std::max(parallel, 1)), 1,
                                        std::max<size_t>(blobs_.size(), 1));
    {
      std::vector<std::jthread> threads;  // joined when the block ends, whatever happens
      for (size_t t = 1; t < n; ++t) {
        try {
          threads.emplace_back([this] { Work(); });
        } catch (const std::system_error&) {
          break;  // no thread to be had: the ones started (and this one) do the work
        }
      }
      Work();
    }
    return first_error_;
  }

  // The BlobUploadContext::backoff of the push: waits unless a blob failed.
  bool Backoff(std::chrono::milliseconds delay) {
    std::unique_lock lock(mu_);
    return !cv_.wait_for(lock, delay, [this] { return stop_; });
  }

 private:
  void Work() {
    while (true) {
      size_t i = 0;
      {
        std::lock_guard lock(mu_);
        if (stop_ || next_ >= blobs_.size()) return;
        i = next_++;
      }
      Status s = CatchExceptions(
          [&] { return uploader_->Push(blobs_[i], i == 0 ? first_present_ : std::nullopt); });
      if (!s.ok()) {
        std::lock_guard lock(mu_);
        if (first_error_.ok()) first_error_ = s;
        stop_ = true;
        cv_.notify_all();
        return;
      }
    }
  }

  const std::vector<images::Descriptor>& blobs_;
  const BlobUploader* uploader_ = nullptr;
  std::optional<bool> first_present_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  size_t next_ = 0;
  Status first_error_;
};

class RegistryDestination final : public images::ImageDestination {
 public:
  RegistryDestination(images::Reference ref, std::unique_ptr<RegistryClient> client,
                      RegistryOptions options)
      : ref_(std::move(ref)),
        client_(std::move(client)),
        options_(std::move(options)),
        scope_(RepositoryScope(ref_.path, "pull,push")) {}

  std::string Describe() const override { return "docker://" + ref_.String(); }

  std::string BlobOrigin() const override { return client_->host() + "/" + ref_.path; }

  Status PutImage(const images::ImageToWrite& image) override {
    // Everything that can be refused without the registry is refused before the first request.
    const Digest manifest_digest = Digest::Of(image.manifest.bytes);
    const std::string tag = ref_.tag      ? *ref_.tag
                            : ref_.digest ? ref_.digest->ToString()
                                          : std::string(images::kDefaultTag);
    const std::string what = "push manifest " + manifest_digest.ToString() + " to " +
                             client_->host() + "/" + ref_.path + (ref_.tag ? ":" : "@") + tag;
    if (ref_.digest && *ref_.digest != manifest_digest) {
      return Status(Code::kInvalidArgument, what + ": the destination names digest " +
                                                ref_.digest->ToString() +
                                                ", which is not the manifest's");
    }
    if (image.manifest.media_type.empty()) {
      return Status(Code::kInvalidArgument, what + ": the manifest has no media type");
    }
    if (!image.open_blob) return Status(Code::kInvalidArgument, what + ": no blob to read");

    std::vector<images::Descriptor> blobs;
    for (const images::Descriptor* d : Blobs(image.parsed)) {
      auto same = [d](const images::Descriptor& b) { return b.digest == d->digest; };
      if (std::none_of(blobs.begin(), blobs.end(), same)) blobs.push_back(*d);
    }
    IMGSTORE_RETURN_IF_ERROR(PushBlobs(image, blobs));
    return PutManifest(image, tag, manifest_digest, what);
  }

 private:
  static std::vector<const images::Descriptor*> Blobs(const images::ImageManifest& m) {
    std::vector<const images::Descriptor*> out = {&m.config};
    for (const images::Descriptor& l : m.layers) out.push_back(&l);
    return out;
  }

  Status PushBlobs(const images::ImageToWrite& image,
                   const std::vector<images::Descriptor>& blobs) {
    std::mutex progress_mu;
    BlobWorkers workers(blobs);
    BlobUploadContext c;
    c.client = client_.get();
    c.path = ref_.path;
    c.scope = scope_;
    c.image = &image;
    c.monolithic_upload_max = options_.monolithic_upload_max;
    c.retry = options_.retry;
    if (image.on_progress) {
      c.report = [&](const images::BlobProgress& p) {
        std::lock_guard lock(progress_mu);
        image.on_progress(p);
      };
    }
    c.backoff = [&workers](std::chrono::milliseconds d) { return workers.Backoff(d); };
    BlobUploader uploader(std::move(c));
    // The first request pings the registry and learns how it authenticates; made alone, before
    // the workers start, so that they all find that settled.
    Result<bool> first_present = uploader.Exists(blobs.front());
    if (!first_present.ok()) return first_present.status();
    return workers.Run(uploader, image.max_parallel, *first_present);
  }

  Status PutManifest(const images::ImageToWrite& image, const std::string& tag,
                     const Digest& digest, const std::string& what) {
    RegistryClient::Request r;
    r.method = "PUT";
    r.target = "/v2/" + ref_.path + "/manifests/" + tag;
    r.scope = scope_;
    r.headers = {"Content-Type: " + image.manifest.media_type};
    r.body = image.manifest.bytes;
    Result<std::unique_ptr<HttpStream>> s = client_->Send(r);
    if (!s.ok()) return s.status().WithContext(what);
    if ((*s)->response().status != 201) return ErrorFromAnswer(**s, what);
    Result<Digest> claimed = Digest::Parse((*s)->response().Header("docker-content-digest"));
    if (claimed.ok() && *claimed != digest) {
      return Status(Code::kCorruption, what + ": the registry answered Docker-Content-Digest " +
                                           claimed->ToString() + " for it");
    }
    return Status::OK();
  }

  images::Reference ref_;
  std::unique_ptr<RegistryClient> client_;
  RegistryOptions options_;
  std::string scope_;
};

}  // namespace

Result<std::unique_ptr<images::ImageDestination>> OpenRegistryDestination(
    const images::Reference& ref, const RegistryOptions& options) {
  images::Reference r = ref.digest ? ref : ref.WithDefaultTag();
  Result<std::unique_ptr<RegistryClient>> client = RegistryClient::Create(r, options);
  if (!client.ok()) return client.status();
  return std::unique_ptr<images::ImageDestination>(
      std::make_unique<RegistryDestination>(std::move(r), std::move(*client), options));
}

}  // namespace imgstore::registry
