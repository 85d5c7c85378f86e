// unpack, mount, umount, mounts (placeholder until the layer cache lands).
#include "cli/commands.h"

namespace imgstore::cli {

void RegisterLayerCommands(CLI::App&, const GlobalOptions&) {}

}  // namespace imgstore::cli
