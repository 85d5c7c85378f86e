// Tests of the POSIX Env (files, directories, atomic writes, error mapping) and of the test-only
// FaultEnv (counted fault injection and the power-loss model).
#include "util/env.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "common/fault_env.h"
#include "common/temp_dir.h"

namespace imgstore {
namespace {

using ::imgstore::testing::FaultEnv;
using ::imgstore::testing::FsOp;
using ::imgstore::testing::TempDir;

constexpr uint64_t kCap = 1 << 20;

// Creates (or truncates) path with content through env; optionally syncs the data.
Status WriteFile(Env* env, const std::string& path, std::string_view content, bool sync) {
  WritableFileOptions options;
  Result<std::unique_ptr<WritableFile>> f = env->NewWritableFile(path, options);
  if (!f.ok()) return f.status();
  IMGSTORE_RETURN_IF_ERROR((*f)->Append(content));
  if (sync) IMGSTORE_RETURN_IF_ERROR((*f)->Sync());
  return (*f)->Close();
}

std::string Read(Env* env, const std::string& path) {
  Result<std::string> r = env->ReadFileToString(path, kCap);
  return r.ok() ? r.value() : "<" + r.status().ToString() + ">";
}

std::vector<std::string> List(Env* env, const std::string& dir) {
  Result<std::vector<std::string>> r = env->ListDir(dir);
  return r.ok() ? r.value() : std::vector<std::string>{"<" + r.status().ToString() + ">"};
}

// --- POSIX Env ---------------------------------------------------------------------------------

class PosixEnvTest : public ::testing::Test {
 protected:
  Env* env_ = Env::Default();
  TempDir dir_;
};

TEST_F(PosixEnvTest, WriteAndReadBack) {
  const std::string path = dir_.Sub("f");
  WritableFileOptions options;
  options.mode = OpenMode::kCreateNew;
  Result<std::unique_ptr<WritableFile>> f = env_->NewWritableFile(path, options);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->path(), path);
  ASSERT_TRUE((*f)->Append("hello, ").ok());
  const std::array<std::byte, 5> world = {std::byte{'w'}, std::byte{'o'}, std::byte{'r'},
                                          std::byte{'l'}, std::byte{'d'}};
  ASSERT_TRUE((*f)->Append(world).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ((*f)->Append("x").code(), Code::kFailedPrecondition);
  EXPECT_EQ((*f)->Close().code(), Code::kFailedPrecondition);

  EXPECT_EQ(Read(env_, path), "hello, world");
  Result<uint64_t> size = env_->FileSize(path);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, 12u);

  Result<std::unique_ptr<SequentialFile>> seq = env_->NewSequentialFile(path);
  ASSERT_TRUE(seq.ok());
  std::array<std::byte, 5> buf{};
  ASSERT_TRUE((*seq)->Skip(7).ok());
  Result<size_t> n = (*seq)->Read(buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  EXPECT_EQ(buf, world);
  n = (*seq)->Read(buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);

  Result<std::unique_ptr<RandomAccessFile>> ra = env_->NewRandomAccessFile(path);
  ASSERT_TRUE(ra.ok());
  Result<uint64_t> ra_size = (*ra)->Size();
  ASSERT_TRUE(ra_size.ok());
  EXPECT_EQ(*ra_size, 12u);
  std::array<std::byte, 8> big{};
  n = (*ra)->ReadAt(7, big);  // short read at the end
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  n = (*ra)->ReadAt(100, big);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
}

TEST_F(PosixEnvTest, OpenModes) {
  const std::string path = dir_.Sub("f");
  ASSERT_TRUE(WriteFile(env_, path, "abc", false).ok());
  WritableFileOptions options;
  options.mode = OpenMode::kCreateNew;
  Result<std::unique_ptr<WritableFile>> f = env_->NewWritableFile(path, options);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(f.status().message(), "open " + path + ": File exists");

  options.mode = OpenMode::kAppend;
  f = env_->NewWritableFile(path, options);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("def").ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ(Read(env_, path), "abcdef");

  ASSERT_TRUE(WriteFile(env_, path, "x", false).ok());  // kTruncate
  EXPECT_EQ(Read(env_, path), "x");
}

TEST_F(PosixEnvTest, NewFileIsBornWithItsMode) {
  const std::string path = dir_.Sub("blob");
  WritableFileOptions options;
  options.mode = OpenMode::kCreateNew;
  options.perm = 0444;
  Result<std::unique_ptr<WritableFile>> f = env_->NewWritableFile(path, options);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("data").ok());
  ASSERT_TRUE((*f)->Close().ok());
  Result<FileStat> st = env_->Stat(path);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->mode, 0444u);
  EXPECT_EQ(st->type, FileType::kRegular);
  EXPECT_EQ(Read(env_, path), "data");
}

