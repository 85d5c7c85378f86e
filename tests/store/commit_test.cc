// Store::Commit: a directory against a base image, and copy and overlay mounts, become a new
// image with one more layer (or none for no change), a config with the right diff_ids and
// history, the manifest type rules, and failures that leave nothing behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/fault_env.h"
#include "common/fs_tree.h"
#include "common/layer_image.h"
#include "images/image_config.h"
#include "images/manifest.h"
#include "images/media_types.h"
#include "layers/overlay_mount.h"
#include "store/store.h"
#include "store_test_util.h"

namespace imgstore::store {
namespace {

namespace mt = images::media_type;
using imgstore::testing::FaultEnv;
using imgstore::testing::FsOp;
using imgstore::testing::ImageOfLayers;
using imgstore::testing::LayerCompression;
using imgstore::testing::SmallRootfsLayers;
using testing::ExpectConsistent;
using testing::StoreTest;
using testing::TestImage;

using imgstore::testing::WriteFile;
using Tree = imgstore::testing::FsTree;

// path → "type mode uid:gid content-or-target" below dir.
Tree ReadTree(const std::string& dir) { return imgstore::testing::SnapshotTree(dir); }

// The changes the tests make to an unpacked (or mounted) base.
void Change(const std::string& root) {
  WriteFile(root + "/etc/motd", "changed\n");                   // modified
  ASSERT_EQ(::unlink((root + "/etc/hosts").c_str()), 0);        // deleted
  WriteFile(root + "/new-file", "new");                         // added
  ASSERT_EQ(::chmod((root + "/etc/passwd").c_str(), 0600), 0);  // chmod'ed
  // An "opaque" directory: everything in var/cache replaced.
  ASSERT_EQ(::unlink((root + "/var/cache/a").c_str()), 0);
  ASSERT_EQ(::unlink((root + "/var/cache/b").c_str()), 0);
  WriteFile(root + "/var/cache/c", "c");
}

class CommitTest : public StoreTest {
 protected:
  TestImage AddBase(const std::string& name, bool docker = false) {
    TestImage image = ImageOfLayers(SmallRootfsLayers(), LayerCompression::kGzip, name, docker);
    testing::AddImageWithBlobs(*store_, image, {name});
    return image;
  }

  std::string Unpacked(const std::string& image, const std::string& sub) {
    const std::string dir = dir_.Sub(sub);
    Result<UnpackResult> r = store_->Unpack(image, dir);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return dir;
  }

  // A mount of "base" (kind "copy" or "overlay") named `name`, with Change() made through it.
  Result<MountInfo> MountChanged(const std::string& kind, const std::string& name) {
    MountOptions mo;
    mo.kind = kind;
    mo.name = name;
    Result<MountInfo> m = store_->Mount("base", mo);
    if (m.ok()) Change(m->path);
    return m;
  }

  int ImageCount() {
    Result<std::vector<ImageSummary>> all = store_->ListImages();
    EXPECT_TRUE(all.ok());
    return all.ok() ? static_cast<int>(all->size()) : -1;
  }
};

TEST_F(CommitTest, DirectoryAgainstBaseImage) {
  TestImage base = AddBase("base");
  const std::string work = Unpacked("base", "work");
  Change(work);
  CommitOptions opts;
  opts.names = {"committed:v1", "other"};
  opts.author = "Tester <t@example.com>";
  opts.message = "a message";
  Result<CommitResult> r = store_->Commit(work, "base", opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->image.created);
  EXPECT_FALSE(r->layer_digest.empty());
  EXPECT_GT(r->layer_size, 0u);

  Result<ImageDetails> d = store_->InspectImage("committed:v1");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->summary.id, r->image.id);
  EXPECT_EQ(d->summary.names, (std::vector<std::string>{"docker.io/library/committed:v1",
                                                        "docker.io/library/other:latest"}));
  ASSERT_EQ(d->layers.size(), 3u);
  EXPECT_EQ(d->layers[0].digest, Digest::Of(base.layers[0]));
  EXPECT_EQ(d->layers[2].digest, r->layer_digest);
  EXPECT_EQ(d->layers[2].media_type, mt::kOciLayerTarGzip);
  EXPECT_EQ(d->manifest_media_type, mt::kOciManifest);

