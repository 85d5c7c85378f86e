#!/usr/bin/env bash
# The main job: set up, build, and show what imgstore does today, with real tools around it.
#
# 1. umoci (Debian's) builds a real OCI image; imgstore pulls it from the layout, lists,
#    inspects and tags it, and pushes it to an oci-archive and a docker-archive that skopeo
#    (Debian's) reads back with the same digests.
# 2. `imgstore list` answers in milliseconds while another process pulls a large image, and a
#    pull killed with kill -9 leaves nothing that `imgstore check` objects to.
# 3. A real registry (Debian's docker-registry) on 127.0.0.1: imgstore pushes the image there and
#    skopeo reads it with the same manifest digest; skopeo pushes, imgstore pulls it back.
# 4. A 200 MB image pushed to the registry while `imgstore list` keeps answering in another
#    process, and an `rmi` of the image during its push (the push completes).
# 5. A root filesystem from the layer cache: unpack, an overlay mount changed and committed
#    as a new image, which umoci unpacks too.
# 6. gc, df and check.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null

bin=$PWD/build/imgstore
work=$(mktemp -d /tmp/imgstore-demo-XXXXXX)
cleanup() {
  [[ -f $work/registry.pids ]] && xargs kill <"$work/registry.pids" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export IMGSTORE_ROOT=$work/store
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "1. umoci builds a real image in an OCI layout"
(
  cd "$work"
  umoci init --layout layout
  umoci new --image layout:app
  mkdir -p content/etc && echo "hello from imgstore" > content/etc/motd
  umoci insert --image layout:app content/etc /etc
  umoci config --image layout:app --config.cmd /bin/sh --author demo
)
echo "layout: $work/layout (ref app)"

step "2. pull it into a fresh store (prints the image id), then list and inspect"
run "$bin" pull "oci:$work/layout:app" --name demo/app:1
run "$bin" tag demo/app:1 localhost:5000/demo/app:latest
run "$bin" list
run "$bin" list --format json
run "$bin" inspect demo/app:1 | head -20

step "3. push to an oci-archive and a docker-archive; skopeo reads both"
run "$bin" push demo/app:1 "oci-archive:$work/app-oci.tar:app"
run "$bin" push demo/app:1 "docker-archive:$work/app-docker.tar"
stored=$("$bin" inspect demo/app:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["digest"])')
skopeo_digest=$(skopeo inspect --raw "oci-archive:$work/app-oci.tar:app" | sha256sum | cut -d' ' -f1)
echo "manifest digest in the store: $stored"
echo "manifest digest skopeo reads: sha256:$skopeo_digest"
run skopeo inspect --config "docker-archive:$work/app-docker.tar" | head -12

step "4. a real registry on 127.0.0.1: imgstore pushes and skopeo reads; skopeo pushes and imgstore pulls"
# start_registry NAME: a docker-registry on a free loopback port; prints host:port.
start_registry() {
  local name=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$work/$name"
  cat >"$work/$name.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/$name
http:
  addr: 127.0.0.1:$port
YML
  # (stdout away from the $(...) that captures this function's output)
  /usr/bin/docker-registry serve "$work/$name.yml" >/dev/null 2>"$work/$name.log" &
  echo $! >>"$work/registry.pids"
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  echo "127.0.0.1:$port"
}
reg=$(start_registry registry)
echo "registry: docker-registry on http://$reg"
run "$bin" push demo/app:1 "$reg/demo/app:1"
echo "manifest digest skopeo reads from the registry: sha256:$(skopeo inspect --tls-verify=false --raw "docker://$reg/demo/app:1" | sha256sum | cut -d' ' -f1)"
run skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$reg/demo/app:1" "docker://$reg/demo/copied:1"
run "$bin" pull "$reg/demo/copied:1"
run "$bin" list

step "5. push a 200 MB image to the registry while list runs in another process"
python3 - "$work/big" <<'PY'
import os, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "big.bin"), "wb") as f:
    f.write(os.urandom(200 * 1024 * 1024))
PY
(
  cd "$work"
  umoci new --image layout:big
  umoci insert --image layout:big big /opt/big >/dev/null
)
run "$bin" pull -q "oci:$work/layout:big" --name demo/big:1
echo "\$ $bin push demo/big:1 $reg/demo/big:1   (in the background)"
"$bin" push -q demo/big:1 "$reg/demo/big:1" &
push_pid=$!
i=0
while kill -0 "$push_pid" 2>/dev/null; do
  i=$((i + 1))
  /usr/bin/time -f "list #$i during the push answered in %es" "$bin" list -q >/dev/null
  sleep 0.05
done
wait "$push_pid" && echo "push: done"
run "$bin" list
echo "rmi while the image is being pushed to a second, empty registry: the push still completes"
reg2=$(start_registry registry2)
"$bin" push -q demo/big:1 "$reg2/demo/big:1" &
push_pid=$!
# Once the push holds its lease (it has resolved the image), remove the image.
for _ in $(seq 200); do "$bin" locks --all | grep -q "push demo/big:1" && break; sleep 0.02; done
run "$bin" rmi demo/big:1
wait "$push_pid" && echo "push: done; the registry has it: sha256:$(skopeo inspect --tls-verify=false --raw "docker://$reg2/demo/big:1" | sha256sum | cut -d' ' -f1)"
run "$bin" gc

step "6. kill -9 a pull half-way: nothing to clean by hand"
"$bin" pull -q "oci:$work/layout:big" --name demo/big:2 &
pull_pid=$!
sleep 0.5
kill -9 "$pull_pid" 2>/dev/null || true
wait "$pull_pid" 2>/dev/null || true
run "$bin" check && echo "check: clean"
run "$bin" pull -q "oci:$work/layout:big" --name demo/big:2 && echo "re-pull: done"

step "7. a root filesystem: unpack, mount, change, commit"
run "$bin" unpack demo/app:1 "$work/rootfs"
run find "$work/rootfs" -mindepth 1
mnt=$("$bin" mount demo/app:1 --name demo-ctr)
echo "mounted at $mnt ($("$bin" mounts --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["type"])'))"
echo "a change made in the container" >"$mnt/hello.txt"
rm "$mnt/etc/motd"
run "$bin" mounts
run "$bin" commit demo-ctr demo/app:2 --message "add hello.txt, remove /etc/motd"
run "$bin" umount demo-ctr
run "$bin" unpack demo/app:2 "$work/rootfs2"
run find "$work/rootfs2" -mindepth 1
echo "umoci reads the committed image too:"
run "$bin" push demo/app:2 "oci:$work/layout:app2"
(cd "$work" && umoci unpack --image layout:app2 bundle >/dev/null && find bundle/rootfs -mindepth 1)

step "8. space, garbage collection, consistency"
run "$bin" rmi demo/big:2
run "$bin" df
run "$bin" gc
run "$bin" check --verify-content && echo "check: clean"
run "$bin" locks --all | head -5
