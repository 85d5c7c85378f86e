// The C ABI, part 1: errors, strings, cancel tokens, opening a store, pull and push options,
// pull and push.
#include <cstdlib>
#include <cstring>
#include <utility>

#include "api/c_api.h"
#include "imgstore/parse.hpp"

namespace imgstore::capi {
namespace {

// Handed out when not even an error object can be allocated; imgstore_error_free skips it.
imgstore_error* NoMemoryError() {
  static imgstore_error error{IMGSTORE_ERR_NO_MEMORY, "out of memory"};
  return &error;
}

imgstore_code ToCode(Code code) {
  // The enum values are the same by construction (imgstore.h mirrors Code).
  static_assert(static_cast<int>(Code::kInternal) == IMGSTORE_ERR_INTERNAL);
  static_assert(static_cast<int>(Code::kCancelled) == IMGSTORE_ERR_CANCELLED);
  static_assert(static_cast<int>(Code::kInvalidArgument) == IMGSTORE_ERR_INVALID_ARGUMENT);
  return static_cast<imgstore_code>(code);
}

}  // namespace

imgstore_code Fail(imgstore_error** err, imgstore_code code, std::string message) noexcept {
  if (err == nullptr) return code;
  try {
    *err = new imgstore_error{code, std::move(message)};
  } catch (...) {
    *err = NoMemoryError();
  }
  return code;
}

imgstore_code FromStatus(const Status& status, imgstore_error** err) noexcept {
  if (status.ok()) return IMGSTORE_OK;
  try {
    return Fail(err, ToCode(status.code()), status.message());
  } catch (...) {  // the copy of the message
    return Fail(err, ToCode(status.code()), std::string());
  }
}

imgstore_code NullArgument(imgstore_error** err, const char* function, const char* name) noexcept {
  try {
    return Fail(err, IMGSTORE_ERR_INVALID_ARGUMENT,
                std::string(function) + ": " + name + " is NULL");
  } catch (...) {
    return Fail(err, IMGSTORE_ERR_NO_MEMORY, "out of memory");
  }
}

char* CopyString(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out == nullptr) throw std::bad_alloc();
  std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

namespace {

// The options of a pull or push built from the C options (null: the defaults).
PullOptions ToPullOptions(const imgstore_copy_options* o) {
  PullOptions p;
  if (o == nullptr) return p;
  p.platform = o->platform;
  p.names = o->names;
  p.max_parallel = o->max_parallel;
  p.registry = o->registry;
  p.cancel = o->cancel;
  if (o->progress != nullptr) {
    p.on_progress = [fn = o->progress, user = o->progress_user](const Progress& pr) {
      fn(user, pr.digest.c_str(), pr.done, pr.total, pr.skipped ? 1 : 0);
    };
  }
  return p;
}

PushOptions ToPushOptions(const imgstore_copy_options* o) {
  PullOptions pull = ToPullOptions(o);
  PushOptions p;
  p.max_parallel = pull.max_parallel;
  p.registry = std::move(pull.registry);
  p.on_progress = std::move(pull.on_progress);
  p.cancel = std::move(pull.cancel);
  return p;
}

// Sets an optional string field of the options: "" or NULL clears it.
template <typename Set>
imgstore_code SetOption(imgstore_copy_options* o, imgstore_error** err, const char* function,
                        Set&& set) noexcept {
  if (o == nullptr) return NullArgument(err, function, "options");
  return Boundary(err, function, [&] {
    set(*o);
    return IMGSTORE_OK;
  });
}

}  // namespace
}  // namespace imgstore::capi

using imgstore::capi::Boundary;
using imgstore::capi::Fail;
using imgstore::capi::FromStatus;
using imgstore::capi::NullArgument;

