// Tests of the docker-archive transport with archives built here (TarWriter, test images): the
// source's entry selection, synthesized manifest and blobs, every kind of hostile or broken
// archive, and the destination's output, diffID checks and atomicity.
#include "transports/docker_archive.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/fault_env.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "images/image_config.h"
#include "images/media_types.h"
#include "transports/tar_writer.h"

namespace imgstore::transports {
namespace {

using testing::LayerCompression;
using testing::MakeTestImage;
using testing::TempDir;
using testing::TestImage;
using testing::TestImageSpec;
namespace mt = images::media_type;

using Members = std::vector<std::pair<std::string, std::string>>;

void WriteTar(const std::string& path, const Members& members) {
  Result<TarWriter> w = TarWriter::Create(Env::Default(), path);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  for (const auto& [name, bytes] : members) {
    ASSERT_TRUE(w->AddFile(name, bytes).ok()) << name;
  }
  ASSERT_TRUE(w->Commit().ok());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Quoted(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ",\"" : "\"") + v[i] + "\"";
  return out + "]";
}

// The members of a docker save archive of `image`, layers stored as `layer_blobs` (the
// uncompressed tars unless given), under old docker's "<n>/layer.tar" names.
Members DockerSaveMembers(const TestImage& image, const std::vector<std::string>& tags,
                          std::vector<std::string> layer_blobs = {}) {
  if (layer_blobs.empty()) layer_blobs = image.tars;
  Members m;
  std::vector<std::string> names;
  for (size_t i = 0; i < layer_blobs.size(); ++i) {
    names.push_back("l" + std::to_string(i) + "/layer.tar");
    m.emplace_back(names.back(), layer_blobs[i]);
  }
  std::string config_name = std::string(image.id.hex()) + ".json";
  m.emplace_back(config_name, image.config);
  m.emplace_back("manifest.json", "[{\"Config\":\"" + config_name + "\",\"RepoTags\":" +
                                      Quoted(tags) + ",\"Layers\":" + Quoted(names) + "}]");
  return m;
}

std::string BlobOf(images::ImageSource& src, const images::Descriptor& d) {
  Result<std::unique_ptr<SequentialFile>> f = src.GetBlob(d);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  if (!f.ok()) return "";
  std::string out;
  std::vector<std::byte> buf(65536);
  for (;;) {
    Result<size_t> n = (*f)->Read(buf);
    EXPECT_TRUE(n.ok());
    if (!n.ok() || *n == 0) return out;
    out.append(reinterpret_cast<const char*>(buf.data()), *n);
  }
}

class DockerArchiveTest : public ::testing::Test {
 protected:
  std::string Archive(const Members& m, const std::string& name = "a.tar") {
    std::string path = dir_.Sub(name);
    WriteTar(path, m);
    return path;
  }
  Result<std::unique_ptr<images::ImageSource>> Open(const std::string& path,
                                                    std::string_view ref = "") {
    return OpenDockerArchiveSource(Env::Default(), path, ref);
  }
  // Opening fails with `code` and a message holding `needle`.
  void ExpectRefused(const Members& m, Code code, const std::string& needle,
                     std::string_view ref = "") {
    auto src = Open(Archive(m), ref);
    ASSERT_FALSE(src.ok()) << "accepted; expected: " << needle;
    EXPECT_EQ(src.status().code(), code) << src.status().ToString();
    EXPECT_NE(src.status().message().find(needle), std::string::npos) << src.status().ToString();
    EXPECT_EQ(src.status().message().find('\n'), std::string::npos);
    EXPECT_NE(src.status().message().find("docker-archive:"), std::string::npos);
  }

