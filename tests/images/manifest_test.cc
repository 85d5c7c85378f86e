// Tests of manifest, index and config parsing (src/images/manifest.h, image_config.h), media
// type classification and platform selection: real-looking OCI and Docker documents that must
// parse, and one test per way an untrusted document is refused.
#include "images/manifest.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "images/image_config.h"
#include "images/media_types.h"
#include "images/platform.h"

namespace imgstore::images {
namespace {

using Json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Documents. Shaped like what docker.io and ghcr.io serve today (buildkit output, official
// images); digests are made up.

// An OCI image manifest as buildkit writes it, two gzip layers.
constexpr std::string_view kOciManifest = R"json({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:42198c1ce596277409de39d1948095c499f9a53082645712c39ae109a4533eb3",
    "size": 1471
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:5e71ec1978bf9eaea2ecd47a34582f691a65fac2daa06376a67cbca7e3909747",
      "size": 3408729
    },
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
      "digest": "sha256:a373b16340d873233540f4afb24e748082218ad1ca1012aac0fa38f718dcd4b0",
      "size": 1209
    }
  ],
  "annotations": {
    "org.opencontainers.image.base.name": "docker.io/library/alpine:3.19",
    "org.opencontainers.image.created": "2024-03-07T19:35:14Z",
    "org.opencontainers.image.source": "https://github.com/example/app",
    "org.opencontainers.image.version": "1.4.2"
  }
})json";

// Docker v2 schema 2, as docker push writes it (hello-world).
constexpr std::string_view kDockerManifest = R"json({
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1470,
      "digest": "sha256:21b2e5a2e78998e7e61f31f787defbcc04c693eb386bd43d9a90cf16e999b8e0"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 2457,
         "digest": "sha256:85761b61666a376b0cdbf757d09ee0b5648cf2c309d52f04d496268055f0a5bc"
      }
   ]
})json";

// An OCI index as the official images publish it: seven platforms, each followed by its
// buildkit attestation manifest (platform unknown/unknown). Sizes are unique so tests can tell
// entries apart.
constexpr std::string_view kOciIndex = R"json({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:8a1f331fcb27df4aa21c78cc3a21c6f581560c37d7435df3ccb0329ea326c6f3",
      "size": 1001,
      "annotations": {"org.opencontainers.image.revision": "b8a4f5e"},
      "platform": {"architecture": "amd64", "os": "linux"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:03a6ac55bb0eda388d286aa3d0904fdaf44aadff8e7063737fa369e9fa085f55",
      "size": 839,
      "annotations": {
        "vnd.docker.reference.digest": "sha256:8a1f331fcb27df4aa21c78cc3a21c6f581560c37d7435df3ccb0329ea326c6f3",
        "vnd.docker.reference.type": "attestation-manifest"
      },
      "platform": {"architecture": "unknown", "os": "unknown"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:799f4a085b0bf00aaea03229ab98e5ea1066020c321e4b78815cdfdd5a1f6b7c",
      "size": 1002,
      "platform": {"architecture": "arm", "os": "linux", "variant": "v6"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:7ebf3b980b56ab30418729025b5d4d20f7bb47425cd04fc7a94c2f05fb85b645",
      "size": 1003,
      "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:fd4b783955b6e380b9d34dba08669434601caded33941533507fb403114902f9",
      "size": 1004,
      "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:04f4f3d4f222cd34eaf93ad8a59e2ddd4d7e5594efb77297cd3f9d317ea0b3e5",
      "size": 1005,
      "platform": {"architecture": "386", "os": "linux"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:2db50cb262fd80226155a070846902096fbe26e084e73f7c9efb5665bddb15f1",
      "size": 1006,
      "platform": {"architecture": "ppc64le", "os": "linux"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:247f502c18cd96e36e7d7d8e9a332a4701eb01efc0cfd14251d78ae51735516a",
      "size": 1007,
      "platform": {"architecture": "s390x", "os": "linux"}
    }
  ]
})json";

// A Docker manifest list with a Windows entry (os.version) and Docker's "features".
constexpr std::string_view kDockerManifestList = R"json({
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "size": 525,
      "digest": "sha256:0e7031a650ad5081fada890434a842407c62022bf93fe8f0b4526d0491149fee",
      "platform": {"architecture": "amd64", "os": "linux"}
    },
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "size": 1125,
      "digest": "sha256:d956b0cd1db93a12710f274ca427ed614332c8f334d037ae6588f156d49946e1",
      "platform": {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.20348.2340",
        "os.features": ["win32k"],
        "features": ["sse4"]
      }
    }
  ]
})json";

// A cosign-style artifact: OCI empty config, artifactType, and a subject.
constexpr std::string_view kArtifactManifest = R"json({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
  "config": {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
    "data": "e30="
  },
  "layers": [
    {
      "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
      "digest": "sha256:ba50b0ba45f204fffa40163a2fb14a6774ff5010fe0015f40b677ddc4432f256",
      "size": 4731
    }
  ],
  "subject": {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:8a1f331fcb27df4aa21c78cc3a21c6f581560c37d7435df3ccb0329ea326c6f3",
    "size": 1001
  },
  "annotations": {"dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"}
})json";

// A Docker schema 1 manifest (signed), as old registries still serve.
constexpr std::string_view kSchema1Manifest = R"json({
   "schemaVersion": 1,
   "name": "library/busybox",
   "tag": "1.24",
   "architecture": "amd64",
   "fsLayers": [
      {"blobSum": "sha256:6f17a16d600b53f36861e10469b3c3e262a14e2a6ed68dcbbe6062396400352e"}
   ],
   "history": [{"v1Compatibility": "{\"id\":\"a12f9efc\"}"}],
   "signatures": [{"header": {"alg": "ES256"}, "signature": "c2lnbmF0dXJl", "protected": "e30"}]
})json";

// An OCI image config as buildkit writes it: history with empty layers, two diffIDs.
constexpr std::string_view kOciConfig = R"json({
  "architecture": "arm64",
  "variant": "v8",
  "os": "linux",
  "created": "2024-03-07T19:35:14.184233207Z",
  "author": "Example Maintainers",
  "config": {
    "User": "app:app",
    "ExposedPorts": {"8080/tcp": {}, "9090/tcp": {}},
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP_ENV=prod"],
    "Entrypoint": ["/usr/bin/tini", "--"],
    "Cmd": ["/app/server", "--listen=:8080"],
    "WorkingDir": "/app",
    "Labels": {"org.opencontainers.image.title": "server", "maintainer": "ops@example.com"},
    "StopSignal": "SIGTERM",
    "Healthcheck": {"Test": ["CMD", "/app/health"], "Interval": 30000000000}
  },
  "rootfs": {
    "type": "layers",
    "diff_ids": [
      "sha256:32a7fd8f8678b2c0118bf4a7639a637a4e493d11194934010dc7469d6cf99015",
      "sha256:9390579c10139e1659ad7d5eed18357518c4224a412f7f0f8c19e8f879909f18"
    ]
  },
  "history": [
    {"created": "2024-01-27T00:30:56Z", "created_by": "/bin/sh -c #(nop) ADD file:37a76ec18f9887751cd8473744917d08b7431fc4085097bb6a09d81b41775473 in / "},
    {"created": "2024-01-27T00:30:56Z", "created_by": "/bin/sh -c #(nop)  CMD [\"/bin/sh\"]", "empty_layer": true},
    {"created": "2024-03-07T19:35:13Z", "created_by": "COPY server /app/server # buildkit", "comment": "buildkit.dockerfile.v0"},
    {"created": "2024-03-07T19:35:14Z", "created_by": "ENTRYPOINT [\"/usr/bin/tini\" \"--\"]", "comment": "buildkit.dockerfile.v0", "empty_layer": true}
  ]
})json";

// A Docker config as the classic builder wrote it: null Cmd, Volumes, legacy keys.
constexpr std::string_view kDockerConfig = R"json({
  "architecture": "amd64",
  "config": {
    "Hostname": "",
    "User": "",
    "AttachStdout": false,
    "ExposedPorts": {"80/tcp": {}},
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.25.4"],
    "Cmd": null,
    "Entrypoint": null,
    "Volumes": {"/var/cache/nginx": {}},
    "WorkingDir": "",
    "OnBuild": null,
    "Labels": null,
    "StopSignal": "SIGQUIT"
  },
  "container": "8b2dd6fa5c2b1b4cf1bb0fb3a0e9dd3c2e23bab7bc4c2e4c6f4e1ba9fa1e1cd2",
  "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ", "STOPSIGNAL SIGQUIT"]},
  "created": "2024-02-14T18:03:27.382349276Z",
  "docker_version": "20.10.23",
  "os": "linux",
  "rootfs": {
    "type": "layers",
    "diff_ids": ["sha256:14f0a068572ec41c255a547e980cd012b4b23e53e3adcef2e083e6382b4bc3cc"]
  }
})json";

