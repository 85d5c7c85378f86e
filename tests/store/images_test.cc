// Tests of image records and names (store.h "Images and names"): AddImage with tiny real images
// built here (arbitrary bytes as layer blobs, a config whose diff_ids are computed), ListImages,
// InspectImage, ResolveImage by name, id, prefix and digest, Tag/Untag/Remove, and refusals that
// must leave the store unchanged.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/temp_dir.h"
#include "store/images_internal.h"
#include "store/store.h"
#include "store_test_util.h"

namespace imgstore::store {
namespace {

using testing::ExpectConsistent;
using testing::OpenStore;
using testing::RandomBytes;
using testing::TempDir;

constexpr char kGzipLayer[] = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";

struct TestImage {
  std::vector<std::string> layers;  // the "compressed" blobs
  std::vector<Digest> diff_ids;
  std::string config;
  std::string manifest;
  Digest id;
  Digest manifest_digest;
};

std::string Descriptor(std::string_view media_type, const std::string& bytes) {
  return std::string(R"({"mediaType":")") + std::string(media_type) + R"(","digest":")" +
         Digest::Of(bytes).ToString() + R"(","size":)" + std::to_string(bytes.size()) + "}";
}

// An image of n layers; `tag` varies the config (and so the id) without changing the layers.
TestImage MakeImage(uint32_t seed, int n, const std::string& created = "2024-01-02T03:04:05Z",
                    const std::string& tag = "") {
  TestImage img;
  std::string diff_ids;
  for (int i = 0; i < n; ++i) {
    img.layers.push_back(RandomBytes(100 + i, seed * 100 + i));
    img.diff_ids.push_back(Digest::Of("uncompressed " + img.layers.back()));
    diff_ids += (i ? "," : "") + ("\"" + img.diff_ids.back().ToString() + "\"");
  }
  img.config = R"({"architecture":"amd64","os":"linux",)" +
               (created.empty() ? std::string() : "\"created\":\"" + created + "\",") +
               R"("config":{"Labels":{"t":")" + tag +
               R"("}},"rootfs":{"type":"layers","diff_ids":[)" + diff_ids + "]}}";
  img.manifest =
      R"({"schemaVersion":2,"mediaType":")" + std::string(kOciManifest) + R"(","config":)" +
      Descriptor("application/vnd.oci.image.config.v1+json", img.config) + R"(,"layers":[)";
  for (int i = 0; i < n; ++i) {
    img.manifest += (i ? "," : "") + Descriptor(kGzipLayer, img.layers[i]);
  }
  img.manifest += "]}";
  img.id = Digest::Of(img.config);
  img.manifest_digest = Digest::Of(img.manifest);
  return img;
}

// Ingests the image's config and, unless `layers` is false, its layers.
void IngestParts(Store& store, const TestImage& img, bool layers = true) {
  testing::IngestImageBlobs(store, img.config, layers ? img.layers : std::vector<std::string>{});
}

Result<AddImageResult> Add(Store& store, const TestImage& img,
                           std::vector<std::string> names = {}) {
  return store.AddImage(img.manifest, kOciManifest, img.config, names);
}

std::vector<std::string> NamesOf(Store& store, const Digest& id) {
  Result<ImageDetails> d = store.InspectImage(id.ToString());
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? d->summary.names : std::vector<std::string>{};
}

size_t ImageCount(Store& store) {
  Result<std::vector<ImageSummary>> list = store.ListImages();
  EXPECT_TRUE(list.ok()) << list.status().ToString();
  return list.ok() ? list->size() : 0;
}

// Each test starts with a fresh store (store_).
using ImagesTest = testing::StoreTest;

TEST_F(ImagesTest, ChainIdsFollowTheOciRule) {
  Digest a = Digest::Of("a"), b = Digest::Of("b"), c = Digest::Of("c");
  std::vector<Digest> in = {a, b, c};
  std::vector<Digest> chain = ChainIds(in);
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[0], a);
  Digest ab = Digest::Of(a.ToString() + " " + b.ToString());
  EXPECT_EQ(chain[1], ab);
  EXPECT_EQ(chain[2], Digest::Of(ab.ToString() + " " + c.ToString()));
  EXPECT_TRUE(ChainIds({}).empty());
}

