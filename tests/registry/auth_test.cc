// The registry client's pure parts: WWW-Authenticate parsing, base64, auth files, credentials,
// loopback detection and origins (what decides where credentials may go); and the
// Authenticator's token cache against the suite's in-process TokenServer (no registry).
#include "registry/auth.h"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "common/temp_dir.h"
#include "common/token_server.h"
#include "registry/credentials.h"
#include "registry/http_client.h"
#include "registry/registry_client.h"

namespace imgstore::registry {
namespace {

using imgstore::testing::TempDir;
using imgstore::testing::TokenServer;
using imgstore::testing::TokenServerConfig;

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
  // An entry without "auth" and no helper is no credentials, not an error.
  c = LookupAuthFile(Write(R"({"auths": {"h": {}}})"), "h/a");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->has_value());
  // With a credsStore, the helper is asked; one that is not installed is named
  // (credentials_test has the helpers that are).
  c = LookupAuthFile(Write(R"({"auths": {"h": {}}, "credsStore": "imgstore-absent-helper"})"),
                     "h/a");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("docker-credential-imgstore-absent-helper"),
            std::string::npos)
      << c.status().message();
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

TEST(TokenQueryTest, OneScopeParameterPerScope) {
  EXPECT_EQ(TokenQuery("reg", "repository:a/b:pull"),
            "service=reg&scope=repository%3Aa%2Fb%3Apull");
  EXPECT_EQ(TokenQuery("my reg", "repository:a:pull,push  repository:c:pull"),
            "service=my%20reg&scope=repository%3Aa%3Apull%2Cpush&scope=repository%3Ac%3Apull");
  EXPECT_EQ(TokenQuery("reg", ""), "service=reg");  // a token for GET /v2/ alone
  EXPECT_EQ(TokenQuery("", "repository:a:pull"), "scope=repository%3Aa%3Apull");
}

// An Authenticator facing the TokenServer as a registry's challenge names it.
class TokenCache : public ::testing::Test {
 protected:
  void SetUp() override {
    TokenServerConfig c;
    c.users = {{"u", "pw"}};
    c.grants = {{"u", "*", {"pull", "push"}}};
    std::string error;
    ASSERT_TRUE(server_.Start(c, &error)) << error;
  }
  HttpResponse Challenge(const std::string& error = "") {
    HttpResponse r;
    r.status = 401;
    std::string v = "Bearer realm=\"" + server_.realm() + "\",service=\"imgstore-test-registry\"";
    if (!error.empty()) v += ",error=\"" + error + "\"";
    r.headers = {{"www-authenticate", v}};
    return r;
  }
  static constexpr const char* kScope = "repository:a/b:pull";
  TokenServer server_;
  HttpClient http_{HttpOptions{}};
};

TEST_F(TokenCache, RefusedCachedTokenIsReplacedOnce) {
  Authenticator a("reg:1", &http_, Credentials{"u", "pw"});
  EXPECT_EQ(a.AuthorizationFor(kScope), "");
  ASSERT_TRUE(a.OnUnauthorized(Challenge(), kScope).ok());
  const std::string first = a.AuthorizationFor(kScope);
  ASSERT_TRUE(first.starts_with("Bearer ey")) << first;
  EXPECT_EQ(a.AuthorizationFor(kScope), first);  // cached: served several requests
  EXPECT_EQ(server_.requests().size(), 1u);
  // The registry refuses it (expired or revoked early): a new token, once.
  ASSERT_TRUE(a.OnUnauthorized(Challenge("invalid_token"), kScope).ok());
  EXPECT_EQ(server_.requests().size(), 2u);
  const std::string second = a.AuthorizationFor(kScope);
  ASSERT_TRUE(second.starts_with("Bearer ")) << second;
  EXPECT_NE(second, first);
  // The new token lacks the scope (the registry says so): that is the error.
  Status s = a.OnUnauthorized(Challenge("insufficient_scope"), kScope);
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_EQ(s.message(),
            "registry reg:1: the token for repository:a/b:pull was refused (HTTP 401: "
            "insufficient scope)");
  EXPECT_EQ(server_.requests().size(), 2u);
  // insufficient_scope for a token that served requests: no new token would do better, and it
  // stays cached (good for what it grants).
  const std::string third = a.AuthorizationFor(kScope);
  EXPECT_EQ(third, second);
  s = a.OnUnauthorized(Challenge("insufficient_scope"), kScope);
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_EQ(a.AuthorizationFor(kScope), second);
  EXPECT_EQ(server_.requests().size(), 2u);
}

