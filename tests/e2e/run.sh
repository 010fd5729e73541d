#!/usr/bin/env bash
# Runs every end-to-end test (tests/e2e/test_*.sh) against the real Docker
# daemon, one after the other, and prints "e2e: N passed, N failed".
# Each test names its Docker objects uniquely and removes them on exit.
# Expects the static binaries from scripts/build.sh in build/bin.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ensure_docker || exit 1
passed=0 failed=0 failures=()
for t in "$TIERED_ROOT"/tests/e2e/test_*.sh; do
  name=$(basename "$t" .sh)
  if [ -n "${E2E_FILTER:-}" ] && [[ "$name" != *"$E2E_FILTER"* ]]; then continue; fi
  log "=== $name"
  start=$SECONDS
  if bash "$t"; then
    passed=$((passed + 1)); log "--- PASS $name ($((SECONDS - start))s)"
  else
    failed=$((failed + 1)); failures+=("$name"); log "--- FAIL $name ($((SECONDS - start))s)"
  fi
done
[ ${#failures[@]} = 0 ] || log "failed: ${failures[*]}"
echo "e2e: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
