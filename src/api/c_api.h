// The C ABI's handles (the structs behind include/imgstore/imgstore.h's opaque types) and the
// boundary helpers every C function uses: argument checks, Status → imgstore_error, and the
// catch-all that keeps exceptions from crossing into C.
#pragma once

#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "imgstore/imgstore.h"
#include "imgstore/store.hpp"

struct imgstore_error {
  imgstore_code code;
  std::string message;
};

struct imgstore_store {
  std::unique_ptr<imgstore::Store> store;
};

struct imgstore_cancel_token {
  imgstore::CancelToken token;
};

struct imgstore_copy_options {
  std::string platform;
  std::vector<std::string> names;
  int max_parallel = 3;
  imgstore::RegistryOptions registry;
  imgstore_progress_fn progress = nullptr;
  void* progress_user = nullptr;
  std::optional<imgstore::CancelToken> cancel;
};

struct imgstore_image {
  imgstore::ImageDetails details;
  bool inspected = false;  // manifest, config and layers are filled
};

struct imgstore_image_list {
  std::vector<imgstore_image> images;
};

struct imgstore_mount_info {
  imgstore::MountInfo info;
};

struct imgstore_mount_list {
  std::vector<imgstore_mount_info> mounts;
};

struct imgstore_check_report {
  imgstore::CheckReport report;
};

struct imgstore_lock_list {
  struct Row {
    std::string name;
    std::string state;
    int pid = 0;
    std::string operation;
  };
  std::vector<Row> rows;
};

namespace imgstore::capi {

// Records a failure in *err (when err is not null) and returns code. Never throws: without
// memory for the message, *err is a shared static "out of memory" error.
imgstore_code Fail(imgstore_error** err, imgstore_code code, std::string message) noexcept;
// OK → IMGSTORE_OK; else Fail with the status's code and message.
imgstore_code FromStatus(const Status& status, imgstore_error** err) noexcept;
// "FUNCTION: NAME is NULL" (IMGSTORE_ERR_INVALID_ARGUMENT).
imgstore_code NullArgument(imgstore_error** err, const char* function, const char* name) noexcept;
// A copy of s the caller frees with imgstore_string_free (free()).
char* CopyString(const std::string& s);

// Runs f (which returns imgstore_code) and turns any exception into an error: bad_alloc into
// IMGSTORE_ERR_NO_MEMORY, anything else into IMGSTORE_ERR_INTERNAL.
template <typename F>
imgstore_code Boundary(imgstore_error** err, const char* function, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Fail(err, IMGSTORE_ERR_NO_MEMORY, std::string(function) + ": out of memory");
  } catch (const std::exception& e) {
    return Fail(err, IMGSTORE_ERR_INTERNAL,
                std::string(function) + ": unexpected exception: " + e.what());
  } catch (...) {
    return Fail(err, IMGSTORE_ERR_INTERNAL, std::string(function) + ": unexpected exception");
  }
}

}  // namespace imgstore::capi
