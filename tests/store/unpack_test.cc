// Store::Unpack: a flattened root filesystem in a new directory, filled in one pass with the
// layer cache; a second unpack copies from the cache and gives the same tree; --no-cache leaves
// the cache alone; whiteouts and opaque directories across layers; and the failures (existing
// destination, missing parent, unknown image, a layer whose diffID lies) leave no destination,
// no staging directory and a clean store.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>

#include "common/fs_tree.h"
#include "common/layer_image.h"
#include "common/tar_builder.h"
#include "store/store.h"
#include "store_test_util.h"

namespace imgstore::store {
namespace {

using imgstore::testing::ImageOfLayers;
using imgstore::testing::LayerCompression;
using imgstore::testing::TarBuilder;
using testing::ExpectConsistent;
using testing::StoreTest;
using testing::TestImage;

using imgstore::testing::Exists;
using Tree = imgstore::testing::FsTree;

// path → "type mode uid:gid content-or-target links=N" of every entry below dir (dir itself as
// ".").
Tree ReadTree(const std::string& dir) {
  return imgstore::testing::SnapshotTree(dir, {.include_root = true, .link_counts = true});
}

int LayersDirEntries(Store& store) {
  Result<std::vector<std::string>> names = Env::Default()->ListDir(store.root() + "/layers");
  EXPECT_TRUE(names.ok());
  return static_cast<int>(names->size());
}

// Three layers: a base, a layer that deletes and replaces, one that makes a directory opaque.
std::vector<std::string> ThreeLayers() {
  return {
      TarBuilder()
          .Dir("etc")
          .File("etc/passwd", "root:x:0:0\n")
          .File("etc/hosts", "127.0.0.1 localhost\n")
          .Dir("var")
          .Dir("var/cache", 0700)
          .File("var/cache/a", "a")
          .File("var/cache/b", "b")
          .Dir("usr")
          .File("usr/tool", "tool-v1", 04755)
          .Owner(0, 0)
          .Hardlink("usr/tool-link", "usr/tool")
          .Symlink("usr/lib64", "lib")
          .Finish(),
      TarBuilder()
          .Whiteout("etc/hosts")
          .File("etc/motd", "hello\n")
          .Owner(1000, 1000)
          .File("usr/tool", "tool-v2", 0755)
          .Finish(),
      TarBuilder().Dir("var/cache", 0755).Opaque("var/cache").File("var/cache/c", "c").Finish()};
}

class UnpackTest : public StoreTest {
 protected:
  TestImage Add(const std::vector<std::string>& tars, const std::string& name,
                LayerCompression compression = LayerCompression::kGzip) {
    TestImage image = ImageOfLayers(tars, compression, name);
    testing::AddImageWithBlobs(*store_, image, {name});
    return image;
  }
};

TEST_F(UnpackTest, FlattensLayersAndReusesTheCache) {
  TestImage image = Add(ThreeLayers(), "three");
  const std::string first = dir_.Sub("first");
  Result<UnpackResult> r = store_->Unpack("three", first);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->image_id, image.id);
  EXPECT_EQ(r->layers, 3);
  EXPECT_EQ(r->layers_extracted, 3);

  Tree tree = ReadTree(first);
  EXPECT_EQ(tree.count("etc/hosts"), 0u);    // whited out by layer 2
  EXPECT_EQ(tree.count("var/cache/a"), 0u);  // hidden by layer 3's opaque directory
  EXPECT_EQ(tree.count("var/cache/b"), 0u);
  EXPECT_EQ(tree["var/cache/c"], "file 0644 0:0 c links=1");
  EXPECT_EQ(tree["var/cache"], "dir 0755 0:0 ");
  EXPECT_EQ(tree["etc/passwd"], "file 0644 0:0 root:x:0:0\n links=1");
  if (::geteuid() == 0) {
    EXPECT_EQ(tree["etc/motd"], "file 0644 1000:1000 hello\n links=1");
  }
  EXPECT_EQ(tree["usr/tool"], "file 0755 0:0 tool-v2 links=1");  // replaced: the link is broken
  EXPECT_EQ(tree["usr/tool-link"], "file 4755 0:0 tool-v1 links=1");
  EXPECT_EQ(tree["usr/lib64"], "symlink 0777 0:0 lib");

