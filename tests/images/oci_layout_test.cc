// Tests of the OCI image layout reader and writer (src/images/oci_layout.h): a round trip of a
// small image built here, interoperability with skopeo in both directions (skipped when skopeo is
// not installed), `oci:PATH[:REF]` parsing, and one test per way a bad layout is refused.
#include "images/oci_layout.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/temp_dir.h"
#include "images/media_types.h"
#include "images/platform.h"
#include "util/digest.h"
#include "util/env.h"

namespace imgstore::images {
namespace {

using Json = nlohmann::json;
using testing::TempDir;

struct TestImage {
  std::string config;
  std::string layer;
  std::string manifest;
  Descriptor config_desc;
  Descriptor layer_desc;
  Descriptor manifest_desc;
};

Descriptor Desc(std::string_view media_type, std::string_view bytes) {
  Descriptor d;
  d.media_type = std::string(media_type);
  d.digest = Digest::Of(bytes);
  d.size = static_cast<int64_t>(bytes.size());
  return d;
}

Json DescJson(const Descriptor& d) {
  return {{"mediaType", d.media_type}, {"digest", d.digest.ToString()}, {"size", d.size}};
}

// An empty tar (two zero blocks), gzipped with mtime 0 (python's gzip.compress).
constexpr char kEmptyTarGzip[] =
    "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\x63\x60\x18\x05\xa3\x60\x14\x8c\x54\x00"
    "\x00\x2e\xaf\xb5\xef\x00\x04\x00\x00";

// A runnable-looking image: one gzip layer of an empty tar and its config. `salt` makes distinct
// images. The layer is compressed so that skopeo copies it as it is (it would gzip a plain tar
// for an oci: destination, changing the digests).
TestImage MakeImage(const std::string& salt = "") {
  TestImage im;
  im.layer = std::string(kEmptyTarGzip, sizeof kEmptyTarGzip - 1);
  im.layer_desc = Desc(media_type::kOciLayerTarGzip, im.layer);
  const Digest diff_id = Digest::Of(std::string(1024, '\0'));
  Platform host = HostPlatform();
  Json config = {{"architecture", host.architecture},
                 {"os", host.os},
                 {"config", {{"Labels", {{"salt", salt}}}}},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", {diff_id.ToString()}}}}};
  im.config = config.dump();
  im.config_desc = Desc(media_type::kOciConfig, im.config);
  Json manifest = {{"schemaVersion", 2},
                   {"mediaType", media_type::kOciManifest},
                   {"config", DescJson(im.config_desc)},
                   {"layers", {DescJson(im.layer_desc)}}};
  im.manifest = manifest.dump();
  im.manifest_desc = Desc(media_type::kOciManifest, im.manifest);
  return im;
}

void WriteImage(const std::string& dir, const TestImage& im, const std::string& ref) {
  Result<OciLayoutWriter> w = OciLayoutWriter::Open(Env::Default(), dir);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE(w->PutBlob(im.layer_desc.digest, im.layer).ok());
  ASSERT_TRUE(w->PutBlob(im.config_desc.digest, im.config).ok());
  ASSERT_TRUE(w->PutBlob(im.manifest_desc.digest, im.manifest).ok());
  Status st = w->AddImage(im.manifest_desc, ref);
  ASSERT_TRUE(st.ok()) << st.ToString();
}

// Opens the layout in `dir` for reading, on the default Env.
Result<OciLayoutReader> OpenLayout(const std::string& dir) {
  return OciLayoutReader::Open(Env::Default(), dir);
}

// Writes two images into the layout `dir`, refs "alpha" and "beta", and opens it for reading.
Result<OciLayoutReader> OpenTwoImageLayout(const std::string& dir) {
  WriteImage(dir, MakeImage("a"), "alpha");
  WriteImage(dir, MakeImage("b"), "beta");
  return OpenLayout(dir);
}

// `status` is a refusal of kind `code` whose message names `text`.
void ExpectRefused(const Status& status, Code code, const std::string& text) {
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), code) << status.ToString();
  EXPECT_NE(status.message().find(text), std::string::npos) << status.message();
}

std::string ReadFile(const std::string& path) {
  Result<std::string> s = Env::Default()->ReadFileToString(path, 1 << 24);
  return s.ok() ? *s : std::string("<unreadable: ") + s.status().ToString() + ">";
}

void WriteFile(const std::string& path, std::string_view data) {
  ASSERT_TRUE(Env::Default()->WriteFileAtomically(path, data).ok()) << path;
}

// ---------------------------------------------------------------------------------------------
// Round trip.

TEST(OciLayoutTest, WriteThenRead) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  TestImage im = MakeImage();
  WriteImage(dir, im, "v1");

