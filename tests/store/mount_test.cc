// Store::Mount, Unmount, ListMounts, GetMount: overlay and copy mounts of a three-layer image show
// the flattened tree (whiteouts and an opaque directory applied), writes land in the upper dir and
// never in the layer cache, names collide cleanly, rmi + gc keep what a mount uses until it is
// unmounted, a mount whose creator was killed (a real child process, SIGKILL at chosen points) is
// cleaned by the next Store::Open, and Check/Repair report and fix broken mounts.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include "common/fs_tree.h"
#include "common/layer_image.h"
#include "common/tar_builder.h"
#include "layers/overlay_mount.h"
#include "store/schema.h"
#include "store/store.h"
#include "store_test_util.h"

namespace imgstore::store {
namespace {

using imgstore::testing::ImageOfLayers;
using imgstore::testing::TarBuilder;
using testing::CountRows;
using testing::Describe;
using testing::ExpectConsistent;
using testing::TestImage;

using imgstore::testing::Exists;
using imgstore::testing::ReadFile;
using imgstore::testing::WriteFile;

// Three layers: the second changes a file, deletes one and makes a directory opaque; the third
// adds a file and a symlink.
TestImage ThreeLayerImage(const std::string& label = "") {
  std::string l0 = TarBuilder()
                       .Dir("etc")
                       .File("etc/base", "base\n")
                       .File("etc/gone", "gone\n")
                       .Dir("d")
                       .File("d/old", "old\n")
                       .File("keep", "keep\n")
                       .Finish();
  std::string l1 = TarBuilder()
                       .Dir("etc")
                       .File("etc/base", "changed\n")
                       .Whiteout("etc/gone")
                       .Dir("d")
                       .Opaque("d")
                       .File("d/new", "new\n")
                       .Finish();
  std::string l2 = TarBuilder().File("top", "top\n").Symlink("link", "etc/base").Finish();
  return ImageOfLayers({l0, l1, l2}, imgstore::testing::LayerCompression::kGzip, label);
}

// The flattened tree of ThreeLayerImage, checked at `root`.
void ExpectFlattened(const std::string& root) {
  EXPECT_EQ(ReadFile(root + "/etc/base"), "changed\n");
  EXPECT_FALSE(Exists(root + "/etc/gone")) << "whiteout";
  EXPECT_FALSE(Exists(root + "/d/old")) << "opaque directory";
  EXPECT_EQ(ReadFile(root + "/d/new"), "new\n");
  EXPECT_EQ(ReadFile(root + "/keep"), "keep\n");
  EXPECT_EQ(ReadFile(root + "/top"), "top\n");
  char target[64] = {};
  ASSERT_GT(::readlink((root + "/link").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "etc/base");
}

bool OverlayAvailable(const std::string& dir, std::string* why) {
  if (::geteuid() != 0) {
    *why = "overlay mounts need root";
    return false;
  }
  Status s = layers::OverlaySupported(dir);
  *why = s.ToString();
  return s.ok();
}

class MountTest : public testing::StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    image_ = ThreeLayerImage();
    testing::AddImageWithBlobs(*store_, image_, {"example.com/team/app:v1"});
  }
  void TearDown() override {
    // Never leave a mount behind in the temporary directory.
    if (store_ != nullptr) {
      Result<std::vector<MountInfo>> all = store_->ListMounts();
      if (all.ok()) {
        for (const MountInfo& m : *all) (void)store_->Unmount(m.name);
      }
    }
  }
  void RequireOverlay() {
    std::string why;
    if (!OverlayAvailable(dir_.path(), &why)) GTEST_SKIP() << why;
    overlay_ = true;
  }
  MountInfo MountOk(std::string_view image, const std::string& kind, const std::string& name = "") {
    MountOptions o;
    o.kind = kind;
    o.name = name;
    Result<MountInfo> m = store_->Mount(image, o);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : MountInfo();
  }
  std::vector<std::string> LayerDirs() {
    std::vector<std::string> dirs;
    for (const Digest& c : ChainIds(image_.diff_ids)) dirs.push_back(LayerDir(store_->root(), c));
    return dirs;
  }

