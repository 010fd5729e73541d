#!/usr/bin/env bash
# Runs every test: shellcheck, formatting, clippy, unit and integration tests (with the
# failpoints compiled in), then the end-to-end tests on a real Docker daemon.
#
#   scripts/test.sh            everything (what .ci/run calls)
#   scripts/test.sh --no-e2e   skip the real-daemon tests (quick local loop)
#   E2E_FILTER=plugin scripts/test.sh   only e2e tests whose name matches
#
# The real-daemon tests are the Rust crate tests/e2e (package tiered-e2e),
# compiled only with its feature docker-e2e, so the unit stage leaves that
# crate's feature off. What it does to the host is printed first (and in
# docs/testing.md).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"

run_e2e=1
for a in "$@"; do
  case "$a" in
    --no-e2e) run_e2e=0 ;;
    *) die "unknown argument: $a (accepted: --no-e2e)" ;;
  esac
done

if [ $run_e2e = 1 ]; then
  cat >&2 <<'EOF'
scripts/test.sh will, on this host:
  - install missing Debian packages (scripts/test-deps.sh: Docker, compose, docker-registry,
    redis-server, prometheus, busybox-static, ...); their services are NOT started, and
    services already installed are not touched
  - start dockerd if it does not answer
  - STOP AND RESTART the Docker daemon once (the daemon-restart test): running containers
    stop with it and come back only per their restart policy
  - possibly `docker swarm init` (left again only if the test made the swarm)
  - create plugins, volumes, images, containers, networks and temp dirs named tiered-e2e-*
    (and the containers of the scripts they run, tiered-t-*), and remove them at the end,
    pass or fail
  - run its own redis-server, docker-registry and prometheus on free loopback ports
(scripts/test.sh --no-e2e does only the package step and the cargo steps.)
EOF
else
  log "scripts/test.sh --no-e2e: installs missing packages (scripts/test-deps.sh), then fmt, clippy, cargo test"
fi
"$TIERED_ROOT/scripts/test-deps.sh"

log "shellcheck"
# Every bash script of the repository (settings in .shellcheckrc).
mapfile -t shell_scripts < <(find scripts .ci tests -type f \( -name '*.sh' -o -path .ci/run \) | sort)
shellcheck -x "${shell_scripts[@]}"
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

log "cargo test"
cargo_log=$(mktemp)
on_exit rm -f "$cargo_log"
set +e
(
  cargo test --workspace --exclude tiered-e2e --all-features --locked; rc=$?
  cargo test -p tiered-e2e --locked || rc=1
  exit $rc
) 2>&1 | tee "$cargo_log"
cargo_rc=${PIPESTATUS[0]}
set -e
unit_passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$cargo_log" | awk '{s+=$4} END {print s+0}')
unit_failed=$(grep -oE '; [0-9]+ failed' "$cargo_log" | awk '{s+=$2} END {print s+0}')
[ "$cargo_rc" = 0 ] || { log "cargo test failed"; echo "unit: $unit_passed passed, $unit_failed failed"; exit 1; }

e2e_passed=0 e2e_failed=0
if [ $run_e2e = 1 ]; then
  "$TIERED_ROOT/scripts/build.sh"
  e2e_log=$(mktemp)
  on_exit rm -f "$e2e_log"
  set +e
  # Each test takes /tmp/tiered-docker.lock itself (shared; exclusive to
  # restart dockerd); one at a time, so they never compete for the machine.
  cargo test -p tiered-e2e --features docker-e2e --locked --test '*' -- --test-threads=1 ${E2E_FILTER:+"$E2E_FILTER"} 2>&1 | tee "$e2e_log"
  e2e_rc=${PIPESTATUS[0]}
  set -e
  e2e_passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$e2e_log" | awk '{s+=$4} END {print s+0}')
  e2e_failed=$(grep -oE '; [0-9]+ failed' "$e2e_log" | awk '{s+=$2} END {print s+0}')
  [ "$e2e_rc" = 0 ] || e2e_failed=$((e2e_failed > 0 ? e2e_failed : 1))
fi

echo "total: $((unit_passed + e2e_passed)) passed, $((unit_failed + e2e_failed)) failed"
[ "$e2e_failed" = 0 ]