  TempDir dir_;
  TestImage image_ = MakeTestImage({.seed = 3, .layers = 2});
};

// --- source: the happy paths -------------------------------------------------------------------

TEST_F(DockerArchiveTest, SourceSynthesizesAV2s2ManifestThatKeepsTheImageId) {
  auto src = Open(Archive(DockerSaveMembers(image_, {"busybox:latest", "busybox:1"})));
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  Result<images::RawManifest> raw = (*src)->GetManifest();
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->media_type, mt::kDockerManifest);
  Result<images::ImageManifest> m = images::ParseImageManifest(raw->bytes, raw->media_type);
  ASSERT_TRUE(m.ok()) << m.status().ToString() << raw->bytes;
  EXPECT_EQ(m->config.digest, image_.id);
  EXPECT_EQ(m->config.media_type, mt::kDockerConfig);
  ASSERT_EQ(m->layers.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    // Uncompressed members: the layer digest is the diffID.
    EXPECT_EQ(m->layers[i].digest, image_.diff_ids[i]);
    EXPECT_EQ(m->layers[i].media_type, mt::kDockerLayerTar);
    EXPECT_EQ(m->layers[i].size, static_cast<int64_t>(image_.tars[i].size()));
    EXPECT_TRUE(BlobOf(**src, m->layers[i]) == image_.tars[i]);
  }
  EXPECT_EQ(BlobOf(**src, m->config), image_.config);
  Result<images::ImageConfig> config = images::ParseImageConfig(image_.config);
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(images::CheckConfigMatchesManifest(*m, *config).ok());
  EXPECT_EQ((*src)->Names(), (std::vector<std::string>{"busybox:latest", "busybox:1"}));
  EXPECT_EQ((*src)->Describe(), "docker-archive:" + dir_.Sub("a.tar"));
  EXPECT_EQ((*src)->GetManifest(m->config).status().code(), Code::kNotFound);
  images::Descriptor unknown = m->config;
  unknown.digest = Digest::Of("nothing");
  EXPECT_EQ((*src)->GetBlob(unknown).status().code(), Code::kNotFound);
}

TEST_F(DockerArchiveTest, SameArchiveSameManifestDigest) {
  std::string a = Archive(DockerSaveMembers(image_, {"x:1"}), "a.tar");
  std::string b = Archive(DockerSaveMembers(image_, {"y:2"}), "b.tar");
  auto s1 = Open(a), s2 = Open(a), s3 = Open(b);
  ASSERT_TRUE(s1.ok() && s2.ok() && s3.ok());
  EXPECT_EQ((*s1)->GetManifest()->bytes, (*s2)->GetManifest()->bytes);
  // Tags are not part of the image: another name, the same manifest.
  EXPECT_EQ((*s1)->GetManifest()->bytes, (*s3)->GetManifest()->bytes);
}

TEST_F(DockerArchiveTest, CompressedMembersKeepTheirBytesAndAreCheckedAgainstDiffIds) {
  std::vector<std::string> gz;
  for (const std::string& t : image_.tars)
    gz.push_back(testing::Compress(t, LayerCompression::kGzip));
  auto src = Open(Archive(DockerSaveMembers(image_, {}, gz)));
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  auto m = images::ParseImageManifest((*src)->GetManifest()->bytes);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->media_type, mt::kDockerManifest);
  for (size_t i = 0; i < gz.size(); ++i) {
    EXPECT_EQ(m->layers[i].media_type, mt::kDockerLayerTarGzip);
    EXPECT_EQ(m->layers[i].digest, Digest::Of(gz[i]));
    EXPECT_TRUE(BlobOf(**src, m->layers[i]) == gz[i]);
  }

  // A zstd member: v2s2 has no zstd type, so the manifest is OCI.
  std::vector<std::string> mixed = {gz[0],
                                    testing::Compress(image_.tars[1], LayerCompression::kZstd)};
  src = Open(Archive(DockerSaveMembers(image_, {}, mixed), "z.tar"));
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  m = images::ParseImageManifest((*src)->GetManifest()->bytes);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->media_type, mt::kOciManifest);
  EXPECT_EQ(m->config.media_type, mt::kOciConfig);
  EXPECT_EQ(m->layers[0].media_type, mt::kOciLayerTarGzip);
  EXPECT_EQ(m->layers[1].media_type, mt::kOciLayerTarZstd);
}

