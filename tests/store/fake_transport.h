// In-memory ImageSource and ImageDestination for the store's pull and push tests: a source built
// from a testing::TestImage (optionally under an index), whose documents and blobs a test can
// swap for wrong bytes, and which counts what the store asked it for (also how many blobs were
// open at once, when it says it serves blobs concurrently); a destination that keeps what it was
// given (origins, parallelism), can read the layers from several threads, and can be made to
// fail.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
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

// How many blobs are open at once (opened by GetBlob, not yet destroyed), the most seen, and a
// wait for a number of them with a deadline (no sleeps).
class OpenGauge {
 public:
  void Enter() {
    std::lock_guard lock(mu_);
    peak_ = std::max(peak_, ++now_);
    cv_.notify_all();
  }
  void Leave() {
    std::lock_guard lock(mu_);
    --now_;
    cv_.notify_all();
  }
  // True once `n` are open at the same time; false if that does not happen before `timeout`.
  bool WaitFor(int n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return peak_ >= n; });
  }
  int now() const {
    std::lock_guard lock(mu_);
    return now_;
  }
  int peak() const {
    std::lock_guard lock(mu_);
    return peak_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int now_ = 0;
  int peak_ = 0;
};

// A StringFile that counts as open in its gauge until it is destroyed.
class GaugedFile final : public SequentialFile {
 public:
  GaugedFile(std::string bytes, OpenGauge* gauge)
      : SequentialFile("memory"), file_(std::move(bytes)), gauge_(gauge) {}
  ~GaugedFile() override { gauge_->Leave(); }
  Result<size_t> Read(std::span<std::byte> buf) override { return file_.Read(buf); }
  Status Skip(uint64_t n) override { return file_.Skip(n); }

 private:
  StringFile file_;
  OpenGauge* gauge_;
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
    if (on_get_manifest) on_get_manifest();
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
  // Called by several threads at once when `concurrent` is set.
  Result<std::unique_ptr<SequentialFile>> GetBlob(const images::Descriptor& d) override {
    {
      std::lock_guard lock(mu_);
      ++blob_opens[d.digest.ToString()];
    }
    gauge.Enter();  // before on_get_blob, which may wait for others to be open
    if (on_get_blob) on_get_blob(d);
    auto it = blobs.find(d.digest.ToString());
    if (it == blobs.end()) {
      gauge.Leave();
      return Status(Code::kNotFound, name_ + ": blob " + d.digest.ToString() + " not found");
    }
    return std::unique_ptr<SequentialFile>(std::make_unique<GaugedFile>(it->second, &gauge));
  }
  std::vector<std::string> Names() const override { return names; }
  std::string BlobOrigin() const override { return origin; }
  bool ConcurrentBlobs() const override { return concurrent; }

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
  std::function<void()> on_get_manifest;                       // runs at each GetManifest()
  std::string origin;                                          // BlobOrigin()
  bool concurrent = false;                                     // ConcurrentBlobs()
  OpenGauge gauge;  // blobs open now (files not yet destroyed), and the most at once

 private:
  std::mutex mu_;  // blob_opens, while blobs are fetched in parallel
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
  std::string BlobOrigin() const override { return origin; }
  Status PutImage(const images::ImageToWrite& image) override {
    ++calls;
    manifest = image.manifest;
    config = image.config;
    names = image.names;
    diff_ids = image.diff_ids;
    origins = image.origins;
    max_parallel = image.max_parallel;
    blobs.clear();
    if (report_config_skipped && image.on_progress) {
      images::BlobProgress p;
      p.digest = image.parsed.config.digest;
      p.done = p.total = static_cast<uint64_t>(image.parsed.config.size);
      p.skipped = true;
      image.on_progress(p);
    }
    if (parallel_reads) {
      // Every layer on its own thread at once: open_blob and the progress it reports must cope.
      std::vector<Result<std::string>> read(image.parsed.layers.size(), std::string());
      {
        std::vector<std::jthread> threads;
        for (size_t i = 0; i < image.parsed.layers.size(); ++i) {
          threads.emplace_back([&, i] { read[i] = ReadBlob(image, image.parsed.layers[i]); });
        }
      }
      for (size_t i = 0; i < read.size(); ++i) {
        if (!read[i].ok()) return read[i].status();
        blobs[image.parsed.layers[i].digest.ToString()] = std::move(*read[i]);
      }
    } else {
      for (const images::Descriptor& d : image.parsed.layers) {
        Result<std::string> bytes = ReadBlob(image, d);
        if (!bytes.ok()) return bytes.status();
        blobs[d.digest.ToString()] = std::move(*bytes);
        if (!fail_after_first_blob.ok()) return fail_after_first_blob;
      }
    }
    if (probe) probe(image);
    return fail.ok() ? Status::OK() : fail;
  }

  static Result<std::string> ReadBlob(const images::ImageToWrite& image,
                                      const images::Descriptor& d) {
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
    return bytes;
  }

  int calls = 0;
  images::RawManifest manifest;
  std::string config;
  std::vector<std::string> names;
  std::vector<Digest> diff_ids;
  std::map<std::string, std::string> blobs;
  std::map<Digest, std::vector<std::string>> origins;  // ImageToWrite::origins
  int max_parallel = 0;                                // ImageToWrite::max_parallel
  std::string origin;                                  // BlobOrigin()
  bool parallel_reads = false;         // read the layers from one thread each, at once
  bool report_config_skipped = false;  // tell on_progress the config was skipped
  Status fail;                         // returned at the end when not OK
  Status fail_after_first_blob;        // returned after the first layer was read
  std::function<void(const images::ImageToWrite&)> probe;  // runs while the push is under way
};

}  // namespace imgstore::store::testing
