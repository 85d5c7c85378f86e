// Helpers of the extraction and safe_fs tests: running an extraction over an in-memory tar,
// describing a directory tree so that two trees, or one tree before and after, can be compared,
// and a fixture with a target root beside an "outside" directory.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "common/fs_tree.h"
#include "common/tar_builder.h"
#include "common/temp_dir.h"
#include "layers/extract.h"
#include "layers/safe_fs.h"

namespace imgstore::testing {

inline Result<layers::ExtractStats> ExtractString(const std::string& tar,
                                                  const std::vector<layers::ExtractTarget>& targets,
                                                  const layers::ExtractOptions& options = {}) {
  auto file = StringSequentialFile(tar, "layer.tar");
  return layers::ExtractLayer(*file, targets, options);
}

inline Result<layers::ExtractStats> ExtractTo(const std::string& tar, const std::string& dir,
                                              const layers::ExtractOptions& options = {}) {
  return ExtractString(tar, {layers::ExtractTarget{dir, layers::WhiteoutMode::kApply, {}}},
                       options);
}

// The extraction tests' view of a tree: digests instead of file contents, and the xattrs.
inline FsTree Tree(const std::string& root, SnapshotOptions o = {}) {
  o.file_digests = true;
  o.xattrs = true;
  return SnapshotTree(root, o);
}

// A target root and a sibling directory "outside" it in a fresh temp dir; the parameter true
// disables openat2, so that each test runs with openat2 and with the emulated component walk.
class ConfinedRootTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    layers::SetOpenat2DisabledForTesting(GetParam());
    root_ = tmp_.Sub("root");
    outside_ = tmp_.Sub("outside");
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(outside_.c_str(), 0755), 0);
  }
  void TearDown() override { layers::SetOpenat2DisabledForTesting(false); }

  TempDir tmp_;
  std::string root_, outside_;
};

}  // namespace imgstore::testing
