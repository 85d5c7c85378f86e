// RegistryDestination: an images::ImageDestination that pushes an image to a registry over the
// OCI distribution API, for Store::Push (docs/registry.md, "Push").
//
// For each blob (config and layers, up to ImageToWrite::max_parallel at once): HEAD to skip a
// blob the repository already has (its size must match); else a cross-repository mount
// (POST ?mount=&from=) when ImageToWrite::origins names another repository of the same registry
// (201: done; 202: the answer is an upload session, used as if no mount had been asked); else an
// upload: POST a session, then for blobs up to monolithic_upload_max one PUT ?digest= with the
// body, for larger ones one streamed PATCH and a closing PUT ?digest=. An upload that fails for a
// passing reason starts again, as RetryOptions allows. Last, the manifest: PUT with the exact
// bytes and Content-Type equal to its media type; the registry's Docker-Content-Digest, when
// given, must equal the digest of those bytes.
//
// The tag: the reference's tag, or its digest (which must then be the manifest's), or "latest".
#pragma once

#include <memory>

#include "images/reference.h"
#include "images/transport.h"
#include "registry/registry_options.h"
#include "util/status.h"

namespace imgstore::registry {

// A destination for `ref`. No network traffic yet; errors are those of RegistryClient::Create.
Result<std::unique_ptr<images::ImageDestination>> OpenRegistryDestination(
    const images::Reference& ref, const RegistryOptions& options);

}  // namespace imgstore::registry
