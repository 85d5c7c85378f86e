// Fuzz target: the own tar parser of the archive transports (transports::TarReader), over the
// input held in memory. Every member it accepts must lie inside the file, and reading it must
// give exactly its size.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "transports/tar_reader.h"

using imgstore::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  imgstore::transports::TarLimits limits;
  limits.max_members = 10000;
  limits.max_header_bytes = 64 << 10;
  auto reader = imgstore::transports::TarReader::Open(
      imgstore::fuzz::MemoryFile(imgstore::fuzz::AsText(data, size)), limits);
  if (!reader.ok()) return 0;
  for (const auto& m : reader->members()) {
    Check(m.offset <= size && m.size <= size - m.offset, "a member's data lies outside the file");
    Check(!m.name.starts_with('/') && m.name != ".." && !m.name.starts_with("../") &&
              m.name.find("/../") == std::string::npos && !m.name.ends_with("/.."),
          "a member name that leaves the archive root: " + m.name);
    const auto* found = reader->Find(m.name);
    if (found == nullptr) continue;
    auto all = reader->ReadAll(*found, 1 << 20);
    if (all.ok()) Check(all->size() == found->size, "ReadAll gave another size than the member's");
  }
  return 0;
}
