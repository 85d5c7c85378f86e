// The C ABI, part 4: mounts.
#include "api/c_api.h"

using imgstore::capi::Boundary;
using imgstore::capi::FromStatus;
using imgstore::capi::NullArgument;

extern "C" {

imgstore_code imgstore_mount(imgstore_store* store, const char* image, const char* name,
                             const char* kind, imgstore_cancel_token* token,
                             imgstore_mount_info** out, imgstore_error** err) {
  constexpr const char* kFn = "imgstore_mount";
  if (out == nullptr) return NullArgument(err, kFn, "out");
  *out = nullptr;
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (image == nullptr) return NullArgument(err, kFn, "image");
  return Boundary(err, kFn, [&] {
    imgstore::MountOptions options;
    if (name != nullptr) options.name = name;
    if (kind != nullptr) options.kind = kind;
    if (token != nullptr) options.layers.cancel = token->token;
    imgstore::Result<imgstore::MountInfo> m = store->store->Mount(image, options);
    if (!m.ok()) return FromStatus(m.status(), err);
    auto handle = std::make_unique<imgstore_mount_info>();
    handle->info = std::move(*m);
    *out = handle.release();
    return IMGSTORE_OK;
  });
}

void imgstore_mount_info_free(imgstore_mount_info* mount) { delete mount; }
const char* imgstore_mount_info_name(const imgstore_mount_info* mount) {
  return mount == nullptr ? nullptr : mount->info.name.c_str();
}
const char* imgstore_mount_info_path(const imgstore_mount_info* mount) {
  return mount == nullptr ? nullptr : mount->info.path.c_str();
}
const char* imgstore_mount_info_kind(const imgstore_mount_info* mount) {
  return mount == nullptr ? nullptr : mount->info.kind.c_str();
}
const char* imgstore_mount_info_image_id(const imgstore_mount_info* mount) {
  return mount == nullptr ? nullptr : mount->info.image_id.c_str();
}

imgstore_code imgstore_umount(imgstore_store* store, const char* name_or_path,
                              imgstore_error** err) {
  constexpr const char* kFn = "imgstore_umount";
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (name_or_path == nullptr) return NullArgument(err, kFn, "name_or_path");
  return Boundary(err, kFn, [&] { return FromStatus(store->store->Unmount(name_or_path), err); });
}

imgstore_code imgstore_mounts(imgstore_store* store, imgstore_mount_list** out,
                              imgstore_error** err) {
  constexpr const char* kFn = "imgstore_mounts";
  if (out == nullptr) return NullArgument(err, kFn, "out");
  *out = nullptr;
  if (store == nullptr) return NullArgument(err, kFn, "store");
  return Boundary(err, kFn, [&] {
    imgstore::Result<std::vector<imgstore::MountInfo>> all = store->store->Mounts();
    if (!all.ok()) return FromStatus(all.status(), err);
    auto list = std::make_unique<imgstore_mount_list>();
    for (imgstore::MountInfo& m : *all) list->mounts.push_back(imgstore_mount_info{std::move(m)});
    *out = list.release();
    return IMGSTORE_OK;
  });
}

size_t imgstore_mount_list_count(const imgstore_mount_list* list) {
  return list == nullptr ? 0 : list->mounts.size();
}
const imgstore_mount_info* imgstore_mount_list_at(const imgstore_mount_list* list, size_t i) {
  if (list == nullptr || i >= list->mounts.size()) return nullptr;
  return &list->mounts[i];
}
void imgstore_mount_list_free(imgstore_mount_list* list) { delete list; }

}  // extern "C"