  TestImage image_;
  bool overlay_ = false;
};

TEST_F(MountTest, AnOverlayMountShowsTheFlattenedTreeAndWritesGoToItsUpperDir) {
  RequireOverlay();
  MountInfo m = MountOk("example.com/team/app:v1", "overlay", "web");
  ASSERT_EQ(m.name, "web");
  EXPECT_EQ(m.kind, "overlay");
  EXPECT_EQ(m.path, store_->root() + "/mounts/web/merged");
  EXPECT_EQ(m.upper_dir, store_->root() + "/mounts/web/upper");
  EXPECT_EQ(m.image_id, image_.id);
  EXPECT_EQ(m.manifest_digest, image_.manifest_digest);
  EXPECT_EQ(m.image_name, "example.com/team/app:v1");
  EXPECT_TRUE(m.mounted);
  EXPECT_EQ(m.chain_ids, ChainIds(image_.diff_ids));
  EXPECT_TRUE(layers::IsMountPoint(m.path));
  ExpectFlattened(m.path);

  WriteFile(m.path + "/written", "by the container\n");
  WriteFile(m.path + "/etc/base", "modified\n");
  ASSERT_EQ(::unlink((m.path + "/keep").c_str()), 0);
  EXPECT_EQ(ReadFile(m.upper_dir + "/written"), "by the container\n");
  EXPECT_EQ(ReadFile(m.upper_dir + "/etc/base"), "modified\n");
  for (const std::string& layer : LayerDirs()) {
    EXPECT_FALSE(Exists(layer + "/written")) << layer;
  }
  EXPECT_EQ(ReadFile(LayerDirs()[1] + "/etc/base"), "changed\n") << "the cache is untouched";
  EXPECT_EQ(ReadFile(LayerDirs()[0] + "/keep"), "keep\n");

  ExpectConsistent(*store_);
  ASSERT_TRUE(store_->Unmount("web").ok());
  EXPECT_FALSE(layers::IsMountPoint(m.path));
  EXPECT_FALSE(Exists(store_->root() + "/mounts/web"));
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM mounts"), 0);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM mount_layers"), 0);
  ExpectConsistent(*store_);
}

// An rmi and a gc (another Store on the same root) while the layers are extracted: the
// extraction completes (its lease keeps the blobs and layer rows), then the mount, which would
// refer to an image that is gone, says so and leaves nothing; gc then takes everything.
TEST_F(MountTest, AnImageRemovedAndCollectedWhileItsLayersAreExtractedIsNotMounted) {
  std::unique_ptr<Store> other = testing::OpenStore(store_->root());
  ASSERT_NE(other, nullptr);
  int extracted = 0;
  MountOptions o;
  o.kind = "copy";
  o.name = "gone";
  o.layers.on_extract = [&](const Digest&, bool done) {
    if (!done || ++extracted != 1) return;
    ASSERT_TRUE(other->Remove("example.com/team/app:v1").ok());
    Result<GcReport> gc = other->GarbageCollect();
    ASSERT_TRUE(gc.ok()) << gc.status().ToString();
    EXPECT_EQ(gc->layers_removed, 0);
  };
  Result<MountInfo> m = store_->Mount(image_.id.ToString(), o);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(extracted, 3) << "every layer was extracted from its pinned blob";
  EXPECT_EQ(m.status().code(), Code::kNotFound) << m.status().ToString();
  EXPECT_NE(m.status().message().find("removed while being mounted"), std::string::npos)
      << m.status().ToString();
  EXPECT_FALSE(Exists(store_->root() + "/mounts/gone"));
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM mounts"), 0);
  ExpectConsistent(*store_);
  Result<GcReport> gc = store_->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_EQ(gc->layers_removed, 3);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM blobs"), 0);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM leases"), 0);
  ExpectConsistent(*store_);
}

TEST_F(MountTest, ACopyMountShowsTheFlattenedTreeAndLeavesTheCacheAlone) {
  MountInfo m = MountOk(image_.id.ToString(), "copy", "copied");
  EXPECT_EQ(m.kind, "copy");
  EXPECT_EQ(m.upper_dir, "");
  EXPECT_EQ(m.image_name, "") << "mounted by id";
  EXPECT_TRUE(m.mounted);
  EXPECT_FALSE(layers::IsMountPoint(m.path));
  ExpectFlattened(m.path);
  WriteFile(m.path + "/etc/base", "modified\n");
  EXPECT_EQ(ReadFile(LayerDirs()[1] + "/etc/base"), "changed\n");
  ExpectConsistent(*store_);

  // By its mount point, as a runtime that only kept the path would.
  EXPECT_TRUE(Exists(store_->root() + "/locks/mount-copied.lock"));
  ASSERT_TRUE(store_->Unmount(m.path).ok());
  EXPECT_FALSE(Exists(store_->root() + "/mounts/copied"));
  EXPECT_FALSE(Exists(store_->root() + "/locks/mount-copied.lock")) << "no lock file per name";
  EXPECT_EQ(store_->GetMount("copied").status().code(), Code::kNotFound);
  ExpectConsistent(*store_);
}

