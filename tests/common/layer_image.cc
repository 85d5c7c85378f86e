// Images made of given layer tars (see layer_image.h).
#include "common/layer_image.h"

#include "common/tar_builder.h"

namespace imgstore::testing {

TestImage ImageOfLayers(const std::vector<std::string>& tars, LayerCompression compression,
                        const std::string& label, bool docker_media_types) {
  return ImageFromTars(tars, compression, docker_media_types,
                       R"("architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05Z",)"
                       R"("config":{"Labels":{"label":")" +
                           label + R"("}},)");
}

std::vector<std::string> SmallRootfsLayers() {
  return {TarBuilder()
              .Dir("etc")
              .File("etc/passwd", "root:x:0:0\n")
              .File("etc/hosts", "127.0.0.1 localhost\n")
              .Dir("var")
              .Dir("var/cache")
              .File("var/cache/a", "a")
              .File("var/cache/b", "b")
              .Dir("usr")
              .File("usr/tool", "tool", 0755)
              .Hardlink("usr/tool-link", "usr/tool")
              .Finish(),
          TarBuilder().File("etc/motd", "hello\n").Symlink("lib64", "usr").Finish()};
}

}  // namespace imgstore::testing
