// The layer extraction reporting of unpack and mount (see layer_progress.h).
#include "cli/layer_progress.h"

#include <unistd.h>

#include <cstdio>
#include <string>

#include "cli/store_open.h"

namespace imgstore::cli {

void ReportLayerProgress(const GlobalOptions& global, store::LayerUseOptions& layers) {
  const bool debug = LogDebug(global);
  const bool terminal = !debug && global.log_level != "error" && ::isatty(STDERR_FILENO) == 1;
  layers.on_extract = [debug, terminal](const Digest& chain, bool done) {
    if (debug) {
      std::fprintf(stderr, "imgstore: debug: %s layer %s\n", done ? "extracted" : "extracting",
                   chain.ToString().c_str());
    } else if (terminal && !done) {
      std::fprintf(stderr, "Extracting layer %s\n", chain.ToString().substr(0, 19).c_str());
    }
  };
  if (global.log_level != "error") {
    layers.extract.on_warning = [](const std::string& line) {
      std::fprintf(stderr, "imgstore: warning: %s\n", line.c_str());
    };
  }
}

}  // namespace imgstore::cli
