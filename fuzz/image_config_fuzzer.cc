// Fuzz target: image configs (images::ParseImageConfig) and their match with a manifest
// (images::CheckConfigMatchesManifest). The input is a config; when it holds a NUL byte, what
// precedes it is the config and what follows it a manifest (JSON text never holds a raw NUL),
// and the two are checked against each other when both parse.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "images/image_config.h"
#include "images/manifest.h"

using imgstore::fuzz::Check;
namespace images = imgstore::images;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = imgstore::fuzz::AsText(data, size);
  size_t nul = input.find('\0');
  std::string_view config_bytes = input.substr(0, nul);
  auto config = images::ParseImageConfig(config_bytes);
  if (!config.ok()) return 0;
  Check(config->rootfs_type == "layers", "a config parsed with rootfs.type " + config->rootfs_type);
  (void)config->platform().ToString();
  if (nul == std::string_view::npos) return 0;

  auto manifest = images::ParseImageManifest(input.substr(nul + 1));
  if (!manifest.ok()) return 0;
  imgstore::Status match = images::CheckConfigMatchesManifest(*manifest, *config);
  if (match.ok()) {
    Check(manifest->layers.size() == config->diff_ids.size(),
          "a config and a manifest with different layer counts match");
  }
  return 0;
}
