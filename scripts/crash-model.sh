#!/usr/bin/env bash
# A longer run of the seeded crash model test (snapshotter/tests/crash_model.rs):
# the command log and the snapshotter on the simulated disk (SimFs), random
# workloads with power cuts at random points; after each cut the engine must
# start strict with every acknowledged write, every file whole, the restore
# chain intact. A release build, SEEDS seeds (two power cuts each on average).
#
#   scripts/crash-model.sh [SEEDS]     default 50000; FIRST_SEED=n picks the first seed
#
# A failure prints its seed; replay it with
#   TIERED_CRASH_SEED=n cargo test -p tiered-snapshotter --test crash_model
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"

seeds=${1:-50000}
first=${FIRST_SEED:-$((RANDOM * 32768 + RANDOM))}
case "$seeds$first" in *[!0-9]*) die "SEEDS and FIRST_SEED must be numbers" ;; esac
log "crash model: seeds $first..$((first + seeds - 1)) (release build)"
TIERED_CRASH_SEEDS=$seeds TIERED_CRASH_FIRST_SEED=$first \
  cargo test --locked --release -p tiered-snapshotter --test crash_model -- --nocapture