// ---------------------------------------------------------------------------------------------
// Helpers.

// The status is an error of `code` whose one-line message contains `needle`.
::testing::AssertionResult IsError(const Status& s, Code code, std::string_view needle) {
  if (s.ok()) return ::testing::AssertionFailure() << "expected an error, got OK";
  if (s.code() != code) {
    return ::testing::AssertionFailure()
           << "code " << CodeName(s.code()) << ", want " << CodeName(code) << ": " << s.ToString();
  }
  if (s.message().find(needle) == std::string::npos) {
    return ::testing::AssertionFailure() << "message lacks \"" << needle << "\": " << s.message();
  }
  if (s.message().find('\n') != std::string::npos) {
    return ::testing::AssertionFailure() << "message is not one line: " << s.message();
  }
  return ::testing::AssertionSuccess();
}

Json Doc(std::string_view text) { return Json::parse(text); }

Status ParseStatus(const Json& doc, std::string_view content_type = "") {
  return ParseManifest(doc.dump(), content_type).status();
}

Platform P(std::string os, std::string arch, std::string variant = "") {
  Platform p;
  p.os = std::move(os);
  p.architecture = std::move(arch);
  p.variant = std::move(variant);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Media types.

TEST(MediaTypesTest, LayerCompressionOfEveryKnownLayerType) {
  EXPECT_EQ(LayerCompression(media_type::kOciLayerTar), Compression::kNone);
  EXPECT_EQ(LayerCompression(media_type::kOciLayerTarGzip), Compression::kGzip);
  EXPECT_EQ(LayerCompression(media_type::kOciLayerTarZstd), Compression::kZstd);
  EXPECT_EQ(LayerCompression(media_type::kOciLayerNondistributableTar), Compression::kNone);
  EXPECT_EQ(LayerCompression(media_type::kOciLayerNondistributableTarGzip), Compression::kGzip);
  EXPECT_EQ(LayerCompression(media_type::kOciLayerNondistributableTarZstd), Compression::kZstd);
  EXPECT_EQ(LayerCompression(media_type::kDockerLayerTarGzip), Compression::kGzip);
  EXPECT_EQ(LayerCompression(media_type::kDockerForeignLayerTarGzip), Compression::kGzip);
  EXPECT_EQ(LayerCompression(media_type::kDockerLayerTar), Compression::kNone);
  EXPECT_EQ(LayerCompression(media_type::kDockerForeignLayerTar), Compression::kNone);
}

TEST(MediaTypesTest, LayerCompressionOfUnknownTypesIsUnknown) {
  EXPECT_EQ(LayerCompression("application/vnd.oci.image.layer.v1.tar+gzip+encrypted"),
            Compression::kUnknown);
  EXPECT_EQ(LayerCompression("application/vnd.oci.image.layer.v1.tar+lz4"), Compression::kUnknown);
  EXPECT_EQ(LayerCompression("APPLICATION/VND.OCI.IMAGE.LAYER.V1.TAR"), Compression::kUnknown);
  EXPECT_EQ(LayerCompression(media_type::kOciConfig), Compression::kUnknown);
  EXPECT_EQ(LayerCompression(""), Compression::kUnknown);
  EXPECT_EQ(CompressionName(Compression::kZstd), "zstd");
  EXPECT_EQ(CompressionName(Compression::kUnknown), "unknown");
}

TEST(MediaTypesTest, ClassifiesManifestTypes) {
  EXPECT_EQ(ClassifyManifestMediaType(media_type::kOciManifest), ManifestKind::kManifest);
  EXPECT_EQ(ClassifyManifestMediaType(media_type::kDockerManifest), ManifestKind::kManifest);
  EXPECT_EQ(ClassifyManifestMediaType(media_type::kOciIndex), ManifestKind::kIndex);
  EXPECT_EQ(ClassifyManifestMediaType(media_type::kDockerManifestList), ManifestKind::kIndex);
  EXPECT_EQ(ClassifyManifestMediaType(media_type::kDockerSchema1Manifest), ManifestKind::kSchema1);
  EXPECT_EQ(ClassifyManifestMediaType(media_type::kDockerSchema1SignedManifest),
            ManifestKind::kSchema1);
  EXPECT_EQ(ClassifyManifestMediaType("application/vnd.oci.artifact.manifest.v1+json"),
            ManifestKind::kUnknown);
  EXPECT_TRUE(IsImageConfigMediaType(media_type::kOciConfig));
  EXPECT_TRUE(IsImageConfigMediaType(media_type::kDockerConfig));
  EXPECT_FALSE(IsImageConfigMediaType(media_type::kOciEmpty));
  EXPECT_TRUE(IsForeignLayerMediaType(media_type::kDockerForeignLayerTarGzip));
  EXPECT_FALSE(IsForeignLayerMediaType(media_type::kDockerLayerTarGzip));
}

TEST(MediaTypesTest, MediaTypeSyntax) {
  EXPECT_TRUE(IsValidMediaTypeSyntax(media_type::kOciLayerTarGzip));
  EXPECT_TRUE(IsValidMediaTypeSyntax("application/vnd.dev.sigstore.bundle.v0.3+json"));
  EXPECT_FALSE(IsValidMediaTypeSyntax(""));
  EXPECT_FALSE(IsValidMediaTypeSyntax("application"));
  EXPECT_FALSE(IsValidMediaTypeSyntax("/json"));
  EXPECT_FALSE(IsValidMediaTypeSyntax("application/"));
  EXPECT_FALSE(IsValidMediaTypeSyntax("application/json; charset=utf-8"));
  EXPECT_FALSE(IsValidMediaTypeSyntax("application/js\non"));
  EXPECT_FALSE(IsValidMediaTypeSyntax("application/" + std::string(128, 'a')));
  EXPECT_TRUE(IsValidMediaTypeSyntax("application/" + std::string(127, 'a')));
}

TEST(MediaTypesTest, NormalizeContentType) {
  EXPECT_EQ(NormalizeContentType(" Application/VND.OCI.Image.Manifest.v1+JSON ; charset=utf-8"),
            media_type::kOciManifest);
  EXPECT_EQ(NormalizeContentType(media_type::kDockerManifestList), media_type::kDockerManifestList);
  // Generic types say nothing about the document.
  EXPECT_EQ(NormalizeContentType("application/json"), "");
  EXPECT_EQ(NormalizeContentType("application/json; charset=utf-8"), "");
  EXPECT_EQ(NormalizeContentType("text/plain"), "");
  EXPECT_EQ(NormalizeContentType("application/octet-stream"), "");
  EXPECT_EQ(NormalizeContentType(""), "");
}

// ---------------------------------------------------------------------------------------------
// Manifests that must parse.

TEST(ParseManifestTest, OciImageManifest) {
  Result<ParsedManifest> r =
      ParseManifest(kOciManifest, "application/vnd.oci.image.manifest.v1+json");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_FALSE(r->is_index());
  ASSERT_EQ(r->index(), nullptr);
  const ImageManifest& m = *r->manifest();
  EXPECT_EQ(m.media_type, media_type::kOciManifest);
  EXPECT_EQ(r->media_type(), media_type::kOciManifest);
  EXPECT_EQ(m.config.media_type, media_type::kOciConfig);
  EXPECT_EQ(m.config.digest.ToString(),
            "sha256:42198c1ce596277409de39d1948095c499f9a53082645712c39ae109a4533eb3");
  EXPECT_EQ(m.config.size, 1471);
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[0].size, 3408729);
  EXPECT_EQ(LayerCompression(m.layers[0].media_type), Compression::kGzip);
  EXPECT_EQ(LayerCompression(m.layers[1].media_type), Compression::kZstd);
  EXPECT_EQ(m.annotations.at("org.opencontainers.image.version"), "1.4.2");
  EXPECT_FALSE(m.subject.has_value());
  EXPECT_TRUE(m.IsImage());
  EXPECT_FALSE(m.has_unknown_layer_types);
  EXPECT_TRUE(m.CheckUnpackable().ok()) << m.CheckUnpackable().ToString();
}

