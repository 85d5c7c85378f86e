// HashFile: streams a file through Sha256Hasher (see hash_file.h).
#include "store/hash_file.h"

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

namespace imgstore::store {

Result<FileHash> HashFile(Env* env, const std::string& path) {
  Result<std::unique_ptr<SequentialFile>> file = env->NewSequentialFile(path);
  if (!file.ok()) return file.status();
  std::vector<std::byte> buf(1 << 20);
  Sha256Hasher hasher;
  while (true) {
    Result<size_t> n = (*file)->Read(buf);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    hasher.Update(std::span<const std::byte>(buf.data(), *n));
  }
  FileHash out;
  out.size = hasher.size();
  out.digest = hasher.Finish();
  return out;
}

}  // namespace imgstore::store
