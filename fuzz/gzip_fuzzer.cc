// Fuzz target: the gzip decoders (layers::OpenDecompressed), differentially. Every input is
// decoded by zlib and, where this build has it, by ISA-L (behind imgstore's own header reader),
// each whole and in small reads; the invariant is that all agree: all accept it with the same
// bytes, or all refuse it with the same code. A difference is a layer that one imgstore build
// would take and another would not.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "layers/decompress.h"

namespace layers = imgstore::layers;
using imgstore::fuzz::Check;

namespace {

// Output beyond this is not compared: enough for any input the fuzzer makes, bounded for bombs.
constexpr size_t kMaxOutput = 16 << 20;

struct Outcome {
  bool ok = false;
  imgstore::Code code = imgstore::Code::kOk;
  std::string bytes;  // what came out before the end, the error or kMaxOutput
};

Outcome Decode(const uint8_t* data, size_t size, size_t step, layers::GzipDecoder decoder) {
  layers::DecompressLimits limits;
  limits.max_ratio = 0;  // checked between steps, so where it trips depends on buffering
  auto file = layers::OpenDecompressed(imgstore::fuzz::InputFile(data, size, step, "<fuzz gzip>"),
                                       layers::Compression::kGzip, limits, decoder);
  Check(file.ok(), "cannot open a gzip decoder");
  Outcome out;
  std::vector<std::byte> buf(64 * 1024);
  while (out.bytes.size() < kMaxOutput) {
    imgstore::Result<size_t> n = (*file)->Read(buf);
    if (!n.ok()) {
      out.code = n.status().code();
      return out;
    }
    if (*n == 0) break;
    out.bytes.append(reinterpret_cast<const char*>(buf.data()), *n);
  }
  out.ok = true;
  out.bytes.resize(std::min(out.bytes.size(), kMaxOutput));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Whole, and split into reads of 1 to 61 bytes (headers and members cut anywhere).
  const size_t step = 1 + size % 61;
  Outcome zlib = Decode(data, size, SIZE_MAX, layers::GzipDecoder::kZlib);
  Outcome zlib_split = Decode(data, size, step, layers::GzipDecoder::kZlib);
  Check(zlib.ok == zlib_split.ok && zlib.code == zlib_split.code &&
            (!zlib.ok || zlib.bytes == zlib_split.bytes),
        "zlib decoded a split stream differently");
  if (!layers::GzipDecoderAvailable(layers::GzipDecoder::kIsal)) return 0;
  for (size_t s : {SIZE_MAX, step}) {
    Outcome isal = Decode(data, size, s, layers::GzipDecoder::kIsal);
    if (zlib.ok && isal.ok) {
      Check(zlib.bytes == isal.bytes, "zlib and ISA-L decoded different bytes");
      continue;
    }
    Check(zlib.ok == isal.ok,
          zlib.ok ? "ISA-L refused what zlib accepted" : "ISA-L accepted what zlib refused");
    Check(zlib.code == isal.code, "zlib and ISA-L refused with different codes");
  }
  return 0;
}