TEST(ParseManifestTest, DockerSchema2Manifest) {
  Result<ImageManifest> r =
      ParseImageManifest(kDockerManifest, "application/vnd.docker.distribution.manifest.v2+json");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->media_type, media_type::kDockerManifest);
  EXPECT_EQ(r->config.media_type, media_type::kDockerConfig);
  EXPECT_EQ(r->config.size, 1470);
  ASSERT_EQ(r->layers.size(), 1u);
  EXPECT_EQ(r->layers[0].media_type, media_type::kDockerLayerTarGzip);
  EXPECT_EQ(r->layers[0].digest.hex(),
            "85761b61666a376b0cdbf757d09ee0b5648cf2c309d52f04d496268055f0a5bc");
  EXPECT_TRUE(r->IsImage());
  EXPECT_TRUE(r->CheckUnpackable().ok());
}

TEST(ParseManifestTest, OciManifestWithoutMediaTypeIsRecognisedByShape) {
  Json doc = Doc(kOciManifest);
  doc.erase("mediaType");
  Result<ParsedManifest> r = ParseManifest(doc.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_NE(r->manifest(), nullptr);
  EXPECT_EQ(r->media_type(), media_type::kOciManifest);
}

TEST(ParseManifestTest, ContentTypeTakesTheDocumentTypeWhenTheFieldIsAbsent) {
  Json doc = Doc(kOciManifest);
  doc.erase("mediaType");
  Result<ParsedManifest> r =
      ParseManifest(doc.dump(), "application/vnd.oci.image.manifest.v1+json");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->media_type(), media_type::kOciManifest);
}

TEST(ParseManifestTest, ContentTypeParametersAndCaseAreIgnored) {
  Result<ParsedManifest> r = ParseManifest(
      kDockerManifest, "Application/vnd.docker.distribution.manifest.v2+json; charset=utf-8");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->media_type(), media_type::kDockerManifest);
}

TEST(ParseManifestTest, GenericContentTypeDefersToTheDocument) {
  Result<ParsedManifest> r = ParseManifest(kOciIndex, "application/json");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->is_index());
  EXPECT_EQ(r->media_type(), media_type::kOciIndex);
}

TEST(ParseManifestTest, OciIndex) {
  Result<ImageIndex> r = ParseImageIndex(kOciIndex, "application/vnd.oci.image.index.v1+json");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->media_type, media_type::kOciIndex);
  ASSERT_EQ(r->manifests.size(), 8u);
  const Descriptor& amd64 = r->manifests[0];
  ASSERT_TRUE(amd64.platform.has_value());
  EXPECT_EQ(amd64.platform->os, "linux");
  EXPECT_EQ(amd64.platform->architecture, "amd64");
  EXPECT_EQ(amd64.annotations.at("org.opencontainers.image.revision"), "b8a4f5e");
  const Descriptor& arm64 = r->manifests[4];
  ASSERT_TRUE(arm64.platform.has_value());
  EXPECT_EQ(arm64.platform->variant, "v8");  // kept as written
  EXPECT_EQ(r->manifests[1].platform->architecture, "unknown");
}

TEST(ParseManifestTest, DockerManifestListWithWindowsEntry) {
  Result<ParsedManifest> r = ParseManifest(kDockerManifestList);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ImageIndex* idx = r->index();
  ASSERT_NE(idx, nullptr);
  EXPECT_EQ(r->manifest(), nullptr);
  EXPECT_EQ(idx->media_type, media_type::kDockerManifestList);
  ASSERT_EQ(idx->manifests.size(), 2u);
  const Platform& win = *idx->manifests[1].platform;
  EXPECT_EQ(win.os, "windows");
  EXPECT_EQ(win.os_version, "10.0.20348.2340");
  ASSERT_EQ(win.os_features.size(), 1u);
  EXPECT_EQ(win.os_features[0], "win32k");
}

TEST(ParseManifestTest, IndexWithoutMediaTypeIsRecognisedByShape) {
  Json doc = Doc(kOciIndex);
  doc.erase("mediaType");
  Result<ParsedManifest> r = ParseManifest(doc.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->is_index());
  EXPECT_EQ(r->media_type(), media_type::kOciIndex);
}

TEST(ParseManifestTest, EmptyIndexIsAccepted) {
  // image-layout's index.json starts empty; "manifests" is required, not non-empty.
  Result<ImageIndex> r = ParseImageIndex(R"({"schemaVersion": 2, "manifests": []})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->manifests.empty());
}

TEST(ParseManifestTest, ArtifactManifestParsesButIsNotUnpackable) {
  Result<ImageManifest> r = ParseImageManifest(kArtifactManifest);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->artifact_type, "application/vnd.dev.sigstore.bundle.v0.3+json");
  EXPECT_EQ(r->config.media_type, media_type::kOciEmpty);
  ASSERT_TRUE(r->subject.has_value());
  EXPECT_EQ(r->subject->size, 1001);
  EXPECT_FALSE(r->IsImage());
  EXPECT_TRUE(r->has_unknown_layer_types);
  EXPECT_TRUE(IsError(r->CheckUnpackable(), Code::kUnsupported, "not a container image"));
}

TEST(ParseManifestTest, EmptyLayerListIsAccepted) {
  // image-spec: layers "SHOULD have at least one entry"; docker builds FROM scratch images with
  // only metadata, and those have none.
  Json doc = Doc(kOciManifest);
  doc["layers"] = Json::array();
  Result<ImageManifest> r = ParseImageManifest(doc.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->layers.empty());
  EXPECT_TRUE(r->CheckUnpackable().ok());
}

TEST(ParseManifestTest, UnknownLayerTypeIsAcceptedAndFlagged) {
  Json doc = Doc(kOciManifest);
  doc["layers"][1]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
  Result<ImageManifest> r = ParseImageManifest(doc.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->has_unknown_layer_types);
  EXPECT_TRUE(r->IsImage());
  EXPECT_TRUE(IsError(r->CheckUnpackable(), Code::kUnsupported, "+encrypted"));
  EXPECT_TRUE(IsError(r->CheckUnpackable(), Code::kUnsupported, "layer 1"));
}

TEST(ParseManifestTest, ForeignLayerWithUrlsIsKept) {
  Json doc = Doc(kDockerManifest);
  doc["layers"][0]["mediaType"] = media_type::kDockerForeignLayerTarGzip;
  doc["layers"][0]["urls"] = {"https://mcr.microsoft.com/v2/windows/blobs/sha256:abc"};
  Result<ImageManifest> r = ParseImageManifest(doc.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->layers[0].urls.size(), 1u);
  EXPECT_TRUE(IsForeignLayerMediaType(r->layers[0].media_type));
  EXPECT_FALSE(r->has_unknown_layer_types);
}

TEST(ParseManifestTest, Sha512DigestParsesButIsNotUnpackable) {
  Json doc = Doc(kOciManifest);
  doc["layers"][0]["digest"] = "sha512:" + std::string(128, 'a');
  Result<ImageManifest> r = ParseImageManifest(doc.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->layers[0].digest.IsSha256());
  EXPECT_TRUE(IsError(r->CheckUnpackable(), Code::kUnsupported, "sha256"));
}

TEST(ParseManifestTest, NullOptionalFieldsCountAsAbsent) {
  Json doc = Doc(kOciManifest);
  doc["annotations"] = nullptr;
  doc["subject"] = nullptr;
  doc["layers"][0]["urls"] = nullptr;
  Result<ImageManifest> r = ParseImageManifest(doc.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->annotations.empty());
  EXPECT_FALSE(r->subject.has_value());
}

TEST(ParseManifestTest, UnknownFieldsAreIgnored) {
  Json doc = Doc(kOciManifest);
  doc["x-vendor"] = {{"anything", {1, 2, 3}}};
  doc["layers"][0]["data"] = "AAAA";
  EXPECT_TRUE(ParseStatus(doc).ok()) << ParseStatus(doc).ToString();
}

// ---------------------------------------------------------------------------------------------
// Refusals: malformed input.

TEST(ParseManifestRejectTest, MalformedJson) {
  for (std::string_view bad : {
           std::string_view(""), std::string_view("{"),
           std::string_view(R"({"schemaVersion": 2,})"),
           std::string_view(R"({'schemaVersion': 2})"),
           std::string_view(R"({"schemaVersion": 2} trailing)"),
           std::string_view(R"({"schemaVersion": 2} {})"),
           std::string_view("{\"schemaVersion\": 2 /* comment */}"),
           std::string_view("{\"mediaType\": \"\xff\xfe\"}"),  // invalid UTF-8
           std::string_view("{\"a\": \"\x01\"}"),              // control character in a string
       }) {
    Result<ParsedManifest> r = ParseManifest(bad);
    EXPECT_TRUE(IsError(r.status(), Code::kInvalidArgument, "malformed JSON")) << "input: " << bad;
    EXPECT_TRUE(IsError(r.status(), Code::kInvalidArgument, "manifest: ")) << "input: " << bad;
  }
}

