// Helpers shared by the transport tests: an ImageToWrite built from a test image (with a
// counting, optionally corrupting blob opener), and a full read of an ImageSource into memory
// with every digest checked.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/test_image.h"
#include "images/manifest.h"
#include "images/transport.h"
#include "util/digest.h"
#include "util/env.h"

namespace imgstore::transports::testing {

// A SequentialFile over a string.
class StringFile : public SequentialFile {
 public:
  explicit StringFile(std::string data) : SequentialFile("<string>"), data_(std::move(data)) {}
  Result<size_t> Read(std::span<std::byte> buf) override {
    size_t n = std::min(buf.size(), data_.size() - pos_);
    std::memcpy(buf.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  Status Skip(uint64_t n) override {
    pos_ += std::min<uint64_t>(n, data_.size() - pos_);
    return Status::OK();
  }

 private:
  std::string data_;
  size_t pos_ = 0;
};

struct WriteSpy {
  int opened = 0;                              // open_blob calls
  std::map<std::string, std::string> replace;  // digest → bytes served instead (corruption)
};

// The image as a destination receives it from the store.
inline images::ImageToWrite ToWrite(const imgstore::testing::TestImage& im,
                                    std::shared_ptr<WriteSpy> spy = std::make_shared<WriteSpy>()) {
  images::ImageToWrite w;
  w.manifest = {im.manifest, im.manifest_media_type};
  Result<images::ImageManifest> parsed = images::ParseImageManifest(im.manifest);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  if (parsed.ok()) w.parsed = *parsed;
  w.config = im.config;
  w.diff_ids = im.diff_ids;
  std::map<std::string, std::string> blobs;
  for (const std::string& l : im.layers) blobs[Digest::Of(l).ToString()] = l;
  blobs[im.id.ToString()] = im.config;
  w.open_blob = [blobs,
                 spy](const images::Descriptor& d) -> Result<std::unique_ptr<SequentialFile>> {
    ++spy->opened;
    auto r = spy->replace.find(d.digest.ToString());
    if (r != spy->replace.end()) {
      return std::unique_ptr<SequentialFile>(std::make_unique<StringFile>(r->second));
    }
    auto it = blobs.find(d.digest.ToString());
    if (it == blobs.end()) return Status(Code::kNotFound, "no blob " + d.digest.ToString());
    return std::unique_ptr<SequentialFile>(std::make_unique<StringFile>(it->second));
  };
  return w;
}

inline Result<std::string> ReadToEnd(SequentialFile& f) {
  std::string out;
  std::vector<std::byte> buf(64 * 1024);
  while (true) {
    Result<size_t> n = f.Read(buf);
    if (!n.ok()) return n.status();
    if (*n == 0) return out;
    out.append(reinterpret_cast<const char*>(buf.data()), *n);
  }
}

// What an image source holds, read completely.
struct ReadImage {
  images::RawManifest manifest;  // the image manifest (after an index, if the top was one)
  std::string config;
  std::vector<std::string> layers;
};

// Reads the top manifest (following an index to the host platform's manifest), the config and
// every layer, checking each against its digest. Fails the test on any error.
inline ReadImage ReadAllOf(images::ImageSource& src) {
  ReadImage out;
  Result<images::RawManifest> top = src.GetManifest();
  EXPECT_TRUE(top.ok()) << top.status().ToString();
  if (!top.ok()) return out;
  Result<images::ParsedManifest> parsed = images::ParseManifest(top->bytes, top->media_type);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  if (!parsed.ok()) return out;
  out.manifest = *top;
  if (parsed->is_index()) {
    Result<images::Descriptor> d = images::SelectManifest(*parsed->index());
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    if (!d.ok()) return out;
    Result<images::RawManifest> m = src.GetManifest(*d);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    if (!m.ok()) return out;
    out.manifest = *m;
    parsed = images::ParseManifest(m->bytes, m->media_type);
    EXPECT_TRUE(parsed.ok());
    if (!parsed.ok() || parsed->manifest() == nullptr) return out;
  }
  const images::ImageManifest& m = *parsed->manifest();
  auto blob = [&](const images::Descriptor& d) -> std::string {
    Result<std::unique_ptr<SequentialFile>> f = src.GetBlob(d);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    if (!f.ok()) return "";
    Result<std::string> bytes = ReadToEnd(**f);
    EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
    if (!bytes.ok()) return "";
    EXPECT_EQ(Digest::Of(*bytes), d.digest);
    return *bytes;
  };
  out.config = blob(m.config);
  for (const images::Descriptor& l : m.layers) out.layers.push_back(blob(l));
  return out;
}

// The source holds exactly the test image: same manifest bytes (so the same digest), config
// and layers.
inline void ExpectSameImage(images::ImageSource& src, const imgstore::testing::TestImage& im) {
  ReadImage got = ReadAllOf(src);
  EXPECT_EQ(Digest::Of(got.manifest.bytes), im.manifest_digest);
  EXPECT_EQ(got.manifest.bytes, im.manifest);
  EXPECT_EQ(got.manifest.media_type, im.manifest_media_type);
  EXPECT_EQ(Digest::Of(got.config), im.id);
  EXPECT_EQ(got.layers, im.layers);
}

}  // namespace imgstore::transports::testing
