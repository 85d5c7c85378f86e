// RegistrySource (see registry_source.h): manifests and blobs over the distribution API, with
// blob transfers resumed by Range after a broken connection.
#include "registry/registry_source.h"

#include <algorithm>

#include "images/media_types.h"
#include "registry/registry_client.h"

namespace imgstore::registry {

const char* const kManifestAccept =
    "Accept: application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

namespace {

// Blob redirects go to storage (S3, a CDN); more hops than this is a loop.
constexpr int kMaxBlobRedirects = 5;

// "application/json; charset=utf-8" → "application/json".
std::string BareMediaType(std::string_view content_type) {
  size_t semi = content_type.find(';');
  std::string_view t = content_type.substr(0, semi);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  std::string out(t);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// A blob body as a SequentialFile that ends at the descriptor's size, and that resumes a broken
// transfer where it stopped (GET with Range) instead of failing the pull: a multi-gigabyte layer
// over a flaky link would otherwise never arrive. It may also start past the first byte, where
// an earlier pull's download stopped. Read by one thread; the client is shared.
class BlobFile final : public SequentialFile {
 public:
  // what: "blob HOST/NAME@DIGEST", for messages; target: "/v2/NAME/blobs/DIGEST". Nothing is
  // asked until Open.
  BlobFile(std::string what, RegistryClient* client, std::string target, std::string scope,
           uint64_t size, uint64_t offset)
      : SequentialFile("docker://" + what.substr(5)),
        what_(std::move(what)),
        client_(client),
        target_(std::move(target)),
        scope_(std::move(scope)),
        size_(size),
        left_(size - std::min(offset, size)) {}

  // Asks for the blob from the offset given to the constructor (with Range past the first byte).
  Status Open() { return SendFrom("starting at byte"); }

  Result<size_t> Read(std::span<std::byte> buf) override {
    size_t filled = 0;
    // Fill buf (the contract: fewer bytes only at the end), but never past the declared size:
    // a registry that sends more cannot make the store read it.
    while (filled < buf.size() && left_ > 0) {
      // What arrived before the transfer broke for good is delivered first (the store keeps it
      // for the next pull to resume from); the error comes with the next call.
      if (!broken_.ok()) return filled > 0 ? Result<size_t>(filled) : broken_;
      if (discard_ > 0) {
        IMGSTORE_RETURN_IF_ERROR(Discard());
        continue;
      }
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size() - filled, left_));
      Result<size_t> n = stream_->Read(buf.subspan(filled, want));
      if (!n.ok()) {
        if (n.status().code() != Code::kUnavailable) return n.status().WithContext(path());
        broken_ = Resume(n.status());
        continue;
      }
      if (*n == 0) break;
      filled += *n;
      left_ -= *n;
    }
    return filled;
  }

  Status Skip(uint64_t n) override {
    std::byte scratch[16384];
    while (n > 0) {
      Result<size_t> r = Read(std::span<std::byte>(scratch, std::min<uint64_t>(n, sizeof scratch)));
      if (!r.ok()) return r.status();
      if (*r == 0) return Status::OK();
      n -= *r;
    }
    return Status::OK();
  }

 private:
  // Reads and drops the bytes that a registry ignoring Range sent again.
  Status Discard() {
    std::byte scratch[16384];
    Result<size_t> n =
        stream_->Read(std::span<std::byte>(scratch, std::min<uint64_t>(discard_, sizeof scratch)));
    if (!n.ok()) {
      if (n.status().code() != Code::kUnavailable) return n.status().WithContext(path());
      broken_ = Resume(n.status());
      return broken_;
    }
    if (*n == 0) {
      return Status(Code::kCorruption, what_ + ": the registry's answer to a resumed GET ended " +
                                           std::to_string(discard_) +
                                           " bytes before the point of resumption");
    }
    discard_ -= *n;
    return Status::OK();
  }

