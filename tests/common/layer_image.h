// Images made of given layer tars (TarBuilder streams): what the layer tests need besides
// MakeTestImage's one-file layers — images that share a base layer, whiteouts across layers,
// hardlinks, owners. The result is a TestImage, so WriteOciLayout and the store helpers take it.
#pragma once

#include <string>
#include <vector>

#include "common/test_image.h"

namespace imgstore::testing {

// An OCI image (Docker v2s2 with docker_media_types) whose layers are `tars`, base first, each
// compressed with `compression`. `label` goes into the config, so that two images with the same
// layers still get different ids.
TestImage ImageOfLayers(const std::vector<std::string>& tars,
                        LayerCompression compression = LayerCompression::kGzip,
                        const std::string& label = "", bool docker_media_types = false);

// The two layers of a small root filesystem the commit tests change: etc/{passwd,hosts},
// var/cache/{a,b}, usr/tool with a hardlink usr/tool-link; then etc/motd and lib64 -> usr.
std::vector<std::string> SmallRootfsLayers();

}  // namespace imgstore::testing
