// Pushes to a real registry: Debian's docker-registry on 127.0.0.1, written by imgstore through
// the CLI (`imgstore push`) and through RegistryDestination::PutImage, and read back by skopeo and
// by imgstore pull. What the registry keeps on disk is the witness of what was sent: an upload
// session is a directory under repositories/PATH/_uploads, a blob linked into a repository is
// repositories/PATH/_layers/sha256/HEX/link. Plain http, and htpasswd basic auth over TLS with a
// test CA. Skipped only if docker-registry or skopeo is not installed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/cli_runner.h"
#include "common/registry_fixture.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "images/reference.h"
#include "registry/blob_upload.h"
#include "registry/registry_destination.h"

namespace imgstore::registry {
namespace {

using imgstore::testing::CliResult;
using imgstore::testing::LayerCompression;
using imgstore::testing::MakeTestImage;
using imgstore::testing::RunImgstore;
using imgstore::testing::RunProgram;
using imgstore::testing::SuiteRegistry;
using imgstore::testing::TempDir;
using imgstore::testing::TestImage;
using imgstore::testing::TestImageSpec;
using imgstore::testing::TestRegistry;
using imgstore::testing::TestRegistryConfig;
using imgstore::testing::TlsBasicAuth;
using imgstore::testing::WriteOciLayout;
namespace fs = std::filesystem;

TestImage Image(uint32_t seed, int layers, LayerCompression c, size_t layer_bytes = 4096) {
  TestImageSpec spec;
  spec.seed = seed;
  spec.layers = layers;
  spec.compression = c;
  spec.layer_bytes = layer_bytes;
  return MakeTestImage(spec);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Lines of stderr that are errors: exactly one for a failed command (progress lines aside).
int ErrorLines(const std::string& err) {
  int n = 0;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) n += line.starts_with("imgstore: error:") ? 1 : 0;
  return n;
}

// A blob in memory as the store would hand it out.
class MemFile : public SequentialFile {
 public:
  explicit MemFile(std::string bytes) : SequentialFile("mem"), bytes_(std::move(bytes)) {}
  Result<size_t> Read(std::span<std::byte> buf) override {
    size_t n = std::min(buf.size(), bytes_.size() - pos_);
    std::memcpy(buf.data(), bytes_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  Status Skip(uint64_t n) override {
    pos_ = static_cast<size_t>(std::min<uint64_t>(bytes_.size(), pos_ + n));
    return Status::OK();
  }

 private:
  std::string bytes_;
  size_t pos_ = 0;
};

// A blob whose reading fails with `error` after `good` bytes (a source that drops, a disk that
// fails).
class FailingFile : public SequentialFile {
 public:
  FailingFile(std::string bytes, size_t good, Status error)
      : SequentialFile("failing"),
        bytes_(std::move(bytes)),
        good_(std::min(good, bytes_.size())),
        error_(std::move(error)) {}
  Result<size_t> Read(std::span<std::byte> buf) override {
    if (pos_ >= good_) return error_;
    size_t n = std::min(buf.size(), good_ - pos_);
    std::memcpy(buf.data(), bytes_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  Status Skip(uint64_t) override { return error_; }

 private:
  std::string bytes_;
  size_t good_;
  Status error_;
  size_t pos_ = 0;
};

// Everything a library-level push records.
struct Recorder {
  std::mutex mu;
  std::vector<images::BlobProgress> reports;
  std::map<Digest, int> opens;

  int Skipped() {
    std::lock_guard lock(mu);
    return static_cast<int>(std::count_if(reports.begin(), reports.end(),
                                          [](const auto& p) { return p.skipped && !p.mounted; }));
  }
  int Mounted() {
    std::lock_guard lock(mu);
    return static_cast<int>(
        std::count_if(reports.begin(), reports.end(), [](const auto& p) { return p.mounted; }));
  }
  int Opens(const Digest& d) {
    std::lock_guard lock(mu);
    return opens[d];
  }
};

// The ImageToWrite of a test image, its blobs served from memory. `fail(digest, attempt)` may
// return an error to fail that opening's stream after `good` bytes.
images::ImageToWrite ToWrite(
    const TestImage& im, std::shared_ptr<Recorder> rec,
    std::function<Status(const Digest&, int)> fail = [](const Digest&,
                                                        int) { return Status::OK(); },
    size_t good = 0) {
  images::ImageToWrite w;
  w.manifest = {im.manifest, im.manifest_media_type};
  Result<images::ImageManifest> parsed =
      images::ParseImageManifest(im.manifest, im.manifest_media_type);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  if (parsed.ok()) w.parsed = *parsed;
  w.config = im.config;
  w.diff_ids = im.diff_ids;
  auto blobs = std::make_shared<std::map<Digest, std::string>>();
  (*blobs)[im.id] = im.config;
  for (const std::string& l : im.layers) (*blobs)[Digest::Of(l)] = l;
  w.open_blob = [blobs, rec, fail,
                 good](const images::Descriptor& d) -> Result<std::unique_ptr<SequentialFile>> {
    auto it = blobs->find(d.digest);
    if (it == blobs->end()) return Status(Code::kNotFound, "no blob " + d.digest.ToString());
    int attempt = 0;
    {
      std::lock_guard lock(rec->mu);
      attempt = ++rec->opens[d.digest];
    }
    Status st = fail(d.digest, attempt);
    if (!st.ok())
      return std::unique_ptr<SequentialFile>(std::make_unique<FailingFile>(it->second, good, st));
    return std::unique_ptr<SequentialFile>(std::make_unique<MemFile>(it->second));
  };
  w.max_parallel = 3;
  w.on_progress = [rec](const images::BlobProgress& p) {
    std::lock_guard lock(rec->mu);
    rec->reports.push_back(p);
  };
  return w;
}

class PushTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRegistry::Available()) {
      GTEST_SKIP() << "docker-registry or skopeo is not installed (scripts/setup.sh)";
    }
  }

  // Puts `im` into the store of root_ under `name` (from an OCI layout, through the CLI).
  void Import(const TestImage& im, const std::string& name) {
    const std::string layout = work_.Sub("layout-" + std::to_string(++layouts_));
    WriteOciLayout(im, layout, "src");
    CliResult r =
        RunImgstore(root_.path(), {"pull", "-q", "oci:" + layout + ":src", "--name", name});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }

  static std::string RepoDir(const TestRegistry& reg, const std::string& path) {
    return reg.storage_dir() + "/docker/registry/v2/repositories/" + path;
  }
  // Upload sessions the registry holds open for the repository now: _uploads/UUID/startedat,
  // written when a session starts, removed with the directory when it is closed or cancelled.
  // (A cancel that races with the registry's handler of the broken request may leave a stray
  // _uploads/UUID/hashstates behind, written after the removal: not a session.)
  static int Sessions(const TestRegistry& reg, const std::string& path) {
    const std::string dir = RepoDir(reg, path) + "/_uploads";
    std::error_code ec;
    if (!fs::exists(dir, ec)) return 0;
    int n = 0;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
      n += fs::exists(e.path() / "startedat") ? 1 : 0;
    }
    return n;
  }
  // Sessions of a failed upload are cancelled by a DELETE that the registry may handle while it
  // still handles the broken request: wait (bounded) for none to be left.
  static bool NoSessionsLeft(const TestRegistry& reg, const std::string& path) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (Sessions(reg, path) != 0) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
  }
  static bool Linked(const TestRegistry& reg, const std::string& path, const Digest& d) {
    return fs::exists(RepoDir(reg, path) + "/_layers/sha256/" + std::string(d.hex()) + "/link");
  }

