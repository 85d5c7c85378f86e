#!/bin/sh
# Benchmark of `imgstore pull oci:` against the two costs it cannot avoid: hashing the bytes
# (sha256sum) and writing them durably (cp + sync). Prints the median of RUNS runs of each and
# the ratio of pull's throughput to the slower of the two (target: >= 0.60).
#
# Usage: bench/pull_oci.sh [IMGSTORE_BINARY]
#   SIZE_MB (default 800): size of the one gzip-typed layer (random bytes, so gzip keeps the size)
#   RUNS (default 3); CACHE (default ~/.cache/imgstore-bench): where the image is generated once
# The page cache is not dropped: every contender reads a cached source.
set -eu
BIN=${1:-build/imgstore}
SIZE_MB=${SIZE_MB:-800}
RUNS=${RUNS:-3}
CACHE=${CACHE:-$HOME/.cache/imgstore-bench}
LAYOUT=$CACHE/oci-$SIZE_MB
WORK=$(mktemp -d "${TMPDIR:-/tmp}/imgstore-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

sh "$(dirname "$0")/gen_oci_layout.sh" "$SIZE_MB" "$LAYOUT"
BLOB=$(ls -S "$LAYOUT/blobs/sha256" | head -1)
BLOB=$LAYOUT/blobs/sha256/$BLOB
cat "$BLOB" >/dev/null  # warm the cache for everyone alike

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$WORK/pull" ; : >"$WORK/sha" ; : >"$WORK/cp"
i=0
while [ "$i" -lt "$RUNS" ]; do
  t0=$(now); "$BIN" --root "$WORK/store$i" pull -q "oci:$LAYOUT:bench"; t1=$(now)
  echo "$t1 - $t0" | bc >>"$WORK/pull"
  rm -rf "$WORK/store$i"
  t0=$(now); sha256sum "$BLOB" >/dev/null; t1=$(now)
  echo "$t1 - $t0" | bc >>"$WORK/sha"
  t0=$(now); cp "$BLOB" "$WORK/copy" && sync "$WORK/copy"; t1=$(now)
  echo "$t1 - $t0" | bc >>"$WORK/cp"
  rm -f "$WORK/copy"
  i=$((i + 1))
done
mb=$(echo "$(size "$BLOB") / 1000000" | bc -l)
pull=$(median <"$WORK/pull"); shat=$(median <"$WORK/sha"); cpt=$(median <"$WORK/cp")
slower=$(echo "if ($shat > $cpt) $shat else $cpt" | bc -l)
printf 'layer: %.0f MB, %s runs (medians)\n' "$mb" "$RUNS"
printf 'imgstore pull oci:  %6.2f s  %7.1f MB/s\n' "$pull" "$(echo "$mb / $pull" | bc -l)"
printf 'sha256sum           %6.2f s  %7.1f MB/s\n' "$shat" "$(echo "$mb / $shat" | bc -l)"
printf 'cp + sync           %6.2f s  %7.1f MB/s\n' "$cpt" "$(echo "$mb / $cpt" | bc -l)"
printf 'pull / slower of the two: %.2f (target >= 0.60)\n' "$(echo "$slower / $pull" | bc -l)"
