// Digest: the content address of a blob ("sha256:<64 lowercase hex>"), and Sha256Hasher, the
// streaming hasher that produces one.
//
// A Digest only exists in a valid form: it is built by Parse() (untrusted text from manifests,
// registries, users) or by hashing bytes. sha384 and sha512 are accepted as a *format* because
// manifests and references may carry them (go-digest knows all three); imgstore hashes and stores
// sha256 only, so callers that need the bytes check IsSha256() first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "util/status.h"

// OpenSSL's EVP_MD_CTX, declared here so that this header does not pull in OpenSSL.
struct evp_md_ctx_st;

namespace imgstore {

enum class DigestAlgorithm : std::uint8_t { kSha256, kSha384, kSha512 };

class Digest {
 public:
  // An empty digest: a placeholder for "not known yet" in records. It never equals a real
  // digest, and ToString() is "".
  Digest() = default;

  // Parses "<algorithm>:<hex>". A malformed string (no ':', bad algorithm syntax, wrong length,
  // characters outside [0-9a-f]) is kInvalidArgument; a well-formed algorithm other than sha256,
  // sha384 and sha512 is kUnsupported. Uppercase hex is rejected, as go-digest does: the
  // lowercase string is the identity, and two spellings of one digest must not exist.
  static Result<Digest> Parse(std::string_view text);

  // The sha256 digest of bytes, in one call.
  static Digest Of(std::string_view bytes);

  bool empty() const { return value_.empty(); }
  DigestAlgorithm algorithm_id() const { return algorithm_; }
  bool IsSha256() const { return !empty() && algorithm_ == DigestAlgorithm::kSha256; }
  // "sha256", "sha384" or "sha512" ("" when empty).
  std::string_view algorithm() const;
  // The lowercase hex part, without the algorithm ("" when empty).
  std::string_view hex() const;
  // "sha256:<hex>" ("" when empty).
  const std::string& ToString() const { return value_; }

  // value_ determines algorithm_, so comparing value_ first orders by the text.
  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  friend class Sha256Hasher;
  Digest(DigestAlgorithm algorithm, std::string value)
      : value_(std::move(value)), algorithm_(algorithm) {}

  std::string value_;
  DigestAlgorithm algorithm_ = DigestAlgorithm::kSha256;
};

// Streams bytes into SHA-256 (OpenSSL EVP). Update() never allocates; Finish() returns the
// digest and resets the hasher, so one hasher can digest many blobs in turn. Not thread-safe;
// movable, not copyable (a moved-from hasher may only be destroyed or assigned to).
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&& other) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&& other) noexcept;
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(std::span<const std::byte> bytes);
  void Update(std::string_view bytes);
  // Bytes fed since construction or the last Finish(): lets an ingest check size and digest
  // together without counting twice.
  std::uint64_t size() const { return size_; }
  Digest Finish();

 private:
  evp_md_ctx_st* ctx_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace imgstore

template <>
struct std::hash<imgstore::Digest> {
  std::size_t operator()(const imgstore::Digest& d) const noexcept {
    return std::hash<std::string>()(d.ToString());
  }
};
