// BlobUploader: gets one blob (config or layer) into a registry repository for
// RegistryDestination: HEAD to skip it, a cross-repository mount, else an upload session
// (monolithic PUT, or one streamed PATCH and a closing PUT) started again while it fails for a
// passing reason (docs/registry.md, "Push").
//
// One BlobUploader serves all the worker threads of a push: its methods are const and keep no
// state between calls; what they share (the client, the progress callback) is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "images/manifest.h"
#include "images/transport.h"
#include "registry/registry_client.h"
#include "registry/registry_options.h"
#include "util/status.h"

namespace imgstore::registry {

struct BlobUploadContext {
  RegistryClient* client = nullptr;
  std::string path;                             // the destination repository's path ("a/b")
  std::string scope;                            // "repository:a/b:pull,push"
  const images::ImageToWrite* image = nullptr;  // open_blob, origins
  uint64_t monolithic_upload_max = 0;
  RetryOptions retry;
  // Reports a blob that was not sent (skipped, mounted); may be empty. Called from the workers.
  std::function<void(const images::BlobProgress&)> report;
  // Waits this long before the next attempt of an upload; false when the push is being given up
  // (another blob failed), which ends the retries at once. Empty: a plain sleep.
  std::function<bool(std::chrono::milliseconds)> backoff;
};

class BlobUploader {
 public:
  explicit BlobUploader(BlobUploadContext context) : c_(std::move(context)) {}

  // HEAD /v2/PATH/blobs/DIGEST: true when the repository holds the blob with the descriptor's
  // size, false on 404 (or another size); other answers are errors.
  Result<bool> Exists(const images::Descriptor& d) const;

  // Makes the repository hold the blob. `known_present` is the answer of an Exists() already
  // made for it (the HEAD is then not repeated).
  Status Push(const images::Descriptor& d, std::optional<bool> known_present = {}) const;

 private:
  // A mount from the image's origins on this registry: true when mounted (201); *session is set
  // to the upload session a 202 opened instead. Never an error: a failed mount means an upload.
  bool TryMount(const images::Descriptor& d, std::string* session) const;
  // One attempt of an upload, in `session` when given (else a new one).
  Status UploadOnce(const images::Descriptor& d, std::string session) const;
  Result<std::string> StartSession(const std::string& what) const;
  void Cancel(const std::string& location) const;
  std::string What(const images::Descriptor& d) const;

  BlobUploadContext c_;
};

// The absolute URL of an upload's Location header: as is when absolute, else resolved against
// the registry's base URL ("https://host:port") or, for a relative path without a leading "/",
// against the URL of the request it answered. The query is kept exactly.
std::string ResolveLocation(const std::string& base_url, const std::string& request_url,
                            const std::string& location);

// `url` with one more query parameter ("k=v"), after its own query when it has one.
std::string AppendQuery(const std::string& url, const std::string& param);

}  // namespace imgstore::registry