  Json layout = Json::parse(ReadFile(dir + "/oci-layout"));
  EXPECT_EQ(layout["imageLayoutVersion"], "1.0.0");

  Result<OciLayoutReader> r = OpenLayout(dir);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->images().size(), 1u);
  EXPECT_EQ(r->images()[0].ref_name, "v1");
  EXPECT_EQ(r->images()[0].descriptor.digest, im.manifest_desc.digest);

  Result<OciResolvedImage> res = r->ResolveImage("v1");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->manifest_bytes, im.manifest);
  EXPECT_EQ(res->descriptor.digest, im.manifest_desc.digest);
  EXPECT_EQ(res->manifest.config.digest, im.config_desc.digest);
  ASSERT_EQ(res->manifest.layers.size(), 1u);

  // No ref: the only image.
  Result<OciResolvedImage> only = r->ResolveImage("");
  ASSERT_TRUE(only.ok()) << only.status().ToString();
  EXPECT_EQ(only->descriptor.digest, im.manifest_desc.digest);

  Result<OciBlobReader> blob = r->OpenBlob(res->manifest.layers[0]);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_EQ(blob->size(), im.layer.size());
  std::string streamed;
  std::vector<std::byte> buf(7);  // several reads
  while (true) {
    Result<size_t> n = blob->Read(buf);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) break;
    streamed.append(reinterpret_cast<const char*>(buf.data()), *n);
  }
  EXPECT_EQ(streamed, im.layer);

  Result<std::string> config = r->ReadBlob(res->manifest.config, 1 << 20);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(*config, im.config);
  EXPECT_EQ(r->BlobPath(im.config_desc.digest),
            dir + "/blobs/sha256/" + std::string(im.config_desc.digest.hex()));
}

TEST(OciLayoutTest, SameRefReplacesOtherRefsAreKept) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  TestImage a = MakeImage("a"), b = MakeImage("b"), c = MakeImage("c");
  WriteImage(dir, a, "one");
  WriteImage(dir, b, "two");
  WriteImage(dir, c, "one");
  Result<OciLayoutReader> r = OpenLayout(dir);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->images().size(), 2u);
  EXPECT_EQ(r->images()[0].ref_name, "two");
  EXPECT_EQ(r->images()[1].ref_name, "one");
  Result<OciLayoutImage> one = r->FindImage("one");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->descriptor.digest, c.manifest_desc.digest);
}

TEST(OciLayoutTest, NestedIndexIsFollowedToThePlatformManifest) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  TestImage im = MakeImage();
  WriteImage(dir, im, "single");
  Platform host = HostPlatform();
  Json entry = DescJson(im.manifest_desc);
  entry["platform"] = {{"os", host.os}, {"architecture", host.architecture}};
  Json index = {{"schemaVersion", 2}, {"mediaType", media_type::kOciIndex}, {"manifests", {entry}}};
  std::string index_bytes = index.dump();
  Descriptor index_desc = Desc(media_type::kOciIndex, index_bytes);
  Result<OciLayoutWriter> w = OciLayoutWriter::Open(Env::Default(), dir);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->PutBlob(index_desc.digest, index_bytes).ok());
  ASSERT_TRUE(w->AddImage(index_desc, "multi").ok());

  Result<OciLayoutReader> r = OpenLayout(dir);
  ASSERT_TRUE(r.ok());
  Result<OciResolvedImage> res = r->ResolveImage("multi");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->entry.descriptor.digest, index_desc.digest);
  EXPECT_EQ(res->descriptor.digest, im.manifest_desc.digest);
  EXPECT_EQ(res->manifest_bytes, im.manifest);
}

