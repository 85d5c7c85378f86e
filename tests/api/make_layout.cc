// api_make_layout DIR [SEED [LAYERS [LAYER_BYTES]]]: writes a small test image (gzip layers, a
// config whose diffIDs match) as the OCI layout DIR with ref.name "v1", for the tests that see
// only the public API (the C ABI test, the installed examples). Prints the image id.
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/test_image.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 5) {
    std::fprintf(stderr, "usage: api_make_layout DIR [SEED [LAYERS [LAYER_BYTES]]]\n");
    return 2;
  }
  imgstore::testing::TestImageSpec spec;
  if (argc > 2) spec.seed = static_cast<uint32_t>(std::strtoul(argv[2], nullptr, 10));
  if (argc > 3) spec.layers = std::atoi(argv[3]);
  if (argc > 4) spec.layer_bytes = std::strtoull(argv[4], nullptr, 10);
  imgstore::testing::TestImage image = imgstore::testing::MakeTestImage(spec);
  imgstore::testing::WriteOciLayout(image, argv[1], "v1");
  // WriteOciLayout reports failures as gtest assertions, which do not stop a plain main().
  struct stat st;
  if (::stat((std::string(argv[1]) + "/index.json").c_str(), &st) != 0) {
    std::fprintf(stderr, "api_make_layout: cannot write the layout %s\n", argv[1]);
    return 1;
  }
  std::printf("%s\n", image.id.ToString().c_str());
  return 0;
}
