// The registry flags (see registry_flags.h).
#include "registry_flags.h"

#include "imgstore/parse.hpp"

namespace imgstore::cli {

void AddRegistryFlags(CLI::App* sub, RegistryFlags* flags, bool with_creds) {
  if (with_creds) {
    sub->add_option("--creds", flags->creds, "registry credentials USER:PASSWORD");
  }
  sub->add_option("--authfile", flags->authfile,
                  "registry auth file (default: containers auth.json, ~/.docker/config.json)");
  sub->add_option("--tls-verify", flags->tls_verify,
                  "verify the registry's TLS certificate and require https (default true)");
  sub->add_option("--cert-dir", flags->cert_dir,
                  "directory with the registry's CA (*.crt) and client.cert/client.key");
  sub->add_option("--retry-times", flags->retry_times,
                  "retries of a request that failed for a passing reason (default 3)")
      ->check(CLI::Range(0, 100));
  sub->add_option("--retry-delay", flags->retry_delay,
                  "delay before the first retry, doubled each time (default 500ms)");
}

Result<RegistryOptions> ToRegistryOptions(const RegistryFlags& flags) {
  RegistryOptions reg;
  if (!flags.creds.empty()) {
    // Checked here so that the error names the flag (the library would name the operation).
    Result<Credentials> c = ParseCredentials(flags.creds);
    if (!c.ok()) return c.status().WithContext("--creds");
    reg.credentials = flags.creds;
  }
  reg.auth_file = flags.authfile;
  reg.tls_verify = flags.tls_verify;
  reg.cert_dir = flags.cert_dir;
  reg.retry_times = flags.retry_times;
  if (!flags.retry_delay.empty()) {
    Result<std::chrono::nanoseconds> d = ParseDuration(flags.retry_delay);
    if (!d.ok()) return d.status().WithContext("--retry-delay");
    reg.retry_delay = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  }
  return reg;
}

}  // namespace imgstore::cli
