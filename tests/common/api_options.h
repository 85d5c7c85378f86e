// Option values the public-API tests (tests/api) keep asking for, spelled once. Header-only:
// only the API tests link imgstore_api, the rest of tests/common does not.
#pragma once

#include <string>

#include "imgstore/store.hpp"

namespace imgstore::testing {

inline PullOptions Named(const std::string& name) {
  PullOptions o;
  o.names = {name};
  return o;
}

inline CheckOptions Verified() {
  CheckOptions o;
  o.verify_content = true;
  return o;
}

inline CheckOptions Repairing() {
  CheckOptions o;
  o.repair = true;
  return o;
}

}  // namespace imgstore::testing
