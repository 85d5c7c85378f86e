#!/usr/bin/env bash
# Benchmark of layer extraction (issue 5): `imgstore unpack` of a ~1 GB image whose one layer
# is a real root filesystem (the first ROOTFS_MB of /usr; about 800 MB gzip-compressed at the
# default), beside its peers in the same run on the same blob:
#   - the limit: `tar -xzf` of the layer followed by `sync` (GNU tar with its gzip child: two
#     processes, so both cores work);
#   - `umoci unpack` of the same OCI layout (+ sync);
#   - imgstore unpack with the layer not yet cached (one pass: cache and destination), then
#     again with the layer cached (a copy from the cache), then a mount (overlay) of the cached
#     image, twice; the same image with a zstd layer against `tar --zstd -xf` + sync;
#   - with PEERS=1, pull + unpack against `skopeo copy` into containers-storage (vfs driver,
#     which unpacks every layer), both from the OCI layout.
# Figures are single runs (seconds, MB/s of uncompressed tar, peak RSS) and ratios from the same
# run; docs/performance.md records them.
#
# Usage: bench/unpack.sh [IMGSTORE_BINARY]
#   ROOTFS_MB (2000): uncompressed size of the layer; CACHE (~/.cache/imgstore-bench);
#   PEERS (1): also run skopeo.
set -euo pipefail
BIN=$(realpath "${1:-build/imgstore}")
ROOTFS_MB=${ROOTFS_MB:-2000}
PEERS=${PEERS:-1}
CACHE=${CACHE:-$HOME/.cache/imgstore-bench}
HERE=$(cd "$(dirname "$0")" && pwd)

. "$HERE/need_packages.sh"
need=(umoci zstd time)
[[ $PEERS == 1 ]] && need+=(skopeo)
need_packages "${need[@]}"

