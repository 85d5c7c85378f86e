// `imgstore pull` and `imgstore push` through the built binary: a round trip through oci: and
// oci-archive: that keeps the image id and manifest digest, what skopeo reads from a pushed
// layout, the progress on stderr (one line per blob, bars on a pseudo-terminal, nothing with
// --quiet), and bad input (corrupt, truncated or missing blobs, a missing index.json, an unknown
// media type, invalid --name values), each refused with one error line and the store unchanged.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/cli_runner.h"
#include "common/registry_fixture.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "common/test_image.h"

namespace imgstore::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  ::chmod(path.c_str(), 0644);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

std::string BlobFile(const std::string& layout, const Digest& d) {
  return layout + "/blobs/sha256/" + std::string(d.hex());
}

int Lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// What a terminal shows of `text`, roughly: without the CSI escape sequences (ESC [ digits
// letter) and carriage returns, so that lines can be compared.
std::string Visible(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\033' && i + 1 < text.size() && text[i + 1] == '[') {
      i += 2;
      while (i < text.size() && !std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
      continue;
    }
    if (text[i] != '\r') out += text[i];
  }
  return out;
}

// The lines a terminal shows at the end of `text`, for the few controls the progress display
// uses: newline, carriage return, ESC [ n A (cursor up n lines) and ESC [ J (erase from the
// cursor to the end of the screen). Unlike Visible, it shows what a redraw erased.
std::vector<std::string> Screen(const std::string& text) {
  std::vector<std::string> rows(1);
  size_t row = 0;
  size_t col = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\033' && i + 1 < text.size() && text[i + 1] == '[') {
      size_t j = i + 2;
      int n = 0;
      while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j])))
        n = n * 10 + (text[j++] - '0');
      if (j >= text.size()) break;
      if (text[j] == 'A') {
        row -= std::min<size_t>(row, std::max(n, 1));
      } else if (text[j] == 'J') {
        rows[row].resize(std::min(col, rows[row].size()));
        rows.resize(row + 1);
      }
      i = j;
    } else if (c == '\n') {
      if (++row == rows.size()) rows.emplace_back();
      col = 0;
    } else if (c == '\r') {
      col = 0;
    } else {
      if (rows[row].size() <= col) rows[row].resize(col + 1, ' ');
      rows[row][col++] = c;
    }
  }
  while (!rows.empty() && rows.back().empty()) rows.pop_back();
  return rows;
}

// "sha256:0123456789ab", as progress lines name blobs.
std::string Short(const Digest& d) { return d.ToString().substr(0, 19); }

// The progress lines expected when stderr is not a terminal: one per blob, in any order (layers
// may be fetched in parallel), each "Copying blob SHORT " followed by `what`.
void ExpectBlobLines(const std::string& err, const std::vector<Digest>& blobs,
                     const std::string& what) {
  std::vector<std::string> want;
  for (const Digest& d : blobs) want.push_back("Copying blob " + Short(d) + " " + what);
  std::vector<std::string> got = SplitLines(err);
  for (std::string& line : got) {
    // "done (4.1 KiB)": the size is checked apart.
    size_t paren = line.find(" done (");
    if (paren != std::string::npos && line.back() == ')') line.resize(paren + 5);
  }
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want) << err;
  EXPECT_EQ(err.find('\033'), std::string::npos) << "escape sequences outside a terminal";
}

TestImage Image(uint32_t seed) {
  TestImageSpec spec;
  spec.seed = seed;
  spec.layers = 2;
  return MakeTestImage(spec);
}