TEST_F(DockerArchiveTest, RefSelectsAnEntryByNormalizedTagOrIndex) {
  TestImage other = MakeTestImage({.seed = 9, .layers = 1});
  Members m = DockerSaveMembers(image_, {"busybox:latest"});
  Members m2 = DockerSaveMembers(other, {"quay.io/a/b:2", "alpine:3"});
  m.pop_back();  // manifest.json, written below for both
  for (auto& member : m2) {
    if (member.first != "manifest.json") m.emplace_back("o/" + member.first, member.second);
  }
  std::string id1 = std::string(image_.id.hex()) + ".json";
  std::string id2 = "o/" + std::string(other.id.hex()) + ".json";
  m.emplace_back("manifest.json",
                 "[{\"Config\":\"" + id1 +
                     "\",\"RepoTags\":[\"busybox:latest\"],\"Layers\":[\"l0/layer.tar\","
                     "\"l1/layer.tar\"]},{\"Config\":\"" +
                     id2 +
                     "\",\"RepoTags\":[\"quay.io/a/b:2\",\"alpine:3\"],\"Layers\":[\"o/l0/"
                     "layer.tar\"]},{\"Config\":\"" +
                     id1 + "\",\"RepoTags\":null,\"Layers\":[\"l0/layer.tar\",\"l1/layer.tar\"]}]");
  std::string path = Archive(m);
  auto id_of = [&](std::string_view ref) -> std::string {
    auto src = Open(path, ref);
    if (!src.ok()) return src.status().ToString();
    return images::ParseImageManifest((*src)->GetManifest()->bytes)->config.digest.ToString();
  };
  EXPECT_EQ(id_of("busybox"), image_.id.ToString());
  EXPECT_EQ(id_of("docker.io/library/busybox:latest"), image_.id.ToString());
  EXPECT_EQ(id_of("alpine:3"), other.id.ToString());
  EXPECT_EQ(id_of("quay.io/a/b:2"), other.id.ToString());
  EXPECT_EQ(id_of("@1"), other.id.ToString());
  EXPECT_EQ(id_of("@2"), image_.id.ToString());
  auto untagged = Open(path, "@2");
  ASSERT_TRUE(untagged.ok());
  EXPECT_TRUE((*untagged)->Names().empty());

  // Several images and no REF: the error lists them.
  auto src = Open(path);
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), Code::kInvalidArgument);
  EXPECT_NE(src.status().message().find("@1 (\"quay.io/a/b:2\" \"alpine:3\")"), std::string::npos)
      << src.status().ToString();
  EXPECT_NE(src.status().message().find("@2 (untagged)"), std::string::npos);
  // Unknown tags, indexes out of range, malformed indexes, digests, bad references.
  EXPECT_EQ(Open(path, "alpine:4").status().code(), Code::kNotFound);
  EXPECT_NE(Open(path, "alpine:4").status().message().find("docker.io/library/alpine:4"),
            std::string::npos);
  EXPECT_EQ(Open(path, "@3").status().code(), Code::kNotFound);
  EXPECT_EQ(Open(path, "@").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Open(path, "@-1").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Open(path, "@1x").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Open(path, "busybox@sha256:" + std::string(64, 'a')).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(Open(path, "UPPER").status().code(), Code::kInvalidArgument);
}

TEST_F(DockerArchiveTest, AmbiguousTagIsRefused) {
  std::string id = std::string(image_.id.hex()) + ".json";
  Members m = DockerSaveMembers(image_, {});
  m.back().second = "[{\"Config\":\"" + id +
                    "\",\"RepoTags\":[\"a:1\"],\"Layers\":[\"l0/layer.tar\",\"l1/layer.tar\"]},"
                    "{\"Config\":\"" +
                    id +
                    "\",\"RepoTags\":[\"docker.io/library/a:1\"],\"Layers\":[\"l0/layer.tar\","
                    "\"l1/layer.tar\"]}]";
  ExpectRefused(m, Code::kInvalidArgument, "names 2 images", "a:1");
}

TEST_F(DockerArchiveTest, UncleanPathsAreCleaned) {
  Members m = DockerSaveMembers(image_, {});
  m.back().second = "[{\"Config\":\"./" + std::string(image_.id.hex()) +
                    ".json\",\"Layers\":[\"./l0/layer.tar\",\"l1//./layer.tar\"]}]";
  auto src = Open(Archive(m));
  ASSERT_TRUE(src.ok()) << src.status().ToString();
}

// --- source: hostile and broken archives -------------------------------------------------------