TEST_F(PosixEnvTest, MissingPathsAreNotFoundAndNamed) {
  const std::string missing = dir_.Sub("nope");
  Result<std::unique_ptr<SequentialFile>> seq = env_->NewSequentialFile(missing);
  ASSERT_FALSE(seq.ok());
  EXPECT_EQ(seq.status().code(), Code::kNotFound);
  EXPECT_EQ(seq.status().message(), "open " + missing + ": No such file or directory");

  Status s = env_->RemoveFile(missing);
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "remove " + missing + ": No such file or directory");

  Result<FileStat> st = env_->Stat(missing);
  EXPECT_EQ(st.status().code(), Code::kNotFound);
  EXPECT_FALSE(env_->FileExists(missing));
  EXPECT_EQ(env_->FileSize(missing).status().code(), Code::kNotFound);
  EXPECT_EQ(env_->ListDir(missing).status().code(), Code::kNotFound);
  EXPECT_EQ(env_->SyncDir(missing).code(), Code::kNotFound);
  EXPECT_EQ(env_->RemoveDir(missing).code(), Code::kNotFound);
  EXPECT_EQ(env_->ReadFileToString(missing, kCap).status().code(), Code::kNotFound);

  s = env_->RenameFile(missing, dir_.Sub("b"));
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(),
            "rename " + missing + " to " + dir_.Sub("b") + ": No such file or directory");

  // A missing parent directory.
  const std::string nested = dir_.Sub("no/such/file");
  Result<std::unique_ptr<WritableFile>> w = env_->NewWritableFile(nested, {});
  EXPECT_EQ(w.status().code(), Code::kNotFound);
  EXPECT_EQ(w.status().message(), "open " + nested + ": No such file or directory");
}

TEST_F(PosixEnvTest, FullDiskIsNoSpaceAndNamed) {
  // /dev/full fails every write with ENOSPC.
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  WritableFileOptions options;
  options.mode = OpenMode::kAppend;
  Result<std::unique_ptr<WritableFile>> f = env_->NewWritableFile("/dev/full", options);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  Status s = (*f)->Append("data");
  EXPECT_EQ(s.code(), Code::kNoSpace);
  EXPECT_EQ(s.message(), "write /dev/full: No space left on device");
}

TEST_F(PosixEnvTest, RenameReplacesAndNoReplaceRefuses) {
  const std::string a = dir_.Sub("a"), b = dir_.Sub("b"), c = dir_.Sub("c");
  ASSERT_TRUE(WriteFile(env_, a, "A", false).ok());
  ASSERT_TRUE(WriteFile(env_, b, "B", false).ok());

  Status s = env_->RenameNoReplace(a, b);
  EXPECT_EQ(s.code(), Code::kAlreadyExists);
  EXPECT_EQ(s.message(), "rename " + a + " to " + b + ": File exists");
  EXPECT_EQ(Read(env_, a), "A");
  EXPECT_EQ(Read(env_, b), "B");

  ASSERT_TRUE(env_->RenameNoReplace(a, c).ok());
  EXPECT_FALSE(env_->FileExists(a));
  EXPECT_EQ(Read(env_, c), "A");

  ASSERT_TRUE(env_->RenameFile(c, b).ok());
  EXPECT_FALSE(env_->FileExists(c));
  EXPECT_EQ(Read(env_, b), "A");
}

TEST_F(PosixEnvTest, RenameNoReplaceOfADirectory) {
  ASSERT_TRUE(env_->CreateDirs(dir_.Sub("stage/x")).ok());
  ASSERT_TRUE(env_->CreateDirs(dir_.Sub("taken/y")).ok());
  EXPECT_EQ(env_->RenameNoReplace(dir_.Sub("stage"), dir_.Sub("taken")).code(),
            Code::kAlreadyExists);
  ASSERT_TRUE(env_->RenameNoReplace(dir_.Sub("stage"), dir_.Sub("layer")).ok());
  EXPECT_TRUE(env_->FileExists(dir_.Sub("layer/x")));
}

TEST_F(PosixEnvTest, LinkFile) {
  const std::string a = dir_.Sub("a"), b = dir_.Sub("b");
  ASSERT_TRUE(WriteFile(env_, a, "A", false).ok());
  ASSERT_TRUE(env_->LinkFile(a, b).ok());
  EXPECT_EQ(Read(env_, b), "A");
  Result<FileStat> st = env_->Stat(b);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->link_count, 2u);
  EXPECT_EQ(env_->LinkFile(a, b).code(), Code::kAlreadyExists);
}