TEST_F(MountTest, AutoChoosesOverlayWhereItWorks) {
  std::string why;
  bool overlay = OverlayAvailable(dir_.path(), &why);
  MountInfo m = MountOk("example.com/team/app:v1", "auto");
  EXPECT_EQ(m.kind, overlay ? "overlay" : "copy") << why;
  ExpectFlattened(m.path);
}

TEST_F(MountTest, GetMountByNameMountPointOrDirectory) {
  MountInfo m = MountOk("example.com/team/app:v1", "copy", "x1");
  for (const std::string& key :
       {std::string("x1"), m.path, m.path + "/", store_->root() + "/mounts/x1",
        store_->root() + "/mounts/../mounts/x1/merged"}) {
    Result<MountInfo> got = store_->GetMount(key);
    ASSERT_TRUE(got.ok()) << key << ": " << got.status().ToString();
    EXPECT_EQ(got->name, "x1") << key;
    EXPECT_EQ(got->path, m.path);
    EXPECT_EQ(got->chain_ids, m.chain_ids);
  }
  for (const std::string& key : {std::string("x2"), dir_.path(), store_->root() + "/mounts",
                                 store_->root() + "/layers/x1", std::string("bad name")}) {
    Result<MountInfo> got = store_->GetMount(key);
    EXPECT_EQ(got.status().code(), Code::kNotFound) << key;
  }
  EXPECT_EQ(store_->GetMount("x2").status().message(), "mount not known: x2");
}

TEST_F(MountTest, ListMountsShowsEveryMountOldestFirst) {
  MountInfo a = MountOk("example.com/team/app:v1", "copy", "first");
  MountInfo b = MountOk("example.com/team/app:v1", "copy", "second");
  Result<std::vector<MountInfo>> all = store_->ListMounts();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "first");
  EXPECT_EQ((*all)[1].name, "second");
  EXPECT_LE((*all)[0].created_unix_ns, (*all)[1].created_unix_ns);
  EXPECT_EQ((*all)[1].image_id, image_.id);
  ASSERT_TRUE(store_->Unmount("first").ok());
  all = store_->ListMounts();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].name, "second");
}

TEST_F(MountTest, GeneratedNamesAreReadableAndUnique) {
  MountInfo a = MountOk("example.com/team/app:v1", "copy");
  MountInfo b = MountOk("example.com/team/app:v1", "copy");
  MountInfo c = MountOk(image_.id.ToString(), "copy");
  EXPECT_NE(a.name, b.name);
  EXPECT_TRUE(a.name.starts_with("app-")) << a.name;
  EXPECT_EQ(a.name.size(), 4u + 8u) << a.name;
  EXPECT_TRUE(c.name.starts_with("mount-")) << c.name;
}

TEST_F(MountTest, ANameInUseIsAlreadyExistsAndTheFirstMountStays) {
  MountInfo m = MountOk("example.com/team/app:v1", "copy", "dup");
  MountOptions o;
  o.kind = "copy";
  o.name = "dup";
  Result<MountInfo> again = store_->Mount("example.com/team/app:v1", o);
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists) << again.status().ToString();
  EXPECT_NE(again.status().message().find("dup"), std::string::npos);
  ExpectFlattened(m.path);
  EXPECT_TRUE(store_->GetMount("dup").ok());
  ExpectConsistent(*store_);
}

