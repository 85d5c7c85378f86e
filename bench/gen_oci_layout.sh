#!/bin/sh
# Generates, once, an OCI image layout with one gzip layer of SIZE_MB random megabytes (random,
# so gzip keeps the size: the layer is SIZE_MB on the wire), ref name "bench". Shared by the
# benchmarks so that every contender copies the same image.
#
# Usage: bench/gen_oci_layout.sh SIZE_MB DIR   (does nothing if DIR/index.json exists)
set -eu
SIZE_MB=$1
LAYOUT=$2
[ -f "$LAYOUT/index.json" ] && exit 0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/imgstore-gen.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

echo "generating a ${SIZE_MB} MB layer in $LAYOUT (once)" >&2
rm -rf "$LAYOUT" && mkdir -p "$LAYOUT/blobs/sha256" "$WORK/gen"
head -c "${SIZE_MB}M" /dev/urandom >"$WORK/gen/data"
tar -C "$WORK/gen" -cf "$WORK/layer.tar" data
gzip -1 -c "$WORK/layer.tar" >"$WORK/layer.tar.gz"
diff_id=$(sha "$WORK/layer.tar")
layer=$(sha "$WORK/layer.tar.gz")
mv "$WORK/layer.tar.gz" "$LAYOUT/blobs/sha256/$layer"
layer_size=$(size "$LAYOUT/blobs/sha256/$layer")
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$diff_id" >"$WORK/config"
config=$(sha "$WORK/config")
config_size=$(size "$WORK/config")
mv "$WORK/config" "$LAYOUT/blobs/sha256/$config"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$config" "$config_size" "$layer" "$layer_size" >"$WORK/manifest"
manifest=$(sha "$WORK/manifest")
manifest_size=$(size "$WORK/manifest")
mv "$WORK/manifest" "$LAYOUT/blobs/sha256/$manifest"
printf '{"imageLayoutVersion":"1.0.0"}' >"$LAYOUT/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
  "$manifest" "$manifest_size" >"$LAYOUT/index.json"
