#!/usr/bin/env bash
# Builds the runtime image of deploy/docker/Dockerfile with buildah, without a Docker engine or
# a registry, and runs it: the same Dockerfile steps, from a Debian base made by debootstrap
# (no registry is reachable here) and with a binary built outside (BINARY_FROM=prebuilt), then
# `nfai serve` inside the image as its user, checking /health, /ready and the image's
# user, healthcheck and entrypoint.
#
#   deploy/docker/ci-image.sh <nfai binary> <model dir>
#
# Storage is buildah's `vfs` driver and RUN steps use chroot isolation: overlay mounts and user
# namespaces are not available in this CI's container. `podman run` cannot start containers here
# (crun cannot set RLIMIT_NPROC), so the image is run with `buildah run`. `--format docker` keeps
# the HEALTHCHECK (the OCI format has none). The debootstrap base is
# made once and kept in buildah's storage; the runtime stage's apt step runs on every build
# (it needs the Debian mirror).
set -euo pipefail
cd "$(dirname "$0")/../.."

bin="${1:?usage: ci-image.sh <nfai binary> <model dir>}"
models="${2:?usage: ci-image.sh <nfai binary> <model dir>}"
base=localhost/debian:bookworm-debootstrap
image=localhost/nfai:ci
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
b() { buildah --storage-driver vfs "$@"; }

for tool in buildah podman debootstrap; do
  command -v "$tool" >/dev/null || {
    echo "ci-image: installing buildah, podman and debootstrap (apt)" >&2
    apt-get install -y -q --no-install-recommends buildah podman debootstrap >/dev/null
    break
  }
done

if ! b inspect --type image "$base" >/dev/null 2>&1; then
  rootfs="$(mktemp -d)"
  echo "ci-image: making the Debian 12 base with debootstrap" >&2
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  # mktemp made the root 0700: the image's / must be searchable by its non-root user.
  chmod 0755 "$rootfs"
  tar -C "$rootfs" -c . | podman --storage-driver vfs import - "$base" >/dev/null
  rm -rf "$rootfs"
fi

ctx="$(mktemp -d)"
ctr=""
# vfs storage keeps a full copy of the root per layer: the built image and its layers are
# removed afterwards (the debootstrap base stays), so runs do not pile up gigabytes.
cleanup() {
  [ -n "$ctr" ] && b rm "$ctr" >/dev/null 2>&1 || true
  b rmi -f "$image" >/dev/null 2>&1 || true
  # bud leaves its stages' working containers behind; this storage is the CI's own.
  b rm --all >/dev/null 2>&1 || true
  b rmi --prune >/dev/null 2>&1 || true
  rm -rf "$ctx"
}
trap cleanup EXIT
install -D -m 0755 "$bin" "$ctx/nfai-prebuilt/nfai"

echo "ci-image: buildah bud --target runtime (BINARY_FROM=prebuilt)" >&2
b bud --quiet --layers --pull-never --isolation chroot --format docker \
  -f deploy/docker/Dockerfile \
  --build-arg RUNTIME_IMAGE="$base" --build-arg BINARY_FROM=prebuilt --build-arg MODELS_FROM=no-models \
  --target runtime -t "$image" "$ctx" >/dev/null

fail() { echo "ci-image: $*" >&2; exit 1; }
cfg="$(b inspect --type image "$image" | python3 -c '
import json, sys
c = json.load(sys.stdin)["Docker"]["config"]
print("|".join([c.get("User") or "", json.dumps(c.get("Entrypoint")), json.dumps(c.get("Cmd")),
                json.dumps((c.get("Healthcheck") or {}).get("Test"))]))')"
IFS='|' read -r user entry cmd health <<<"$cfg"
[ "$user" = "10001:10001" ] || fail "image user is '$user', not 10001:10001"
[ "$entry" = '["nfai"]' ] || fail "entrypoint is $entry"
[ "$cmd" = '["serve"]' ] || fail "cmd is $cmd"
case "$health" in *"/health"*) ;; *) fail "healthcheck is $health" ;; esac

# Run the image's entrypoint as its user, on a free port, with the host's models mounted
# read-only, and probe it from inside the image (curl is what the HEALTHCHECK uses).
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
ctr="$(b from --pull-never "$image")"
b run --isolation chroot --user 10001:10001 \
  -v "$models:/models:ro" \
  -e NFAI_PORT="$port" -e NFAI_HOST=127.0.0.1 -e NFAI_SERVE=all-minilm-l6-v2 \
  -e NFAI_LOG_FORMAT=text \
  "$ctr" -- sh -euc '
    test "$(id -u)" = 10001
    nfai serve > /tmp/nfai.log 2>&1 &
    pid=$!
    for i in $(seq 1 300); do
      curl -fs -o /dev/null "http://127.0.0.1:$NFAI_PORT/ready" && break
      kill -0 $pid 2>/dev/null || { cat /tmp/nfai.log; exit 1; }
      sleep 0.2
    done
    curl -fsS "http://127.0.0.1:$NFAI_PORT/health" >/dev/null
    curl -fsS "http://127.0.0.1:$NFAI_PORT/ready" >/dev/null
    curl -fsS "http://127.0.0.1:$NFAI_PORT/v1/embeddings" -H "content-type: application/json" \
      -d "{\"model\":\"all-minilm-l6-v2\",\"input\":\"hello\"}" | grep -q "\"embedding\""
    kill -TERM $pid
    wait $pid
  ' || fail "the image did not serve (see its log above)"
echo "ci-image: $image built and served /health, /ready and an embedding as uid 10001" >&2