TEST_F(PosixEnvTest, Directories) {
  const std::string deep = dir_.Sub("a/b//c/");
  ASSERT_TRUE(env_->CreateDirs(deep).ok());
  ASSERT_TRUE(env_->CreateDirs(deep).ok());  // idempotent
  Result<FileStat> st = env_->Stat(dir_.Sub("a/b/c"));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->type, FileType::kDirectory);

  EXPECT_EQ(env_->CreateDir(dir_.Sub("a"), 0755).code(), Code::kAlreadyExists);
  EXPECT_EQ(env_->CreateDir(dir_.Sub("x/y"), 0755).code(), Code::kNotFound);

  ASSERT_TRUE(WriteFile(env_, dir_.Sub("a/file"), "", false).ok());
  Status s = env_->CreateDirs(dir_.Sub("a/file"));
  EXPECT_EQ(s.code(), Code::kAlreadyExists);
  EXPECT_NE(s.message().find(dir_.Sub("a/file")), std::string::npos) << s.message();

  // A symlink to a directory is accepted as the directory (a store root may be one).
  ASSERT_EQ(::symlink(dir_.Sub("a").c_str(), dir_.Sub("link").c_str()), 0);
  EXPECT_TRUE(env_->CreateDirs(dir_.Sub("link")).ok());

  EXPECT_EQ(List(env_, dir_.Sub("a")), (std::vector<std::string>{"b", "file"}));
  EXPECT_EQ(env_->RemoveDir(dir_.Sub("a")).code(), Code::kIOError);  // ENOTEMPTY
  EXPECT_TRUE(env_->SyncDir(dir_.Sub("a")).ok());
  EXPECT_TRUE(env_->SyncDir(dir_.Sub("link")).ok());
  ASSERT_TRUE(env_->RemoveDir(dir_.Sub("a/b/c")).ok());
  EXPECT_EQ(List(env_, dir_.Sub("a/b")), std::vector<std::string>{});
}

TEST_F(PosixEnvTest, RemoveTreeHandlesReadOnlyAndDoesNotFollowSymlinks) {
  ASSERT_TRUE(env_->CreateDirs(dir_.Sub("root/blobs/sha256")).ok());
  ASSERT_TRUE(env_->CreateDirs(dir_.Sub("outside")).ok());
  ASSERT_TRUE(WriteFile(env_, dir_.Sub("outside/keep"), "keep", false).ok());
  ASSERT_TRUE(WriteFile(env_, dir_.Sub("root/blobs/sha256/ab"), "blob", false).ok());
  ASSERT_TRUE(env_->Chmod(dir_.Sub("root/blobs/sha256/ab"), 0444).ok());
  ASSERT_TRUE(env_->Chmod(dir_.Sub("root/blobs/sha256"), 0555).ok());
  ASSERT_EQ(::symlink(dir_.Sub("outside").c_str(), dir_.Sub("root/escape").c_str()), 0);

  ASSERT_TRUE(env_->RemoveTree(dir_.Sub("root")).ok());
  EXPECT_FALSE(env_->FileExists(dir_.Sub("root")));
  EXPECT_EQ(Read(env_, dir_.Sub("outside/keep")), "keep");
  EXPECT_TRUE(env_->RemoveTree(dir_.Sub("root")).ok());          // missing is fine
  ASSERT_TRUE(env_->RemoveTree(dir_.Sub("outside/keep")).ok());  // a plain file
  EXPECT_FALSE(env_->FileExists(dir_.Sub("outside/keep")));
}

TEST_F(PosixEnvTest, ChmodAndStat) {
  const std::string path = dir_.Sub("f");
  ASSERT_TRUE(WriteFile(env_, path, "12345", false).ok());
  ASSERT_TRUE(env_->Chmod(path, 0444).ok());
  Result<FileStat> st = env_->Stat(path);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->mode, 0444u);
  EXPECT_EQ(st->size, 5u);
  EXPECT_EQ(st->link_count, 1u);
  EXPECT_GT(st->mtime_ns, 0);
  EXPECT_EQ(env_->Chmod(dir_.Sub("nope"), 0444).code(), Code::kNotFound);
}

TEST_F(PosixEnvTest, ReadFileToStringCap) {
  const std::string path = dir_.Sub("manifest.json");
  ASSERT_TRUE(WriteFile(env_, path, std::string(100, 'x'), false).ok());
  Result<std::string> r = env_->ReadFileToString(path, 100);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 100u);

  r = env_->ReadFileToString(path, 99);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_EQ(r.status().message(), "read " + path + ": file is larger than the limit of 99 bytes");

  ASSERT_TRUE(WriteFile(env_, path, "", false).ok());
  r = env_->ReadFileToString(path, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "");

  // Larger than one read chunk.
  std::string big(300000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(WriteFile(env_, path, big, false).ok());
  EXPECT_EQ(Read(env_, path), big);
  EXPECT_EQ(env_->ReadFileToString(path, big.size() - 1).status().code(), Code::kCorruption);
}

