// Store::Pull from an in-memory source (fake_transport.h): image manifests, indexes with a
// platform choice, nested indexes, Docker v2s2, names, present blobs that are not read, diffID
// verification, and every refusal, each leaving nothing recorded and the store consistent.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/temp_dir.h"
#include "common/test_image.h"
#include "store/fake_transport.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::store {
namespace {

using testing::CountRows;
using testing::ExpectConsistent;
using testing::FakeSource;
using testing::IndexEntry;
using testing::MakeIndex;
using testing::MakeTestImage;
using testing::TestImage;
using testing::TestImageSpec;

constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";

// The text the one row of `sql` holds in its first column, "NULL" for a null.
std::string QueryText(Store& store, const std::string& sql) {
  return testing::QueryOneRow(store, sql, [](const Statement& st) {
    return st.ColumnIsNull(0) ? std::string("NULL") : st.ColumnText(0);
  });
}

// Nothing recorded: no image, manifest, layer or lease row, and Check is clean.
void ExpectNothingRecorded(Store& store) {
  EXPECT_EQ(CountRows(store, "SELECT count(*) FROM images"), 0);
  EXPECT_EQ(CountRows(store, "SELECT count(*) FROM manifests"), 0);
  EXPECT_EQ(CountRows(store, "SELECT count(*) FROM layers"), 0);
  EXPECT_EQ(CountRows(store, "SELECT count(*) FROM names"), 0);
  EXPECT_EQ(CountRows(store, "SELECT count(*) FROM leases"), 0);
  EXPECT_EQ(CountRows(store, "SELECT count(*) FROM lease_blobs"), 0);
  ExpectConsistent(store);
}

TestImage Image(uint32_t seed, const std::string& arch = "amd64", int layers = 2) {
  TestImageSpec spec;
  spec.seed = seed;
  spec.layers = layers;
  spec.architecture = arch;
  return MakeTestImage(spec);
}

PullOptions ForPlatform(const std::string& text) {
  PullOptions o;
  Result<images::Platform> p = images::ParsePlatform(text);
  EXPECT_TRUE(p.ok());
  o.platform = *p;
  return o;
}

// A manifest whose JSON was edited by `edit` (then re-serialized: new bytes, new digest).
std::string EditJson(const std::string& doc, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(doc);
  edit(j);
  return j.dump();
}

using PullTest = testing::StoreTest;

TEST_F(PullTest, PullsAnImageManifest) {
  TestImage img = Image(1);
  FakeSource src;
  src.AddImage(img);
  Result<PullResult> r = store_->Pull(src);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->image.id, img.id);
  EXPECT_EQ(r->image.manifest_digest, img.manifest_digest);
  EXPECT_TRUE(r->image.created);
  EXPECT_EQ(r->blobs_written, 4);  // config, two layers, manifest
  EXPECT_EQ(r->bytes_written,
            img.config.size() + img.layers[0].size() + img.layers[1].size() + img.manifest.size());
  Result<ImageDetails> d = store_->InspectImage(img.id.ToString());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->manifest, img.manifest);
  EXPECT_EQ(d->config, img.config);
  ASSERT_EQ(d->layers.size(), 2u);
  EXPECT_EQ(d->layers[1].diff_id, img.diff_ids[1]);
  EXPECT_EQ(QueryText(*store_, "SELECT index_digest FROM images"), "NULL");
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM layers WHERE diff_id_verified = 1"), 0);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM leases"), 0);  // released
  ExpectConsistent(*store_);
}

TEST_F(PullTest, PinsEveryBlobBeforeFetchingAndReleasesAfter) {
  TestImage img = Image(2);
  FakeSource src;
  src.AddImage(img);
  int64_t pins_seen = -1;
  src.on_get_blob = [&](const images::Descriptor&) {
    if (pins_seen < 0) pins_seen = CountRows(*store_, "SELECT count(*) FROM lease_blobs");
  };
  ASSERT_TRUE(store_->Pull(src).ok());
  EXPECT_EQ(pins_seen, 4);  // manifest, config and both layers, before the first blob is read
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM lease_blobs"), 0);
}

