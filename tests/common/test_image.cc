// Test images: real tars made with libarchive (a reader/writer here only builds test input).
#include "common/test_image.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <random>
#include <stdexcept>

#include "images/manifest.h"
#include "images/oci_layout.h"
#include "util/env.h"

namespace imgstore::testing {
namespace {

std::string RandomContent(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

// Runs a libarchive writer into a growing string.
struct MemoryWriter {
  std::string out;
  static la_ssize_t Write(struct archive*, void* self, const void* buf, size_t n) {
    static_cast<MemoryWriter*>(self)->out.append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
};

void Check(int rc, struct archive* a) {
  if (rc != ARCHIVE_OK) throw std::runtime_error(archive_error_string(a));
}

std::string MakeTar(const std::string& name, const std::string& content) {
  struct archive* a = archive_write_new();
  MemoryWriter w;
  Check(archive_write_set_format_pax_restricted(a), a);
  Check(archive_write_set_bytes_in_last_block(a, 1), a);
  Check(archive_write_open(a, &w, nullptr, &MemoryWriter::Write, nullptr), a);
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
  archive_entry_set_mtime(e, 1700000000, 0);
  Check(archive_write_header(a, e), a);
  archive_write_data(a, content.data(), content.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return w.out;
}

std::string DescriptorJson(const std::string& media_type, const std::string& bytes) {
  return R"({"mediaType":")" + media_type + R"(","digest":")" + Digest::Of(bytes).ToString() +
         R"(","size":)" + std::to_string(bytes.size()) + "}";
}

}  // namespace

std::string Compress(const std::string& bytes, LayerCompression compression) {
  if (compression == LayerCompression::kNone) return bytes;
  struct archive* a = archive_write_new();
  MemoryWriter w;
  Check(archive_write_set_format_raw(a), a);
  Check(compression == LayerCompression::kGzip ? archive_write_add_filter_gzip(a)
                                               : archive_write_add_filter_zstd(a),
        a);
  // libarchive's gzip header carries the current time by default: two images made from one
  // seed a second apart would get different layer digests.
  if (compression == LayerCompression::kGzip) {
    Check(archive_write_set_filter_option(a, "gzip", "timestamp", nullptr), a);
  }
  Check(archive_write_set_bytes_in_last_block(a, 1), a);
  Check(archive_write_open(a, &w, nullptr, &MemoryWriter::Write, nullptr), a);
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_filetype(e, AE_IFREG);
  Check(archive_write_header(a, e), a);
  archive_write_data(a, bytes.data(), bytes.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return w.out;
}

TestImage ImageFromTars(std::vector<std::string> tars, LayerCompression compression,
                        bool docker_media_types, const std::string& config_head) {
  TestImage img;
  const bool docker = docker_media_types;
  std::string layer_type;
  switch (compression) {
    case LayerCompression::kNone:
      layer_type = docker ? "application/vnd.docker.image.rootfs.diff.tar"
                          : "application/vnd.oci.image.layer.v1.tar";
      break;
    case LayerCompression::kGzip:
      layer_type = docker ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
                          : "application/vnd.oci.image.layer.v1.tar+gzip";
      break;
    case LayerCompression::kZstd:
      layer_type = "application/vnd.oci.image.layer.v1.tar+zstd";
      break;
  }
  std::string diff_ids;
  for (std::string& tar : tars) {
    img.diff_ids.push_back(Digest::Of(tar));
    img.layers.push_back(Compress(tar, compression));
    img.tars.push_back(std::move(tar));
    img.layer_media_types.push_back(layer_type);
    diff_ids += (diff_ids.empty() ? "\"" : ",\"") + img.diff_ids.back().ToString() + "\"";
  }
  img.config = "{" + config_head + R"("rootfs":{"type":"layers","diff_ids":[)" + diff_ids + "]}}";
  img.config_media_type = docker ? "application/vnd.docker.container.image.v1+json"
                                 : "application/vnd.oci.image.config.v1+json";
  img.manifest_media_type = docker ? "application/vnd.docker.distribution.manifest.v2+json"
                                   : "application/vnd.oci.image.manifest.v1+json";
  img.manifest = R"({"schemaVersion":2,"mediaType":")" + img.manifest_media_type +
                 R"(","config":)" + DescriptorJson(img.config_media_type, img.config) +
                 R"(,"layers":[)";
  for (size_t i = 0; i < img.layers.size(); ++i) {
    img.manifest += (i ? "," : "") + DescriptorJson(layer_type, img.layers[i]);
  }
  img.manifest += "]}";
  img.id = Digest::Of(img.config);
  img.manifest_digest = Digest::Of(img.manifest);
  return img;
}

TestImage MakeTestImage(const TestImageSpec& spec) {
  std::vector<std::string> tars;
  for (int i = 0; i < spec.layers; ++i) {
    tars.push_back(MakeTar("file-" + std::to_string(i),
                           RandomContent(spec.layer_bytes, spec.seed * 1000 + i)));
  }
  const std::string head =
      R"("architecture":")" + spec.architecture + R"(","os":")" + spec.os + "\"," +
      (spec.created.empty() ? std::string() : "\"created\":\"" + spec.created + "\",") +
      R"("config":{"Labels":{"seed":")" + std::to_string(spec.seed) + R"("}},)";
  return ImageFromTars(std::move(tars), spec.compression, spec.docker_media_types, head);
}

void WriteOciLayout(const TestImage& image, const std::string& dir, const std::string& ref) {
  Result<images::OciLayoutWriter> w = images::OciLayoutWriter::Open(Env::Default(), dir);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  for (const std::string& layer : image.layers) {
    ASSERT_TRUE(w->PutBlob(Digest::Of(layer), layer).ok());
  }
  ASSERT_TRUE(w->PutBlob(image.id, image.config).ok());
  ASSERT_TRUE(w->PutBlob(image.manifest_digest, image.manifest).ok());
  images::Descriptor d;
  d.media_type = image.manifest_media_type;
  d.digest = image.manifest_digest;
  d.size = static_cast<int64_t>(image.manifest.size());
  Status s = w->AddImage(d, ref);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

}  // namespace imgstore::testing
