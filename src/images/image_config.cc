// Image config parsing and its consistency checks against itself and its manifest.
#include "images/image_config.h"

#include <utility>

#include "images/json_fields.h"
#include "util/quote.h"

namespace imgstore::images {
namespace {

using internal::FieldError;
using internal::FieldPath;
using internal::Find;
using internal::Json;

// Entrypoint and Cmd: the spec says an array of strings, but Docker's own type (strslice)
// also accepts a bare string, and configs written that way exist; a string is one element.
Status ReadCommand(const Json& obj, std::string_view key, std::string_view prefix,
                   std::vector<std::string>* out) {
  const Json* v = Find(obj, key);
  if (v != nullptr && v->is_string()) {
    *out = {v->get_ref<const std::string&>()};
    return Status::OK();
  }
  return internal::ReadOptionalStringList(obj, key, prefix, out);
}

// ExposedPorts and Volumes are objects used as sets: {"80/tcp": {}}. Only the keys matter.
Status ReadKeySet(const Json& obj, std::string_view key, std::string_view prefix,
                  std::vector<std::string>* out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::OK();
  if (!v->is_object()) {
    return FieldError(FieldPath(prefix, key),
                      std::string("must be an object, got ") + v->type_name());
  }
  out->clear();
  for (const auto& [k, unused] : v->items()) out->push_back(k);
  return Status::OK();
}

Status ParseRuntimeConfig(const Json& v, RuntimeConfig* out) {
  constexpr std::string_view kPath = "config";
  if (!v.is_object()) {
    return FieldError(kPath, std::string("must be an object, got ") + v.type_name());
  }
  RuntimeConfig c;
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(v, "User", kPath, &c.user));
  IMGSTORE_RETURN_IF_ERROR(ReadKeySet(v, "ExposedPorts", kPath, &c.exposed_ports));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalStringList(v, "Env", kPath, &c.env));
  IMGSTORE_RETURN_IF_ERROR(ReadCommand(v, "Entrypoint", kPath, &c.entrypoint));
  IMGSTORE_RETURN_IF_ERROR(ReadCommand(v, "Cmd", kPath, &c.cmd));
  IMGSTORE_RETURN_IF_ERROR(ReadKeySet(v, "Volumes", kPath, &c.volumes));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(v, "WorkingDir", kPath, &c.working_dir));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalStringMap(v, "Labels", kPath, &c.labels));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(v, "StopSignal", kPath, &c.stop_signal));
  // Valid UTF-8 is guaranteed by the parser, so dump() cannot throw on it; depth is bounded.
  c.raw_json = v.dump();
  *out = std::move(c);
  return Status::OK();
}

Status ParseRootfs(const Json& doc, ImageConfig* out) {
  const Json* v = Find(doc, "rootfs");
  if (v == nullptr) return FieldError("rootfs", "missing");
  if (!v->is_object()) {
    return FieldError("rootfs", std::string("must be an object, got ") + v->type_name());
  }
  IMGSTORE_RETURN_IF_ERROR(internal::ReadRequiredString(*v, "type", "rootfs", &out->rootfs_type));
  if (out->rootfs_type != "layers") {
    return FieldError("rootfs.type", "must be \"layers\", got " + Quote(out->rootfs_type, 64));
  }
  const Json* ids = Find(*v, "diff_ids");
  // Required by the spec; a zero-layer image writes [], and Go writes null for an empty slice.
  if (ids == nullptr) {
    if (!v->contains("diff_ids")) return FieldError("rootfs.diff_ids", "missing");
    return Status::OK();
  }
  if (!ids->is_array()) {
    return FieldError("rootfs.diff_ids",
                      std::string("must be an array of digests, got ") + ids->type_name());
  }
  out->diff_ids.reserve(ids->size());
  for (std::size_t i = 0; i < ids->size(); ++i) {
    Digest d;
    IMGSTORE_RETURN_IF_ERROR(
        internal::ParseDigestValue((*ids)[i], "rootfs.diff_ids[" + std::to_string(i) + "]", &d));
    out->diff_ids.push_back(std::move(d));
  }
  return Status::OK();
}

