// The C ABI, part 5: commit.
#include "api/c_api.h"

using imgstore::capi::Boundary;
using imgstore::capi::FromStatus;
using imgstore::capi::NullArgument;

extern "C" {

imgstore_code imgstore_commit(imgstore_store* store, const char* source, const char* base_image,
                              const char* name, char** image_id, imgstore_error** err) {
  constexpr const char* kFn = "imgstore_commit";
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (source == nullptr) return NullArgument(err, kFn, "source");
  return Boundary(err, kFn, [&] {
    imgstore::CommitOptions options;
    if (name != nullptr) options.names.push_back(name);
    imgstore::Result<imgstore::CommitResult> r =
        store->store->Commit(source, base_image == nullptr ? "" : base_image, options);
    if (!r.ok()) return FromStatus(r.status(), err);
    if (image_id != nullptr) *image_id = imgstore::capi::CopyString(r->id);
    return IMGSTORE_OK;
  });
}

}  // extern "C"
