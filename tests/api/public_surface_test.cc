// The parts of the public API that the CLI's move onto it added (issue 6): the parsers of
// parse.hpp, login and logout (registry.hpp), and Store::Exists, ListLocks, Resolve, Df, the
// pull's on_blobs, unpack without the cache, and the new fields of mounts and commits. Each has
// its happy path and its errors; the CLI tests cover the same paths through the command.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/fs_tree.h"
#include "common/temp_dir.h"
#include "common/test_image.h"
#include "imgstore/parse.hpp"
#include "imgstore/registry.hpp"
#include "imgstore/store.hpp"

namespace imgstore::testing {
namespace {

TEST(PublicParseTest, ReferencesAreNormalized) {
  Result<Reference> r = ParseReference("alpine");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->domain, "docker.io");
  EXPECT_EQ(r->path, "library/alpine");
  EXPECT_EQ(r->tag, "");
  EXPECT_EQ(r->digest, "");
  EXPECT_EQ(r->name, "docker.io/library/alpine");
  EXPECT_EQ(r->repository, "docker.io/library/alpine");
  EXPECT_EQ(r->familiar, "alpine");
  EXPECT_EQ(r->familiar_repository, "alpine");

  const std::string digest = "sha256:" + std::string(64, 'a');
  r = ParseReference("localhost:5000/team/app:1.0@" + digest);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->domain, "localhost:5000");
  EXPECT_EQ(r->tag, "1.0");
  EXPECT_EQ(r->digest, digest);
  EXPECT_EQ(r->repository, "localhost:5000/team/app");
  EXPECT_EQ(r->familiar_repository, "localhost:5000/team/app");

  for (const char* bad : {"", "UPPER/case", "a:b:c", "name@sha256:short"}) {
    Result<Reference> e = ParseReference(bad);
    EXPECT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.status().code(), Code::kInvalidArgument) << bad;
  }
}

TEST(PublicParseTest, PlatformsCredentialsTransportsDurationsDigests) {
  Result<Platform> p = ParsePlatform("linux/arm/v7");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->os, "linux");
  EXPECT_EQ(p->architecture, "arm");
  EXPECT_EQ(p->variant, "v7");
  EXPECT_EQ(ParsePlatform("linux").status().code(), Code::kInvalidArgument);

  Result<Credentials> c = ParseCredentials("user:pa:ss");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->username, "user");
  EXPECT_EQ(c->password, "pa:ss");
  Result<Credentials> no_colon = ParseCredentials("secretword");
  EXPECT_EQ(no_colon.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(no_colon.status().message().find("secretword"), std::string::npos);
  EXPECT_FALSE(ParseCredentials(":pw").ok());

  Result<TransportSpec> t = ParseTransport("oci:/srv/layout:v1");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->transport, "oci");
  EXPECT_EQ(t->rest, "/srv/layout:v1");
  t = ParseTransport("docker://example.com/a:1");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->transport, "docker");
  EXPECT_EQ(t->rest, "example.com/a:1");
  EXPECT_EQ(ParseTransport("example.com/a:1")->transport, "docker");
  EXPECT_EQ(ParseTransport("bogus:/x").status().code(), Code::kInvalidArgument);

  Result<std::chrono::nanoseconds> d = ParseDuration("1m30s");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, std::chrono::seconds(90));
  EXPECT_EQ(*ParseDuration("0"), std::chrono::nanoseconds(0));
  EXPECT_EQ(ParseDuration("10 parsecs").status().code(), Code::kInvalidArgument);
  // FormatDuration is ParseDuration's way back, for the tables the CLI prints.
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(850)), "850ms");
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(12400)), "12.4s");
  EXPECT_EQ(FormatDuration(std::chrono::seconds(200)), "3m20s");
  EXPECT_EQ(FormatDuration(std::chrono::minutes(125)), "2h5m");
  EXPECT_EQ(*ParseDuration(FormatDuration(std::chrono::seconds(200))), std::chrono::seconds(200));
  EXPECT_FALSE(ParseDuration("-1s").ok());

  EXPECT_TRUE(IsDigest("sha256:" + std::string(64, '0')));
  EXPECT_FALSE(IsDigest("sha256:" + std::string(63, '0')));
  EXPECT_FALSE(IsDigest("sha256:" + std::string(64, 'G')));
  EXPECT_FALSE(IsDigest("alpine"));
}

