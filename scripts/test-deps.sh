#!/usr/bin/env bash
# Installs what the *tests* and benchmarks need on top of scripts/deps.sh
# (scripts/test.sh runs both; scripts/up.sh runs only deps.sh):
#
#   busybox-static           test images built FROM scratch, no pull
#   iproute2                 ss: who listens on a port
#   fuse3                    fusermount3: the power-loss tests mount tiered-lossyfs
#   the shell linter         shellcheck: scripts/test.sh lints every bash script
#   redis-server, prometheus the reference server of the engine benchmark,
#                            Prometheus and promtool of the monitoring test
#   rustfmt, clippy          rustup components, when rustup manages the toolchain
#
# redis-server and prometheus are Debian services: their install starts
# nothing (a policy-rc.d answering 101 for the duration of the install only;
# see apt_install_no_start in lib.sh), and services that were installed
# before are not touched at all. The tests start their own instances on free
# ports and stop only those.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ $# = 0 ] || die "scripts/test-deps.sh takes no arguments"

"$TIERED_ROOT/scripts/deps.sh"
apt_install "${TIERED_TEST_PKGS[@]}"
apt_install_no_start "${TIERED_TEST_NOSTART_PKGS[@]}"
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
log "test dependencies ready"
