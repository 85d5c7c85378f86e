// The `oci:` transport: an ImageSource over an OciLayoutReader (also used by `oci-archive:`)
// and an ImageDestination over an OciLayoutWriter.
#include "transports/oci_dir.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace imgstore::transports {
namespace {

using images::Descriptor;
using images::ImageToWrite;
using images::OciLayoutReader;
using images::OciLayoutWriter;
using images::RawManifest;

class OciLayoutSource : public images::ImageSource {
 public:
  OciLayoutSource(OciLayoutReader reader, std::string ref, std::string describe,
                  const images::ParseLimits& limits)
      : reader_(std::move(reader)),
        ref_(std::move(ref)),
        describe_(std::move(describe)),
        limits_(limits) {}

  std::string Describe() const override { return describe_; }

  Result<RawManifest> GetManifest() override {
    Result<images::OciLayoutImage> entry = reader_.FindImage(ref_);
    if (!entry.ok()) return entry.status().WithContext(describe_);
    return Read(entry->descriptor);
  }

  Result<RawManifest> GetManifest(const Descriptor& descriptor) override {
    return Read(descriptor);
  }

  Result<std::unique_ptr<SequentialFile>> GetBlob(const Descriptor& descriptor) override {
    Result<images::OciBlobReader> blob = reader_.OpenBlob(descriptor);
    if (!blob.ok()) return blob.status().WithContext(describe_);
    return std::unique_ptr<SequentialFile>(
        std::make_unique<VerifyingBlobFile>(std::move(blob).value()));
  }

 private:
  Result<RawManifest> Read(const Descriptor& d) {
    Result<std::string> bytes = reader_.ReadBlob(d, limits_.max_manifest_bytes);
    if (!bytes.ok()) {
      return images::NameLimit(bytes.status(), "max_manifest_bytes", limits_.max_manifest_bytes)
          .WithContext(describe_);
    }
    return RawManifest{std::move(bytes).value(), d.media_type};
  }

  OciLayoutReader reader_;
  std::string ref_;
  std::string describe_;
  images::ParseLimits limits_;
};

class OciDirDestination : public images::ImageDestination {
 public:
  OciDirDestination(Env* env, images::OciLayoutLocation loc)
      : env_(env), loc_(std::move(loc)), describe_(DescribeOci("oci", loc_)) {}

  std::string Describe() const override { return describe_; }

  Status PutImage(const ImageToWrite& image) override {
    Status st = Put(image);
    return st.ok() ? st : st.WithContext(describe_);
  }

 private:
  Status Put(const ImageToWrite& image) {
    Result<OciLayoutWriter> w = OciLayoutWriter::Open(env_, loc_.path);
    if (!w.ok()) return w.status();
    for (const Descriptor& layer : image.parsed.layers) {
      // A blob already in the layout is not even opened (opening may cost a download).
      if (layer.digest.IsSha256() && Present(layer)) continue;
      Result<std::unique_ptr<SequentialFile>> src = image.open_blob(layer);
      if (!src.ok()) return src.status();
      IMGSTORE_RETURN_IF_ERROR(w->PutBlobFrom(layer, src->get()));
    }
    IMGSTORE_RETURN_IF_ERROR(w->PutBlob(image.parsed.config.digest, image.config));
    const Digest manifest_digest = Digest::Of(image.manifest.bytes);
    IMGSTORE_RETURN_IF_ERROR(w->PutBlob(manifest_digest, image.manifest.bytes));
    // The index entry is written last: until then the layout's index is untouched.
    return w->AddImage(ManifestDescriptor(image), loc_.ref);
  }

  bool Present(const Descriptor& d) {
    Result<FileStat> st = env_->Stat(loc_.path + "/blobs/sha256/" + std::string(d.digest.hex()));
    return st.ok() && st->type == FileType::kRegular && st->size == static_cast<uint64_t>(d.size);
  }

  Env* env_;
  images::OciLayoutLocation loc_;
  std::string describe_;
};

}  // namespace

std::string DescribeOci(std::string_view transport, const images::OciLayoutLocation& loc) {
  return std::string(transport) + ":" + loc.path + (loc.ref.empty() ? "" : ":" + loc.ref);
}

Descriptor ManifestDescriptor(const ImageToWrite& image) {
  Descriptor d;
  d.media_type =
      image.manifest.media_type.empty() ? image.parsed.media_type : image.manifest.media_type;
  d.digest = Digest::Of(image.manifest.bytes);
  d.size = static_cast<int64_t>(image.manifest.bytes.size());
  return d;
}

VerifyingBlobFile::VerifyingBlobFile(images::OciBlobReader reader)
    : SequentialFile(reader.path()), reader_(std::move(reader)) {}

Result<size_t> VerifyingBlobFile::Read(std::span<std::byte> buf) { return reader_.Read(buf); }

Status VerifyingBlobFile::Skip(uint64_t n) {
  // Skipped bytes must still be hashed, or the end could not be verified.
  std::vector<std::byte> buf(static_cast<size_t>(std::min<uint64_t>(n, 1 << 20)));
  while (n > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(n, buf.size()));
    Result<size_t> got = reader_.Read(std::span(buf).first(want));
    if (!got.ok()) return got.status();
    if (*got == 0) return Status::OK();
    n -= *got;
  }
  return Status::OK();
}

std::unique_ptr<images::ImageSource> NewOciLayoutSource(images::OciLayoutReader reader,
                                                        std::string ref, std::string describe,
                                                        const images::ParseLimits& limits) {
  return std::make_unique<OciLayoutSource>(std::move(reader), std::move(ref), std::move(describe),
                                           limits);
}

Result<std::unique_ptr<images::ImageSource>> OpenOciDirSource(Env* env, std::string_view rest,
                                                              const images::ParseLimits& limits) {
  Result<images::OciLayoutLocation> loc =
      images::ParseOciLayoutLocation("oci:" + std::string(rest));
  if (!loc.ok()) return loc.status();
  const std::string describe = DescribeOci("oci", *loc);
  Result<OciLayoutReader> reader = OciLayoutReader::Open(env, loc->path, limits);
  if (!reader.ok()) return reader.status().WithContext(describe);
  return NewOciLayoutSource(std::move(reader).value(), loc->ref, describe, limits);
}

Result<std::unique_ptr<images::ImageDestination>> OpenOciDirDestination(Env* env,
                                                                        std::string_view rest) {
  Result<images::OciLayoutLocation> loc =
      images::ParseOciLayoutLocation("oci:" + std::string(rest));
  if (!loc.ok()) return loc.status();
  return std::unique_ptr<images::ImageDestination>(
      std::make_unique<OciDirDestination>(env, std::move(loc).value()));
}

}  // namespace imgstore::transports