TEST_F(PullTest, ReportsProgress) {
  TestImageSpec spec;
  spec.layers = 1;
  spec.layer_bytes = 3 << 20;  // several reads
  spec.compression = imgstore::testing::LayerCompression::kNone;
  TestImage img = MakeTestImage(spec);
  FakeSource src;
  src.AddImage(img);
  PullOptions o;
  std::vector<PullProgress> seen;
  o.on_progress = [&](const PullProgress& p) { seen.push_back(p); };
  ASSERT_TRUE(store_->Pull(src, o).ok());
  const Digest layer = Digest::Of(img.layers[0]);
  int calls = 0;
  uint64_t last = 0;
  for (const PullProgress& p : seen) {
    if (p.digest != layer) continue;
    ++calls;
    EXPECT_GE(p.done, last);
    last = p.done;
    EXPECT_EQ(p.total, img.layers[0].size());
    EXPECT_FALSE(p.skipped);
  }
  EXPECT_GT(calls, 1);
  EXPECT_EQ(last, img.layers[0].size());

  seen.clear();
  ASSERT_TRUE(store_->Pull(src, o).ok());
  ASSERT_EQ(seen.size(), 2u);  // config and layer, both skipped
  for (const PullProgress& p : seen) EXPECT_TRUE(p.skipped);
}

TEST_F(PullTest, PresentBlobsAreNotRead) {
  TestImage img = Image(3);
  FakeSource src;
  src.AddImage(img);
  ASSERT_TRUE(store_->Pull(src).ok());
  EXPECT_EQ(src.total_opens(), 3);
  src.blob_opens.clear();
  Result<PullResult> again = store_->Pull(src);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(src.total_opens(), 0);
  EXPECT_EQ(again->blobs_written, 0);
  EXPECT_FALSE(again->image.created);

  // Another image sharing the config's... layers: only the new blobs are read.
  TestImage other = Image(3, "arm64");  // same layers (same seed), another config
  ASSERT_NE(other.id, img.id);
  ASSERT_EQ(other.layers, img.layers);  // the gzip headers carry no time
  FakeSource src2;
  src2.AddImage(other);
  Result<PullResult> r2 = store_->Pull(src2);
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(src2.total_opens(), 1);  // the config only
  EXPECT_EQ(src2.opens(other.id), 1);
  ExpectConsistent(*store_);
}

TEST_F(PullTest, GivesNamesFromOptionsAndSource) {
  TestImage img = Image(4);
  FakeSource src;
  src.AddImage(img);
  src.names = {"example.com/team/app:1.0", "busybox"};
  PullOptions o;
  o.names = {"alpine", "busybox:latest", "localhost:5000/x/y:z"};
  Result<PullResult> r = store_->Pull(src, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<std::string> want = {"docker.io/library/alpine:latest",
                                   "docker.io/library/busybox:latest", "example.com/team/app:1.0",
                                   "localhost:5000/x/y:z"};
  EXPECT_EQ(r->names, want);
  Result<std::vector<ImageSummary>> list = store_->ListImages();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].names, want);
}

TEST_F(PullTest, InvalidNamesAreRefusedBeforeAnythingIsFetched) {
  TestImage img = Image(5);
  for (const std::string& bad :
       std::vector<std::string>{"UPPER/case", "a:b:c", "x:" + std::string(129, 't'),
                                "x@sha256:1234", "x@sha256:" + std::string(64, 'a')}) {
    FakeSource src;
    src.AddImage(img);
    PullOptions o;
    o.names = {"good", bad};
    Result<PullResult> r = store_->Pull(src, o);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
    EXPECT_NE(r.status().message().find("pull fake:test"), std::string::npos);
    EXPECT_EQ(src.top_calls, 0);
    EXPECT_EQ(src.total_opens(), 0);
  }
  // A name the source carries is checked the same way.
  FakeSource src;
  src.AddImage(img);
  src.names = {"Bad Name"};
  EXPECT_EQ(store_->Pull(src).status().code(), Code::kInvalidArgument);
  ExpectNothingRecorded(*store_);
}