// ---------------------------------------------------------------------------------------------
// oci:PATH[:REF] and ref names.

TEST(OciLayoutTest, ParseLocation) {
  auto parse = [](std::string_view s) { return ParseOciLayoutLocation(s); };
  Result<OciLayoutLocation> a = parse("oci:/tmp/dir:v1");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->path, "/tmp/dir");
  EXPECT_EQ(a->ref, "v1");
  Result<OciLayoutLocation> b = parse("oci:rel/dir");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->path, "rel/dir");
  EXPECT_EQ(b->ref, "");
  // The first ':' splits, as skopeo does: the ref may hold ':' and '/'.
  Result<OciLayoutLocation> c = parse("oci:/d:example.com/app:1.0");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->path, "/d");
  EXPECT_EQ(c->ref, "example.com/app:1.0");
  Result<OciLayoutLocation> d = parse("/d:");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->ref, "");
  EXPECT_EQ(parse("oci:").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(parse("oci::v1").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(parse("oci:/d:bad ref").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(parse("oci:/d:../x").status().code(), Code::kInvalidArgument);
}

TEST(OciLayoutTest, RefNameGrammar) {
  for (std::string_view ok :
       {"v1", "latest", "1.0", "a--b", "example.com/app:1.0", "a@b+c", "A_b.C-d", "x/y/z"}) {
    EXPECT_TRUE(IsValidOciRefName(ok)) << ok;
  }
  for (std::string_view bad :
       {"", "-a", "a-", "a//b", "/a", "a/", "a---b", "a b", "../x", "a..b", "ä"}) {
    EXPECT_FALSE(IsValidOciRefName(bad)) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Refusals.

TEST(OciLayoutTest, MissingOciLayoutFile) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  WriteImage(dir, MakeImage(), "v1");
  ASSERT_TRUE(Env::Default()->RemoveFile(dir + "/oci-layout").ok());
  Result<OciLayoutReader> r = OpenLayout(dir);
  ExpectRefused(r.status(), Code::kNotFound, "oci-layout");
  // The writer refuses a non-empty directory that is not a layout.
  EXPECT_EQ(OciLayoutWriter::Open(Env::Default(), dir).status().code(), Code::kFailedPrecondition);
}

TEST(OciLayoutTest, WrongLayoutVersion) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  WriteImage(dir, MakeImage(), "v1");
  WriteFile(dir + "/oci-layout", R"({"imageLayoutVersion":"2.0.0"})");
  Result<OciLayoutReader> r = OpenLayout(dir);
  ExpectRefused(r.status(), Code::kUnsupported, "2.0.0");
  WriteFile(dir + "/oci-layout", "not json");
  EXPECT_EQ(OpenLayout(dir).status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(OciLayoutWriter::Open(Env::Default(), dir).ok());
}

TEST(OciLayoutTest, MalformedOrMissingIndexJson) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  WriteImage(dir, MakeImage(), "v1");
  WriteFile(dir + "/index.json", R"({"schemaVersion":2,"manifests":[)");
  Result<OciLayoutReader> r = OpenLayout(dir);
  ExpectRefused(r.status(), Code::kInvalidArgument, "index.json");
  ASSERT_TRUE(Env::Default()->RemoveFile(dir + "/index.json").ok());
  r = OpenLayout(dir);
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

TEST(OciLayoutTest, MissingBlobNamesTheDigest) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  TestImage im = MakeImage();
  WriteImage(dir, im, "v1");
  Result<OciLayoutReader> r = OpenLayout(dir);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(Env::Default()->RemoveFile(r->BlobPath(im.layer_desc.digest)).ok());
  Result<OciBlobReader> blob = r->OpenBlob(im.layer_desc);
  ExpectRefused(blob.status(), Code::kNotFound, im.layer_desc.digest.ToString());
  ASSERT_TRUE(Env::Default()->RemoveFile(r->BlobPath(im.manifest_desc.digest)).ok());
  EXPECT_EQ(r->ResolveImage("v1").status().code(), Code::kNotFound);
}

TEST(OciLayoutTest, BlobOfWrongSizeOrContent) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  TestImage im = MakeImage();
  WriteImage(dir, im, "v1");
  Result<OciLayoutReader> r = OpenLayout(dir);
  ASSERT_TRUE(r.ok());
  const std::string path = r->BlobPath(im.layer_desc.digest);
  ASSERT_TRUE(Env::Default()->Chmod(path, 0644).ok());
  WriteFile(path, std::string(1000, '\0'));  // wrong size
  Result<OciBlobReader> blob = r->OpenBlob(im.layer_desc);
  ExpectRefused(blob.status(), Code::kCorruption, "1000");

  WriteFile(path, std::string(im.layer.size(), 'x'));  // right size, wrong bytes
  blob = r->OpenBlob(im.layer_desc);
  ASSERT_TRUE(blob.ok());
  Status st = blob->VerifyToEnd();
  EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  EXPECT_EQ(r->ReadBlob(im.layer_desc, 1 << 20).status().code(), Code::kCorruption);
}

TEST(OciLayoutTest, PathTraversalDigestIsRejected) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  WriteImage(dir, MakeImage(), "v1");
  WriteFile(dir + "/index.json",
            R"({"schemaVersion":2,"manifests":[{"mediaType":)"
            R"("application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../x",)"
            R"("size":10,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]})");
  Result<OciLayoutReader> r = OpenLayout(dir);
  ExpectRefused(r.status(), Code::kInvalidArgument, "digest");
}

