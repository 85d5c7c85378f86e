// Digest parsing and formatting, and SHA-256 hashing through OpenSSL EVP.
#include "util/digest.h"

#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include <cstdio>
#include <cstdlib>

#include "util/quote.h"

namespace imgstore {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

Status Invalid(std::string_view text, std::string_view reason) {
  std::string msg = "invalid digest " + Quote(text) + ": ";
  msg += reason;
  return Status(Code::kInvalidArgument, std::move(msg));
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// The OCI image-spec algorithm grammar: [a-z0-9]+([+._-][a-z0-9]+)*
bool ValidAlgorithmSyntax(std::string_view alg) {
  if (alg.empty()) return false;
  bool after_separator = true;  // a component must start here
  for (char c : alg) {
    if (IsLowerAlnum(c)) {
      after_separator = false;
    } else if (c == '+' || c == '.' || c == '_' || c == '-') {
      if (after_separator) return false;
      after_separator = true;
    } else {
      return false;
    }
  }
  return !after_separator;
}

// A hash failure here means OpenSSL itself is broken (no SHA-256 provider, no memory): nothing a
// caller could handle, and returning a wrong digest would be worse than stopping.
[[noreturn]] void Fatal(const char* what) {
  std::fprintf(stderr, "imgstore: OpenSSL %s failed for SHA-256\n", what);
  std::abort();
}

const EVP_MD* Sha256Md() {
  // Fetched once: with OpenSSL 3, EVP_sha256() makes every EVP_DigestInit_ex look the
  // implementation up again, which dominates the cost of hashing small blobs.
  static const EVP_MD* const md = [] {
    const EVP_MD* m = nullptr;
#if OPENSSL_VERSION_MAJOR >= 3
    m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
#endif
    return m != nullptr ? m : EVP_sha256();
  }();
  return md;
}

}  // namespace

Result<Digest> Digest::Parse(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) return Invalid(text, "want <algorithm>:<hex>");
  const std::string_view alg = text.substr(0, colon);
  const std::string_view hex = text.substr(colon + 1);
  if (!ValidAlgorithmSyntax(alg)) return Invalid(text, "malformed algorithm");

  DigestAlgorithm id;
  std::size_t want;
  if (alg == "sha256") {
    id = DigestAlgorithm::kSha256;
    want = 64;
  } else if (alg == "sha384") {
    id = DigestAlgorithm::kSha384;
    want = 96;
  } else if (alg == "sha512") {
    id = DigestAlgorithm::kSha512;
    want = 128;
  } else {
    return Status(Code::kUnsupported, "unsupported digest algorithm " + Quote(alg) + " in " +
                                          Quote(text) + " (want sha256)");
  }

  for (char c : hex) {
    if (c >= 'A' && c <= 'F') return Invalid(text, "hex must be lowercase");
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return Invalid(text, "not a hex string");
    }
  }
  if (hex.size() != want) {
    return Invalid(text, std::string(alg) + " needs " + std::to_string(want) +
                             " hex characters, got " + std::to_string(hex.size()));
  }
  return Digest(id, std::string(text));
}

Digest Digest::Of(std::string_view bytes) {
  Sha256Hasher hasher;
  hasher.Update(bytes);
  return hasher.Finish();
}

std::string_view Digest::algorithm() const {
  if (empty()) return {};
  switch (algorithm_) {
    case DigestAlgorithm::kSha256:
      return "sha256";
    case DigestAlgorithm::kSha384:
      return "sha384";
    case DigestAlgorithm::kSha512:
      return "sha512";
  }
  return {};
}

std::string_view Digest::hex() const {
  if (empty()) return {};
  return std::string_view(value_).substr(value_.find(':') + 1);
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) Fatal("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex(ctx_, Sha256Md(), nullptr) != 1) Fatal("EVP_DigestInit_ex");
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(ctx_); }

Sha256Hasher::Sha256Hasher(Sha256Hasher&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)), size_(std::exchange(other.size_, 0)) {}

Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void Sha256Hasher::Update(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  if (EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()) != 1) Fatal("EVP_DigestUpdate");
  size_ += bytes.size();
}

void Sha256Hasher::Update(std::string_view bytes) {
  Update(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
}

Digest Sha256Hasher::Finish() {
  unsigned char raw[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_, raw, &len) != 1 || len != 32) Fatal("EVP_DigestFinal_ex");
  if (EVP_DigestInit_ex(ctx_, Sha256Md(), nullptr) != 1) Fatal("EVP_DigestInit_ex");
  size_ = 0;

  std::string value(7 + 64, '\0');
  value.replace(0, 7, "sha256:");
  for (unsigned int i = 0; i < len; ++i) {
    value[7 + 2 * i] = kHexDigits[raw[i] >> 4];
    value[7 + 2 * i + 1] = kHexDigits[raw[i] & 0xf];
  }
  return Digest(DigestAlgorithm::kSha256, std::move(value));
}

}  // namespace imgstore
