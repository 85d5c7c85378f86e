// The imgstore commands: each registers its options on the CLI11 app and runs when selected.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
#include <string>

#include "imgstore/status.hpp"
#include "imgstore/types.hpp"

// The CLI's IMGSTORE_RETURN_IF_ERROR (that macro is internal to the library).
#define CLI_RETURN_IF_ERROR(expr)    \
  do {                               \
    ::imgstore::Status _st = (expr); \
    if (!_st.ok()) return _st;       \
  } while (0)

namespace imgstore::cli {

struct GlobalOptions {
  std::string root;
  std::string log_level = "warn";
  std::chrono::nanoseconds lock_timeout = std::chrono::seconds(60);
  Limits limits;  // --limit NAME=VALUE
};

// Adds every command to `app`. The commands read `global` when they run (after parsing).
void RegisterCommands(CLI::App& app, const GlobalOptions& global);
// Runs the selected command; returns the process exit status (errors already printed).
int RunSelected(CLI::App& app, const GlobalOptions& global);

// Prints "imgstore: error: MESSAGE" on stderr and returns 1.
int ReportError(const Status& status);

// One command: its CLI11 subcommand and the function that runs it.
struct Command {
  CLI::App* sub;
  std::function<Status()> run;
};
void AddCommand(Command command);

// Registration functions, one per command file.
void RegisterPullCommand(CLI::App& app, const GlobalOptions& global);
void RegisterPushCommand(CLI::App& app, const GlobalOptions& global);
void RegisterListCommand(CLI::App& app, const GlobalOptions& global);
void RegisterInspectCommand(CLI::App& app, const GlobalOptions& global);
void RegisterTagCommand(CLI::App& app, const GlobalOptions& global);
void RegisterUntagCommand(CLI::App& app, const GlobalOptions& global);
void RegisterRmiCommand(CLI::App& app, const GlobalOptions& global);
void RegisterGcCommand(CLI::App& app, const GlobalOptions& global);
void RegisterDfCommand(CLI::App& app, const GlobalOptions& global);
void RegisterCheckCommand(CLI::App& app, const GlobalOptions& global);
void RegisterLocksCommand(CLI::App& app, const GlobalOptions& global);
void RegisterLoginCommand(CLI::App& app, const GlobalOptions& global);
void RegisterLogoutCommand(CLI::App& app, const GlobalOptions& global);
// cli/layer_commands.cc: unpack, mount, umount, mounts.
void RegisterLayerCommands(CLI::App& app, const GlobalOptions& global);
// cli/mount_commands.cc: mount, umount, mounts (called by RegisterLayerCommands).
void RegisterMountCommands(CLI::App& app, const GlobalOptions& global);
// cli/commit_command.cc
void RegisterCommitCommand(CLI::App& app, const GlobalOptions& global);

}  // namespace imgstore::cli
