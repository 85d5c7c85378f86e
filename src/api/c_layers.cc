// The C ABI, part 3: unpacking an image's root filesystem.
#include "api/c_api.h"

using imgstore::capi::Boundary;
using imgstore::capi::FromStatus;
using imgstore::capi::NullArgument;

extern "C" {

imgstore_code imgstore_unpack(imgstore_store* store, const char* image, const char* dir,
                              imgstore_cancel_token* token, imgstore_error** err) {
  constexpr const char* kFn = "imgstore_unpack";
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (image == nullptr) return NullArgument(err, kFn, "image");
  if (dir == nullptr) return NullArgument(err, kFn, "dir");
  return Boundary(err, kFn, [&] {
    imgstore::UnpackOptions options;
    if (token != nullptr) options.layers.cancel = token->token;
    return FromStatus(store->store->Unpack(image, dir, options).status(), err);
  });
}

}  // extern "C"