TEST_F(PosixEnvTest, WriteFileAtomically) {
  const std::string path = dir_.Sub("config");
  ASSERT_TRUE(env_->WriteFileAtomically(path, "v1").ok());
  EXPECT_EQ(Read(env_, path), "v1");
  ASSERT_TRUE(env_->WriteFileAtomically(path, "version 2", 0600).ok());
  EXPECT_EQ(Read(env_, path), "version 2");
  Result<FileStat> st = env_->Stat(path);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->mode, 0600u);
  EXPECT_EQ(List(env_, dir_.path()), std::vector<std::string>{"config"});  // no temp left

  Status s = env_->WriteFileAtomically(dir_.Sub("missing/config"), "x");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_NE(s.message().find(dir_.Sub("missing/")), std::string::npos) << s.message();
}

TEST_F(PosixEnvTest, TempFileCommitAndAbandon) {
  ASSERT_TRUE(env_->CreateDirs(dir_.Sub("ingest")).ok());
  ASSERT_TRUE(env_->CreateDirs(dir_.Sub("blobs")).ok());
  const std::string blob = dir_.Sub("blobs/abc");
  {
    Result<TempFile> t = TempFile::Create(env_, dir_.Sub("ingest"), "pull-", 0444);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(t->path().rfind(dir_.Sub("ingest/pull-"), 0), 0u) << t->path();
    ASSERT_TRUE(t->Append("content").ok());
    ASSERT_TRUE(t->Commit(blob, CommitMode::kNoReplace).ok());
    EXPECT_EQ(t->path(), "");
    EXPECT_EQ(t->Append("more").code(), Code::kFailedPrecondition);
  }
  EXPECT_EQ(Read(env_, blob), "content");
  EXPECT_EQ(env_->Stat(blob)->mode, 0444u);
  EXPECT_EQ(List(env_, dir_.Sub("ingest")), std::vector<std::string>{});

  {  // The same blob again: the existing one stays, the temporary file goes.
    Result<TempFile> t = TempFile::Create(env_, dir_.Sub("ingest"));
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(t->Append("other").ok());
    EXPECT_EQ(t->Commit(blob, CommitMode::kNoReplace).code(), Code::kAlreadyExists);
  }
  EXPECT_EQ(Read(env_, blob), "content");
  EXPECT_EQ(List(env_, dir_.Sub("ingest")), std::vector<std::string>{});

  {  // Dropped without a commit.
    Result<TempFile> t = TempFile::Create(env_, dir_.Sub("ingest"));
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(t->Append("partial").ok());
    EXPECT_EQ(List(env_, dir_.Sub("ingest")).size(), 1u);
    TempFile moved = std::move(t).value();  // ownership moves with the object
    EXPECT_EQ(List(env_, dir_.Sub("ingest")).size(), 1u);
  }
  EXPECT_EQ(List(env_, dir_.Sub("ingest")), std::vector<std::string>{});
}

// A process killed between TempFile::Create and Commit leaves its file; the next writer of the
// directory removes it, and only it: not a live writer's, not a name without an owner.
TEST_F(PosixEnvTest, DeadWritersTempFilesAreSweptLiveOnesKept) {
  const std::string dir = dir_.Sub("layout");
  ASSERT_TRUE(env_->CreateDirs(dir).ok());
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Result<TempFile> t = TempFile::Create(env_, dir, ".tmp-");
    if (!t.ok() || !t->Append("half").ok()) ::_exit(1);
    ::_exit(0);  // no destructor runs: as if killed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::vector<std::string> left = *env_->ListDir(dir);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_TRUE(left[0].starts_with(".tmp-" + std::to_string(pid) + ".")) << left[0];

  Result<TempFile> live = TempFile::Create(env_, dir, ".tmp-");
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(env_->WriteFileAtomically(dir + "/.tmp-old-format-name", "x").ok());
  ASSERT_TRUE(env_->WriteFileAtomically(dir + "/.other.tmp-1.2-3", "x").ok());  // another prefix

  Result<int> swept = RemoveDeadTempFiles(env_, dir, ".tmp-");
  ASSERT_TRUE(swept.ok()) << swept.status().ToString();
  EXPECT_EQ(*swept, 1);
  EXPECT_FALSE(env_->FileExists(dir + "/" + left[0]));
  EXPECT_TRUE(env_->FileExists(live->path()));
  EXPECT_TRUE(env_->FileExists(dir + "/.tmp-old-format-name"));
  EXPECT_TRUE(env_->FileExists(dir + "/.other.tmp-1.2-3"));
  // A name whose pid lives but with another start time is a reused pid: its writer is dead.
  const std::string reused = dir + "/.tmp-" + std::to_string(::getpid()) + ".1-0123456789abcdef";
  ASSERT_TRUE(env_->WriteFileAtomically(reused, "x").ok());
  swept = RemoveDeadTempFiles(env_, dir, ".tmp-");
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 1);
  EXPECT_FALSE(env_->FileExists(reused));
  EXPECT_TRUE(env_->FileExists(live->path()));
  EXPECT_EQ(RemoveDeadTempFiles(env_, dir_.Sub("missing"), ".tmp-").status().code(),
            Code::kNotFound);
}