  Result<images::ImageConfig> config = images::ParseImageConfig(d->config);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_EQ(config->diff_ids.size(), 3u);
  EXPECT_EQ(config->diff_ids[0], base.diff_ids[0]);
  EXPECT_EQ(config->diff_ids[2], r->diff_id);
  EXPECT_FALSE(config->history_mismatch) << d->config;
  ASSERT_FALSE(config->history.empty());
  const images::HistoryEntry& h = config->history.back();
  EXPECT_EQ(h.created_by, "imgstore commit");
  EXPECT_EQ(h.author, "Tester <t@example.com>");
  EXPECT_EQ(h.comment, "a message");
  EXPECT_FALSE(h.empty_layer);
  EXPECT_EQ(h.created, config->created);
  EXPECT_EQ(config->author, "Tester <t@example.com>");
  // Created now, in UTC.
  EXPECT_TRUE(config->created.ends_with("Z")) << config->created;
  EXPECT_GT(d->summary.created_unix_ns, d->summary.added_unix_ns - int64_t{3600} * 1000000000);
  EXPECT_EQ(config->architecture, "amd64");  // the rest of the base config is kept

  // The new image unpacks to the changed tree.
  const std::string again = Unpacked("committed:v1", "again");
  EXPECT_EQ(ReadTree(again), ReadTree(work));
  Tree t = ReadTree(again);
  EXPECT_EQ(t.count("etc/hosts"), 0u);
  EXPECT_EQ(t.count("var/cache/a"), 0u);
  EXPECT_EQ(t["var/cache/c"], "file 0644 0:0 c");
  EXPECT_EQ(t["etc/passwd"], "file 0600 0:0 root:x:0:0\n");
  ExpectConsistent(*store_);
}

TEST_F(CommitTest, NoChangeAddsNoLayer) {
  AddBase("base");
  const std::string work = Unpacked("base", "work");
  Result<CommitResult> r = store_->Commit(work, "base", {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->layer_digest.empty());
  Result<ImageDetails> d = store_->InspectImage(r->image.id.ToString());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->layers.size(), 2u);
  Result<images::ImageConfig> config = images::ParseImageConfig(d->config);
  ASSERT_TRUE(config.ok());
  ASSERT_FALSE(config->history.empty());
  EXPECT_TRUE(config->history.back().empty_layer);
  EXPECT_FALSE(config->history_mismatch);
  EXPECT_EQ(ImageCount(), 2);  // still a new image (new created time, history)
  ExpectConsistent(*store_);
}

// A file added with a sub-second mtime goes into the layer with whole seconds: comparing the
// same directory against the committed image again must find nothing changed.
TEST_F(CommitTest, CommittingTheSameDirectoryAgainAddsNoLayer) {
  AddBase("base");
  const std::string work = Unpacked("base", "work");
  WriteFile(work + "/new-file", "new");
  struct timespec times[2] = {{0, UTIME_OMIT}, {1700000000, 123456789}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (work + "/new-file").c_str(), times, 0), 0);
  CommitOptions first;
  first.names = {"once:1"};
  Result<CommitResult> r = store_->Commit(work, "base", first);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_FALSE(r->layer_digest.empty());
  CommitOptions second;
  second.names = {"twice:1"};
  r = store_->Commit(work, "once:1", second);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->layer_digest.empty())
      << "the second commit found changes: " << r->layer_digest.ToString();
  // A real change one second later is still seen.
  times[1] = {1700000001, 0};
  ASSERT_EQ(::utimensat(AT_FDCWD, (work + "/new-file").c_str(), times, 0), 0);
  r = store_->Commit(work, "twice:1", {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->layer_digest.empty());
}

struct TypeCase {
  const char* name;
  bool docker_base;
  layers::Compression compression;
  std::string_view want_manifest;
  std::string_view want_layer;
};

void PrintTo(const TypeCase& c, std::ostream* os) { *os << c.name; }

class CommitTypes : public CommitTest, public ::testing::WithParamInterface<TypeCase> {};

TEST_P(CommitTypes, ManifestTypeRules) {
  const TypeCase& c = GetParam();
  AddBase("base", c.docker_base);
  const std::string work = Unpacked("base", "work");
  WriteFile(work + "/added", "x");
  CommitOptions opts;
  opts.compression = c.compression;
  opts.names = {"new"};
  Result<CommitResult> r = store_->Commit(work, "base", opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Result<ImageDetails> d = store_->InspectImage("new");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->manifest_media_type, c.want_manifest);
  Result<images::ImageManifest> m = images::ParseImageManifest(d->manifest, "");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->media_type, c.want_manifest);
  ASSERT_EQ(m->layers.size(), 3u);
  EXPECT_EQ(m->layers[2].media_type, c.want_layer);
  const bool oci = c.want_manifest == mt::kOciManifest;
  EXPECT_EQ(m->config.media_type, oci ? mt::kOciConfig : mt::kDockerConfig);
  for (const images::Descriptor& l : m->layers) {
    // No Docker layer type in an OCI manifest, and the other way round.
    EXPECT_EQ(l.media_type.starts_with("application/vnd.oci."), oci) << l.media_type;
  }
  EXPECT_TRUE(Unpacked("new", "again").size() > 0);
  EXPECT_EQ(ReadTree(dir_.Sub("again")), ReadTree(work));
  ExpectConsistent(*store_);
}

