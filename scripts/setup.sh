#!/usr/bin/env bash
# Installs, from Debian's packages, whatever imgstore needs to build and test and is missing.
# Idempotent and quick when everything is there: apt-get update runs only if a package is missing.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build pkg-config clang clang-format
  # libFuzzer and the sanitizer runtimes of clang, and symbolized stacks (scripts/fuzz.sh)
  libclang-rt-14-dev llvm-14
  # libraries imgstore builds with
  libsqlite3-dev libzstd-dev zlib1g-dev libisal-dev libarchive-dev libssl-dev libcurl4-openssl-dev
  nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  # real peers the tests and benchmarks use
  docker-registry apache2-utils skopeo umoci openssl curl zstd hyperfine python3 time valgrind
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "imgstore setup: missing packages: ${missing[*]}" >&2
  echo "imgstore setup: run as root (or install them) and try again" >&2
  exit 1
fi

echo "imgstore setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The registry package must not start a system service on port 5000: tests start their own.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if ((created_policy)); then rm -f "$policy"; fi
