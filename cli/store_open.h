// Opening the store for a command: the root, lock timeout and wait notices of the global options.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "commands.h"
#include "imgstore/store.hpp"

namespace imgstore::cli {

// Opens (creating if missing) the store at global.root. Lock waits longer than a second are
// reported once ("imgstore: waiting for lock ..."): to `notice` when given (a progress display
// that keeps its bars intact), else on stderr; the deadline is --lock-timeout.
Result<std::unique_ptr<Store>> OpenStore(const GlobalOptions& global,
                                         std::function<void(const std::string& line)> notice = {});

// True at --log-level debug (detail on stderr) / info.
bool LogDebug(const GlobalOptions& global);
bool LogInfo(const GlobalOptions& global);

}  // namespace imgstore::cli