INSTANTIATE_TEST_SUITE_P(Types, CommitTypes,
                         ::testing::Values(TypeCase{"DockerGzip", true, layers::Compression::kGzip,
                                                    mt::kDockerManifest, mt::kDockerLayerTarGzip},
                                           TypeCase{"DockerZstd", true, layers::Compression::kZstd,
                                                    mt::kOciManifest, mt::kOciLayerTarZstd},
                                           TypeCase{"OciGzip", false, layers::Compression::kGzip,
                                                    mt::kOciManifest, mt::kOciLayerTarGzip},
                                           TypeCase{"OciZstd", false, layers::Compression::kZstd,
                                                    mt::kOciManifest, mt::kOciLayerTarZstd},
                                           TypeCase{"DockerNone", true, layers::Compression::kNone,
                                                    mt::kDockerManifest, mt::kDockerLayerTar}),
                         [](const ::testing::TestParamInfo<TypeCase>& info) {
                           return std::string(info.param.name);
                         });

TEST_F(CommitTest, UnknownBaseIsNotFound) {
  Result<CommitResult> r = store_->Commit(dir_.path(), "nosuchimage", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().ToString();
  EXPECT_NE(r.status().message().find("nosuchimage"), std::string::npos);
  ExpectConsistent(*store_);
}

TEST_F(CommitTest, UnknownMountIsNotFound) {
  Result<CommitResult> r = store_->Commit("no-such-mount", "", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().ToString();
}

TEST_F(CommitTest, SourceMustBeADirectory) {
  AddBase("base");
  WriteFile(dir_.Sub("plain"), "x");
  Result<CommitResult> r = store_->Commit(dir_.Sub("plain"), "base", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
}

TEST_F(CommitTest, CancelledLeavesNothing) {
  AddBase("base");
  const std::string work = Unpacked("base", "work");
  Change(work);
  CommitOptions opts;
  opts.cancelled = [] { return true; };
  Result<CommitResult> r = store_->Commit(work, "base", opts);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCancelled) << r.status().ToString();
  EXPECT_EQ(ImageCount(), 1);
  ExpectConsistent(*store_);
}

TEST_F(CommitTest, CopyMount) {
  AddBase("base");
  Result<MountInfo> m = MountChanged("copy", "c1");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  CommitOptions opts;
  opts.names = {"from-copy"};
  Result<CommitResult> r = store_->Commit("c1", "", opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ReadTree(Unpacked("from-copy", "again")), ReadTree(m->path));
  ASSERT_TRUE(store_->Unmount("c1").ok());
  ExpectConsistent(*store_);
}

// An umount while a commit of the mount reads its changes waits for the commit (found by the
// stress test: the umount removed the directory under the diff, which failed with a raw "No such
// file or directory"). The umount here comes from another Store handle with a short deadline,
// from inside the diff (the commit's cancel check), and must time out; after the commit it works.
TEST_F(CommitTest, AnUmountWaitsForACommitOfTheMount) {
  AddBase("base");
  Result<MountInfo> m = MountChanged("copy", "busy");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  StoreOptions quick;
  quick.lock_timeout = std::chrono::milliseconds(200);
  std::unique_ptr<Store> other = testing::OpenStore(store_->root(), quick);
  ASSERT_NE(other, nullptr);
  std::optional<Status> during;
  CommitOptions opts;
  opts.names = {"from-busy"};
  opts.cancelled = [&] {
    if (!during) during = other->Unmount("busy");
    return false;
  };
  Result<CommitResult> r = store_->Commit("busy", "", opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(during.has_value());
  EXPECT_EQ(during->code(), Code::kTimeout) << during->ToString();
  EXPECT_EQ(ReadTree(Unpacked("from-busy", "out")), ReadTree(m->path));
  EXPECT_TRUE(other->Unmount("busy").ok());
  ExpectConsistent(*store_);
}

// A mount keeps what its image needs through rmi and gc, so its changes can still be committed
// once the image is gone (both kinds: an overlay needs no lower layers for the diff, a copy
// needs them all).
TEST_F(CommitTest, MountWhoseImageWasRemovedAndCollected) {
  AddBase("base");
  std::vector<std::string> kinds = {"copy"};
  if (::geteuid() == 0) kinds.push_back("overlay");
  for (const std::string& kind : kinds) {
    SCOPED_TRACE(kind);
    if (kind == "overlay") AddBase("base");  // removed by the first round
    const std::string name = "gone-" + kind;
    Result<MountInfo> m = MountChanged(kind, name);
    if (!m.ok() && m.status().code() == Code::kUnsupported) continue;
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ASSERT_TRUE(store_->Remove("base", /*force=*/true).ok());
    Result<GcReport> gc = store_->GarbageCollect();
    ASSERT_TRUE(gc.ok()) << gc.status().ToString();
    EXPECT_EQ(store_->InspectImage(m->image_id.ToString()).status().code(), Code::kNotFound);
    CommitOptions opts;
    opts.names = {"after-" + kind};
    Result<CommitResult> r = store_->Commit(name, "", opts);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(ReadTree(Unpacked("after-" + kind, "again-" + kind)), ReadTree(m->path));
    ASSERT_TRUE(store_->Unmount(name).ok());
    ExpectConsistent(*store_);
  }
}

TEST_F(CommitTest, OverlayMount) {
  if (::geteuid() != 0) GTEST_SKIP() << "overlay mounts need root";
  AddBase("base");
  Result<MountInfo> m = MountChanged("overlay", "o1");
  if (!m.ok() && m.status().code() == Code::kUnsupported) {
    GTEST_SKIP() << "overlay not available here: " << m.status().ToString();
  }
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  // A directory made opaque through the mount: removed and made again.
  ASSERT_EQ(::unlink((m->path + "/var/cache/c").c_str()), 0);
  ASSERT_EQ(::rmdir((m->path + "/var/cache").c_str()), 0);
  ASSERT_EQ(::mkdir((m->path + "/var/cache").c_str(), 0755), 0);
  WriteFile(m->path + "/var/cache/d", "d");
  CommitOptions opts;
  opts.names = {"from-overlay"};
  Result<CommitResult> r = store_->Commit(m->path, "", opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Tree want = ReadTree(m->path);
  Tree got = ReadTree(Unpacked("from-overlay", "again"));
  EXPECT_EQ(got, want);
  EXPECT_EQ(got.count("var/cache/a"), 0u);
  EXPECT_EQ(got["var/cache/d"], "file 0644 0:0 d");
  ASSERT_TRUE(store_->Unmount("o1").ok());
  ExpectConsistent(*store_);
}

// A failing disk at each write, sync and rename of the commit: an error naming the failure, no
// new image, nothing in ingest/, check clean; blobs the commit wrote before the failure are
// unreferenced and a gc takes them (none pinned once the commit returned).
TEST(CommitFault, FailureWhileWritingLeavesNothing) {
  for (FsOp op : {FsOp::kWrite, FsOp::kSync, FsOp::kRename}) {
    for (uint64_t nth = 1;; ++nth) {
      imgstore::testing::TempDir dir;
      FaultEnv env;
      std::unique_ptr<Store> store = testing::OpenStoreOn(dir.Sub("root"), &env);
      ASSERT_NE(store, nullptr);
      TestImage base = ImageOfLayers(SmallRootfsLayers(), LayerCompression::kGzip, "base");
      testing::AddImageWithBlobs(*store, base, {"base"});
      ASSERT_TRUE(store->Unpack("base", dir.Sub("work")).ok());
      Change(dir.Sub("work"));
      Result<std::vector<BlobInfo>> before = store->ListBlobs();
      ASSERT_TRUE(before.ok());
      env.ResetCounts();
      env.FailNth(op, nth, ENOSPC);
      Result<CommitResult> r = store->Commit(dir.Sub("work"), "base", {});
      env.ClearFaults();
      if (env.faults_fired() == 0) {
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        EXPECT_GT(nth, 1u) << "no " << imgstore::testing::FsOpName(op) << " at all?";
        break;  // past the last operation of this kind
      }
      if (r.ok()) {
        // A failure after AddImage recorded the image (the lease release) is not one of these
        // ops; a fault that fired must have failed the commit.
        ADD_FAILURE() << "commit succeeded although " << env.last_fault() << " failed";
        break;
      }
      EXPECT_EQ(r.status().code(), Code::kNoSpace) << r.status().ToString();
      Result<std::vector<ImageSummary>> images = store->ListImages();
      ASSERT_TRUE(images.ok());
      EXPECT_EQ(images->size(), 1u) << env.last_fault();
      ExpectConsistent(*store);
      Result<GcReport> gc = store->GarbageCollect();
      ASSERT_TRUE(gc.ok()) << gc.status().ToString();
      Result<std::vector<BlobInfo>> after = store->ListBlobs();
      ASSERT_TRUE(after.ok());
      EXPECT_EQ(after->size(), before->size()) << env.last_fault();
    }
  }
}

}  // namespace
}  // namespace imgstore::store