  static Status LibPush(const std::string& ref, const images::ImageToWrite& w,
                        const RegistryOptions& options = {}) {
    Result<images::Reference> r = images::ParseReference(ref);
    if (!r.ok()) return r.status();
    Result<std::unique_ptr<images::ImageDestination>> d = OpenRegistryDestination(*r, options);
    if (!d.ok()) return d.status();
    return (*d)->PutImage(w);
  }

  // skopeo copies docker://HOST/ref into an OCI layout; "" on success.
  std::string SkopeoCopyOut(const TestRegistry& reg, const std::string& ref,
                            const std::string& dir) {
    std::vector<std::string> args = {"--insecure-policy", "copy", "-q"};
    if (reg.config().tls) {
      args.push_back("--src-cert-dir=" + reg.cert_dir());
    } else {
      args.push_back("--src-tls-verify=false");
    }
    if (reg.config().basic_auth) {
      args.push_back("--src-authfile=" + reg.WriteAuthFile(work_.Sub("skopeo-auth.json")));
    }
    args.push_back("docker://" + reg.host() + "/" + ref);
    args.push_back("oci:" + dir + ":out");
    CliResult r = RunProgram(TestRegistry::kSkopeo, args, {"TMPDIR=" + work_.path()});
    return r.exit_code == 0 ? "" : r.Describe();
  }

