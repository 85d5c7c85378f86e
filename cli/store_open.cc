// Opening the store for a command.
#include "cli/store_open.h"

#include <cstdio>

namespace imgstore::cli {

Result<std::unique_ptr<store::Store>> OpenStore(
    const GlobalOptions& global, std::function<void(const std::string& line)> notice) {
  store::StoreOptions options;
  options.lock_timeout = std::chrono::duration_cast<locking::Duration>(global.lock_timeout);
  options.on_wait = [notice = std::move(notice)](const std::string& line) {
    if (notice) {
      notice("imgstore: " + line);
    } else {
      std::fprintf(stderr, "imgstore: %s\n", line.c_str());
    }
  };
  return store::Store::Open(global.root, options);
}

bool LogDebug(const GlobalOptions& global) { return global.log_level == "debug"; }
bool LogInfo(const GlobalOptions& global) {
  return global.log_level == "debug" || global.log_level == "info";
}

}  // namespace imgstore::cli