TEST_F(PosixEnvTest, SpaceInfo) {
  Result<SpaceInfo> info = env_->GetSpaceInfo(dir_.path());
  ASSERT_TRUE(info.ok());
  EXPECT_GT(info->total, 0u);
  EXPECT_LE(info->available, info->free);
  EXPECT_LE(info->free, info->total);
  EXPECT_EQ(env_->GetSpaceInfo(dir_.Sub("nope")).status().code(), Code::kNotFound);
}

TEST(PathTest, DirNameAndBaseName) {
  EXPECT_EQ(DirName("a/b"), "a");
  EXPECT_EQ(DirName("a/b/"), "a");
  EXPECT_EQ(DirName("a//b"), "a");
  EXPECT_EQ(DirName("b"), ".");
  EXPECT_EQ(DirName("/b"), "/");
  EXPECT_EQ(DirName("/"), "/");
  EXPECT_EQ(BaseName("a/b"), "b");
  EXPECT_EQ(BaseName("a/b/"), "b");
  EXPECT_EQ(BaseName("b"), "b");
  EXPECT_EQ(BaseName("/"), "/");
}

// A wrapper overrides one call; the helpers built on it see the override.
TEST(EnvWrapperTest, OverrideOneCall) {
  class CountingEnv : public EnvWrapper {
   public:
    CountingEnv() : EnvWrapper(Env::Default()) {}
    Status SyncDir(const std::string& path) override {
      ++dir_syncs;
      return EnvWrapper::SyncDir(path);
    }
    int dir_syncs = 0;
  };
  TempDir dir;
  CountingEnv env;
  ASSERT_TRUE(env.WriteFileAtomically(dir.Sub("f"), "x").ok());
  EXPECT_EQ(env.dir_syncs, 1);
  EXPECT_EQ(Read(&env, dir.Sub("f")), "x");
}

// --- FaultEnv: counting and failing ------------------------------------------------------------

TEST(FaultEnvTest, NthFailureFiresOnceAtTheRightOperation) {
  TempDir dir;
  FaultEnv env;
  env.FailNth(FsOp::kSync, 2, EIO);
  Result<std::unique_ptr<WritableFile>> f = env.NewWritableFile(dir.Sub("f"), {});
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("a").ok());
  EXPECT_TRUE((*f)->Sync().ok());
  EXPECT_EQ(env.faults_fired(), 0u);
  Status s = (*f)->Sync();
  EXPECT_EQ(s.code(), Code::kIOError);
  EXPECT_EQ(s.message(), "sync " + dir.Sub("f") + ": Input/output error");
  EXPECT_EQ(env.last_fault(), "sync " + dir.Sub("f") + " (sync #2)");
  EXPECT_TRUE((*f)->Sync().ok());
  env.ResetCounts();  // a one-shot fault does not come back with the count
  EXPECT_TRUE((*f)->Sync().ok());
  EXPECT_TRUE((*f)->Sync().ok());
  EXPECT_EQ(env.faults_fired(), 1u);
  EXPECT_EQ(env.count(FsOp::kSync), 2u);
  ASSERT_TRUE((*f)->Close().ok());
}

TEST(FaultEnvTest, FailedWriteWritesNothingAndMapsNoSpace) {
  TempDir dir;
  FaultEnv env;
  env.FailNth(FsOp::kWrite, 2, ENOSPC);
  Result<std::unique_ptr<WritableFile>> f = env.NewWritableFile(dir.Sub("f"), {});
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("abc").ok());
  Status s = (*f)->Append("def");
  EXPECT_EQ(s.code(), Code::kNoSpace);
  EXPECT_EQ(s.message(), "write " + dir.Sub("f") + ": No space left on device");
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ(Read(&env, dir.Sub("f")), "abc");
}

TEST(FaultEnvTest, FailFromIsSticky) {
  TempDir dir;
  FaultEnv env;
  env.FailFrom(FsOp::kAny, 3, EIO);
  EXPECT_TRUE(env.CreateDir(dir.Sub("a"), 0755).ok());  // any #1
  EXPECT_TRUE(env.WriteFileAtomically(dir.Sub("a/f"), "x").code() == Code::kIOError);
  EXPECT_EQ(env.count(FsOp::kCreate), 1u);  // any #2: the temp file
  EXPECT_FALSE(env.CreateDir(dir.Sub("b"), 0755).ok());
  EXPECT_FALSE(env.RemoveDir(dir.Sub("a")).ok());
  EXPECT_GE(env.faults_fired(), 3u);
  env.ClearFaults();
  EXPECT_TRUE(env.CreateDir(dir.Sub("b"), 0755).ok());
}

// What a small "store commit" does: make directories, publish two files atomically.
Status Scenario(Env* env, const std::string& root) {
  IMGSTORE_RETURN_IF_ERROR(env->CreateDirs(root + "/blobs/sha256"));
  IMGSTORE_RETURN_IF_ERROR(env->WriteFileAtomically(root + "/blobs/sha256/one", "first blob"));
  return env->WriteFileAtomically(root + "/blobs/sha256/two", "second");
}

