// Tests of image reference parsing and normalization: tables of valid and invalid references
// drawn from docker's and distribution/reference's behaviour, plus round trips of the forms.
#include "images/reference.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace imgstore::images {
namespace {

const std::string kHex(64, 'a');
const std::string kHex2 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string kDigest = "sha256:" + kHex;

struct Valid {
  std::string input;
  std::string string;    // String()
  std::string familiar;  // Familiar()
};

std::vector<Valid> ValidCases() {
  const std::string tag128(128, 't');
  const std::string sha512 = "sha512:" + std::string(128, 'b');
  // docker.io/library/ is 18 characters: a 237-character name makes 255 in all.
  const std::string name237(237, 'n');
  return {
      // Docker Hub official images get docker.io/library/.
      {"alpine", "docker.io/library/alpine", "alpine"},
      {"alpine:latest", "docker.io/library/alpine:latest", "alpine:latest"},
      {"alpine:3.19", "docker.io/library/alpine:3.19", "alpine:3.19"},
      {"library/alpine", "docker.io/library/alpine", "alpine"},
      {"docker.io/alpine", "docker.io/library/alpine", "alpine"},
      {"docker.io/library/alpine:edge", "docker.io/library/alpine:edge", "alpine:edge"},
      {"index.docker.io/x", "docker.io/library/x", "x"},
      {"index.docker.io/user/x:1", "docker.io/user/x:1", "user/x:1"},
      {"docker.io", "docker.io/library/docker.io", "docker.io"},
      {"foo.bar", "docker.io/library/foo.bar", "foo.bar"},
      {"a", "docker.io/library/a", "a"},
      {"0", "docker.io/library/0", "0"},
      // User repositories keep their path as written.
      {"user/app", "docker.io/user/app", "user/app"},
      {"user/app:tag", "docker.io/user/app:tag", "user/app:tag"},
      {"docker.io/foo/bar", "docker.io/foo/bar", "foo/bar"},
      {"docker.io/library/a/b", "docker.io/library/a/b", "library/a/b"},
      {"a/b/c/d/e", "docker.io/a/b/c/d/e", "a/b/c/d/e"},
      {"foo_bar/baz__qux/a-b---c/d.e", "docker.io/foo_bar/baz__qux/a-b---c/d.e",
       "foo_bar/baz__qux/a-b---c/d.e"},
      // docker's Familiar() would print "foo.bar/x", which is another registry's name.
      {"docker.io/foo.bar/x", "docker.io/foo.bar/x", "docker.io/foo.bar/x"},
      {"docker.io/localhost/x", "docker.io/localhost/x", "docker.io/localhost/x"},
      // Other registries.
      {"localhost/x", "localhost/x", "localhost/x"},
      {"localhost:5000/x", "localhost:5000/x", "localhost:5000/x"},
      {"localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"},
      {"LOCALHOST/x", "localhost/x", "localhost/x"},
      {"localhost:65535/x", "localhost:65535/x", "localhost:65535/x"},
      {"registry.example.com/x", "registry.example.com/x", "registry.example.com/x"},
      {"registry.example.com:443/team/app:v1", "registry.example.com:443/team/app:v1",
       "registry.example.com:443/team/app:v1"},
      {"Registry.Example.COM/x", "registry.example.com/x", "registry.example.com/x"},
      {"my-registry:5000/x", "my-registry:5000/x", "my-registry:5000/x"},
      {"127.0.0.1:5000/x:1", "127.0.0.1:5000/x:1", "127.0.0.1:5000/x:1"},
      {"[::1]:5000/x", "[::1]:5000/x", "[::1]:5000/x"},
      {"[::1]/x", "[::1]/x", "[::1]/x"},
      {"[2001:DB8::1]/foo/bar:tag", "[2001:db8::1]/foo/bar:tag", "[2001:db8::1]/foo/bar:tag"},
      // A bare name with a colon is a name and a tag, never a domain and port.
      {"localhost", "docker.io/library/localhost", "localhost"},
      {"localhost:5000", "docker.io/library/localhost:5000", "localhost:5000"},
      // Tags: [\w][\w.-]{0,127}; uppercase is allowed in tags.
      {"alpine:" + tag128, "docker.io/library/alpine:" + tag128, "alpine:" + tag128},
      {"alpine:_x", "docker.io/library/alpine:_x", "alpine:_x"},
      {"alpine:V1.0-rc_1", "docker.io/library/alpine:V1.0-rc_1", "alpine:V1.0-rc_1"},
      // Digests, alone or with a tag (both kept).
      {"alpine@" + kDigest, "docker.io/library/alpine@" + kDigest, "alpine@" + kDigest},
      {"alpine:3.19@" + kDigest, "docker.io/library/alpine:3.19@" + kDigest,
       "alpine:3.19@" + kDigest},
      {"localhost:5000/a@" + kDigest, "localhost:5000/a@" + kDigest, "localhost:5000/a@" + kDigest},
      {"quay.io/a/b:t@" + sha512, "quay.io/a/b:t@" + sha512, "quay.io/a/b:t@" + sha512},
      // Only a bare 64-hex string reads as an image ID; with a tag, or shorter, it is a name.
      {kHex + ":tag", "docker.io/library/" + kHex + ":tag", kHex + ":tag"},
      {kHex.substr(1), "docker.io/library/" + kHex.substr(1), kHex.substr(1)},
      {name237, "docker.io/library/" + name237, name237},
  };
}

TEST(ReferenceTest, ValidReferences) {
  const std::vector<Valid> cases = ValidCases();
  for (const Valid& c : cases) {
    SCOPED_TRACE(c.input);
    Result<Reference> ref = ParseReference(c.input);
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    EXPECT_EQ(ref->String(), c.string);
    EXPECT_EQ(ref->Familiar(), c.familiar);
    // Both forms parse back to the same reference.
    Result<Reference> from_string = ParseReference(ref->String());
    ASSERT_TRUE(from_string.ok()) << from_string.status().ToString();
    EXPECT_EQ(*from_string, *ref);
    Result<Reference> from_familiar = ParseReference(ref->Familiar());
    ASSERT_TRUE(from_familiar.ok()) << from_familiar.status().ToString();
    EXPECT_EQ(*from_familiar, *ref);
  }
  EXPECT_GE(cases.size(), 40u);
}

struct Invalid {
  std::string input;
  std::string reason;  // the message is: invalid reference "<input>": <reason...>
};

std::vector<Invalid> InvalidCases() {
  const std::string tag129(129, 't');
  const std::string name238(238, 'n');
  return {
      {"", "empty reference"},
      {"UPPER/case", "repository name must be lowercase"},
      {"UPPER/case:tag", "repository name must be lowercase"},
      {"Alpine", "repository name must be lowercase"},
      {"docker.io/Foo/bar", "repository name must be lowercase"},
      {"localhost:5000/Foo", "repository name must be lowercase"},
      {"a:b:c", "invalid character \":\" in repository name \"a:b\""},
      {"foo/bar:tag/x", "invalid character \":\""},
      {"alpine:" + tag129, "tag must be at most 128 characters, got 129"},
      {"alpine:", "empty tag after ':'"},
      {"alpine:-tag", "tag must start with a letter, digit or '_'"},
      {"alpine:.tag", "tag must start with a letter, digit or '_'"},
      {"alpine:ta+g", "invalid character \"+\" in tag"},
      {"alpine@sha256:abc", "sha256 needs 64 hex characters, got 3"},
      {"alpine@sha256:" + std::string(64, 'A'), "hex must be lowercase"},
      {"alpine@sha256:" + std::string(63, 'a') + "z", "not a hex string"},
      {"alpine@md5:" + std::string(32, 'a'), "unsupported digest algorithm \"md5\""},
      {"alpine@SHA256:" + kHex, "malformed algorithm"},
      {"alpine@sha512:" + kHex, "sha512 needs 128 hex characters, got 64"},
      {"alpine@" + kHex, "want <algorithm>:<hex>"},
      {"alpine@", "want <algorithm>:<hex>"},
      {"alpine@" + kDigest + "@" + kDigest, "not a hex string"},
      {"-leading", "must start and end with a lowercase letter or digit"},
      {"trailing-", "must start and end with a lowercase letter or digit"},
      {"a/_b", "must start and end with a lowercase letter or digit"},
      {"a..b", "invalid separator \"..\""},
      {"a___b", "invalid separator \"___\""},
      {"a._b", "invalid separator \"._\""},
      {"a-.b", "invalid separator \"-.\""},
      {"a//b", "empty path component"},
      {"a/", "repository name must not end with '/'"},
      {"/a", "repository name must not start with '/'"},
      {":tag", "missing repository name"},
      {"@" + kDigest, "missing repository name"},
      {":tag@" + kDigest, "missing repository name"},
      {"alpine ", "invalid character \" \""},
      {" alpine", "invalid character \" \""},
      {"alpine:latest ", "invalid character \" \" in tag"},
      {"al pine", "invalid character \" \""},
      {kHex, "cannot specify 64-byte hexadecimal strings"},
      {kHex2, "cannot specify 64-byte hexadecimal strings"},
      {"https://registry.example.com/x", "a reference has no URL scheme (drop \"https://\")"},
      {"localhost:/x", "empty port in domain \"localhost:\""},
      {"localhost:abc/x", "invalid port in domain \"localhost:abc\""},
      {"localhost:65536/x", "port out of range"},
      {"localhost:0/x", "port out of range"},
      {"[::1/x", "unterminated IPv6 address"},
      {"[]:5000/x", "empty IPv6 address"},
      {"[::g]/x", "invalid IPv6 address"},
      {"[::1]x:5/y", "unexpected text after IPv6 address"},
      {"-example.com/x", "invalid domain \"-example.com\""},
      {"example..com/x", "invalid domain \"example..com\""},
      {"example.com./x", "invalid domain"},
      {"ex_ample.com/x", "invalid domain"},
      {"example.com/", "missing repository name after the domain"},
      {"localhost/", "missing repository name after the domain"},
      {name238, "repository name must not be more than 255 characters, got 256"},
      {"registry.example.com/" + std::string(235, 'x'),
       "repository name must not be more than 255 characters, got 256"},
  };
}

TEST(ReferenceTest, InvalidReferences) {
  const std::vector<Invalid> cases = InvalidCases();
  for (const Invalid& c : cases) {
    SCOPED_TRACE(c.input);
    Result<Reference> ref = ParseReference(c.input);
    ASSERT_FALSE(ref.ok()) << "parsed as " << ref->String();
    EXPECT_EQ(ref.status().code(), Code::kInvalidArgument);
    const std::string& msg = ref.status().message();
    EXPECT_TRUE(msg.starts_with("invalid reference \"")) << msg;
    EXPECT_NE(msg.find(c.reason), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_GE(cases.size(), 40u);
}

TEST(ReferenceTest, ExactMessages) {
  EXPECT_EQ(ParseReference("UPPER/case").status().message(),
            "invalid reference \"UPPER/case\": repository name must be lowercase");
  EXPECT_EQ(ParseReference("").status().message(), "invalid reference \"\": empty reference");
  EXPECT_EQ(ParseReference(kHex).status().message(),
            "invalid reference \"" + kHex + "\": cannot specify 64-byte hexadecimal strings");
}

TEST(ReferenceTest, ControlCharactersAreEscaped) {
  Result<Reference> ref = ParseReference("alpine\n");
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.status().message(),
            "invalid reference \"alpine\\n\": invalid character \"\\n\" in repository name "
            "\"alpine\\n\"");
}

TEST(ReferenceTest, DigestAlgorithmErrorIsInvalidArgument) {
  // Digest::Parse says kUnsupported; as a reference, the input is simply not one we accept.
  Result<Reference> ref = ParseReference("alpine@md5:" + std::string(32, 'a'));
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.status().code(), Code::kInvalidArgument);
}

TEST(ReferenceTest, Fields) {
  Result<Reference> ref = ParseReference("localhost:5000/a/b:t@" + kDigest);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_EQ(ref->domain, "localhost:5000");
  EXPECT_EQ(ref->path, "a/b");
  EXPECT_EQ(ref->tag, "t");
  ASSERT_TRUE(ref->digest.has_value());
  EXPECT_EQ(ref->digest->ToString(), kDigest);
  EXPECT_EQ(ref->Repository(), "localhost:5000/a/b");
  EXPECT_EQ(ref->FamiliarRepository(), "localhost:5000/a/b");

  Result<Reference> alpine = ParseReference("alpine");
  ASSERT_TRUE(alpine.ok());
  EXPECT_EQ(alpine->domain, "docker.io");
  EXPECT_EQ(alpine->path, "library/alpine");
  EXPECT_FALSE(alpine->tag.has_value());
  EXPECT_FALSE(alpine->digest.has_value());
  EXPECT_EQ(alpine->Repository(), "docker.io/library/alpine");
  EXPECT_EQ(alpine->FamiliarRepository(), "alpine");

  Result<Reference> ipv6 = ParseReference("[::1]:5000/x");
  ASSERT_TRUE(ipv6.ok());
  EXPECT_EQ(ipv6->domain, "[::1]:5000");
  EXPECT_EQ(ipv6->path, "x");
}

TEST(ReferenceTest, WithDefaultTag) {
  EXPECT_EQ(ParseReference("alpine")->WithDefaultTag().String(), "docker.io/library/alpine:latest");
  EXPECT_EQ(ParseReference("alpine")->WithDefaultTag().Familiar(), "alpine:latest");
  EXPECT_EQ(ParseReference("user/app")->WithDefaultTag().String(), "docker.io/user/app:latest");
  EXPECT_EQ(ParseReference("alpine:3")->WithDefaultTag().String(), "docker.io/library/alpine:3");
  EXPECT_EQ(ParseReference("alpine@" + kDigest)->WithDefaultTag().String(),
            "docker.io/library/alpine@" + kDigest);
}

TEST(ReferenceTest, SameImageSameReference) {
  // The spellings docker treats as one image compare equal once parsed.
  const std::vector<std::string> spellings = {
      "alpine:3",
      "library/alpine:3",
      "docker.io/alpine:3",
      "docker.io/library/alpine:3",
      "index.docker.io/alpine:3",
      "index.docker.io/library/alpine:3",
  };
  const Reference first = ParseReference(spellings[0]).value();
  for (const std::string& s : spellings) {
    Result<Reference> ref = ParseReference(s);
    ASSERT_TRUE(ref.ok()) << s;
    EXPECT_EQ(*ref, first) << s;
  }
  EXPECT_NE(ParseReference("alpine:3").value(), ParseReference("alpine:4").value());
  EXPECT_NE(ParseReference("alpine").value(), ParseReference("alpine:latest").value());
}

TEST(ReferenceTest, RegistryHost) {
  EXPECT_EQ(RegistryHost("docker.io"), "registry-1.docker.io");
  EXPECT_EQ(RegistryHost("quay.io"), "quay.io");
  EXPECT_EQ(RegistryHost("localhost:5000"), "localhost:5000");
  EXPECT_EQ(ParseReference("alpine")->RegistryHost(), "registry-1.docker.io");
  EXPECT_EQ(ParseReference("index.docker.io/a/b")->RegistryHost(), "registry-1.docker.io");
  EXPECT_EQ(ParseReference("[::1]:5000/x")->RegistryHost(), "[::1]:5000");
}

}  // namespace
}  // namespace imgstore::images