TEST_F(MountTest, TwoThreadsMountingOneNameGetOneMount) {
  std::atomic<int> ok{0}, exists{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] {
      MountOptions o;
      o.kind = "copy";
      o.name = "race";
      Result<MountInfo> m = store_->Mount("example.com/team/app:v1", o);
      if (m.ok()) {
        ++ok;
      } else if (m.status().code() == Code::kAlreadyExists) {
        ++exists;
      } else {
        ++other;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(exists, 1);
  EXPECT_EQ(other, 0);
  ExpectConsistent(*store_);
}

TEST_F(MountTest, ErrorsNameWhatFailed) {
  MountOptions o;
  Result<MountInfo> m = store_->Mount("no/such:image", o);
  EXPECT_EQ(m.status().code(), Code::kNotFound) << m.status().ToString();
  o.name = "-bad";
  m = store_->Mount("example.com/team/app:v1", o);
  EXPECT_EQ(m.status().code(), Code::kInvalidArgument) << m.status().ToString();
  o.name = std::string(129, 'a');
  EXPECT_EQ(store_->Mount("example.com/team/app:v1", o).status().code(), Code::kInvalidArgument);
  o.name = "ok";
  o.kind = "bind";
  m = store_->Mount("example.com/team/app:v1", o);
  EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
  EXPECT_NE(m.status().message().find("bind"), std::string::npos);

  Status s = store_->Unmount("nothing");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "mount not known: nothing");
  EXPECT_EQ(store_->Unmount(dir_.path()).code(), Code::kNotFound);
  EXPECT_FALSE(Exists(store_->root() + "/mounts/ok"));
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM mounts"), 0);
}

TEST_F(MountTest, OverlayWhereItIsUnavailableFailsWithoutLeftovers) {
  if (::geteuid() == 0) {
    // As root, the unprivileged path is checked in a child that drops its privileges.
    const std::string root = store_->root();
    store_.reset();
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
    ASSERT_EQ(::system(("chown -R 65534:65534 " + root).c_str()), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
        _exit(3);
      }
      Result<std::unique_ptr<Store>> s = Store::Open(root);
      if (!s.ok()) _exit(4);
      MountOptions o;
      o.kind = "overlay";
      o.name = "ov";
      Result<MountInfo> m = (*s)->Mount("example.com/team/app:v1", o);
      if (m.ok() || m.status().code() != Code::kPermissionDenied) _exit(5);
      if (Exists(root + "/mounts/ov")) _exit(6);
      o.kind = "auto";
      m = (*s)->Mount("example.com/team/app:v1", o);
      if (!m.ok() || m->kind != "copy") _exit(7);
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0)
        << "3: setresuid, 4: open, 5: overlay not refused, 6: leftover, 7: auto is not a copy";
    store_ = testing::OpenStore(root);
    ASSERT_NE(store_, nullptr);
    Result<MountInfo> m = store_->GetMount("ov");
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->kind, "copy");
    ExpectFlattened(m->path);
    ExpectConsistent(*store_);
    return;
  }
  MountOptions o;
  o.kind = "overlay";
  Result<MountInfo> m = store_->Mount("example.com/team/app:v1", o);
  EXPECT_EQ(m.status().code(), Code::kPermissionDenied) << m.status().ToString();
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM mounts"), 0);
}

TEST_F(MountTest, RmiAndGcKeepWhatAMountUsesUntilItIsUnmounted) {
  MountInfo m = MountOk("example.com/team/app:v1", "auto", "kept");
  ASSERT_TRUE(store_->Remove("example.com/team/app:v1").ok());
  EXPECT_EQ(store_->ResolveImage("example.com/team/app:v1").status().code(), Code::kNotFound);

  Result<GcReport> gc = store_->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_TRUE(gc->blobs_removed.empty()) << gc->blobs_removed.front().ToString();
  EXPECT_EQ(gc->layers_removed, 0);
  EXPECT_EQ(gc->manifests_removed, 0);
  for (const std::string& layer : image_.layers) {
    EXPECT_TRUE(*store_->HasBlob(Digest::Of(layer)));
  }
  EXPECT_TRUE(*store_->HasBlob(image_.id));
  EXPECT_TRUE(*store_->HasBlob(image_.manifest_digest));
  for (const std::string& dir : LayerDirs()) EXPECT_TRUE(Exists(dir)) << dir;
  ExpectFlattened(m.path);
  Result<DiskUsage> df = store_->GetDiskUsage();
  ASSERT_TRUE(df.ok());
  EXPECT_EQ(df->reclaimable_blobs, 0u);
  EXPECT_EQ(df->reclaimable_layers, 0u);
  Result<MountInfo> still = store_->GetMount("kept");
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->image_id, image_.id);
  ExpectConsistent(*store_);

  ASSERT_TRUE(store_->Unmount("kept").ok());
  gc = store_->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_EQ(gc->blobs_removed.size(), image_.layers.size() + 2) << "layers, config, manifest";
  EXPECT_EQ(gc->layers_removed, 3);
  for (const std::string& layer : image_.layers) {
    EXPECT_FALSE(*store_->HasBlob(Digest::Of(layer)));
  }
  for (const std::string& dir : LayerDirs()) EXPECT_FALSE(Exists(dir)) << dir;
  ExpectConsistent(*store_);
}

