// The layer extraction reporting of unpack and mount (see layer_progress.h).
#include "layer_progress.h"

#include <unistd.h>

#include <cstdio>
#include <string>

#include "store_open.h"

namespace imgstore::cli {

void ReportLayerProgress(const GlobalOptions& global, LayerOptions& layers) {
  const bool debug = LogDebug(global);
  const bool terminal = !debug && global.log_level != "error" && ::isatty(STDERR_FILENO) == 1;
  layers.on_extract = [debug, terminal](const std::string& chain, bool done) {
    if (debug) {
      std::fprintf(stderr, "imgstore: debug: %s layer %s\n", done ? "extracted" : "extracting",
                   chain.c_str());
    } else if (terminal && !done) {
      std::fprintf(stderr, "Extracting layer %s\n", chain.substr(0, 19).c_str());
    }
  };
  if (global.log_level != "error") {
    layers.on_warning = [](const std::string& line) {
      std::fprintf(stderr, "imgstore: warning: %s\n", line.c_str());
    };
  }
}

}  // namespace imgstore::cli
