#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan) and runs each for SECONDS
# (default 60), two at a time, on a copy of its seed corpus. Fails, printing the reproducer and
# the stack, if any target crashed, leaked, timed out or broke an invariant. docs/fuzzing.md.
#
#   scripts/fuzz.sh [SECONDS]
#   FUZZ_TARGETS="extract manifest" scripts/fuzz.sh 600    # some targets only
#
# Installs nothing: it needs clang (clang-14 with its libFuzzer runtime), cmake, ninja and the
# -dev packages of the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-2}
rss_mb=${FUZZ_RSS_LIMIT_MB:-2048}
timeout_s=${FUZZ_TIMEOUT:-20}
targets=${FUZZ_TARGETS:-$(cd fuzz && ls -- *_fuzzer.cc | sed 's/_fuzzer\.cc$//')}

for tool in clang clang++ cmake ninja; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool is missing (scripts/setup.sh)" >&2; exit 2; }
done
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
echo "fuzz: building the fuzz targets in $build"
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DIMGSTORE_FUZZ=ON -DIMGSTORE_BUILD_TESTS=OFF -DIMGSTORE_BUILD_BENCH=OFF -DIMGSTORE_WERROR=ON \
  "${launcher[@]}" >/dev/null
cmake --build "$build" -j "$jobs" --target fuzzers

# Everything a run makes stays in $run for inspection (grown corpora, logs, reproducers) and is
# replaced by the next run; the seed corpora in the tree are never written.
run=$build/fuzz-run
rm -rf "$run"
mkdir -p "$run"

dict_of() {
  case $1 in
    manifest | image_config | oci_layout) echo fuzz/dict/json.dict ;;
    docker_archive | oci_archive | tar_reader | extract) echo fuzz/dict/tar.dict ;;
    *) [ -f "fuzz/dict/$1.dict" ] && echo "fuzz/dict/$1.dict" ;;
  esac
}

fuzz_one() {
  local name=$1 dir=$run/$1
  mkdir -p "$dir/corpus" "$dir/artifacts" "$dir/tmp"
  cp -r "fuzz/corpus/$name/." "$dir/corpus/"
  [ -d "fuzz/regressions/$name" ] && cp -r "fuzz/regressions/$name/." "$dir/corpus/"
  local dict
  dict=$(dict_of "$name" || true)
  local args=(-max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout="$timeout_s"
    -artifact_prefix="$dir/artifacts/" -print_final_stats=1)
  [ -n "$dict" ] && args+=(-dict="$root/$dict")
  local rc=0
  TMPDIR=$dir/tmp ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/fuzz/fuzz_$name" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
  echo "fuzz: $name finished (exit $rc, $(grep -c . <(ls "$dir/corpus")) inputs in its corpus)"
}

echo "fuzz: running $(echo "$targets" | wc -w) targets for ${seconds}s each, $jobs at a time"
for t in $targets; do
  [ -f "fuzz/${t}_fuzzer.cc" ] || { echo "fuzz: no target $t" >&2; exit 2; }
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  fuzz_one "$t" &
done
wait

failed=0
for t in $targets; do
  dir=$run/$t
  rc=$(cat "$dir/rc" 2>/dev/null || echo missing)
  reproducers=$(find "$dir/artifacts" -type f 2>/dev/null)
  if [ "$rc" != 0 ] || [ -n "$reproducers" ]; then
    failed=1
    echo "fuzz: FAILED $t (exit $rc)"
    for r in $reproducers; do echo "  reproducer: $r"; done
    echo "  log: $dir/log; the report:"
    # The sanitizer's or the invariant's report and its stack, without libFuzzer's banner.
    grep -a -n -m1 -E '^==[0-9]+==|runtime error|fuzz invariant broken|ERROR: libFuzzer' "$dir/log" |
      cut -d: -f1 | { read -r line && tail -n "+$line" "$dir/log" | head -60 || tail -40 "$dir/log"; } |
      sed 's/^/    /'
  else
    echo "fuzz: ok $t: $(grep -a -E '^stat::number_of_executed_units' "$dir/log" | awk '{print $2}') runs"
  fi
done
if [ "$failed" != 0 ]; then
  echo "fuzz: a target failed; add its reproducer to fuzz/regressions/<target>/ once fixed" >&2
  exit 1
fi
echo "fuzz: all targets ran ${seconds}s without a finding"
