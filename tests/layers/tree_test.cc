// Tests of src/layers/tree.h: flattening layer directories (ApplyLayerDir) and writing the
// changes of an upper directory or of a directory against lower layers as a layer tar.
#include "layers/tree.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/fs_tree.h"
#include "common/temp_dir.h"
#include "layers/extract.h"

namespace imgstore::layers {
namespace {

using imgstore::testing::TempDir;

bool IsRoot() { return geteuid() == 0; }

using imgstore::testing::ReadFile;
using imgstore::testing::TreeText;

void WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644) {
  imgstore::testing::WriteFile(path, data, mode);
}

void MkDir(const std::string& path, mode_t mode = 0755) {
  ASSERT_EQ(mkdir(path.c_str(), mode), 0) << path << ": " << strerror(errno);
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

void Whiteout(const std::string& path) {
  ASSERT_EQ(mknod(path.c_str(), S_IFCHR | 0, makedev(0, 0)), 0) << path << ": " << strerror(errno);
}

void MakeOpaque(const std::string& dir) {
  ASSERT_EQ(setxattr(dir.c_str(), "trusted.overlay.opaque", "y", 1, 0), 0)
      << dir << ": " << strerror(errno);
}

void SetMtime(const std::string& path, time_t sec, long nsec = 0) {
  struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << path;
}

// What a tree holds, one line per entry, for comparisons: type, mode, owner, content or link
// target, mtimes to the nanosecond (of directories optional: they change with their children),
// xattrs (but not overlay.*), and which names share an inode.
imgstore::testing::FsTree Snapshot(const std::string& root, bool with_dir_mtime = true) {
  return imgstore::testing::SnapshotTree(root, {.hardlink_groups = true,
                                                .file_mtimes = true,
                                                .dir_mtimes = with_dir_mtime,
                                                .mtime_nsec = true,
                                                .xattrs = true});
}

// --- ApplyLayerDir ---------------------------------------------------------------------------

// Three layers: the base; a second that deletes, replaces and adds; a third with an opaque dir.
class ThreeLayers : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "whiteouts (0/0 devices) and trusted.* xattrs need root";
    l1 = tmp.Sub("l1");
    l2 = tmp.Sub("l2");
    l3 = tmp.Sub("l3");
    target = tmp.Sub("target");
    for (const auto& d : {l1, l2, l3, target}) MkDir(d);
    // l1: etc/{passwd,group}, usr/bin/tool, data/{a,b,sub/c}, gone (dir), keep
    MkDir(l1 + "/etc");
    WriteFile(l1 + "/etc/passwd", "root:x:0:0\n");
    WriteFile(l1 + "/etc/group", "root:x:0:\n");
    MkDir(l1 + "/usr");
    MkDir(l1 + "/usr/bin");
    WriteFile(l1 + "/usr/bin/tool", "#!/bin/sh\n", 0755);
    MkDir(l1 + "/data");
    WriteFile(l1 + "/data/a", "a1");
    WriteFile(l1 + "/data/b", "b1");
    MkDir(l1 + "/data/sub");
    WriteFile(l1 + "/data/sub/c", "c1");
    MkDir(l1 + "/gone");
    WriteFile(l1 + "/gone/x", "x");
    WriteFile(l1 + "/keep", "keep");
    // l2: deletes etc/group and the dir gone, modifies data/a, adds data/new, turns keep into
    // a directory.
    MkDir(l2 + "/etc");
    Whiteout(l2 + "/etc/group");
    Whiteout(l2 + "/gone");
    MkDir(l2 + "/data");
    WriteFile(l2 + "/data/a", "a2");
    WriteFile(l2 + "/data/new", "new2");
    MkDir(l2 + "/keep");
    WriteFile(l2 + "/keep/inside", "inside");
    // l3: data is opaque (only data/only3 remains), etc/group comes back, usr/bin/tool deleted.
    MkDir(l3 + "/data");
    MakeOpaque(l3 + "/data");
    WriteFile(l3 + "/data/only3", "three");
    MkDir(l3 + "/etc");
    WriteFile(l3 + "/etc/group", "wheel:x:10:\n");
    MkDir(l3 + "/usr");
    MkDir(l3 + "/usr/bin");
    Whiteout(l3 + "/usr/bin/tool");
  }