extern "C" {

const char* imgstore_version(void) { return imgstore::Version(); }

const char* imgstore_code_name(imgstore_code code) {
  switch (code) {
    case IMGSTORE_OK:
      return "OK";
    case IMGSTORE_ERR_INVALID_ARGUMENT:
      return "invalid argument";
    case IMGSTORE_ERR_NOT_FOUND:
      return "not found";
    case IMGSTORE_ERR_ALREADY_EXISTS:
      return "already exists";
    case IMGSTORE_ERR_CORRUPTION:
      return "corruption";
    case IMGSTORE_ERR_IO:
      return "I/O error";
    case IMGSTORE_ERR_NO_SPACE:
      return "no space";
    case IMGSTORE_ERR_PERMISSION_DENIED:
      return "permission denied";
    case IMGSTORE_ERR_TIMEOUT:
      return "timeout";
    case IMGSTORE_ERR_BUSY:
      return "busy";
    case IMGSTORE_ERR_UNAVAILABLE:
      return "unavailable";
    case IMGSTORE_ERR_FAILED_PRECONDITION:
      return "failed precondition";
    case IMGSTORE_ERR_CANCELLED:
      return "cancelled";
    case IMGSTORE_ERR_UNSUPPORTED:
      return "unsupported";
    case IMGSTORE_ERR_INTERNAL:
      return "internal error";
    case IMGSTORE_ERR_NO_MEMORY:
      return "out of memory";
  }
  return "unknown";
}

imgstore_code imgstore_error_code(const imgstore_error* err) {
  return err == nullptr ? IMGSTORE_OK : err->code;
}

const char* imgstore_error_message(const imgstore_error* err) {
  return err == nullptr ? "" : err->message.c_str();
}

void imgstore_error_free(imgstore_error* err) {
  if (err == nullptr || err == imgstore::capi::NoMemoryError()) return;
  delete err;
}

void imgstore_string_free(char* s) { std::free(s); }

imgstore_cancel_token* imgstore_cancel_token_new(void) {
  try {
    return new imgstore_cancel_token();
  } catch (...) {
    return nullptr;
  }
}

imgstore_code imgstore_cancel_token_cancel(imgstore_cancel_token* token, imgstore_error** err) {
  if (token == nullptr) return NullArgument(err, "imgstore_cancel_token_cancel", "token");
  token->token.Cancel();
  return IMGSTORE_OK;
}

int imgstore_cancel_token_is_cancelled(const imgstore_cancel_token* token) {
  return token != nullptr && token->token.cancelled() ? 1 : 0;
}

void imgstore_cancel_token_free(imgstore_cancel_token* token) { delete token; }

imgstore_code imgstore_store_open(const char* root, int64_t lock_timeout_ms, imgstore_store** out,
                                  imgstore_error** err) {
  return imgstore_store_open_with_limits(root, lock_timeout_ms, nullptr, out, err);
}

imgstore_code imgstore_store_open_with_limits(const char* root, int64_t lock_timeout_ms,
                                              const char* limits, imgstore_store** out,
                                              imgstore_error** err) {
  constexpr const char* kFn = "imgstore_store_open";
  if (out == nullptr) return NullArgument(err, kFn, "out");
  *out = nullptr;
  if (lock_timeout_ms < 0) {
    return Fail(err, IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_store_open: negative lock timeout");
  }
  return Boundary(err, kFn, [&] {
    imgstore::StoreOptions options;
    if (lock_timeout_ms > 0) options.lock_timeout = std::chrono::milliseconds(lock_timeout_ms);
    std::string_view list = limits == nullptr ? "" : limits;
    while (!list.empty()) {
      const size_t comma = list.find(',');
      imgstore::Status s = imgstore::SetLimit(list.substr(0, comma), &options.limits);
      if (!s.ok()) return FromStatus(s.WithContext(kFn), err);
      list = comma == std::string_view::npos ? "" : list.substr(comma + 1);
    }
    imgstore::Result<std::unique_ptr<imgstore::Store>> s =
        imgstore::Store::Open(root == nullptr ? "" : root, options);
    if (!s.ok()) return FromStatus(s.status(), err);
    auto handle = std::make_unique<imgstore_store>();
    handle->store = std::move(*s);
    *out = handle.release();
    return IMGSTORE_OK;
  });
}

void imgstore_store_close(imgstore_store* store) { delete store; }

const char* imgstore_store_root(const imgstore_store* store) {
  return store == nullptr ? nullptr : store->store->root().c_str();
}

imgstore_copy_options* imgstore_copy_options_new(void) {
  try {
    return new imgstore_copy_options();
  } catch (...) {
    return nullptr;
  }
}

void imgstore_copy_options_free(imgstore_copy_options* options) { delete options; }

imgstore_code imgstore_copy_options_set_platform(imgstore_copy_options* options,
                                                 const char* platform, imgstore_error** err) {
  return imgstore::capi::SetOption(
      options, err, "imgstore_copy_options_set_platform",
      [&](imgstore_copy_options& o) { o.platform = platform == nullptr ? "" : platform; });
}

imgstore_code imgstore_copy_options_add_name(imgstore_copy_options* options, const char* name,
                                             imgstore_error** err) {
  if (options != nullptr && name == nullptr) {
    return NullArgument(err, "imgstore_copy_options_add_name", "name");
  }
  return imgstore::capi::SetOption(options, err, "imgstore_copy_options_add_name",
                                   [&](imgstore_copy_options& o) { o.names.push_back(name); });
}

imgstore_code imgstore_copy_options_set_max_parallel(imgstore_copy_options* options,
                                                     int max_parallel, imgstore_error** err) {
  if (options != nullptr && (max_parallel < 1 || max_parallel > 64)) {
    return Fail(err, IMGSTORE_ERR_INVALID_ARGUMENT,
                "imgstore_copy_options_set_max_parallel: " + std::to_string(max_parallel) +
                    " is not in 1..64");
  }
  return imgstore::capi::SetOption(
      options, err, "imgstore_copy_options_set_max_parallel",
      [&](imgstore_copy_options& o) { o.max_parallel = max_parallel; });
}

imgstore_code imgstore_copy_options_set_credentials(imgstore_copy_options* options,
                                                    const char* user_password,
                                                    imgstore_error** err) {
  return imgstore::capi::SetOption(
      options, err, "imgstore_copy_options_set_credentials", [&](imgstore_copy_options& o) {
        o.registry.credentials = user_password == nullptr ? "" : user_password;
      });
}

imgstore_code imgstore_copy_options_set_auth_file(imgstore_copy_options* options, const char* path,
                                                  imgstore_error** err) {
  return imgstore::capi::SetOption(
      options, err, "imgstore_copy_options_set_auth_file",
      [&](imgstore_copy_options& o) { o.registry.auth_file = path == nullptr ? "" : path; });
}

imgstore_code imgstore_copy_options_set_cert_dir(imgstore_copy_options* options, const char* dir,
                                                 imgstore_error** err) {
  return imgstore::capi::SetOption(
      options, err, "imgstore_copy_options_set_cert_dir",
      [&](imgstore_copy_options& o) { o.registry.cert_dir = dir == nullptr ? "" : dir; });
}

imgstore_code imgstore_copy_options_set_tls_verify(imgstore_copy_options* options, int verify,
                                                   imgstore_error** err) {
  return imgstore::capi::SetOption(
      options, err, "imgstore_copy_options_set_tls_verify",
      [&](imgstore_copy_options& o) { o.registry.tls_verify = verify != 0; });
}

imgstore_code imgstore_copy_options_set_progress(imgstore_copy_options* options,
                                                 imgstore_progress_fn fn, void* user,
                                                 imgstore_error** err) {
  return imgstore::capi::SetOption(options, err, "imgstore_copy_options_set_progress",
                                   [&](imgstore_copy_options& o) {
                                     o.progress = fn;
                                     o.progress_user = user;
                                   });
}

imgstore_code imgstore_copy_options_set_cancel(imgstore_copy_options* options,
                                               imgstore_cancel_token* token, imgstore_error** err) {
  return imgstore::capi::SetOption(options, err, "imgstore_copy_options_set_cancel",
                                   [&](imgstore_copy_options& o) {
                                     if (token == nullptr) {
                                       o.cancel.reset();
                                     } else {
                                       o.cancel = token->token;
                                     }
                                   });
}

imgstore_code imgstore_pull(imgstore_store* store, const char* source,
                            const imgstore_copy_options* options, char** image_id,
                            imgstore_error** err) {
  constexpr const char* kFn = "imgstore_pull";
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (source == nullptr) return NullArgument(err, kFn, "source");
  return Boundary(err, kFn, [&] {
    imgstore::Result<imgstore::PullResult> r =
        store->store->Pull(source, imgstore::capi::ToPullOptions(options));
    if (!r.ok()) return FromStatus(r.status(), err);
    if (image_id != nullptr) *image_id = imgstore::capi::CopyString(r->id);
    return IMGSTORE_OK;
  });
}

imgstore_code imgstore_push(imgstore_store* store, const char* image, const char* destination,
                            const imgstore_copy_options* options, char** manifest_digest,
                            imgstore_error** err) {
  constexpr const char* kFn = "imgstore_push";
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (image == nullptr) return NullArgument(err, kFn, "image");
  return Boundary(err, kFn, [&] {
    imgstore::Result<imgstore::PushResult> r = store->store->Push(
        image, destination == nullptr ? "" : destination, imgstore::capi::ToPushOptions(options));
    if (!r.ok()) return FromStatus(r.status(), err);
    if (manifest_digest != nullptr) {
      *manifest_digest = imgstore::capi::CopyString(r->manifest_digest);
    }
    return IMGSTORE_OK;
  });
}

}  // extern "C"
