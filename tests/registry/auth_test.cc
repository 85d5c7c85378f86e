// The registry client's pure parts: WWW-Authenticate parsing, base64, auth files, credentials,
// loopback detection and origins (what decides where credentials may go).
#include "registry/auth.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/temp_dir.h"
#include "registry/credentials.h"
#include "registry/http_client.h"
#include "registry/registry_client.h"

namespace imgstore::registry {
namespace {

using imgstore::testing::TempDir;

TEST(Challenges, BearerWithQuotedParams) {
  std::vector<Challenge> c = ParseChallenges(
      {R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
       R"(scope="repository:samalba/my-app:pull,push")"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(c[0].params["service"], "registry.docker.io");
  EXPECT_EQ(c[0].params["scope"], "repository:samalba/my-app:pull,push");
}

TEST(Challenges, BasicAndSeveralAndMalformed) {
  std::vector<Challenge> c = ParseChallenges({R"(Basic realm="imgstore-test")", "Negotiate",
                                              R"(Bearer realm="x\"y", error=invalid_token)"});
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params["realm"], "imgstore-test");
  EXPECT_EQ(c[1].scheme, "negotiate");
  EXPECT_EQ(c[2].params["realm"], "x\"y");
  EXPECT_EQ(c[2].params["error"], "invalid_token");
  EXPECT_TRUE(ParseChallenges({""}).empty());
  // An unterminated quote does not crash nor loop.
  c = ParseChallenges({R"(Bearer realm="oops)"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].params.count("realm"), 0u);
}

TEST(Base64, RoundTripsAndRejectsGarbage) {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "user:p@ss:word",
                                                       std::string("\0\xff\x10", 3)}) {
    std::optional<std::string> back = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(back.has_value()) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64Encode("tester:pw"), "dGVzdGVyOnB3");
  EXPECT_FALSE(Base64Decode("abc").has_value());
  EXPECT_FALSE(Base64Decode("ab!d").has_value());
  EXPECT_FALSE(Base64Decode("a=bc").has_value());
}

TEST(Credentials, ParseNeverQuotesTheSecret) {
  Result<Credentials> c = ParseCredentials("u:pa:ss");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->username, "u");
  EXPECT_EQ(c->password, "pa:ss");
  Result<Credentials> bad = ParseCredentials("justasecret");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find("justasecret"), std::string::npos);
  EXPECT_FALSE(ParseCredentials(":pw").ok());
}

class AuthFile : public ::testing::Test {
 protected:
  std::string Write(const std::string& content) {
    std::string path = dir_.Sub("auth.json");
    std::ofstream(path) << content;
    return path;
  }
  TempDir dir_;
};

TEST_F(AuthFile, LongestMatchingKeyWins) {
  const std::string path = Write(R"({"auths": {
      "127.0.0.1:5000": {"auth": ")" +
                                 Base64Encode("host:h") + R"("},
      "127.0.0.1:5000/team": {"auth": ")" +
                                 Base64Encode("team:t") + R"("},
      "https://index.docker.io/v1/": {"auth": ")" +
                                 Base64Encode("hub:d") + R"("}}})");
  auto user = [&](const std::string& repo) -> std::string {
    Result<std::optional<Credentials>> c = LookupAuthFile(path, repo);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() && c->has_value() ? (*c)->username : "";
  };
  EXPECT_EQ(user("127.0.0.1:5000/a/b"), "host");
  EXPECT_EQ(user("127.0.0.1:5000/team/app"), "team");
  EXPECT_EQ(user("127.0.0.1:5000/teamx/app"), "host");  // a path prefix, not a string prefix
  EXPECT_EQ(user("docker.io/library/alpine"), "hub");
  EXPECT_EQ(user("quay.io/a/b"), "");
}

TEST_F(AuthFile, ErrorsNameTheFileNotTheSecret) {
  Result<std::optional<Credentials>> c = LookupAuthFile(dir_.Sub("missing.json"), "h/a");
  EXPECT_EQ(c.status().code(), Code::kNotFound);
  c = LookupAuthFile(Write("{not json"), "h/a");
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
  c = LookupAuthFile(Write(R"({"auths": {"h": {"auth": "c2VjcmV0"}}})"), "h/a");  // "secret"
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().find("secret"), std::string::npos) << c.status().message();
  EXPECT_EQ(c.status().message().find("c2VjcmV0"), std::string::npos);
  // An entry for a credential helper (no "auth") is no credentials, not an error.
  c = LookupAuthFile(Write(R"({"auths": {"h": {}}, "credsStore": "desktop"})"), "h/a");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->has_value());
}

TEST(Hosts, LoopbackAsDockerDefinesIt) {
  for (const char* h : {"localhost", "localhost:5000", "LOCALHOST:1", "127.0.0.1:5000", "127.1.2.3",
                        "[::1]:5000"}) {
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  }
  for (const char* h : {"example.com", "127.0.0.1.example.com:5000", "128.0.0.1", "[::2]:5000",
                        "localhost.example.com"}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
}

TEST(Hosts, OriginDecidesWhereAuthorizationGoes) {
  EXPECT_EQ(OriginOf("https://Reg.example.com/v2/a/blobs/x"), "https://reg.example.com:443");
  EXPECT_EQ(OriginOf("http://127.0.0.1:5000/v2/"), "http://127.0.0.1:5000");
  EXPECT_NE(OriginOf("https://reg.example.com/v2/"), OriginOf("https://s3.example.com/b"));
  EXPECT_NE(OriginOf("https://reg.example.com/v2/"), OriginOf("http://reg.example.com/v2/"));
  EXPECT_EQ(OriginOf("not a url"), "");
}

TEST(Authenticator, BasicOnlyAfterAChallengeAndRefusalIsNamed) {
  HttpClient http{HttpOptions{}};
  Authenticator a("reg:1", &http, Credentials{"u", "topsecret"});
  EXPECT_EQ(a.AuthorizationFor("repository:a:pull"), "");  // anonymous until challenged
  HttpResponse r;
  r.status = 401;
  r.headers = {{"www-authenticate", R"(Basic realm="x")"}};
  ASSERT_TRUE(a.OnUnauthorized(r, "repository:a:pull").ok());
  EXPECT_EQ(a.AuthorizationFor("repository:a:pull"), "Basic " + Base64Encode("u:topsecret"));
  Status again = a.OnUnauthorized(r, "repository:a:pull");
  EXPECT_EQ(again.code(), Code::kPermissionDenied);
  EXPECT_NE(again.message().find("rejected"), std::string::npos);
  EXPECT_EQ(again.message().find("topsecret"), std::string::npos);
  Authenticator anon("reg:1", &http, std::nullopt);
  Status none = anon.OnUnauthorized(r, "repository:a:pull");
  EXPECT_NE(none.message().find("authentication required"), std::string::npos);
}

}  // namespace
}  // namespace imgstore::registry