TEST_F(MountTest, AnOverlayThatIsNoLongerMountedStaysListedAndUmountRemovesIt) {
  RequireOverlay();
  MountInfo m = MountOk("example.com/team/app:v1", "overlay", "rebooted");
  WriteFile(m.path + "/data", "x");
  // What a reboot does: the kernel forgets the mount, the directories and the row stay.
  ASSERT_TRUE(layers::UnmountOverlay(m.path).ok());
  Result<MountInfo> got = store_->GetMount("rebooted");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->mounted);
  EXPECT_EQ(ReadFile(got->upper_dir + "/data"), "x") << "the changes are kept";
  ExpectConsistent(*store_);
  ASSERT_TRUE(store_->Unmount("rebooted").ok());
  EXPECT_FALSE(Exists(store_->root() + "/mounts/rebooted"));
}

TEST_F(MountTest, CheckReportsARowWithoutItsDirectoryAndRepairDropsIt) {
  MountInfo m = MountOk("example.com/team/app:v1", "copy", "lost");
  ASSERT_TRUE(imgstore::testing::RemoveTree(store_->root() + "/mounts/lost"));
  Result<CheckReport> report = store_->Check();
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->problems.size(), 1u) << Describe(*report);
  EXPECT_EQ(report->problems[0].kind, ProblemKind::kMount);
  EXPECT_NE(report->problems[0].message.find("lost"), std::string::npos);
  report = store_->Repair();
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_TRUE(report->problems[0].repaired);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM mounts"), 0);
  ExpectConsistent(*store_);
}

TEST_F(MountTest, CheckReportsAStrayEntryInMountsAndRepairRemovesIt) {
  ASSERT_EQ(::mkdir((store_->root() + "/mounts").c_str(), 0755), 0);
  WriteFile(store_->root() + "/mounts/.junk", "x");
  Result<CheckReport> report = store_->Repair();
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->problems.size(), 1u) << Describe(*report);
  EXPECT_EQ(report->problems[0].kind, ProblemKind::kMount);
  EXPECT_TRUE(report->problems[0].repaired);
  EXPECT_FALSE(Exists(store_->root() + "/mounts/.junk"));
}

