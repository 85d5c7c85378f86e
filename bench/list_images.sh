#!/bin/sh
# bench/list_images.sh [BUILD_DIR]: how long `imgstore list` and `imgstore list --format json`
# take as whole processes (start, Store::Open, one read snapshot, output) with 100, 1,000 and
# 10,000 images in the store. Prints the median per size (hyperfine, output to /dev/null).
#
# Stores are filled once by bench_populate_store (1.5 names per image on average, distinct
# configs) and kept in $IMGSTORE_BENCH_CACHE (default ~/.cache/imgstore-bench): filling 10,000
# images takes minutes, because every blob and every commit is fsynced. Sizes can be chosen with
# IMGSTORE_BENCH_SIZES="100 1000". docs/performance.md ("imgstore list") records a run.
set -eu

build=${1:-build}
imgstore=$build/imgstore
populate=$build/bench/bench_populate_store
cache=${IMGSTORE_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imgstore-bench}
sizes=${IMGSTORE_BENCH_SIZES:-100 1000 10000}
runs=${IMGSTORE_BENCH_RUNS:-40}

for tool in "$imgstore" "$populate"; do
  [ -x "$tool" ] || { echo "list_images.sh: $tool not built" >&2; exit 1; }
done
command -v hyperfine >/dev/null || { echo "list_images.sh: hyperfine is missing" >&2; exit 1; }
command -v jq >/dev/null || { echo "list_images.sh: jq is missing" >&2; exit 1; }
mkdir -p "$cache"

# v1: the shape of bench_populate_store's images; bump it when that program changes.
store_of() { echo "$cache/list-v1-$1"; }

for n in $sizes; do
  root=$(store_of "$n")
  if [ ! -e "$root.complete" ]; then
    echo "populating $root with $n images (once)..." >&2
    "$populate" "$root" "$n"  # resumable: a rerun completes an interrupted fill
    touch "$root.complete"
  fi
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-8s %-10s %14s %14s %14s\n' images rows "list ms" "json ms" "list -q ms"
for n in $sizes; do
  root=$(store_of "$n")
  hyperfine -N --style none --warmup 5 --runs "$runs" --export-json "$out/$n.json" \
    "$imgstore --root $root list" \
    "$imgstore --root $root list --format json" \
    "$imgstore --root $root list -q" >/dev/null 2>&1
  rows=$("$imgstore" --root "$root" list | tail -n +2 | wc -l)
  medians=$(jq -r '[.results[].median * 1000 | . * 100 | round / 100 | tostring] | join(" ")' \
    "$out/$n.json")
  # shellcheck disable=SC2086
  printf '%-8s %-10s %14s %14s %14s\n' "$n" "$rows" $medians
done
