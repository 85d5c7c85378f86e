// Tests of Digest (parse, format, equality, hashing) and Sha256Hasher (known vectors, streaming).
#include "util/digest.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "util/quote.h"

namespace imgstore {
namespace {

constexpr std::string_view kEmptySha256 =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr std::string_view kAbcSha256 =
    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
// FIPS 180-2 test vector: one million 'a'.
constexpr std::string_view kMillionASha256 =
    "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

// Feeds data in chunks whose sizes cycle through awkward values (1 byte, primes, more than a
// SHA-256 block), so that block boundaries fall everywhere.
Digest HashInChunks(std::string_view data) {
  static constexpr std::size_t kSizes[] = {1, 3, 7, 63, 64, 65, 127, 4099, 13, 65537};
  Sha256Hasher hasher;
  std::size_t i = 0;
  for (std::size_t k = 0; i < data.size(); ++k) {
    const std::size_t n = std::min(kSizes[k % std::size(kSizes)], data.size() - i);
    hasher.Update(data.substr(i, n));
    i += n;
  }
  EXPECT_EQ(hasher.size(), data.size());
  return hasher.Finish();
}

std::string PseudoRandomBytes(std::size_t n) {
  std::string out(n, '\0');
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (char& c : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x & 0xff);
  }
  return out;
}

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(Digest::Of("").ToString(), kEmptySha256);
  EXPECT_EQ(Digest::Of("abc").ToString(), kAbcSha256);
  EXPECT_EQ(Digest::Of(std::string(1000000, 'a')).ToString(), kMillionASha256);
}

TEST(DigestTest, ChunkedEqualsOneShot) {
  const std::string mib = PseudoRandomBytes(1 << 20);
  const Digest one_shot = Digest::Of(mib);
  EXPECT_EQ(HashInChunks(mib), one_shot);
  EXPECT_EQ(HashInChunks(std::string(1000000, 'a')).ToString(), kMillionASha256);
}

TEST(DigestTest, HasherTakesBytesAndResetsOnFinish) {
  Sha256Hasher hasher;
  const std::vector<std::uint8_t> abc = {'a', 'b', 'c'};
  hasher.Update(std::as_bytes(std::span(abc)));
  EXPECT_EQ(hasher.size(), 3u);
  EXPECT_EQ(hasher.Finish().ToString(), kAbcSha256);
  // Finish() leaves a fresh hasher behind.
  EXPECT_EQ(hasher.size(), 0u);
  EXPECT_EQ(hasher.Finish().ToString(), kEmptySha256);
  hasher.Update("ab");
  hasher.Update("");
  hasher.Update("c");
  EXPECT_EQ(hasher.Finish().ToString(), kAbcSha256);
}

TEST(DigestTest, HasherMoves) {
  Sha256Hasher a;
  a.Update("ab");
  Sha256Hasher b(std::move(a));
  b.Update("c");
  EXPECT_EQ(b.Finish().ToString(), kAbcSha256);
  Sha256Hasher c;
  c.Update("junk");
  c = std::move(b);
  c.Update("abc");
  EXPECT_EQ(c.Finish().ToString(), kAbcSha256);
}

TEST(DigestTest, Accessors) {
  const Digest d = Digest::Of("abc");
  EXPECT_EQ(d.algorithm(), "sha256");
  EXPECT_EQ(d.hex(), kAbcSha256.substr(7));
  EXPECT_TRUE(d.IsSha256());
  EXPECT_FALSE(d.empty());

  const Digest none;
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(none.IsSha256());
  EXPECT_EQ(none.ToString(), "");
  EXPECT_EQ(none.hex(), "");
  EXPECT_EQ(none.algorithm(), "");
  EXPECT_NE(none, d);
}

TEST(DigestTest, ParseValid) {
  Result<Digest> d = Digest::Parse(kAbcSha256);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, Digest::Of("abc"));
  EXPECT_EQ(d->ToString(), kAbcSha256);

  const std::string sha384 = "sha384:" + std::string(96, 'a');
  Result<Digest> d384 = Digest::Parse(sha384);
  ASSERT_TRUE(d384.ok()) << d384.status().ToString();
  EXPECT_EQ(d384->algorithm_id(), DigestAlgorithm::kSha384);

  const std::string sha512 = "sha512:" + std::string(128, '0');
  Result<Digest> d512 = Digest::Parse(sha512);
  ASSERT_TRUE(d512.ok()) << d512.status().ToString();
  EXPECT_EQ(d512->algorithm(), "sha512");
  EXPECT_EQ(d512->hex(), std::string(128, '0'));
  EXPECT_FALSE(d512->IsSha256());
  EXPECT_EQ(d512->ToString(), sha512);
}