// Count the operations of a run, then fail each in turn: every failure is reported, the fault
// fires exactly once, and no file is ever seen half-written.
TEST(FaultEnvTest, CountThenFailEachOperationInTurn) {
  TempDir dir;
  std::array<uint64_t, testing::kNumFsOps> counts{};
  {
    FaultEnv env;
    ASSERT_TRUE(Scenario(&env, dir.Sub("count")).ok());
    for (size_t k = 0; k < counts.size(); ++k) counts[k] = env.count(static_cast<FsOp>(k));
  }
  EXPECT_EQ(counts[static_cast<size_t>(FsOp::kCreate)], 2u);
  EXPECT_EQ(counts[static_cast<size_t>(FsOp::kSync)], 2u);
  EXPECT_EQ(counts[static_cast<size_t>(FsOp::kRename)], 2u);
  EXPECT_EQ(counts[static_cast<size_t>(FsOp::kSyncDir)], 2u);
  EXPECT_EQ(counts[static_cast<size_t>(FsOp::kRemove)], 0u);
  EXPECT_GE(counts[static_cast<size_t>(FsOp::kMkdir)], 3u);

  int runs = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    const FsOp op = static_cast<FsOp>(k);
    for (uint64_t n = 1; n <= counts[k]; ++n) {
      SCOPED_TRACE(std::string(testing::FsOpName(op)) + " #" + std::to_string(n));
      const std::string root = dir.Sub("run" + std::to_string(runs++));
      FaultEnv env;
      env.FailNth(op, n, EIO);
      Status s = Scenario(&env, root);
      EXPECT_EQ(s.code(), Code::kIOError) << s.ToString();
      EXPECT_EQ(env.faults_fired(), 1u);
      // Each published file is absent or complete; no temporary file is left behind.
      for (const auto& [name, content] :
           {std::pair<std::string, std::string>{"one", "first blob"}, {"two", "second"}}) {
        const std::string path = root + "/blobs/sha256/" + name;
        if (env.FileExists(path)) {
          EXPECT_EQ(Read(&env, path), content);
        }
      }
      if (env.FileExists(root + "/blobs/sha256")) {
        for (const std::string& name : List(&env, root + "/blobs/sha256")) {
          EXPECT_TRUE(name == "one" || name == "two") << name;
        }
      }
    }
  }
  EXPECT_EQ(static_cast<uint64_t>(runs), counts[static_cast<size_t>(FsOp::kAny)] * 2);
}

// --- FaultEnv: power loss ----------------------------------------------------------------------

class PowerLossTest : public ::testing::Test {
 protected:
  // A file whose creation and data are durable.
  void Durable(const std::string& path, std::string_view content) {
    ASSERT_TRUE(WriteFile(&env_, path, content, /*sync=*/true).ok());
    ASSERT_TRUE(env_.SyncDir(DirName(path)).ok());
  }

  TempDir dir_;
  FaultEnv env_;
};

TEST_F(PowerLossTest, UnsyncedAppendIsDropped) {
  const std::string path = dir_.Sub("f");
  Result<std::unique_ptr<WritableFile>> f = env_.NewWritableFile(path, {});
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  ASSERT_TRUE((*f)->Append("synced").ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Append(" lost").ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ(Read(&env_, path), "synced lost");

  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Read(&env_, path), "synced");
}

TEST_F(PowerLossTest, AppendToAnExistingFileKeepsItsOldBytes) {
  const std::string path = dir_.Sub("log");
  ASSERT_TRUE(WriteFile(Env::Default(), path, "old", false).ok());  // not through the FaultEnv
  WritableFileOptions options;
  options.mode = OpenMode::kAppend;
  Result<std::unique_ptr<WritableFile>> f = env_.NewWritableFile(path, options);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("+new").ok());
  ASSERT_TRUE((*f)->Close().ok());
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Read(&env_, path), "old");
}

TEST_F(PowerLossTest, FileWhoseDirectoryWasNotSyncedDisappears) {
  ASSERT_TRUE(WriteFile(&env_, dir_.Sub("f"), "data", /*sync=*/true).ok());
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_FALSE(env_.FileExists(dir_.Sub("f")));
}

