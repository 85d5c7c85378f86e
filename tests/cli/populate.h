// Filling a store for the command-line tests through the store API (fast: no registry, no
// transport): images made by MakeTestImage, each with one name.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/test_image.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace imgstore::testing {

// Adds image `seed` (its blobs, then its record) named `name` to the store at `root`.
inline TestImage AddImageForTest(store::Store& store, uint32_t seed, const std::string& name,
                                 int layers = 2) {
  TestImageSpec spec;
  spec.seed = seed;
  spec.layers = layers;
  spec.layer_bytes = 1024;
  TestImage image = MakeTestImage(spec);
  store::testing::AddImageWithBlobs(store, image, {name});
  return image;
}

}  // namespace imgstore::testing
