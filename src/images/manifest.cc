// Manifest and index parsing: kind detection with the CVE-2021-41190 checks, descriptor
// validation, and platform selection from an index.
#include "images/manifest.h"

#include <set>
#include <utility>

#include "images/json_fields.h"
#include "util/quote.h"

namespace imgstore::images {
namespace {

using internal::FieldError;
using internal::FieldPath;
using internal::Find;
using internal::Json;

// Quote()'s escaping without the quotes, which would clutter a list of platforms.
std::string Unquoted(std::string_view text) {
  std::string q = Quote(text, 64);
  q.erase(0, 1);
  q.erase(q.rfind('"'), 1);
  return q;
}

Status Invalid(std::string msg) { return Status(Code::kInvalidArgument, std::move(msg)); }

Status Schema1Unsupported() {
  return Status(Code::kUnsupported,
                "schema 1 manifests are not supported (Docker deprecated them in 2017; "
                "re-push the image with a current client to convert it)");
}

std::string KindName(ManifestKind kind) {
  switch (kind) {
    case ManifestKind::kManifest:
      return "an image manifest";
    case ManifestKind::kIndex:
      return "an image index";
    case ManifestKind::kSchema1:
      return "a schema 1 manifest";
    case ManifestKind::kUnknown:
      break;
  }
  return "an unknown document";
}

Status CheckMediaTypeSyntax(const std::string& value, std::string_view path) {
  if (!IsValidMediaTypeSyntax(value)) {
    return FieldError(path, "invalid media type " + Quote(value, 128));
  }
  return Status::OK();
}

Status ParsePlatformField(const Json& obj, std::string_view prefix, std::optional<Platform>* out) {
  const Json* v = Find(obj, "platform");
  if (v == nullptr) return Status::OK();
  const std::string path = FieldPath(prefix, "platform");
  if (!v->is_object())
    return FieldError(path, std::string("must be an object, got ") + v->type_name());
  Platform p;
  // os and architecture are REQUIRED in a platform; Docker's "features" is ignored (reserved).
  IMGSTORE_RETURN_IF_ERROR(internal::ReadRequiredString(*v, "architecture", path, &p.architecture));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadRequiredString(*v, "os", path, &p.os));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(*v, "variant", path, &p.variant));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(*v, "os.version", path, &p.os_version));
  IMGSTORE_RETURN_IF_ERROR(
      internal::ReadOptionalStringList(*v, "os.features", path, &p.os_features));
  *out = std::move(p);
  return Status::OK();
}

Status ParseDescriptor(const Json& v, std::string_view path, Descriptor* out) {
  if (!v.is_object()) {
    return FieldError(path, std::string("must be a descriptor object, got ") + v.type_name());
  }
  Descriptor d;
  IMGSTORE_RETURN_IF_ERROR(internal::ReadRequiredString(v, "mediaType", path, &d.media_type));
  IMGSTORE_RETURN_IF_ERROR(CheckMediaTypeSyntax(d.media_type, FieldPath(path, "mediaType")));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadRequiredDigest(v, "digest", path, &d.digest));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadRequiredSize(v, "size", path, &d.size));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalStringList(v, "urls", path, &d.urls));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalStringMap(v, "annotations", path, &d.annotations));
  IMGSTORE_RETURN_IF_ERROR(ParsePlatformField(v, path, &d.platform));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(v, "artifactType", path, &d.artifact_type));
  if (!d.artifact_type.empty()) {
    IMGSTORE_RETURN_IF_ERROR(
        CheckMediaTypeSyntax(d.artifact_type, FieldPath(path, "artifactType")));
  }
  // "data" (embedded content) is ignored: imgstore always fetches by digest and verifies.
  *out = std::move(d);
  return Status::OK();
}

Status ParseOptionalDescriptor(const Json& doc, std::string_view key,
                               std::optional<Descriptor>* out) {
  const Json* v = Find(doc, key);
  if (v == nullptr) return Status::OK();
  Descriptor d;
  IMGSTORE_RETURN_IF_ERROR(ParseDescriptor(*v, key, &d));
  *out = std::move(d);
  return Status::OK();
}

Status ParseDescriptorList(const Json& doc, std::string_view key, std::vector<Descriptor>* out) {
  const Json* v = Find(doc, key);
  if (v == nullptr) return FieldError(key, "missing");
  if (!v->is_array()) {
    return FieldError(key, std::string("must be an array of descriptors, got ") + v->type_name());
  }
  out->clear();
  out->reserve(v->size());
  for (std::size_t i = 0; i < v->size(); ++i) {
    Descriptor d;
    IMGSTORE_RETURN_IF_ERROR(
        ParseDescriptor((*v)[i], std::string(key) + "[" + std::to_string(i) + "]", &d));
    out->push_back(std::move(d));
  }
  return Status::OK();
}