  TempDir tmp;
  std::string l1, l2, l3, target;
};

TEST_F(ThreeLayers, WhiteoutsAndOpaqueDirsGiveTheExpectedTree) {
  uint64_t whiteouts = 0;
  for (const auto& l : {l1, l2, l3}) {
    Result<CopyStats> st = ApplyLayerDir(l, target);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    whiteouts += st->whiteouts;
  }
  EXPECT_EQ(whiteouts, 4u);  // etc/group, gone, usr/bin/tool, and the opaque data
  std::map<std::string, std::string> snap = Snapshot(target, false);
  std::set<std::string> paths;
  for (const auto& [k, v] : snap) paths.insert(k);
  EXPECT_EQ(paths, (std::set<std::string>{"etc", "etc/passwd", "etc/group", "usr", "usr/bin",
                                          "data", "data/only3", "keep", "keep/inside"}))
      << TreeText(snap);
  EXPECT_EQ(ReadFile(target + "/etc/group"), "wheel:x:10:\n");
  EXPECT_EQ(ReadFile(target + "/data/only3"), "three");
  EXPECT_EQ(ReadFile(target + "/keep/inside"), "inside");
  // No overlay marker leaks into the flattened tree.
  char v[8];
  EXPECT_LT(getxattr((target + "/data").c_str(), "trusted.overlay.opaque", v, sizeof v), 0);
}

TEST_F(ThreeLayers, ReapplyingTheBaseFirstChangesNothing) {
  // Applying is a pure function of the target and the layer: a base applied twice is the same
  // as once.
  std::string other = tmp.Sub("other");
  MkDir(other);
  for (const auto& l : {l1, l2, l3}) ASSERT_TRUE(ApplyLayerDir(l, target).ok());
  for (const auto& l : {l1, l1, l2, l3}) ASSERT_TRUE(ApplyLayerDir(l, other).ok());
  EXPECT_EQ(TreeText(Snapshot(target, false)), TreeText(Snapshot(other, false)));
}

TEST(ApplyLayerDir, SymlinkInTargetIsNotFollowed) {
  TempDir tmp;
  std::string outside = tmp.Sub("outside");
  std::string target = tmp.Sub("target");
  std::string layer = tmp.Sub("layer");
  MkDir(outside);
  MkDir(target);
  MkDir(layer);
  WriteFile(outside + "/victim", "original");
  // The lower content: "etc" is a symlink to a directory outside the root (absolute and
  // relative forms), and "f" a symlink to an outside file.
  ASSERT_EQ(symlink(outside.c_str(), (target + "/etc").c_str()), 0);
  ASSERT_EQ(symlink("../outside", (target + "/rel").c_str()), 0);
  ASSERT_EQ(symlink((outside + "/victim").c_str(), (target + "/f").c_str()), 0);
  // The layer writes below those names, and over the file link.
  MkDir(layer + "/etc");
  WriteFile(layer + "/etc/victim", "owned");
  MkDir(layer + "/rel");
  WriteFile(layer + "/rel/victim", "owned");
  WriteFile(layer + "/f", "replaced");
  Result<CopyStats> st = ApplyLayerDir(layer, target);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(ReadFile(outside + "/victim"), "original");
  std::vector<std::string> outside_names;
  for (const auto& [k, v] : Snapshot(outside)) outside_names.push_back(k);
  EXPECT_EQ(outside_names, std::vector<std::string>{"victim"});
  // The directories replaced the symlinks, as overlayfs shows an upper dir over a lower link.
  struct stat s;
  ASSERT_EQ(lstat((target + "/etc").c_str(), &s), 0);
  EXPECT_TRUE(S_ISDIR(s.st_mode));
  EXPECT_EQ(ReadFile(target + "/etc/victim"), "owned");
  ASSERT_EQ(lstat((target + "/f").c_str(), &s), 0);
  EXPECT_TRUE(S_ISREG(s.st_mode));
  EXPECT_EQ(ReadFile(target + "/f"), "replaced");
}