// Sets an environment variable for the scope (unset when value is nullopt), then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(PublicRegistryTest, KeysAndTheDefaultAuthFile) {
  EXPECT_EQ(*RegistryKey("127.0.0.1:5000"), "127.0.0.1:5000");
  EXPECT_EQ(*RegistryKey("https://127.0.0.1:5000/"), "127.0.0.1:5000");
  EXPECT_EQ(*RegistryKey("docker://example.com/team"), "example.com/team");
  for (const char* bad : {"", "a b", "user@host", "example.com/app:1"}) {
    Result<std::string> k = RegistryKey(bad);
    EXPECT_EQ(k.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(k.status().message().find("invalid registry"), std::string::npos) << bad;
  }

  ScopedEnv file("REGISTRY_AUTH_FILE", "/tmp/x/auth.json");
  EXPECT_EQ(*DefaultAuthFile(), "/tmp/x/auth.json");
  ScopedEnv no_file("REGISTRY_AUTH_FILE", std::nullopt);
  ScopedEnv no_runtime("XDG_RUNTIME_DIR", std::nullopt);
  ScopedEnv no_home("HOME", std::nullopt);
  Result<std::string> none = DefaultAuthFile();
  EXPECT_EQ(none.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(Logout("example.com").status().code(), Code::kFailedPrecondition);
}

TEST(PublicRegistryTest, LogoutRemovesEntries) {
  TempDir dir;
  const std::string file = dir.Sub("auth.json");
  std::ofstream(file) << R"({"auths": {"127.0.0.1:5000": {"auth": "dTpw"},)"
                      << R"( "example.com": {"auth": "dTpw"}}, "other": 1})";
  Result<bool> removed = Logout("https://127.0.0.1:5000/", file);
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_TRUE(*removed);
  removed = Logout("127.0.0.1:5000", file);
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_FALSE(*removed);
  EXPECT_EQ(Logout("a b", file).status().code(), Code::kInvalidArgument);
  Result<size_t> all = LogoutAll(file);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(*all, 1u);
  EXPECT_NE(ReadFile(file).find("\"other\""), std::string::npos);  // other keys stay
  // A file that is not JSON is an error naming the registry, and it is left as it was.
  std::ofstream(dir.Sub("bad.json")) << "not json";
  Result<bool> bad = Logout("example.com", dir.Sub("bad.json"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("logout example.com"), std::string::npos)
      << bad.status().message();
  EXPECT_EQ(ReadFile(dir.Sub("bad.json")), "not json");
}

TEST(PublicRegistryTest, LoginChecksBeforeWriting) {
  TempDir dir;
  RegistryOptions options;
  options.auth_file = dir.Sub("auth.json");
  options.tls_verify = false;
  options.retry_times = 0;
  EXPECT_EQ(Login("a b", {"u", "p"}, options).code(), Code::kInvalidArgument);
  EXPECT_EQ(Login("127.0.0.1:1", {"u:v", "p"}, options).code(), Code::kInvalidArgument);
  EXPECT_EQ(Login("127.0.0.1:1", {"u", ""}, options).code(), Code::kInvalidArgument);
  options.retry_delay = std::chrono::milliseconds(-1);
  EXPECT_EQ(Login("127.0.0.1:1", {"u", "p"}, options).code(), Code::kInvalidArgument);
  options.retry_delay.reset();
  // Nothing listens on port 1: the error names the registry, never the password.
  Status s = Login("127.0.0.1:1", {"u", "secret-pw"}, options);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("login 127.0.0.1:1"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("secret-pw"), std::string::npos) << s.message();
  EXPECT_FALSE(Exists(options.auth_file));
}

class PublicStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestImageSpec spec;
    spec.seed = 71;
    image_ = MakeTestImage(spec);
    WriteOciLayout(image_, dir_.Sub("layout"), "v1");
    source_ = "oci:" + dir_.Sub("layout") + ":v1";
  }

  std::unique_ptr<Store> Open() {
    Result<std::unique_ptr<Store>> s = Store::Open(dir_.Sub("root"));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  TempDir dir_;
  TestImage image_;
  std::string source_;
};

TEST_F(PublicStoreTest, ExistsWithoutCreating) {
  Result<bool> e = Store::Exists(dir_.Sub("root"));
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_FALSE(*e);
  EXPECT_FALSE(Exists(dir_.Sub("root")));             // nothing was created
  EXPECT_FALSE(*Store::Exists("/proc/self/status"));  // under a file: no store either
  Result<bool> too_long = Store::Exists("/" + std::string(5000, 'x'));
  EXPECT_FALSE(too_long.ok());
  ASSERT_NE(Open(), nullptr);
  EXPECT_TRUE(*Store::Exists(dir_.Sub("root")));
}

TEST_F(PublicStoreTest, ListLocksWithoutOpening) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Result<LocksReport> idle = Store::ListLocks(dir_.Sub("root"), /*all=*/false);
  ASSERT_TRUE(idle.ok()) << idle.status().ToString();
  for (const LockEntry& l : idle->locks) EXPECT_FALSE(l.holders.empty() && l.waiters.empty());
  EXPECT_FALSE(Store::ListLocks("/proc/self/status", false).ok());
}