TEST(OciLayoutTest, UnknownRefListsAvailableRefs) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  Result<OciLayoutReader> r = OpenTwoImageLayout(dir);
  ASSERT_TRUE(r.ok());
  Result<OciLayoutImage> im = r->FindImage("gamma");
  ExpectRefused(im.status(), Code::kNotFound, "alpha, beta");
}

TEST(OciLayoutTest, NoRefWithTwoImagesIsAmbiguous) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  Result<OciLayoutReader> r = OpenTwoImageLayout(dir);
  ASSERT_TRUE(r.ok());
  Result<OciResolvedImage> res = r->ResolveImage("");
  ExpectRefused(res.status(), Code::kInvalidArgument, "alpha, beta");
}

TEST(OciLayoutTest, WriterVerifiesDigests) {
  TempDir tmp;
  Result<OciLayoutWriter> w = OciLayoutWriter::Open(Env::Default(), tmp.Sub("layout"));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->PutBlob(Digest::Of("abc"), "abd").code(), Code::kCorruption);
  EXPECT_FALSE(Env::Default()->FileExists(tmp.Sub("layout/blobs/sha256/") +
                                          std::string(Digest::Of("abc").hex())));
  // An index entry for a manifest that is not written is refused.
  TestImage im = MakeImage();
  EXPECT_EQ(w->AddImage(im.manifest_desc, "v1").code(), Code::kFailedPrecondition);
  EXPECT_EQ(w->AddImage(im.manifest_desc, "bad ref").code(), Code::kInvalidArgument);
}

