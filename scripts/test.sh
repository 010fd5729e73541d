#!/usr/bin/env bash
# Runs every test: formatting, clippy, unit and integration tests (with the
# failpoints compiled in), then the end-to-end tests on a real Docker daemon.
#
#   scripts/test.sh            everything (what .ci/run calls)
#   scripts/test.sh --no-e2e   skip the real-daemon tests (quick local loop)
#   E2E_FILTER=plugin scripts/test.sh   only e2e tests whose name matches
#
# The real-daemon tests are the Rust crate tests/e2e (package tiered-e2e),
# compiled only with its feature docker-e2e, so the unit stage leaves that
# crate's feature off.
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

"$TIERED_ROOT/scripts/deps.sh"

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
  # Scenarios not yet ported to tests/e2e (Rust).
  if compgen -G "$TIERED_ROOT/tests/e2e/test_*.sh" >/dev/null; then
    set +e
    "$TIERED_ROOT/tests/e2e/run.sh" 2>&1 | tee "$e2e_log"
    sh_rc=${PIPESTATUS[0]}
    set -e
    sh_passed=$(sed -nE 's/^e2e: ([0-9]+) passed, ([0-9]+) failed$/\1/p' "$e2e_log" | tail -1)
    sh_failed=$(sed -nE 's/^e2e: ([0-9]+) passed, ([0-9]+) failed$/\2/p' "$e2e_log" | tail -1)
    sh_passed=${sh_passed:-0} sh_failed=${sh_failed:-1}
    [ "$sh_rc" = 0 ] || sh_failed=$((sh_failed > 0 ? sh_failed : 1))
    e2e_passed=$((e2e_passed + sh_passed)) e2e_failed=$((e2e_failed + sh_failed))
  fi
fi

echo "total: $((unit_passed + e2e_passed)) passed, $((unit_failed + e2e_failed)) failed"
[ "$e2e_failed" = 0 ]
