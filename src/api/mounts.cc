// imgstore::Store's mounts (include/imgstore/store.hpp) over store::Store's Mount, Unmount and
// ListMounts.
#include "api/convert.h"
#include "imgstore/store.hpp"

namespace imgstore {
namespace {

MountInfo ToMountInfo(const store::MountInfo& m) {
  MountInfo out;
  out.name = m.name;
  out.image_id = m.image_id.ToString();
  out.manifest_digest = m.manifest_digest.ToString();
  out.image_name = m.image_name;
  out.path = m.path;
  out.upper_dir = m.upper_dir;
  out.kind = m.kind;
  out.mounted = m.mounted;
  out.created_unix_ns = m.created_unix_ns;
  for (const Digest& c : m.chain_ids) out.layers.push_back(c.ToString());
  return out;
}

}  // namespace

Result<MountInfo> Store::Mount(std::string_view image, const MountOptions& options) {
  return api::Guarded("mount", [&]() -> Result<MountInfo> {
    store::MountOptions mo;
    mo.name = options.name;
    mo.kind = options.kind;
    mo.layers =
        api::ToLayerUseOptions(options.layers, "mount " + std::string(image), impl_->limits);
    if (mo.layers.extract.cancelled && mo.layers.extract.cancelled()) {
      return Status(Code::kCancelled, "mount " + std::string(image) + ": cancelled");
    }
    Result<store::MountInfo> m = impl_->store->Mount(image, mo);
    if (!m.ok()) return m.status();
    return ToMountInfo(*m);
  });
}

Status Store::Unmount(std::string_view name_or_path) {
  return api::Guarded("umount", [&] { return impl_->store->Unmount(name_or_path); });
}

Result<std::vector<MountInfo>> Store::Mounts() {
  return api::Guarded("mounts", [&]() -> Result<std::vector<MountInfo>> {
    Result<std::vector<store::MountInfo>> all = impl_->store->ListMounts();
    if (!all.ok()) return all.status();
    std::vector<MountInfo> out;
    for (const store::MountInfo& m : *all) out.push_back(ToMountInfo(m));
    return out;
  });
}

}  // namespace imgstore