TEST_F(PullTest, ChoosesThePlatformOfAnIndexAndRecordsIt) {
  TestImage amd = Image(6, "amd64");
  TestImage arm = Image(7, "arm64");
  FakeSource src;
  src.AddImage(amd);
  src.AddImage(arm);
  std::string index = MakeIndex(
      {{amd.manifest_digest, amd.manifest.size(), std::string(kOciManifest), "linux/amd64"},
       {arm.manifest_digest, arm.manifest.size(), std::string(kOciManifest), "linux/arm64/v8"}});
  src.top = {index, std::string(kOciIndex)};

  Result<PullResult> r = store_->Pull(src, ForPlatform("linux/arm64"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->image.id, arm.id);
  EXPECT_EQ(r->image.manifest_digest, arm.manifest_digest);
  EXPECT_EQ(src.opens(amd.id), 0);  // the other platform is not fetched
  const Digest index_digest = Digest::Of(index);
  EXPECT_EQ(QueryText(*store_, "SELECT index_digest FROM images"), index_digest.ToString());
  EXPECT_EQ(QueryText(*store_, "SELECT kind FROM manifests WHERE digest = '" +
                                   index_digest.ToString() + "'"),
            "index");
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM index_entries"), 2);
  EXPECT_EQ(
      QueryText(*store_,
                "SELECT architecture || '/' || variant FROM index_entries WHERE position = 1"),
      "arm64/v8");
  Result<std::string> stored = store_->ReadBlob(index_digest, 1 << 20);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, index);  // verbatim

  // The other platform from the same index: the index is recorded once.
  Result<PullResult> r2 = store_->Pull(src, ForPlatform("linux/amd64"));
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(r2->image.id, amd.id);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM index_entries"), 2);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM images WHERE index_digest IS NOT NULL"), 2);
  ExpectConsistent(*store_);
}

TEST_F(PullTest, FollowsNestedIndexes) {
  TestImage img = Image(8);
  FakeSource src;
  src.AddImage(img);
  std::string inner = MakeIndex(
      {{img.manifest_digest, img.manifest.size(), std::string(kOciManifest), "linux/amd64"}});
  Digest inner_digest = src.AddDocument(inner, std::string(kOciIndex));
  std::string outer =
      MakeIndex({{inner_digest, inner.size(), std::string(kOciIndex), "linux/amd64"}});
  src.top = {outer, std::string(kOciIndex)};
  Result<PullResult> r = store_->Pull(src, ForPlatform("linux/amd64"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->image.id, img.id);
  EXPECT_EQ(QueryText(*store_, "SELECT index_digest FROM images"), Digest::Of(outer).ToString());
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM manifests WHERE kind = 'index'"), 2);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM index_entries WHERE index_digest = '" +
                                   inner_digest.ToString() + "'"),
            1);
  ExpectConsistent(*store_);
}

TEST_F(PullTest, IndexesNestedTooDeepAreRefused) {
  TestImage img = Image(9);
  FakeSource src;
  src.AddImage(img);
  std::string doc = MakeIndex(
      {{img.manifest_digest, img.manifest.size(), std::string(kOciManifest), "linux/amd64"}});
  for (int i = 0; i < 4; ++i) {  // four levels of index above the manifest
    Digest d = src.AddDocument(doc, std::string(kOciIndex));
    doc = MakeIndex({{d, doc.size(), std::string(kOciIndex), "linux/amd64"}});
  }
  src.top = {doc, std::string(kOciIndex)};
  PullOptions o = ForPlatform("linux/amd64");
  o.max_index_depth = 4;
  Result<PullResult> r = store_->Pull(src, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("max_index_depth"), std::string::npos);
  EXPECT_EQ(src.total_opens(), 0);
  ExpectNothingRecorded(*store_);
  o.max_index_depth = 5;
  EXPECT_TRUE(store_->Pull(src, o).ok());
}

TEST_F(PullTest, PullsDockerV2s2FromAManifestList) {
  TestImageSpec spec;
  spec.seed = 10;
  spec.docker_media_types = true;
  TestImage img = MakeTestImage(spec);
  FakeSource src;
  src.AddImage(img);
  const std::string list_type = "application/vnd.docker.distribution.manifest.list.v2+json";
  std::string list = MakeIndex(
      {{img.manifest_digest, img.manifest.size(), img.manifest_media_type, "linux/amd64"}},
      list_type);
  src.top = {list, list_type};
  Result<PullResult> r = store_->Pull(src, ForPlatform("linux/amd64"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->image.id, img.id);
  Result<ImageDetails> d = store_->InspectImage(img.id.ToString());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->manifest_media_type, img.manifest_media_type);
  EXPECT_EQ(QueryText(*store_, "SELECT media_type FROM manifests WHERE kind = 'index'"), list_type);
  ExpectConsistent(*store_);
}

