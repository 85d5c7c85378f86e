// `imgstore gc`, `df` and `check`: reclaiming space and verifying the store.
#include "cli/commands.h"
#include "cli/store_open.h"

namespace imgstore::cli {

void RegisterGcCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("gc", "remove what no image references");
  AddCommand({sub, [&global] {
                (void)global;
                return Status(Code::kUnsupported, "gc: not implemented yet");
              }});
}

void RegisterDfCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("df", "show space used");
  AddCommand({sub, [&global] {
                (void)global;
                return Status(Code::kUnsupported, "df: not implemented yet");
              }});
}

void RegisterCheckCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("check", "verify the store");
  AddCommand({sub, [&global] {
                (void)global;
                return Status(Code::kUnsupported, "check: not implemented yet");
              }});
}

}  // namespace imgstore::cli
