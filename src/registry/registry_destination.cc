// RegistryDestination (see registry_destination.h). Placeholder until the push lands.
#include "registry/registry_destination.h"

namespace imgstore::registry {

Result<std::unique_ptr<images::ImageDestination>> OpenRegistryDestination(
    const images::Reference& ref, const RegistryOptions&) {
  return Status(Code::kUnsupported, "pushing to a registry is not supported yet: " + ref.String());
}

}  // namespace imgstore::registry
