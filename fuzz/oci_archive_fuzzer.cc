// Fuzz target: the oci-archive reader (transports::OpenOciArchiveSource): the input is the
// archive (a tar of an OCI layout, possibly gzip- or zstd-compressed), written to one scratch
// file reused across inputs, then read to the end as a pull would (fuzz::DrainSource).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "transports/oci_archive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = imgstore::fuzz::ScratchDir() + "/oci-archive.tar";
  imgstore::fuzz::WriteFileOrDie(path, imgstore::fuzz::AsText(data, size));
  auto source =
      imgstore::transports::OpenOciArchiveSource(imgstore::Env::Default(), path, /*limits=*/{});
  if (!source.ok()) imgstore::fuzz::Note("open oci-archive", source.status());
  if (source.ok()) imgstore::fuzz::DrainSource(**source);
  return 0;
}
