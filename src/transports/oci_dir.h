// The `oci:PATH[:REF]` transport (an OCI image layout directory), and the pieces of it that
// `oci-archive:` shares: a source over any OciLayoutReader and a verifying blob stream.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "images/manifest.h"
#include "images/oci_layout.h"
#include "images/transport.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::transports {

// An OciBlobReader as a SequentialFile: the last Read (the one returning 0) fails with
// kCorruption if the bytes do not match the descriptor's size and digest.
class VerifyingBlobFile : public SequentialFile {
 public:
  explicit VerifyingBlobFile(images::OciBlobReader reader);
  Result<size_t> Read(std::span<std::byte> buf) override;
  Status Skip(uint64_t n) override;

 private:
  images::OciBlobReader reader_;
};

// An ImageSource over a layout (a directory or an archive's members). ref "" names the only
// entry of index.json. describe is what Describe() returns.
std::unique_ptr<images::ImageSource> NewOciLayoutSource(images::OciLayoutReader reader,
                                                        std::string ref, std::string describe,
                                                        const images::ParseLimits& limits);

// The index.json descriptor of the image's manifest (media type, digest and size of its bytes).
images::Descriptor ManifestDescriptor(const images::ImageToWrite& image);

// "oci:PATH[:REF]" for messages (transport is "oci" or "oci-archive").
std::string DescribeOci(std::string_view transport, const images::OciLayoutLocation& loc);

// `oci:` with the prefix removed: "PATH[:REF]".
Result<std::unique_ptr<images::ImageSource>> OpenOciDirSource(Env* env, std::string_view rest,
                                                              const images::ParseLimits& limits);
Result<std::unique_ptr<images::ImageDestination>> OpenOciDirDestination(Env* env,
                                                                        std::string_view rest);

}  // namespace imgstore::transports
