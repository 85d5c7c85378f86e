// Store::Push: writes a stored image to any ImageDestination, byte for byte (the manifest and
// blobs as they were pulled, so digests survive the copy). docs/pull-push.md has the details.
//
// No store lock is held while the destination is written: the image is resolved in a read
// snapshot, and a lease pins its blobs so that a gc (or an rmi followed by a gc) running during
// a long push cannot take them. The lease exists before the snapshot is read, so there is no
// moment at which the blobs are neither referenced by the resolved record nor pinned, except
// for a gc that finished between the snapshot and the pin, which the check after the pin sees.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "images/manifest.h"
#include "store/store.h"

namespace imgstore::store {

Status Store::Push(std::string_view image, images::ImageDestination& destination,
                   const PushOptions& options) {
  const std::string what = "push " + std::string(image) + " to " + destination.Describe();
  const std::string label = options.operation.empty() ? what : options.operation;

  Result<std::unique_ptr<StoreLease>> lease = CreateLease(label);
  if (!lease.ok()) return lease.status().WithContext(what);
  Result<ImageDetails> details = InspectImage(image);
  if (!details.ok()) return details.status().WithContext(what);

  std::vector<Digest> blobs = {details->summary.manifest_digest, details->summary.id};
  for (const LayerRecord& l : details->layers) blobs.push_back(l.digest);
  Status s = (*lease)->Pin(blobs);
  if (!s.ok()) return s.WithContext(what);
  // A gc that removed the image and its blobs between the snapshot and the pin: say so now
  // rather than half-way through the destination.
  for (const Digest& d : blobs) {
    Result<bool> has = HasBlob(d);
    if (!has.ok()) return has.status().WithContext(what);
    if (!*has) {
      return Status(Code::kNotFound, what + ": blob " + d.ToString() +
                                         " was removed while the push began (image removed?)");
    }
  }

  images::ImageToWrite out;
  out.manifest.bytes = std::move(details->manifest);
  Result<images::ImageManifest> parsed =
      images::ParseImageManifest(out.manifest.bytes, details->manifest_media_type);
  if (!parsed.ok()) return parsed.status().WithContext(what + ": stored manifest");
  out.manifest.media_type =
      details->manifest_media_type.empty() ? parsed->media_type : details->manifest_media_type;
  out.parsed = std::move(*parsed);
  out.config = std::move(details->config);
  for (const LayerRecord& l : details->layers) out.diff_ids.push_back(l.diff_id);
  out.names = details->summary.names;
  std::sort(out.names.begin(), out.names.end());
  // Only the image's own blobs: a destination asking for anything else is a bug, not a reason
  // to read some other blob of the store.
  std::vector<Digest> allowed = blobs;
  out.open_blob =
      [this, allowed](const images::Descriptor& d) -> Result<std::unique_ptr<SequentialFile>> {
    if (std::find(allowed.begin(), allowed.end(), d.digest) == allowed.end()) {
      return Status(Code::kNotFound, "blob " + d.digest.ToString() + " is not part of the image");
    }
    return OpenBlob(d.digest);
  };

  s = destination.PutImage(out);
  if (!s.ok()) return s.WithContext(what);
  return (*lease)->Release().WithContext(what);
}

}  // namespace imgstore::store
