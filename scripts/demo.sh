#!/usr/bin/env bash
# The main job: set up, build, and show what imgstore does today.
#
# Today that is the locking foundation: a long operation holds a lock on a store object while
# readers go on, a writer waits with a deadline and is told who holds the lock, `imgstore locks`
# shows holders and waiters, and kill -9 of the holder frees everything at once, leaving nothing
# to clean. (The registry pull/list/push demo replaces this as the store and registry land.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null

bin=build/imgstore
helper=build/tests/locking/lock_helper  # a tiny program that takes a lock and reports
root=$(mktemp -d /tmp/imgstore-demo-XXXXXX)
holder_pid=
cleanup() {
  [[ -n $holder_pid ]] && kill -9 "$holder_pid" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
lock=image-sha256-5f70bf18a086

step "1. A long operation takes the upgradable lock of an image (a stand-in for a push)"
mkfifo "$root/hold.in"
"$helper" hold "$root/locks" "$lock" upgradable "push localhost:5000/demo/app:1" -1 \
  <"$root/hold.in" >"$root/hold.out" &
holder_pid=$!
exec 3>"$root/hold.in"  # keeps the holder's stdin open: it holds until this closes
for _ in $(seq 100); do grep -q acquired "$root/hold.out" && break; sleep 0.05; done
echo "pid $holder_pid holds $lock"

step "2. imgstore locks shows who holds what, for how long"
"$bin" --root "$root" locks

step "3. Readers go on while it runs (shared coexists with upgradable)"
"$helper" hold "$root/locks" "$lock" shared "list" try </dev/null | grep -v "^waiting"

step "4. A writer waits, with a deadline, and is told whom it waits for"
"$helper" hold "$root/locks" "$lock" exclusive "rmi demo/app:1" 1500 </dev/null | grep -v "^waiting" || true

step "5. kill -9 the holder: the lock is free at once; nothing is left to delete"
kill -9 "$holder_pid"
wait "$holder_pid" 2>/dev/null || true
holder_pid=
exec 3>&-
"$helper" hold "$root/locks" "$lock" exclusive "rmi demo/app:1" try </dev/null | grep -v "^waiting"
"$bin" --root "$root" locks --all

step "6. What locking costs (bench/locking; more in docs/performance.md)"
if [[ -x build/bench/bench_locking ]]; then
  build/bench/bench_locking --benchmark_min_time=0.05 2>/dev/null | tail -n +1 | head -40 || true
fi