TEST(ApplyLayerDir, SymlinksInTheLayerAreCopiedNotFollowed) {
  TempDir tmp;
  std::string layer = tmp.Sub("layer");
  std::string target = tmp.Sub("target");
  MkDir(layer);
  MkDir(target);
  ASSERT_EQ(symlink("/etc/shadow", (layer + "/abs").c_str()), 0);
  ASSERT_EQ(symlink("../../x", (layer + "/up").c_str()), 0);
  Result<CopyStats> st = ApplyLayerDir(layer, target);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  std::map<std::string, std::string> snap = Snapshot(target);
  EXPECT_TRUE(snap["abs"].starts_with("symlink ") && snap["abs"].ends_with(" /etc/shadow"))
      << TreeText(snap);
  EXPECT_TRUE(snap["up"].starts_with("symlink ") && snap["up"].ends_with(" ../../x"))
      << TreeText(snap);
  EXPECT_EQ(snap.size(), 2u);
}

TEST(ApplyLayerDir, PreservesHardlinksModesOwnersTimesXattrs) {
  TempDir tmp;
  std::string layer = tmp.Sub("layer");
  std::string target = tmp.Sub("target");
  MkDir(layer);
  MkDir(target);
  MkDir(layer + "/d", 0750);
  WriteFile(layer + "/d/one", "shared", 04755);
  ASSERT_EQ(link((layer + "/d/one").c_str(), (layer + "/two").c_str()), 0);
  ASSERT_EQ(link((layer + "/d/one").c_str(), (layer + "/d/three").c_str()), 0);
  WriteFile(layer + "/plain", "p", 0600);
  ASSERT_EQ(setxattr((layer + "/plain").c_str(), "user.note", "hello", 5, 0), 0);
  ASSERT_EQ(mkfifo((layer + "/fifo").c_str(), 0640), 0);
  if (IsRoot()) {
    ASSERT_EQ(lchown((layer + "/plain").c_str(), 1234, 5678), 0);
    ASSERT_EQ(lchown((layer + "/d").c_str(), 42, 43), 0);
    ASSERT_EQ(mknod((layer + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_EQ(setxattr((layer + "/plain").c_str(), "trusted.overlay.origin", "x", 1, 0), 0);
  }
  ASSERT_EQ(symlink("plain", (layer + "/link").c_str()), 0);
  SetMtime(layer + "/plain", 1000000000, 123456789);
  SetMtime(layer + "/link", 1100000000, 5);
  SetMtime(layer + "/d/one", 1200000000);
  SetMtime(layer + "/d", 1300000000, 7);
  std::vector<std::string> warnings;
  CopyOptions opts;
  opts.on_warning = [&](const std::string& w) { warnings.push_back(w); };
  Result<CopyStats> st = ApplyLayerDir(layer, target, opts);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  std::map<std::string, std::string> want = Snapshot(layer);
  std::map<std::string, std::string> got = Snapshot(target);
  if (!IsRoot()) want.erase("fifo");  // skipped without privileges, with a warning
  EXPECT_EQ(TreeText(got), TreeText(want));
  int linked = 0;  // the three names of one inode: two of them point at the first seen
  for (const auto& [k, v] : got) linked += v.find(" link=") != std::string::npos ? 1 : 0;
  EXPECT_EQ(linked, 2) << TreeText(got);
  EXPECT_EQ(IsRoot(), warnings.empty());
  EXPECT_EQ(st->file_bytes, std::string("shared").size() + 1);
}

TEST(ApplyLayerDir, NonRootSkipsOwnersAndDevices) {
  if (!IsRoot()) GTEST_SKIP() << "forks a child that drops root";
  TempDir tmp;
  ASSERT_EQ(chmod(tmp.path().c_str(), 0755), 0);  // mkdtemp made it 0700
  std::string layer = tmp.Sub("layer");
  std::string target = tmp.Sub("target");
  MkDir(layer, 0777);
  MkDir(target, 0777);
  WriteFile(layer + "/f", "data", 0644);
  ASSERT_EQ(lchown((layer + "/f").c_str(), 1234, 1234), 0);
  ASSERT_EQ(mknod((layer + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(10);
    int warnings = 0;
    CopyOptions opts;
    opts.on_warning = [&](const std::string&) { ++warnings; };
    Result<CopyStats> st = ApplyLayerDir(layer, target, opts);
    if (!st.ok()) {
      fprintf(stderr, "%s\n", st.status().ToString().c_str());
      _exit(11);
    }
    struct stat s;
    if (lstat((target + "/f").c_str(), &s) != 0 || s.st_uid != 65534) _exit(12);
    if (lstat((target + "/null").c_str(), &s) == 0) _exit(13);
    _exit(warnings == 1 ? 0 : 14);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ApplyLayerDir, CancelledStopsWithKCancelled) {
  TempDir tmp;
  std::string layer = tmp.Sub("layer");
  std::string target = tmp.Sub("target");
  MkDir(layer);
  MkDir(target);
  for (int i = 0; i < 10; ++i) WriteFile(layer + "/f" + std::to_string(i), "x");
  int calls = 0;
  CopyOptions opts;
  opts.cancelled = [&] { return ++calls > 3; };
  Result<CopyStats> st = ApplyLayerDir(layer, target, opts);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), Code::kCancelled) << st.status().ToString();
}

TEST(ApplyLayerDir, MissingLayerDirIsAClearError) {
  TempDir tmp;
  Result<CopyStats> st = ApplyLayerDir(tmp.Sub("nope"), tmp.path());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), Code::kNotFound);
  EXPECT_NE(st.status().message().find("nope"), std::string::npos) << st.status().ToString();
}

// --- The layer writers ----------------------------------------------------------------------

struct TarItem {
  std::string path;
  char type = '?';  // f d l h c b p
  int64_t size = 0;
  std::string link;  // symlink target or hardlink target
  unsigned mode = 0;
  std::set<std::string> xattrs;  // names
};

std::string TreeText(const std::vector<TarItem>& items) {
  std::string s;
  for (const TarItem& i : items) {
    s += std::string(1, i.type) + " " + i.path + " " + std::to_string(i.size);
    if (!i.link.empty()) s += " -> " + i.link;
    s += "\n";
  }
  return s;
}

std::vector<TarItem> ReadTar(const std::string& path) {
  std::vector<TarItem> out;
  archive* a = archive_read_new();
  archive_read_support_format_all(a);
  archive_read_support_filter_all(a);
  EXPECT_EQ(archive_read_open_filename(a, path.c_str(), 1 << 16), ARCHIVE_OK)
      << archive_error_string(a);
  archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    TarItem t;
    t.path = archive_entry_pathname(e);
    if (!t.path.empty() && t.path.back() == '/') t.path.pop_back();
    t.size = archive_entry_size(e);
    t.mode = archive_entry_perm(e);
    archive_entry_xattr_reset(e);
    const char* xname;
    const void* xvalue;
    size_t xsize;
    while (archive_entry_xattr_next(e, &xname, &xvalue, &xsize) == ARCHIVE_OK) {
      t.xattrs.insert(xname);
    }
    if (archive_entry_hardlink(e) != nullptr) {
      t.type = 'h';
      t.link = archive_entry_hardlink(e);
    } else {
      switch (archive_entry_filetype(e)) {
        case AE_IFREG:
          t.type = 'f';
          break;
        case AE_IFDIR:
          t.type = 'd';
          break;
        case AE_IFLNK:
          t.type = 'l';
          t.link = archive_entry_symlink(e);
          break;
        case AE_IFCHR:
          t.type = 'c';
          break;
        case AE_IFBLK:
          t.type = 'b';
          break;
        case AE_IFIFO:
          t.type = 'p';
          break;
      }
    }
    out.push_back(t);
  }
  archive_read_free(a);
  return out;
}

std::string Paths(const std::vector<TarItem>& items) {
  std::string s;
  for (const TarItem& i : items) s += std::string(1, i.type) + ":" + i.path + " ";
  return s;
}

Result<WrittenLayer> WriteUpper(const std::string& upper, const std::string& out_path,
                                LayerWriteOptions opts = {}) {
  Result<std::unique_ptr<WritableFile>> f = Env::Default()->NewWritableFile(out_path, {});
  if (!f.ok()) return f.status();
  Result<WrittenLayer> w = WriteUpperDirLayer(upper, **f, opts);
  IMGSTORE_RETURN_IF_ERROR((*f)->Close());
  return w;
}

Result<WrittenLayer> WriteDiff(const std::string& dir, const std::vector<std::string>& lowers,
                               const std::string& out_path, LayerWriteOptions opts = {}) {
  Result<std::unique_ptr<WritableFile>> f = Env::Default()->NewWritableFile(out_path, {});
  if (!f.ok()) return f.status();
  Result<WrittenLayer> w = WriteDirDiffLayer(dir, lowers, **f, opts);
  IMGSTORE_RETURN_IF_ERROR((*f)->Close());
  return w;
}

// An upper directory as a container leaves it.
void MakeUpper(const std::string& upper) {
  MkDir(upper);
  WriteFile(upper + "/b-file", "hello");
  MkDir(upper + "/opaq");
  MakeOpaque(upper + "/opaq");
  WriteFile(upper + "/opaq/x", "x");
  Whiteout(upper + "/gone");
  MkDir(upper + "/etc");
  Whiteout(upper + "/etc/shadow");
  WriteFile(upper + "/etc/hosts", "127.0.0.1 localhost\n");
  ASSERT_EQ(setxattr((upper + "/etc/hosts").c_str(), "user.k", "v", 1, 0), 0);
  ASSERT_EQ(symlink("/etc/hosts", (upper + "/lnk").c_str()), 0);
  ASSERT_EQ(link((upper + "/b-file").c_str(), (upper + "/a-link").c_str()), 0);
  for (const char* p : {"/b-file", "/opaq/x", "/etc/hosts", "/etc", "/opaq", "/lnk"}) {
    SetMtime(upper + p, 1600000000);
  }
}

TEST(WriteUpperDirLayer, EntriesWhiteoutsAndOpaqueMarkers) {
  if (!IsRoot()) GTEST_SKIP() << "whiteouts (0/0 devices) need root";
  TempDir tmp;
  std::string upper = tmp.Sub("upper");
  MakeUpper(upper);
  Result<WrittenLayer> w = WriteUpper(upper, tmp.Sub("layer.tar.gz"));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::vector<TarItem> items = ReadTar(tmp.Sub("layer.tar.gz"));
  // Sorted per directory by tar name; the first name of the hardlink pair carries the data.
  EXPECT_EQ(Paths(items),
            "f:.wh.gone f:a-link h:b-file d:etc f:etc/.wh.shadow f:etc/hosts l:lnk d:opaq "
            "f:opaq/.wh..wh..opq f:opaq/x ")
      << TreeText(items);
  ASSERT_EQ(items.size(), 10u);
  EXPECT_EQ(items[1].size, 5);
  EXPECT_EQ(items[2].link, "a-link");
  EXPECT_EQ(items[5].xattrs, std::set<std::string>{"user.k"});
  EXPECT_TRUE(items[7].xattrs.empty());  // opaq: its trusted.overlay.opaque is not copied
  EXPECT_EQ(items[6].link, "/etc/hosts");
  EXPECT_EQ(w->entries, 10u);
  EXPECT_FALSE(w->empty);
  EXPECT_GT(w->tar_bytes, w->size);
  EXPECT_EQ(static_cast<uint64_t>(std::filesystem::file_size(tmp.Sub("layer.tar.gz"))), w->size);
}

TEST(WriteUpperDirLayer, DigestsAreOfTheBytesWritten) {
  TempDir tmp;
  std::string upper = tmp.Sub("upper");
  MkDir(upper);
  WriteFile(upper + "/f", std::string(100000, 'z'));
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    LayerWriteOptions opts;
    opts.compression = c;
    std::string out = tmp.Sub("l-" + std::string(CompressionName(c)));
    Result<WrittenLayer> w = WriteUpper(upper, out, opts);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    std::string blob = ReadFile(out);
    EXPECT_EQ(Digest::Of(blob), w->digest) << CompressionName(c);
    EXPECT_EQ(blob.size(), w->size);
    // The diffID is the hash of the decompressed stream.
    Result<std::unique_ptr<SequentialFile>> raw = Env::Default()->NewSequentialFile(out);
    ASSERT_TRUE(raw.ok());
    Result<std::unique_ptr<SequentialFile>> tar = OpenDecompressed(std::move(*raw), c);
    ASSERT_TRUE(tar.ok());
    Sha256Hasher h;
    std::vector<std::byte> buf(1 << 16);
    for (;;) {
      Result<size_t> n = (*tar)->Read(buf);
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      if (*n == 0) break;
      h.Update(std::span(buf.data(), *n));
    }
    EXPECT_EQ(h.size(), w->tar_bytes);
    EXPECT_EQ(h.Finish(), w->diff_id) << CompressionName(c);
    if (c == Compression::kNone) {
      EXPECT_EQ(w->digest, w->diff_id);
    }
  }
}

