// The C ABI, part 5: df, resolve, and registry login and logout.
#include "api/c_api.h"

using imgstore::capi::Boundary;
using imgstore::capi::FromStatus;
using imgstore::capi::NullArgument;

extern "C" {

imgstore_code imgstore_df(imgstore_store* store, imgstore_disk_usage* out, imgstore_error** err) {
  constexpr const char* kFn = "imgstore_df";
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (out == nullptr) return NullArgument(err, kFn, "out");
  return Boundary(err, kFn, [&] {
    imgstore::Result<imgstore::DiskUsage> u = store->store->Df();
    if (!u.ok()) return FromStatus(u.status(), err);
    out->images = u->images;
    out->blobs = u->blobs;
    out->blob_bytes = u->blob_bytes;
    out->reclaimable_blobs = u->reclaimable_blobs;
    out->reclaimable_bytes = u->reclaimable_bytes;
    out->layers = u->layers;
    out->layer_bytes = u->layer_bytes;
    out->reclaimable_layers = u->reclaimable_layers;
    out->reclaimable_layer_bytes = u->reclaimable_layer_bytes;
    return IMGSTORE_OK;
  });
}

imgstore_code imgstore_df_partial_downloads(imgstore_store* store, uint64_t* count, uint64_t* bytes,
                                            imgstore_error** err) {
  constexpr const char* kFn = "imgstore_df_partial_downloads";
  if (store == nullptr) return NullArgument(err, kFn, "store");
  return Boundary(err, kFn, [&] {
    imgstore::Result<imgstore::DiskUsage> u = store->store->Df();
    if (!u.ok()) return FromStatus(u.status(), err);
    if (count != nullptr) *count = u->partial_downloads;
    if (bytes != nullptr) *bytes = u->partial_bytes;
    return IMGSTORE_OK;
  });
}

imgstore_code imgstore_resolve(imgstore_store* store, const char* image, char** image_id,
                               imgstore_error** err) {
  constexpr const char* kFn = "imgstore_resolve";
  if (image_id == nullptr) return NullArgument(err, kFn, "image_id");
  *image_id = nullptr;
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (image == nullptr) return NullArgument(err, kFn, "image");
  return Boundary(err, kFn, [&] {
    imgstore::Result<std::string> id = store->store->Resolve(image);
    if (!id.ok()) return FromStatus(id.status(), err);
    *image_id = imgstore::capi::CopyString(*id);
    return IMGSTORE_OK;
  });
}

imgstore_code imgstore_login(const char* registry, const char* username, const char* password,
                             const imgstore_copy_options* options, imgstore_error** err) {
  constexpr const char* kFn = "imgstore_login";
  if (registry == nullptr) return NullArgument(err, kFn, "registry");
  if (username == nullptr) return NullArgument(err, kFn, "username");
  if (password == nullptr) return NullArgument(err, kFn, "password");
  return Boundary(err, kFn, [&] {
    imgstore::RegistryOptions reg;
    if (options != nullptr) reg = options->registry;
    return FromStatus(imgstore::Login(registry, imgstore::Credentials{username, password}, reg),
                      err);
  });
}

imgstore_code imgstore_logout(const char* registry, const char* auth_file, imgstore_error** err) {
  constexpr const char* kFn = "imgstore_logout";
  return Boundary(err, kFn, [&] {
    const std::string file = auth_file == nullptr ? std::string() : std::string(auth_file);
    if (registry == nullptr) {
      imgstore::Result<size_t> n = imgstore::LogoutAll(file);
      return FromStatus(n.ok() ? imgstore::Status::OK() : n.status(), err);
    }
    imgstore::Result<bool> removed = imgstore::Logout(registry, file);
    if (!removed.ok()) return FromStatus(removed.status(), err);
    if (!*removed) {
      return imgstore::capi::Fail(err, IMGSTORE_ERR_NOT_FOUND,
                                  std::string("logout: not logged in to ") + registry);
    }
    return IMGSTORE_OK;
  });
}

}  // extern "C"