TEST_F(DockerArchiveTest, MissingManifestJson) {
  Members m = DockerSaveMembers(image_, {});
  m.pop_back();
  ExpectRefused(m, Code::kInvalidArgument, "no manifest.json");
}

TEST_F(DockerArchiveTest, MalformedManifestJson) {
  struct Case {
    std::string json, needle;
  } cases[] = {
      {"[{\"Config\":", "malformed JSON"},
      {"{}", "must be a JSON array"},
      {"[]", "lists no images"},
      {"[1]", "[0]: must be an object"},
      {"[{\"Layers\":[]}]", "[0].Config"},
      {"[{\"Config\":5,\"Layers\":[]}]", "[0].Config"},
      {"[{\"Config\":\"c.json\"}]", "[0].Layers: missing"},
      {"[{\"Config\":\"c.json\",\"Layers\":\"l\"}]", "[0].Layers: must be an array"},
      {"[{\"Config\":\"c.json\",\"Layers\":[7]}]", "[0].Layers[0]: must be a string"},
      {"[{\"Config\":\"c.json\",\"RepoTags\":[null],\"Layers\":[]}]", "[0].RepoTags[0]"},
      {"[{\"Config\":\"a\",\"Config\":\"b\",\"Layers\":[]}]", "appears twice"},
      {std::string(100, '[') + std::string(100, ']'), "nested deeper"},
      {"[{\"Config\":\"c.json\",\"Layers\":[]}] trailing", "malformed JSON"},
  };
  for (const Case& c : cases) {
    Members m = DockerSaveMembers(image_, {});
    m.back().second = c.json;
    SCOPED_TRACE(c.json);
    ExpectRefused(m, Code::kInvalidArgument, c.needle);
  }
}

TEST_F(DockerArchiveTest, OversizedManifestJsonIsRefusedByItsNamedBound) {
  Members m = DockerSaveMembers(image_, {});
  auto src = Open(Archive(m));
  ASSERT_TRUE(src.ok());
  DockerArchiveLimits tiny;
  tiny.max_manifest_json_bytes = 10;
  src = OpenDockerArchiveSource(Env::Default(), dir_.Sub("a.tar"), "", tiny);
  ASSERT_FALSE(src.ok());
  EXPECT_NE(src.status().message().find("max_manifest_json_bytes"), std::string::npos);
}

TEST_F(DockerArchiveTest, PathsOutsideTheArchiveOrMissingAreRefusedByName) {
  std::string id = std::string(image_.id.hex()) + ".json";
  struct Case {
    std::string config, layer0, needle;
  } cases[] = {
      {id, "../l0/layer.tar", "\"../l0/layer.tar\" has a \"..\" component"},
      {id, "l0/../../x", "has a \"..\" component"},
      {id, "/etc/passwd", "\"/etc/passwd\" is an absolute path"},
      {id, "", "is empty"},
      {id, "./", "names no file"},
      {id, "nope/layer.tar", "\"nope/layer.tar\" is not a file in the archive"},
      {id, "l0", "\"l0\" is not a file"},  // a directory, not a file
      {"../" + id, "l0/layer.tar", "Config: \"../"},
      {"missing.json", "l0/layer.tar", "\"missing.json\" is not a file"},
  };
  for (const Case& c : cases) {
    Members m = DockerSaveMembers(image_, {});
    m.back().second =
        "[{\"Config\":\"" + c.config + "\",\"Layers\":[\"" + c.layer0 + "\",\"l1/layer.tar\"]}]";
    SCOPED_TRACE(c.layer0 + " " + c.config);
    ExpectRefused(m, Code::kInvalidArgument, c.needle);
  }
}

TEST_F(DockerArchiveTest, LayerCountMustMatchTheConfig) {
  Members m = DockerSaveMembers(image_, {});
  m.back().second =
      "[{\"Config\":\"" + std::string(image_.id.hex()) + ".json\",\"Layers\":[\"l0/layer.tar\"]}]";
  ExpectRefused(m, Code::kInvalidArgument, "lists 1 layers but its config has 2 diffIDs");
}