TEST_F(TokenCache, FreshTokenRefusedWithoutAReasonAsksWhy) {
  Authenticator a("reg:1", &http_, Credentials{"u", "pw"});
  ASSERT_TRUE(a.OnUnauthorized(Challenge(), kScope).ok());
  ASSERT_NE(a.AuthorizationFor(kScope), "");
  Status s = a.OnUnauthorized(Challenge(), kScope);
  EXPECT_EQ(s.message(),
            "registry reg:1: the token for repository:a/b:pull was refused (HTTP 401: "
            "insufficient scope?)");
  // Refused as invalid on its first use: asking again would give the same.
  ASSERT_TRUE(a.OnUnauthorized(Challenge(), kScope).ok());
  ASSERT_NE(a.AuthorizationFor(kScope), "");
  s = a.OnUnauthorized(Challenge("invalid_token"), kScope);
  EXPECT_EQ(s.message(),
            "registry reg:1: the token for repository:a/b:pull was refused (HTTP 401: "
            "invalid token)");
  EXPECT_EQ(server_.requests().size(), 2u);
  // Anonymous: the same, with how to give credentials.
  Authenticator anon("reg:1", &http_, std::nullopt);
  ASSERT_TRUE(anon.OnUnauthorized(Challenge(), kScope).ok());
  ASSERT_NE(anon.AuthorizationFor(kScope), "");
  s = anon.OnUnauthorized(Challenge("insufficient_scope"), kScope);
  EXPECT_NE(s.message().find("the anonymous token for repository:a/b:pull was refused (HTTP 401: "
                             "insufficient scope); give credentials with --creds"),
            std::string::npos)
      << s.message();
}

TEST_F(TokenCache, TokenExpiredByItsLifetimeIsRenewedWithoutARefusal) {
  // expires_in 2 s: the client drops it 1 s after receiving it (a margin of half the lifetime).
  server_.SetLifetime(std::chrono::seconds(2));
  Authenticator a("reg:1", &http_, Credentials{"u", "pw"});
  ASSERT_TRUE(a.OnUnauthorized(Challenge(), kScope).ok());
  ASSERT_NE(a.AuthorizationFor(kScope), "");  // used once
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (a.AuthorizationFor(kScope) != "" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(a.AuthorizationFor(kScope), "");
  // The request sent without it gets a 401: a new token, not "refused".
  ASSERT_TRUE(a.OnUnauthorized(Challenge(), kScope).ok());
  EXPECT_NE(a.AuthorizationFor(kScope), "");
  EXPECT_EQ(server_.RequestsFor(kScope), 2);
}

TEST_F(TokenCache, TokenServerRefusals) {
  Authenticator wrong("reg:1", &http_, Credentials{"u", "not-pw-123"});
  Status s = wrong.OnUnauthorized(Challenge(), kScope);
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_EQ(s.message(), "registry reg:1: token server " + server_.realm() +
                             " refused repository:a/b:pull for user \"u\" (HTTP 401)");
  s = wrong.OnUnauthorized(Challenge(), "");
  EXPECT_EQ(s.message(), "registry reg:1: token server " + server_.realm() +
                             " refused the credentials of user \"u\" (HTTP 401)");
  EXPECT_EQ(s.message().find("not-pw-123"), std::string::npos);
  // Credentials never go over plain http to another host.
  Authenticator a("reg:1", &http_, Credentials{"u", "pw"});
  HttpResponse far;
  far.status = 401;
  far.headers = {{"www-authenticate", R"(Bearer realm="http://auth.example.invalid/token")"}};
  s = a.OnUnauthorized(far, kScope);
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_NE(s.message().find("does not send credentials over plain http"), std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace imgstore::registry
