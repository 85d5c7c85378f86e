// In-memory ImageSource and ImageDestination for the store's pull and push tests: a source built
// from a testing::TestImage (optionally under an index), whose documents and blobs a test can
// swap for wrong bytes, and which counts what the store asked it for; a destination that keeps
// what it was given and can be made to fail.
#pragma once

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/test_image.h"
#include "images/transport.h"

namespace imgstore::store::testing {

// A SequentialFile over bytes held in memory.
class StringFile final : public SequentialFile {
 public:
  explicit StringFile(std::string bytes, std::string name = "memory")
      : SequentialFile(std::move(name)), bytes_(std::move(bytes)) {}
  Result<size_t> Read(std::span<std::byte> buf) override {
    size_t n = std::min(buf.size(), bytes_.size() - offset_);
    std::memcpy(buf.data(), bytes_.data() + offset_, n);
    offset_ += n;
    return n;
  }
  Status Skip(uint64_t n) override {
    offset_ = static_cast<size_t>(std::min<uint64_t>(bytes_.size(), offset_ + n));
    return Status::OK();
  }

 private:
  std::string bytes_;
  size_t offset_ = 0;
};

class FakeSource : public images::ImageSource {
 public:
  explicit FakeSource(std::string name = "fake:test") : name_(std::move(name)) {}

  // The image's config and layers become blobs and its manifest the top (or a child, with
  // AddIndex).
  void AddImage(const imgstore::testing::TestImage& image) {
    blobs[image.id.ToString()] = image.config;
    for (const std::string& l : image.layers) blobs[Digest::Of(l).ToString()] = l;
    manifests[image.manifest_digest.ToString()] = {image.manifest, image.manifest_media_type};
    top = {image.manifest, image.manifest_media_type};
  }
  // Adds a document that a descriptor can fetch, and returns its digest.
  Digest AddDocument(const std::string& bytes, const std::string& media_type) {
    Digest d = Digest::Of(bytes);
    manifests[d.ToString()] = {bytes, media_type};
    return d;
  }

  std::string Describe() const override { return name_; }
  Result<images::RawManifest> GetManifest() override {
    ++top_calls;
    if (!top_error.ok()) return top_error;
    return top;
  }
  Result<images::RawManifest> GetManifest(const images::Descriptor& d) override {
    auto it = manifests.find(d.digest.ToString());
    if (it == manifests.end()) {
      return Status(Code::kNotFound, name_ + ": manifest " + d.digest.ToString() + " not found");
    }
    return it->second;
  }
  Result<std::unique_ptr<SequentialFile>> GetBlob(const images::Descriptor& d) override {
    ++blob_opens[d.digest.ToString()];
    if (on_get_blob) on_get_blob(d);
    auto it = blobs.find(d.digest.ToString());
    if (it == blobs.end()) {
      return Status(Code::kNotFound, name_ + ": blob " + d.digest.ToString() + " not found");
    }
    return std::unique_ptr<SequentialFile>(std::make_unique<StringFile>(it->second));
  }
  std::vector<std::string> Names() const override { return names; }

  int opens(const Digest& d) const {
    auto it = blob_opens.find(d.ToString());
    return it == blob_opens.end() ? 0 : it->second;
  }
  int total_opens() const {
    int n = 0;
    for (const auto& [d, c] : blob_opens) n += c;
    return n;
  }

  images::RawManifest top;
  Status top_error;
  std::map<std::string, images::RawManifest> manifests;  // by digest text
  std::map<std::string, std::string> blobs;              // by digest text
  std::vector<std::string> names;
  std::map<std::string, int> blob_opens;
  int top_calls = 0;
  std::function<void(const images::Descriptor&)> on_get_blob;  // runs at each GetBlob

 private:
  std::string name_;
};

// An OCI index (JSON) listing `entries`: {digest, size, media type, "os/arch[/variant]"}.
struct IndexEntry {
  Digest digest;
  size_t size;
  std::string media_type;
  std::string platform;  // "" for none
};
inline std::string MakeIndex(
    const std::vector<IndexEntry>& entries,
    const std::string& media_type = "application/vnd.oci.image.index.v1+json") {
  std::string out = "{\"schemaVersion\":2,\"mediaType\":\"" + media_type + "\",\"manifests\":[";
  for (size_t i = 0; i < entries.size(); ++i) {
    const IndexEntry& e = entries[i];
    if (i > 0) out += ",";
    out += "{\"mediaType\":\"" + e.media_type + "\",\"digest\":\"" + e.digest.ToString() +
           "\",\"size\":" + std::to_string(e.size);
    if (!e.platform.empty()) {
      std::string p = e.platform;
      size_t a = p.find('/');
      size_t b = p.find('/', a + 1);
      out += ",\"platform\":{\"os\":\"" + p.substr(0, a) + "\",\"architecture\":\"" +
             p.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1) + "\"";
      if (b != std::string::npos) out += ",\"variant\":\"" + p.substr(b + 1) + "\"";
      out += "}";
    }
    out += "}";
  }
  return out + "]}";
}

class FakeDestination : public images::ImageDestination {
 public:
  std::string Describe() const override { return "fake-dest:test"; }
  Status PutImage(const images::ImageToWrite& image) override {
    ++calls;
    manifest = image.manifest;
    config = image.config;
    names = image.names;
    diff_ids = image.diff_ids;
    blobs.clear();
    for (const images::Descriptor& d : image.parsed.layers) {
      Result<std::unique_ptr<SequentialFile>> f = image.open_blob(d);
      if (!f.ok()) return f.status();
      std::string bytes;
      std::vector<std::byte> buf(4096);
      while (true) {
        Result<size_t> n = (*f)->Read(buf);
        if (!n.ok()) return n.status();
        if (*n == 0) break;
        bytes.append(reinterpret_cast<const char*>(buf.data()), *n);
      }
      blobs[d.digest.ToString()] = std::move(bytes);
      if (!fail_after_first_blob.ok()) return fail_after_first_blob;
    }
    if (probe) probe(image);
    return fail.ok() ? Status::OK() : fail;
  }

  int calls = 0;
  images::RawManifest manifest;
  std::string config;
  std::vector<std::string> names;
  std::vector<Digest> diff_ids;
  std::map<std::string, std::string> blobs;
  Status fail;                   // returned at the end when not OK
  Status fail_after_first_blob;  // returned after the first layer was read
  std::function<void(const images::ImageToWrite&)> probe;  // runs while the push is under way
};

}  // namespace imgstore::store::testing
