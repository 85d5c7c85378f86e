// Opening the store for a command.
#include "store_open.h"

#include <chrono>
#include <cstdio>

namespace imgstore::cli {

Result<std::unique_ptr<Store>> OpenStore(const GlobalOptions& global,
                                         std::function<void(const std::string& line)> notice) {
  // The library would take "" for its default root; --root "" is a mistake.
  if (global.root.empty()) return Status(Code::kInvalidArgument, "store root is empty");
  StoreOptions options;
  // Rounded up: a timeout under a millisecond still waits (only "0" means do not wait).
  options.lock_timeout = std::chrono::ceil<std::chrono::milliseconds>(global.lock_timeout);
  options.limits = global.limits;
  options.on_wait = [notice = std::move(notice)](const std::string& line) {
    if (notice) {
      notice("imgstore: " + line);
    } else {
      std::fprintf(stderr, "imgstore: %s\n", line.c_str());
    }
  };
  return Store::Open(global.root, options);
}

bool LogDebug(const GlobalOptions& global) { return global.log_level == "debug"; }
bool LogInfo(const GlobalOptions& global) {
  return global.log_level == "debug" || global.log_level == "info";
}

}  // namespace imgstore::cli
