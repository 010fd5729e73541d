#!/usr/bin/env bash
# Builds the three binaries statically linked (they run in FROM-scratch images
# and in the plugin's rootfs) into build/bin/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"
target=x86_64-unknown-linux-gnu
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$target" --bins "$@"
mkdir -p "$TIERED_BIN"
for b in tiered-plugin tiered-engine tiered-snapshotter; do
  install -m 0755 "target/$target/release/$b" "$TIERED_BIN/$b"
done
log "static binaries in $TIERED_BIN: $(cd "$TIERED_BIN" && echo *)"