TEST_F(PowerLossTest, UnsyncedRenameIsUndoneSyncedRenameKept) {
  Durable(dir_.Sub("a"), "A");
  Durable(dir_.Sub("b"), "B");
  ASSERT_TRUE(env_.RenameFile(dir_.Sub("a"), dir_.Sub("a2")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  ASSERT_TRUE(env_.RenameFile(dir_.Sub("b"), dir_.Sub("b2")).ok());  // no SyncDir after it
  EXPECT_EQ(List(&env_, dir_.path()), (std::vector<std::string>{"a2", "b2"}));

  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(List(&env_, dir_.path()), (std::vector<std::string>{"a2", "b"}));
  EXPECT_EQ(Read(&env_, dir_.Sub("a2")), "A");
  EXPECT_EQ(Read(&env_, dir_.Sub("b")), "B");
}

TEST_F(PowerLossTest, UndoneReplacingRenameBringsBackTheOldTarget) {
  Durable(dir_.Sub("config"), "old config");
  Durable(dir_.Sub("tmp"), "new config");
  ASSERT_TRUE(env_.RenameFile(dir_.Sub("tmp"), dir_.Sub("config")).ok());
  EXPECT_EQ(Read(&env_, dir_.Sub("config")), "new config");
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Read(&env_, dir_.Sub("config")), "old config");
  EXPECT_EQ(Read(&env_, dir_.Sub("tmp")), "new config");
}

TEST_F(PowerLossTest, WriteFileAtomicallyIsDurable) {
  ASSERT_TRUE(env_.WriteFileAtomically(dir_.Sub("config"), "v1").ok());
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(List(&env_, dir_.path()), std::vector<std::string>{"config"});
  EXPECT_EQ(Read(&env_, dir_.Sub("config")), "v1");
}

TEST_F(PowerLossTest, AtomicWriteWithoutItsDirectorySyncLeavesTheOldContent) {
  ASSERT_TRUE(env_.WriteFileAtomically(dir_.Sub("config"), "v1").ok());
  env_.FailNext(FsOp::kSyncDir, EIO);
  EXPECT_EQ(env_.WriteFileAtomically(dir_.Sub("config"), "v2").code(), Code::kIOError);
  EXPECT_EQ(Read(&env_, dir_.Sub("config")), "v2");  // visible before the power loss...
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Read(&env_, dir_.Sub("config")), "v1");  // ...but not durable
  // The temporary file's creation was never made durable either.
  EXPECT_EQ(List(&env_, dir_.path()), std::vector<std::string>{"config"});
}

// The blob protocol of the store: temp file in ingest/, synced, renamed into blobs/, blobs/
// synced. The blob survives; the ingest directory's state does not matter.
TEST_F(PowerLossTest, CrossDirectoryRenameIsDurableByTheTargetDirectory) {
  ASSERT_TRUE(env_.CreateDirs(dir_.Sub("ingest")).ok());
  ASSERT_TRUE(env_.CreateDirs(dir_.Sub("blobs")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  Result<TempFile> t = TempFile::Create(&env_, dir_.Sub("ingest"), ".tmp-", 0444);
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->Append("layer bytes").ok());
  ASSERT_TRUE(t->Commit(dir_.Sub("blobs/sha256-x"), CommitMode::kNoReplace).ok());

  Result<TempFile> partial = TempFile::Create(&env_, dir_.Sub("ingest"));
  ASSERT_TRUE(partial.ok());
  ASSERT_TRUE(partial->Append("half a layer").ok());
  ASSERT_TRUE(env_.SyncDir(dir_.Sub("ingest")).ok());  // its name is durable, its data is not

  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Read(&env_, dir_.Sub("blobs/sha256-x")), "layer bytes");
  EXPECT_EQ(env_.Stat(dir_.Sub("blobs/sha256-x"))->mode, 0444u);
  const std::vector<std::string> ingest = List(&env_, dir_.Sub("ingest"));
  ASSERT_EQ(ingest.size(), 1u);
  EXPECT_EQ(Read(&env_, dir_.Sub("ingest/" + ingest[0])), "");  // the unsynced data is gone
}