class PullPushTest : public ::testing::Test {
 protected:
  std::string Root() const { return dir_.Sub("store"); }
  CliResult Run(const std::vector<std::string>& args) { return RunImgstore(Root(), args); }
  std::string ListJson() {
    CliResult r = Run({"list", "--format", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    return r.out;
  }
  TempDir dir_;
};

TEST_F(PullPushTest, RoundTripKeepsIdAndManifestDigest) {
  TestImage img = Image(1);
  WriteOciLayout(img, dir_.Sub("src"), "v1");

  const std::vector<Digest> blobs = {img.id, Digest::Of(img.layers[0]), Digest::Of(img.layers[1])};
  CliResult pull = Run({"pull", "oci:" + dir_.Sub("src") + ":v1", "--name", "example.com/app:1"});
  ASSERT_EQ(pull.exit_code, 0) << pull.Describe();
  EXPECT_EQ(pull.out, img.id.ToString() + "\n");
  // stderr is not a terminal: one line per blob once it is copied, with its size.
  ExpectBlobLines(pull.err, blobs, "done");
  EXPECT_NE(pull.err.find("Copying blob " + Short(Digest::Of(img.layers[0])) + " done (" +
                          std::to_string(img.layers[0].size() / 1024) + "."),
            std::string::npos)
      << pull.err;
  CliResult list = Run({"list", "--no-trunc"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  EXPECT_NE(list.out.find(img.id.ToString()), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("example.com/app"), std::string::npos) << list.out;

  // Pulled twice: the same id, nothing written (the debug log says each blob was skipped).
  CliResult again =
      Run({"--log-level", "debug", "pull", "oci:" + dir_.Sub("src") + ":v1", "--name", "x"});
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  EXPECT_EQ(again.out, img.id.ToString() + "\n");
  EXPECT_EQ(again.err.find(" written ("), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("skipped"), std::string::npos) << again.err;
  std::string progress;  // without the debug lines and the info summary
  for (const std::string& line : SplitLines(again.err)) {
    if (line.rfind("imgstore: ", 0) != 0) progress += line + "\n";
  }
  ExpectBlobLines(progress, blobs, "skipped: already exists");

  // push to oci: and oci-archive:, then pull both into a fresh store.
  CliResult push = Run({"push", "example.com/app:1", "oci:" + dir_.Sub("out") + ":v2"});
  ASSERT_EQ(push.exit_code, 0) << push.Describe();
  EXPECT_EQ(push.out, img.manifest_digest.ToString() + "\n");
  // An oci: layout takes the config from memory: the layers are the blobs it reads.
  ExpectBlobLines(push.err, {blobs[1], blobs[2]}, "done");
  CliResult push_archive =
      Run({"push", "-q", img.id.ToString(), "oci-archive:" + dir_.Sub("out.tar") + ":v3"});
  ASSERT_EQ(push_archive.exit_code, 0) << push_archive.Describe();
  EXPECT_EQ(push_archive.out, "");
  EXPECT_EQ(push_archive.err, "");

  const std::string root2 = dir_.Sub("store2");
  for (const std::string& spec :
       {"oci:" + dir_.Sub("out") + ":v2", "oci-archive:" + dir_.Sub("out.tar") + ":v3"}) {
    CliResult r = RunImgstore(root2, {"pull", spec});
    ASSERT_EQ(r.exit_code, 0) << spec << ": " << r.Describe();
    EXPECT_EQ(r.out, img.id.ToString() + "\n");
    CliResult inspect = RunImgstore(root2, {"inspect", img.id.ToString()});
    ASSERT_EQ(inspect.exit_code, 0) << inspect.Describe();
    EXPECT_NE(inspect.out.find(img.manifest_digest.ToString()), std::string::npos);
  }
  EXPECT_EQ(RunImgstore(root2, {"check", "--verify-content"}).exit_code, 0);

  // skopeo reads the pushed layout and sees the stored manifest, byte for byte.
  CliResult raw =
      RunProgram("/usr/bin/skopeo", {"inspect", "--raw", "oci:" + dir_.Sub("out") + ":v2"});
  ASSERT_EQ(raw.exit_code, 0) << raw.Describe();
  EXPECT_EQ(raw.out, img.manifest);
}

TEST_F(PullPushTest, QuietPrintsNothing) {
  TestImage img = Image(2);
  WriteOciLayout(img, dir_.Sub("src"), "v1");
  CliResult r = Run({"pull", "--quiet", "oci:" + dir_.Sub("src") + ":v1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
}

TEST_F(PullPushTest, ProgressBarsOnATerminalOnly) {
  TestImageSpec spec;
  spec.seed = 4;
  spec.layers = 2;
  spec.layer_bytes = 4 << 20;  // four reads of 1 MiB: a bar is drawn before the layer is done
  spec.compression = LayerCompression::kNone;
  TestImage img = MakeTestImage(spec);
  WriteOciLayout(img, dir_.Sub("src"), "v1");
  const std::string source = "oci:" + dir_.Sub("src") + ":v1";
  const std::string layer = Short(Digest::Of(img.layers[0]));

  CliResult quiet = RunImgstoreInPty(Root(), {"pull", "-q", source});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.Describe();
  EXPECT_EQ(quiet.err, "");
  EXPECT_EQ(quiet.out, "");
  ASSERT_EQ(Run({"rmi", img.id.ToString()}).exit_code, 0);
  ASSERT_EQ(Run({"gc"}).exit_code, 0);

  CliResult tty = RunImgstoreInPty(Root(), {"pull", source});
  ASSERT_EQ(tty.exit_code, 0) << tty.Describe();
  EXPECT_EQ(tty.out, img.id.ToString() + "\n") << "stdout carries only the id";
  EXPECT_NE(tty.err.find("\033["), std::string::npos) << "no cursor movement: " << tty.err;
  EXPECT_NE(tty.err.find(layer + " [="), std::string::npos) << "no bar for the layer: " << tty.err;
  EXPECT_NE(tty.err.find(" / 4.0 MiB"), std::string::npos) << tty.err;
  EXPECT_NE(tty.err.find("Copying blob " + layer + " done (4.0 MiB)"), std::string::npos)
      << tty.err;
  // The last frame: every blob done, the overall line last, the cursor on a fresh line.
  std::vector<std::string> lines = SplitLines(Visible(tty.err));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back().rfind("Total: 3/3 blobs  8.0 MiB / 8.0 MiB", 0), 0u) << lines.back();
  EXPECT_EQ(tty.err.back(), '\n');

  // Outside a terminal, the same pull prints lines only; a push on a terminal draws bars too.
  ASSERT_EQ(Run({"rmi", img.id.ToString()}).exit_code, 0);
  ASSERT_EQ(Run({"gc"}).exit_code, 0);
  CliResult plain = Run({"pull", source});
  ASSERT_EQ(plain.exit_code, 0) << plain.Describe();
  ExpectBlobLines(plain.err, {img.id, Digest::Of(img.layers[0]), Digest::Of(img.layers[1])},
                  "done");
  EXPECT_EQ(plain.err.find("Total:"), std::string::npos) << plain.err;

  CliResult push = RunImgstoreInPty(Root(), {"push", img.id.ToString(), "oci:" + dir_.Sub("out")});
  ASSERT_EQ(push.exit_code, 0) << push.Describe();
  EXPECT_EQ(push.out, img.manifest_digest.ToString() + "\n");
  EXPECT_NE(push.err.find(layer + " [="), std::string::npos) << push.err;
  EXPECT_NE(push.err.find("Copying blob " + layer + " done (4.0 MiB)"), std::string::npos)
      << push.err;

  // A failure on a terminal: the error line comes after the progress, on a line of its own.
  const std::string broken = dir_.Sub("broken");
  WriteOciLayout(img, broken, "v1");
  ASSERT_EQ(::unlink(BlobFile(broken, Digest::Of(img.layers[1])).c_str()), 0);
  ASSERT_EQ(Run({"rmi", img.id.ToString()}).exit_code, 0);
  ASSERT_EQ(Run({"gc"}).exit_code, 0);
  CliResult failed = RunImgstoreInPty(Root(), {"pull", "oci:" + broken + ":v1"});
  EXPECT_EQ(failed.exit_code, 1) << failed.Describe();
  lines = SplitLines(Visible(failed.err));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back().rfind("imgstore: error: ", 0), 0u) << failed.err;
  EXPECT_NE(lines.back().find("layer 1"), std::string::npos) << lines.back();
}

// A lock-wait notice during a pull on a terminal stays on the screen as a line of its own above
// the bars, instead of being erased by the next redraw of the live region.
TEST_F(PullPushTest, LockWaitNoticeKeepsItsLineAboveTheBars) {
  TestImageSpec spec;
  spec.seed = 9;
  spec.layers = 2;
  spec.layer_bytes = 1 << 20;
  TestImage img = MakeTestImage(spec);
  WriteOciLayout(img, dir_.Sub("src"), "v1");
  ASSERT_EQ(Run({"list"}).exit_code, 0);  // creates the store and its locks directory
  const Digest layer = Digest::Of(img.layers[1]);
  Subprocess holder;
  std::string error;
  ASSERT_TRUE(holder.Start(IMGSTORE_TEST_BIN_DIR "/tests/locking/lock_helper",
                           {"hold", Root() + "/locks", "blob-sha256-" + std::string(layer.hex()),
                            "exclusive", "test-holder", "-1"},
                           &error))
      << error;
  ASSERT_EQ(holder.ReadLine(std::chrono::seconds(10)).value_or("").rfind("waiting", 0), 0u);
  ASSERT_EQ(holder.ReadLine(std::chrono::seconds(10)).value_or("").rfind("acquired", 0), 0u);
  // The notice comes after a second of waiting; the holder lets go a while after that.
  std::thread release([&holder] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    holder.WriteLine("release");
  });
  CliResult pull = RunImgstoreInPty(Root(), {"pull", "oci:" + dir_.Sub("src") + ":v1"});
  release.join();
  ASSERT_EQ(pull.exit_code, 0) << pull.Describe();
  std::vector<std::string> screen = Screen(pull.err);
  ASSERT_FALSE(screen.empty()) << pull.err;
  const auto notice = std::find_if(screen.begin(), screen.end(), [](const std::string& l) {
    return l.rfind("imgstore: waiting for lock blob-sha256-", 0) == 0;
  });
  ASSERT_NE(notice, screen.end()) << "the notice was erased or mixed into a bar: " << pull.err;
  EXPECT_NE(notice->find("test-holder"), std::string::npos) << *notice;
  EXPECT_EQ(screen.back().rfind("Total: 3/3 blobs", 0), 0u) << screen.back();
}

// Through a real registry: a parallel pull reports every blob; a push of the pulled image to
// another repository of the same registry mounts every blob from the repository it was pulled
// from (the store recorded it as their origin); pushing again finds them all there.
TEST_F(PullPushTest, RegistryPushMountsFromWhereThePullFoundTheBlobs) {
  if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry or skopeo is not installed";
  TestRegistry reg;
  std::string error;
  ASSERT_TRUE(reg.Start({}, &error)) << error;
  TestImageSpec spec;
  spec.seed = 5;
  spec.layers = 3;
  TestImage img = MakeTestImage(spec);
  WriteOciLayout(img, dir_.Sub("src"), "v1");
  ASSERT_EQ(reg.SkopeoPush("oci:" + dir_.Sub("src") + ":v1", "team/from:1"), "");
  std::vector<Digest> blobs = {img.id};
  for (const std::string& l : img.layers) blobs.push_back(Digest::Of(l));

  CliResult pull = Run({"pull", "--max-parallel", "3", reg.host() + "/team/from:1"});
  ASSERT_EQ(pull.exit_code, 0) << pull.Describe();
  EXPECT_EQ(pull.out, img.id.ToString() + "\n");
  ExpectBlobLines(pull.err, blobs, "done");

  CliResult push = Run({"push", reg.host() + "/team/from:1", reg.host() + "/team/to:1"});
  ASSERT_EQ(push.exit_code, 0) << push.Describe();
  EXPECT_EQ(push.out, img.manifest_digest.ToString() + "\n");
  ExpectBlobLines(push.err, blobs, "skipped: mounted from another repository");

  CliResult again = Run({"push", reg.host() + "/team/from:1", reg.host() + "/team/to:2"});
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  ExpectBlobLines(again.err, blobs, "skipped: already exists");
  EXPECT_EQ(reg.SkopeoManifestDigest("team/to:2", &error), img.manifest_digest.ToString()) << error;
  EXPECT_EQ(Run({"check"}).exit_code, 0);
}

TEST_F(PullPushTest, PushOfUnknownImageFails) {
  CliResult r = Run({"push", "nosuch", "oci:" + dir_.Sub("out") + ":v1"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("image not known"), std::string::npos) << r.err;
  EXPECT_NE(::access(dir_.Sub("out").c_str(), F_OK), 0) << "the destination was created";
}

TEST_F(PullPushTest, UsageErrors) {
  EXPECT_EQ(Run({"pull"}).exit_code, 2);
  EXPECT_EQ(Run({"push"}).exit_code, 2);
  EXPECT_EQ(Run({"push", "x", "--max-parallel", "0"}).exit_code, 2);
  // Without DEST, IMAGE must name a registry: an id or an oci: spec is refused, store untouched.
  CliResult no_dest = Run({"push", "oci:" + dir_.Sub("src")});
  EXPECT_EQ(no_dest.exit_code, 1) << no_dest.Describe();
  EXPECT_NE(no_dest.err.find("without DEST"), std::string::npos) << no_dest.err;
  CliResult r = Run({"pull", "--platform", "linux", "oci:" + dir_.Sub("src")});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(Lines(r.err), 1) << r.err;
}

// Each bad source: exit 1, one line on stderr naming the problem, the store as it was.
TEST_F(PullPushTest, BadInputChangesNothing) {
  TestImage good = Image(3);
  WriteOciLayout(good, dir_.Sub("good"), "v1");
  ASSERT_EQ(Run({"pull", "oci:" + dir_.Sub("good") + ":v1", "--name", "kept"}).exit_code, 0);
  const std::string before = ListJson();

  struct Case {
    std::string name;
    std::function<void(const std::string& layout, const TestImage& img)> damage;
    std::vector<std::string> extra_args;
    std::string expect;  // in the error line
  };
  std::vector<Case> cases = {
      {"digest mismatch",
       [](const std::string& l, const TestImage& img) {
         std::string bytes = img.layers[1];
         bytes[bytes.size() / 2] ^= 0x55;
         WriteFile(BlobFile(l, Digest::Of(img.layers[1])), bytes);
       },
       {},
       "digest"},
      {"truncated blob",
       [](const std::string& l, const TestImage& img) {
         WriteFile(BlobFile(l, Digest::Of(img.layers[0])),
                   img.layers[0].substr(0, img.layers[0].size() - 10));
       },
       {},
       "bytes"},
      {"missing blob",
       [](const std::string& l, const TestImage& img) {
         ASSERT_EQ(::unlink(BlobFile(l, Digest::Of(img.layers[1])).c_str()), 0);
       },
       {},
       "layer 1"},
      {"missing index.json",
       [](const std::string& l, const TestImage&) {
         ASSERT_EQ(::unlink((l + "/index.json").c_str()), 0);
       },
       {},
       "index.json"},
      {"unknown media type",
       [](const std::string& l, const TestImage&) {
         nlohmann::json j = nlohmann::json::parse(ReadFile(l + "/index.json"));
         j["manifests"][0]["mediaType"] = "application/vnd.example.unknown+json";
         WriteFile(l + "/index.json", j.dump());
       },
       {},
       "application/vnd.example.unknown+json"},
      {"upper-case name",
       [](const std::string&, const TestImage&) {},
       {"--name", "UPPER/case"},
       "UPPER/case"},
      {"name with two colons",
       [](const std::string&, const TestImage&) {},
       {"--name", "a:b:c"},
       "a:b:c"},
      {"129-character tag",
       [](const std::string&, const TestImage&) {},
       {"--name", "x:" + std::string(129, 't')},
       "invalid"},
      {"malformed digest",
       [](const std::string&, const TestImage&) {},
       {"--name", "x@sha256:1234"},
       "x@sha256:1234"},
  };
  uint32_t seed = 10;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TestImage img = Image(seed++);
    const std::string layout = dir_.Sub("bad" + std::to_string(seed));
    WriteOciLayout(img, layout, "v1");
    c.damage(layout, img);
    std::vector<std::string> args = {"pull", "oci:" + layout + ":v1"};
    args.insert(args.end(), c.extra_args.begin(), c.extra_args.end());
    CliResult r = Run(args);
    EXPECT_EQ(r.exit_code, 1) << r.Describe();
    EXPECT_EQ(r.out, "");
    // One error line, last; before it only the lines of blobs copied before the failure.
    std::vector<std::string> lines = SplitLines(r.err);
    ASSERT_FALSE(lines.empty());
    const std::string error = lines.back();
    lines.pop_back();
    EXPECT_EQ(error.rfind("imgstore: error: ", 0), 0u) << r.err;
    EXPECT_NE(error.find(c.expect), std::string::npos) << r.err;
    for (const std::string& line : lines) {
      EXPECT_EQ(line.rfind("Copying blob sha256:", 0), 0u) << r.err;
      EXPECT_NE(line.find(" done ("), std::string::npos) << r.err;
    }
    CliResult check = Run({"check", "--verify-content"});
    EXPECT_EQ(check.exit_code, 0) << check.Describe();
    EXPECT_EQ(ListJson(), before);
    EXPECT_EQ(RunProgram("/bin/sh", {"-c", "ls -A " + Root() + "/ingest"}).out, "");
  }
}

}  // namespace
}  // namespace imgstore::testing
