// imgstore::Store::Commit (include/imgstore/store.hpp) over store::Store::Commit.
#include "api/convert.h"
#include "imgstore/store.hpp"

namespace imgstore {

Result<CommitResult> Store::Commit(std::string_view source, std::string_view base_image,
                                   const CommitOptions& options) {
  return api::Guarded("commit", [&]() -> Result<CommitResult> {
    store::CommitOptions co;
    if (options.compression == "gzip") {
      co.compression = layers::Compression::kGzip;
    } else if (options.compression == "zstd") {
      co.compression = layers::Compression::kZstd;
    } else if (options.compression == "none") {
      co.compression = layers::Compression::kNone;
    } else {
      return Status(Code::kInvalidArgument, "commit: compression \"" + options.compression +
                                                "\" is not gzip, zstd or none");
    }
    co.names = options.names;
    co.author = options.author;
    co.message = options.message;
    co.created_by = options.created_by;
    co.operation = "commit " + std::string(source);
    co.cancelled = api::CancelHook(options.cancel);
    Result<store::CommitResult> r = impl_->store->Commit(source, base_image, co);
    if (!r.ok()) return r.status();
    CommitResult out;
    out.id = r->image.id.ToString();
    out.manifest_digest = r->image.manifest_digest.ToString();
    if (!r->layer_digest.ToString().empty()) {
      out.layer_digest = r->layer_digest.ToString();
      out.layer_size = r->layer_size;
      out.diff_id = r->diff_id.ToString();
    }
    return out;
  });
}

}  // namespace imgstore
