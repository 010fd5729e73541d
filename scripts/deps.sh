#!/usr/bin/env bash
# Installs everything the build, the tests and the benchmarks need on a fresh
# Debian machine with a Rust toolchain: Docker (if no daemon answers), the
# Debian packages the tests drive, and the rustfmt/clippy components.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

apt_install ca-certificates busybox-static redis-tools redis-server docker-registry prometheus python3 docker-compose curl openssl \
  btrfs-progs xfsprogs e2fsprogs
# The Debian services must not keep running on the well-known ports: tests
# start their own instances on ports they choose.
for svc in redis-server docker-registry prometheus; do
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
  service "$svc" stop >/dev/null 2>&1 || true
done
ensure_docker
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup target list --installed | grep -q x86_64-unknown-linux-gnu || rustup target add x86_64-unknown-linux-gnu
fi
log "dependencies ready"
