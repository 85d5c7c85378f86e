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
  if (options.retry_delay) {
    if (options.retry_delay->count() < 0) {
      return Status(Code::kInvalidArgument, "registry retry_delay must not be negative");
    }
    reg.retry.initial_delay = *options.retry_delay;
  }
  reg.http.cancelled = std::move(cancelled);
  return reg;
}

store::LayerUseOptions ToLayerUseOptions(const LayerOptions& options, std::string operation,
                                         const Limits& limits) {
  store::LayerUseOptions out;
  out.operation = std::move(operation);
  out.extract.limits = ToExtractLimits(limits);
  out.extract.cancelled = CancelHook(options.cancel);
  out.extract.on_warning = options.on_warning;
  if (options.on_extract) {
    out.on_extract = [cb = options.on_extract](const Digest& chain_id, bool done) {
      cb(chain_id.ToString(), done);
    };
  }
  return out;
}

Reference ToReference(const images::Reference& r) {
  Reference out;
  out.domain = r.domain;
  out.path = r.path;
  out.tag = r.tag.value_or("");
  out.digest = r.digest ? r.digest->ToString() : std::string();
  out.name = r.String();
  out.repository = r.Repository();
  out.familiar = r.Familiar();
  out.familiar_repository = r.FamiliarRepository();
  return out;
}

namespace {

LockHolder ToHolder(const locking::HolderInfo& h) {
  return LockHolder{static_cast<int>(h.pid), std::string(locking::LockModeName(h.mode)),
                    h.operation, h.since_unix_ns, static_cast<int>(h.threads)};
}

}  // namespace

Result<LocksReport> ListLocks(const locking::LockSpace& space, bool all) {
  Result<std::vector<locking::LockInfo>> locks = space.List(!all);
  if (!locks.ok()) return locks.status();
  Result<std::vector<locking::LeaseInfo>> leases = space.ListLeases();
  if (!leases.ok()) return leases.status();
  LocksReport out;
  for (const locking::LockInfo& l : *locks) {
    LockEntry e;
    e.name = l.name;
    for (const locking::HolderInfo& h : l.holders) e.holders.push_back(ToHolder(h));
    for (const locking::HolderInfo& w : l.waiters) e.waiters.push_back(ToHolder(w));
    out.locks.push_back(std::move(e));
  }
  for (const locking::LeaseInfo& le : *leases) {
    out.leases.push_back(
        LeaseEntry{le.id, static_cast<int>(le.pid), le.label, le.since_unix_ns, le.alive});
  }
  return out;
}

}  // namespace imgstore::api
