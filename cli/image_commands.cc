// `imgstore list` (alias `images`), `inspect`, `tag`, `untag` and `rmi`: the everyday image
// commands.
#include "cli/commands.h"
#include "cli/store_open.h"

namespace imgstore::cli {

void RegisterListCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("list", "list images");
  AddCommand({sub, [&global] {
                (void)global;
                return Status(Code::kUnsupported, "list: not implemented yet");
              }});
}

void RegisterInspectCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("inspect", "show images as JSON");
  AddCommand({sub, [&global] {
                (void)global;
                return Status(Code::kUnsupported, "inspect: not implemented yet");
              }});
}

void RegisterTagCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("tag", "give an image more names");
  AddCommand({sub, [&global] {
                (void)global;
                return Status(Code::kUnsupported, "tag: not implemented yet");
              }});
}

void RegisterUntagCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("untag", "remove names of an image");
  AddCommand({sub, [&global] {
                (void)global;
                return Status(Code::kUnsupported, "untag: not implemented yet");
              }});
}

void RegisterRmiCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("rmi", "remove images");
  AddCommand({sub, [&global] {
                (void)global;
                return Status(Code::kUnsupported, "rmi: not implemented yet");
              }});
}

}  // namespace imgstore::cli
