#!/usr/bin/env bash
# Benchmark of layer extraction (issue 5): `imgstore unpack` of a ~1 GB image whose one layer
# is a real root filesystem (the first ROOTFS_MB of /usr; about 800 MB gzip-compressed at the
# default), beside its peers in the same run on the same blob:
#   - the limit: `tar -xzf` of the layer followed by `sync` (GNU tar with its gzip child: two
#     processes, so both cores work), and the write ceiling: `tar -xf` of the uncompressed tar;
#   - `umoci unpack` of the same OCI layout (+ sync);
#   - imgstore unpack with the layer not yet cached (one pass: cache and destination), then
#     again with the layer cached (a copy from the cache), then a mount (overlay) of the cached
#     image, twice; the same image with a zstd layer against `tar --zstd -xf` + sync;
#   - with PEERS=1, pull + unpack against `skopeo copy` into containers-storage (vfs driver,
#     which unpacks every layer), both from the OCI layout.
# Figures are medians of ROUNDS interleaved runs (umoci and skopeo: one run each; seconds, MB/s of
# uncompressed tar, peak RSS) and ratios of those medians; docs/performance.md records them.
#
# Usage: bench/unpack.sh [IMGSTORE_BINARY]
#   ROOTFS_MB (2000): uncompressed size of the layer; CACHE (~/.cache/imgstore-bench);
#   PEERS (1): also run skopeo; ROUNDS (3): interleaved rounds of tar and imgstore (medians);
#   SETTLE (35): seconds between rounds, after their trees are removed (see the loop).
set -euo pipefail
BIN=$(realpath "${1:-build/imgstore}")
ROOTFS_MB=${ROOTFS_MB:-2000}
PEERS=${PEERS:-1}
ROUNDS=${ROUNDS:-3}
SETTLE=${SETTLE:-35}
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
  for m in "$WORK"/*/mounts/*/merged; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# timed OUT CMD...: OUT gets "seconds peak_rss_kib".
timed() { local out=$1; shift; /usr/bin/time -f "%e %M" -o "$out" "$@"; }
secs() { cut -d' ' -f1 "$1"; }
rss_mib() { awk '{printf "%.1f", $2 / 1024}' "$1"; }
mbps() { echo "$1 $2" | awk '{printf "%.0f", $1 / $2}'; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1 / $2}'; }
fresh() { rm -rf "$WORK/out"; sync; }

echo "layer: $TAR_MB MB uncompressed; gzip $(($(stat -c %s "$GZ_BLOB") / 1000000)) MB; zstd $(($(stat -c %s "$ZS_BLOB") / 1000000)) MB; $ROUNDS rounds"
# The two layers have the same diffID (the same tar), so they share one chain in the layer
# cache: the zstd image lives in a store of its own, or its "not cached" unpack would copy the
# gzip image's cached layer. Each round pulls its stores anew, so that its first unpack finds
# the layer not cached; the --no-cache stores' layer cache stays empty.
IMGSTORE_ROOT="$WORK/nc-gzip" "$BIN" pull -q "oci:$GZ:bench" --name bench/gzip
IMGSTORE_ROOT="$WORK/nc-zstd" "$BIN" pull -q "oci:$ZS:bench" --name bench/zstd

