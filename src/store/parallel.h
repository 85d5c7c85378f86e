// RunParallel: a fixed list of independent tasks (the layers of a pull) run by up to N threads,
// stopping at the first error. Kept apart from pull.cc so that the stop-and-join rules are
// tested on their own.
#pragma once

#include <cstddef>
#include <functional>

#include "util/status.h"

namespace imgstore::store::internal {

// Runs work(0) ... work(count - 1), each once, on up to `max_workers` threads: the calling
// thread and at most max_workers - 1 others (fewer when the system refuses a thread). Tasks are
// started in index order. The first error (in time) stops tasks that have not started; those in
// flight run to their end. Every thread is joined before it returns, on every path; the result is
// that first error, or OK. `work` must be safe to call from several threads at once. An
// exception out of `work` is an error like the others (kInternal naming it), on any thread.
Status RunParallel(size_t count, int max_workers, const std::function<Status(size_t)>& work);

}  // namespace imgstore::store::internal