TEST_F(ImagesTest, AddListInspect) {
  TestImage img = MakeImage(1, 3);
  IngestParts(*store_, img);
  Result<AddImageResult> r = Add(*store_, img, {"alpine"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->created);
  EXPECT_EQ(r->id, img.id);
  EXPECT_EQ(r->manifest_digest, img.manifest_digest);
  // The manifest became a blob.
  Result<BlobInfo> mb = store_->GetBlobInfo(img.manifest_digest);
  ASSERT_TRUE(mb.ok()) << mb.status().ToString();
  EXPECT_EQ(mb->media_type, kOciManifest);

  Result<std::vector<ImageSummary>> list = store_->ListImages();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 1u);
  const ImageSummary& s = (*list)[0];
  EXPECT_EQ(s.id, img.id);
  EXPECT_EQ(s.names, std::vector<std::string>{"docker.io/library/alpine:latest"});
  EXPECT_EQ(s.manifest_digest, img.manifest_digest);
  uint64_t size = img.config.size() + img.manifest.size();
  for (const std::string& l : img.layers) size += l.size();
  EXPECT_EQ(s.size, size);
  EXPECT_EQ(s.created, "2024-01-02T03:04:05Z");
  EXPECT_EQ(s.created_unix_ns, int64_t{1704164645} * 1000000000);
  EXPECT_EQ(s.os, "linux");
  EXPECT_EQ(s.architecture, "amd64");
  EXPECT_GT(s.added_unix_ns, 0);

  Result<ImageDetails> d = store_->InspectImage("alpine");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->summary.id, img.id);
  EXPECT_EQ(d->manifest, img.manifest);
  EXPECT_EQ(d->config, img.config);
  EXPECT_EQ(d->manifest_media_type, kOciManifest);
  std::vector<Digest> chain = ChainIds(img.diff_ids);
  ASSERT_EQ(d->layers.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(d->layers[i].digest, Digest::Of(img.layers[i])) << i;
    EXPECT_EQ(d->layers[i].size, img.layers[i].size()) << i;
    EXPECT_EQ(d->layers[i].media_type, kGzipLayer) << i;
    EXPECT_EQ(d->layers[i].diff_id, img.diff_ids[i]) << i;
    EXPECT_EQ(d->layers[i].chain_id, chain[i]) << i;
  }
  EXPECT_NE(d->layers[2].chain_id, d->layers[2].diff_id);
  ExpectConsistent(*store_);
}

TEST_F(ImagesTest, AddIsIdempotentAndOnlyAddsNames) {
  TestImage img = MakeImage(2, 2);
  IngestParts(*store_, img);
  ASSERT_TRUE(Add(*store_, img, {"a:1"}).ok());
  Result<AddImageResult> again = Add(*store_, img, {"a:1", "b"});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->id, img.id);
  EXPECT_EQ(ImageCount(*store_), 1u);
  EXPECT_EQ(NamesOf(*store_, img.id),
            (std::vector<std::string>{"docker.io/library/a:1", "docker.io/library/b:latest"}));
  Result<ImageDetails> d = store_->InspectImage(img.id.ToString());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->layers.size(), 2u);
  ExpectConsistent(*store_);
}

TEST_F(ImagesTest, ResolveByNameIdPrefixAndDigest) {
  TestImage img = MakeImage(3, 1);
  IngestParts(*store_, img);
  ASSERT_TRUE(Add(*store_, img, {"quay.io/x/app:1.0", "busybox"}).ok());
  std::string hex(img.id.hex());
  for (std::string text :
       {std::string("quay.io/x/app:1.0"), std::string("busybox"), std::string("busybox:latest"),
        std::string("docker.io/library/busybox:latest"), img.id.ToString(), hex, hex.substr(0, 12),
        "sha256:" + hex.substr(0, 5), hex.substr(0, 3), img.manifest_digest.ToString(),
        std::string(img.manifest_digest.hex()), "busybox@" + img.manifest_digest.ToString()}) {
    Result<Digest> id = store_->ResolveImage(text);
    ASSERT_TRUE(id.ok()) << text << ": " << id.status().ToString();
    EXPECT_EQ(*id, img.id) << text;
  }
  Result<Digest> unknown = store_->ResolveImage("foo");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), Code::kNotFound);
  EXPECT_EQ(unknown.status().message(), "image not known: foo:latest");
  // A tag that is not set, a prefix too short, an unknown digest.
  EXPECT_EQ(store_->ResolveImage("busybox:1").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->ResolveImage(hex.substr(0, 2)).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->ResolveImage(Digest::Of("nope").ToString()).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->ResolveImage("UPPER/case").status().code(), Code::kInvalidArgument);
}

