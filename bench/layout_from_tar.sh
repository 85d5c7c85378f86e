#!/bin/sh
# Writes an OCI image layout holding one image of one layer: the uncompressed tar TAR,
# compressed with COMPRESSION (gzip, zstd or none), ref name "bench". Shared by the layout
# generators of the benchmarks (gen_oci_layout.sh, gen_rootfs_layout.sh).
#
# Usage: bench/layout_from_tar.sh TAR COMPRESSION DIR
set -eu
TAR=$1
COMPRESSION=$2
LAYOUT=$3
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

rm -rf "$LAYOUT" && mkdir -p "$LAYOUT/blobs/sha256"
case $COMPRESSION in
  gzip) media=application/vnd.oci.image.layer.v1.tar+gzip; gzip -6 -c "$TAR" >"$LAYOUT/layer" ;;
  fast-gzip) media=application/vnd.oci.image.layer.v1.tar+gzip; gzip -1 -c "$TAR" >"$LAYOUT/layer" ;;
  zstd) media=application/vnd.oci.image.layer.v1.tar+zstd; zstd -q -3 -T0 -c "$TAR" >"$LAYOUT/layer" ;;
  none) media=application/vnd.oci.image.layer.v1.tar; cp "$TAR" "$LAYOUT/layer" ;;
  *) echo "unknown compression $COMPRESSION" >&2; exit 2 ;;
esac
diff_id=$(sha "$TAR")
layer=$(sha "$LAYOUT/layer")
layer_size=$(size "$LAYOUT/layer")
mv "$LAYOUT/layer" "$LAYOUT/blobs/sha256/$layer"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$diff_id" >"$LAYOUT/config"
config=$(sha "$LAYOUT/config")
config_size=$(size "$LAYOUT/config")
mv "$LAYOUT/config" "$LAYOUT/blobs/sha256/$config"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"%s","digest":"sha256:%s","size":%s}]}' \
  "$config" "$config_size" "$media" "$layer" "$layer_size" >"$LAYOUT/manifest"
manifest=$(sha "$LAYOUT/manifest")
manifest_size=$(size "$LAYOUT/manifest")
mv "$LAYOUT/manifest" "$LAYOUT/blobs/sha256/$manifest"
printf '{"imageLayoutVersion":"1.0.0"}' >"$LAYOUT/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
  "$manifest" "$manifest_size" >"$LAYOUT/index.json"
