#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (unit, integration, stress: multi-process stress,
# crash torture, power-loss simulation, fuzz corpus replay) and prints the time of each phase.
# Pass ctest arguments to narrow it, e.g. `scripts/test.sh -L unit`. The sanitizer runs and the
# fuzzers are scripts/sanitize.sh and scripts/fuzz.sh (docs/sanitizers.md, docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
phase() { echo "== test.sh: $1 done after $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s" >&2; }
bash scripts/setup.sh
bash scripts/build.sh
phase "setup and build"
(cd build && ctest --output-on-failure -j "$(nproc)" "$@")
phase "test suite"