TEST_F(MountTest, ADirectoryWithoutARowIsADeadCreatorsAndOpenRemovesIt) {
  // What a creator killed between reserving the name and recording the rows leaves.
  ASSERT_EQ(::mkdir((store_->root() + "/mounts").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((store_->root() + "/mounts/orphan").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((store_->root() + "/mounts/orphan/merged").c_str(), 0755), 0);
  WriteFile(store_->root() + "/mounts/orphan/merged/f", "x");
  MountInfo live = MountOk("example.com/team/app:v1", "copy", "live");
  store_.reset();
  store_ = testing::OpenStore(dir_.Sub("root"));
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->recovery().mounts_removed, 1);
  EXPECT_FALSE(Exists(dir_.Sub("root/mounts/orphan")));
  ExpectFlattened(live.path);
  ExpectConsistent(*store_);
}

// An Env that kills its process (SIGKILL, as a crash would) at the first call that touches
// `path` with the operation `op`.
class KillAtEnv : public EnvWrapper {
 public:
  KillAtEnv(std::string op, std::string path)
      : EnvWrapper(Env::Default()), op_(std::move(op)), path_(std::move(path)) {}
  Status CreateDir(const std::string& path, mode_t mode) override {
    Hit("mkdir", path);
    return EnvWrapper::CreateDir(path, mode);
  }
  Status SyncDir(const std::string& path) override {
    Hit("syncdir", path);
    return EnvWrapper::SyncDir(path);
  }
  Status RemoveDir(const std::string& path) override {
    Hit("rmdir", path);
    return EnvWrapper::RemoveDir(path);
  }

 private:
  void Hit(const char* op, const std::string& path) {
    if (op_ == op && path == path_) ::kill(::getpid(), SIGKILL);
  }
  std::string op_, path_;
};

// Runs Mount("example.com/team/app:v1", name "victim") in a forked child whose Env kills it at
// (op, path); returns the wait status.
int MountAndDie(const std::string& root, const std::string& kind, const std::string& op,
                const std::string& path) {
  pid_t pid = ::fork();
  if (pid == 0) {
    KillAtEnv env(op, path);
    StoreOptions so;
    so.env = &env;
    Result<std::unique_ptr<Store>> s = Store::Open(root, so);
    if (!s.ok()) _exit(2);
    MountOptions o;
    o.kind = kind;
    o.name = "victim";
    Result<MountInfo> m = (*s)->Mount("example.com/team/app:v1", o);
    _exit(m.ok() ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

class KilledCreatorTest
    : public MountTest,
      public ::testing::WithParamInterface<std::tuple<std::string, std::string, std::string>> {};

TEST_P(KilledCreatorTest, TheNextOpenRemovesWhatItLeft) {
  const auto& [kind, op, where] = GetParam();
  if (kind == "overlay") RequireOverlay();
  if (IsSkipped()) return;
  const std::string root = store_->root();
  // The layers are cached by an earlier mount, so that the kill points are the mount's own.
  MountOk("example.com/team/app:v1", "copy", "earlier");
  store_.reset();

  const std::string victim = root + "/mounts/victim";
  int status = MountAndDie(root, kind, op, victim + where);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child was not killed at " << op << " " << where << ": "
      << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  ASSERT_TRUE(Exists(victim));
  const bool was_mounted = layers::IsMountPoint(victim + "/merged");
  EXPECT_EQ(was_mounted, kind == "overlay" && op == "syncdir") << "the kill point";

  store_ = testing::OpenStore(root);
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->recovery().mounts_removed, 1);
  EXPECT_FALSE(layers::IsMountPoint(victim + "/merged"));
  EXPECT_FALSE(Exists(victim));
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM mounts WHERE name = 'victim'"), 0);
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM mount_layers WHERE mount_name = 'victim'"), 0);
  EXPECT_EQ(store_->GetMount("victim").status().code(), Code::kNotFound);
  ExpectFlattened(store_->GetMount("earlier")->path);
  ExpectConsistent(*store_);
  // The name is free again.
  MountInfo again = MountOk("example.com/team/app:v1", kind, "victim");
  ExpectFlattened(again.path);
}

INSTANTIATE_TEST_SUITE_P(
    KillPoints, KilledCreatorTest,
    ::testing::Values(
        // After the rows ('creating'), before the view.
        std::make_tuple("copy", "mkdir", "/merged"), std::make_tuple("overlay", "mkdir", "/upper"),
        // After the view (a copy filled; an overlay mounted), before 'ready'.
        std::make_tuple("copy", "syncdir", ""), std::make_tuple("overlay", "syncdir", "")),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + std::get<1>(info.param) +
             (std::get<2>(info.param).empty() ? "" : "_" + std::get<2>(info.param).substr(1));
    });

TEST_F(MountTest, AnUmountKilledHalfWayIsFinishedByTheNextOpen) {
  std::string why;
  const std::string kind = OverlayAvailable(dir_.path(), &why) ? "overlay" : "copy";
  MountInfo m = MountOk("example.com/team/app:v1", kind, "victim");
  WriteFile(m.path + "/data", "x");
  const std::string root = store_->root();
  store_.reset();

  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    KillAtEnv env("rmdir", root + "/mounts/victim/merged");
    StoreOptions so;
    so.env = &env;
    Result<std::unique_ptr<Store>> s = Store::Open(root, so);
    if (!s.ok()) _exit(2);
    _exit((*s)->Unmount("victim").ok() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "not killed: exit " << WEXITSTATUS(status);
  ASSERT_TRUE(Exists(root + "/mounts/victim"));
  EXPECT_FALSE(layers::IsMountPoint(root + "/mounts/victim/merged"));

  store_ = testing::OpenStore(root);
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->recovery().mounts_removed, 1);
  EXPECT_FALSE(Exists(root + "/mounts/victim"));
  EXPECT_EQ(CountRows(*store_, "SELECT count(*) FROM mounts"), 0);
  ExpectConsistent(*store_);
}

TEST(MountSchemaTest, AVersion3StoreGetsTheMountTables) {
  imgstore::testing::TempDir dir;
  {
    Result<std::unique_ptr<Db>> db = Db::Open(dir.Sub("meta.db"));
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(EnsureSchema(**db, Migrations().first(3)).ok());
  }
  Result<std::unique_ptr<Store>> store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(*SchemaVersion((*store)->db()), kSchemaVersion);
  Result<std::vector<MountInfo>> none = (*store)->ListMounts();
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());
  // The kinds are constrained.
  Result<WriteTransaction> txn = (*store)->db().BeginWrite();
  ASSERT_TRUE(txn.ok());
  Status s = txn->Exec("INSERT INTO mounts VALUES ('n', 'i', 'm', '', 'bind', 'ready', 1)");
  EXPECT_NE(s.message().find("CHECK"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace imgstore::store
