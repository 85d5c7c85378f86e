// Fuzz target: image references (images::ParseReference). Beyond not crashing, a parsed
// reference must come back unchanged from its String() and Familiar() forms, as reference.h
// promises: the store keys names by String(), and `list` prints Familiar().
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "images/reference.h"

using imgstore::fuzz::Check;
using imgstore::images::ParseReference;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto ref = ParseReference(imgstore::fuzz::AsText(data, size));
  if (!ref.ok()) {
    Check(!ref.status().message().empty(), "an error without a message");
    return 0;
  }
  Check(!ref->domain.empty() && !ref->path.empty(), "a reference without domain or path");
  auto again = ParseReference(ref->String());
  Check(again.ok() && *again == *ref, "ParseReference(String()) differs: " + ref->String());
  auto familiar = ParseReference(ref->Familiar());
  Check(familiar.ok() && *familiar == *ref,
        "ParseReference(Familiar()) differs: " + ref->Familiar());
  auto tagged = ParseReference(ref->WithDefaultTag().String());
  Check(tagged.ok() && (tagged->tag || tagged->digest), "WithDefaultTag() has no tag");
  (void)ref->FamiliarRepository();
  (void)ref->RegistryHost();
  return 0;
}