# run NAME CMD: times CMD (then sync), appends the seconds to $WORK/NAME.all. CMD writes into
# $WORK/out-NAME, a new directory: no tree is removed until the round ends (below).
run() {
  local name=$1; shift
  mkdir "$WORK/out-$name"
  timed "$WORK/$name.t" sh -c "$* && sync"
  secs "$WORK/$name.t" >>"$WORK/$name.all"
  cp "$WORK/$name.t" "$WORK/$name.last"
}
# The median of NAME's runs, and all of them.
med() { sort -n "$WORK/$1.all" | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
runs() { paste -sd' ' "$WORK/$1.all"; }

# The machine's write speed drifts by 2x within minutes (a shared disk): every contender runs
# once per round, interleaved, and the figures are medians. And ext4 makes whoever creates
# files just after a large removal pay for it: for 30 s it skips the inodes of recently deleted
# files (recently_deleted() was 14% of a profile of an unpack run right after an rm -rf of the
# previous tree, and tar paid the same), so the trees of a round are removed only when the round
# ends, SETTLE seconds before the next one.
for round in $(seq "$ROUNDS"); do
  R="$WORK/round"; ZR="$WORK/zround"
  rm -rf "$R" "$ZR"
  IMGSTORE_ROOT=$R "$BIN" pull -q "oci:$GZ:bench" --name bench/gzip
  IMGSTORE_ROOT=$ZR "$BIN" pull -q "oci:$ZS:bench" --name bench/zstd
  cat "$GZ_BLOB" "$ZS_BLOB" >/dev/null  # every contender reads its blob from the page cache
  run tar "tar --numeric-owner -xzf '$GZ_BLOB' -C '$WORK/out-tar'"
  run plain "tar --numeric-owner -xf '$CACHE/rootfs-$ROOTFS_MB.tar' -C '$WORK/out-plain'"
  run cold "rmdir '$WORK/out-cold' && IMGSTORE_ROOT='$R' '$BIN' unpack bench/gzip '$WORK/out-cold'"
  run nocache "rmdir '$WORK/out-nocache' && IMGSTORE_ROOT='$WORK/nc-gzip' '$BIN' unpack --no-cache bench/gzip '$WORK/out-nocache'"
  run warm "rmdir '$WORK/out-warm' && IMGSTORE_ROOT='$R' '$BIN' unpack bench/gzip '$WORK/out-warm'"
  run ztar "tar --numeric-owner --zstd -xf '$ZS_BLOB' -C '$WORK/out-ztar'"
  run zcold "rmdir '$WORK/out-zcold' && IMGSTORE_ROOT='$ZR' '$BIN' unpack bench/zstd '$WORK/out-zcold'"
  run znc "rmdir '$WORK/out-znc' && IMGSTORE_ROOT='$WORK/nc-zstd' '$BIN' unpack --no-cache bench/zstd '$WORK/out-znc'"
  if ((round == 1)); then
    for i in 1 2; do
      start=$(date +%s%N)
      IMGSTORE_ROOT=$R "$BIN" mount bench/gzip --name "bench$i" >/dev/null
      end=$(date +%s%N)
      echo "imgstore mount #$i (cached):      $(((end - start) / 1000000)) ms  ($(IMGSTORE_ROOT=$R "$BIN" mounts --format json | python3 -c 'import json,sys; print([m["type"] for m in json.load(sys.stdin)][-1])'))"
    done
    IMGSTORE_ROOT=$R "$BIN" umount bench1 && IMGSTORE_ROOT=$R "$BIN" umount bench2
  fi
  rm -rf "$R" "$ZR" "$WORK"/out-*
  sync
  sleep "$SETTLE"
done
timed "$WORK/umoci.t" sh -c "umoci unpack --image '$GZ:bench' '$WORK/out' >/dev/null && sync"
umoci_s=$(secs "$WORK/umoci.t")

plain_s=$(med plain); tar_s=$(med tar); cold_s=$(med cold); nocache_s=$(med nocache); warm_s=$(med warm)
ztar_s=$(med ztar); zcold_s=$(med zcold); znc_s=$(med znc)
echo "tar -xf (uncompressed) + sync:   ${plain_s}s  $(mbps "$TAR_MB" "$plain_s") MB/s  (the write ceiling: no decompression; runs: $(runs plain))"
echo "tar -xzf + sync:                 ${tar_s}s  $(mbps "$TAR_MB" "$tar_s") MB/s  (runs: $(runs tar))"
echo "umoci unpack + sync:             ${umoci_s}s  $(mbps "$TAR_MB" "$umoci_s") MB/s  peak RSS $(rss_mib "$WORK/umoci.t") MiB  (one run)"
echo "imgstore unpack (not cached):    ${cold_s}s  $(mbps "$TAR_MB" "$cold_s") MB/s  peak RSS $(rss_mib "$WORK/cold.last") MiB  ($(ratio "$tar_s" "$cold_s")× tar's rate, $(ratio "$umoci_s" "$cold_s")× umoci's; runs: $(runs cold))"
echo "imgstore unpack --no-cache:      ${nocache_s}s  $(mbps "$TAR_MB" "$nocache_s") MB/s  ($(ratio "$tar_s" "$nocache_s")× tar's rate; the destination only, as tar writes; runs: $(runs nocache))"
echo "imgstore unpack (cached):        ${warm_s}s  $(mbps "$TAR_MB" "$warm_s") MB/s  ($(ratio "$tar_s" "$warm_s")× tar's rate; runs: $(runs warm))"
echo "tar --zstd -xf + sync:           ${ztar_s}s  $(mbps "$TAR_MB" "$ztar_s") MB/s  (runs: $(runs ztar))"
echo "imgstore unpack zstd (not cached): ${zcold_s}s  $(mbps "$TAR_MB" "$zcold_s") MB/s  peak RSS $(rss_mib "$WORK/zcold.last") MiB  ($(ratio "$cold_s" "$zcold_s")× the gzip rate, $(ratio "$ztar_s" "$zcold_s")× tar --zstd's, $(ratio "$umoci_s" "$zcold_s")× umoci's gzip; runs: $(runs zcold))"
echo "imgstore unpack zstd --no-cache: ${znc_s}s  $(mbps "$TAR_MB" "$znc_s") MB/s  ($(ratio "$ztar_s" "$znc_s")× tar --zstd's rate, $(ratio "$nocache_s" "$znc_s")× the gzip --no-cache rate; runs: $(runs znc))"

if [[ $PEERS == 1 ]]; then
  fresh; sleep "$SETTLE"
  CS=(--root "$WORK/cs" --runroot "$WORK/csrun" --storage-driver vfs)
  timed "$WORK/skopeo.t" skopeo copy -q "oci:$GZ:bench" "containers-storage:[vfs@$WORK/cs+$WORK/csrun]bench:latest"
  skopeo_s=$(secs "$WORK/skopeo.t")
  rm -rf "$WORK/root2"
  timed "$WORK/pu.t" sh -c "IMGSTORE_ROOT='$WORK/root2' '$BIN' pull -q 'oci:$GZ:bench' --name b && IMGSTORE_ROOT='$WORK/root2' '$BIN' unpack b '$WORK/out2' && sync"
  pu_s=$(secs "$WORK/pu.t")
  echo "skopeo copy → c/storage vfs:     ${skopeo_s}s;  imgstore pull + unpack: ${pu_s}s  ($(ratio "$skopeo_s" "$pu_s")×)"
  rm -rf "$WORK/out2" "$WORK/root2" "$WORK/cs"
fi
