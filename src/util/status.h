// Status and Result<T> for the code inside imgstore: the public definition
// (include/imgstore/status.hpp, shared with embedders) plus the internal helper macro.
#pragma once

#include <exception>
#include <string>

// A path relative to this file, so that no target needs another include directory.
#include "../../include/imgstore/status.hpp"

// Returns early from the enclosing function when a Status-returning expression fails.
#define IMGSTORE_RETURN_IF_ERROR(expr) \
  do {                                 \
    ::imgstore::Status _st = (expr);   \
    if (!_st.ok()) return _st;         \
  } while (0)

namespace imgstore {

// Runs f (returning a Status) on a worker thread's behalf: an exception out of it (a caller's
// callback that throws) becomes kInternal "unexpected exception: WHAT" instead of ending the
// process, as it would out of a std::thread.
template <typename F>
Status CatchExceptions(F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status(Code::kInternal, std::string("unexpected exception: ") + e.what());
  } catch (...) {
    return Status(Code::kInternal, "unexpected exception");
  }
}

}  // namespace imgstore
