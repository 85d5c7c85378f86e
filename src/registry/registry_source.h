// RegistrySource: an images::ImageSource that reads an image from a registry over the OCI
// distribution API (GET manifests by tag or digest, GET blobs), for Store::Pull.
//
// The store verifies every blob's digest and size while it ingests; this source verifies what
// it can without the store: a manifest asked for by digest must hash to it, a manifest is never
// buffered beyond ParseLimits::max_manifest_bytes, and a blob stream ends at the descriptor's
// size even if the registry sends more.
//
// A blob transfer that breaks (dropped connection, stall) is resumed where it stopped with
// `Range: bytes=N-` (a 206 must say Content-Range "bytes N-..."; a 200 means the registry
// ignored Range and its first N bytes are skipped), up to RetryOptions::max_attempts times per
// blob. GetBlob may be called from several threads at once (ConcurrentBlobs), each returned file
// read by one thread; the files must not outlive the source. BlobOrigin() is
// "HOST/NAME" (RegistryClient::host(), the reference's path).
#pragma once

#include <memory>

#include "images/manifest.h"
#include "images/reference.h"
#include "images/transport.h"
#include "registry/registry_options.h"
#include "util/status.h"

namespace imgstore::registry {

// The Accept header of manifest requests: every manifest type imgstore can store.
extern const char* const kManifestAccept;

// A source for `ref` (a reference without tag or digest means tag "latest"). Reads no network
// yet; errors are those of RegistryClient::Create (credentials, cert dir).
Result<std::unique_ptr<images::ImageSource>> OpenRegistrySource(
    const images::Reference& ref, const RegistryOptions& options,
    const images::ParseLimits& limits = {});

}  // namespace imgstore::registry