TEST_F(DockerArchiveTest, LayerThatDoesNotMatchItsDiffIdIsRefused) {
  // Swapped layers: each is a valid tar, neither matches its diffID.
  Members m = DockerSaveMembers(image_, {}, {image_.tars[1], image_.tars[0]});
  ExpectRefused(m, Code::kCorruption, "Layers[0] \"l0/layer.tar\" does not match the config");
  // The same through gzip: the uncompressed bytes are what is checked.
  m = DockerSaveMembers(image_, {},
                        {testing::Compress(image_.tars[0], LayerCompression::kGzip),
                         testing::Compress(image_.tars[0], LayerCompression::kGzip)});
  ExpectRefused(m, Code::kCorruption, "Layers[1]");
}

TEST_F(DockerArchiveTest, CorruptOrUnsupportedCompressedMembers) {
  std::string gz = testing::Compress(image_.tars[0], LayerCompression::kGzip);
  Members m = DockerSaveMembers(image_, {}, {gz.substr(0, gz.size() / 2), image_.tars[1]});
  ExpectRefused(m, Code::kCorruption, "truncated");
  m = DockerSaveMembers(image_, {}, {"BZh91AY&SY" + image_.tars[0], image_.tars[1]});
  ExpectRefused(m, Code::kUnsupported, "bzip2");
}

TEST_F(DockerArchiveTest, BadConfig) {
  Members m = DockerSaveMembers(image_, {});
  for (auto& [name, bytes] : m) {
    if (name.ends_with(".json") && name != "manifest.json") bytes = "{not json";
  }
  ExpectRefused(m, Code::kInvalidArgument, "config");
}

TEST_F(DockerArchiveTest, TruncatedArchiveIsRefused) {
  std::string path = Archive(DockerSaveMembers(image_, {}));
  std::string bytes = ReadFile(path);
  // Cut inside the first layer's data and at the end-of-archive blocks.
  for (size_t cut : {size_t{1000}, bytes.size() / 2, bytes.size() - 700}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, cut);
    auto src = Open(path);
    ASSERT_FALSE(src.ok()) << cut;
    EXPECT_NE(src.status().message().find("docker-archive:"), std::string::npos);
  }
  EXPECT_EQ(Open(dir_.Sub("absent.tar")).status().code(), Code::kNotFound);
}

// An archive whose first layer "l9/layer.tar" is a symlink to `target`. The tar writer makes no
// symlinks, so one header is patched (ustar: checksum at 148, typeflag at 156, linkname at 157).
std::string ArchiveWithSymlink(const TestImage& image, const std::string& path,
                               const std::string& target) {
  Members m = DockerSaveMembers(image, {});
  m.insert(m.begin(), {"l9/layer.tar", ""});
  m.back().second = "[{\"Config\":\"" + std::string(image.id.hex()) +
                    ".json\",\"Layers\":[\"l9/layer.tar\",\"l1/layer.tar\"]}]";
  WriteTar(path, m);
  std::string bytes = ReadFile(path);
  EXPECT_EQ(bytes.substr(0, 12), "l9/layer.tar");
  bytes[156] = '2';
  std::copy(target.begin(), target.end(), bytes.begin() + 157);
  std::fill(bytes.begin() + 148, bytes.begin() + 156, ' ');
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(bytes[i]);
  snprintf(&bytes[148], 8, "%06o", sum);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

TEST_F(DockerArchiveTest, SymlinkedLayersOfOldDockerSaveAreFollowedInsideTheArchive) {
  // docker save (before 25) made a repeated layer a symlink to its first copy.
  auto src = Open(ArchiveWithSymlink(image_, dir_.Sub("s.tar"), "../l0/layer.tar"));
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  auto m = images::ParseImageManifest((*src)->GetManifest()->bytes);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(BlobOf(**src, m->layers[0]) == image_.tars[0]);
}

TEST_F(DockerArchiveTest, SymlinksThatLeaveTheArchiveOrLoopAreRefused) {
  for (auto [target, needle] :
       {std::pair<std::string, std::string>{"../../etc/passwd", "leads out of the archive"},
        {"/etc/passwd", "leads out of the archive"},
        {"layer.tar", "chain of more than"}}) {
    auto src = Open(ArchiveWithSymlink(image_, dir_.Sub("evil.tar"), target));
    ASSERT_FALSE(src.ok()) << target;
    EXPECT_NE(src.status().message().find(needle), std::string::npos) << src.status().ToString();
  }
}

TEST(DockerArchiveSpec, SplitsAtTheFirstColon) {
  auto s = ParseDockerArchiveSpec("/tmp/x.tar:busybox:latest");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->path, "/tmp/x.tar");
  EXPECT_EQ(s->ref, "busybox:latest");
  s = ParseDockerArchiveSpec("x.tar");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->ref, "");
  EXPECT_EQ(ParseDockerArchiveSpec(":ref").status().code(), Code::kInvalidArgument);
}

