// Conversions from the public option types (include/imgstore/types.hpp) to the internal ones.
#include "api/convert.h"

#include <utility>

#include "registry/credentials.h"

namespace imgstore::api {

std::function<bool()> CancelHook(const std::optional<CancelToken>& token) {
  if (!token) return {};
  return [token = *token] { return token.cancelled(); };
}

Result<registry::RegistryOptions> ToRegistryOptions(const RegistryOptions& options,
                                                    std::function<bool()> cancelled) {
  registry::RegistryOptions reg;
  if (!options.credentials.empty()) {
    Result<registry::Credentials> c = registry::ParseCredentials(options.credentials);
    if (!c.ok()) return c.status().WithContext("registry credentials");
    reg.credentials = std::move(*c);
  }
  if (options.retry_times < 0) {
    return Status(Code::kInvalidArgument, "registry retry_times must not be negative");
  }
  reg.auth_file = options.auth_file;
  reg.tls_verify = options.tls_verify;
  reg.cert_dir = options.cert_dir;
  reg.retry.max_attempts = options.retry_times + 1;
  reg.http.cancelled = std::move(cancelled);
  return reg;
}

store::LayerUseOptions ToLayerUseOptions(const LayerOptions& options, std::string operation) {
  store::LayerUseOptions out;
  out.operation = std::move(operation);
  out.extract.cancelled = CancelHook(options.cancel);
  if (options.on_extract) {
    out.on_extract = [cb = options.on_extract](const Digest& chain_id, bool done) {
      cb(chain_id.ToString(), done);
    };
  }
  return out;
}

}  // namespace imgstore::api
