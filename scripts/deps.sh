#!/usr/bin/env bash
# Installs what *running* the deployment needs (scripts/up.sh runs this; the
# tests' extra packages are scripts/test-deps.sh):
#
#   Docker          docker.io, when no daemon answers (then started: systemctl
#                   where systemd runs, else a detached dockerd)
#   compose         docker-compose, when neither `docker compose` nor
#                   `docker-compose` exists
#   packages        ca-certificates curl openssl python3 redis-tools, and
#                   docker-registry (scripts/registry.sh installs the plugin
#                   through a local registry), whose Debian service is NOT
#                   started by the install (see apt_install_no_start in lib.sh)
#   build           gcc and libc6-dev when there is no C linker or static libc
#
# The Rust toolchain is not installed here: `scripts/up.sh --check` says
# whether it is there at the right version and how to get it.
# Packages already installed are left as they are. No host service is halted,
# disabled, restarted or reconfigured.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ $# = 0 ] || die "scripts/deps.sh takes no arguments"

apt_install "${TIERED_RUNTIME_PKGS[@]}"
apt_install_no_start "${TIERED_RUNTIME_NOSTART_PKGS[@]}"
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  apt_install docker-compose
fi
if ! command -v cc >/dev/null 2>&1 || [ ! -e /usr/lib/x86_64-linux-gnu/libc.a ]; then
  apt_install gcc libc6-dev
fi
ensure_docker
log "runtime dependencies ready"
