// Status and Result<T> for the code inside imgstore: the public definition
// (include/imgstore/status.hpp, shared with embedders) plus the internal helper macro.
#pragma once

// A path relative to this file, so that no target needs another include directory.
#include "../../include/imgstore/status.hpp"

// Returns early from the enclosing function when a Status-returning expression fails.
#define IMGSTORE_RETURN_IF_ERROR(expr) \
  do {                                 \
    ::imgstore::Status _st = (expr);   \
    if (!_st.ok()) return _st;         \
  } while (0)