TEST(ParseManifestRejectTest, NotAnObject) {
  EXPECT_TRUE(IsError(ParseManifest("[1, 2]").status(), Code::kInvalidArgument,
                      "must be a JSON object, got array"));
  EXPECT_TRUE(IsError(ParseManifest("2").status(), Code::kInvalidArgument, "JSON object"));
  EXPECT_TRUE(IsError(ParseManifest("null").status(), Code::kInvalidArgument, "JSON object"));
}

TEST(ParseManifestRejectTest, DuplicateKeys) {
  // Go keeps the last "mediaType", other parsers the first: the document must be refused.
  const std::string dup = R"({"schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": []})";
  EXPECT_TRUE(
      IsError(ParseManifest(dup).status(), Code::kInvalidArgument, "duplicate key \"mediaType\""));
  // Nested, and spelled differently: "\u0073ize" is "size".
  std::string nested(kOciManifest);
  nested.replace(nested.find("\"size\": 1471"), 12, "\"size\": 1471, \"\\u0073ize\": 1");
  EXPECT_TRUE(
      IsError(ParseManifest(nested).status(), Code::kInvalidArgument, "duplicate key \"size\""));
}

TEST(ParseManifestRejectTest, NestingDepthIsBounded) {
  std::string deep =
      R"({"schemaVersion": 2, "x": )" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_TRUE(
      IsError(ParseManifest(deep).status(), Code::kInvalidArgument, "nested deeper than 64"));
  EXPECT_TRUE(IsError(ParseManifest(deep).status(), Code::kInvalidArgument, "max_nesting_depth"));
  // A huge depth costs nothing: the check stops at the bound.
  std::string bomb(3 << 20, '[');
  EXPECT_TRUE(IsError(ParseManifest(bomb).status(), Code::kInvalidArgument, "nested deeper"));
  // Raising the limit lets the first one through.
  ParseLimits limits;
  limits.max_nesting_depth = 200;
  Json doc = Doc(kOciManifest);
  std::string ok = doc.dump();
  ok.insert(1, "\"x\": " + std::string(100, '[') + std::string(100, ']') + ",");
  EXPECT_TRUE(ParseManifest(ok, "", limits).ok());
  EXPECT_FALSE(ParseManifest(ok).ok());
}

TEST(ParseManifestRejectTest, SchemaVersion) {
  Json doc = Doc(kOciManifest);
  doc.erase("schemaVersion");
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "schemaVersion: missing"));
  doc["schemaVersion"] = 3;
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "schemaVersion: must be 2, got 3"));
  doc["schemaVersion"] = -2;
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "must be 2, got -2"));
  doc["schemaVersion"] = "2";
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "got string"));
  doc["schemaVersion"] = 2.0;
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "schemaVersion"));
  doc["schemaVersion"] = nullptr;
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "schemaVersion: missing"));
}

TEST(ParseManifestRejectTest, Schema1IsUnsupported) {
  EXPECT_TRUE(IsError(ParseManifest(kSchema1Manifest).status(), Code::kUnsupported,
                      "schema 1 manifests are not supported"));
  EXPECT_TRUE(IsError(
      ParseManifest(kSchema1Manifest, "application/vnd.docker.distribution.manifest.v1+prettyjws")
          .status(),
      Code::kUnsupported, "schema 1 manifests are not supported"));
  // By content type alone: the bytes are not even looked at.
  EXPECT_TRUE(IsError(
      ParseManifest(kOciManifest, "application/vnd.docker.distribution.manifest.v1+json").status(),
      Code::kUnsupported, "schema 1"));
  // By mediaType field.
  Json doc = Doc(kDockerManifest);
  doc["mediaType"] = media_type::kDockerSchema1SignedManifest;
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kUnsupported, "schema 1"));
}

// ---------------------------------------------------------------------------------------------
// Refusals: type confusion (CVE-2021-41190).

TEST(ParseManifestRejectTest, ManifestsAndLayersTogether) {
  Json doc = Doc(kOciManifest);
  doc.erase("mediaType");
  doc["manifests"] = Doc(kOciIndex)["manifests"];
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "ambiguous document"));
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "CVE-2021-41190"));
  // Declared types do not make it acceptable, whichever they name.
  doc["mediaType"] = media_type::kOciIndex;
  EXPECT_TRUE(
      IsError(ParseStatus(doc, media_type::kOciIndex), Code::kInvalidArgument, "ambiguous"));
  doc["mediaType"] = media_type::kOciManifest;
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "ambiguous"));
}

TEST(ParseManifestRejectTest, IndexWithConfigOnly) {
  Json doc = Doc(kOciIndex);
  doc["config"] = Doc(kOciManifest)["config"];
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "ambiguous"));
}

TEST(ParseManifestRejectTest, NullManifestsBesideLayersIsStillAmbiguous) {
  Json doc = Doc(kOciManifest);
  doc["manifests"] = nullptr;
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "ambiguous"));
}

TEST(ParseManifestRejectTest, MediaTypeContradictsContentType) {
  EXPECT_TRUE(IsError(ParseManifest(kOciManifest, media_type::kOciIndex).status(),
                      Code::kInvalidArgument, "contradicts the content type"));
  EXPECT_TRUE(IsError(ParseManifest(kOciIndex, media_type::kOciManifest).status(),
                      Code::kInvalidArgument, "contradicts"));
  // OCI and Docker types of the same kind still disagree.
  EXPECT_TRUE(IsError(ParseManifest(kDockerManifest, media_type::kOciManifest).status(),
                      Code::kInvalidArgument, "contradicts"));
}

TEST(ParseManifestRejectTest, IndexShapedDocumentServedAsManifest) {
  // No mediaType field: the content type declares a manifest, the shape is an index.
  Json doc = Doc(kOciIndex);
  doc.erase("mediaType");
  Status s = ParseStatus(doc, media_type::kOciManifest);
  EXPECT_TRUE(IsError(s, Code::kInvalidArgument, "declared as an image manifest"));
  EXPECT_TRUE(IsError(s, Code::kInvalidArgument, "shaped as an image index"));
  // And the reverse.
  Json m = Doc(kOciManifest);
  m.erase("mediaType");
  EXPECT_TRUE(IsError(ParseStatus(m, media_type::kOciIndex), Code::kInvalidArgument,
                      "declared as an image index"));
  // The field alone can lie about the shape too.
  Json lying = Doc(kOciIndex);
  lying["mediaType"] = media_type::kOciManifest;
  EXPECT_TRUE(IsError(ParseStatus(lying), Code::kInvalidArgument, "shaped as an image index"));
}

TEST(ParseManifestRejectTest, WrongKindForTheCaller) {
  EXPECT_TRUE(IsError(ParseImageManifest(kOciIndex).status(), Code::kInvalidArgument,
                      "expected an image manifest, got an image index"));
  EXPECT_TRUE(IsError(ParseImageIndex(kDockerManifest).status(), Code::kInvalidArgument,
                      "expected an image index, got an image manifest"));
}

TEST(ParseManifestRejectTest, DockerDocumentsMustDeclareTheirMediaType) {
  Json doc = Doc(kDockerManifest);
  doc.erase("mediaType");
  EXPECT_TRUE(IsError(ParseStatus(doc, media_type::kDockerManifest), Code::kInvalidArgument,
                      "mediaType: missing (required in Docker manifests"));
  Json list = Doc(kDockerManifestList);
  list.erase("mediaType");
  EXPECT_TRUE(IsError(ParseStatus(list, media_type::kDockerManifestList), Code::kInvalidArgument,
                      "mediaType: missing"));
}

TEST(ParseManifestRejectTest, UnknownManifestTypes) {
  EXPECT_TRUE(
      IsError(ParseManifest(kOciManifest, "application/vnd.oci.artifact.manifest.v1+json").status(),
              Code::kUnsupported, "unsupported manifest media type"));
  Json doc = Doc(kOciManifest);
  doc["mediaType"] = "application/vnd.example.thing+json";
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kUnsupported, "unsupported manifest media type"));
  doc["mediaType"] = 7;
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "mediaType: must be a string"));
}

TEST(ParseManifestRejectTest, NeitherManifestNorIndex) {
  EXPECT_TRUE(IsError(ParseManifest(R"({"schemaVersion": 2})").status(), Code::kInvalidArgument,
                      "neither an image manifest"));
}

// ---------------------------------------------------------------------------------------------
// Refusals: fields.