// The fields an image manifest and an index share.
Status ParseCommon(const Json& doc, std::optional<Descriptor>* subject,
                   std::map<std::string, std::string>* annotations, std::string* artifact_type) {
  IMGSTORE_RETURN_IF_ERROR(ParseOptionalDescriptor(doc, "subject", subject));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalStringMap(doc, "annotations", "", annotations));
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(doc, "artifactType", "", artifact_type));
  if (!artifact_type->empty()) {
    IMGSTORE_RETURN_IF_ERROR(CheckMediaTypeSyntax(*artifact_type, "artifactType"));
  }
  return Status::OK();
}

Status OverLimit(std::string_view path, std::string_view what, std::int64_t size, std::size_t limit,
                 std::string_view option) {
  return FieldError(path, "declares a " + std::string(what) + " of " + std::to_string(size) +
                              " bytes, over the limit of " + std::to_string(limit) +
                              " bytes (raise ParseLimits::" + std::string(option) +
                              " to accept it)");
}

Result<ImageManifest> ParseManifestFields(const Json& doc, std::string media_type,
                                          const ParseLimits& limits) {
  ImageManifest m;
  m.media_type = std::move(media_type);
  const Json* config = Find(doc, "config");
  if (config == nullptr) return FieldError("config", "missing");
  IMGSTORE_RETURN_IF_ERROR(ParseDescriptor(*config, "config", &m.config));
  // Caught here, before the config is downloaded, rather than by ParseImageConfig after.
  if (IsImageConfigMediaType(m.config.media_type) &&
      static_cast<std::uint64_t>(m.config.size) > limits.max_config_bytes) {
    return OverLimit("config.size", "config", m.config.size, limits.max_config_bytes,
                     "max_config_bytes");
  }
  IMGSTORE_RETURN_IF_ERROR(ParseDescriptorList(doc, "layers", &m.layers));
  for (const Descriptor& layer : m.layers) {
    if (LayerCompression(layer.media_type) == Compression::kUnknown) {
      m.has_unknown_layer_types = true;
    }
  }
  IMGSTORE_RETURN_IF_ERROR(ParseCommon(doc, &m.subject, &m.annotations, &m.artifact_type));
  return m;
}

Result<ImageIndex> ParseIndexFields(const Json& doc, std::string media_type,
                                    const ParseLimits& limits) {
  ImageIndex idx;
  idx.media_type = std::move(media_type);
  IMGSTORE_RETURN_IF_ERROR(ParseDescriptorList(doc, "manifests", &idx.manifests));
  for (std::size_t i = 0; i < idx.manifests.size(); ++i) {
    const Descriptor& d = idx.manifests[i];
    const ManifestKind kind = ClassifyManifestMediaType(d.media_type);
    if ((kind == ManifestKind::kManifest || kind == ManifestKind::kIndex) &&
        static_cast<std::uint64_t>(d.size) > limits.max_manifest_bytes) {
      return OverLimit("manifests[" + std::to_string(i) + "].size", "manifest", d.size,
                       limits.max_manifest_bytes, "max_manifest_bytes");
    }
  }
  IMGSTORE_RETURN_IF_ERROR(ParseCommon(doc, &idx.subject, &idx.annotations, &idx.artifact_type));
  return idx;
}

// schemaVersion is REQUIRED and 2 in every format imgstore reads; 1 is Docker schema 1.
Status CheckSchemaVersion(const Json& doc) {
  const Json* v = Find(doc, "schemaVersion");
  if (v == nullptr) return FieldError("schemaVersion", "missing (must be 2)");
  if (v->is_number_unsigned()) {
    const auto n = v->get<std::uint64_t>();
    if (n == 2) return Status::OK();
    if (n == 1) return Schema1Unsupported();
    return FieldError("schemaVersion", "must be 2, got " + std::to_string(n));
  }
  if (v->is_number_integer()) {
    return FieldError("schemaVersion", "must be 2, got " + std::to_string(v->get<std::int64_t>()));
  }
  return FieldError("schemaVersion", std::string("must be the integer 2, got ") + v->type_name());
}