TEST_F(ImagesTest, AmbiguousPrefixNamesTheCandidates) {
  // Find two configs whose ids share their first 3 hex digits (birthday: a few hundred tries).
  std::map<std::string, TestImage> by_prefix;
  TestImage a, b;
  for (int i = 0; i < 100000; ++i) {
    TestImage img = MakeImage(4, 1, "2024-01-02T03:04:05Z", std::to_string(i));
    std::string p(img.id.hex().substr(0, 3));
    auto [it, inserted] = by_prefix.emplace(p, img);
    if (!inserted) {
      a = it->second;
      b = img;
      break;
    }
  }
  ASSERT_FALSE(b.id.empty());
  IngestParts(*store_, a);
  IngestParts(*store_, b);
  ASSERT_TRUE(Add(*store_, a).ok());
  ASSERT_TRUE(Add(*store_, b).ok());
  std::string prefix(a.id.hex().substr(0, 3));
  Result<Digest> r = store_->ResolveImage(prefix);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("ambiguous"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(a.id.ToString()), std::string::npos);
  EXPECT_NE(r.status().message().find(b.id.ToString()), std::string::npos);
  // A longer prefix that tells them apart works.
  size_t n = 3;
  while (a.id.hex().substr(0, n) == b.id.hex().substr(0, n)) ++n;
  Result<Digest> one = store_->ResolveImage(std::string(b.id.hex().substr(0, n)));
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(*one, b.id);
}

TEST_F(ImagesTest, TagMovesNamesAndUntagRemovesThem) {
  TestImage a = MakeImage(5, 1), b = MakeImage(6, 1);
  IngestParts(*store_, a);
  IngestParts(*store_, b);
  ASSERT_TRUE(Add(*store_, a, {"app"}).ok());
  ASSERT_TRUE(Add(*store_, b, {"other"}).ok());
  ASSERT_TRUE(store_->Tag("other", "app").ok());
  EXPECT_EQ(*store_->ResolveImage("app"), b.id);
  EXPECT_TRUE(NamesOf(*store_, a.id).empty());  // dangling, still listed
  EXPECT_EQ(ImageCount(*store_), 2u);
  ASSERT_TRUE(store_->Tag(a.id.ToString(), "localhost:5000/x/y:v2").ok());
  EXPECT_EQ(NamesOf(*store_, a.id), std::vector<std::string>{"localhost:5000/x/y:v2"});

  EXPECT_EQ(store_->Tag("nothere", "z").code(), Code::kNotFound);
  EXPECT_EQ(store_->Tag("app", "z@" + a.id.ToString()).code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->Tag("app", "Bad:Name").code(), Code::kInvalidArgument);

  std::vector<std::string> wrong = {"app"};  // a's names do not include app
  EXPECT_EQ(store_->Untag(a.id.ToString(), wrong).code(), Code::kNotFound);
  std::vector<std::string> other = {"other"};
  ASSERT_TRUE(store_->Untag(b.id.ToString(), other).ok());
  EXPECT_EQ(NamesOf(*store_, b.id), std::vector<std::string>{"docker.io/library/app:latest"});
  ASSERT_TRUE(store_->Untag("app").ok());  // all names
  EXPECT_TRUE(NamesOf(*store_, b.id).empty());
  EXPECT_EQ(store_->ResolveImage("app").status().code(), Code::kNotFound);
  EXPECT_EQ(ImageCount(*store_), 2u);
  ExpectConsistent(*store_);
}

