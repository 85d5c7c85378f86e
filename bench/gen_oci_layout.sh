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
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/imgstore-gen.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "generating a ${SIZE_MB} MB layer in $LAYOUT (once)" >&2
mkdir -p "$WORK/gen"
head -c "${SIZE_MB}M" /dev/urandom >"$WORK/gen/data"
tar -C "$WORK/gen" -cf "$WORK/layer.tar" data
rm "$WORK/gen/data"
"$HERE/layout_from_tar.sh" "$WORK/layer.tar" fast-gzip "$LAYOUT"