Result<ParsedManifest> ParseManifestImpl(std::string_view bytes, std::string_view content_type,
                                         const ParseLimits& limits) {
  if (bytes.size() > limits.max_manifest_bytes) {
    return Invalid("manifest is " + std::to_string(bytes.size()) + " bytes, over the limit of " +
                   std::to_string(limits.max_manifest_bytes) +
                   " bytes (raise the limit max_manifest_bytes to accept it)");
  }

  // What the source says the document is. A manifest type says which kind to expect; a generic
  // type ("application/json") says nothing; anything else is not a manifest we can read.
  const std::string hint = NormalizeContentType(content_type);
  const ManifestKind hint_kind = ClassifyManifestMediaType(hint);
  if (hint_kind == ManifestKind::kSchema1) return Schema1Unsupported();
  if (!hint.empty() && hint_kind == ManifestKind::kUnknown) {
    return Status(Code::kUnsupported, "unsupported manifest media type " + Quote(hint, 128));
  }

  Result<Json> parsed = internal::ParseJsonObject(bytes, limits.max_nesting_depth);
  if (!parsed.ok()) return parsed.status();
  const Json& doc = parsed.value();
  IMGSTORE_RETURN_IF_ERROR(CheckSchemaVersion(doc));

  std::string field;
  IMGSTORE_RETURN_IF_ERROR(internal::ReadOptionalString(doc, "mediaType", "", &field));
  const ManifestKind field_kind = ClassifyManifestMediaType(field);
  if (field_kind == ManifestKind::kSchema1) return Schema1Unsupported();
  if (!field.empty() && field_kind == ManifestKind::kUnknown) {
    return Status(Code::kUnsupported, "unsupported manifest media type " + Quote(field, 128));
  }
  // CVE-2021-41190: the registry (or the parent descriptor) and the document must agree on what
  // the document is, or two readers could act on different documents behind one digest.
  if (!hint.empty() && !field.empty() && field != hint) {
    return Invalid("mediaType " + Quote(field, 128) + " contradicts the content type " +
                   Quote(hint, 128) + " it was served as");
  }

  // The shape: key presence, even with a null value, since a legitimate producer never writes
  // the other kind's keys at all.
  const bool has_manifests = doc.contains("manifests");
  const bool has_manifest_keys = doc.contains("config") || doc.contains("layers");
  if (has_manifests && has_manifest_keys) {
    return Invalid(
        "ambiguous document: it has both \"manifests\" (an index) and \"config\"/\"layers\" "
        "(a manifest); refused as type confusion (CVE-2021-41190)");
  }
  const ManifestKind shape = has_manifests       ? ManifestKind::kIndex
                             : has_manifest_keys ? ManifestKind::kManifest
                                                 : ManifestKind::kUnknown;

  ManifestKind kind = field_kind != ManifestKind::kUnknown ? field_kind : hint_kind;
  std::string media_type = !field.empty() ? field : hint;
  if (kind == ManifestKind::kUnknown) {
    // No declaration at all: OCI allows omitting mediaType, so the shape decides.
    if (shape == ManifestKind::kUnknown) {
      return Invalid(
          "neither an image manifest (no \"config\" or \"layers\") nor an index (no "
          "\"manifests\")");
    }
    kind = shape;
    media_type = std::string(kind == ManifestKind::kIndex ? media_type::kOciIndex
                                                          : media_type::kOciManifest);
  } else if (shape != ManifestKind::kUnknown && shape != kind) {
    return Invalid("declared as " + KindName(kind) + " (" + media_type + ") but shaped as " +
                   KindName(shape) + "; refused as type confusion (CVE-2021-41190)");
  }
  // Docker's formats make mediaType REQUIRED (distribution refuses them without it); only the
  // OCI formats may leave it out.
  if (field.empty() && (media_type == media_type::kDockerManifest ||
                        media_type == media_type::kDockerManifestList)) {
    return FieldError("mediaType",
                      "missing (required in Docker manifests, must be " + media_type + ")");
  }

  if (kind == ManifestKind::kIndex) {
    Result<ImageIndex> idx = ParseIndexFields(doc, std::move(media_type), limits);
    if (!idx.ok()) return idx.status();
    return ParsedManifest{std::move(idx).value()};
  }
  Result<ImageManifest> m = ParseManifestFields(doc, std::move(media_type), limits);
  if (!m.ok()) return m.status();
  return ParsedManifest{std::move(m).value()};
}

}  // namespace

bool ImageManifest::IsImage() const { return IsImageConfigMediaType(config.media_type); }