  // Asks again for the rest of the blob after `cause` broke the transfer. A resumption makes
  // progress instead of repeating it, so each blob gets retry().max_attempts of them.
  Status Resume(const Status& cause) {
    const uint64_t got = size_ - left_;
    if (resumes_ >= client_->retry().max_attempts) {
      return Status(Code::kUnavailable, what_ + ": the transfer broke " +
                                            std::to_string(resumes_ + 1) + " times (at byte " +
                                            std::to_string(got) + " of " + std::to_string(size_) +
                                            "): " + cause.message());
    }
    ++resumes_;
    return SendFrom("resuming at byte");
  }

  // GET of the blob from the first byte not yet read (Range past the first byte); a registry
  // that ignores Range sends it all, and the bytes before are dropped as they come.
  Status SendFrom(const char* doing) {
    const uint64_t got = size_ - left_;
    stream_.reset();
    discard_ = 0;
    const std::string at = got == 0 ? what_ : what_ + ": " + doing + " " + std::to_string(got);
    RegistryClient::Request r;
    r.target = target_;
    r.scope = scope_;
    if (got > 0) r.headers = {"Range: bytes=" + std::to_string(got) + "-"};
    r.max_redirects = kMaxBlobRedirects;
    Result<std::unique_ptr<HttpStream>> s = client_->Send(r);
    if (!s.ok()) return s.status().WithContext(at);
    const int status = (*s)->response().status;
    if (got > 0 && (status == 416 || status == 400)) {
      // A server that cannot serve ranges: 416 (Range Not Satisfiable) for bytes the blob has,
      // or 400 from a proxy or object store that rejects the header. Ask for the whole blob
      // rather than fail this and every later pull (which resume from the kept bytes) at the
      // same byte; a 400 for another reason comes again and is reported then.
      r.headers.clear();
      s = client_->Send(r);
      if (!s.ok()) return s.status().WithContext(at);
    }
    const HttpResponse& response = (*s)->response();
    if (response.status == 200) {
      // The registry (or the storage behind a redirect) ignored Range: the whole blob again.
      discard_ = got;
    } else if (response.status == 206) {
      const std::string value = response.Header("content-range");
      std::optional<ContentRange> range = ParseContentRange(value);
      if (!range || range->first != got || (range->total && *range->total != size_)) {
        return Status(Code::kCorruption,
                      at + ": the registry answered HTTP 206 with Content-Range \"" + value +
                          "\", not bytes " + std::to_string(got) + "-.../" + std::to_string(size_));
      }
    } else {
      return ErrorFromAnswer(**s, at);
    }
    stream_ = std::move(*s);
    return Status::OK();
  }

  const std::string what_;
  RegistryClient* const client_;
  const std::string target_;
  const std::string scope_;
  std::unique_ptr<HttpStream> stream_;
  const uint64_t size_;
  uint64_t left_;
  uint64_t discard_ = 0;  // bytes of stream_ to drop before the next byte of the blob
  int resumes_ = 0;
  Status broken_;  // why stream_ is gone: a resumption that failed is the file's last word
};

class RegistrySource final : public images::ImageSource {
 public:
  RegistrySource(images::Reference ref, std::unique_ptr<RegistryClient> client,
                 images::ParseLimits limits)
      : ref_(std::move(ref)),
        client_(std::move(client)),
        limits_(limits),
        scope_(RepositoryScope(ref_.path, "pull")) {}

  std::string Describe() const override { return "docker://" + ref_.String(); }

  Result<images::RawManifest> GetManifest() override {
    std::string what = "manifest " + ref_.String();
    if (ref_.digest) return Fetch(ref_.digest->ToString(), &*ref_.digest, what);
    return Fetch(*ref_.tag, nullptr, what);
  }

  Result<images::RawManifest> GetManifest(const images::Descriptor& descriptor) override {
    return Fetch(descriptor.digest.ToString(), &descriptor.digest,
                 "manifest " + ref_.Repository() + "@" + descriptor.digest.ToString());
  }

  Result<std::unique_ptr<SequentialFile>> GetBlob(const images::Descriptor& d) override {
    return GetBlobFrom(d, 0);
  }

