# Harness of tests/e2e/test_system_up.sh, the one real-daemon test still in
# bash (the other scenarios are the Rust crate tests/e2e, package tiered-e2e).
# Sourced, not run (tests/e2e/run.sh runs only test_*.sh).
#
# `sys_init` gives the test a unique id and a temp dir holding both tier
# sources; `sys_load`/`sys_check` write through the engine and read every
# acknowledged write back. Every object is removed when the test exits, pass
# or fail, in reverse order of registration (on_exit of scripts/lib.sh).
# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SYS_LOAD="$TIERED_ROOT/tests/e2e/system_load.py"
# Set to 1 by the test once it passed: no diagnostics then.
SYS_OK=0
# Diagnostics from cleanup go to the test's stderr (cleanup's own output is
# discarded by lib.sh).
exec 3>&2

for c in redis-cli python3 docker-registry; do
  command -v "$c" >/dev/null || die "missing $c (run scripts/deps.sh)"
done
for b in tiered-plugin tiered-engine tiered-snapshotter; do
  [ -x "$TIERED_BIN/$b" ] || die "missing $TIERED_BIN/$b (run scripts/build.sh)"
done
ensure_docker

# sys_init WHAT: SYS_ID (unique, lowercase), SYS_WORK, SYS_PRIMARY, SYS_ARCHIVE.
sys_init() {
  SYS_ID=$(uniq_name "$1")
  SYS_WORK=$(mktemp -d "/tmp/$SYS_ID.XXXXXX")
  SYS_PRIMARY="$SYS_WORK/primary"
  SYS_ARCHIVE="$SYS_WORK/archive"
  mkdir -p "$SYS_PRIMARY" "$SYS_ARCHIVE"
  # Registered first, so it runs last. --one-file-system: never cross a
  # mount left behind.
  on_exit rm -rf --one-file-system "$SYS_WORK"
  on_exit sys_diagnostics
}

SYS_DIAG_DONE=0
sys_diagnostics() {
  { [ "$SYS_OK" = 1 ] || [ "$SYS_DIAG_DONE" = 1 ]; } && return 0
  SYS_DIAG_DONE=1
  {
    echo "--- diagnostics ($SYS_ID)"
    docker ps -a --filter "name=$SYS_ID" --format '{{.Names}} {{.Status}}' || true
    for c in $(docker ps -aq --filter "name=$SYS_ID"); do
      echo "--- logs of $(docker inspect -f '{{.Name}}' "$c")"
      docker logs --tail 30 "$c" 2>&1 || true
    done
    echo "--- tiers"
    find "$SYS_WORK" -maxdepth 5 ! -name '*.snap' ! -name 'cmdlog-*.log' 2>/dev/null | head -60 || true
    echo "($(find "$SYS_WORK" -name '*.snap' | wc -l) snapshots, $(find "$SYS_WORK" -name 'cmdlog-*.log' | wc -l) completed logs)"
  } >&3 2>&1
}

sys_remove_plugin() {
  docker plugin disable -f "$1" >/dev/null 2>&1 || true
  docker plugin rm -f "$1" >/dev/null 2>&1 || true
}

sys_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

sys_compose() { "$TIERED_ROOT/scripts/compose.sh" "$@"; }

# sys_load OUT [SECONDS] [CONNECTIONS]: write load on the engine until done or
# the engine goes away; OUT records the acknowledged writes.
sys_load() {
  python3 "$SYS_LOAD" write --port "$TIERED_ENGINE_PORT" --prefix "$(basename "$1" .json)" \
    --seconds "${2:-5}" --connections "${3:-4}" --out "$1"
}

# sys_check OUT...: every acknowledged write in OUT... reads back.
sys_check() { python3 "$SYS_LOAD" check --port "$TIERED_ENGINE_PORT" "$@"; }