Status ImageManifest::CheckUnpackable() const {
  if (!IsImage()) {
    return Status(Code::kUnsupported, "not a container image: its config has media type " +
                                          Quote(config.media_type, 128) +
                                          " (an artifact; it can be stored and copied, not "
                                          "unpacked)");
  }
  if (!config.digest.IsSha256()) {
    return Status(Code::kUnsupported, "config digest " + config.digest.ToString() +
                                          ": only sha256 content can be verified");
  }
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const Descriptor& layer = layers[i];
    if (LayerCompression(layer.media_type) == Compression::kUnknown) {
      return Status(Code::kUnsupported, "layer " + std::to_string(i) + " has media type " +
                                            Quote(layer.media_type, 128) +
                                            ", which imgstore cannot unpack");
    }
    if (!layer.digest.IsSha256()) {
      return Status(Code::kUnsupported, "layer " + std::to_string(i) + " digest " +
                                            layer.digest.ToString() +
                                            ": only sha256 content can be verified");
    }
  }
  return Status::OK();
}

const std::string& ParsedManifest::media_type() const {
  if (const ImageIndex* idx = index()) return idx->media_type;
  return std::get_if<ImageManifest>(&doc)->media_type;
}

Result<ParsedManifest> ParseManifest(std::string_view bytes, std::string_view content_type,
                                     const ParseLimits& limits) {
  Result<ParsedManifest> r =
      internal::CatchAll([&]() { return ParseManifestImpl(bytes, content_type, limits); });
  if (!r.ok()) return r.status().WithContext("manifest");
  return r;
}

Result<ImageManifest> ParseImageManifest(std::string_view bytes, std::string_view content_type,
                                         const ParseLimits& limits) {
  Result<ParsedManifest> r = ParseManifest(bytes, content_type, limits);
  if (!r.ok()) return r.status();
  if (r->is_index()) {
    return Status(Code::kInvalidArgument,
                  "manifest: expected an image manifest, got an image "
                  "index (" +
                      r->media_type() + ")");
  }
  return std::move(*std::get_if<ImageManifest>(&r.value().doc));
}

Result<ImageIndex> ParseImageIndex(std::string_view bytes, std::string_view content_type,
                                   const ParseLimits& limits) {
  Result<ParsedManifest> r = ParseManifest(bytes, content_type, limits);
  if (!r.ok()) return r.status();
  if (!r->is_index()) {
    return Status(Code::kInvalidArgument,
                  "manifest: expected an image index, got an image "
                  "manifest (" +
                      r->media_type() + ")");
  }
  return std::move(*std::get_if<ImageIndex>(&r.value().doc));
}

Result<Descriptor> SelectManifest(const ImageIndex& index, const Platform& want) {
  return internal::CatchAll([&]() -> Result<Descriptor> {
    const Platform w = NormalizePlatform(want);
    const Descriptor* best = nullptr;
    int best_rank = 0;
    const Descriptor* unlabelled = nullptr;  // first candidate without a platform
    std::vector<std::string> available;
    std::set<std::string> seen;
    for (const Descriptor& d : index.manifests) {
      const ManifestKind kind = ClassifyManifestMediaType(d.media_type);
      if (kind != ManifestKind::kManifest && kind != ManifestKind::kIndex) continue;
      if (!d.platform) {
        if (unlabelled == nullptr) unlabelled = &d;
        continue;
      }
      const std::string name = d.platform->ToString();
      if (seen.insert(name).second) available.push_back(name);
      const std::optional<int> rank = PlatformRank(w, *d.platform);
      if (rank && (best == nullptr || *rank < best_rank)) {
        best = &d;
        best_rank = *rank;
      }
    }
    if (best != nullptr) return *best;
    if (unlabelled != nullptr) return *unlabelled;

    std::string msg = "no manifest for platform " + w.ToString() + " in the index";
    if (available.empty()) {
      msg += " (it lists no image manifests)";
    } else {
      constexpr std::size_t kMaxListed = 16;
      msg += "; available: ";
      for (std::size_t i = 0; i < available.size() && i < kMaxListed; ++i) {
        if (i > 0) msg += ", ";
        msg += Unquoted(available[i]);
      }
      if (available.size() > kMaxListed) {
        msg += " and " + std::to_string(available.size() - kMaxListed) + " more";
      }
    }
    return Status(Code::kNotFound, std::move(msg));
  });
}

Status NameLimit(Status s, std::string_view limit_name, std::uint64_t cap) {
  const std::string n = std::to_string(cap);
  const std::string& m = s.message();
  if (s.ok() || (m.find("limit of " + n) == std::string::npos &&
                 m.find("larger than " + n) == std::string::npos)) {
    return s;
  }
  return Status(s.code(), m + " (raise the limit " + std::string(limit_name) + " to accept it)");
}

}  // namespace imgstore::images
