// What a user can say about how to reach a registry: credentials, auth file, TLS. Filled by the
// CLI (--creds, --authfile, --tls-verify, --cert-dir) and passed through
// transports::OpenSource to the registry client.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "registry/credentials.h"
#include "registry/http_client.h"

namespace imgstore::registry {

// How a request that failed for a passing reason is tried again (docs/registry.md, "Retries"):
// a connection that could not be made or broke (kUnavailable from HttpClient), an HTTP 5xx, or a
// 429. The delay doubles from initial_delay up to max_delay; a Retry-After header (seconds or an
// HTTP date) replaces the computed delay when it is longer, still capped by max_delay. After
// max_attempts the last error is returned, naming the registry, what was asked for and the
// status.
struct RetryOptions {
  int max_attempts = 4;  // attempts in all (1: no retry)
  std::chrono::milliseconds initial_delay{500};
  std::chrono::milliseconds max_delay{30000};
};

struct RegistryOptions {
  // --creds USER:PASSWORD; when set, auth files are not read.
  std::optional<Credentials> credentials;
  // --authfile FILE (must exist); "" searches DefaultAuthFiles() (missing files skipped).
  std::string auth_file;
  // false: accept any certificate, and allow plain http for any registry. true (default):
  // verified https, except that a loopback registry (localhost, 127.0.0.0/8, ::1) that does not
  // speak TLS is used over plain http, as docker does.
  bool tls_verify = true;
  // A certs.d-style directory: *.crt are CAs trusted for the registry, client.cert/client.key a
  // client certificate. "" uses /etc/containers/certs.d/HOST:PORT or /etc/docker/certs.d/HOST:PORT
  // when one exists.
  std::string cert_dir;
  // Timeouts and user agent (tls is filled from the fields above).
  HttpOptions http;
  RetryOptions retry;
  // Blobs up to this size are uploaded with one PUT (POST for a session, then PUT with the body);
  // larger ones with a streamed PATCH and a closing PUT, which a dropped connection can resume.
  uint64_t monolithic_upload_max = 32ull << 20;
};

}  // namespace imgstore::registry