TEST(ParseManifestRejectTest, MissingOrMistypedConfig) {
  Json doc = Doc(kOciManifest);
  doc.erase("config");
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "config: missing"));
  doc["config"] = "sha256:abc";
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument,
                      "config: must be a descriptor object, got string"));
  // A Docker manifest without config is refused the same way.
  Json docker = Doc(kDockerManifest);
  docker.erase("config");
  EXPECT_TRUE(IsError(ParseStatus(docker), Code::kInvalidArgument, "config: missing"));
}

TEST(ParseManifestRejectTest, MissingOrMistypedLayers) {
  Json doc = Doc(kOciManifest);
  doc.erase("layers");
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "layers: missing"));
  doc["layers"] = Json::object();
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument,
                      "layers: must be an array of descriptors, got object"));
  doc["layers"] = Json::array({42});
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "layers[0]: must be a descriptor"));
  Json idx = Doc(kOciIndex);
  idx["manifests"] = nullptr;
  EXPECT_TRUE(IsError(ParseStatus(idx), Code::kInvalidArgument, "manifests: missing"));
}

TEST(ParseManifestRejectTest, BadDigests) {
  struct Case {
    Json value;
    Code code;
    std::string_view needle;
  };
  const Case cases[] = {
      {"sha256:5E71EC1978BF9EAEA2ECD47A34582F691A65FAC2DAA06376A67CBCA7E3909747",
       Code::kInvalidArgument, "layers[1].digest: invalid digest"},
      {"sha256:5e71ec19", Code::kInvalidArgument, "layers[1].digest"},
      {"5e71ec1978bf9eaea2ecd47a34582f691a65fac2daa06376a67cbca7e3909747", Code::kInvalidArgument,
       "layers[1].digest"},
      {"sha256:5e71ec1978bf9eaea2ecd47a34582f691a65fac2daa06376a67cbca7e390974g",
       Code::kInvalidArgument, "layers[1].digest"},
      {"", Code::kInvalidArgument, "layers[1].digest"},
      {"blake3:5e71ec1978bf9eaea2ecd47a34582f691a65fac2daa06376a67cbca7e3909747",
       Code::kUnsupported, "layers[1].digest"},
      {12345, Code::kInvalidArgument, "layers[1].digest: must be a digest string, got number"},
      {nullptr, Code::kInvalidArgument, "layers[1].digest: missing"},
  };
  for (const Case& c : cases) {
    Json doc = Doc(kOciManifest);
    doc["layers"][1]["digest"] = c.value;
    EXPECT_TRUE(IsError(ParseStatus(doc), c.code, c.needle)) << "digest: " << c.value.dump();
  }
  Json doc = Doc(kOciManifest);
  doc["config"].erase("digest");
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "config.digest: missing"));
  Json idx = Doc(kOciIndex);
  idx["manifests"][3]["digest"] = "sha256:zz";
  EXPECT_TRUE(IsError(ParseStatus(idx), Code::kInvalidArgument, "manifests[3].digest"));
  Json art = Doc(kArtifactManifest);
  art["subject"]["digest"] = "md5:d41d8cd98f00b204e9800998ecf8427e";
  EXPECT_TRUE(IsError(ParseStatus(art), Code::kUnsupported, "subject.digest"));
}

TEST(ParseManifestRejectTest, BadSizes) {
  struct Case {
    Json value;
    std::string_view needle;
  };
  const Case cases[] = {
      {-1, "layers[0].size: must be a non-negative integer, got -1"},
      {1.5, "layers[0].size: must be a non-negative integer"},
      {1e3, "layers[0].size: must be a non-negative integer"},
      {"1024", "layers[0].size: must be a non-negative integer, got string"},
      {true, "got boolean"},
      {std::uint64_t{9223372036854775808u}, "layers[0].size: too large"},
      {nullptr, "layers[0].size: missing"},
  };
  for (const Case& c : cases) {
    Json doc = Doc(kOciManifest);
    doc["layers"][0]["size"] = c.value;
    EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, c.needle))
        << "size: " << c.value.dump();
  }
  // The largest int64 is a legal size.
  Json doc = Doc(kOciManifest);
  doc["layers"][0]["size"] = std::int64_t{9223372036854775807};
  Result<ImageManifest> r = ParseImageManifest(doc.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->layers[0].size, 9223372036854775807);
  // "-0" is zero, as Go reads it.
  std::string minus_zero(kOciManifest);
  minus_zero.replace(minus_zero.find("1209"), 4, "-0");
  Result<ImageManifest> z = ParseImageManifest(minus_zero);
  ASSERT_TRUE(z.ok()) << z.status().ToString();
  EXPECT_EQ(z->layers[1].size, 0);
  // A number too big even for uint64 becomes a float in the parser and is refused as one.
  std::string huge(kOciManifest);
  huge.replace(huge.find("3408729"), 7, "99999999999999999999999");
  EXPECT_TRUE(IsError(ParseManifest(huge).status(), Code::kInvalidArgument,
                      "layers[0].size: must be a non-negative integer"));
}

TEST(ParseManifestRejectTest, BadDescriptorMediaTypes) {
  Json doc = Doc(kOciManifest);
  doc["layers"][0].erase("mediaType");
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "layers[0].mediaType: missing"));
  doc["layers"][0]["mediaType"] = "not a media type";
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument,
                      "layers[0].mediaType: invalid media type \"not a media type\""));
  doc["layers"][0]["mediaType"] = "application/x\ny";
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "\\n"));
  Json art = Doc(kArtifactManifest);
  art["artifactType"] = "bogus";
  EXPECT_TRUE(
      IsError(ParseStatus(art), Code::kInvalidArgument, "artifactType: invalid media type"));
}

TEST(ParseManifestRejectTest, BadAnnotationsUrlsAndPlatforms) {
  Json doc = Doc(kOciManifest);
  doc["annotations"]["org.opencontainers.image.version"] = 3;
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument,
                      "annotations[\"org.opencontainers.image.version\"]: must be a string"));
  Json urls = Doc(kOciManifest);
  urls["layers"][0]["urls"] = {"https://example.com/blob", 7};
  EXPECT_TRUE(IsError(ParseStatus(urls), Code::kInvalidArgument, "layers[0].urls[1]"));
  Json idx = Doc(kOciIndex);
  idx["manifests"][2]["platform"].erase("architecture");
  EXPECT_TRUE(IsError(ParseStatus(idx), Code::kInvalidArgument,
                      "manifests[2].platform.architecture: missing"));
  Json idx2 = Doc(kOciIndex);
  idx2["manifests"][0]["platform"] = "linux/amd64";
  EXPECT_TRUE(IsError(ParseStatus(idx2), Code::kInvalidArgument,
                      "manifests[0].platform: must be an object"));
}

// ---------------------------------------------------------------------------------------------
// Size limits.

TEST(ParseLimitsTest, DefaultsAreDocumentedValues) {
  const ParseLimits limits;
  EXPECT_EQ(limits.max_manifest_bytes, 4u * 1024 * 1024);
  EXPECT_EQ(limits.max_config_bytes, 8u * 1024 * 1024);
  EXPECT_EQ(limits.max_nesting_depth, 64);
}

TEST(ParseLimitsTest, OversizeManifestIsRefusedBeforeParsing) {
  // Over the default: not even valid JSON, and the size error wins.
  const std::string big(4 * 1024 * 1024 + 1, ' ');
  Status s = ParseManifest(big).status();
  EXPECT_TRUE(IsError(s, Code::kInvalidArgument, "4194305 bytes, over the limit of 4194304"));
  EXPECT_TRUE(IsError(s, Code::kInvalidArgument, "raise the limit max_manifest_bytes"));
  // Exactly at a limit is accepted; one byte more is not.
  ParseLimits limits;
  limits.max_manifest_bytes = kOciManifest.size();
  EXPECT_TRUE(ParseManifest(kOciManifest, "", limits).ok());
  limits.max_manifest_bytes = kOciManifest.size() - 1;
  EXPECT_TRUE(IsError(ParseManifest(kOciManifest, "", limits).status(), Code::kInvalidArgument,
                      "max_manifest_bytes"));
}

TEST(ParseLimitsTest, LargeButLegalManifestParses) {
  // An index near 4 MiB (thousands of entries) is legal and must parse.
  Json idx = Doc(kOciIndex);
  const Json entry = idx["manifests"][0];
  const std::size_t count = 4000 * 1024 / (entry.dump().size() + 1);
  for (std::size_t i = 0; i < count; ++i) idx["manifests"].push_back(entry);
  ASSERT_LE(idx.dump().size(), ParseLimits().max_manifest_bytes);
  Result<ImageIndex> r = ParseImageIndex(idx.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->manifests.size(), 10000u);
}