TEST_F(ImagesTest, RemoveByNameAndById) {
  TestImage img = MakeImage(7, 2);
  IngestParts(*store_, img);
  ASSERT_TRUE(Add(*store_, img, {"x", "y", "z"}).ok());

  Result<RemoveImageResult> r = store_->Remove("x");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->untagged, std::vector<std::string>{"docker.io/library/x:latest"});
  EXPECT_FALSE(r->deleted.has_value());
  EXPECT_EQ(ImageCount(*store_), 1u);

  r = store_->Remove(img.id.ToString());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(NamesOf(*store_, img.id).size(), 2u);

  r = store_->Remove(std::string(img.id.hex().substr(0, 8)), /*force=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->deleted.has_value());
  EXPECT_EQ(*r->deleted, img.id);
  EXPECT_EQ(r->untagged.size(), 2u);
  EXPECT_EQ(ImageCount(*store_), 0u);
  EXPECT_EQ(store_->ResolveImage("y").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->InspectImage(img.id.ToString()).status().code(), Code::kNotFound);
  // Blobs stay for gc.
  EXPECT_TRUE(*store_->HasBlob(img.id));
  EXPECT_TRUE(*store_->HasBlob(img.manifest_digest));
  EXPECT_TRUE(*store_->HasBlob(Digest::Of(img.layers[0])));

  // It can be added again; removing its last name removes it.
  Result<AddImageResult> again = Add(*store_, img, {"only"});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->created);
  r = store_->Remove("only");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->deleted.has_value());
  EXPECT_EQ(ImageCount(*store_), 0u);
  EXPECT_EQ(store_->Remove("only").status().code(), Code::kNotFound);
  ExpectConsistent(*store_);
}

TEST_F(ImagesTest, MissingBlobFailsAndChangesNothing) {
  TestImage img = MakeImage(8, 2);
  IngestParts(*store_, img, /*layers=*/false);
  ASSERT_TRUE(store_->IngestBlob(Digest::Of(img.layers[0]), {}, img.layers[0]).ok());
  size_t blobs_before = store_->ListBlobs()->size();
  Result<AddImageResult> r = Add(*store_, img, {"m"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find(Digest::Of(img.layers[1]).ToString()), std::string::npos)
      << r.status().message();
  EXPECT_EQ(ImageCount(*store_), 0u);
  EXPECT_EQ(store_->ListBlobs()->size(), blobs_before);  // not even the manifest blob
  EXPECT_EQ(store_->ResolveImage("m").status().code(), Code::kNotFound);
  // With the blob present it works.
  ASSERT_TRUE(store_->IngestBlob(Digest::Of(img.layers[1]), {}, img.layers[1]).ok());
  EXPECT_TRUE(Add(*store_, img, {"m"}).ok());
  ExpectConsistent(*store_);
}

TEST_F(ImagesTest, BadInputFailsAndChangesNothing) {
  TestImage img = MakeImage(9, 2);
  TestImage other = MakeImage(10, 1);
  IngestParts(*store_, img);
  IngestParts(*store_, other);
  size_t blobs_before = store_->ListBlobs()->size();
  auto expect_refused = [&](Result<AddImageResult> r, Code code) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code) << r.status().ToString();
    EXPECT_EQ(ImageCount(*store_), 0u);
    EXPECT_EQ(store_->ListBlobs()->size(), blobs_before);
  };
  std::vector<std::string> none;
  // Malformed manifest.
  expect_refused(store_->AddImage("{not json", kOciManifest, img.config, none),
                 Code::kInvalidArgument);
  // An index is not an image manifest.
  expect_refused(store_->AddImage(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.)"
                                  R"(index.v1+json","manifests":[]})",
                                  "", img.config, none),
                 Code::kInvalidArgument);
  // The config is not the manifest's.
  expect_refused(store_->AddImage(img.manifest, kOciManifest, other.config, none),
                 Code::kInvalidArgument);
  // Malformed config bytes that the manifest does name.
  TestImage broken = MakeImage(11, 1);
  broken.config = "{\"rootfs\":42}";
  broken.id = Digest::Of(broken.config);
  broken.manifest = R"({"schemaVersion":2,"config":)" +
                    Descriptor("application/vnd.oci.image.config.v1+json", broken.config) +
                    R"(,"layers":[]})";
  expect_refused(store_->AddImage(broken.manifest, kOciManifest, broken.config, none),
                 Code::kInvalidArgument);
  // Config with two diffIDs, manifest with one layer.
  TestImage mismatch = MakeImage(12, 2);
  mismatch.manifest = R"({"schemaVersion":2,"config":)" +
                      Descriptor("application/vnd.oci.image.config.v1+json", mismatch.config) +
                      R"(,"layers":[)" + Descriptor(kGzipLayer, img.layers[0]) + "]}";
  expect_refused(store_->AddImage(mismatch.manifest, kOciManifest, mismatch.config, none),
                 Code::kInvalidArgument);
  // A bad name.
  std::vector<std::string> bad = {"UPPER/case"};
  expect_refused(store_->AddImage(img.manifest, kOciManifest, img.config, bad),
                 Code::kInvalidArgument);
  // A layer whose descriptor size differs from the stored blob's.
  std::string lie = img.manifest;
  std::string real = "\"size\":" + std::to_string(img.layers[0].size()) + "}";
  size_t at = lie.find(real, lie.find(Digest::Of(img.layers[0]).ToString()));
  ASSERT_NE(at, std::string::npos);
  lie.replace(at, real.size(), "\"size\":" + std::to_string(img.layers[0].size() + 1) + "}");
  expect_refused(store_->AddImage(lie, kOciManifest, img.config, none), Code::kInvalidArgument);
  ExpectConsistent(*store_);
}

