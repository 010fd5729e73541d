#!/usr/bin/env bash
# The long differential run: a seeded random stream of commands sent to
# tiered-engine and to redis-server, every reply compared (see
# engine/tests/differential.rs; CI runs a short one).
#
#   scripts/redis-diff.sh                 100k ops, random seed (printed)
#   TIERED_DIFF_OPS=1000000 TIERED_DIFF_SEED=42 scripts/redis-diff.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"
command -v redis-server >/dev/null || die "redis-server not found (scripts/deps.sh --test installs it)"
export TIERED_DIFF_OPS=${TIERED_DIFF_OPS:-100000}
cargo test --release --locked -p tiered-engine --test differential -- --nocapture
