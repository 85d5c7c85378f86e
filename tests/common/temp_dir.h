// TempDir: a fresh directory for one test, removed with everything in it when the test ends.
#pragma once

#include <string>

namespace imgstore::testing {

class TempDir {
 public:
  TempDir();  // under $TMPDIR (or /tmp); aborts the test binary if it cannot be made
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// Removes a tree (like rm -rf); returns false if anything could not be removed.
bool RemoveTree(const std::string& path);

}  // namespace imgstore::testing
