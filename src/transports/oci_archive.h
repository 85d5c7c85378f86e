// The `oci-archive:FILE[:REF]` transport: a tar of an OCI image layout, as `skopeo copy ...
// oci-archive:FILE` writes it. Read in place through TarReader (no extraction; a compressed
// file is first decompressed to an unlinked temporary file); written as a new tar that replaces
// FILE atomically, each blob streamed into it.
#pragma once

#include <memory>
#include <string_view>

#include "images/manifest.h"
#include "images/transport.h"
#include "transports/tar_reader.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::transports {

// `oci-archive:` with the prefix removed: "FILE[:REF]". tar_limits bound the archive's member
// table.
Result<std::unique_ptr<images::ImageSource>> OpenOciArchiveSource(Env* env, std::string_view rest,
                                                                  const images::ParseLimits& limits,
                                                                  const TarLimits& tar_limits = {});
Result<std::unique_ptr<images::ImageDestination>> OpenOciArchiveDestination(Env* env,
                                                                            std::string_view rest);

}  // namespace imgstore::transports
