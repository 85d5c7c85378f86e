#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): set-up, build, then
#   1. every ctest test of the normal build (unit, integration, stress: multi-process stress,
#      crash torture, power-loss simulation, fuzz corpus replay);
#   2. the unit and integration suites under ASan+UBSan, the locking, store and API-thread
#      suites under TSan (scripts/sanitize.sh, docs/sanitizers.md);
#   3. each libFuzzer target for 60 s (scripts/fuzz.sh, docs/fuzzing.md).
# Every phase runs even when an earlier one failed; the exit status is non-zero if any failed,
# and the last lines say which, with the time of each.
#
#   scripts/test.sh                 everything (CI)
#   scripts/test.sh -L unit         only phase 1, with these ctest arguments
#   IMGSTORE_TEST_PHASES="suite sanitizers" scripts/test.sh    some phases only
#   IMGSTORE_FUZZ_SECONDS=600 scripts/test.sh                  longer fuzzing
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
phases=${IMGSTORE_TEST_PHASES:-suite sanitizers fuzz}
(($# > 0)) && phases=suite
summary=()
failed=0

elapsed() { printf '%dm%02ds' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)); }
# phase NAME COMMAND...: runs it, records its outcome and duration.
phase() {
  local name=$1 t0=$SECONDS rc=0
  shift
  "$@" || rc=$?
  local took=$((SECONDS - t0))
  local line
  line=$(printf '%-22s %s in %dm%02ds (at %s)' "$name" "$([ $rc = 0 ] && echo ok || echo "FAILED ($rc)")" \
    $((took / 60)) $((took % 60)) "$(elapsed)")
  echo "== test.sh: $line" >&2
  summary+=("$line")
  [ $rc = 0 ] || failed=1
  return $rc
}

if ! phase "setup and build" bash -c 'bash scripts/setup.sh && bash scripts/build.sh'; then
  echo "== test.sh: nothing to test without a build" >&2
  exit 1
fi
for p in $phases; do
  case $p in
    suite) phase "test suite" bash -c 'cd build && ctest --output-on-failure -j "$(nproc)" "$@"' _ "$@" ;;
    sanitizers) phase "sanitizers" bash scripts/sanitize.sh all ;;
    fuzz) phase "fuzzers" bash scripts/fuzz.sh "${IMGSTORE_FUZZ_SECONDS:-60}" ;;
    *) echo "test.sh: unknown phase $p (suite, sanitizers, fuzz)" >&2; failed=1 ;;
  esac
done
echo "== test.sh: summary" >&2
for line in "${summary[@]}"; do echo "   $line" >&2; done
exit $failed