TEST_F(ImagesTest, ListFilterAndOrder) {
  TestImage old_img = MakeImage(13, 1, "2020-01-01T00:00:00Z");
  TestImage new_img = MakeImage(14, 1, "2024-05-01T12:00:00.5+02:00");
  TestImage no_date = MakeImage(15, 1, "");
  for (const TestImage* i : {&old_img, &new_img, &no_date}) IngestParts(*store_, *i);
  ASSERT_TRUE(Add(*store_, old_img, {"alpine:3.18"}).ok());
  ASSERT_TRUE(Add(*store_, new_img, {"alpine:3.19", "busybox"}).ok());
  ASSERT_TRUE(Add(*store_, no_date).ok());

  Result<std::vector<ImageSummary>> all = store_->ListImages();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, new_img.id);
  EXPECT_EQ((*all)[0].created, "2024-05-01T10:00:00.5Z");
  EXPECT_EQ((*all)[1].id, old_img.id);
  EXPECT_EQ((*all)[2].id, no_date.id);
  EXPECT_EQ((*all)[2].created, "");
  EXPECT_TRUE((*all)[2].names.empty());

  Result<std::vector<ImageSummary>> alpine = store_->ListImages("alpine");
  ASSERT_TRUE(alpine.ok());
  EXPECT_EQ(alpine->size(), 2u);
  Result<std::vector<ImageSummary>> tagged = store_->ListImages("alpine:3.18");
  ASSERT_TRUE(tagged.ok());
  ASSERT_EQ(tagged->size(), 1u);
  EXPECT_EQ((*tagged)[0].id, old_img.id);
  Result<std::vector<ImageSummary>> by_digest =
      store_->ListImages("busybox@" + new_img.manifest_digest.ToString());
  ASSERT_TRUE(by_digest.ok());
  ASSERT_EQ(by_digest->size(), 1u);
  EXPECT_EQ((*by_digest)[0].id, new_img.id);
  EXPECT_TRUE(store_->ListImages("nothing")->empty());
  EXPECT_EQ(store_->ListImages("Bad:Ref").status().code(), Code::kInvalidArgument);
}

TEST_F(ImagesTest, DockerSchema2ManifestIsAccepted) {
  TestImage img = MakeImage(16, 1);
  const std::string type = "application/vnd.docker.distribution.manifest.v2+json";
  img.manifest =
      R"({"schemaVersion":2,"mediaType":")" + type + R"(","config":)" +
      Descriptor("application/vnd.docker.container.image.v1+json", img.config) + R"(,"layers":[)" +
      Descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", img.layers[0]) + "]}";
  IngestParts(*store_, img);
  std::vector<std::string> names = {"d:1"};
  Result<AddImageResult> r = store_->AddImage(img.manifest, type, img.config, names);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Result<ImageDetails> d = store_->InspectImage("d:1");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->manifest_media_type, type);
  EXPECT_EQ(d->summary.manifest_digest, Digest::Of(img.manifest));
  ASSERT_EQ(d->layers.size(), 1u);
  EXPECT_EQ(d->layers[0].media_type, "application/vnd.docker.image.rootfs.diff.tar.gzip");
}