Status ParseHistory(const Json& doc, ImageConfig* out) {
  const Json* v = Find(doc, "history");
  if (v == nullptr) return Status::OK();
  if (!v->is_array()) {
    return FieldError("history", std::string("must be an array, got ") + v->type_name());
  }
  out->history.reserve(v->size());
  for (std::size_t i = 0; i < v->size(); ++i) {
    const Json& e = (*v)[i];
    const std::string path = "history[" + std::to_string(i) + "]";
    if (!e.is_object()) {
      return FieldError(path, std::string("must be an object, got ") + e.type_name());
    }
    HistoryEntry h;
    IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(e, "created", path, &h.created));
    IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(e, "created_by", path, &h.created_by));
    IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(e, "author", path, &h.author));
    IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(e, "comment", path, &h.comment));
    IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalBool(e, "empty_layer", path, &h.empty_layer));
    out->history.push_back(std::move(h));
  }
  return Status::OK();
}

Result<ImageConfig> ParseImageConfigImpl(std::string_view bytes, const ParseLimits& limits) {
  if (bytes.size() > limits.max_config_bytes) {
    return Status(Code::kInvalidArgument,
                  "config is " + std::to_string(bytes.size()) + " bytes, over the limit of " +
                      std::to_string(limits.max_config_bytes) +
                      " bytes (raise the limit max_config_bytes to accept it)");
  }
  Result<Json> parsed = internal::ParseJsonObject(bytes, limits.max_nesting_depth);
  if (!parsed.ok()) return parsed.status();
  const Json& doc = parsed.value();

  ImageConfig c;
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(doc, "architecture", "", &c.architecture));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(doc, "os", "", &c.os));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(doc, "variant", "", &c.variant));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(doc, "os.version", "", &c.os_version));
  IMGSTORE_RETURN_IF_ERROR(
      internal::ReadOptionalStringList(doc, "os.features", "", &c.os_features));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(doc, "created", "", &c.created));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(doc, "author", "", &c.author));
  if (const Json* rc = Find(doc, "config")) {
    RuntimeConfig runtime;
    IMGSTORE_RETURN_IF_ERROR(ParseRuntimeConfig(*rc, &runtime));
    c.config = std::move(runtime);
  }
  IMGSTORE_RETURN_IF_ERROR(ParseRootfs(doc, &c));
  IMGSTORE_RETURN_IF_ERROR(ParseHistory(doc, &c));

  if (!c.history.empty()) {
    std::size_t layers = 0;
    for (const HistoryEntry& h : c.history) {
      if (!h.empty_layer) ++layers;
    }
    if (layers != c.diff_ids.size()) {
      c.history_mismatch = true;
      c.warnings.push_back("history has " + std::to_string(layers) +
                           " entries that made a layer but rootfs.diff_ids lists " +
                           std::to_string(c.diff_ids.size()) +
                           " layers; the history does not describe this image's layers");
    }
  }
  return c;
}

}  // namespace

Platform ImageConfig::platform() const {
  Platform p;
  p.os = os;
  p.architecture = architecture;
  p.variant = variant;
  p.os_version = os_version;
  p.os_features = os_features;
  return p;
}

Result<ImageConfig> ParseImageConfig(std::string_view bytes, const ParseLimits& limits) {
  Result<ImageConfig> r = internal::CatchAll([&]() { return ParseImageConfigImpl(bytes, limits); });
  if (!r.ok()) return r.status().WithContext("image config");
  return r;
}

Status CheckConfigMatchesManifest(const ImageManifest& manifest, const ImageConfig& config) {
  if (config.diff_ids.size() != manifest.layers.size()) {
    return Status(Code::kInvalidArgument, "image config lists " +
                                              std::to_string(config.diff_ids.size()) +
                                              " diff_ids but the manifest has " +
                                              std::to_string(manifest.layers.size()) + " layers");
  }
  for (std::size_t i = 0; i < config.diff_ids.size(); ++i) {
    if (!config.diff_ids[i].IsSha256()) {
      return Status(Code::kUnsupported, "image config: rootfs.diff_ids[" + std::to_string(i) +
                                            "] is " + config.diff_ids[i].ToString() +
                                            ": only sha256 diffIDs can be verified");
    }
  }
  return Status::OK();
}

}  // namespace imgstore::images