  // The image as skopeo reads it back: every blob and the manifest, byte for byte.
  void ExpectSkopeoReadsBack(const TestRegistry& reg, const std::string& ref, const TestImage& im) {
    std::string error;
    EXPECT_EQ(reg.SkopeoManifestDigest(ref, &error), im.manifest_digest.ToString()) << error;
    const std::string out = work_.Sub("copy-" + std::to_string(++layouts_));
    ASSERT_EQ(SkopeoCopyOut(reg, ref, out), "");
    auto blob = [&](const Digest& d) {
      return ReadFile(out + "/blobs/sha256/" + std::string(d.hex()));
    };
    EXPECT_EQ(blob(im.manifest_digest), im.manifest);
    EXPECT_EQ(blob(im.id), im.config);
    for (const std::string& l : im.layers) EXPECT_EQ(blob(Digest::Of(l)), l);
  }

  TempDir work_;
  TempDir root_;
  int layouts_ = 0;
};

class PushToPlainRegistry : public SuiteRegistry<PushToPlainRegistry, PushTest> {
 protected:
  static void SetUpTestSuite() { StartSuiteRegistry({}); }

  // The CLI round trip: push, skopeo reads it, imgstore pulls it into another store.
  void CliRoundTrip(const TestImage& im, const std::string& repo) {
    Import(im, "local/app:1");
    CliResult r = RunImgstore(root_.path(), {"push", "local/app:1", Ref(repo + ":1")});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.out, im.manifest_digest.ToString() + "\n");
    ExpectSkopeoReadsBack(reg(), repo + ":1", im);
    TempDir root2;
    CliResult pull = RunImgstore(root2.path(), {"pull", "-q", Ref(repo + ":1")});
    ASSERT_EQ(pull.exit_code, 0) << pull.Describe();
    CliResult inspect = RunImgstore(root2.path(), {"inspect", Ref(repo + ":1")});
    ASSERT_EQ(inspect.exit_code, 0) << inspect.Describe();
    EXPECT_NE(inspect.out.find(im.id.ToString()), std::string::npos) << inspect.out;
    EXPECT_NE(inspect.out.find(im.manifest_digest.ToString()), std::string::npos) << inspect.out;
    // Every session was closed by its PUT.
    EXPECT_EQ(Sessions(reg(), repo), 0);
  }
};

TEST_F(PushToPlainRegistry, CliPushesGzipLayersThatSkopeoAndPullReadBack) {
  CliRoundTrip(Image(31, 3, LayerCompression::kGzip), "push/gzip");
}

TEST_F(PushToPlainRegistry, CliPushesZstdLayersThatSkopeoAndPullReadBack) {
  CliRoundTrip(Image(32, 2, LayerCompression::kZstd), "push/zstd");
}

