// Command registry and dispatch.
#include "commands.h"

#include <cstdio>
#include <vector>

namespace imgstore::cli {
namespace {

std::vector<Command>& Commands() {
  static std::vector<Command> commands;
  return commands;
}

}  // namespace

void AddCommand(Command command) { Commands().push_back(std::move(command)); }

void RegisterCommands(CLI::App& app, const GlobalOptions& global) {
  RegisterPullCommand(app, global);
  RegisterPushCommand(app, global);
  RegisterListCommand(app, global);
  RegisterInspectCommand(app, global);
  RegisterTagCommand(app, global);
  RegisterUntagCommand(app, global);
  RegisterRmiCommand(app, global);
  RegisterGcCommand(app, global);
  RegisterDfCommand(app, global);
  RegisterCheckCommand(app, global);
  RegisterLocksCommand(app, global);
  RegisterLoginCommand(app, global);
  RegisterLogoutCommand(app, global);
  RegisterLayerCommands(app, global);
  RegisterCommitCommand(app, global);
}

int RunSelected(CLI::App& app, const GlobalOptions&) {
  for (const Command& c : Commands()) {
    if (app.got_subcommand(c.sub)) {
      Status s = c.run();
      return s.ok() ? 0 : ReportError(s);
    }
  }
  std::fputs(app.help().c_str(), stdout);
  return 0;
}

int ReportError(const Status& status) {
  std::fprintf(stderr, "imgstore: error: %s\n", status.message().c_str());
  return 1;
}

}  // namespace imgstore::cli