// --- destination ------------------------------------------------------------------------------

images::ImageToWrite ToWrite(const TestImage& image, std::vector<std::string> names = {}) {
  images::ImageToWrite w;
  w.manifest = {image.manifest, image.manifest_media_type};
  w.parsed = *images::ParseImageManifest(image.manifest, image.manifest_media_type);
  w.config = image.config;
  w.diff_ids = image.diff_ids;
  w.names = std::move(names);
  std::map<Digest, std::string> blobs;
  blobs[image.id] = image.config;
  for (const std::string& l : image.layers) blobs[Digest::Of(l)] = l;
  w.open_blob = [blobs](const images::Descriptor& d) -> Result<std::unique_ptr<SequentialFile>> {
    auto it = blobs.find(d.digest);
    if (it == blobs.end()) return Status(Code::kNotFound, "no blob " + d.digest.ToString());
    // Through a real file, as the store gives them.
    static int n = 0;
    std::string path =
        ::testing::TempDir() + "/da-blob-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    std::ofstream(path, std::ios::binary) << it->second;
    auto f = Env::Default()->NewSequentialFile(path);
    ::unlink(path.c_str());
    return f;
  };
  return w;
}

class DockerArchiveDestinationTest : public ::testing::TestWithParam<LayerCompression> {
 protected:
  TempDir dir_;
};

TEST_P(DockerArchiveDestinationTest, WritesAnArchiveTheSourceReadsBack) {
  TestImage image = MakeTestImage({.seed = 5, .layers = 3, .compression = GetParam()});
  std::string path = dir_.Sub("out.tar");
  auto dest = OpenDockerArchiveDestination(Env::Default(), path, "");
  ASSERT_TRUE(dest.ok());
  Status st = (*dest)->PutImage(
      ToWrite(image, {"docker.io/library/busybox:latest", "quay.io/x/y:1",
                      "docker.io/library/busybox@sha256:" + std::string(64, 'a')}));
  ASSERT_TRUE(st.ok()) << st.ToString();

  auto src = OpenDockerArchiveSource(Env::Default(), path, "");
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  auto m = images::ParseImageManifest((*src)->GetManifest()->bytes);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->config.digest, image.id);  // the image ID survives
  ASSERT_EQ(m->layers.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    // Written uncompressed, whatever the input: the layer digest is the diffID.
    EXPECT_EQ(m->layers[i].digest, image.diff_ids[i]);
    EXPECT_EQ(m->layers[i].media_type, mt::kDockerLayerTar);
  }
  // Familiar, tagged names only.
  EXPECT_EQ((*src)->Names(), (std::vector<std::string>{"busybox:latest", "quay.io/x/y:1"}));
  // The archive's file names, as docker save writes them.
  auto tar = TarReader::Open(Env::Default(), path);
  ASSERT_TRUE(tar.ok());
  EXPECT_NE(tar->Find(std::string(image.id.hex()) + ".json"), nullptr);
  EXPECT_NE(tar->Find(std::string(image.diff_ids[0].hex()) + ".tar"), nullptr);
  EXPECT_EQ(tar->members().back().name, "manifest.json");

  // The destination's own REF replaces the names.
  dest = OpenDockerArchiveDestination(Env::Default(), path, "docker.io/library/app");
  ASSERT_TRUE(dest.ok());
  ASSERT_TRUE((*dest)->PutImage(ToWrite(image, {"quay.io/x/y:1"})).ok());
  src = OpenDockerArchiveSource(Env::Default(), path, "app:latest");
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  EXPECT_EQ((*src)->Names(), (std::vector<std::string>{"app:latest"}));
}