TEST(WriteUpperDirLayer, SameTreeGivesSameDigest) {
  if (!IsRoot()) GTEST_SKIP() << "whiteouts (0/0 devices) need root";
  TempDir tmp;
  MakeUpper(tmp.Sub("u1"));
  MakeUpper(tmp.Sub("u2"));
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    LayerWriteOptions opts;
    opts.compression = c;
    Result<WrittenLayer> a = WriteUpper(tmp.Sub("u1"), tmp.Sub("a"), opts);
    Result<WrittenLayer> b = WriteUpper(tmp.Sub("u2"), tmp.Sub("b"), opts);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->digest, b->digest) << CompressionName(c);
    EXPECT_EQ(a->diff_id, b->diff_id);
  }
  // And a different tree differs.
  WriteFile(tmp.Sub("u2/b-file"), "HELLO");
  SetMtime(tmp.Sub("u2/b-file"), 1600000000);
  Result<WrittenLayer> a = WriteUpper(tmp.Sub("u1"), tmp.Sub("a"));
  Result<WrittenLayer> b = WriteUpper(tmp.Sub("u2"), tmp.Sub("b"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->diff_id, b->diff_id);
}

TEST(WriteUpperDirLayer, EmptyUpperIsEmpty) {
  TempDir tmp;
  MkDir(tmp.Sub("u"));
  Result<WrittenLayer> w = WriteUpper(tmp.Sub("u"), tmp.Sub("l"));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_TRUE(w->empty);
  EXPECT_EQ(w->entries, 0u);
  EXPECT_TRUE(ReadTar(tmp.Sub("l")).empty());
}

