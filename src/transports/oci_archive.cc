// The `oci-archive:` transport (see oci_archive.h): the OCI layout logic of images/oci_layout
// run over a TarReader's members for reading, and a TarWriter for writing.
#include "transports/oci_archive.h"

#include <set>
#include <utility>

#include "images/oci_layout.h"
#include "transports/oci_dir.h"
#include "transports/tar_reader.h"
#include "transports/tar_writer.h"

namespace imgstore::transports {
namespace {

using images::Descriptor;
using images::ImageToWrite;

// The layout's files as members of the archive.
class TarLayoutFiles : public images::OciLayoutFiles {
 public:
  explicit TarLayoutFiles(TarReader tar) : tar_(std::move(tar)) {}

  const std::string& name() const override { return tar_.path(); }
  std::string Display(const std::string& rel) const override {
    return tar_.path() + "[" + rel + "]";
  }
  Result<std::string> ReadFile(const std::string& rel, uint64_t max_bytes) const override {
    Result<const TarMember*> m = Member(rel);
    if (!m.ok()) return m.status();
    if ((*m)->size > max_bytes) {
      return Status(Code::kCorruption, "read " + Display(rel) +
                                           ": file is larger than the limit of " +
                                           std::to_string(max_bytes) + " bytes");
    }
    return tar_.ReadAll(**m, max_bytes);
  }
  Result<FileStat> Stat(const std::string& rel) const override {
    Result<const TarMember*> m = Member(rel);
    if (!m.ok()) return m.status();
    FileStat st;
    st.type = FileType::kRegular;
    st.size = (*m)->size;
    st.mode = 0644;
    return st;
  }
  Result<std::unique_ptr<SequentialFile>> Open(const std::string& rel) const override {
    Result<const TarMember*> m = Member(rel);
    if (!m.ok()) return m.status();
    return tar_.Open(**m);
  }

 private:
  // Only regular members (or hardlinks to them) are layout files: a symlink is never followed.
  Result<const TarMember*> Member(const std::string& rel) const {
    const TarMember* m = tar_.Find(rel);
    if (m == nullptr) {
      return Status(Code::kNotFound, Display(rel) + ": no such regular file in the archive");
    }
    return m;
  }

  TarReader tar_;
};

class OciArchiveDestination : public images::ImageDestination {
 public:
  OciArchiveDestination(Env* env, images::OciLayoutLocation loc)
      : env_(env), loc_(std::move(loc)), describe_(DescribeOci("oci-archive", loc_)) {}

  std::string Describe() const override { return describe_; }

  Status PutImage(const ImageToWrite& image) override {
    Status st = Put(image);
    return st.ok() ? st : st.WithContext(describe_);
  }

 private:
  Status Put(const ImageToWrite& image) {
    const Descriptor manifest = ManifestDescriptor(image);
    Result<std::string> index = images::AddToOciIndex("", manifest, loc_.ref);
    if (!index.ok()) return index.status();
    if (Digest::Of(image.config) != image.parsed.config.digest) {
      return Status(Code::kCorruption, "config bytes do not match the manifest's config digest " +
                                           image.parsed.config.digest.ToString());
    }
    Result<TarWriter> w = TarWriter::Create(env_, loc_.path);
    if (!w.ok()) return w.status();
    // Metadata first, so that a streaming reader meets it before the blobs.
    IMGSTORE_RETURN_IF_ERROR(
        w->AddFile("oci-layout",
                   "{\"imageLayoutVersion\":\"" + std::string(images::kOciLayoutVersion) + "\"}"));
    IMGSTORE_RETURN_IF_ERROR(w->AddFile("index.json", *index));
    IMGSTORE_RETURN_IF_ERROR(w->AddDirectory("blobs"));
    IMGSTORE_RETURN_IF_ERROR(w->AddDirectory("blobs/sha256"));
    std::set<std::string> written;  // a blob listed twice is stored once (names must be unique)
    for (const Descriptor& layer : image.parsed.layers) {
      if (!layer.digest.IsSha256()) {
        return Status(Code::kUnsupported,
                      "blob " + layer.digest.ToString() + ": only sha256 blobs can be written");
      }
      if (!written.insert(layer.digest.ToString()).second) continue;
      Result<std::unique_ptr<SequentialFile>> src = image.open_blob(layer);
      if (!src.ok()) return src.status();
      VerifyingBlobFile verified(images::OciBlobReader(std::move(src).value(), layer));
      IMGSTORE_RETURN_IF_ERROR(
          w->AddFile(BlobName(layer.digest), static_cast<uint64_t>(layer.size), verified));
    }
    for (const auto& [digest, bytes] :
         {std::pair{image.parsed.config.digest, std::string_view(image.config)},
          std::pair{manifest.digest, std::string_view(image.manifest.bytes)}}) {
      if (!digest.IsSha256()) {
        return Status(Code::kUnsupported,
                      "blob " + digest.ToString() + ": only sha256 blobs can be written");
      }
      if (!written.insert(digest.ToString()).second) continue;
      IMGSTORE_RETURN_IF_ERROR(w->AddFile(BlobName(digest), bytes));
    }
    return w->Commit();
  }

  static std::string BlobName(const Digest& d) {
    return "blobs/" + std::string(d.algorithm()) + "/" + std::string(d.hex());
  }

  Env* env_;
  images::OciLayoutLocation loc_;
  std::string describe_;
};

}  // namespace

Result<std::unique_ptr<images::ImageSource>> OpenOciArchiveSource(Env* env, std::string_view rest,
                                                                  const images::ParseLimits& limits,
                                                                  const TarLimits& tar_limits) {
  Result<images::OciLayoutLocation> loc =
      images::ParseOciLayoutLocation("oci:" + std::string(rest));
  if (!loc.ok()) return loc.status();
  const std::string describe = DescribeOci("oci-archive", *loc);
  TarArchiveOptions tar_options;
  tar_options.limits = tar_limits;
  Result<TarReader> tar = OpenTarArchive(env, loc->path, tar_options);
  if (!tar.ok()) return tar.status().WithContext(describe);
  Result<images::OciLayoutReader> reader = images::OciLayoutReader::Open(
      std::make_shared<TarLayoutFiles>(std::move(tar).value()), limits);
  if (!reader.ok()) return reader.status().WithContext(describe);
  return NewOciLayoutSource(std::move(reader).value(), loc->ref, describe, limits);
}

Result<std::unique_ptr<images::ImageDestination>> OpenOciArchiveDestination(Env* env,
                                                                            std::string_view rest) {
  Result<images::OciLayoutLocation> loc =
      images::ParseOciLayoutLocation("oci:" + std::string(rest));
  if (!loc.ok()) return loc.status();
  return std::unique_ptr<images::ImageDestination>(
      std::make_unique<OciArchiveDestination>(env, std::move(loc).value()));
}

}  // namespace imgstore::transports
