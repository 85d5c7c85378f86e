#!/usr/bin/env bash
# Benchmark of imgstore against a real registry (Debian's docker-registry on 127.0.0.1), beside
# its peers in the same run, on the same generated images:
#   - the floor: a plain `curl` GET of the image's blobs to a file;
#   - skopeo copying into and out of containers-storage (vfs driver, a private root), and
#     `podman push` from it; `podman images` sampled while they run;
#   - imgstore pull / push; `imgstore list` sampled while they run (and the pull once alone, to
#     compare with curl, which runs alone).
# Every push goes to a freshly started registry (one that holds the blobs lets a client skip or
# mount them, which measures nothing). Figures are single runs of each contender, printed as
# seconds, MB/s, peak RSS and list/images latencies (max, p99, median); ratios are computed from
# the same run. docs/performance.md records them.
#
# Usage: bench/registry.sh [IMGSTORE_BINARY]
#   LARGE_MB (800) MEDIUM_MB (150): layer sizes of the two images (one random gzip layer each)
#   PEERS=0 skips skopeo and podman; CACHE (~/.cache/imgstore-bench): generated images
# Needs root to install what is missing (podman, skopeo, docker-registry, curl, time).
set -euo pipefail
BIN=$(realpath "${1:-build/imgstore}")
LARGE_MB=${LARGE_MB:-800}
MEDIUM_MB=${MEDIUM_MB:-150}
PEERS=${PEERS:-1}
CACHE=${CACHE:-$HOME/.cache/imgstore-bench}
HERE=$(cd "$(dirname "$0")" && pwd)

. "$HERE/need_packages.sh"
need=(docker-registry skopeo curl time)
[[ $PEERS == 1 ]] && need+=(podman)
need_packages "${need[@]}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imgstore-regbench.XXXXXX")
declare -A REG_PID
cleanup() {
  touch "$WORK/stop"
  for p in "${REG_PID[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export TMPDIR=$WORK/tmp  # every contender's temporary files land here: checked after a kill -9
mkdir -p "$TMPDIR"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_registry NAME: a fresh registry; sets REG (host:port). Its access log is WORK/NAME.log.
start_registry() {
  local name=$1 port
  port=$(free_port)
  mkdir -p "$WORK/$name"
  cat >"$WORK/$name.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/$name
http:
  addr: 127.0.0.1:$port
YML
  /usr/bin/docker-registry serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
  REG_PID[$name]=$!
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.05; done
  REG=127.0.0.1:$port
}
stop_registry() { kill "${REG_PID[$1]}" 2>/dev/null || true; wait "${REG_PID[$1]}" 2>/dev/null || true; rm -rf "${WORK:?}/$1"; unset "REG_PID[$1]"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# sample OUT CMD...: runs CMD again and again until WORK/stop exists; one latency (ms) per line.
sample() {
  local out=$1; shift
  : >"$out"
  while [[ ! -e $WORK/stop ]]; do
    local t0 t1
    t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000)) >>"$out"
  done
}
# stats FILE: "n=N max=X p99=Y median=Z" (ms)
stats() {
  sort -n "$1" | awk '{a[NR]=$1} END {if (NR==0) {print "n=0"; exit}
    p=int(NR*0.99+0.999); if (p>NR) p=NR; printf "n=%d max=%dms p99=%dms median=%dms", NR, a[NR], a[p], a[int((NR+1)/2)]}'
}
# timed OUT CMD...: runs CMD under /usr/bin/time; OUT gets "seconds peak_rss_kib".
timed() { local out=$1; shift; /usr/bin/time -f "%e %M" -o "$out" "$@"; }
# with_sampler NAME SAMPLER_CMD -- CMD...: runs CMD while SAMPLER_CMD is sampled into WORK/NAME.lat
with_sampler() {
  local name=$1; shift
  local sampler=()
  while [[ $1 != -- ]]; do sampler+=("$1"); shift; done
  shift
  rm -f "$WORK/stop"
  sample "$WORK/$name.lat" "${sampler[@]}" &
  local spid=$!
  "$@"
  touch "$WORK/stop"
  wait "$spid"
}
mbps() { echo "$1 $2" | awk '{printf "%.1f", $1 / $2}'; }
secs() { cut -d' ' -f1 "$1"; }
rss_mib() { awk '{printf "%.1f", $2 / 1024}' "$1"; }

idle_list=$WORK/idle.lat
PODMAN=(podman --root "$WORK/cs-root" --runroot "$WORK/cs-run" --storage-driver vfs)