  // From the cache: the same tree, nothing extracted.
  const std::string second = dir_.Sub("second");
  r = store_->Unpack(image.id.ToString(), second);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->layers_extracted, 0);
  EXPECT_EQ(ReadTree(second), tree);
  ExpectConsistent(*store_);
}

// An rmi and a gc (another Store on the same root, as another process would be) right after the
// first layer is extracted: the unpack's lease keeps the other layers' blobs and rows, so it
// completes with the whole tree; once it is done, gc takes everything.
TEST_F(UnpackTest, AnImageRemovedAndCollectedMidwayStillUnpacks) {
  std::vector<std::string> tars = ThreeLayers();
  Add(tars, "three");
  const std::string ref = dir_.Sub("ref");
  UnpackOptions plain;
  plain.use_cache = false;
  ASSERT_TRUE(store_->Unpack("three", ref, plain).ok());
  const Tree want = ReadTree(ref);

  for (bool use_cache : {true, false}) {
    SCOPED_TRACE(use_cache ? "through the cache" : "--no-cache");
    TestImage image = Add(tars, "three");
    std::unique_ptr<Store> other = testing::OpenStore(store_->root());
    ASSERT_NE(other, nullptr);
    int extracted = 0;
    GcReport during;
    UnpackOptions o;
    o.use_cache = use_cache;
    o.layers.on_extract = [&](const Digest&, bool done) {
      if (!done || ++extracted != 1) return;
      ASSERT_TRUE(other->Remove("three").ok());
      Result<GcReport> gc = other->GarbageCollect();
      ASSERT_TRUE(gc.ok()) << gc.status().ToString();
      during = *gc;
    };
    const std::string out = dir_.Sub(use_cache ? "cached" : "plain");
    Result<UnpackResult> r = store_->Unpack(image.id.ToString(), out, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(extracted, 3);
    EXPECT_EQ(ReadTree(out), want);
    // The gc ran and removed the image's manifest blob, but no layer and no layer blob or config.
    EXPECT_EQ(during.blobs_removed, std::vector<Digest>{Digest::Of(image.manifest)});
    EXPECT_EQ(during.layers_removed, 0);
    for (const Digest& d : during.blobs_removed) {
      EXPECT_NE(d, image.id);
      for (const std::string& layer : image.layers) EXPECT_NE(d, Digest::Of(layer));
    }
    ExpectConsistent(*store_);

    Result<GcReport> after = store_->GarbageCollect();
    ASSERT_TRUE(after.ok()) << after.status().ToString();
    EXPECT_EQ(after->layers_removed, 3);
    EXPECT_EQ(testing::CountRows(*store_, "SELECT count(*) FROM blobs"), 0);
    EXPECT_EQ(testing::CountRows(*store_, "SELECT count(*) FROM leases"), 0);
    EXPECT_EQ(LayersDirEntries(*store_), 0);
    ExpectConsistent(*store_);
  }
}

TEST_F(UnpackTest, HardlinksWithinALayerStayLinked) {
  Add({TarBuilder()
           .Dir("bin")
           .File("bin/busybox", "bb", 0755)
           .Hardlink("bin/ls", "bin/busybox")
           .Hardlink("bin/cat", "bin/busybox")
           .Finish(),
       TarBuilder().File("etc-file", "x").Finish()},
      "links", LayerCompression::kZstd);
  for (const char* name : {"a", "b"}) {  // extracted, then from the cache
    const std::string dir = dir_.Sub(name);
    Result<UnpackResult> r = store_->Unpack("links", dir);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    struct stat a, b;
    ASSERT_EQ(::lstat((dir + "/bin/busybox").c_str(), &a), 0);
    ASSERT_EQ(::lstat((dir + "/bin/cat").c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino) << name;
    EXPECT_EQ(a.st_nlink, 3u) << name;
  }
}

TEST_F(UnpackTest, NoCacheLeavesTheCacheAlone) {
  Add(ThreeLayers(), "three");
  UnpackOptions options;
  options.use_cache = false;
  Result<UnpackResult> r = store_->Unpack("three", dir_.Sub("plain"), options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->layers_extracted, 3);
  EXPECT_EQ(LayersDirEntries(*store_), 0);
  EXPECT_EQ(testing::CountRows(*store_, "SELECT count(*) FROM layers WHERE unpack_state != 'none'"),
            0);
  // The same tree as through the cache.
  ASSERT_TRUE(store_->Unpack("three", dir_.Sub("cached")).ok());
  EXPECT_EQ(ReadTree(dir_.Sub("plain")), ReadTree(dir_.Sub("cached")));
  // With the cache filled, --no-cache copies from it.
  r = store_->Unpack("three", dir_.Sub("plain2"), options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->layers_extracted, 0);
  EXPECT_EQ(ReadTree(dir_.Sub("plain2")), ReadTree(dir_.Sub("cached")));
  ExpectConsistent(*store_);
}

TEST_F(UnpackTest, ExistingDestinationIsAlreadyExists) {
  Add(ThreeLayers(), "three");
  const std::string dir = dir_.Sub("there");
  ASSERT_TRUE(Env::Default()->CreateDir(dir, 0755).ok());
  ASSERT_TRUE(Env::Default()->WriteFileAtomically(dir + "/keep", "mine").ok());
  Result<UnpackResult> r = store_->Unpack("three", dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kAlreadyExists) << r.status().ToString();
  EXPECT_TRUE(Exists(dir + "/keep"));  // untouched
  EXPECT_EQ(LayersDirEntries(*store_), 0);
}

TEST_F(UnpackTest, MissingParentIsNotFound) {
  Add(ThreeLayers(), "three");
  Result<UnpackResult> r = store_->Unpack("three", dir_.Sub("no/such/dir"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().ToString();
  EXPECT_FALSE(Exists(dir_.Sub("no")));
}

TEST_F(UnpackTest, UnknownImageIsNotFound) {
  Result<UnpackResult> r = store_->Unpack("missing:v1", dir_.Sub("x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().ToString();
  EXPECT_FALSE(Exists(dir_.Sub("x")));
}

// The second layer's config diffID is that of another tar: the unpack fails after the first
// layer was cached; the destination goes, the first layer stays cached, the second leaves
// nothing.
TEST_F(UnpackTest, BadLayerRemovesDestinationAndLeavesCacheConsistent) {
  std::vector<std::string> tars = ThreeLayers();
  TestImage image = ImageOfLayers({tars[0], tars[1]}, LayerCompression::kGzip, "bad");
  // Swap in a different second layer blob, keeping the config's diffIDs.
  const std::string real = image.layers[1];
  const std::string evil = imgstore::testing::Compress(tars[2], LayerCompression::kGzip);
  image.manifest.replace(image.manifest.find(Digest::Of(real).ToString()),
                         Digest::Of(real).ToString().size(), Digest::Of(evil).ToString());
  image.manifest.replace(image.manifest.find(std::to_string(real.size()) + "}]"),
                         std::to_string(real.size()).size(), std::to_string(evil.size()));
  image.layers[1] = evil;
  image.manifest_digest = Digest::Of(image.manifest);
  testing::AddImageWithBlobs(*store_, image, {"bad"});

  const std::string dir = dir_.Sub("bad");
  Result<UnpackResult> r = store_->Unpack("bad", dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_FALSE(Exists(dir));
  std::vector<Digest> chains = ChainIds(image.diff_ids);
  EXPECT_TRUE(Exists(LayerDir(store_->root(), chains[0])));
  EXPECT_FALSE(Exists(LayerDir(store_->root(), chains[1])));
  EXPECT_EQ(LayersDirEntries(*store_), 1);  // no staging directory
  EXPECT_EQ(testing::CountRows(*store_,
                               "SELECT count(*) FROM layers WHERE unpack_state = "
                               "'complete'"),
            1);
  ExpectConsistent(*store_);

  UnpackOptions options;
  options.use_cache = false;
  r = store_->Unpack("bad", dir, options);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(Exists(dir));
}

TEST_F(UnpackTest, DockerGzipTypeWithAnUncompressedBlob) {
  // docker save has written plain tars under the gzip media type: the blob is sniffed.
  std::vector<std::string> tars = ThreeLayers();
  TestImage image = ImageOfLayers({tars[0]}, LayerCompression::kNone, "docker", true);
  const std::string plain = image.manifest;
  image.manifest.replace(image.manifest.find("rootfs.diff.tar\""), 16, "rootfs.diff.tar.gzip\"");
  ASSERT_NE(plain, image.manifest);
  image.manifest_digest = Digest::Of(image.manifest);
  testing::AddImageWithBlobs(*store_, image, {"docker"});
  Result<UnpackResult> r = store_->Unpack("docker", dir_.Sub("d"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(Exists(dir_.Sub("d/usr/tool")));
}

}  // namespace
}  // namespace imgstore::store
