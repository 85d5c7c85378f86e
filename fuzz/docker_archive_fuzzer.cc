// Fuzz target: the docker-archive reader (transports::OpenDockerArchiveSource), the input being
// the whole `docker save` tar, written to one scratch file reused across inputs. The source is
// then read to the end as a pull would (fuzz::DrainSource).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "transports/docker_archive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = imgstore::fuzz::ScratchDir() + "/docker-archive.tar";
  imgstore::fuzz::WriteFileOrDie(path, imgstore::fuzz::AsText(data, size));
  imgstore::transports::DockerArchiveLimits limits;
  limits.decompress.zstd_max_window_log = 23;
  limits.tar.max_members = 10000;
  limits.tar.max_header_bytes = 64 << 10;
  // "" names the only image; an archive of several needs an index, so try the second too.
  for (const char* ref : {"", "@1"}) {
    auto source =
        imgstore::transports::OpenDockerArchiveSource(imgstore::Env::Default(), path, ref, limits);
    if (!source.ok()) imgstore::fuzz::Note("open docker-archive", source.status());
    if (source.ok()) imgstore::fuzz::DrainSource(**source);
  }
  return 0;
}
