// Fuzz target: the OCI layout reader (images::OciLayoutReader, transports' oci: source) over a
// layout directory written from the input.
//
// Input format (so that mutations keep digests consistent): records separated by the line
// "--blob--". The first record is index.json; every other record is a blob, stored under
// blobs/sha256/<its sha256>. Inside a record, "@@N" (N a digit) becomes the digest and "##N" the
// size of record N, for records after it (they are resolved last to first), so a mutated
// manifest still names its config and layers. oci-layout is always valid.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "images/oci_layout.h"
#include "transports/oci_dir.h"
#include "util/digest.h"

namespace {

constexpr std::string_view kSeparator = "\n--blob--\n";
constexpr size_t kMaxRecords = 10;

std::vector<std::string> Split(std::string_view input) {
  std::vector<std::string> records;
  while (records.size() + 1 < kMaxRecords) {
    size_t at = input.find(kSeparator);
    if (at == std::string_view::npos) break;
    records.emplace_back(input.substr(0, at));
    input.remove_prefix(at + kSeparator.size());
  }
  records.emplace_back(input);
  return records;
}

void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  imgstore::Env* env = imgstore::Env::Default();
  const std::string dir = imgstore::fuzz::ScratchDir() + "/layout";
  (void)env->RemoveTree(dir);
  imgstore::fuzz::Check(env->CreateDirs(dir + "/blobs/sha256").ok(), "cannot create " + dir);

  std::vector<std::string> records = Split(imgstore::fuzz::AsText(data, size));
  std::vector<std::string> digests(records.size());
  for (size_t i = records.size(); i-- > 0;) {
    for (size_t j = i + 1; j < records.size(); ++j) {
      ReplaceAll(records[i], "@@" + std::to_string(j), digests[j]);
      ReplaceAll(records[i], "##" + std::to_string(j), std::to_string(records[j].size()));
    }
    digests[i] = imgstore::Digest::Of(records[i]).ToString();
    if (i > 0) {
      std::string hex = digests[i].substr(digests[i].find(':') + 1);
      imgstore::fuzz::WriteFileOrDie(dir + "/blobs/sha256/" + hex, records[i]);
    }
  }
  imgstore::fuzz::WriteFileOrDie(dir + "/index.json", records[0]);
  imgstore::fuzz::WriteFileOrDie(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");

  auto reader = imgstore::images::OciLayoutReader::Open(env, dir);
  if (!reader.ok()) {
    imgstore::fuzz::Note("open layout", reader.status());
    return 0;
  }
  std::vector<std::string> refs = {""};
  for (const auto& image : reader->images()) {
    (void)reader->ResolveImage(image.ref_name);
    if (!image.ref_name.empty() && refs.size() < 3) refs.push_back(image.ref_name);
  }
  for (const auto& ref : refs) {
    auto source = imgstore::transports::OpenOciDirSource(env, ref.empty() ? dir : dir + ":" + ref,
                                                         /*limits=*/{});
    if (!source.ok()) imgstore::fuzz::Note("open oci: " + ref, source.status());
    if (source.ok()) imgstore::fuzz::DrainSource(**source);
  }
  return 0;
}
