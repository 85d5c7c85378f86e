// `imgstore pull` and `imgstore push`: copying images between the store and the transports.
#include "cli/commands.h"
#include "cli/store_open.h"

namespace imgstore::cli {

void RegisterPullCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand(
      "pull", "copy an image into the store (oci:, oci-archive:, docker-archive:)");
  AddCommand({sub, [&global] {
                (void)global;
                return Status(Code::kUnsupported, "pull: not implemented yet");
              }});
}

void RegisterPushCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("push", "copy an image of the store to a destination");
  AddCommand({sub, [&global] {
                (void)global;
                return Status(Code::kUnsupported, "push: not implemented yet");
              }});
}

}  // namespace imgstore::cli