TEST_F(PushToPlainRegistry, PushWithoutDestGoesWhereTheNameSaysAndWritesTheDigestFile) {
  const TestImage im = Image(33, 2, LayerCompression::kGzip);
  Import(im, Ref("push/named:7"));
  const std::string digestfile = work_.Sub("digest");
  CliResult r =
      RunImgstore(root_.path(), {"push", "--digestfile", digestfile, Ref("push/named:7")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.manifest_digest.ToString() + "\n");
  EXPECT_EQ(ReadFile(digestfile), im.manifest_digest.ToString() + "\n");
  std::string error;
  EXPECT_EQ(reg().SkopeoManifestDigest("push/named:7", &error), im.manifest_digest.ToString())
      << error;
}

TEST_F(PushToPlainRegistry, AnotherTagOfTheSameRepositoryUploadsNothing) {
  const TestImage im = Image(34, 3, LayerCompression::kGzip);
  Import(im, "local/skip:1");
  CliResult r = RunImgstore(root_.path(), {"push", "local/skip:1", Ref("push/skip:1")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  // The first push made sessions (and closed them); without the empty _uploads directory, any
  // new session would bring it back.
  const std::string uploads = RepoDir(reg(), "push/skip") + "/_uploads";
  ASSERT_TRUE(fs::is_directory(uploads));
  ASSERT_EQ(Sessions(reg(), "push/skip"), 0);
  fs::remove(uploads);
  r = RunImgstore(root_.path(), {"push", "local/skip:1", Ref("push/skip:2")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.manifest_digest.ToString() + "\n");
  EXPECT_FALSE(fs::exists(uploads)) << "an upload session was opened";
  std::string error;
  EXPECT_EQ(reg().SkopeoManifestDigest("push/skip:2", &error), im.manifest_digest.ToString())
      << error;
  // Through the library: each blob reported skipped, none opened.
  auto rec = std::make_shared<Recorder>();
  Status s = LibPush(Ref("push/skip:3"), ToWrite(im, rec));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(rec->Skipped(), 1 + static_cast<int>(im.layers.size()));
  EXPECT_EQ(rec->Opens(im.id), 0);
  EXPECT_FALSE(fs::exists(uploads));
}

TEST_F(PushToPlainRegistry, CrossRepositoryMountUploadsNothing) {
  const TestImage im = Image(35, 2, LayerCompression::kGzip);
  auto first = std::make_shared<Recorder>();
  Status s = LibPush(Ref("mount/from:1"), ToWrite(im, first));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(first->Skipped() + first->Mounted(), 0);  // a new image: everything uploaded
  EXPECT_EQ(first->Opens(im.id), 1);

  auto rec = std::make_shared<Recorder>();
  images::ImageToWrite w = ToWrite(im, rec);
  std::vector<Digest> all = {im.id};
  for (const std::string& l : im.layers) all.push_back(Digest::Of(l));
  for (const Digest& d : all) {
    // Another registry and the destination itself are not asked; the source repository is.
    w.origins[d] = {"127.0.0.1:1/mount/from", reg().host() + "/mount/to",
                    reg().host() + "/mount/from"};
  }
  s = LibPush(Ref("mount/to:1"), w);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(rec->Mounted(), static_cast<int>(all.size()));
  for (const Digest& d : all) {
    EXPECT_EQ(rec->Opens(d), 0) << d.ToString();
    EXPECT_TRUE(Linked(reg(), "mount/to", d)) << d.ToString();
  }
  EXPECT_FALSE(fs::exists(RepoDir(reg(), "mount/to") + "/_uploads")) << "a session was opened";
  ExpectSkopeoReadsBack(reg(), "mount/to:1", im);
}

TEST_F(PushToPlainRegistry, MountFromARepositoryWithoutTheBlobFallsBackToUpload) {
  const TestImage other = Image(36, 1, LayerCompression::kGzip);
  auto rec0 = std::make_shared<Recorder>();
  ASSERT_TRUE(LibPush(Ref("mount/other:1"), ToWrite(other, rec0)).ok());

  const TestImage im = Image(37, 2, LayerCompression::kGzip);
  auto rec = std::make_shared<Recorder>();
  images::ImageToWrite w = ToWrite(im, rec);
  w.origins[im.id] = {reg().host() + "/mount/other"};  // exists, but lacks this blob: 202
  w.origins[Digest::Of(im.layers[0])] = {reg().host() + "/mount/nowhere"};  // no such repository
  Status s = LibPush(Ref("mount/fallback:1"), w);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(rec->Mounted() + rec->Skipped(), 0);
  EXPECT_EQ(rec->Opens(im.id), 1);
  EXPECT_EQ(rec->Opens(Digest::Of(im.layers[0])), 1);
  EXPECT_EQ(Sessions(reg(), "mount/fallback"), 0);
  ExpectSkopeoReadsBack(reg(), "mount/fallback:1", im);
}

TEST_F(PushToPlainRegistry, BlobsAboveTheMonolithicLimitArePatched) {
  // 64 KiB of random bytes per layer (incompressible) against a 1 KiB limit: the layers go
  // through POST, PATCH, PUT, the config (under 1 KiB) through POST, PUT.
  const TestImage im = Image(38, 3, LayerCompression::kGzip, 64 << 10);
  ASSERT_LT(im.config.size(), 1024u);
  auto rec = std::make_shared<Recorder>();
  RegistryOptions o;
  o.monolithic_upload_max = 1024;
  Status s = LibPush(Ref("push/chunked:1"), ToWrite(im, rec), o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Sessions(reg(), "push/chunked"), 0);
  ExpectSkopeoReadsBack(reg(), "push/chunked:1", im);
}

TEST_F(PushToPlainRegistry, ReferenceByDigestMustNameTheManifest) {
  const TestImage im = Image(39, 1, LayerCompression::kGzip);
  auto rec = std::make_shared<Recorder>();
  const Digest wrong = Digest::Of("some other manifest");
  Status s = LibPush(Ref("digest/app@" + wrong.ToString()), ToWrite(im, rec));
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find(wrong.ToString()), std::string::npos) << s.ToString();
  EXPECT_FALSE(fs::exists(RepoDir(reg(), "digest/app"))) << "something was sent";
  EXPECT_EQ(rec->Opens(im.id), 0);

  s = LibPush(Ref("digest/app@" + im.manifest_digest.ToString()), ToWrite(im, rec));
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectSkopeoReadsBack(reg(), "digest/app@" + im.manifest_digest.ToString(), im);
}

TEST_F(PushToPlainRegistry, ManifestWithoutMediaTypeIsRefusedBeforeAnythingIsSent) {
  const TestImage im = Image(40, 1, LayerCompression::kGzip);
  auto rec = std::make_shared<Recorder>();
  images::ImageToWrite w = ToWrite(im, rec);
  w.manifest.media_type = "";
  Status s = LibPush(Ref("push/notype:1"), w);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("media type"), std::string::npos) << s.ToString();
  EXPECT_FALSE(fs::exists(RepoDir(reg(), "push/notype"))) << "something was sent";
}

TEST_F(PushToPlainRegistry, UploadThatFailsForAPassingReasonIsStartedAgain) {
  const TestImage im = Image(41, 2, LayerCompression::kGzip, 32 << 10);
  const Digest flaky = Digest::Of(im.layers[1]);
  auto rec = std::make_shared<Recorder>();
  // The first attempt breaks half-way through the body.
  images::ImageToWrite w = ToWrite(
      im, rec,
      [&](const Digest& d, int attempt) {
        return d == flaky && attempt == 1 ? Status(Code::kUnavailable, "source connection dropped")
                                          : Status::OK();
      },
      16 << 10);
  RegistryOptions o;
  o.retry.initial_delay = std::chrono::milliseconds(10);
  Status s = LibPush(Ref("retry/once:1"), w, o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(rec->Opens(flaky), 2);
  EXPECT_EQ(rec->Opens(im.id), 1);
  ExpectSkopeoReadsBack(reg(), "retry/once:1", im);
}

TEST_F(PushToPlainRegistry, UploadGivesUpAfterTheLastAttemptAndNamesTheBlob) {
  const TestImage im = Image(42, 2, LayerCompression::kGzip, 32 << 10);
  const Digest bad = Digest::Of(im.layers[0]);
  auto rec = std::make_shared<Recorder>();
  images::ImageToWrite w = ToWrite(im, rec, [&](const Digest& d, int) {
    return d == bad ? Status(Code::kUnavailable, "source connection dropped") : Status::OK();
  });
  RegistryOptions o;
  o.retry.max_attempts = 2;
  o.retry.initial_delay = std::chrono::milliseconds(10);
  Status s = LibPush(Ref("retry/never:1"), w, o);
  ASSERT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("push blob " + bad.ToString() + " to " + Ref("retry/never")),
            std::string::npos)
      << s.ToString();
  EXPECT_NE(s.message().find("source connection dropped"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("after 2 attempts"), std::string::npos) << s.ToString();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  EXPECT_EQ(rec->Opens(bad), 2);
  std::string error;
  EXPECT_EQ(reg().SkopeoManifestDigest("retry/never:1", &error), "") << "a manifest was pushed";
  // Both sessions were cancelled. (They broke before any byte of the body: docker-registry 2.8
  // refuses the DELETE of a session that received bytes after its Location was given, because
  // the offset in that Location's _state is then stale; such a session waits for its purge.)
  EXPECT_TRUE(NoSessionsLeft(reg(), "retry/never")) << "a broken session was not cancelled";

  // A failure that retrying cannot cure (the store's disk) is returned at once.
  auto rec2 = std::make_shared<Recorder>();
  images::ImageToWrite w2 = ToWrite(im, rec2, [&](const Digest& d, int) {
    return d == bad ? Status(Code::kIOError, "read blob: Input/output error") : Status::OK();
  });
  s = LibPush(Ref("retry/io:1"), w2, o);
  ASSERT_EQ(s.code(), Code::kIOError) << s.ToString();
  EXPECT_NE(s.message().find(bad.ToString()), std::string::npos) << s.ToString();
  EXPECT_EQ(rec2->Opens(bad), 1);
}

TEST_F(PushToPlainRegistry, FirstErrorStopsTheBlobsNotYetStarted) {
  const TestImage im = Image(44, 3, LayerCompression::kGzip);
  auto rec = std::make_shared<Recorder>();
  // One worker: the config goes first, and its failure must leave the layers unopened.
  images::ImageToWrite w = ToWrite(im, rec, [&](const Digest& d, int) {
    return d == im.id ? Status(Code::kIOError, "read blob: Input/output error") : Status::OK();
  });
  w.max_parallel = 1;
  Status s = LibPush(Ref("stop/first:1"), w);
  ASSERT_EQ(s.code(), Code::kIOError) << s.ToString();
  EXPECT_NE(s.message().find("push blob " + im.id.ToString()), std::string::npos) << s.ToString();
  EXPECT_EQ(rec->Opens(im.id), 1);
  for (const std::string& l : im.layers) EXPECT_EQ(rec->Opens(Digest::Of(l)), 0);
  std::string error;
  EXPECT_EQ(reg().SkopeoManifestDigest("stop/first:1", &error), "") << "a manifest was pushed";
}

TEST_F(PushToPlainRegistry, AProgressCallbackThatThrowsOnAnUploadThreadIsAnError) {
  // The blobs are at the registry already, so each upload thread reports its blob as skipped;
  // the callback throws for a layer, which may be on a helper thread: the push fails with an
  // error naming the exception (not std::terminate), and no manifest is put under the new tag.
  const TestImage im = Image(45, 2, LayerCompression::kGzip);
  auto rec = std::make_shared<Recorder>();
  auto ok = [](const Digest&, int) { return Status::OK(); };
  ASSERT_TRUE(LibPush(Ref("throw/progress:1"), ToWrite(im, rec, ok)).ok());
  images::ImageToWrite w = ToWrite(im, rec, ok);
  const Digest layer = Digest::Of(im.layers[1]);
  w.on_progress = [layer](const images::BlobProgress& p) {
    if (p.digest == layer) throw std::runtime_error("progress display broke");
  };
  Status s = LibPush(Ref("throw/progress:2"), w);
  ASSERT_EQ(s.code(), Code::kInternal) << s.ToString();
  EXPECT_NE(s.message().find("unexpected exception: progress display broke"), std::string::npos)
      << s.ToString();
  std::string error;
  EXPECT_EQ(reg().SkopeoManifestDigest("throw/progress:2", &error), "") << "a manifest was pushed";
}

TEST_F(PushToPlainRegistry, UnreachableRegistryIsOneErrorLine) {
  const TestImage im = Image(43, 1, LayerCompression::kGzip);
  Import(im, "local/unreach:1");
  // Port 1 is privileged and never bound by tests: the connection is refused.
  CliResult r = RunImgstore(root_.path(),
                            {"push", "--retry-times", "0", "local/unreach:1", "127.0.0.1:1/a/b:1"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(ErrorLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("registry 127.0.0.1:1"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(PushToPlainRegistry, PushOfAnUnknownImageFails) {
  CliResult r = RunImgstore(root_.path(), {"push", "nosuch/image:1", Ref("push/unknown:1")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(ErrorLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("nosuch/image"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(fs::exists(RepoDir(reg(), "push/unknown")));
}

TEST(UploadLocation, ResolvedAgainstTheRegistryAndQueryKept) {
  const std::string base = "https://127.0.0.1:5000";
  const std::string post = base + "/v2/a/b/blobs/uploads/";
  EXPECT_EQ(ResolveLocation(base, post, "http://other:1/up/1?_state=x%3D"),
            "http://other:1/up/1?_state=x%3D");
  EXPECT_EQ(ResolveLocation(base, post, "/v2/a/b/blobs/uploads/u1?_state=s"),
            base + "/v2/a/b/blobs/uploads/u1?_state=s");
  EXPECT_EQ(ResolveLocation(base, post, "u2?x=1"), base + "/v2/a/b/blobs/uploads/u2?x=1");
  EXPECT_EQ(ResolveLocation(base, post, "//storage:9/u3"), "https://storage:9/u3");
  EXPECT_EQ(AppendQuery(base + "/u?_state=s", "digest=sha256:ab"),
            base + "/u?_state=s&digest=sha256:ab");
  EXPECT_EQ(AppendQuery(base + "/u", "digest=sha256:ab"), base + "/u?digest=sha256:ab");
  EXPECT_EQ(AppendQuery(base + "/u?", "digest=sha256:ab"), base + "/u?digest=sha256:ab");
}

class PushToTlsAuthRegistry : public SuiteRegistry<PushToTlsAuthRegistry, PushTest> {
 protected:
  static void SetUpTestSuite() { StartSuiteRegistry(TlsBasicAuth()); }
};

TEST_F(PushToTlsAuthRegistry, RightCredentialsAndCertDirWork) {
  const TestImage im = Image(51, 2, LayerCompression::kGzip);
  Import(im, "local/secure:1");
  CliResult r =
      RunImgstore(root_.path(), {"push", "--creds", Creds(), "--cert-dir", reg().cert_dir(),
                                 "local/secure:1", Ref("secure/app:1")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.manifest_digest.ToString() + "\n");
  EXPECT_EQ(r.err.find(reg().config().password), std::string::npos);
  ExpectSkopeoReadsBack(reg(), "secure/app:1", im);
  // An auth file works the same; a new repository, so the blobs are sent again.
  const std::string authfile = reg().WriteAuthFile(work_.Sub("auth.json"));
  r = RunImgstore(root_.path(), {"push", "--authfile", authfile, "--cert-dir", reg().cert_dir(),
                                 "local/secure:1", Ref("secure/other:1")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ExpectSkopeoReadsBack(reg(), "secure/other:1", im);
}

TEST_F(PushToTlsAuthRegistry, WrongPasswordIsRefusedWithoutLeakingIt) {
  const TestImage im = Image(52, 1, LayerCompression::kGzip);
  Import(im, "local/wrong:1");
  const std::string bad = "Wr0ngPassw0rd-XYZZY";
  CliResult r =
      RunImgstore(root_.path(), {"push", "--creds", reg().config().user + ":" + bad, "--cert-dir",
                                 reg().cert_dir(), "local/wrong:1", Ref("secure/wrong:1")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(ErrorLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("401"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("registry " + reg().host()), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(bad), std::string::npos) << "password leaked: " << r.err;
  EXPECT_EQ(r.out.find(bad), std::string::npos);
  EXPECT_FALSE(fs::exists(RepoDir(reg(), "secure/wrong")));
}

TEST_F(PushToTlsAuthRegistry, UntrustedCertificateIsRefused) {
  const TestImage im = Image(53, 1, LayerCompression::kGzip);
  Import(im, "local/ca:1");
  CliResult r =
      RunImgstore(root_.path(), {"push", "--creds", Creds(), "local/ca:1", Ref("secure/ca:1")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(ErrorLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("not trusted"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--cert-dir"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(RepoDir(reg(), "secure/ca")));
}

}  // namespace
}  // namespace imgstore::registry
