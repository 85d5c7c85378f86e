// HashFile: the sha256 digest and size of a file read through an Env (used to adopt unrecorded
// blobs at ingest and to verify content in Check).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "util/digest.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::store {

struct FileHash {
  Digest digest;
  uint64_t size = 0;
};

Result<FileHash> HashFile(Env* env, const std::string& path);

}  // namespace imgstore::store