TEST_F(PublicStoreTest, ResolveDfAndOnBlobs) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Result<DiskUsage> empty = store->Df();
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->images, 0u);
  EXPECT_EQ(empty->blob_bytes, 0u);
  EXPECT_EQ(store->Resolve("example.com/app:1").status().code(), Code::kNotFound);
  EXPECT_EQ(store->Resolve("Bad!").status().code(), Code::kInvalidArgument);

  PullOptions options;
  options.names = {"example.com/app:1"};
  int on_blobs_calls = 0;
  size_t expected_blobs = 0;
  uint64_t expected_bytes = 0;
  options.on_blobs = [&](size_t blobs, uint64_t bytes) {
    ++on_blobs_calls;
    expected_blobs = blobs;
    expected_bytes = bytes;
  };
  std::set<std::string> reported;
  uint64_t reported_bytes = 0;
  options.on_progress = [&](const Progress& p) {
    if (p.done == p.total && reported.insert(p.digest).second) reported_bytes += p.total;
  };
  Result<PullResult> pulled = store->Pull(source_, options);
  ASSERT_TRUE(pulled.ok()) << pulled.status().ToString();
  EXPECT_EQ(on_blobs_calls, 1);
  EXPECT_EQ(expected_blobs, image_.layers.size() + 1);  // the config and the layers
  EXPECT_EQ(expected_blobs, reported.size());
  EXPECT_EQ(expected_bytes, reported_bytes);

  Result<std::string> id = store->Resolve("example.com/app:1");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, image_.id.ToString());
  EXPECT_EQ(*store->Resolve(id->substr(7, kMinIdPrefix)), *id);
  EXPECT_EQ(*store->Resolve(image_.manifest_digest.ToString()), *id);

  Result<std::vector<ImageSummary>> list = store->List();
  ASSERT_TRUE(list.ok() && list->size() == 1);
  EXPECT_EQ((*list)[0].created.empty(), (*list)[0].created_unix_ns == 0);

  Result<DiskUsage> used = store->Df();
  ASSERT_TRUE(used.ok()) << used.status().ToString();
  EXPECT_EQ(used->images, 1u);
  EXPECT_EQ(used->blobs, image_.layers.size() + 2);  // and the manifest
  EXPECT_GT(used->blob_bytes, 0u);
  EXPECT_EQ(used->reclaimable_bytes, 0u);
  ASSERT_TRUE(store->Remove("example.com/app:1").ok());
  Result<DiskUsage> after = store->Df();
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->images, 0u);
  EXPECT_EQ(after->reclaimable_blobs, used->blobs);
  EXPECT_EQ(after->reclaimable_bytes, used->blob_bytes);
}

TEST_F(PublicStoreTest, UnpackWithoutCacheMountLayersAndCommitLayer) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  PullOptions po;
  po.names = {"example.com/app:1"};
  ASSERT_TRUE(store->Pull(source_, po).ok());

  UnpackOptions uo;
  uo.use_cache = false;
  Result<UnpackResult> u = store->Unpack("example.com/app:1", dir_.Sub("rootfs"), uo);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->layers, static_cast<int>(image_.layers.size()));
  EXPECT_EQ(store->Df()->layers, 0u);  // the cache was left as it was
  EXPECT_FALSE(store->Unpack("example.com/app:1", dir_.Sub("rootfs"), uo).ok());  // exists

  MountOptions mo;
  mo.kind = "copy";
  mo.name = "m1";
  Result<MountInfo> m = store->Mount("example.com/app:1", mo);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->manifest_digest, image_.manifest_digest.ToString());
  ASSERT_EQ(m->layers.size(), image_.layers.size());
  for (const std::string& chain : m->layers) EXPECT_TRUE(IsDigest(chain)) << chain;
  EXPECT_EQ(store->Mount("example.com/app:1", mo).status().code(), Code::kAlreadyExists);
  // A mount without changes: no layer, and the fields say so.
  Result<CommitResult> same = store->Commit("m1");
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_EQ(same->layer_digest, "");
  EXPECT_EQ(same->diff_id, "");
  EXPECT_EQ(same->layer_size, 0u);
  ASSERT_TRUE(store->Unmount("m1").ok());

  std::ofstream(dir_.Sub("rootfs/new-file")) << "changed";
  CommitOptions co;
  co.names = {"example.com/app:2"};
  Result<CommitResult> c = store->Commit(dir_.Sub("rootfs"), "example.com/app:1", co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(IsDigest(c->layer_digest));
  EXPECT_TRUE(IsDigest(c->diff_id));
  EXPECT_GT(c->layer_size, 0u);
}

}  // namespace
}  // namespace imgstore::testing