mkdir -p "$CACHE"
GZ="$CACHE/rootfs-$ROOTFS_MB-gzip"
ZS="$CACHE/rootfs-$ROOTFS_MB-zstd"
"$HERE/gen_rootfs_layout.sh" "$ROOTFS_MB" gzip "$GZ"
"$HERE/gen_rootfs_layout.sh" "$ROOTFS_MB" zstd "$ZS"
layer_of() { python3 -c 'import json,sys; d=sys.argv[1]; m=json.load(open(d+"/index.json"))["manifests"][0]["digest"].split(":")[1]; print(d+"/blobs/sha256/"+json.load(open(d+"/blobs/sha256/"+m))["layers"][0]["digest"].split(":")[1])' "$1"; }
GZ_BLOB=$(layer_of "$GZ")
ZS_BLOB=$(layer_of "$ZS")
TAR_MB=$(($(stat -c %s "$CACHE/rootfs-$ROOTFS_MB.tar") / 1000000))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imgstore-unpackbench.XXXXXX")
cleanup() {
  for m in "$WORK"/root/mounts/*/merged; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
export IMGSTORE_ROOT="$WORK/root"

# timed OUT CMD...: OUT gets "seconds peak_rss_kib".
timed() { local out=$1; shift; /usr/bin/time -f "%e %M" -o "$out" "$@"; }
secs() { cut -d' ' -f1 "$1"; }
rss_mib() { awk '{printf "%.1f", $2 / 1024}' "$1"; }
mbps() { echo "$1 $2" | awk '{printf "%.0f", $1 / $2}'; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1 / $2}'; }
fresh() { rm -rf "$WORK/out"; sync; }

echo "layer: $TAR_MB MB uncompressed; gzip $(($(stat -c %s "$GZ_BLOB") / 1000000)) MB; zstd $(($(stat -c %s "$ZS_BLOB") / 1000000)) MB"
# The two layers have the same diffID (the same tar), so they share one chain in the layer
# cache: the zstd image lives in a store of its own, or its "not cached" unpack would copy the
# gzip image's cached layer.
ZROOT="$WORK/zroot"
"$BIN" pull -q "oci:$GZ:bench" --name bench/gzip
IMGSTORE_ROOT=$ZROOT "$BIN" pull -q "oci:$ZS:bench" --name bench/zstd
# And for the --no-cache runs, stores whose layer cache stays empty.
IMGSTORE_ROOT="$WORK/nc-gzip" "$BIN" pull -q "oci:$GZ:bench" --name bench/gzip
IMGSTORE_ROOT="$WORK/nc-zstd" "$BIN" pull -q "oci:$ZS:bench" --name bench/zstd
cat "$GZ_BLOB" "$ZS_BLOB" >/dev/null  # every contender reads its blob from the page cache

fresh; mkdir "$WORK/out"
timed "$WORK/tar.t" sh -c "tar --numeric-owner -xzf '$GZ_BLOB' -C '$WORK/out' && sync"
tar_s=$(secs "$WORK/tar.t")
echo "tar -xzf + sync:                 ${tar_s}s  $(mbps "$TAR_MB" "$tar_s") MB/s"

fresh
timed "$WORK/umoci.t" sh -c "umoci unpack --image '$GZ:bench' '$WORK/out' >/dev/null && sync"
umoci_s=$(secs "$WORK/umoci.t")
echo "umoci unpack + sync:             ${umoci_s}s  $(mbps "$TAR_MB" "$umoci_s") MB/s  peak RSS $(rss_mib "$WORK/umoci.t") MiB"

fresh
timed "$WORK/cold.t" sh -c "'$BIN' unpack bench/gzip '$WORK/out' && sync"
cold_s=$(secs "$WORK/cold.t")
echo "imgstore unpack (not cached):    ${cold_s}s  $(mbps "$TAR_MB" "$cold_s") MB/s  peak RSS $(rss_mib "$WORK/cold.t") MiB  ($(ratio "$tar_s" "$cold_s")× tar's rate, $(ratio "$umoci_s" "$cold_s")× umoci's)"

fresh
timed "$WORK/nocache.t" sh -c "IMGSTORE_ROOT='$WORK/nc-gzip' '$BIN' unpack --no-cache bench/gzip '$WORK/out' && sync"
nocache_s=$(secs "$WORK/nocache.t")
echo "imgstore unpack --no-cache:      ${nocache_s}s  $(mbps "$TAR_MB" "$nocache_s") MB/s  ($(ratio "$tar_s" "$nocache_s")× tar's rate; the destination only, as tar writes)"

fresh
timed "$WORK/warm.t" sh -c "'$BIN' unpack bench/gzip '$WORK/out' && sync"
warm_s=$(secs "$WORK/warm.t")
echo "imgstore unpack (cached):        ${warm_s}s  $(mbps "$TAR_MB" "$warm_s") MB/s  ($(ratio "$tar_s" "$warm_s")× tar's rate)"

for i in 1 2; do
  start=$(date +%s%N)
  "$BIN" mount bench/gzip --name "bench$i" >/dev/null
  end=$(date +%s%N)
  echo "imgstore mount #$i (cached):      $(((end - start) / 1000000)) ms  ($("$BIN" mounts --format json | python3 -c 'import json,sys; print([m["type"] for m in json.load(sys.stdin)][-1])'))"
done
"$BIN" umount bench1 && "$BIN" umount bench2

fresh; mkdir "$WORK/out"
timed "$WORK/ztar.t" sh -c "tar --numeric-owner --zstd -xf '$ZS_BLOB' -C '$WORK/out' && sync"
ztar_s=$(secs "$WORK/ztar.t")
echo "tar --zstd -xf + sync:           ${ztar_s}s  $(mbps "$TAR_MB" "$ztar_s") MB/s"
fresh
timed "$WORK/zcold.t" sh -c "IMGSTORE_ROOT='$ZROOT' '$BIN' unpack bench/zstd '$WORK/out' && sync"
zcold_s=$(secs "$WORK/zcold.t")
echo "imgstore unpack zstd (not cached): ${zcold_s}s  $(mbps "$TAR_MB" "$zcold_s") MB/s  peak RSS $(rss_mib "$WORK/zcold.t") MiB  ($(ratio "$cold_s" "$zcold_s")× the gzip rate, $(ratio "$ztar_s" "$zcold_s")× tar --zstd's, $(ratio "$umoci_s" "$zcold_s")× umoci's gzip)"
fresh
timed "$WORK/znc.t" sh -c "IMGSTORE_ROOT='$WORK/nc-zstd' '$BIN' unpack --no-cache bench/zstd '$WORK/out' && sync"
znc_s=$(secs "$WORK/znc.t")
echo "imgstore unpack zstd --no-cache: ${znc_s}s  $(mbps "$TAR_MB" "$znc_s") MB/s  ($(ratio "$ztar_s" "$znc_s")× tar --zstd's rate, $(ratio "$nocache_s" "$znc_s")× the gzip --no-cache rate)"
fresh

if [[ $PEERS == 1 ]]; then
  CS=(--root "$WORK/cs" --runroot "$WORK/csrun" --storage-driver vfs)
  timed "$WORK/skopeo.t" skopeo copy -q "oci:$GZ:bench" "containers-storage:[vfs@$WORK/cs+$WORK/csrun]bench:latest"
  skopeo_s=$(secs "$WORK/skopeo.t")
  rm -rf "$WORK/root2"
  timed "$WORK/pu.t" sh -c "IMGSTORE_ROOT='$WORK/root2' '$BIN' pull -q 'oci:$GZ:bench' --name b && IMGSTORE_ROOT='$WORK/root2' '$BIN' unpack b '$WORK/out2' && sync"
  pu_s=$(secs "$WORK/pu.t")
  echo "skopeo copy → c/storage vfs:     ${skopeo_s}s;  imgstore pull + unpack: ${pu_s}s  ($(ratio "$skopeo_s" "$pu_s")×)"
  rm -rf "$WORK/out2" "$WORK/root2" "$WORK/cs"
fi