TEST(ParseLimitsTest, DeclaredSizesOverTheLimitsAreRefusedEarly) {
  Json doc = Doc(kOciManifest);
  doc["config"]["size"] = 8 * 1024 * 1024 + 1;
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "config.size: declares a config"));
  EXPECT_TRUE(IsError(ParseStatus(doc), Code::kInvalidArgument, "max_config_bytes"));
  // An artifact's config is an arbitrary blob, not a config imgstore parses: no bound.
  Json art = Doc(kArtifactManifest);
  art["config"]["size"] = 100 * 1024 * 1024;
  EXPECT_TRUE(ParseStatus(art).ok());
  Json idx = Doc(kOciIndex);
  idx["manifests"][5]["size"] = 5 * 1024 * 1024;
  EXPECT_TRUE(IsError(ParseStatus(idx), Code::kInvalidArgument, "manifests[5].size"));
  EXPECT_TRUE(IsError(ParseStatus(idx), Code::kInvalidArgument, "max_manifest_bytes"));
}

// ---------------------------------------------------------------------------------------------
// Robustness: no input makes the parser throw or accept a broken document.

TEST(ParseRobustnessTest, EveryTruncationIsRefused) {
  for (std::string_view doc : {kOciManifest, kOciIndex, kDockerManifest}) {
    for (std::size_t n = 0; n < doc.size(); ++n) {
      Result<ParsedManifest> r = ParseManifest(doc.substr(0, n));
      ASSERT_FALSE(r.ok()) << "a " << n << "-byte prefix parsed";
      ASSERT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
    }
  }
  for (std::size_t n = 0; n < kOciConfig.size(); ++n) {
    ASSERT_FALSE(ParseImageConfig(kOciConfig.substr(0, n)).ok()) << n;
  }
}

TEST(ParseRobustnessTest, RandomMutationsNeverThrow) {
  std::mt19937 rng(20240307);
  const std::string_view bases[] = {kOciManifest, kOciIndex, kDockerManifestList, kOciConfig};
  int accepted = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string doc(bases[i % 4]);
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t pos = rng() % doc.size();
      switch (rng() % 3) {
        case 0:
          doc[pos] = static_cast<char>(rng() % 256);
          break;
        case 1:
          doc.erase(pos, 1 + rng() % 8);
          break;
        default:
          doc.insert(pos, 1, "{}[]\",:-0e"[rng() % 10]);
          break;
      }
      if (doc.empty()) doc = "{";
    }
    EXPECT_NO_THROW({
      Result<ParsedManifest> m = ParseManifest(doc);
      Result<ImageConfig> c = ParseImageConfig(doc);
      if (m.ok()) {
        ++accepted;
        if (const ImageManifest* im = m->manifest()) {
          EXPECT_GE(im->config.size, 0);
          for (const Descriptor& l : im->layers) {
            EXPECT_FALSE(l.digest.empty());
          }
        }
      } else {
        EXPECT_FALSE(m.status().message().empty());
      }
      if (!c.ok()) {
        EXPECT_FALSE(c.status().message().empty());
      }
    });
  }
  // Mutations inside string values leave documents valid: some must still parse, or the
  // mutator is broken and this test proves nothing.
  EXPECT_GT(accepted, 0);
}

// ---------------------------------------------------------------------------------------------
// Platforms.

TEST(PlatformTest, Normalize) {
  EXPECT_EQ(NormalizePlatform(P("Linux", "x86_64")).ToString(), "linux/amd64");
  EXPECT_EQ(NormalizePlatform(P("linux", "x86-64")).ToString(), "linux/amd64");
  EXPECT_EQ(NormalizePlatform(P("linux", "amd64", "v1")).ToString(), "linux/amd64");
  EXPECT_EQ(NormalizePlatform(P("linux", "amd64", "v3")).ToString(), "linux/amd64/v3");
  EXPECT_EQ(NormalizePlatform(P("linux", "aarch64")).ToString(), "linux/arm64");
  EXPECT_EQ(NormalizePlatform(P("linux", "arm64", "v8")).ToString(), "linux/arm64");
  EXPECT_EQ(NormalizePlatform(P("linux", "arm64", "8")).ToString(), "linux/arm64");
  EXPECT_EQ(NormalizePlatform(P("linux", "arm64", "9")).ToString(), "linux/arm64/v9");
  EXPECT_EQ(NormalizePlatform(P("linux", "arm")).ToString(), "linux/arm/v7");
  EXPECT_EQ(NormalizePlatform(P("linux", "arm", "6")).ToString(), "linux/arm/v6");
  EXPECT_EQ(NormalizePlatform(P("linux", "armhf")).ToString(), "linux/arm/v7");
  EXPECT_EQ(NormalizePlatform(P("linux", "armel")).ToString(), "linux/arm/v6");
  EXPECT_EQ(NormalizePlatform(P("linux", "i386")).ToString(), "linux/386");
  EXPECT_EQ(NormalizePlatform(P("macOS", "arm64")).ToString(), "darwin/arm64");
  EXPECT_EQ(NormalizePlatform(P("linux", "riscv64")).ToString(), "linux/riscv64");
}

TEST(PlatformTest, HostPlatform) {
  const Platform host = HostPlatform();
  EXPECT_EQ(host, NormalizePlatform(host));
#if defined(__linux__) && defined(__x86_64__)
  EXPECT_EQ(host.ToString(), "linux/amd64");
#elif defined(__linux__) && defined(__aarch64__)
  EXPECT_EQ(host.ToString(), "linux/arm64");
#else
  EXPECT_FALSE(host.architecture.empty());
#endif
}

TEST(PlatformTest, ParsePlatform) {
  Result<Platform> p = ParsePlatform("linux/arm64/v8");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, P("linux", "arm64"));
  Result<Platform> q = ParsePlatform("linux/arm");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->variant, "v7");
  EXPECT_TRUE(IsError(ParsePlatform("linux").status(), Code::kInvalidArgument, "os/arch"));
  EXPECT_TRUE(IsError(ParsePlatform("linux//v7").status(), Code::kInvalidArgument, "malformed"));
  EXPECT_TRUE(
      IsError(ParsePlatform("linux/amd64/v2/x").status(), Code::kInvalidArgument, "os/arch"));
  EXPECT_TRUE(IsError(ParsePlatform("linux/am d64").status(), Code::kInvalidArgument, "platform"));
}

TEST(PlatformTest, Rank) {
  EXPECT_EQ(PlatformRank(P("linux", "amd64"), P("linux", "amd64")), 0);
  EXPECT_EQ(PlatformRank(P("linux", "amd64"), P("linux", "386")), 1);
  EXPECT_EQ(PlatformRank(P("linux", "amd64"), P("linux", "amd64", "v2")), std::nullopt);
  EXPECT_EQ(PlatformRank(P("linux", "amd64", "v3"), P("linux", "amd64", "v2")), 1);
  EXPECT_EQ(PlatformRank(P("linux", "amd64", "v3"), P("linux", "amd64")), 2);
  EXPECT_EQ(PlatformRank(P("linux", "arm64"), P("linux", "arm64", "v8")), 0);
  EXPECT_EQ(PlatformRank(P("linux", "arm64", "v8"), P("linux", "arm64")), 0);
  EXPECT_EQ(PlatformRank(P("linux", "aarch64"), P("linux", "arm64")), 0);
  EXPECT_EQ(PlatformRank(P("linux", "arm64"), P("linux", "arm64", "v9")), std::nullopt);
  EXPECT_EQ(PlatformRank(P("linux", "arm64", "v9"), P("linux", "arm64")), 1);
  EXPECT_GT(PlatformRank(P("linux", "arm64"), P("linux", "arm", "v7")).value_or(-1), 0);
  EXPECT_EQ(PlatformRank(P("linux", "arm"), P("linux", "arm", "v7")), 0);
  EXPECT_EQ(PlatformRank(P("linux", "arm", "v7"), P("linux", "arm")), 0);
  EXPECT_EQ(PlatformRank(P("linux", "arm", "v7"), P("linux", "arm", "v6")), 1);
  EXPECT_EQ(PlatformRank(P("linux", "arm", "v6"), P("linux", "arm", "v7")), std::nullopt);
  EXPECT_EQ(PlatformRank(P("linux", "amd64"), P("windows", "amd64")), std::nullopt);
  EXPECT_EQ(PlatformRank(P("linux", "riscv64"), P("linux", "riscv64")), 0);
  EXPECT_EQ(PlatformRank(P("linux", "riscv64"), P("linux", "amd64")), std::nullopt);
}

class SelectManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<ImageIndex> r = ParseImageIndex(kOciIndex);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    index_ = std::move(r).value();
  }
  // The size of the selected entry (unique per entry in kOciIndex), or -1 on error.
  std::int64_t Pick(const Platform& want) {
    Result<Descriptor> d = SelectManifest(index_, want);
    return d.ok() ? d->size : -1;
  }
  ImageIndex index_;
};

TEST_F(SelectManifestTest, ExactPlatforms) {
  EXPECT_EQ(Pick(P("linux", "amd64")), 1001);
  EXPECT_EQ(Pick(P("linux", "arm", "v6")), 1002);
  EXPECT_EQ(Pick(P("linux", "arm", "v7")), 1003);
  EXPECT_EQ(Pick(P("linux", "386")), 1005);
  EXPECT_EQ(Pick(P("linux", "s390x")), 1007);
  Result<Descriptor> d = SelectManifest(index_, P("linux", "ppc64le"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->digest.ToString(),
            "sha256:2db50cb262fd80226155a070846902096fbe26e084e73f7c9efb5665bddb15f1");
}

TEST_F(SelectManifestTest, Arm64AndV8AreOnePlatform) {
  EXPECT_EQ(Pick(P("linux", "arm64")), 1004);
  EXPECT_EQ(Pick(P("linux", "arm64", "v8")), 1004);
  EXPECT_EQ(Pick(P("linux", "aarch64")), 1004);
}

TEST_F(SelectManifestTest, ArmDefaultsToV7AndFallsBackDownward) {
  EXPECT_EQ(Pick(P("linux", "arm")), 1003);
  EXPECT_EQ(Pick(P("linux", "arm", "v8")), 1003);  // no arm/v8 entry: v7 is the best it runs
  EXPECT_EQ(Pick(P("linux", "arm", "v5")), -1);    // v5 cannot run v6 or v7
}

TEST_F(SelectManifestTest, FallbacksWhenTheNativeBuildIsMissing) {
  ImageIndex idx = index_;
  std::erase_if(idx.manifests, [](const Descriptor& d) {
    return d.platform &&
           (d.platform->architecture == "amd64" || d.platform->architecture == "arm64");
  });
  Result<Descriptor> amd = SelectManifest(idx, P("linux", "amd64"));
  ASSERT_TRUE(amd.ok()) << amd.status().ToString();
  EXPECT_EQ(amd->size, 1005);  // 386
  Result<Descriptor> arm = SelectManifest(idx, P("linux", "arm64"));
  ASSERT_TRUE(arm.ok()) << arm.status().ToString();
  EXPECT_EQ(arm->size, 1003);  // arm/v7, the best 32-bit build
}

TEST_F(SelectManifestTest, NoMatchListsAvailablePlatforms) {
  Result<Descriptor> d = SelectManifest(index_, P("windows", "amd64"));
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(IsError(d.status(), Code::kNotFound, "no manifest for platform windows/amd64"));
  EXPECT_TRUE(IsError(d.status(), Code::kNotFound,
                      "available: linux/amd64, unknown/unknown, linux/arm/v6, linux/arm/v7, "
                      "linux/arm64/v8, linux/386, linux/ppc64le, linux/s390x"));
  EXPECT_TRUE(IsError(SelectManifest(index_, P("linux", "riscv64")).status(), Code::kNotFound,
                      "linux/riscv64"));
}

TEST_F(SelectManifestTest, AttestationsAreChosenOnlyByName) {
  EXPECT_EQ(Pick(P("unknown", "unknown")), 839);  // only when asked for by name
  ImageIndex idx;
  idx.manifests.push_back(index_.manifests[1]);  // the attestation alone
  EXPECT_TRUE(IsError(SelectManifest(idx, P("linux", "amd64")).status(), Code::kNotFound,
                      "unknown/unknown"));
}

TEST_F(SelectManifestTest, EntriesOfUnknownTypeAreSkipped) {
  ImageIndex idx;
  Descriptor helm = index_.manifests[0];
  helm.media_type = "application/vnd.cncf.helm.config.v1+json";
  idx.manifests.push_back(helm);
  EXPECT_TRUE(IsError(SelectManifest(idx, P("linux", "amd64")).status(), Code::kNotFound,
                      "lists no image manifests"));
}

TEST_F(SelectManifestTest, TiesGoToTheFirstEntry) {
  ImageIndex idx;
  Descriptor a = index_.manifests[0];
  Descriptor b = index_.manifests[0];
  b.size = 2002;
  idx.manifests = {a, b};
  EXPECT_EQ(SelectManifest(idx, P("linux", "amd64"))->size, 1001);
  idx.manifests = {b, a};
  EXPECT_EQ(SelectManifest(idx, P("linux", "amd64"))->size, 2002);
}

TEST_F(SelectManifestTest, UnlabelledEntryIsTheLastResort) {
  Descriptor unlabelled = index_.manifests[0];
  unlabelled.platform.reset();
  unlabelled.size = 3003;
  ImageIndex idx;
  idx.manifests = {unlabelled, index_.manifests[0]};
  EXPECT_EQ(SelectManifest(idx, P("linux", "amd64"))->size, 1001);  // a labelled match wins
  EXPECT_EQ(SelectManifest(idx, P("linux", "s390x"))->size, 3003);  // else the unlabelled one
}

TEST_F(SelectManifestTest, EmptyIndex) {
  EXPECT_TRUE(IsError(SelectManifest(ImageIndex{}, P("linux", "amd64")).status(), Code::kNotFound,
                      "lists no image manifests"));
}

TEST_F(SelectManifestTest, DefaultsToTheHost) {
  Result<Descriptor> d = SelectManifest(index_);
  Result<Descriptor> host = SelectManifest(index_, HostPlatform());
  ASSERT_EQ(d.ok(), host.ok());
  if (d.ok()) {
    EXPECT_EQ(d->digest, host->digest);
  }
#if defined(__linux__) && defined(__x86_64__)
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size, 1001);
#endif
}

TEST_F(SelectManifestTest, DockerManifestList) {
  Result<ImageIndex> list = ParseImageIndex(kDockerManifestList);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(SelectManifest(*list, P("linux", "amd64"))->size, 525);
  EXPECT_EQ(SelectManifest(*list, P("windows", "amd64"))->size, 1125);
}

// ---------------------------------------------------------------------------------------------
// Image configs.

TEST(ImageConfigTest, OciConfig) {
  Result<ImageConfig> r = ParseImageConfig(kOciConfig);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ImageConfig& c = *r;
  EXPECT_EQ(c.architecture, "arm64");
  EXPECT_EQ(c.variant, "v8");
  EXPECT_EQ(c.os, "linux");
  EXPECT_EQ(c.author, "Example Maintainers");
  EXPECT_EQ(c.created, "2024-03-07T19:35:14.184233207Z");
  EXPECT_EQ(NormalizePlatform(c.platform()).ToString(), "linux/arm64");
  ASSERT_TRUE(c.config.has_value());
  const RuntimeConfig& rc = *c.config;
  EXPECT_EQ(rc.user, "app:app");
  EXPECT_EQ(rc.entrypoint, (std::vector<std::string>{"/usr/bin/tini", "--"}));
  EXPECT_EQ(rc.cmd, (std::vector<std::string>{"/app/server", "--listen=:8080"}));
  ASSERT_EQ(rc.env.size(), 2u);
  EXPECT_EQ(rc.env[1], "APP_ENV=prod");
  EXPECT_EQ(rc.working_dir, "/app");
  EXPECT_EQ(rc.exposed_ports, (std::vector<std::string>{"8080/tcp", "9090/tcp"}));
  EXPECT_EQ(rc.labels.at("maintainer"), "ops@example.com");
  EXPECT_EQ(rc.stop_signal, "SIGTERM");
  // Fields imgstore does not model survive in the raw JSON.
  EXPECT_NE(rc.raw_json.find("\"Healthcheck\""), std::string::npos) << rc.raw_json;
  EXPECT_TRUE(Json::parse(rc.raw_json).is_object());
  EXPECT_EQ(c.rootfs_type, "layers");
  ASSERT_EQ(c.diff_ids.size(), 2u);
  EXPECT_EQ(c.diff_ids[1].hex(),
            "9390579c10139e1659ad7d5eed18357518c4224a412f7f0f8c19e8f879909f18");
  ASSERT_EQ(c.history.size(), 4u);
  EXPECT_TRUE(c.history[1].empty_layer);
  EXPECT_FALSE(c.history[2].empty_layer);
  EXPECT_EQ(c.history[2].comment, "buildkit.dockerfile.v0");
  EXPECT_FALSE(c.history_mismatch);
  EXPECT_TRUE(c.warnings.empty());
}

