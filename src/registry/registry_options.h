// What a user can say about how to reach a registry: credentials, auth file, TLS. Filled by the
// CLI (--creds, --authfile, --tls-verify, --cert-dir) and passed through
// transports::OpenSource to the registry client.
#pragma once

#include <optional>
#include <string>

#include "registry/credentials.h"
#include "registry/http_client.h"

namespace imgstore::registry {

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
};

}  // namespace imgstore::registry
