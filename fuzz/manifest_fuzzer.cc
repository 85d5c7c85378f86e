// Fuzz target: manifests and indexes (images::ParseManifest, ParseImageManifest,
// ParseImageIndex, SelectManifest, CheckUnpackable). The input is the document's bytes.
// Invariants checked besides "no crash": the one-kind parsers agree with ParseManifest, a
// document parses again when its own media type is given as the Content-Type (and when a generic
// type is), and it is refused under the other kind's type (CVE-2021-41190).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "images/manifest.h"
#include "images/media_types.h"

using imgstore::fuzz::Check;
namespace images = imgstore::images;
namespace mt = images::media_type;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes = imgstore::fuzz::AsText(data, size);
  auto parsed = images::ParseManifest(bytes);
  auto as_manifest = images::ParseImageManifest(bytes);
  auto as_index = images::ParseImageIndex(bytes);
  if (!parsed.ok()) {
    Check(!as_manifest.ok() && !as_index.ok(),
          "a one-kind parser accepts what ParseManifest refuses");
    // Exercise the Content-Type paths on refused documents too.
    static constexpr std::string_view kTypes[] = {mt::kOciManifest, mt::kOciIndex,
                                                  mt::kDockerManifest, mt::kDockerManifestList,
                                                  mt::kDockerSchema1SignedManifest};
    (void)images::ParseManifest(bytes, kTypes[size % std::size(kTypes)]);
    return 0;
  }
  Check(
      parsed->is_index() ? as_index.ok() && !as_manifest.ok() : as_manifest.ok() && !as_index.ok(),
      "ParseImageManifest/ParseImageIndex disagree with ParseManifest");

  const std::string type = parsed->media_type();
  auto own = images::ParseManifest(bytes, type);
  Check(own.ok() && own->is_index() == parsed->is_index(),
        "a document refused under its own media type " + type);
  auto generic = images::ParseManifest(bytes, "application/json; charset=utf-8");
  Check(generic.ok(), "a document refused under a generic Content-Type");
  std::string_view other = parsed->is_index() ? mt::kOciManifest : mt::kOciIndex;
  Check(!images::ParseManifest(bytes, other).ok(),
        "a document accepted under the other kind's media type");

  auto check_descriptor = [](const images::Descriptor& d) {
    Check(d.size >= 0, "a descriptor with a negative size");
    Check(images::IsValidMediaTypeSyntax(d.media_type), "a descriptor media type of bad syntax");
  };
  if (const images::ImageManifest* m = parsed->manifest()) {
    check_descriptor(m->config);
    for (const auto& l : m->layers) check_descriptor(l);
    (void)m->IsImage();
    (void)m->CheckUnpackable();
  } else {
    const images::ImageIndex* index = parsed->index();
    for (const auto& d : index->manifests) check_descriptor(d);
    (void)images::SelectManifest(*index);
    images::Platform arm;
    arm.os = "linux";
    arm.architecture = "arm";
    arm.variant = "v7";
    (void)images::SelectManifest(*index, arm);
  }
  return 0;
}
