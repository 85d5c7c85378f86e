// The flags that say how to reach a registry, shared by pull, push and login: --creds,
// --authfile, --tls-verify, --cert-dir, --retry-times, --retry-delay (docs/cli.md).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "imgstore/status.hpp"
#include "imgstore/types.hpp"

namespace imgstore::cli {

struct RegistryFlags {
  std::string creds;  // USER[:PASSWORD]; a secret: parsed, never printed
  std::string authfile;
  bool tls_verify = true;
  std::string cert_dir;
  int retry_times = 3;           // retries after the first attempt
  std::string retry_delay = "";  // first delay ("500ms", "2s"); "" for the default
};

// Adds the flags to `sub`, filling *flags when parsed. with_creds false leaves out --creds
// (login has its own --username/--password).
void AddRegistryFlags(CLI::App* sub, RegistryFlags* flags, bool with_creds = true);

// The options the flags describe. Errors name the flag.
Result<RegistryOptions> ToRegistryOptions(const RegistryFlags& flags);

}  // namespace imgstore::cli