INSTANTIATE_TEST_SUITE_P(LayerCompressions, DockerArchiveDestinationTest,
                         ::testing::Values(LayerCompression::kNone, LayerCompression::kGzip,
                                           LayerCompression::kZstd));

TEST(DockerArchiveDestination, DiffIdMismatchFailsAndLeavesNoFile) {
  TempDir dir;
  TestImage image = MakeTestImage({.seed = 6, .layers = 2});
  images::ImageToWrite w = ToWrite(image);
  std::swap(w.diff_ids[0], w.diff_ids[1]);
  std::string path = dir.Sub("out.tar");
  auto dest = OpenDockerArchiveDestination(Env::Default(), path, "a:1");
  ASSERT_TRUE(dest.ok());
  Status st = (*dest)->PutImage(w);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find("diffID"), std::string::npos);
  EXPECT_NE(st.message().find("docker-archive:" + path), std::string::npos);
  auto left = Env::Default()->ListDir(dir.path());
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty()) << left->front();

  // Uncompressed layers are checked too (while they are copied).
  TestImage plain = MakeTestImage({.seed = 6, .layers = 2, .compression = LayerCompression::kNone});
  w = ToWrite(plain);
  w.diff_ids[1] = Digest::Of("something else");
  EXPECT_EQ((*dest)->PutImage(w).code(), Code::kCorruption);
  EXPECT_TRUE(Env::Default()->ListDir(dir.path())->empty());
}

TEST(DockerArchiveDestination, FailuresKeepThePreviousArchive) {
  TempDir dir;
  std::string path = dir.Sub("out.tar");
  TestImage image = MakeTestImage({.seed = 7, .layers = 2});
  auto dest = OpenDockerArchiveDestination(Env::Default(), path, "a:1");
  ASSERT_TRUE(dest.ok());
  ASSERT_TRUE((*dest)->PutImage(ToWrite(image)).ok());
  const std::string before = ReadFile(path);

  TestImage other = MakeTestImage({.seed = 8, .layers = 2});
  // A blob that cannot be read.
  images::ImageToWrite w = ToWrite(other);
  auto open = w.open_blob;
  w.open_blob = [&, open](const images::Descriptor& d) -> Result<std::unique_ptr<SequentialFile>> {
    if (d.digest == w.parsed.layers[1].digest) return Status(Code::kIOError, "read failed");
    return open(d);
  };
  EXPECT_EQ((*dest)->PutImage(w).code(), Code::kIOError);
  // A layer type that cannot be decompressed.
  w = ToWrite(other);
  w.parsed.layers[0].media_type = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
  EXPECT_EQ((*dest)->PutImage(w).code(), Code::kUnsupported);
  // Config bytes that are not the manifest's config.
  w = ToWrite(other);
  w.config += " ";
  EXPECT_EQ((*dest)->PutImage(w).code(), Code::kCorruption);
  // Fewer diffIDs than layers.
  w = ToWrite(other);
  w.diff_ids.pop_back();
  EXPECT_EQ((*dest)->PutImage(w).code(), Code::kInvalidArgument);
  // The rename that would publish the archive fails.
  testing::FaultEnv fault;
  auto faulty = OpenDockerArchiveDestination(&fault, path, "a:1");
  ASSERT_TRUE(faulty.ok());
  fault.FailNext(testing::FsOp::kRename);
  EXPECT_FALSE((*faulty)->PutImage(ToWrite(other)).ok());

  EXPECT_TRUE(ReadFile(path) == before);
  EXPECT_EQ(Env::Default()->ListDir(dir.path())->size(), 1u);  // no temporary file left
}

TEST(DockerArchiveDestination, RefWithADigestOrInvalidIsRefused) {
  EXPECT_EQ(
      OpenDockerArchiveDestination(Env::Default(), "/tmp/x.tar", "a@sha256:" + std::string(64, 'b'))
          .status()
          .code(),
      Code::kInvalidArgument);
  EXPECT_EQ(OpenDockerArchiveDestination(Env::Default(), "/tmp/x.tar", "Bad Name").status().code(),
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace imgstore::transports
