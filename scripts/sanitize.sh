#!/usr/bin/env bash
# Builds and runs the test suites under the sanitizers (docs/sanitizers.md):
#   asan  the unit and integration suites under AddressSanitizer + UndefinedBehaviorSanitizer
#         (LeakSanitizer included), in build-asan/
#   tsan  the locking and store suites and tests/api threads_test under ThreadSanitizer, in
#         build-tsan/
#   all   both (the default)
# Any sanitizer report, in a test or in a process a test started, fails the run. Prints one
# summary line per run and exits non-zero if a build or a test failed. Installs nothing: gcc-12
# brings libasan, libubsan and libtsan (scripts/setup.sh installs the rest).
# A local run can reuse ccache: CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_C_COMPILER_LAUNCHER=ccache.
set -uo pipefail
cd "$(dirname "$0")/.."
src=$PWD
supp=$src/tests/sanitizers
jobs=$(nproc)

which=${1:-all}
case $which in
  asan | tsan | all) ;;
  *)
    echo "usage: scripts/sanitize.sh [asan|tsan|all]" >&2
    exit 2
    ;;
esac

# Every report is fatal (halt_on_error, -fno-sanitize-recover) and ends the process with SIGABRT,
# which no test mistakes for an expected exit status. tests/sanitizers/child_reports.cc adds a
# log_path for the processes a test starts, so their reports fail the test too.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1:print_stacktrace=1:disable_coredump=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:report_error_type=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp:print_suppressions=0"

summaries=()
failed=0

# fmt SECONDS: "4m07s"
fmt() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# run NAME SANITIZERS BUILD_DIR CTEST_ARGS... -- TARGETS...
run() {
  local name=$1 sanitize=$2 dir=$3
  shift 3
  local ctest_args=() targets=()
  while (($#)) && [[ $1 != -- ]]; do ctest_args+=("$1"); shift; done
  shift
  targets=("$@")

  echo "== $name: configure and build in $dir" >&2
  local t0=$SECONDS
  mkdir -p "$dir"
  # -O1 -g1: fast enough to run, small enough to link; asserts stay on. No benchmarks.
  if ! cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
      -DIMGSTORE_WERROR=ON -DIMGSTORE_BUILD_BENCH=OFF -DIMGSTORE_SANITIZE="$sanitize" \
      >"$dir/sanitize-configure.log" 2>&1; then
    cat "$dir/sanitize-configure.log" >&2
    summaries+=("$name: FAILED to configure (see above)")
    failed=1
    return
  fi
  grep 'sanitizer build:' "$dir/sanitize-configure.log" >&2
  if ! cmake --build "$dir" -j "$jobs" --target "${targets[@]}"; then
    summaries+=("$name: FAILED to build after $(fmt $((SECONDS - t0)))")
    failed=1
    return
  fi
  local built=$((SECONDS - t0))

  # A run that builds some targets only runs the tests whose program it built: the others have no
  # command (a gtest binary not built shows up as one test named *_NOT_BUILT).
  local exclude='_NOT_BUILT$'
  if [[ ${targets[*]} != all ]]; then
    exclude=$( (cd "$dir" && ctest --show-only=json-v1) | python3 -c '
import json, os, re, sys
names = [t["name"] for t in json.load(sys.stdin)["tests"]
         if not t.get("command") or not os.path.exists(t["command"][0])]
print("|".join("^" + re.escape(n) + "$" for n in names) or "^$")')
  fi

  echo "== $name: ctest ${ctest_args[*]}" >&2
  local t1=$SECONDS log=$dir/sanitize-ctest.log
  (cd "$dir" && ctest --output-on-failure -j "$jobs" -E "$exclude" "${ctest_args[@]}") \
    2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local ran=$((SECONDS - t1))
  local result
  result=$(grep -E '^[0-9]+% tests passed' "$log" | tail -1)
  if ((rc != 0)) || [[ -z $result ]]; then
    summaries+=("$name: FAILED: ${result:-ctest exited $rc} (build $(fmt "$built"), tests $(fmt "$ran"))")
    failed=1
  else
    summaries+=("$name: ok: $result (build $(fmt "$built"), tests $(fmt "$ran"))")
  fi
}

if [[ $which == asan || $which == all ]]; then
  # Every test program but the stress tests, and the CLI (tests/CMakeLists.txt).
  run asan address,undefined "$src/build-asan" -L 'unit|integration' -- imgstore_sanitizer_build
fi

if [[ $which == tsan || $which == all ]]; then
  # The locking and store test binaries and their helpers (they exec no imgstore CLI), and the
  # API's threads test; no others are built, so ctest runs just these.
  tsan_targets=(lock_helper store_helper api_threads_test)
  for t in "$src"/tests/locking/*_test.cc "$src"/tests/store/*_test.cc; do
    n=$(basename "$t" .cc)
    [[ $n == *_stress_test ]] && continue
    tsan_targets+=("$(basename "$(dirname "$t")")_$n")
  done
  run tsan thread "$src/build-tsan" -L 'unit|integration' -- "${tsan_targets[@]}"
fi

for s in "${summaries[@]}"; do echo "sanitize: $s"; done
exit "$failed"