TEST_F(PullTest, UnknownPlatformIsRefused) {
  TestImage amd = Image(11, "amd64");
  FakeSource src;
  src.AddImage(amd);
  src.top = {MakeIndex({{amd.manifest_digest, amd.manifest.size(), std::string(kOciManifest),
                         "linux/amd64"}}),
             std::string(kOciIndex)};
  Result<PullResult> r = store_->Pull(src, ForPlatform("linux/s390x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("s390x"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("pull fake:test"), std::string::npos);
  ExpectNothingRecorded(*store_);
}

TEST_F(PullTest, ChildManifestThatIsNotTheOneListedIsRefused) {
  TestImage a = Image(12);
  TestImage b = Image(13);
  FakeSource src;
  src.AddImage(a);
  src.AddImage(b);
  src.top = {
      MakeIndex({{a.manifest_digest, a.manifest.size(), std::string(kOciManifest), "linux/amd64"}}),
      std::string(kOciIndex)};
  src.manifests[a.manifest_digest.ToString()] = {b.manifest, b.manifest_media_type};
  Result<PullResult> r = store_->Pull(src, ForPlatform("linux/amd64"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_EQ(src.total_opens(), 0);
  ExpectNothingRecorded(*store_);
}

TEST_F(PullTest, LayerWithWrongDigestRecordsNothing) {
  TestImage img = Image(14);
  FakeSource src;
  src.AddImage(img);
  std::string& layer = src.blobs[Digest::Of(img.layers[1]).ToString()];
  layer[layer.size() / 2] ^= 1;  // same size, other bytes
  Result<PullResult> r = store_->Pull(src);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find("digest mismatch"), std::string::npos);
  EXPECT_NE(r.status().message().find("pull fake:test: layer 1"), std::string::npos)
      << r.status().ToString();
  EXPECT_FALSE(*store_->HasBlob(Digest::Of(img.layers[1])));
  // The blobs that did verify stay for gc; nothing refers to them.
  EXPECT_TRUE(*store_->HasBlob(img.id));
  ExpectNothingRecorded(*store_);
}

TEST_F(PullTest, LayerWithWrongSizeRecordsNothing) {
  for (int delta : {-1, +1}) {
    TestImage img = Image(15 + static_cast<uint32_t>(delta + 1));
    FakeSource src;
    src.AddImage(img);
    std::string& layer = src.blobs[Digest::Of(img.layers[0]).ToString()];
    if (delta < 0) {
      layer.pop_back();
    } else {
      layer.push_back('x');
    }
    Result<PullResult> r = store_->Pull(src);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kCorruption);
    EXPECT_NE(r.status().message().find("size mismatch"), std::string::npos)
        << r.status().ToString();
    ExpectNothingRecorded(*store_);
  }
}

TEST_F(PullTest, MissingBlobRecordsNothing) {
  TestImage img = Image(18);
  FakeSource src;
  src.AddImage(img);
  src.blobs.erase(Digest::Of(img.layers[1]).ToString());
  Result<PullResult> r = store_->Pull(src);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().ToString();
  ExpectNothingRecorded(*store_);

  src.blobs.erase(img.id.ToString());  // the config
  r = store_->Pull(src);
  EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().ToString();
  ExpectNothingRecorded(*store_);
}

TEST_F(PullTest, SourceErrorIsReturnedNamingTheSource) {
  FakeSource src("fake:broken");
  src.top_error = Status(Code::kNotFound, "fake:broken: no such image");
  Result<PullResult> r = store_->Pull(src);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_EQ(r.status().message().find("pull fake:broken"), 0u) << r.status().ToString();
  ExpectNothingRecorded(*store_);
}

TEST_F(PullTest, MalformedOrOversizedManifestIsRefused) {
  TestImage img = Image(19);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{not json", std::string(kOciManifest)},
      {R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"})",
       std::string(kOciManifest)},
      {img.manifest, "application/vnd.example.unknown+json"},
      {R"({"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]})",
       "application/vnd.docker.distribution.manifest.v1+json"},
  };
  for (const auto& [bytes, type] : bad) {
    FakeSource src;
    src.AddImage(img);
    src.top = {bytes, type};
    Result<PullResult> r = store_->Pull(src);
    ASSERT_FALSE(r.ok()) << bytes;
    EXPECT_TRUE(r.status().code() == Code::kInvalidArgument ||
                r.status().code() == Code::kUnsupported)
        << r.status().ToString();
    EXPECT_EQ(src.total_opens(), 0);
  }
  // Oversized: a valid manifest padded past the bound.
  FakeSource src;
  src.AddImage(img);
  src.top.bytes = img.manifest + std::string(5 << 20, ' ');
  Result<PullResult> r = store_->Pull(src);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  // And a bound set lower than a normal manifest.
  src.AddImage(img);
  PullOptions o;
  o.limits.max_manifest_bytes = img.manifest.size() - 1;
  EXPECT_EQ(store_->Pull(src, o).status().code(), Code::kInvalidArgument);
  ExpectNothingRecorded(*store_);
}

