// Implementation of fuzz_util.h.
#include "fuzz/fuzz_util.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "images/manifest.h"

namespace imgstore::fuzz {
namespace {

// Owns the scratch directory; a static, so it is removed at a normal exit (a crash leaves it,
// which is why scripts/fuzz.sh points TMPDIR at a directory of its own).
struct Scratch {
  std::string path;
  Scratch() {
    const char* tmp = std::getenv("TMPDIR");
    path = std::string(tmp && *tmp ? tmp : "/tmp") + "/imgstore-fuzz-" + std::to_string(::getpid());
    (void)Env::Default()->RemoveTree(path);
    Status s = Env::Default()->CreateDirs(path);
    if (!s.ok()) {
      std::fprintf(stderr, "fuzz: cannot create %s: %s\n", path.c_str(), s.ToString().c_str());
      std::abort();
    }
  }
  ~Scratch() { (void)Env::Default()->RemoveTree(path); }
};

class MemoryRandomAccessFile : public RandomAccessFile {
 public:
  MemoryRandomAccessFile(std::string data, std::string path)
      : RandomAccessFile(std::move(path)), data_(std::move(data)) {}
  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> buf) const override {
    if (offset >= data_.size()) return size_t{0};
    size_t n = std::min<uint64_t>(buf.size(), data_.size() - offset);
    std::memcpy(buf.data(), data_.data() + offset, n);
    return n;
  }
  Result<uint64_t> Size() const override { return uint64_t{data_.size()}; }

 private:
  std::string data_;
};

// Bounds that keep one input cheap whatever it declares.
constexpr int kMaxDepth = 4;
constexpr size_t kMaxChildren = 8;
constexpr uint64_t kMaxBlobBytes = 64ull << 20;

void Drain(images::ImageSource& source, const images::Descriptor& d) {
  auto file = source.GetBlob(d);
  if (!file.ok()) return Note("blob", file.status());
  std::vector<std::byte> buf(64 << 10);
  uint64_t total = 0;
  while (total < kMaxBlobBytes) {
    auto n = (*file)->Read(buf);
    if (!n.ok()) return Note("read blob", n.status());
    if (*n == 0) return Note("blob read to its end " + d.digest.ToString(), Status::OK());
    total += *n;
  }
}

void Visit(images::ImageSource& source, const images::RawManifest& raw, int depth) {
  auto parsed = images::ParseManifest(raw.bytes, raw.media_type);
  if (!parsed.ok()) return Note("manifest", parsed.status());
  if (const images::ImageIndex* index = parsed->index()) {
    if (depth >= kMaxDepth) return;
    for (size_t i = 0; i < index->manifests.size() && i < kMaxChildren; ++i) {
      auto child = source.GetManifest(index->manifests[i]);
      if (!child.ok()) Note("child manifest", child.status());
      if (child.ok()) Visit(source, *child, depth + 1);
    }
    return;
  }
  const images::ImageManifest* m = parsed->manifest();
  Drain(source, m->config);
  for (const auto& layer : m->layers) Drain(source, layer);
}

}  // namespace

const std::string& ScratchDir() {
  static Scratch scratch;
  return scratch.path;
}

void WriteFileOrDie(const std::string& path, std::string_view data) {
  auto f = Env::Default()->NewWritableFile(path, {});
  Status s = f.ok() ? (*f)->Append(data) : f.status();
  if (s.ok()) s = (*f)->Close();
  if (!s.ok()) {
    std::fprintf(stderr, "fuzz: cannot write %s: %s\n", path.c_str(), s.ToString().c_str());
    std::abort();
  }
}

class InputSequentialFile final : public SequentialFile {
 public:
  InputSequentialFile(const uint8_t* data, size_t size, size_t max_read, std::string path)
      : SequentialFile(std::move(path)), data_(data), size_(size), max_read_(max_read) {}
  Result<size_t> Read(std::span<std::byte> buf) override {
    size_t n = std::min({buf.size(), size_ - pos_, max_read_});
    if (n > 0) std::memcpy(buf.data(), data_ + pos_, n);
    pos_ += n;
    return n;
  }
  Status Skip(uint64_t n) override {
    pos_ += static_cast<size_t>(std::min<uint64_t>(n, size_ - pos_));
    return Status::OK();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t max_read_;
  size_t pos_ = 0;
};

std::unique_ptr<SequentialFile> InputFile(const uint8_t* data, size_t size, size_t max_read,
                                          std::string path) {
  return std::make_unique<InputSequentialFile>(data, size, max_read, std::move(path));
}

std::shared_ptr<RandomAccessFile> MemoryFile(std::string_view data, std::string path) {
  return std::make_shared<MemoryRandomAccessFile>(std::string(data), std::move(path));
}

void DrainSource(images::ImageSource& source) {
  (void)source.Describe();
  (void)source.Names();
  auto top = source.GetManifest();
  if (!top.ok()) return Note("top manifest", top.status());
  Visit(source, *top, 0);
}

void Note(std::string_view what, const Status& status) {
  static const bool verbose = std::getenv("IMGSTORE_FUZZ_VERBOSE") != nullptr;
  if (!verbose) return;
  std::fprintf(stderr, "fuzz: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               status.ok() ? "OK" : status.ToString().c_str());
}

void Check(bool cond, std::string_view what) {
  if (cond) return;
  std::fprintf(stderr, "fuzz invariant broken: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

}  // namespace imgstore::fuzz
