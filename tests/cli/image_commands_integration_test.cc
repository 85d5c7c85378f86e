// The everyday image commands through the built binary: list (table, json, -q, --digests,
// --no-trunc, filters), inspect, tag, untag and rmi, their errors and exit statuses. Images are
// put into the store with the store API (real test images from tests/common/test_image.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "common/cli_runner.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// RFC 3339 (UTC, seconds) of now minus `ago`.
std::string TimeAgo(std::chrono::seconds ago) {
  std::time_t t = std::time(nullptr) - ago.count();
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// Cells of a table line: columns are separated by at least 3 spaces (2 would do: no cell holds
// two spaces in a row).
std::vector<std::string> Cells(const std::string& line) {
  static const std::regex kSeparator(" {2,}");
  std::vector<std::string> out;
  std::sregex_token_iterator it(line.begin(), line.end(), kSeparator, -1), end;
  for (; it != end; ++it) out.push_back(*it);
  return out;
}

// "12.3MB" → bytes (approximately: 3 significant digits).
double ParseHumanSize(const std::string& text) {
  static const std::map<std::string, double> kUnits = {
      {"B", 1}, {"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}};
  size_t unit = text.find_first_not_of("0123456789.");
  if (unit == std::string::npos || unit == 0) return -1;
  auto it = kUnits.find(text.substr(unit));
  if (it == kUnits.end()) return -1;
  return std::stod(text.substr(0, unit)) * it->second;
}

uint64_t ImageSize(const TestImage& img) {
  uint64_t size = img.config.size() + img.manifest.size();
  for (const std::string& l : img.layers) size += l.size();
  return size;
}

std::string Short(const Digest& id) { return std::string(id.hex().substr(0, 12)); }

class ImageCommandsTest : public ::testing::Test {
 protected:
  std::string root() const { return dir_.Sub("store"); }

  // Puts the image into the store (blobs, then AddImage with `names`).
  TestImage Add(TestImageSpec spec, const std::vector<std::string>& names) {
    TestImage img = MakeTestImage(spec);
    std::unique_ptr<store::Store> s = store::testing::OpenStore(root());
    if (s == nullptr) return img;
    for (const std::string& l : img.layers) {
      EXPECT_TRUE(s->IngestBlob(Digest::Of(l), {}, l).ok());
    }
    EXPECT_TRUE(s->IngestBlob(img.id, {}, img.config).ok());
    Result<store::AddImageResult> r =
        s->AddImage(img.manifest, img.manifest_media_type, img.config, names);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return img;
  }
  TestImage Add(uint32_t seed, const std::vector<std::string>& names) {
    TestImageSpec spec;
    spec.seed = seed;
    spec.layer_bytes = 512;
    return Add(spec, names);
  }

  CliResult Run(const std::vector<std::string>& args) { return RunImgstore(root(), args); }

  // Every image and its names, as the store API sees them: what "unchanged" compares.
  std::string State() {
    std::unique_ptr<store::Store> s = store::testing::OpenStore(root());
    if (s == nullptr) return "";
    Result<std::vector<store::ImageSummary>> images = s->ListImages();
    EXPECT_TRUE(images.ok()) << images.status().ToString();
    std::string out;
    for (const store::ImageSummary& i : *images) {
      out += i.id.ToString() + ":";
      for (const std::string& n : i.names) out += " " + n;
      out += "\n";
    }
    return out;
  }

  std::vector<std::string> NamesOf(const Digest& id) {
    std::unique_ptr<store::Store> s = store::testing::OpenStore(root());
    Result<std::vector<store::ImageSummary>> images = s->ListImages();
    EXPECT_TRUE(images.ok());
    for (const store::ImageSummary& i : *images) {
      if (i.id == id) return i.names;
    }
    return {"<image gone>"};
  }

  // Exit `code`, nothing on stdout, and exactly one "imgstore: error: ..." line that contains
  // `needle`.
  static void ExpectOneError(const CliResult& r, int code, const std::string& needle,
                             bool stdout_empty = true) {
    EXPECT_EQ(r.exit_code, code) << r.Describe();
    if (stdout_empty) {
      EXPECT_EQ(r.out, "");
    }
    EXPECT_EQ(r.err.rfind("imgstore: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "want \"" << needle << "\" in " << r.err;
  }

  TempDir dir_;
};

// --- list ----------------------------------------------------------------------------------------

TEST_F(ImageCommandsTest, ListOfAMissingStoreIsEmptyAndCreatesNothing) {
  CliResult table = Run({"list"});
  EXPECT_EQ(table.exit_code, 0) << table.Describe();
  EXPECT_EQ(table.out, "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n");
  EXPECT_EQ(table.err, "");
  CliResult j = Run({"images", "--format", "json"});
  EXPECT_EQ(j.exit_code, 0) << j.Describe();
  EXPECT_EQ(j.out, "[]\n");
  EXPECT_NE(::access(root().c_str(), F_OK), 0) << "list created the store";
}

TEST_F(ImageCommandsTest, ListOfAnEmptyStore) {
  ASSERT_NE(store::testing::OpenStore(root()), nullptr);
  CliResult table = Run({"list"});
  EXPECT_EQ(table.exit_code, 0) << table.Describe();
  EXPECT_EQ(Lines(table.out).size(), 1u) << table.out;
  EXPECT_EQ(Cells(Lines(table.out)[0]),
            (std::vector<std::string>{"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"}));
  EXPECT_EQ(Run({"list", "--format", "json"}).out, "[]\n");
  EXPECT_EQ(Run({"list", "-q"}).out, "");
}

TEST_F(ImageCommandsTest, ListTableHasOneRowPerNameNewestFirst) {
  TestImageSpec spec;
  spec.layer_bytes = 512;
  spec.seed = 1;
  spec.created = TimeAgo(3 * 24h + 1h);
  TestImage named = Add(spec, {"alpine:3.19", "alpine"});
  spec.seed = 2;
  spec.created = TimeAgo(70min);
  TestImage dangling = Add(spec, {});
  spec.seed = 3;
  spec.created = "";
  TestImage undated = Add(spec, {"localhost:5000/team/app:v1"});

  CliResult r = Run({"list"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.err, "");
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_EQ(Cells(lines[0]),
            (std::vector<std::string>{"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"}));
  using Row = std::vector<std::string>;
  // Newest first; the undated image last; names sorted within an image.
  EXPECT_EQ(Cells(lines[1]), (Row{"<none>", "<none>", Short(dangling.id), "About an hour ago",
                                  Cells(lines[1]).back()}));
  EXPECT_EQ(Cells(lines[2]),
            (Row{"alpine", "3.19", Short(named.id), "3 days ago", Cells(lines[2]).back()}));
  EXPECT_EQ(Cells(lines[3]),
            (Row{"alpine", "latest", Short(named.id), "3 days ago", Cells(lines[3]).back()}));
  EXPECT_EQ(Cells(lines[4]), (Row{"localhost:5000/team/app", "v1", Short(undated.id), "N/A",
                                  Cells(lines[4]).back()}));
  // SIZE: the compressed bytes in docker's SI format, 3 significant digits.
  for (auto [line, img] : {std::pair{1, &dangling}, {2, &named}, {4, &undated}}) {
    double shown = ParseHumanSize(Cells(lines[line]).back());
    double want = static_cast<double>(ImageSize(*img));
    EXPECT_NEAR(shown, want, want * 0.006) << lines[line];
    EXPECT_NE(Cells(lines[line]).back().find("kB"), std::string::npos) << lines[line];
  }
  // Columns are aligned: every cell starts where its header does.
  for (const char* h : {"TAG", "IMAGE ID", "CREATED", "SIZE"}) {
    size_t col = lines[0].find(h);
    for (size_t i = 1; i < lines.size(); ++i) {
      EXPECT_EQ(lines[i][col - 1], ' ') << lines[i];
      EXPECT_NE(lines[i][col], ' ') << "column " << h << " of: " << lines[i];
    }
  }
}

TEST_F(ImageCommandsTest, ListShowsAgesAndSizesAsDocker) {
  struct Case {
    std::chrono::seconds ago;
    std::string shown;
    size_t layer_bytes;
  };
  const std::vector<Case> cases = {
      {10min + 30s, "10 minutes ago", 16},  {5h, "5 hours ago", 300},
      {3 * 24h, "3 days ago", 5000},        {3 * 7 * 24h, "3 weeks ago", 30000},
      {400 * 24h, "13 months ago", 700000}, {3 * 366 * 24h, "3 years ago", 3000000},
  };
  std::map<std::string, std::string> want;  // short id → age
  for (size_t i = 0; i < cases.size(); ++i) {
    TestImageSpec spec;
    spec.seed = static_cast<uint32_t>(10 + i);
    spec.created = TimeAgo(cases[i].ago);
    spec.layers = 1;
    // Sizes from bytes to megabytes (uncompressed random layers).
    spec.layer_bytes = cases[i].layer_bytes;
    spec.compression = LayerCompression::kNone;
    TestImage img = Add(spec, {});
    want[Short(img.id)] = cases[i].shown;
  }
  CliResult r = Run({"list"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), cases.size() + 1) << r.out;
  std::unique_ptr<store::Store> s = store::testing::OpenStore(root());
  Result<std::vector<store::ImageSummary>> images = s->ListImages();
  ASSERT_TRUE(images.ok());
  std::set<std::string> units;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> cells = Cells(lines[i]);
    ASSERT_EQ(cells.size(), 5u) << lines[i];
    EXPECT_EQ(cells[3], want[cells[2]]) << lines[i];
    const store::ImageSummary& summary = (*images)[i - 1];
    ASSERT_EQ(Short(summary.id), cells[2]);
    double want_size = static_cast<double>(summary.size);
    EXPECT_NEAR(ParseHumanSize(cells[4]), want_size, want_size * 0.006) << lines[i];
    // 3 significant digits at most.
    std::string digits = cells[4].substr(0, cells[4].find_first_not_of("0123456789."));
    digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
    EXPECT_LE(digits.size(), 3u) << cells[4];
    units.insert(cells[4].substr(cells[4].find_first_not_of("0123456789.")));
  }
  EXPECT_EQ(units, (std::set<std::string>{"kB", "MB"})) << r.out;
}

TEST_F(ImageCommandsTest, ListJsonCarriesEveryField) {
  TestImageSpec spec;
  spec.seed = 4;
  spec.layer_bytes = 512;
  spec.created = "2024-05-01T12:00:00.5+02:00";
  spec.architecture = "arm64";
  TestImage a = Add(spec, {"b/app:2", "a/app:1"});
  spec.seed = 5;
  spec.created = "";
  TestImage undated = Add(spec, {});
  const int64_t before = std::time(nullptr);

  CliResult r = Run({"list", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  json out = json::parse(r.out);
  ASSERT_TRUE(out.is_array());
  ASSERT_EQ(out.size(), 2u);
  const json& first = out[0];
  EXPECT_EQ(first["id"], a.id.ToString());
  EXPECT_EQ(first["names"], json({"docker.io/a/app:1", "docker.io/b/app:2"}));
  EXPECT_EQ(first["digest"], a.manifest_digest.ToString());
  EXPECT_EQ(first["size"], ImageSize(a));
  EXPECT_EQ(first["created"], "2024-05-01T10:00:00.5Z");
  EXPECT_EQ(first["os"], "linux");
  EXPECT_EQ(first["architecture"], "arm64");
  EXPECT_EQ(first["variant"], "");
  // "added" is an RFC 3339 time of this test run.
  std::string added = first["added"];
  std::tm tm{};
  ASSERT_NE(::strptime(added.c_str(), "%Y-%m-%dT%H:%M:%S", &tm), nullptr) << added;
  EXPECT_NEAR(static_cast<double>(::timegm(&tm)), static_cast<double>(before), 120.0) << added;
  EXPECT_EQ(added.back(), 'Z');
  EXPECT_EQ(out[1]["id"], undated.id.ToString());
  EXPECT_TRUE(out[1]["created"].is_null()) << out[1];
  EXPECT_EQ(out[1]["names"], json::array());
}

TEST_F(ImageCommandsTest, ListJsonEscapesStringsFromTheConfig) {
  TestImageSpec spec;
  spec.layer_bytes = 64;
  // As written in the config's JSON: a quote, a backslash, a tab, a control character, é.
  spec.architecture = R"(arm\"64\\x\t\u0001é)";
  const std::string decoded = "arm\"64\\x\t\x01é";
  TestImage img = Add(spec, {"a:1"});
  CliResult r = Run({"list", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  json out = json::parse(r.out);  // throws (fails the test) if the escaping is wrong
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["id"], img.id.ToString());
  EXPECT_EQ(out[0]["architecture"], decoded);
  EXPECT_NE(r.out.find(R"("architecture": "arm\"64\\x\t\u0001é")"), std::string::npos) << r.out;
  EXPECT_EQ(json::parse(Run({"inspect", "a:1"}).out)[0]["architecture"], decoded);
}

TEST_F(ImageCommandsTest, ListQuietPrintsEachIdOnce) {
  TestImage a = Add(1, {"a:1", "a:2", "b:1"});
  TestImage b = Add(2, {});
  CliResult r = Run({"list", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::set<std::string> want = {Short(a.id), Short(b.id)};
  std::vector<std::string> lines = Lines(r.out);
  EXPECT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(std::set<std::string>(lines.begin(), lines.end()), want);

  r = Run({"list", "--quiet", "--no-trunc"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  lines = Lines(r.out);
  EXPECT_EQ(std::set<std::string>(lines.begin(), lines.end()),
            (std::set<std::string>{a.id.ToString(), b.id.ToString()}));
  EXPECT_EQ(lines.size(), 2u);
}

TEST_F(ImageCommandsTest, ListDigestsAndNoTrunc) {
  TestImage a = Add(1, {"a:1"});
  CliResult r = Run({"list", "--digests"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(Cells(lines[0]), (std::vector<std::string>{"REPOSITORY", "TAG", "DIGEST", "IMAGE ID",
                                                       "CREATED", "SIZE"}));
  std::vector<std::string> row = Cells(lines[1]);
  ASSERT_EQ(row.size(), 6u);
  EXPECT_EQ(row[0], "a");
  EXPECT_EQ(row[2], a.manifest_digest.ToString());
  EXPECT_EQ(row[3], Short(a.id));

  r = Run({"list", "--no-trunc"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  row = Cells(Lines(r.out).at(1));
  ASSERT_EQ(row.size(), 5u);
  EXPECT_EQ(row[2], a.id.ToString());
}

TEST_F(ImageCommandsTest, ListFilters) {
  TestImage alpine = Add(1, {"alpine:3.19", "mirror/alpine:3.19"});
  TestImage alpine2 = Add(2, {"alpine:3.20"});
  TestImage other = Add(3, {"busybox"});
  auto rows = [&](const std::vector<std::string>& args) {
    CliResult r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    std::set<std::string> out;
    std::vector<std::string> lines = Lines(r.out);
    for (size_t i = 1; i < lines.size(); ++i) {
      std::vector<std::string> c = Cells(lines[i]);
      out.insert(c.at(0) + ":" + c.at(1) + " " + c.at(2));
    }
    return out;
  };
  // A repository: its rows only (not the other names of its images).
  EXPECT_EQ(rows({"list", "alpine"}), (std::set<std::string>{"alpine:3.19 " + Short(alpine.id),
                                                             "alpine:3.20 " + Short(alpine2.id)}));
  // A name, in any spelling.
  EXPECT_EQ(rows({"list", "docker.io/library/alpine:3.19"}),
            (std::set<std::string>{"alpine:3.19 " + Short(alpine.id)}));
  EXPECT_EQ(rows({"list", "busybox:latest"}),
            (std::set<std::string>{"busybox:latest " + Short(other.id)}));
  // A manifest digest: every name of that image.
  EXPECT_EQ(rows({"list", "alpine@" + alpine.manifest_digest.ToString()}),
            (std::set<std::string>{"alpine:3.19 " + Short(alpine.id),
                                   "mirror/alpine:3.19 " + Short(alpine.id)}));
  EXPECT_EQ(rows({"list", "nothing:here"}), std::set<std::string>{});
  // JSON gives the images that match, with all their names.
  CliResult r = Run({"list", "alpine:3.19", "--format", "json"});
  json out = json::parse(r.out);
  ASSERT_EQ(out.size(), 1u) << r.out;
  EXPECT_EQ(out[0]["names"],
            json({"docker.io/library/alpine:3.19", "docker.io/mirror/alpine:3.19"}));
  r = Run({"list", "-q", "alpine"});
  EXPECT_EQ(Lines(r.out).size(), 2u) << r.out;
}

TEST_F(ImageCommandsTest, ListRefusesBadFiltersAndOptions) {
  Add(1, {"a:1"});
  ExpectOneError(Run({"list", "UPPER/case"}), 1, "invalid reference \"UPPER/case\"");
  ExpectOneError(Run({"list", "a:b:c"}), 1, "invalid reference \"a:b:c\"");
  // A bad filter is an error even where no store exists.
  ExpectOneError(RunImgstore(dir_.Sub("none"), {"list", "UPPER/case"}), 1, "must be lowercase");
  ExpectOneError(Run({"list", "--format", "yaml"}), 2, "--format");
  ExpectOneError(Run({"list", "-q", "--format", "json"}), 2, "excludes");
  ExpectOneError(Run({"list", "a", "b"}), 2, "b");
}

// --- inspect -------------------------------------------------------------------------------------

TEST_F(ImageCommandsTest, InspectByEveryKindOfArgument) {
  TestImageSpec spec;
  spec.seed = 7;
  spec.docker_media_types = true;
  TestImage img = Add(spec, {"user/app:1.0", "localhost:5000/app"});
  Add(8, {"other:1"});
  const std::string id = img.id.ToString();
  const std::string hex(img.id.hex());
  for (const std::string& arg :
       {std::string("user/app:1.0"), std::string("docker.io/user/app:1.0"),
        std::string("localhost:5000/app:latest"), id, hex, "sha256:" + hex.substr(0, 10),
        hex.substr(0, 12), img.manifest_digest.ToString(),
        "user/app@" + img.manifest_digest.ToString()}) {
    SCOPED_TRACE(arg);
    CliResult r = Run({"inspect", arg});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.err, "");
    json out = json::parse(r.out);
    ASSERT_TRUE(out.is_array());
    ASSERT_EQ(out.size(), 1u);
    const json& j = out[0];
    EXPECT_EQ(j["id"], id);
    EXPECT_EQ(j["names"], json({"docker.io/user/app:1.0", "localhost:5000/app:latest"}));
    EXPECT_EQ(j["digest"], img.manifest_digest.ToString());
    EXPECT_EQ(j["manifestMediaType"], img.manifest_media_type);
    EXPECT_EQ(j["size"], ImageSize(img));
    EXPECT_EQ(j["created"], "2024-01-02T03:04:05Z");
    EXPECT_EQ(j["os"], "linux");
    EXPECT_EQ(j["architecture"], "amd64");
    EXPECT_EQ(j["manifest"], json::parse(img.manifest));
    EXPECT_EQ(j["config"], json::parse(img.config));
    std::vector<Digest> chain = store::ChainIds(img.diff_ids);
    ASSERT_EQ(j["layers"].size(), img.layers.size());
    for (size_t i = 0; i < img.layers.size(); ++i) {
      const json& l = j["layers"][i];
      EXPECT_EQ(l["digest"], Digest::Of(img.layers[i]).ToString());
      EXPECT_EQ(l["mediaType"], img.layer_media_types[i]);
      EXPECT_EQ(l["size"], img.layers[i].size());
      EXPECT_EQ(l["diffID"], img.diff_ids[i].ToString());
      EXPECT_EQ(l["chainID"], chain[i].ToString());
    }
  }
}

TEST_F(ImageCommandsTest, InspectSeveralKeepsTheirOrder) {
  TestImage a = Add(1, {"a:1"});
  TestImage b = Add(2, {});
  CliResult r = Run({"inspect", std::string(b.id.hex()), "a:1", "a:1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  json out = json::parse(r.out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0]["id"], b.id.ToString());
  EXPECT_EQ(out[0]["names"], json::array());
  EXPECT_EQ(out[1]["id"], a.id.ToString());
  EXPECT_EQ(out[2]["id"], a.id.ToString());
}

TEST_F(ImageCommandsTest, InspectUnknownPrintsTheFoundOnesAndFails) {
  TestImage a = Add(1, {"a:1"});
  CliResult r = Run({"inspect", "nope"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(r.out, "[]\n");
  EXPECT_EQ(r.err, "imgstore: error: image not known: nope:latest\n");

  r = Run({"inspect", "a:1", "nope:2", "sha256:" + std::string(64, 'e')});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  json out = json::parse(r.out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["id"], a.id.ToString());
  EXPECT_EQ(r.err,
            "imgstore: error: image not known: nope:2\nimgstore: error: image not known: sha256:" +
                std::string(64, 'e') + "\n");

  // Malformed arguments are errors of the same kind.
  r = Run({"inspect", "sha256:zz"});
  ExpectOneError(r, 1, "invalid image id \"sha256:zz\"", /*stdout_empty=*/false);
  r = Run({"inspect", "UPPER/case"});
  ExpectOneError(r, 1, "must be lowercase", /*stdout_empty=*/false);
  ExpectOneError(Run({"inspect"}), 2, "IMAGE");
}

TEST_F(ImageCommandsTest, InspectAmbiguousPrefixNamesTheCandidates) {
  // Two configs whose ids share their first 3 hex digits (found by trying creation times).
  std::map<std::string, TestImageSpec> by_prefix;
  std::vector<TestImageSpec> pair;
  for (int i = 0; pair.empty() && i < 100000; ++i) {
    TestImageSpec spec;
    spec.seed = 1;
    spec.layers = 1;
    spec.layer_bytes = 16;
    spec.created = "2024-01-01T00:00:" + std::to_string(10 + i % 50) + "Z";
    spec.os = "linux" + std::to_string(i / 50);  // varies the config beyond 50 times
    std::string prefix(MakeTestImage(spec).id.hex().substr(0, 3));
    auto [it, fresh] = by_prefix.emplace(prefix, spec);
    if (!fresh) pair = {it->second, spec};
  }
  ASSERT_EQ(pair.size(), 2u);
  TestImage a = Add(pair[0], {});
  TestImage b = Add(pair[1], {});
  const std::string prefix(a.id.hex().substr(0, 3));
  ASSERT_EQ(prefix, b.id.hex().substr(0, 3));

  CliResult r = Run({"inspect", prefix});
  ExpectOneError(r, 1, "ambiguous", /*stdout_empty=*/false);
  EXPECT_NE(r.err.find(a.id.ToString()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(b.id.ToString()), std::string::npos) << r.err;
  // A longer prefix is unique again.
  r = Run({"inspect", "sha256:" + std::string(a.id.hex().substr(0, 20))});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(json::parse(r.out)[0]["id"], a.id.ToString());
}

TEST_F(ImageCommandsTest, CommandsOnAMissingStoreDoNotKnowTheImageAndCreateNothing) {
  CliResult r = Run({"inspect", "alpine"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "imgstore: error: image not known: alpine:latest\n");
  ExpectOneError(Run({"inspect", "sha256:zz"}), 1, "invalid image id", false);
  ExpectOneError(Run({"tag", "alpine", "b"}), 1, "image not known: alpine:latest");
  ExpectOneError(Run({"untag", "abc123"}), 1, "image not known: abc123");
  ExpectOneError(Run({"rmi", "x@sha256:" + std::string(64, 'a')}), 1, "image not known: x@sha256");
  ExpectOneError(Run({"rmi", "UPPER"}), 1, "must be lowercase");
  EXPECT_NE(::access(root().c_str(), F_OK), 0) << "a command created the store";
}

// --- tag and untag -------------------------------------------------------------------------------

TEST_F(ImageCommandsTest, TagAddsNamesAndMovesThem) {
  TestImage a = Add(1, {"a:1"});
  TestImage b = Add(2, {"b:1"});
  CliResult r = Run({"tag", Short(a.id), "c", "quay.io/x/y:2"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(NamesOf(a.id),
            (std::vector<std::string>{"docker.io/library/a:1", "docker.io/library/c:latest",
                                      "quay.io/x/y:2"}));
  // A name another image holds moves; the old image stays, dangling.
  r = Run({"tag", "a:1", "b:1"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(NamesOf(b.id), std::vector<std::string>{});
  EXPECT_EQ(NamesOf(a.id).size(), 4u);
  // Tagging by a name of the image itself, with that same name: nothing changes.
  std::string before = State();
  EXPECT_EQ(Run({"tag", "a:1", "a:1"}).exit_code, 0);
  EXPECT_EQ(State(), before);
  // The longest tag allowed.
  EXPECT_EQ(Run({"tag", "a:1", "a:" + std::string(128, 't')}).exit_code, 0);
  EXPECT_EQ(NamesOf(a.id).size(), 5u);
}

TEST_F(ImageCommandsTest, TagRefusesBadNamesAndChangesNothing) {
  TestImage a = Add(1, {"a:1"});
  const std::string before = State();
  struct Case {
    std::string name;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"UPPER/case", "repository name must be lowercase"},
           {"a:b:c", "invalid reference \"a:b:c\""},
           {"a:" + std::string(129, 't'), "tag must be at most 128 characters"},
           {"a@sha256:zz", "invalid digest"},
           {"a@sha256:" + std::string(64, 'a'), "a name cannot contain a digest"},
           {"", "invalid reference"},
       }) {
    SCOPED_TRACE(c.name);
    // Also after a good name: the good one is not given either.
    ExpectOneError(Run({"tag", "a:1", "good:1", c.name}), 1, c.message);
    EXPECT_EQ(State(), before);
  }
  ExpectOneError(Run({"tag", "nope", "good:1"}), 1, "image not known: nope:latest");
  ExpectOneError(Run({"tag", "a:1"}), 2, "NAME");
  ExpectOneError(Run({"tag"}), 2, "IMAGE");
  EXPECT_EQ(State(), before);
}

TEST_F(ImageCommandsTest, UntagRemovesNamesAndKeepsTheImage) {
  TestImage a = Add(1, {"a:1", "a:2", "a:3"});
  CliResult r = Run({"untag", "a:1", "a:2"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(NamesOf(a.id),
            (std::vector<std::string>{"docker.io/library/a:1", "docker.io/library/a:3"}));
  r = Run({"untag", a.id.ToString()});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(NamesOf(a.id), std::vector<std::string>{});
  std::vector<std::string> rows = Lines(Run({"list"}).out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(Cells(rows[1]).at(0), "<none>");
  EXPECT_EQ(Cells(rows[1]).at(2), Short(a.id));
}

TEST_F(ImageCommandsTest, UntagRefusesNamesNotOfTheImage) {
  TestImage a = Add(1, {"a:1", "a:2"});
  Add(2, {"b:1"});
  const std::string before = State();
  // All or nothing: a:2 stays although it is a name of a.
  ExpectOneError(Run({"untag", "a:1", "a:2", "b:1"}), 1, "has no name b:1");
  ExpectOneError(Run({"untag", "a:1", "a:2", "Bad:1"}), 1, "must be lowercase");
  ExpectOneError(Run({"untag", "nope"}), 1, "image not known: nope:latest");
  ExpectOneError(Run({"untag"}), 2, "IMAGE");
  EXPECT_EQ(State(), before);
  EXPECT_EQ(NamesOf(a.id).size(), 2u);
}

// --- rmi -----------------------------------------------------------------------------------------

TEST_F(ImageCommandsTest, RmiByNameUntagsThenDeletesWithTheLastName) {
  TestImage a = Add(1, {"a:1", "quay.io/x/a:2"});
  CliResult r = Run({"rmi", "a:1"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "Untagged: a:1\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(NamesOf(a.id), std::vector<std::string>{"quay.io/x/a:2"});
  r = Run({"rmi", "quay.io/x/a:2"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "Untagged: quay.io/x/a:2\nDeleted: " + a.id.ToString() + "\n");
  EXPECT_EQ(State(), "");
  EXPECT_EQ(Run({"list", "-q"}).out, "");
}

TEST_F(ImageCommandsTest, RmiByIdNeedsForceForSeveralNames) {
  TestImage a = Add(1, {"a:1", "b:1"});
  TestImage dangling = Add(2, {});
  const std::string before = State();
  CliResult r = Run({"rmi", Short(a.id)});
  ExpectOneError(r, 1, "has 2 names");
  EXPECT_EQ(State(), before);

  r = Run({"rmi", "-f", Short(a.id), "sha256:" + std::string(dangling.id.hex())});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "Untagged: a:1\nUntagged: b:1\nDeleted: " + a.id.ToString() +
                       "\nDeleted: " + dangling.id.ToString() + "\n");
  EXPECT_EQ(State(), "");
}

TEST_F(ImageCommandsTest, RmiByManifestDigest) {
  TestImage a = Add(1, {"a:1"});
  CliResult r = Run({"rmi", "--force", a.manifest_digest.ToString()});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "Untagged: a:1\nDeleted: " + a.id.ToString() + "\n");
}

TEST_F(ImageCommandsTest, RmiRemovesNothingWhenAnArgumentIsBad) {
  TestImage a = Add(1, {"a:1"});
  TestImage b = Add(2, {"b:1"});
  const std::string before = State();
  ExpectOneError(Run({"rmi", "a:1", "nope"}), 1, "image not known: nope:latest");
  ExpectOneError(Run({"rmi", "a:1", "UPPER/case"}), 1, "must be lowercase");
  ExpectOneError(Run({"rmi", "a:1", "a:b:c"}), 1, "invalid reference \"a:b:c\"");
  ExpectOneError(Run({"rmi", "a:1", "sha256:zz"}), 1, "invalid image id");
  ExpectOneError(Run({"rmi", "a:1", "x:" + std::string(129, 't')}), 1, "at most 128");
  ExpectOneError(Run({"rmi"}), 2, "IMAGE");
  EXPECT_EQ(State(), before);
  // Two bad arguments: one line each.
  CliResult r = Run({"rmi", "nope1", "a:1", "nope2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "imgstore: error: image not known: nope1:latest\n"
            "imgstore: error: image not known: nope2:latest\n");
  EXPECT_EQ(State(), before);
  EXPECT_EQ(NamesOf(a.id), std::vector<std::string>{"docker.io/library/a:1"});
  EXPECT_EQ(NamesOf(b.id), std::vector<std::string>{"docker.io/library/b:1"});
}

TEST_F(ImageCommandsTest, RmiGoesOnPastAnImageThatNeedsForce) {
  TestImage a = Add(1, {"a:1", "a:2"});
  TestImage b = Add(2, {"b:1"});
  CliResult r = Run({"rmi", a.id.ToString(), "b:1"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(r.out, "Untagged: b:1\nDeleted: " + b.id.ToString() + "\n");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("has 2 names"), std::string::npos) << r.err;
  EXPECT_EQ(NamesOf(a.id).size(), 2u);
}

}  // namespace
}  // namespace imgstore::testing