TEST(WriteUpperDirLayer, RedirectDirIsRefused) {
  if (!IsRoot()) GTEST_SKIP() << "trusted.* xattrs need root";
  TempDir tmp;
  MkDir(tmp.Sub("u"));
  MkDir(tmp.Sub("u/moved"));
  ASSERT_EQ(setxattr(tmp.Sub("u/moved").c_str(), "trusted.overlay.redirect", "/old", 4, 0), 0);
  Result<WrittenLayer> w = WriteUpper(tmp.Sub("u"), tmp.Sub("l"));
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kUnsupported);
  EXPECT_NE(w.status().message().find("moved"), std::string::npos) << w.status().ToString();
}

TEST(WriteUpperDirLayer, CancelledStops) {
  TempDir tmp;
  MkDir(tmp.Sub("u"));
  for (int i = 0; i < 5; ++i) WriteFile(tmp.Sub("u/f" + std::to_string(i)), "x");
  LayerWriteOptions opts;
  int calls = 0;
  opts.cancelled = [&] { return ++calls > 2; };
  Result<WrittenLayer> w = WriteUpper(tmp.Sub("u"), tmp.Sub("l"), opts);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kCancelled) << w.status().ToString();
}

TEST(WriteUpperDirLayer, UnreadableFileIsAClearError) {
  if (!IsRoot()) GTEST_SKIP() << "forks a child that drops root";
  TempDir tmp;
  ASSERT_EQ(chmod(tmp.path().c_str(), 0777), 0);
  MkDir(tmp.Sub("u"));
  WriteFile(tmp.Sub("u/secret"), "s", 0000);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(10);
    Result<WrittenLayer> w = WriteUpper(tmp.Sub("u"), tmp.Sub("l"));
    if (w.ok()) _exit(11);
    if (w.status().code() != Code::kPermissionDenied) _exit(12);
    if (w.status().message().find(tmp.Sub("u/secret")) == std::string::npos) _exit(13);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// A lower layer and a changed copy of it.
class DirDiff : public ::testing::Test {
 protected:
  void SetUp() override {
    lower = tmp.Sub("lower");
    changed = tmp.Sub("changed");
    MkDir(lower);
    MkDir(changed);
    MkDir(lower + "/etc");
    WriteFile(lower + "/etc/passwd", "root\n");
    WriteFile(lower + "/etc/motd", "hi\n");
    WriteFile(lower + "/etc/mode", "m", 0644);
    MkDir(lower + "/usr");
    MkDir(lower + "/usr/lib");
    WriteFile(lower + "/usr/lib/big", std::string(5000, 'b'));
    WriteFile(lower + "/retype", "was a file");
    MkDir(lower + "/dir2file");
    WriteFile(lower + "/dir2file/inner", "i");
    ASSERT_EQ(symlink("target-a", (lower + "/sym").c_str()), 0);
    MkDir(lower + "/gone");
    WriteFile(lower + "/gone/deep", "d");
    for (const char* p : {"/etc/passwd", "/etc/motd", "/etc/mode", "/usr/lib/big", "/retype",
                          "/dir2file/inner", "/gone/deep"}) {
      SetMtime(lower + p, 1500000000);
    }
    ASSERT_TRUE(ApplyLayerDir(lower, changed).ok());
  }

  TempDir tmp;
  std::string lower, changed;
};

TEST_F(DirDiff, UnchangedTreeIsEmpty) {
  Result<WrittenLayer> w = WriteDiff(changed, {lower}, tmp.Sub("l"));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_TRUE(w->empty) << TreeText(ReadTar(tmp.Sub("l")));
}

TEST_F(DirDiff, DetectsEveryKindOfChange) {
  WriteFile(changed + "/etc/motd", "changed\n");  // modified (size and mtime)
  SetMtime(changed + "/etc/motd", 1700000000);
  ASSERT_EQ(chmod((changed + "/etc/mode").c_str(), 0600), 0);  // chmod only
  ASSERT_EQ(unlink((changed + "/etc/passwd").c_str()), 0);     // deleted
  ASSERT_TRUE(testing::RemoveTree(changed + "/gone"));         // a deleted directory
  WriteFile(changed + "/usr/new", "n");                        // added
  ASSERT_EQ(unlink((changed + "/retype").c_str()), 0);         // file → directory
  MkDir(changed + "/retype");
  ASSERT_TRUE(testing::RemoveTree(changed + "/dir2file"));  // directory → file
  WriteFile(changed + "/dir2file", "now a file");
  ASSERT_EQ(unlink((changed + "/sym").c_str()), 0);  // new link target
  ASSERT_EQ(symlink("target-b", (changed + "/sym").c_str()), 0);
  Result<WrittenLayer> w = WriteDiff(changed, {lower}, tmp.Sub("l"));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::vector<TarItem> items = ReadTar(tmp.Sub("l"));
  // usr/lib and usr/lib/big are unchanged: not written; usr is (a new entry in it).
  EXPECT_EQ(Paths(items),
            "f:.wh.gone f:dir2file d:etc f:etc/.wh.passwd f:etc/mode f:etc/motd d:retype "
            "l:sym d:usr f:usr/new ")
      << TreeText(items);
}

TEST_F(DirDiff, UnchangedDirectoryIsWrittenOnlyForAChangeBelow) {
  // Only a file deep down changes, and the directories' own times are put back: the
  // directories are written (so the extraction has their metadata) just before it.
  WriteFile(changed + "/usr/lib/big", std::string(5000, 'c'));
  SetMtime(changed + "/usr/lib/big", 1500000001);
  SetMtime(changed + "/usr/lib", 0);
  SetMtime(lower + "/usr/lib", 0);
  SetMtime(changed + "/usr", 0);
  SetMtime(lower + "/usr", 0);
  Result<WrittenLayer> w = WriteDiff(changed, {lower}, tmp.Sub("l"));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(Paths(ReadTar(tmp.Sub("l"))), "d:usr d:usr/lib f:usr/lib/big ");
}

TEST_F(DirDiff, RoundTripThroughExtraction) {
  WriteFile(changed + "/etc/motd", "changed\n");
  SetMtime(changed + "/etc/motd", 1700000000);
  ASSERT_EQ(unlink((changed + "/etc/passwd").c_str()), 0);
  ASSERT_TRUE(testing::RemoveTree(changed + "/gone"));
  ASSERT_TRUE(testing::RemoveTree(changed + "/dir2file"));
  WriteFile(changed + "/dir2file", "now a file");
  SetMtime(changed + "/dir2file", 1700000000);
  ASSERT_EQ(unlink((changed + "/retype").c_str()), 0);
  MkDir(changed + "/retype");
  WriteFile(changed + "/retype/in", "in");
  SetMtime(changed + "/retype/in", 1700000000);
  ASSERT_EQ(link((changed + "/retype/in").c_str(), (changed + "/retype/in2").c_str()), 0);
  LayerWriteOptions opts;
  opts.compression = Compression::kZstd;
  Result<WrittenLayer> w = WriteDiff(changed, {lower}, tmp.Sub("l.zst"), opts);
  ASSERT_TRUE(w.ok()) << w.status().ToString();

  std::string rebuilt = tmp.Sub("rebuilt");
  MkDir(rebuilt);
  ASSERT_TRUE(ApplyLayerDir(lower, rebuilt).ok());
  Result<std::unique_ptr<SequentialFile>> blob =
      Env::Default()->NewSequentialFile(tmp.Sub("l.zst"));
  ASSERT_TRUE(blob.ok());
  ExtractTarget target;
  target.dir = rebuilt;
  target.mode = WhiteoutMode::kApply;
  ExtractOptions eo;
  eo.expected_diff_id = w->diff_id;
  Result<ExtractStats> st =
      ExtractLayerBlob(std::move(*blob), Compression::kZstd, std::span(&target, 1), eo);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(TreeText(Snapshot(rebuilt, false)), TreeText(Snapshot(changed, false)));
}

TEST_F(DirDiff, ThroughSeveralLowerLayersWithWhiteouts) {
  if (!IsRoot()) GTEST_SKIP() << "whiteouts (0/0 devices) need root";
  // A second lower layer deletes etc/motd and makes usr opaque with one new file.
  std::string lower2 = tmp.Sub("lower2");
  MkDir(lower2);
  MkDir(lower2 + "/etc");
  Whiteout(lower2 + "/etc/motd");
  MkDir(lower2 + "/usr");
  MakeOpaque(lower2 + "/usr");
  WriteFile(lower2 + "/usr/only", "o");
  SetMtime(lower2 + "/usr/only", 1500000000);
  ASSERT_TRUE(ApplyLayerDir(lower2, changed).ok());
  // The flattened view is unchanged: nothing to write.
  Result<WrittenLayer> w = WriteDiff(changed, {lower, lower2}, tmp.Sub("l"));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_TRUE(w->empty) << TreeText(ReadTar(tmp.Sub("l")));
  // Deleting usr/only is one whiteout; usr/lib (hidden by the opaque dir) is not involved.
  ASSERT_EQ(unlink((changed + "/usr/only").c_str()), 0);
  w = WriteDiff(changed, {lower, lower2}, tmp.Sub("l"));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(Paths(ReadTar(tmp.Sub("l"))), "d:usr f:usr/.wh.only ");
}

TEST_F(DirDiff, MissingLowerIsAnError) {
  Result<WrittenLayer> w = WriteDiff(changed, {tmp.Sub("nope")}, tmp.Sub("l"));
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace imgstore::layers
