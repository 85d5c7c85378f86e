// imgstore::Store::Unpack (include/imgstore/store.hpp) over store::Store::Unpack.
#include "api/convert.h"
#include "imgstore/store.hpp"

namespace imgstore {

Result<UnpackResult> Store::Unpack(std::string_view image, const std::string& dir,
                                   const UnpackOptions& options) {
  return api::Guarded("unpack", [&]() -> Result<UnpackResult> {
    store::UnpackOptions uo;
    uo.use_cache = options.use_cache;
    uo.layers =
        api::ToLayerUseOptions(options.layers, "unpack " + std::string(image), impl_->limits);
    if (uo.layers.extract.cancelled && uo.layers.extract.cancelled()) {
      return Status(Code::kCancelled, "unpack " + std::string(image) + ": cancelled");
    }
    Result<store::UnpackResult> r = impl_->store->Unpack(image, dir, uo);
    if (!r.ok()) return r.status();
    UnpackResult out;
    out.id = r->image_id.ToString();
    out.layers = r->layers;
    out.layers_extracted = r->layers_extracted;
    out.entries = r->entries;
    out.file_bytes = r->file_bytes;
    return out;
  });
}

}  // namespace imgstore
