// Pulls through a FaultProxy in front of a real registry (Debian's docker-registry, plain http):
// HTTP 500 and 429 answers are retried (Retry-After honoured), a connection dropped in the middle
// of a blob is resumed with Range, a registry that lies about blob bytes is caught with nothing
// stored, and a registry that is not running is named after the retries. Through the CLI (exit
// codes, the one error line) and through Store::Pull (parallel blobs).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "common/cli_runner.h"
#include "common/fault_proxy.h"
#include "common/registry_fixture.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "images/reference.h"
#include "registry/registry_source.h"
#include "store/store.h"

namespace imgstore::registry {
namespace {

using imgstore::testing::CliResult;
using imgstore::testing::FaultProxy;
using imgstore::testing::FaultRule;
using imgstore::testing::LayerCompression;
using imgstore::testing::MakeTestImage;
using imgstore::testing::RunImgstore;
using imgstore::testing::SeenRequest;
using imgstore::testing::TempDir;
using imgstore::testing::TestImage;
using imgstore::testing::TestImageSpec;
using imgstore::testing::TestRegistry;
using imgstore::testing::WriteOciLayout;

TestImage Image(uint32_t seed, int layers, size_t layer_bytes) {
  TestImageSpec spec;
  spec.seed = seed;
  spec.layers = layers;
  spec.layer_bytes = layer_bytes;
  spec.compression = LayerCompression::kGzip;
  return MakeTestImage(spec);
}

// The lines of stderr that report an error: a failed command prints exactly one.
std::vector<std::string> ErrorLines(const std::string& err) {
  std::vector<std::string> out;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("imgstore: error:")) out.push_back(line);
  }
  return out;
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Whether every connection through `proxy` has been closed (both sides), within a deadline:
// the proxy leaks no thread or descriptor once its clients are gone.
bool AllClosed(const FaultProxy& proxy) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (proxy.open_connections() != 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// `imgstore inspect` output without the line saying when the image came into the store.
std::string WithoutAddedTime(const std::string& inspect) {
  std::string out;
  std::istringstream in(inspect);
  for (std::string line; std::getline(in, line);) {
    if (!Contains(line, "\"added\":")) out += line + "\n";
  }
  return out;
}

// A loopback port with nothing listening.
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

// One registry for the suite (starting one costs about a second); a fresh proxy, store and
// repository per test, so rules and counters belong to one test.
class FaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!TestRegistry::Available()) return;
    registry_ = std::make_unique<TestRegistry>();
    std::string error;
    if (!registry_->Start({}, &error)) {
      registry_.reset();
      FAIL() << "cannot start docker-registry: " << error;
    }
  }
  static void TearDownTestSuite() { registry_.reset(); }

  void SetUp() override {
    if (!TestRegistry::Available()) {
      GTEST_SKIP() << "docker-registry or skopeo is not installed (scripts/setup.sh)";
    }
    ASSERT_TRUE(registry_) << "registry not started";
    std::string error;
    ASSERT_TRUE(proxy_.Start(registry_->host(), &error)) << error;
  }

  // skopeo puts `im` into the registry directly (not through the proxy) as `dest`.
  void Push(const TestImage& im, const std::string& dest) {
    const std::string layout = work_.Sub("layout-" + std::to_string(++layouts_));
    WriteOciLayout(im, layout, "src");
    ASSERT_EQ(registry_->SkopeoPush("oci:" + layout + ":src", dest), "");
  }

  // "PROXY/rest": the reference imgstore pulls.
  std::string Ref(const std::string& rest) const { return proxy_.host() + "/" + rest; }

  CliResult Pull(const std::string& rest, std::vector<std::string> flags = {},
                 const std::string& root = "") {
    std::vector<std::string> args = {"pull", "--retry-delay", "50ms"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(Ref(rest));
    return RunImgstore(root.empty() ? root_.path() : root, args);
  }

  std::string BlobFile(const Digest& d) const {
    return root_.Sub("blobs/sha256/" + std::string(d.hex()));
  }

  // Defined with the tests of kept downloads, below.
  void FailAfter(const std::string& rest, const Digest& layer, uint64_t bytes);

  // What `imgstore list -q` prints: the image ids, one a line.
  std::string ListedIds() {
    CliResult r = RunImgstore(root_.path(), {"list", "-q"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    return r.out;
  }

  static std::unique_ptr<TestRegistry> registry_;
  FaultProxy proxy_;
  TempDir work_;
  TempDir root_;
  int layouts_ = 0;
};
std::unique_ptr<TestRegistry> FaultTest::registry_;

TEST_F(FaultTest, A500OnTheFirstManifestAndBlobGetIsRetried) {
  const TestImage im = Image(101, 2, 4096);
  Push(im, "fault/retry:1");
  proxy_.AddRule(FaultRule::Answer(500).For("GET", "/v2/fault/retry/manifests/"));
  proxy_.AddRule(FaultRule::Answer(500).For("GET", "/v2/fault/retry/blobs/"));
  CliResult r = Pull("fault/retry:1");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.id.ToString() + "\n");
  EXPECT_EQ(ErrorLines(r.err).size(), 0u) << r.err;
  // One manifest GET more than needed, and one blob GET more than the three blobs.
  EXPECT_EQ(proxy_.CountRequests("GET", "/v2/fault/retry/manifests/1"), 2);
  EXPECT_EQ(proxy_.CountRequests("GET", "/v2/fault/retry/blobs/"), 3 + 1);
  EXPECT_EQ(RunImgstore(root_.path(), {"check", "--verify-content"}).exit_code, 0);
}

TEST_F(FaultTest, APersistent500OnTheManifestFailsAfterTheConfiguredAttempts) {
  const TestImage im = Image(102, 1, 4096);
  Push(im, "fault/m500:1");
  proxy_.AddRule(FaultRule::Answer(500).For("GET", "/manifests/").Times(-1));
  CliResult r = Pull("fault/m500:1", {"--retry-times", "2"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  std::vector<std::string> errors = ErrorLines(r.err);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_TRUE(Contains(errors[0], "manifest " + Ref("fault/m500:1") + ": HTTP 500")) << errors[0];
  EXPECT_EQ(proxy_.CountRequests("GET", "/v2/fault/m500/manifests/1"), 3);
  EXPECT_EQ(proxy_.CountRequests("GET", "/blobs/"), 0);
  EXPECT_EQ(ListedIds(), "");
}

TEST_F(FaultTest, APersistent500OnABlobNamesTheBlob) {
  const TestImage im = Image(103, 2, 4096);
  Push(im, "fault/b500:1");
  const std::string layer = Digest::Of(im.layers[1]).ToString();
  proxy_.AddRule(FaultRule::Answer(500).For("GET", layer).Times(-1));
  CliResult r = Pull("fault/b500:1", {"--retry-times", "1", "-q"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  std::vector<std::string> errors = ErrorLines(r.err);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_TRUE(Contains(errors[0], "blob " + Ref("fault/b500@" + layer) + ": HTTP 500 (UNKNOWN"))
      << errors[0];
  EXPECT_EQ(proxy_.CountRequests("GET", "/v2/fault/b500/blobs/" + layer), 2);
  EXPECT_EQ(ListedIds(), "");
  EXPECT_EQ(RunImgstore(root_.path(), {"check"}).exit_code, 0);
}

TEST_F(FaultTest, A429WithRetryAfterIsWaitedFor) {
  const TestImage im = Image(104, 1, 4096);
  Push(im, "fault/busy:1");
  proxy_.AddRule(FaultRule::Answer(429, {"Retry-After: 1"}).For("GET", "/v2/fault/busy/blobs/"));
  const auto start = std::chrono::steady_clock::now();
  CliResult r = Pull("fault/busy:1");  // --retry-delay 50ms: the wait is the registry's
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.id.ToString() + "\n");
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_EQ(proxy_.CountRequests("GET", "/v2/fault/busy/blobs/"), 2 + 1);
}

TEST_F(FaultTest, AConnectionDroppedMidBlobIsResumedWithRange) {
  // ~2 MiB of random bytes: gzip cannot shrink it, so the layer blob is about that size.
  const TestImage im = Image(105, 1, 2 << 20);
  Push(im, "fault/drop:1");
  const std::string layer = Digest::Of(im.layers[0]).ToString();
  ASSERT_GT(im.layers[0].size(), 1u << 20);
  proxy_.AddRule(FaultRule::DropResponseAfter(100 << 10).For("GET", layer));
  CliResult r = Pull("fault/drop:1");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.id.ToString() + "\n");
  std::vector<SeenRequest> seen = proxy_.Requests();
  std::vector<std::string> ranges;
  for (const SeenRequest& s : seen) {
    if (Contains(s.path, layer)) ranges.push_back(s.Header("range"));
  }
  // The first GET had no Range; the resumption asked for the rest after the 100 KiB it got.
  EXPECT_EQ(ranges, (std::vector<std::string>{"", "bytes=102400-"}));
  EXPECT_TRUE(AllClosed(proxy_)) << proxy_.open_connections();
  EXPECT_TRUE(std::filesystem::exists(BlobFile(Digest::Of(im.layers[0]))));
  EXPECT_EQ(RunImgstore(root_.path(), {"check", "--verify-content"}).exit_code, 0);

  // The same image as a pull without faults: same id and manifest digest.
  TempDir clean;
  CliResult c = Pull("fault/drop:1", {}, clean.path());
  ASSERT_EQ(c.exit_code, 0) << c.Describe();
  CliResult a = RunImgstore(root_.path(), {"inspect", Ref("fault/drop:1")});
  CliResult b = RunImgstore(clean.path(), {"inspect", Ref("fault/drop:1")});
  ASSERT_EQ(a.exit_code, 0) << a.Describe();
  EXPECT_EQ(WithoutAddedTime(a.out), WithoutAddedTime(b.out));
  EXPECT_TRUE(Contains(a.out, im.manifest_digest.ToString())) << a.out;
  EXPECT_TRUE(Contains(a.out, im.id.ToString())) << a.out;
}

// --- Downloads kept across pulls: a pull that fails or is killed mid-blob leaves what it got in
// ingest/ (check stays clean, df counts it), and the next pull asks only for the rest.

// The size of the partial download of `d` in the store at root (0 when there is none).
uint64_t PartialSize(const std::string& root, const Digest& d) {
  std::error_code ec;
  uint64_t n =
      std::filesystem::file_size(root + "/ingest/sha256-" + std::string(d.hex()) + ".partial", ec);
  return ec ? 0 : n;
}

// The Range headers of the GETs of `layer` the proxy saw, in order ("" for none).
std::vector<std::string> RangesOf(const FaultProxy& proxy, const std::string& layer) {
  std::vector<std::string> out;
  for (const SeenRequest& s : proxy.Requests()) {
    if (s.method == "GET" && Contains(s.path, layer)) out.push_back(s.Header("range"));
  }
  return out;
}

// A pull of `rest` whose layer `layer` breaks after `bytes` and then is not found (404) at the
// resumption: one error line naming the layer, and those bytes kept. The proxy is reset after.
void FaultTest::FailAfter(const std::string& rest, const Digest& layer, uint64_t bytes) {
  proxy_.AddRule(FaultRule::DropResponseAfter(bytes).For("GET", layer.ToString()));
  proxy_.AddRule(FaultRule::Answer(404, {}, R"({"errors":[{"code":"BLOB_UNKNOWN"}]})")
                     .For("GET", layer.ToString())
                     .Times(-1));
  CliResult failed = Pull(rest, {"-q"});
  EXPECT_EQ(failed.exit_code, 1) << failed.Describe();
  EXPECT_EQ(ErrorLines(failed.err).size(), 1u) << failed.err;
  EXPECT_TRUE(Contains(failed.err, layer.ToString())) << failed.err;
  ASSERT_EQ(PartialSize(root_.path(), layer), bytes);
  proxy_.ClearRules();
  proxy_.ClearRecords();
}

TEST_F(FaultTest, AFailedPullKeepsItsDownloadAndTheNextPullResumesIt) {
  const TestImage im = Image(120, 1, 2 << 20);
  Push(im, "fault/keep:1");
  const Digest layer_digest = Digest::Of(im.layers[0]);
  const std::string layer = layer_digest.ToString();
  ASSERT_NO_FATAL_FAILURE(FailAfter("fault/keep:1", layer_digest, 300u << 10));

  CliResult check = RunImgstore(root_.path(), {"check"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe();
  EXPECT_EQ(check.out, "") << "a kept download is not a problem";
  CliResult df = RunImgstore(root_.path(), {"df", "--format", "json"});
  ASSERT_EQ(df.exit_code, 0) << df.Describe();
  EXPECT_TRUE(Contains(df.out, "\"partial_downloads\": 1")) << df.out;
  EXPECT_TRUE(Contains(df.out, "\"partial_bytes\": " + std::to_string(300 << 10))) << df.out;

  CliResult r = Pull("fault/keep:1", {"-q"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(RangesOf(proxy_, layer), std::vector<std::string>{"bytes=307200-"});
  EXPECT_LT(proxy_.bytes_to_client(), im.layers[0].size()) << "the kept bytes came again";
  EXPECT_EQ(PartialSize(root_.path(), layer_digest), 0u);
  EXPECT_EQ(RunImgstore(root_.path(), {"check", "--verify-content"}).exit_code, 0);
  EXPECT_TRUE(std::filesystem::is_empty(root_.Sub("ingest")));
  EXPECT_EQ(ListedIds(), std::string(im.id.hex().substr(0, 12)) + "\n");
}

TEST_F(FaultTest, ARangeRefusedForAKeptDownloadFallsBackToTheWholeBlob) {
  // A server that answers 416 (or, like some proxies and object stores, 400) to any Range: the
  // pull asks again without one, drops the bytes it already has as they come, and completes
  // (instead of failing at the same byte forever).
  for (int status : {416, 400}) {
    SCOPED_TRACE("HTTP " + std::to_string(status));
    const std::string ref = "fault/r" + std::to_string(status) + ":1";
    const TestImage im = Image(122 + status, 1, 2 << 20);
    Push(im, ref);
    const Digest layer_digest = Digest::Of(im.layers[0]);
    const std::string layer = layer_digest.ToString();
    ASSERT_NO_FATAL_FAILURE(FailAfter(ref, layer_digest, 200u << 10));

    proxy_.AddRule(FaultRule::Answer(status).For("GET", layer));
    CliResult r = Pull(ref, {"-q"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(RangesOf(proxy_, layer), (std::vector<std::string>{"bytes=204800-", ""}));
    EXPECT_EQ(RunImgstore(root_.path(), {"check", "--verify-content"}).exit_code, 0);
    EXPECT_TRUE(std::filesystem::is_empty(root_.Sub("ingest")));
  }
}

TEST_F(FaultTest, AKilledPullIsResumedByTheNextPullAndGcRemovesWhatNobodyResumes) {
  const TestImage im = Image(121, 1, 6 << 20);
  Push(im, "fault/killed:1");
  const Digest layer_digest = Digest::Of(im.layers[0]);
  const std::string layer = layer_digest.ToString();
  proxy_.SetThrottle(2 << 20);  // 2 MiB/s: the layer takes about 3 s

  imgstore::testing::Subprocess p;
  std::string error;
  ASSERT_TRUE(p.Start(imgstore::testing::ImgstoreBinary(),
                      {"--root", root_.path(), "pull", "-q", Ref("fault/killed:1")}, &error))
      << error;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (PartialSize(root_.path(), layer_digest) < (1u << 20) &&
         std::chrono::steady_clock::now() < deadline && p.running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  int status = p.KillAndWait();
  ASSERT_TRUE(WIFSIGNALED(status)) << "the pull ended before the kill: "
                                   << imgstore::testing::Subprocess::DescribeStatus(status);
  const uint64_t kept = PartialSize(root_.path(), layer_digest);
  ASSERT_GE(kept, 1u << 20);
  ASSERT_LT(kept, im.layers[0].size());

  // Opening the store (list, check) keeps it; check finds nothing wrong.
  EXPECT_EQ(ListedIds(), "");
  CliResult check = RunImgstore(root_.path(), {"check"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe();
  EXPECT_EQ(PartialSize(root_.path(), layer_digest), kept);

  // The next pull asks only for the rest.
  proxy_.SetThrottle(0);
  proxy_.ClearRecords();
  CliResult r = Pull("fault/killed:1", {"-q"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(RangesOf(proxy_, layer),
            std::vector<std::string>{"bytes=" + std::to_string(kept) + "-"});
  // Not the kept bytes again (the slack: manifest, config, headers, and what the throttled proxy
  // still had in flight for the killed pull when its records were cleared).
  EXPECT_LT(proxy_.bytes_to_client(), im.layers[0].size() - kept / 2);
  EXPECT_EQ(RunImgstore(root_.path(), {"check", "--verify-content"}).exit_code, 0);
  EXPECT_TRUE(std::filesystem::is_empty(root_.Sub("ingest")));
  EXPECT_EQ(ListedIds(), std::string(im.id.hex().substr(0, 12)) + "\n");

  // Killed again in a fresh store, then never resumed: gc takes the space back (a dry run
  // reports it and keeps it).
  TempDir other;
  proxy_.SetThrottle(2 << 20);
  imgstore::testing::Subprocess q;
  ASSERT_TRUE(q.Start(imgstore::testing::ImgstoreBinary(),
                      {"--root", other.path(), "pull", "-q", Ref("fault/killed:1")}, &error))
      << error;
  const auto deadline2 = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (PartialSize(other.path(), layer_digest) < (512u << 10) &&
         std::chrono::steady_clock::now() < deadline2 && q.running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(WIFSIGNALED(q.KillAndWait()));
  proxy_.SetThrottle(0);
  ASSERT_GT(PartialSize(other.path(), layer_digest), 0u);
  CliResult dry = RunImgstore(other.path(), {"gc", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.Describe();
  EXPECT_TRUE(Contains(dry.err, "1 partial download")) << dry.err;
  EXPECT_GT(PartialSize(other.path(), layer_digest), 0u);
  CliResult gc = RunImgstore(other.path(), {"gc", "--format", "json"});
  ASSERT_EQ(gc.exit_code, 0) << gc.Describe();
  EXPECT_TRUE(Contains(gc.out, "\"partial_downloads_removed\": 1")) << gc.out;
  EXPECT_TRUE(std::filesystem::is_empty(other.Sub("ingest")));
}

TEST_F(FaultTest, ARegistryThatIgnoresRangeIsReadPastTheBytesAlreadyHad) {
  const TestImage im = Image(106, 1, 2 << 20);
  Push(im, "fault/norange:1");
  const std::string layer = Digest::Of(im.layers[0]).ToString();
  proxy_.AddRule(FaultRule::DropResponseAfter(300 << 10).For("GET", layer));
  // The resumption reaches the registry without its Range header: it answers 200, whole blob.
  proxy_.AddRule(FaultRule::RemoveRequestHeader("Range").For("GET", layer));
  CliResult r = Pull("fault/norange:1");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.id.ToString() + "\n");
  EXPECT_EQ(proxy_.CountRequestsWithHeader("GET", layer, "Range"), 1);
  EXPECT_EQ(proxy_.CountRequests("GET", layer), 2);
  EXPECT_EQ(RunImgstore(root_.path(), {"check", "--verify-content"}).exit_code, 0);
}

TEST_F(FaultTest, AResumptionAnsweredFromTheWrongOffsetIsRefused) {
  const TestImage im = Image(114, 1, 2 << 20);
  Push(im, "fault/range:1");
  const std::string layer = Digest::Of(im.layers[0]).ToString();
  const std::string size = std::to_string(im.layers[0].size());
  proxy_.AddRule(FaultRule::DropResponseAfter(100 << 10).For("GET", layer));
  // The resumption gets the blob's first bytes again, labelled as such: not what was asked.
  proxy_.AddRule(
      FaultRule::Answer(206, {"Content-Range: bytes 0-99/" + size}, std::string(100, 'x'))
          .For("GET", layer)
          .Times(-1));
  CliResult r = Pull("fault/range:1", {"-q"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  std::vector<std::string> errors = ErrorLines(r.err);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_TRUE(Contains(errors[0], "blob " + Ref("fault/range@" + layer) +
                                      ": resuming at byte 102400: the registry answered HTTP 206 "
                                      "with Content-Range \"bytes 0-99/" +
                                      size + "\""))
      << errors[0];
  EXPECT_EQ(proxy_.CountRequests("GET", layer), 2);
  EXPECT_EQ(ListedIds(), "");
}

TEST_F(FaultTest, ABlobThatKeepsBreakingFailsAfterTheResumptions) {
  const TestImage im = Image(107, 1, 2 << 20);
  Push(im, "fault/flaky:1");
  const std::string layer = Digest::Of(im.layers[0]).ToString();
  // Every answer breaks after 64 KiB: progress, but never the whole blob.
  proxy_.AddRule(FaultRule::DropResponseAfter(64 << 10).For("GET", layer).Times(-1));
  CliResult r = Pull("fault/flaky:1", {"--retry-times", "2", "-q"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  std::vector<std::string> errors = ErrorLines(r.err);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_TRUE(Contains(errors[0], "blob " + Ref("fault/flaky@" + layer) +
                                      ": the transfer broke 4 times (at byte 262144 of "))
      << errors[0];
  // 1 GET and 3 resumptions (--retry-times 2: 3 attempts, so 3 resumptions).
  EXPECT_EQ(proxy_.CountRequests("GET", layer), 4);
  EXPECT_EQ(proxy_.CountRequestsWithHeader("GET", layer, "Range"), 3);
  EXPECT_EQ(ListedIds(), "");
  EXPECT_FALSE(std::filesystem::exists(BlobFile(Digest::Of(im.layers[0]))));
}

TEST_F(FaultTest, ALyingRegistryIsCaughtAndNothingIsStored) {
  const TestImage im = Image(108, 2, 64 << 10);
  Push(im, "fault/lie:1");
  const Digest layer = Digest::Of(im.layers[0]);
  proxy_.AddRule(FaultRule::CorruptResponse().For("GET", layer.ToString()).Times(-1));
  CliResult r = Pull("fault/lie:1", {"-q"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  std::vector<std::string> errors = ErrorLines(r.err);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_TRUE(Contains(errors[0], "digest mismatch")) << errors[0];
  EXPECT_TRUE(Contains(errors[0], layer.ToString())) << errors[0];
  EXPECT_EQ(ListedIds(), "");
  CliResult check = RunImgstore(root_.path(), {"check"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe();
  EXPECT_FALSE(std::filesystem::exists(BlobFile(layer)));
  EXPECT_TRUE(AllClosed(proxy_)) << proxy_.open_connections();
  // The same pull without the lie stores that blob (the check above can see one).
  proxy_.ClearRules();
  r = Pull("fault/lie:1");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(std::filesystem::exists(BlobFile(layer)));
  EXPECT_EQ(ListedIds(), im.id.ToString().substr(7, 12) + "\n");
}

TEST_F(FaultTest, AThrottledPullTakesTheTimeItsBytesNeed) {
  const TestImage im = Image(113, 1, 2 << 20);
  Push(im, "fault/slow:1");
  proxy_.SetThrottle(1 << 20);  // 1 MiB/s over all connections: the layer alone needs 2 s
  const auto start = std::chrono::steady_clock::now();
  CliResult r = Pull("fault/slow:1");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.id.ToString() + "\n");
  EXPECT_GE(proxy_.bytes_to_client(), im.layers[0].size());
  EXPECT_GE(took, std::chrono::milliseconds(1500));
  EXPECT_TRUE(AllClosed(proxy_)) << proxy_.open_connections();
}

TEST_F(FaultTest, ARegistryThatIsNotRunningIsNamedAfterTheRetries) {
  const std::string host = "127.0.0.1:" + std::to_string(ClosedPort());
  const auto start = std::chrono::steady_clock::now();
  CliResult r = RunImgstore(root_.path(), {"pull", "--retry-times", "2", "--retry-delay", "200ms",
                                           host + "/fault/none:1"});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  std::vector<std::string> errors = ErrorLines(r.err);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_TRUE(Contains(errors[0], "registry " + host + ": GET https://" + host + "/v2/"))
      << errors[0];
  EXPECT_TRUE(Contains(errors[0], "(3 attempts)")) << errors[0];
  // Two waits (200 ms, then 400 ms) prove the retries; the generous bound that nothing hangs.
  EXPECT_GE(took, std::chrono::milliseconds(550));
  EXPECT_LT(took, std::chrono::seconds(60));
}

TEST_F(FaultTest, StorePullResumesParallelBlobsAndRetriesAGoneRegistry) {
  const TestImage im = Image(109, 3, 1 << 20);
  Push(im, "fault/lib:1");
  for (const std::string& l : im.layers) {
    proxy_.AddRule(FaultRule::DropResponseAfter(200 << 10).For("GET", Digest::Of(l).ToString()));
  }
  RegistryOptions options;
  options.retry.initial_delay = std::chrono::milliseconds(20);
  Result<images::Reference> ref = images::ParseReference(Ref("fault/lib:1"));
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  Result<std::unique_ptr<images::ImageSource>> src = OpenRegistrySource(*ref, options);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  EXPECT_TRUE((*src)->ConcurrentBlobs());
  EXPECT_EQ((*src)->BlobOrigin(), proxy_.host() + "/fault/lib");
  Result<std::unique_ptr<store::Store>> s = store::Store::Open(root_.path());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  store::PullOptions pull;
  pull.max_parallel = 3;
  Result<store::PullResult> p = (*s)->Pull(**src, pull);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->image.id, im.id);
  EXPECT_EQ(p->image.manifest_digest, im.manifest_digest);
  for (const std::string& l : im.layers) {
    EXPECT_EQ(proxy_.CountRequestsWithHeader("GET", Digest::Of(l).ToString(), "Range"), 1);
  }

  // Every connection to the proxy now finds no registry behind it (closed at once): kUnavailable
  // after the attempts, naming the registry.
  FaultProxy dead;
  std::string error;
  ASSERT_TRUE(dead.Start("127.0.0.1:" + std::to_string(ClosedPort()), &error)) << error;
  options.retry.max_attempts = 3;
  ref = images::ParseReference(dead.host() + "/fault/lib:1");
  ASSERT_TRUE(ref.ok());
  src = OpenRegistrySource(*ref, options);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  TempDir other;
  Result<std::unique_ptr<store::Store>> s2 = store::Store::Open(other.path());
  ASSERT_TRUE(s2.ok());
  p = (*s2)->Pull(**src, pull);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kUnavailable) << p.status().ToString();
  EXPECT_TRUE(Contains(p.status().message(), "registry " + dead.host())) << p.status().ToString();
  EXPECT_TRUE(Contains(p.status().message(), "(3 attempts)")) << p.status().ToString();
  // Each attempt of the ping: the TLS probe, then the same over http.
  EXPECT_EQ(dead.CountRequests("GET", "/v2/"), 3);
}

// Pushes: the image goes into the store from an OCI layout, then to the registry through the
// proxy; skopeo (straight to the registry) reads back the manifest digest.
class PushFaultTest : public FaultTest {
 protected:
  void Import(const TestImage& im, const std::string& name) {
    const std::string layout = work_.Sub("layout-" + std::to_string(++layouts_));
    WriteOciLayout(im, layout, "src");
    CliResult r =
        RunImgstore(root_.path(), {"pull", "-q", "oci:" + layout + ":src", "--name", name});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }

  CliResult PushCli(const std::string& name, const std::string& rest) {
    return RunImgstore(root_.path(), {"push", "--retry-delay", "50ms", name, Ref(rest)});
  }

  void ExpectInRegistry(const TestImage& im, const std::string& rest) {
    std::string error;
    EXPECT_EQ(registry_->SkopeoManifestDigest(rest, &error), im.manifest_digest.ToString())
        << error;
    TempDir other;
    CliResult r = RunImgstore(other.path(), {"pull", registry_->host() + "/" + rest});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.out, im.id.ToString() + "\n");
  }
};

TEST_F(PushFaultTest, A500OnTheFirstBlobUploadIsRetried) {
  const TestImage im = Image(110, 2, 4096);
  Import(im, "local/p500:1");
  proxy_.AddRule(FaultRule::Answer(500).For("PUT", "/v2/fault/p500/blobs/uploads/"));
  CliResult r = PushCli("local/p500:1", "fault/p500:1");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.manifest_digest.ToString() + "\n");
  // Three blobs (two layers and the config), one of them put twice.
  EXPECT_EQ(proxy_.CountRequests("PUT", "/v2/fault/p500/blobs/uploads/"), 3 + 1);
  ExpectInRegistry(im, "fault/p500:1");
}

TEST_F(PushFaultTest, AConnectionDroppedMidUploadIsRetried) {
  const TestImage im = Image(111, 1, 2 << 20);
  Import(im, "local/pdrop:1");
  const std::string layer = Digest::Of(im.layers[0]).ToString();
  proxy_.AddRule(FaultRule::DropRequestAfter(100 << 10).For("PUT", layer));
  CliResult r = PushCli("local/pdrop:1", "fault/pdrop:1");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, im.manifest_digest.ToString() + "\n");
  EXPECT_EQ(proxy_.CountRequests("PUT", layer), 2);
  ExpectInRegistry(im, "fault/pdrop:1");
}

TEST_F(PushFaultTest, AnUploadThatKeepsFailingNamesTheBlobAndTheStatus) {
  const TestImage im = Image(112, 1, 4096);
  Import(im, "local/pfail:1");
  const std::string layer = Digest::Of(im.layers[0]).ToString();
  proxy_.AddRule(FaultRule::Answer(503).For("PUT", layer).Times(-1));
  CliResult r = RunImgstore(root_.path(), {"push", "-q", "--retry-times", "1", "--retry-delay",
                                           "50ms", "local/pfail:1", Ref("fault/pfail:1")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  std::vector<std::string> errors = ErrorLines(r.err);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_TRUE(Contains(errors[0], layer)) << errors[0];
  EXPECT_TRUE(Contains(errors[0], "HTTP 503")) << errors[0];
  EXPECT_EQ(proxy_.CountRequests("PUT", layer), 2);
  EXPECT_EQ(proxy_.CountRequests("PUT", "/manifests/"), 0);
}

}  // namespace
}  // namespace imgstore::registry