// A writer killed before it wrote oci-layout leaves its directory, maybe its dead temporary
// oci-layout file, and (older versions) an empty blobs/sha256/: the next writer takes it over.
// Anything else in a directory without oci-layout is not ours to write into.
TEST(OciLayoutTest, WriterTakesOverWhatAKilledWriterStartedButNothingElse) {
  TempDir tmp;
  Env* env = Env::Default();
  const std::string dir = tmp.Sub("killed");
  ASSERT_TRUE(env->CreateDirs(dir + "/blobs/sha256").ok());
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Result<TempFile> t = TempFile::Create(env, dir, ".oci-layout.tmp-");
    ::_exit(t.ok() && t->Append("{").ok() ? 0 : 1);  // no destructor runs: as if killed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  Result<OciLayoutWriter> w = OciLayoutWriter::Open(env, dir);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_TRUE(env->FileExists(dir + "/oci-layout"));
  EXPECT_EQ(env->ListDir(dir)->size(), 2u) << "oci-layout and blobs/ only";

  for (const char* foreign : {"notes.txt", "blobs/sha256/abc"}) {
    SCOPED_TRACE(foreign);
    const std::string other = tmp.Sub(std::string("other-") + (foreign[0] == 'n' ? "1" : "2"));
    ASSERT_TRUE(env->CreateDirs(other + "/blobs/sha256").ok());
    ASSERT_TRUE(env->WriteFileAtomically(other + "/" + foreign, "x").ok());
    Result<OciLayoutWriter> refused = OciLayoutWriter::Open(env, other);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), Code::kFailedPrecondition);
    EXPECT_NE(refused.status().message().find("is not an OCI layout"), std::string::npos);
    EXPECT_FALSE(env->FileExists(other + "/oci-layout"));
  }
}

TEST(OciLayoutTest, PutBlobFromStreamVerifiesAndLeavesNoTempFile) {
  TempDir tmp;
  const std::string dir = tmp.Sub("layout");
  Result<OciLayoutWriter> w = OciLayoutWriter::Open(Env::Default(), dir);
  ASSERT_TRUE(w.ok());
  const std::string src = tmp.Sub("src");
  const std::string data(3 * 1024 * 1024 + 5, 'q');  // several copy chunks
  WriteFile(src, data);
  Descriptor d = Desc(media_type::kOciLayerTar, data);

  Descriptor wrong_size = d;
  wrong_size.size -= 1;
  Result<std::unique_ptr<SequentialFile>> f = Env::Default()->NewSequentialFile(src);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(w->PutBlobFrom(wrong_size, f->get()).code(), Code::kCorruption);
  Descriptor wrong_digest = d;
  wrong_digest.digest = Digest::Of("other");
  f = Env::Default()->NewSequentialFile(src);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(w->PutBlobFrom(wrong_digest, f->get()).code(), Code::kCorruption);
  Result<std::vector<std::string>> names = Env::Default()->ListDir(dir + "/blobs/sha256");
  ASSERT_TRUE(names.ok());
  EXPECT_TRUE(names->empty()) << names->front();

  f = Env::Default()->NewSequentialFile(src);
  ASSERT_TRUE(f.ok());
  Status st = w->PutBlobFrom(d, f->get());
  ASSERT_TRUE(st.ok()) << st.ToString();
  names = Env::Default()->ListDir(dir + "/blobs/sha256");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{std::string(d.digest.hex())});
  EXPECT_EQ(ReadFile(dir + "/blobs/sha256/" + std::string(d.digest.hex())), data);
}

// ---------------------------------------------------------------------------------------------
// Interoperability with skopeo.

bool HaveSkopeo() { return std::system("command -v skopeo >/dev/null 2>&1") == 0; }

