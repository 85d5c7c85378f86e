// Filling a store for the command-line tests through the store API (fast: no registry, no
// transport): images made by MakeTestImage, each with one name.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/test_image.h"
#include "store/store.h"

namespace imgstore::testing {

// Adds image `seed` (its blobs, then its record) named `name` to the store at `root`.
inline TestImage AddImageForTest(store::Store& store, uint32_t seed, const std::string& name,
                                 int layers = 2) {
  TestImageSpec spec;
  spec.seed = seed;
  spec.layers = layers;
  spec.layer_bytes = 1024;
  TestImage image = MakeTestImage(spec);
  for (const std::string& l : image.layers) {
    auto r = store.IngestBlob(Digest::Of(l), {}, l);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  }
  auto c = store.IngestBlob(image.id, {}, image.config);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  std::vector<std::string> names = {name};
  auto added = store.AddImage(image.manifest, image.manifest_media_type, image.config, names);
  EXPECT_TRUE(added.ok()) << added.status().ToString();
  return image;
}

}  // namespace imgstore::testing
