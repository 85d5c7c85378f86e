// Fuzz target: layer extraction (layers::ExtractLayerBlob), the code that writes an untrusted
// tar to disk. The input is a layer blob: an uncompressed tar, or a gzip or zstd one (told by its
// magic bytes, as a layer of unknown type would be). Each input is applied at once to a kApply
// and a kOverlay target inside a fresh directory, beside a sentinel directory "outside"; the
// invariant is that nothing appears next to the targets or in "outside" (the symlink and "..
// tricks of the dictionary aim there), and that an accepted uncompressed layer hashes to its
// diffID.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "layers/decompress.h"
#include "layers/extract.h"
#include "util/digest.h"

using imgstore::Env;
using imgstore::fuzz::Check;
namespace layers = imgstore::layers;

namespace {

void MakeDir(const std::string& path) {
  Check(Env::Default()->CreateDir(path, 0755).ok(), "cannot create " + path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Env* env = Env::Default();
  const std::string run = imgstore::fuzz::ScratchDir() + "/extract";
  (void)env->RemoveTree(run);
  MakeDir(run);
  MakeDir(run + "/apply");
  MakeDir(run + "/overlay");
  MakeDir(run + "/outside");

  layers::ExtractOptions options;
  // Small bounds keep every input fast and its memory low; they are checked the same way as the
  // defaults.
  options.limits.max_tar_bytes = 64 << 20;
  options.limits.max_entries = 10000;
  options.limits.max_xattr_bytes = 64 << 10;
  options.limits.decompress.zstd_max_window_log = 23;
  layers::ExtractTarget targets[2];
  targets[0].dir = run + "/apply";
  targets[0].mode = layers::WhiteoutMode::kApply;
  targets[1].dir = run + "/overlay";
  targets[1].mode = layers::WhiteoutMode::kOverlay;

  auto head = std::as_bytes(std::span<const uint8_t>(data, std::min<size_t>(size, 4)));
  layers::Compression c = layers::SniffCompression(head);
  auto stats = layers::ExtractLayerBlob(
      imgstore::fuzz::InputFile(data, size, SIZE_MAX, "<fuzz layer>"), c, targets, options);
  imgstore::fuzz::Note("extract", stats.ok() ? imgstore::Status::OK() : stats.status());
  if (stats.ok() && c == layers::Compression::kNone) {
    Check(stats->tar_bytes == size, "an accepted layer whose tar_bytes is not its size");
    Check(stats->diff_id == imgstore::Digest::Of(imgstore::fuzz::AsText(data, size)),
          "an accepted layer whose diffID is not the sha256 of its bytes");
  }

  auto next_to_targets = env->ListDir(run);
  Check(next_to_targets.ok() &&
            *next_to_targets == std::vector<std::string>{"apply", "outside", "overlay"},
        "extraction created something next to its targets");
  auto outside = env->ListDir(run + "/outside");
  Check(outside.ok() && outside->empty(), "extraction wrote into the sentinel directory outside");
  Check(env->RemoveTree(run).ok(), "cannot remove the extraction directory " + run);
  return 0;
}
