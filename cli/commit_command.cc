// commit (placeholder until commit lands).
#include "cli/commands.h"

namespace imgstore::cli {

void RegisterCommitCommand(CLI::App&, const GlobalOptions&) {}

}  // namespace imgstore::cli
