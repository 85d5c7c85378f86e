// What the image commands (list, inspect, tag, untag, rmi) share: opening a store only if one
// exists, and printing several errors where a command goes on past the first.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "commands.h"
#include "imgstore/store.hpp"

namespace imgstore::cli {

// Opens the store at global.root if it has been created; nullptr if not. The image commands
// never create a store: against a missing one, list shows an empty store and the others do not
// know the image (docs/cli.md).
Result<std::unique_ptr<Store>> OpenExistingStore(const GlobalOptions& global);

// The error that resolving the image argument `text` gives when there is no store: the same
// syntax errors as Store::Resolve, else "image not known: ..." as it would say it.
Status NotKnownWithoutStore(std::string_view text);

// For commands that go on after an error: prints every error but the last (one line each) and
// returns the last, which the dispatcher prints; OK when there is none.
Status ReportAll(std::vector<Status> errors);

}  // namespace imgstore::cli
