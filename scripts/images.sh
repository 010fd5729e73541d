#!/usr/bin/env bash
# Builds the two container images, FROM scratch, from the static binaries in
# build/bin (scripts/build.sh makes them; no base image is pulled):
#
#   scripts/images.sh [TAG]      ->  tiered-engine:TAG, tiered-snapshotter:TAG
#
# TAG defaults to $TIERED_IMAGE_TAG or `latest`. Image names can be changed
# with TIERED_ENGINE_REPO / TIERED_SNAPSHOTTER_REPO. Each build's context is
# a temp dir holding its one binary, so a build sends only that to the daemon.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tag=${1:-${TIERED_IMAGE_TAG:-latest}}
[ $# -le 1 ] || die "usage: scripts/images.sh [TAG]"
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid image tag: $tag"
engine_repo=${TIERED_ENGINE_REPO:-tiered-engine}
snapshotter_repo=${TIERED_SNAPSHOTTER_REPO:-tiered-snapshotter}

for b in tiered-engine tiered-snapshotter; do
  [ -x "$TIERED_BIN/$b" ] || die "missing $TIERED_BIN/$b: run scripts/build.sh first"
done
ensure_docker

ctx_root=$(mktemp -d /tmp/tiered-images.XXXXXX)
on_exit rm -rf "$ctx_root"

build() { # build DOCKERFILE BINARY IMAGE
  local dockerfile=$1 binary=$2 image=$3 ctx="$ctx_root/$2"
  mkdir "$ctx"
  cp "$TIERED_BIN/$binary" "$ctx/$binary"
  log "docker build $image"
  # The legacy builder (no buildx needed). Its output, with the CLI's
  # deprecation notice, is shown only when the build fails.
  local out
  if ! out=$(DOCKER_BUILDKIT=0 docker build -q -f "$dockerfile" -t "$image" "$ctx" 2>&1); then
    printf '%s\n' "$out" >&2
    die "docker build of $image failed"
  fi
}
# Both at once: the legacy builder spends its time committing one layer per
# instruction, not on the CPU.
build "$TIERED_ROOT/images/engine.Dockerfile" tiered-engine "$engine_repo:$tag" &
engine_pid=$!
build "$TIERED_ROOT/images/snapshotter.Dockerfile" tiered-snapshotter "$snapshotter_repo:$tag" &
snapshotter_pid=$!
rc=0
wait "$engine_pid" || rc=1
wait "$snapshotter_pid" || rc=1
[ "$rc" = 0 ] || die "image build failed"
log "images: $engine_repo:$tag $snapshotter_repo:$tag"
