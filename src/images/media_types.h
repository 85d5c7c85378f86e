// Media types of the documents and blobs imgstore handles (OCI image-spec v1.1 and Docker image
// manifest v2 schema 2), and the classifications the rest of the code branches on: what kind of
// document a manifest media type names, and how a layer blob is compressed.
//
// Media types in a document are compared exactly, as registries do (distribution checks the
// `mediaType` field byte for byte); only a Content-Type header goes through
// NormalizeContentType() first, because HTTP allows parameters and any letter case there.
#pragma once

#include <string>
#include <string_view>

namespace imgstore::images {

namespace media_type {

// OCI image-spec.
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayerTar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerTarGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerTarZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
// Deprecated by image-spec v1.1 ("SHOULD NOT be produced") but still found in old Windows images.
inline constexpr std::string_view kOciLayerNondistributableTar =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
inline constexpr std::string_view kOciLayerNondistributableTarGzip =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
inline constexpr std::string_view kOciLayerNondistributableTarZstd =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
// The two-byte blob "{}": the config of artifacts that have no config.
inline constexpr std::string_view kOciEmpty = "application/vnd.oci.empty.v1+json";

// Docker image manifest v2, schema 2.
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayerTarGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kDockerForeignLayerTarGzip =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
// Uncompressed Docker layers: not in Docker's own spec, but written by some builders and accepted
// by containerd and docker, so images carrying them exist.
inline constexpr std::string_view kDockerLayerTar = "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr std::string_view kDockerForeignLayerTar =
    "application/vnd.docker.image.rootfs.foreign.diff.tar";

// Docker schema 1: recognised only to be refused with a clear error.
inline constexpr std::string_view kDockerSchema1Manifest =
    "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kDockerSchema1SignedManifest =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

}  // namespace media_type

// What a manifest-level media type names.
enum class ManifestKind {
  kUnknown,   // not a manifest type imgstore knows
  kManifest,  // an image manifest (OCI manifest or Docker v2s2)
  kIndex,     // a list of manifests (OCI index or Docker manifest list)
  kSchema1,   // Docker schema 1: known, refused
};
ManifestKind ClassifyManifestMediaType(std::string_view media_type);

// How a layer blob is compressed, from its media type. kUnknown means imgstore does not know how
// to unpack the blob (an unknown type, or a known suffix such as "+encrypted"); it can still be
// stored and copied byte for byte.
enum class Compression { kNone, kGzip, kZstd, kUnknown };
Compression LayerCompression(std::string_view media_type);
std::string_view CompressionName(Compression c);  // "none", "gzip", "zstd", "unknown"

// True for the config types of runnable images (OCI config, Docker container config). Any other
// config type (the OCI empty config, Helm charts, signatures…) makes the manifest an artifact.
bool IsImageConfigMediaType(std::string_view media_type);

// True if the layer type carries the deprecated "non-distributable" or Docker "foreign" marker:
// its blob may have to be fetched from the descriptor's urls rather than from the registry.
bool IsForeignLayerMediaType(std::string_view media_type);

// True if text is a syntactically valid media type as the OCI descriptor requires (RFC 6838
// section 4.2: type "/" subtype, each 1-127 restricted-name characters, no parameters).
bool IsValidMediaTypeSyntax(std::string_view text);

// A Content-Type header value reduced to its media type: parameters (";charset=…") and
// surrounding blanks dropped, lowercased. Returns "" for the generic types that registries send
// when they do not know better (application/json, text/plain, application/octet-stream): those
// say nothing about the document, so callers treat them like no header at all.
std::string NormalizeContentType(std::string_view content_type);

}  // namespace imgstore::images
