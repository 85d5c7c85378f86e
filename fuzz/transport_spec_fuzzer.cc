// Fuzz target: transport specs as a user or an embedder writes them ("oci:DIR:REF",
// "docker-archive:FILE:REF", "docker://NAME"): transports::ParseTransportSpec and the parsers of
// each transport's rest (images::ParseOciLayoutLocation, transports::ParseDockerArchiveSpec).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "images/oci_layout.h"
#include "images/reference.h"
#include "transports/docker_archive.h"
#include "transports/transports.h"

using imgstore::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text = imgstore::fuzz::AsText(data, size);
  auto spec = imgstore::transports::ParseTransportSpec(text);
  if (spec.ok()) {
    using imgstore::transports::TransportKind;
    (void)imgstore::transports::TransportName(spec->kind);
    Check(!spec->rest.empty(), "a transport spec with nothing after its prefix");
    // A bare name is accepted only as a valid reference; "docker://" takes the rest as it is
    // (OpenSource parses it), so only the bare form is checked.
    if (spec->kind == TransportKind::kRegistry && !text.starts_with("docker://")) {
      Check(imgstore::images::ParseReference(spec->rest).ok(),
            "a registry spec whose reference does not parse: " + spec->rest);
    } else if (spec->kind == TransportKind::kRegistry) {
      (void)imgstore::images::ParseReference(spec->rest);
    } else if (spec->kind == TransportKind::kDockerArchive) {
      (void)imgstore::transports::ParseDockerArchiveSpec(spec->rest);
    } else {
      (void)imgstore::images::ParseOciLayoutLocation(spec->rest);
    }
  }

  auto oci = imgstore::images::ParseOciLayoutLocation(text);
  if (oci.ok()) {
    Check(!oci->path.empty(), "an OCI layout location with an empty path");
    Check(oci->ref.empty() || imgstore::images::IsValidOciRefName(oci->ref),
          "an OCI layout ref that IsValidOciRefName refuses: " + oci->ref);
  }
  (void)imgstore::images::IsValidOciRefName(text);

  auto docker = imgstore::transports::ParseDockerArchiveSpec(text);
  if (docker.ok()) Check(!docker->path.empty(), "a docker-archive spec with an empty path");
  return 0;
}
