// imgstore command line: global options, command dispatch, and the one-line error convention.
//
// Exit status: 0 success, 1 error, 2 usage error. Errors are one line on stderr:
// "imgstore: error: ...". With no arguments it prints help and touches nothing.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "imgstore/parse.hpp"

namespace {

std::string DefaultRoot() {
  if (const char* env = std::getenv("IMGSTORE_ROOT"); env && *env) return env;
  if (::geteuid() == 0) return "/var/lib/imgstore";
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) {
    return std::string(xdg) + "/imgstore";
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return std::string(home) + "/.local/share/imgstore";
  }
  return "/var/lib/imgstore";
}

}  // namespace

int main(int argc, char** argv) {
  using imgstore::cli::GlobalOptions;
  CLI::App app{"imgstore: a content-addressed container image store"};
  app.name("imgstore");
  app.require_subcommand(0, 1);
  GlobalOptions global;
  global.root = DefaultRoot();
  std::string lock_timeout = "60s";
  app.add_option("--root", global.root, "store directory (env IMGSTORE_ROOT)")
      ->default_str(global.root);
  app.add_option("--log-level", global.log_level, "error, warn, info or debug")
      ->check(CLI::IsMember({"error", "warn", "info", "debug"}))
      ->default_str("warn");
  app.add_option("--lock-timeout", lock_timeout,
                 "longest wait for a lock before failing (e.g. 500ms, 30s, 2m; 0 = do not wait)")
      ->default_str(lock_timeout);
  std::vector<std::string> limits;
  std::string limit_names;
  for (std::string_view n : imgstore::LimitNames()) {
    limit_names += (limit_names.empty() ? "" : ", ") + std::string(n);
  }
  app.add_option("--limit", limits,
                 "a bound on untrusted input, NAME=VALUE (e.g. max_tar_bytes=100GiB, max_ratio=0 "
                 "for none; repeatable): " +
                     limit_names)
      ->type_name("NAME=VALUE")
      ->take_all()
      ->allow_extra_args(false);

  imgstore::cli::RegisterCommands(app, global);

  if (argc <= 1) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "imgstore: error: %s\n", e.what());
    return 2;
  }
  auto timeout = imgstore::ParseDuration(lock_timeout);
  if (!timeout.ok()) {
    std::fprintf(stderr, "imgstore: error: --lock-timeout: %s\n",
                 timeout.status().message().c_str());
    return 2;
  }
  global.lock_timeout = *timeout;
  for (const std::string& l : limits) {
    if (imgstore::Status s = imgstore::SetLimit(l, &global.limits); !s.ok()) {
      std::fprintf(stderr, "imgstore: error: --limit: %s\n", s.message().c_str());
      return 2;
    }
  }
  if (app.get_subcommands().empty()) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  return imgstore::cli::RunSelected(app, global);
}