// Runs a shell command; returns its stdout and puts its exit status in *status.
std::string RunShell(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

TEST(OciLayoutSkopeoTest, SkopeoReadsWhatWeWrite) {
  if (!HaveSkopeo()) GTEST_SKIP() << "skopeo is not installed";
  TempDir tmp;
  const std::string dir = tmp.Sub("ours");
  TestImage im = MakeImage();
  WriteImage(dir, im, "v1");
  WriteImage(dir, MakeImage("other"), "v2");
  int status = 0;
  std::string raw = RunShell("skopeo inspect --raw oci:" + dir + ":v1", &status);
  ASSERT_EQ(status, 0);
  // skopeo prints the stored bytes, maybe followed by a newline.
  if (!raw.empty() && raw.back() == '\n' && im.manifest.back() != '\n') raw.pop_back();
  EXPECT_EQ(raw, im.manifest);
  std::string cfg = RunShell("skopeo inspect --config --raw oci:" + dir + ":v1", &status);
  ASSERT_EQ(status, 0);
  if (!cfg.empty() && cfg.back() == '\n') cfg.pop_back();
  EXPECT_EQ(cfg, im.config);
}

TEST(OciLayoutSkopeoTest, RefWithColonAndSlash) {
  if (!HaveSkopeo()) GTEST_SKIP() << "skopeo is not installed";
  TempDir tmp;
  const std::string dir = tmp.Sub("ours");
  TestImage im = MakeImage();
  WriteImage(dir, im, "example.com/app:1.0");
  Result<OciLayoutLocation> loc = ParseOciLayoutLocation("oci:" + dir + ":example.com/app:1.0");
  ASSERT_TRUE(loc.ok());
  EXPECT_EQ(loc->path, dir);
  // skopeo splits the same string the same way.
  int status = 0;
  std::string raw = RunShell("skopeo inspect --raw oci:" + dir + ":example.com/app:1.0", &status);
  ASSERT_EQ(status, 0);
  if (!raw.empty() && raw.back() == '\n') raw.pop_back();
  EXPECT_EQ(raw, im.manifest);
}

TEST(OciLayoutSkopeoTest, WeReadWhatSkopeoWrites) {
  if (!HaveSkopeo()) GTEST_SKIP() << "skopeo is not installed";
  TempDir tmp;
  const std::string a = tmp.Sub("a");
  const std::string b = tmp.Sub("b");
  TestImage im = MakeImage();
  WriteImage(a, im, "ref");
  int status = 0;
  RunShell("skopeo --insecure-policy copy -q oci:" + a + ":ref oci:" + b + ":ref2", &status);
  ASSERT_EQ(status, 0);

  Result<OciLayoutReader> r = OciLayoutReader::Open(Env::Default(), b);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Result<OciResolvedImage> res = r->ResolveImage("ref2");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->descriptor.digest, im.manifest_desc.digest);
  EXPECT_EQ(res->manifest_bytes, im.manifest);
  for (const Descriptor& d : res->manifest.layers) {
    Result<OciBlobReader> blob = r->OpenBlob(d);
    ASSERT_TRUE(blob.ok()) << blob.status().ToString();
    EXPECT_TRUE(blob->VerifyToEnd().ok());
  }
  EXPECT_TRUE(r->ReadBlob(res->manifest.config, 1 << 20).ok());

  // Our writer adds to skopeo's layout, and skopeo still reads both.
  TestImage other = MakeImage("other");
  WriteImage(b, other, "mine");
  std::string raw = RunShell("skopeo inspect --raw oci:" + b + ":mine", &status);
  ASSERT_EQ(status, 0);
  if (!raw.empty() && raw.back() == '\n') raw.pop_back();
  EXPECT_EQ(raw, other.manifest);
  RunShell("skopeo inspect --raw oci:" + b + ":ref2", &status);
  EXPECT_EQ(status, 0);
}

// umoci is a third writer and reader of layouts (it keeps a layout after each command).
TEST(OciLayoutUmociTest, BothDirections) {
  if (std::system("command -v umoci >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "umoci is not installed";
  }
  TempDir tmp;
  const std::string dir = tmp.Sub("umoci");
  int status = 0;
  RunShell("umoci init --layout " + dir + " && umoci new --image " + dir + ":made-by-umoci",
           &status);
  ASSERT_EQ(status, 0);
  Result<OciLayoutReader> r = OpenLayout(dir);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Result<OciResolvedImage> res = r->ResolveImage("made-by-umoci");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_TRUE(r->ReadBlob(res->manifest.config, 1 << 20).ok());

  WriteImage(dir, MakeImage(), "made-by-us");
  std::string refs = RunShell("umoci ls --layout " + dir, &status);
  ASSERT_EQ(status, 0);
  EXPECT_NE(refs.find("made-by-umoci"), std::string::npos) << refs;
  EXPECT_NE(refs.find("made-by-us"), std::string::npos) << refs;
  RunShell("umoci stat --image " + dir + ":made-by-us", &status);
  EXPECT_EQ(status, 0);
}

}  // namespace
}  // namespace imgstore::images