TEST_F(PowerLossTest, RenameIntoAnUnsyncedDirectoryIsUndone) {
  ASSERT_TRUE(env_.CreateDirs(dir_.Sub("ingest")).ok());
  ASSERT_TRUE(env_.CreateDirs(dir_.Sub("blobs")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  Durable(dir_.Sub("ingest/t"), "bytes");
  ASSERT_TRUE(env_.RenameFile(dir_.Sub("ingest/t"), dir_.Sub("blobs/x")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.Sub("ingest")).ok());  // the wrong directory
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_FALSE(env_.FileExists(dir_.Sub("blobs/x")));
  EXPECT_EQ(Read(&env_, dir_.Sub("ingest/t")), "bytes");
}

// An unpack-like flow: files written in a staging directory that is then renamed into place.
TEST_F(PowerLossTest, UnsyncedDataInARenamedDirectoryIsDropped) {
  ASSERT_TRUE(env_.CreateDirs(dir_.Sub("layers/stage")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.Sub("layers")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  Result<std::unique_ptr<WritableFile>> f = env_.NewWritableFile(dir_.Sub("layers/stage/f"), {});
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("synced").ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Append(" not").ok());
  ASSERT_TRUE((*f)->Close().ok());
  ASSERT_TRUE(env_.SyncDir(dir_.Sub("layers/stage")).ok());
  ASSERT_TRUE(env_.RenameNoReplace(dir_.Sub("layers/stage"), dir_.Sub("layers/abc")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.Sub("layers")).ok());
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Read(&env_, dir_.Sub("layers/abc/f")), "synced");
}

TEST_F(PowerLossTest, UnsyncedRemovalComesBack) {
  Durable(dir_.Sub("blob"), "content");
  ASSERT_TRUE(env_.Chmod(dir_.Sub("blob"), 0444).ok());
  Durable(dir_.Sub("gone"), "really gone");
  ASSERT_TRUE(env_.RemoveFile(dir_.Sub("gone")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  ASSERT_TRUE(env_.RemoveFile(dir_.Sub("blob")).ok());
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Read(&env_, dir_.Sub("blob")), "content");
  EXPECT_EQ(env_.Stat(dir_.Sub("blob"))->mode, 0444u);
  EXPECT_FALSE(env_.FileExists(dir_.Sub("gone")));
}

// Blobs are 0444 in 0555 directories; the simulation must work there without root too.
TEST_F(PowerLossTest, ReadOnlyFilesAndDirectories) {
  ASSERT_TRUE(env_.CreateDir(dir_.Sub("d"), 0755).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  WritableFileOptions options;
  options.mode = OpenMode::kCreateNew;
  options.perm = 0444;
  Result<std::unique_ptr<WritableFile>> f = env_.NewWritableFile(dir_.Sub("d/x"), options);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("ab").ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Append("cd").ok());
  ASSERT_TRUE((*f)->Close().ok());
  ASSERT_TRUE(env_.SyncDir(dir_.Sub("d")).ok());
  ASSERT_TRUE(WriteFile(&env_, dir_.Sub("d/y"), "y", true).ok());  // name not durable
  ASSERT_TRUE(env_.Chmod(dir_.Sub("d"), 0555).ok());

  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Read(&env_, dir_.Sub("d/x")), "ab");
  EXPECT_EQ(env_.Stat(dir_.Sub("d/x"))->mode, 0444u);
  EXPECT_EQ(List(&env_, dir_.Sub("d")), std::vector<std::string>{"x"});
  EXPECT_EQ(env_.Stat(dir_.Sub("d"))->mode, 0555u);
}

TEST_F(PowerLossTest, UnsyncedDirectoryTakesItsContentWithIt) {
  ASSERT_TRUE(env_.CreateDirs(dir_.Sub("layers/abc")).ok());
  Durable(dir_.Sub("layers/abc/file"), "x");    // durable inside abc, but abc is not in layers
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());  // layers is durable
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_TRUE(env_.FileExists(dir_.Sub("layers")));
  EXPECT_FALSE(env_.FileExists(dir_.Sub("layers/abc")));
}

TEST_F(PowerLossTest, UnsyncedRemoveTreeComesBack) {
  ASSERT_TRUE(env_.CreateDirs(dir_.Sub("layers/abc/sub")).ok());
  Durable(dir_.Sub("layers/abc/sub/f"), "f");
  ASSERT_TRUE(env_.SyncDir(dir_.Sub("layers/abc")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.Sub("layers")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  ASSERT_TRUE(env_.RemoveTree(dir_.Sub("layers/abc")).ok());
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Read(&env_, dir_.Sub("layers/abc/sub/f")), "f");
}

TEST_F(PowerLossTest, RemovedAndRecreatedNeverDurableLeavesNothing) {
  ASSERT_TRUE(WriteFile(&env_, dir_.Sub("a"), "1", true).ok());
  ASSERT_TRUE(env_.RemoveFile(dir_.Sub("a")).ok());
  ASSERT_TRUE(WriteFile(&env_, dir_.Sub("a"), "2", true).ok());
  ASSERT_TRUE(env_.RemoveFile(dir_.Sub("a")).ok());
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(List(&env_, dir_.path()), std::vector<std::string>{});
}

TEST_F(PowerLossTest, UnsyncedLinkIsUndone) {
  Durable(dir_.Sub("a"), "A");
  ASSERT_TRUE(env_.LinkFile(dir_.Sub("a"), dir_.Sub("b")).ok());
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(List(&env_, dir_.path()), std::vector<std::string>{"a"});
}

TEST_F(PowerLossTest, TrackingStartsAfreshAfterADrop) {
  Durable(dir_.Sub("a"), "A");
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  // After the "reboot" everything on disk is durable; new unsynced work is dropped again.
  WritableFileOptions options;
  options.mode = OpenMode::kAppend;
  Result<std::unique_ptr<WritableFile>> f = env_.NewWritableFile(dir_.Sub("a"), options);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("B").ok());
  ASSERT_TRUE((*f)->Close().ok());
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Read(&env_, dir_.Sub("a")), "A");

  ASSERT_TRUE(WriteFile(&env_, dir_.Sub("c"), "C", false).ok());
  env_.ForgetUnsyncedData();
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Read(&env_, dir_.Sub("c")), "C");
}

}  // namespace
}  // namespace imgstore