TEST_F(PullTest, ConfigThatDoesNotMatchTheManifestIsRefusedBeforeLayers) {
  TestImage two = Image(20, "amd64", 2);
  TestImage three = Image(21, "amd64", 3);
  // The manifest of `two` with the config of `three` (three diffIDs for two layers).
  std::string manifest = EditJson(two.manifest, [&](nlohmann::json& j) {
    j["config"]["digest"] = three.id.ToString();
    j["config"]["size"] = three.config.size();
  });
  FakeSource src;
  src.AddImage(two);
  src.blobs[three.id.ToString()] = three.config;
  src.top = {manifest, std::string(kOciManifest)};
  Result<PullResult> r = store_->Pull(src);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  EXPECT_EQ(src.opens(Digest::Of(two.layers[0])), 0);  // no layer fetched
  ExpectNothingRecorded(*store_);
}

TEST_F(PullTest, ArtifactIsRefusedClearly) {
  TestImage img = Image(22);
  std::string manifest = EditJson(img.manifest, [&](nlohmann::json& j) {
    j["config"]["mediaType"] = "application/vnd.oci.empty.v1+json";
  });
  FakeSource src;
  src.AddImage(img);
  src.top = {manifest, std::string(kOciManifest)};
  Result<PullResult> r = store_->Pull(src);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnsupported);
  EXPECT_NE(r.status().message().find("not an image"), std::string::npos) << r.status().ToString();
  EXPECT_EQ(src.total_opens(), 0);
  ExpectNothingRecorded(*store_);
}

TEST_F(PullTest, VerifiesDiffIdsWhenAsked) {
  TestImage img = Image(23);
  FakeSource src;
  src.AddImage(img);
  PullOptions o;
  o.verify_diff_ids = true;
  Result<PullResult> r = store_->Pull(src, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM layers WHERE diff_id_verified = 1"), 2);

  // Every compression.
  for (auto c :
       {imgstore::testing::LayerCompression::kNone, imgstore::testing::LayerCompression::kZstd}) {
    TestImageSpec spec;
    spec.seed = 24;
    spec.layers = 1;
    spec.compression = c;
    TestImage other = MakeTestImage(spec);
    FakeSource s2;
    s2.AddImage(other);
    Result<PullResult> r2 = store_->Pull(s2, o);
    ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  }
  ExpectConsistent(*store_);
}

TEST_F(PullTest, WrongDiffIdIsCaughtOnlyWhenVerifying) {
  TestImage img = Image(25);
  // A config whose second diffID is wrong, and a manifest pointing at it.
  std::string config = EditJson(img.config, [](nlohmann::json& j) {
    j["rootfs"]["diff_ids"][1] = Digest::Of("not the layer").ToString();
  });
  std::string manifest = EditJson(img.manifest, [&](nlohmann::json& j) {
    j["config"]["digest"] = Digest::Of(config).ToString();
    j["config"]["size"] = config.size();
  });
  FakeSource src;
  src.AddImage(img);
  src.blobs[Digest::Of(config).ToString()] = config;
  src.top = {manifest, std::string(kOciManifest)};
  PullOptions o;
  o.verify_diff_ids = true;
  Result<PullResult> r = store_->Pull(src, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find("verify diffID of layer 1"), std::string::npos)
      << r.status().ToString();
  ExpectNothingRecorded(*store_);

  // Without verification the image is taken as it says it is, and marked unverified.
  Result<PullResult> r2 = store_->Pull(src);
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM layers WHERE diff_id_verified = 1"), 0);
}

}  // namespace
}  // namespace imgstore::store