  bool ResumableBlobs() const override { return true; }

  Result<std::unique_ptr<SequentialFile>> GetBlobFrom(const images::Descriptor& d,
                                                      uint64_t offset) override {
    auto file = std::make_unique<BlobFile>(
        "blob " + ref_.Repository() + "@" + d.digest.ToString(), client_.get(),
        "/v2/" + ref_.path + "/blobs/" + d.digest.ToString(), scope_,
        static_cast<uint64_t>(std::max<int64_t>(d.size, 0)), offset);
    IMGSTORE_RETURN_IF_ERROR(file->Open());
    return std::unique_ptr<SequentialFile>(std::move(file));
  }

  // The client is thread-safe and the rest of this object is read-only after construction.
  bool ConcurrentBlobs() const override { return true; }

  std::string BlobOrigin() const override { return client_->host() + "/" + ref_.path; }

  std::vector<std::string> Names() const override {
    // A tag names the image, as `docker pull` does; a bare digest names nothing.
    if (!ref_.tag) return {};
    return {ref_.Repository() + ":" + *ref_.tag};
  }

 private:
  // GET /v2/NAME/manifests/TAG_OR_DIGEST, bounded, and checked against `want` when given.
  Result<images::RawManifest> Fetch(const std::string& tag_or_digest, const Digest* want,
                                    const std::string& what) {
    if (want != nullptr && !want->IsSha256()) {
      return Status(Code::kUnsupported, what + ": only sha256 digests can be verified");
    }
    Result<std::unique_ptr<HttpStream>> s = client_->Send(
        "GET", "/v2/" + ref_.path + "/manifests/" + tag_or_digest, scope_, {kManifestAccept});
    if (!s.ok()) return s.status().WithContext(what);
    if ((*s)->response().status != 200) return ErrorFromAnswer(**s, what);
    std::string type = BareMediaType((*s)->response().Header("content-type"));
    if (type == "application/vnd.docker.distribution.manifest.v1+json" ||
        type == "application/vnd.docker.distribution.manifest.v1+prettyjws") {
      return Status(Code::kUnsupported,
                    what + ": Docker schema 1 manifests are not supported (" + type + ")");
    }
    Result<std::string> body = (*s)->ReadAll(limits_.max_manifest_bytes);
    if (!body.ok()) {
      return images::NameLimit(body.status(), "max_manifest_bytes", limits_.max_manifest_bytes)
          .WithContext(what);
    }
    Digest actual = Digest::Of(*body);
    if (want != nullptr && actual != *want) {
      return Status(Code::kCorruption, what + ": the registry sent a manifest whose digest is " +
                                           actual.ToString() + ", not the one asked for");
    }
    // The registry's own word on the digest must agree with the bytes it sent.
    Result<Digest> claimed = Digest::Parse((*s)->response().Header("docker-content-digest"));
    if (claimed.ok() && claimed->IsSha256() && *claimed != actual) {
      return Status(Code::kCorruption, what + ": Docker-Content-Digest " + claimed->ToString() +
                                           " does not match the manifest received (" +
                                           actual.ToString() + ")");
    }
    return images::RawManifest{std::move(*body), type};
  }

  images::Reference ref_;
  std::unique_ptr<RegistryClient> client_;
  images::ParseLimits limits_;
  std::string scope_;
};

}  // namespace

Result<std::unique_ptr<images::ImageSource>> OpenRegistrySource(const images::Reference& ref,
                                                                const RegistryOptions& options,
                                                                const images::ParseLimits& limits) {
  images::Reference r = ref.digest ? ref : ref.WithDefaultTag();
  Result<std::unique_ptr<RegistryClient>> client = RegistryClient::Create(r, options);
  if (!client.ok()) return client.status();
  return std::unique_ptr<images::ImageSource>(
      std::make_unique<RegistrySource>(std::move(r), std::move(*client), limits));
}

}  // namespace imgstore::registry
