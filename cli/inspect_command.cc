// `imgstore inspect IMAGE...`: every named image as one JSON array (docker/podman inspect), with
// its manifest and config parsed from the exact stored bytes, and its layers.
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "image_commands.h"
#include "imgstore/store.hpp"
#include "output.h"

namespace imgstore::cli {
namespace {

// A stored document as a JSON value. The bytes were verified when the image was added, so a
// parse failure means the blob was damaged since.
Result<Json> ParseDocument(const std::string& bytes, std::string_view what,
                           const std::string& digest) {
  Json j = Json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Status(Code::kCorruption, "the stored " + std::string(what) + " " + digest +
                                         " is not valid JSON (run imgstore check)");
  }
  return j;
}

Result<Json> DetailsJson(const ImageDetails& d) {
  const ImageSummary& s = d.summary;
  Result<Json> manifest = ParseDocument(d.manifest, "manifest", s.manifest_digest);
  if (!manifest.ok()) return manifest.status();
  Result<Json> config = ParseDocument(d.config, "config", s.id);
  if (!config.ok()) return config.status();
  Json j = Json::object();
  j["id"] = s.id;
  j["names"] = s.names;
  j["digest"] = s.manifest_digest;
  j["manifestMediaType"] = d.manifest_media_type;
  j["size"] = s.size;
  j["created"] = s.created.empty() ? Json(nullptr) : Json(s.created);
  j["added"] = FormatRfc3339(s.added_unix_ns);
  j["os"] = s.os;
  j["architecture"] = s.architecture;
  j["variant"] = s.variant;
  Json layers = Json::array();
  for (const LayerInfo& l : d.layers) {
    layers.push_back(Json{{"digest", l.digest},
                          {"mediaType", l.media_type},
                          {"size", l.size},
                          {"diffID", l.diff_id},
                          {"chainID", l.chain_id}});
  }
  j["layers"] = std::move(layers);
  j["manifest"] = std::move(*manifest);
  j["config"] = std::move(*config);
  return j;
}

// As docker does: the images found are printed even when others are not; each one not found
// is an error line, and the exit status is 1.
Status RunInspect(const GlobalOptions& global, const std::vector<std::string>& args) {
  Result<std::unique_ptr<Store>> store = OpenExistingStore(global);
  if (!store.ok()) return store.status();
  Json out = Json::array();
  std::vector<Status> errors;
  for (const std::string& arg : args) {
    if (!*store) {
      errors.push_back(NotKnownWithoutStore(arg));
      continue;
    }
    Result<ImageDetails> d = (*store)->Inspect(arg);
    if (!d.ok()) {
      errors.push_back(d.status());
      continue;
    }
    Result<Json> j = DetailsJson(*d);
    if (!j.ok()) {
      errors.push_back(j.status().WithContext("inspect " + arg));
      continue;
    }
    out.push_back(std::move(*j));
  }
  CLI_RETURN_IF_ERROR(WriteStdout(JsonText(out)));
  return ReportAll(std::move(errors));
}

}  // namespace

void RegisterInspectCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("inspect", "show images as JSON");
  auto args = std::make_shared<std::vector<std::string>>();
  sub->add_option("IMAGE", *args, "name, id, unique id prefix or manifest digest")->required();
  AddCommand({sub, [&global, args] { return RunInspect(global, *args); }});
}

}  // namespace imgstore::cli
