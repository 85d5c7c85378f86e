#!/usr/bin/env bash
# Configures and builds imgstore into build/ (warnings are errors). Used by test.sh and demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGSTORE_WERROR=ON >/dev/null
cmake --build build -j "$(nproc)"
