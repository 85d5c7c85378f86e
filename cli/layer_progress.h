// What unpack and mount print while they bring layers into the cache: one shared reporting so
// that both commands speak alike.
#pragma once

#include "commands.h"
#include "imgstore/types.hpp"

namespace imgstore::cli {

// Fills layers.on_extract and layers.on_warning by the global options: at --log-level debug
// each layer extracted (start and end), else on a terminal one line per layer being extracted;
// warnings on stderr unless --log-level error.
void ReportLayerProgress(const GlobalOptions& global, LayerOptions& layers);

}  // namespace imgstore::cli