TEST_F(ImagesTest, SameConfigWithAnotherManifestKeepsTheFirst) {
  TestImage img = MakeImage(17, 1);
  IngestParts(*store_, img);
  ASSERT_TRUE(Add(*store_, img, {"first"}).ok());
  std::string second = img.manifest;
  second.insert(second.size() - 1, R"(,"annotations":{"a":"b"})");
  std::vector<std::string> names = {"second"};
  Result<AddImageResult> r = store_->AddImage(second, kOciManifest, img.config, names);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->created);
  EXPECT_EQ(r->manifest_digest, img.manifest_digest);
  EXPECT_EQ(*store_->ResolveImage("second"), img.id);
  EXPECT_EQ(store_->InspectImage("second")->manifest, img.manifest);
}

TEST_F(ImagesTest, SharedLayersAndPersistence) {
  TempDir dir;
  TestImage base = MakeImage(18, 2);
  // Same two layers plus one: its first two chainIDs are base's.
  TestImage top = MakeImage(18, 3);
  {
    auto store = OpenStore(dir.Sub("s"));
    ASSERT_NE(store, nullptr);
    IngestParts(*store, base);
    IngestParts(*store, top);
    ASSERT_TRUE(Add(*store, base, {"base"}).ok());
    ASSERT_TRUE(Add(*store, top, {"top"}).ok());
    Result<ImageDetails> b = store->InspectImage("base");
    Result<ImageDetails> t = store->InspectImage("top");
    ASSERT_TRUE(b.ok() && t.ok());
    EXPECT_EQ(b->layers[1].chain_id, t->layers[1].chain_id);
    ASSERT_TRUE(store->Remove("base").ok());
  }
  auto store = OpenStore(dir.Sub("s"));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ResolveImage("base").status().code(), Code::kNotFound);
  Result<ImageDetails> t = store->InspectImage("top");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->layers.size(), 3u);
  EXPECT_EQ(t->layers[2].chain_id, ChainIds(top.diff_ids)[2]);
  ExpectConsistent(*store);
}

TEST_F(ImagesTest, ListSeesASnapshotWhileNamesMove) {
  TestImage a = MakeImage(19, 1), b = MakeImage(20, 1);
  IngestParts(*store_, a);
  IngestParts(*store_, b);
  ASSERT_TRUE(Add(*store_, a, {"moving"}).ok());
  ASSERT_TRUE(Add(*store_, b).ok());
  std::atomic<bool> done{false};
  std::thread tagger([&] {
    for (int i = 0; i < 40; ++i) {
      EXPECT_TRUE(store_->Tag((i % 2 ? a : b).id.ToString(), "moving").ok());
    }
    done = true;
  });
  int lists = 0;
  while (!done || lists == 0) {
    Result<std::vector<ImageSummary>> list = store_->ListImages();
    ASSERT_TRUE(list.ok()) << list.status().ToString();
    ASSERT_EQ(list->size(), 2u);
    size_t holders = 0;
    for (const ImageSummary& s : *list) holders += s.names.size();
    EXPECT_EQ(holders, 1u);  // the name is on exactly one image in every snapshot
    ++lists;
  }
  tagger.join();
  EXPECT_EQ(*store_->ResolveImage("moving"), a.id);  // i = 39 is odd: a
}

TEST_F(ImagesTest, Rfc3339) {
  EXPECT_EQ(*internal::ParseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*internal::ParseRfc3339("1970-01-01T01:00:00.25+01:00"), 250000000);
  EXPECT_EQ(*internal::ParseRfc3339("2023-12-31T23:30:00-01:00"),
            *internal::ParseRfc3339("2024-01-01T00:30:00Z"));
  EXPECT_FALSE(internal::ParseRfc3339("2024-13-01T00:00:00Z").ok());
  EXPECT_FALSE(internal::ParseRfc3339("2024-01-01 junk").ok());
  EXPECT_FALSE(internal::ParseRfc3339("2024-01-01T00:00:00").ok());
  EXPECT_EQ(internal::FormatRfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(internal::FormatRfc3339(int64_t{1704164645} * 1000000000 + 120000),
            "2024-01-02T03:04:05.00012Z");
}

}  // namespace
}  // namespace imgstore::store
