#!/bin/sh
# Generates, once, an OCI image layout whose one layer is a real root-filesystem-like tree: the
# first SIZE_MB (uncompressed) of this machine's /usr in name order — binaries, libraries,
# text, symlinks and directories, so the layer compresses and extracts like a real image's
# (random data would make gzip, and so the extraction, unrealistically cheap).
#
# Usage: bench/gen_rootfs_layout.sh SIZE_MB COMPRESSION DIR   (gzip, zstd or none; does nothing
# if DIR/index.json exists). The uncompressed tar is kept beside DIR (DIR.tar) for the peers.
set -eu
SIZE_MB=$1
COMPRESSION=$2
LAYOUT=$3
[ -f "$LAYOUT/index.json" ] && exit 0
HERE=$(cd "$(dirname "$0")" && pwd)
TAR="$(dirname "$LAYOUT")/rootfs-${SIZE_MB}.tar"
if [ ! -f "$TAR" ]; then
  echo "generating a ${SIZE_MB} MB root filesystem tar from /usr (once)" >&2
  LIST=$(mktemp "${TMPDIR:-/tmp}/imgstore-gen.XXXXXX")
  trap 'rm -f "$LIST" "$TAR.part"' EXIT
  # Files, symlinks and directories under /usr in name order until SIZE_MB of file data.
  (cd / && find usr -xdev \( -type f -o -type l -o -type d \) -printf '%s %y %p\n' | LC_ALL=C sort -k3) |
    awk -v max=$((SIZE_MB * 1024 * 1024)) '{ if ($2 == "f") { total += $1; if (total > max) exit } ; sub(/^[^ ]+ [^ ]+ /, ""); print }' >"$LIST"
  tar -C / --no-recursion --numeric-owner -cf "$TAR.part" -T "$LIST"
  mv "$TAR.part" "$TAR"
fi
echo "compressing it with $COMPRESSION into $LAYOUT (once)" >&2
"$HERE/layout_from_tar.sh" "$TAR" "$COMPRESSION" "$LAYOUT"