TEST(ImageConfigTest, DockerConfigWithNulls) {
  Result<ImageConfig> r = ParseImageConfig(kDockerConfig);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->config.has_value());
  EXPECT_TRUE(r->config->cmd.empty());
  EXPECT_TRUE(r->config->entrypoint.empty());
  EXPECT_TRUE(r->config->labels.empty());
  EXPECT_EQ(r->config->volumes, (std::vector<std::string>{"/var/cache/nginx"}));
  EXPECT_EQ(r->config->exposed_ports, (std::vector<std::string>{"80/tcp"}));
  EXPECT_EQ(r->config->stop_signal, "SIGQUIT");
  EXPECT_EQ(r->diff_ids.size(), 1u);
  EXPECT_TRUE(r->history.empty());
  EXPECT_FALSE(r->history_mismatch);  // no history: nothing to compare
}

TEST(ImageConfigTest, CommandAsBareString) {
  Json doc = Doc(kOciConfig);
  doc["config"]["Cmd"] = "/app/server --debug";
  doc["config"]["Entrypoint"] = "/bin/sh";
  Result<ImageConfig> r = ParseImageConfig(doc.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->config->cmd, (std::vector<std::string>{"/app/server --debug"}));
  EXPECT_EQ(r->config->entrypoint, (std::vector<std::string>{"/bin/sh"}));
}

TEST(ImageConfigTest, MinimalConfig) {
  // os/architecture missing: docker tolerates it, so imgstore records "" instead of refusing.
  Result<ImageConfig> r = ParseImageConfig(R"({"rootfs": {"type": "layers", "diff_ids": []}})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->os.empty());
  EXPECT_FALSE(r->config.has_value());
  EXPECT_TRUE(r->diff_ids.empty());
  // Go writes a nil slice as null.
  EXPECT_TRUE(ParseImageConfig(R"({"rootfs": {"type": "layers", "diff_ids": null}})").ok());
}

TEST(ImageConfigTest, HistoryMismatchIsAWarningNotAnError) {
  Json doc = Doc(kOciConfig);
  doc["history"][1]["empty_layer"] = false;  // now three layer-making entries for two diffIDs
  Result<ImageConfig> r = ParseImageConfig(doc.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->history_mismatch);
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("3 entries"), std::string::npos) << r->warnings[0];
  EXPECT_NE(r->warnings[0].find("lists 2 layers"), std::string::npos) << r->warnings[0];
  // Fewer entries than layers is flagged as well.
  Json fewer = Doc(kOciConfig);
  fewer["history"].erase(2);
  Result<ImageConfig> f = ParseImageConfig(fewer.dump());
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->history_mismatch);
}

TEST(ImageConfigTest, Rejections) {
  struct Case {
    std::function<void(Json&)> edit;
    Code code;
    std::string_view needle;
  };
  const Case cases[] = {
      {[](Json& d) { d.erase("rootfs"); }, Code::kInvalidArgument, "rootfs: missing"},
      {[](Json& d) { d["rootfs"] = "layers"; }, Code::kInvalidArgument,
       "rootfs: must be an object"},
      {[](Json& d) { d["rootfs"]["type"] = "snapshot"; }, Code::kInvalidArgument,
       "rootfs.type: must be \"layers\", got \"snapshot\""},
      {[](Json& d) { d["rootfs"].erase("type"); }, Code::kInvalidArgument, "rootfs.type: missing"},
      {[](Json& d) { d["rootfs"].erase("diff_ids"); }, Code::kInvalidArgument,
       "rootfs.diff_ids: missing"},
      {[](Json& d) { d["rootfs"]["diff_ids"] = "sha256:abc"; }, Code::kInvalidArgument,
       "rootfs.diff_ids: must be an array"},
      {[](Json& d) { d["rootfs"]["diff_ids"][1] = "sha256:XYZ"; }, Code::kInvalidArgument,
       "rootfs.diff_ids[1]: invalid digest"},
      {[](Json& d) { d["rootfs"]["diff_ids"][0] = "blake3:" + std::string(64, 'a'); },
       Code::kUnsupported, "rootfs.diff_ids[0]"},
      {[](Json& d) { d["history"][1]["empty_layer"] = "true"; }, Code::kInvalidArgument,
       "history[1].empty_layer: must be true or false, got string"},
      {[](Json& d) { d["history"] = Json::object(); }, Code::kInvalidArgument,
       "history: must be an array"},
      {[](Json& d) { d["history"][0] = "ADD"; }, Code::kInvalidArgument,
       "history[0]: must be an object"},
      {[](Json& d) { d["config"]["Labels"]["version"] = 2; }, Code::kInvalidArgument,
       "config.Labels[\"version\"]: must be a string"},
      {[](Json& d) { d["config"]["Env"] = "PATH=/bin"; }, Code::kInvalidArgument,
       "config.Env: must be an array of strings"},
      {[](Json& d) {
         d["config"]["Cmd"] = {1, 2};
       },
       Code::kInvalidArgument, "config.Cmd[0]"},
      {[](Json& d) { d["config"]["ExposedPorts"] = {"80/tcp"}; }, Code::kInvalidArgument,
       "config.ExposedPorts: must be an object"},
      {[](Json& d) { d["config"] = {1}; }, Code::kInvalidArgument, "config: must be an object"},
      {[](Json& d) { d["architecture"] = 64; }, Code::kInvalidArgument,
       "architecture: must be a string"},
  };
  for (const Case& c : cases) {
    Json doc = Doc(kOciConfig);
    c.edit(doc);
    Status s = ParseImageConfig(doc.dump()).status();
    EXPECT_TRUE(IsError(s, c.code, c.needle)) << doc.dump();
    EXPECT_TRUE(IsError(s, c.code, "image config: ")) << doc.dump();
  }
  EXPECT_TRUE(IsError(ParseImageConfig("[]").status(), Code::kInvalidArgument, "JSON object"));
  EXPECT_TRUE(IsError(ParseImageConfig(R"({"os": "linux", "os": "windows"})").status(),
                      Code::kInvalidArgument, "duplicate key \"os\""));
}

TEST(ImageConfigTest, OversizeConfig) {
  ParseLimits limits;
  limits.max_config_bytes = 100;
  Status s = ParseImageConfig(kOciConfig, limits).status();
  EXPECT_TRUE(IsError(s, Code::kInvalidArgument, "over the limit of 100 bytes"));
  EXPECT_TRUE(IsError(s, Code::kInvalidArgument, "raise the limit max_config_bytes"));
  // The default bound: 8 MiB of labels parse, 8 MiB + 1 byte do not.
  Json doc = Doc(kOciConfig);
  doc["config"]["Labels"]["filler"] = "";
  const std::size_t base = doc.dump().size();
  doc["config"]["Labels"]["filler"] = std::string(8 * 1024 * 1024 - base, 'x');
  ASSERT_EQ(doc.dump().size(), 8u * 1024 * 1024);
  EXPECT_TRUE(ParseImageConfig(doc.dump()).ok());
  doc["config"]["Labels"]["filler"] = std::string(8 * 1024 * 1024 - base + 1, 'x');
  EXPECT_TRUE(
      IsError(ParseImageConfig(doc.dump()).status(), Code::kInvalidArgument, "8388609 bytes"));
}

TEST(ImageConfigTest, MatchesManifest) {
  Result<ImageManifest> m = ParseImageManifest(kOciManifest);
  Result<ImageConfig> c = ParseImageConfig(kOciConfig);
  ASSERT_TRUE(m.ok() && c.ok());
  EXPECT_TRUE(CheckConfigMatchesManifest(*m, *c).ok());
  Result<ImageConfig> one = ParseImageConfig(kDockerConfig);
  ASSERT_TRUE(one.ok());
  EXPECT_TRUE(IsError(CheckConfigMatchesManifest(*m, *one), Code::kInvalidArgument,
                      "1 diff_ids but the manifest has 2 layers"));
  Json sha512 = Doc(kOciConfig);
  sha512["rootfs"]["diff_ids"][0] = "sha512:" + std::string(128, 'b');
  Result<ImageConfig> c512 = ParseImageConfig(sha512.dump());
  ASSERT_TRUE(c512.ok()) << c512.status().ToString();
  EXPECT_TRUE(IsError(CheckConfigMatchesManifest(*m, *c512), Code::kUnsupported, "sha256"));
}

}  // namespace
}  // namespace imgstore::images