run_image() {
  local label=$1 size_mb=$2
  local layout=$CACHE/oci-$size_mb
  sh "$HERE/gen_oci_layout.sh" "$size_mb" "$layout"
  local layer bytes mb
  layer=$(ls -S "$layout/blobs/sha256" | head -1)
  bytes=$(du -sb "$layout/blobs" | cut -f1)
  mb=$(echo "$bytes" | awk '{printf "%.1f", $1 / 1e6}')
  echo
  echo "== $label image: $mb MB of blobs (one gzip layer of ${size_mb} MiB random bytes)"

  start_registry src
  local src=$REG repo=bench/$label:1
  skopeo copy -q --dest-tls-verify=false "oci:$layout:bench" "docker://$src/$repo"

  # The floor: curl GET of every blob to a file.
  local t0 t1 curl_s
  t0=$(now_ms)
  local manifest
  manifest=$(grep -o 'sha256:[0-9a-f]*' "$layout/index.json" | head -1 | cut -d: -f2)
  for b in "$layout"/blobs/sha256/*; do
    [[ $(basename "$b") == "$manifest" ]] && continue  # not a blob to the registry
    curl -fs -o "$WORK/curl.out" "http://$src/v2/bench/$label/blobs/sha256:$(basename "$b")"
  done
  t1=$(now_ms)
  curl_s=$(echo "$t0 $t1" | awk '{printf "%.2f", ($2 - $1) / 1000}')
  rm -f "$WORK/curl.out"
  echo "curl GET of the blobs:        ${curl_s}s  $(mbps "$mb" "$curl_s") MB/s"

  # imgstore pull alone, as curl ran: the rate against the floor. (The sampler below forks a
  # list process every few milliseconds, about a core of this 2-core machine's time.)
  IMGSTORE_ROOT=$WORK/alone-$label timed "$WORK/alone-$label.t" "$BIN" pull -q "$src/$repo"
  local alone_s
  alone_s=$(secs "$WORK/alone-$label.t")
  rm -rf "$WORK/alone-$label"
  sync
  echo "imgstore pull, alone:         ${alone_s}s  $(mbps "$mb" "$alone_s") MB/s  peak RSS $(rss_mib "$WORK/alone-$label.t") MiB  ($(echo "$curl_s $alone_s" | awk '{printf "%.0f%%", 100 * $1 / $2}') of curl)"

  # imgstore pull, with list sampled meanwhile.
  export IMGSTORE_ROOT=$WORK/store-$label
  rm -rf "$IMGSTORE_ROOT"
  # A store holding one small image, so that list has something to show from the start.
  sh "$HERE/gen_oci_layout.sh" 1 "$CACHE/oci-1"
  "$BIN" pull -q "oci:$CACHE/oci-1:bench" --name tiny/x:1 >/dev/null
  sample_idle_once
  with_sampler "pull-$label" "$BIN" list -- timed "$WORK/pull-$label.t" "$BIN" pull -q "$src/$repo"
  local pull_s
  pull_s=$(secs "$WORK/pull-$label.t")
  echo "imgstore pull, list sampled: ${pull_s}s  $(mbps "$mb" "$pull_s") MB/s  peak RSS $(rss_mib "$WORK/pull-$label.t") MiB"
  echo "  imgstore list during it:    $(stats "$WORK/pull-$label.lat")"

  # imgstore push to a fresh registry, with list sampled meanwhile.
  start_registry dst
  with_sampler "push-$label" "$BIN" list -- timed "$WORK/push-$label.t" "$BIN" push -q "$src/$repo" "$REG/$repo"
  local push_s
  push_s=$(secs "$WORK/push-$label.t")
  echo "imgstore push:                ${push_s}s  $(mbps "$mb" "$push_s") MB/s  peak RSS $(rss_mib "$WORK/push-$label.t") MiB"
  echo "  imgstore list during it:    $(stats "$WORK/push-$label.lat")"
  stop_registry dst

  if [[ $PEERS == 1 ]]; then
    rm -rf "$WORK/cs-root" "$WORK/cs-run"
    "${PODMAN[@]}" images >/dev/null 2>&1 || true
    with_sampler "skopeo-pull-$label" "${PODMAN[@]}" images -- timed "$WORK/skopeo-pull-$label.t" \
      skopeo copy -q --src-tls-verify=false "docker://$src/$repo" \
      "containers-storage:[vfs@$WORK/cs-root+$WORK/cs-run]localhost/$repo"
    local sp_s
    sp_s=$(secs "$WORK/skopeo-pull-$label.t")
    echo "skopeo copy → c/storage vfs:  ${sp_s}s  $(mbps "$mb" "$sp_s") MB/s  peak RSS $(rss_mib "$WORK/skopeo-pull-$label.t") MiB  (imgstore pull, both sampled: $(echo "$sp_s $pull_s" | awk '{printf "%.1f", $1 / $2}')×)"
    echo "  podman images during it:    $(stats "$WORK/skopeo-pull-$label.lat")"
    start_registry dst
    with_sampler "podman-push-$label" "${PODMAN[@]}" images -- timed "$WORK/podman-push-$label.t" \
      "${PODMAN[@]}" push -q --tls-verify=false "localhost/$repo" "docker://$REG/$repo"
    local pp_s
    pp_s=$(secs "$WORK/podman-push-$label.t")
    echo "podman push (vfs):            ${pp_s}s  $(mbps "$mb" "$pp_s") MB/s  peak RSS $(rss_mib "$WORK/podman-push-$label.t") MiB  (imgstore push: $(echo "$pp_s $push_s" | awk '{printf "%.1f", $1 / $2}')×)"
    echo "  podman images during it:    $(stats "$WORK/podman-push-$label.lat")"
    stop_registry dst
    sample_podman_idle_once
  fi

  if [[ $label == large ]]; then
    # Two concurrent pulls of one image into one store; GETs of the layer counted at the registry.
    "$BIN" rmi "$src/$repo" >/dev/null && "$BIN" gc >/dev/null
    local gets_before gets_after
    gets_before=$(grep -c "GET /v2/bench/$label/blobs/sha256:$layer" "$WORK/src.log" || true)
    t0=$(now_ms)
    "$BIN" pull -q "$src/$repo" >/dev/null &
    local p1=$!
    "$BIN" pull -q "$src/$repo" >/dev/null
    wait "$p1"
    t1=$(now_ms)
    gets_after=$(grep -c "GET /v2/bench/$label/blobs/sha256:$layer" "$WORK/src.log" || true)
    local two_s
    two_s=$(echo "$t0 $t1" | awk '{printf "%.2f", ($2 - $1) / 1000}')
    echo "two concurrent imgstore pulls: ${two_s}s = $(echo "$two_s $pull_s" | awk '{printf "%.2f", $1 / $2}')× one pull; layer GETs at the registry: $((gets_after - gets_before))"

    # kill -9 in the middle of a pull: what is left, and who removes it.
    "$BIN" rmi "$src/$repo" >/dev/null && "$BIN" gc >/dev/null
    "$BIN" pull -q "$src/$repo" >/dev/null 2>&1 &
    local victim=$!
    for _ in $(seq 400); do
      [[ $(du -sb "$IMGSTORE_ROOT/ingest" 2>/dev/null | cut -f1) -gt $((bytes / 3)) ]] && break
      sleep 0.01
    done
    kill -9 "$victim" 2>/dev/null || true
    wait "$victim" 2>/dev/null || true
    ingest_files() { find "$IMGSTORE_ROOT/ingest" -type f -printf '%s\n' | awk '{n++; b+=$1} END {printf "%d files, %d bytes", n, b}'; }
    echo "kill -9 mid-pull: in ingest/: $(ingest_files); files in TMPDIR: $(find "$TMPDIR" -type f | wc -l)"
    "$BIN" list >/dev/null  # any command opens the store, and opening recovers dead ingests
    echo "  after the next command: in ingest/: $(ingest_files); check: $("$BIN" check >/dev/null 2>&1 && echo clean || echo PROBLEMS)"
    timed "$WORK/repull.t" "$BIN" pull -q "$src/$repo"
    echo "  retry: $(secs "$WORK/repull.t")s"
  fi
  stop_registry src
}

sample_idle_once() {
  [[ -s $idle_list ]] && return 0
  : >"$idle_list"
  for _ in $(seq 50); do
    local t0 t1
    t0=$(date +%s%N); "$BIN" list >/dev/null; t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000)) >>"$idle_list"
  done
}
sample_podman_idle_once() {
  [[ -s $WORK/podman-idle.lat ]] && return 0
  : >"$WORK/podman-idle.lat"
  for _ in $(seq 20); do
    local t0 t1
    t0=$(date +%s%N); "${PODMAN[@]}" images >/dev/null 2>&1; t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000)) >>"$WORK/podman-idle.lat"
  done
}

echo "imgstore registry benchmark: $(nproc) cores, $(date -u +%Y-%m-%d), $("$BIN" --version 2>/dev/null || echo imgstore)"
run_image medium "$MEDIUM_MB"
run_image large "$LARGE_MB"
echo
echo "imgstore list idle:           $(stats "$idle_list")"
[[ $PEERS == 1 ]] && echo "podman images idle:           $(stats "$WORK/podman-idle.lat")"
exit 0