struct BadDigest {
  std::string text;
  Code code;
  std::string reason;  // a substring of the message
};

TEST(DigestTest, ParseInvalid) {
  const std::string hex64(64, 'a');
  const std::vector<BadDigest> cases = {
      {"", Code::kInvalidArgument, "want <algorithm>:<hex>"},
      {"sha256", Code::kInvalidArgument, "want <algorithm>:<hex>"},
      {hex64, Code::kInvalidArgument, "want <algorithm>:<hex>"},
      {"sha256:", Code::kInvalidArgument, "sha256 needs 64 hex characters, got 0"},
      {"sha256:abc", Code::kInvalidArgument, "sha256 needs 64 hex characters, got 3"},
      {"sha256:" + hex64 + "a", Code::kInvalidArgument, "got 65"},
      {"sha256:" + std::string(64, 'A'), Code::kInvalidArgument, "hex must be lowercase"},
      {"sha256:" + std::string(63, 'a') + "g", Code::kInvalidArgument, "not a hex string"},
      {"sha256: " + std::string(63, 'a'), Code::kInvalidArgument, "not a hex string"},
      {"sha512:" + hex64, Code::kInvalidArgument, "sha512 needs 128 hex characters, got 64"},
      {"SHA256:" + hex64, Code::kInvalidArgument, "malformed algorithm"},
      {":" + hex64, Code::kInvalidArgument, "malformed algorithm"},
      {"sha256+:" + hex64, Code::kInvalidArgument, "malformed algorithm"},
      {"md5:" + std::string(32, 'a'), Code::kUnsupported, "unsupported digest algorithm \"md5\""},
      {"blake3:" + hex64, Code::kUnsupported, "unsupported digest algorithm \"blake3\""},
      {"sha256+b64u:" + hex64, Code::kUnsupported, "unsupported digest algorithm"},
  };
  for (const BadDigest& c : cases) {
    Result<Digest> d = Digest::Parse(c.text);
    ASSERT_FALSE(d.ok()) << c.text;
    EXPECT_EQ(d.status().code(), c.code) << c.text << ": " << d.status().ToString();
    EXPECT_NE(d.status().message().find(c.reason), std::string::npos)
        << c.text << ": " << d.status().message();
  }
  Result<Digest> d = Digest::Parse("sha256:abc");
  EXPECT_EQ(d.status().message(),
            "invalid digest \"sha256:abc\": sha256 needs 64 hex characters, got 3");
}

TEST(DigestTest, ErrorsStayOnOneLine) {
  Result<Digest> d = Digest::Parse("sha256:\nabc\x01");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message().find('\n'), std::string::npos) << d.status().message();
  EXPECT_NE(d.status().message().find("\\n"), std::string::npos);
  EXPECT_NE(d.status().message().find("\\x01"), std::string::npos);
}

TEST(DigestTest, HashAndOrder) {
  std::unordered_set<Digest> seen;
  seen.insert(Digest::Of("a"));
  seen.insert(Digest::Of("b"));
  seen.insert(Digest::Parse(Digest::Of("a").ToString()).value());
  EXPECT_EQ(seen.size(), 2u);
  std::unordered_map<Digest, int> sizes;
  sizes[Digest::Of("abc")] = 3;
  EXPECT_EQ(sizes.at(Digest::Parse(kAbcSha256).value()), 3);
  EXPECT_LT(Digest::Parse("sha256:" + std::string(64, '0')).value(),
            Digest::Parse("sha256:" + std::string(64, '1')).value());
}

TEST(QuoteTest, EscapesAndTruncates) {
  EXPECT_EQ(Quote("abc"), "\"abc\"");
  EXPECT_EQ(Quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(Quote("a\nb\tc\r"), "\"a\\nb\\tc\\r\"");
  EXPECT_EQ(Quote(std::string_view("\x00\x7f\xff", 3)), "\"\\x00\\x7f\\xff\"");
  EXPECT_EQ(Quote("abcdef", 3), "\"abc\"...");
  EXPECT_EQ(Quote("abc", 3), "\"abc\"");
}

}  // namespace
}  // namespace imgstore
