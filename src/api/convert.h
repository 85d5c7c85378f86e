// Shared pieces of src/api: the pimpl of imgstore::Store, conversions from the public option
// types to the internal ones, and the guard that turns an escaping exception into a Status at
// the API boundary.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "images/reference.h"
#include "imgstore/store.hpp"
#include "locking/locking.h"
#include "registry/registry_options.h"
#include "store/store.h"
#include "transports/transports.h"
#include "util/status.h"

namespace imgstore {

struct Store::Impl {
  std::unique_ptr<store::Store> store;
  Limits limits;
};

namespace api {

// The internal form of a token: empty when there is none, so the store skips the polling.
std::function<bool()> CancelHook(const std::optional<CancelToken>& token);

// Registry options with the cancel hook in the HTTP client (a stalled transfer stops too).
Result<registry::RegistryOptions> ToRegistryOptions(const RegistryOptions& options,
                                                    std::function<bool()> cancelled);

// Layer options with the store's extraction bounds.
store::LayerUseOptions ToLayerUseOptions(const LayerOptions& options, std::string operation,
                                         const Limits& limits);

// Limits (src/api/limits.cc): every bound in its range (kInvalidArgument naming the first
// that is not), and each bound in the internal struct that applies it.
Status CheckLimits(const Limits& limits);
images::ParseLimits ToParseLimits(const Limits& limits);
layers::DecompressLimits ToDecompressLimits(const Limits& limits);
layers::ExtractLimits ToExtractLimits(const Limits& limits);
transports::SourceLimits ToSourceLimits(const Limits& limits);

Reference ToReference(const images::Reference& r);

// The locks and leases of a lock space, as Store::Locks and Store::ListLocks report them.
Result<LocksReport> ListLocks(const locking::LockSpace& space, bool all);

// Runs f; an exception that escapes it (std::bad_alloc above all, or one thrown by a caller's
// callback on the calling thread) becomes a kInternal status naming `what`.
template <typename F>
auto Guarded(std::string_view what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Status(Code::kInternal, std::string(what) + ": out of memory");
  } catch (const std::exception& e) {
    return Status(Code::kInternal, std::string(what) + ": unexpected exception: " + e.what());
  } catch (...) {
    return Status(Code::kInternal, std::string(what) + ": unexpected exception");
  }
}

}  // namespace api
}  // namespace imgstore
