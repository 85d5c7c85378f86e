// RunParallel (see parallel.h).
#include "store/parallel.h"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace imgstore::store::internal {

Status RunParallel(size_t count, int max_workers, const std::function<Status(size_t)>& work) {
  std::mutex mu;
  size_t next = 0;  // the next task to start; guarded by mu
  Status first_error;
  auto loop = [&] {
    for (;;) {
      size_t i = 0;
      {
        std::lock_guard lock(mu);
        if (!first_error.ok() || next >= count) return;
        i = next++;
      }
      // An exception would end the process out of a helper thread, and skip the stop of the
      // others out of the caller's.
      Status s = CatchExceptions([&] { return work(i); });
      if (!s.ok()) {
        std::lock_guard lock(mu);
        if (first_error.ok()) first_error = std::move(s);
      }
    }
  };
  const size_t workers = std::min(count, static_cast<size_t>(std::max(max_workers, 1)));
  {
    // Declared after everything `loop` uses, so the destructor joins them before any of it goes.
    std::vector<std::jthread> helpers;
    for (size_t k = 1; k < workers; ++k) {
      try {
        helpers.emplace_back(loop);
      } catch (const std::exception&) {
        break;  // no thread to be had (system_error, bad_alloc): the running ones do the work
      }
    }
    loop();
  }
  return first_error;
}

}  // namespace imgstore::store::internal
