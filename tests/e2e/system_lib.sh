# Shared harness of the whole-system tests (tests/e2e/test_system_*.sh).
# Sourced, not run (tests/e2e/run.sh runs only test_*.sh).
#
# `sys_init` gives the test a unique id and a temp dir holding both tier
# sources; `sys_install_plugin` installs the plugin from a local registry
# (scripts/registry.sh) on those tiers; `sys_images` builds the two images
# under a unique tag; `sys_compose_env` points deploy/compose.yaml at all of
# it (unique project, volume and free loopback ports). Every object is
# removed when the test exits, pass or fail, in reverse order of creation:
# containers, volume, images, plugin, temp dir.
# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

SYS_LOAD="$TIERED_ROOT/tests/e2e/system_load.py"
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
  [ "$SYS_OK" = 1 ] || [ "$SYS_DIAG_DONE" = 1 ] && return 0
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

# sys_install_plugin [NAME]: SYS_PLUGIN installed from the registry on the
# test's tiers, removed on exit.
sys_install_plugin() {
  SYS_PLUGIN=${1:-$SYS_ID}
  on_exit sys_remove_plugin "$SYS_PLUGIN"
  "$TIERED_ROOT/scripts/registry.sh" install --alias "$SYS_PLUGIN" --repo "$SYS_ID" --tag v1 \
    --primary "$SYS_PRIMARY" --archive "$SYS_ARCHIVE"
}

sys_remove_plugin() {
  docker plugin disable -f "$1" >/dev/null 2>&1 || true
  docker plugin rm -f "$1" >/dev/null 2>&1 || true
}

# sys_images: tiered-engine:SYS_ID and tiered-snapshotter:SYS_ID, removed on exit.
sys_images() {
  SYS_ENGINE_IMAGE="tiered-engine:$SYS_ID"
  SYS_SNAPSHOTTER_IMAGE="tiered-snapshotter:$SYS_ID"
  on_exit docker image rm -f "$SYS_ENGINE_IMAGE" "$SYS_SNAPSHOTTER_IMAGE"
  "$TIERED_ROOT/scripts/images.sh" "$SYS_ID"
}

sys_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# sys_compose_env: the environment deploy/compose.yaml reads, for this test:
# small rotation, short intervals, free ports, unique names.
sys_compose_env() {
  export COMPOSE_PROJECT_NAME="$SYS_ID"
  export TIERED_ENGINE_IMAGE="$SYS_ENGINE_IMAGE" TIERED_SNAPSHOTTER_IMAGE="$SYS_SNAPSHOTTER_IMAGE"
  export TIERED_VOLUME="$SYS_ID-data" TIERED_DRIVER="$SYS_PLUGIN"
  export TIERED_ENGINE_PORT TIERED_ENGINE_METRICS_PORT TIERED_SNAPSHOTTER_METRICS_PORT
  TIERED_ENGINE_PORT=$(sys_free_port)
  TIERED_ENGINE_METRICS_PORT=$(sys_free_port)
  TIERED_SNAPSHOTTER_METRICS_PORT=$(sys_free_port)
  export TIERED_ROTATE_BYTES=$((256 * 1024)) TIERED_ROTATE_INTERVAL=2
  export TIERED_RESCAN_INTERVAL_SECS=1 TIERED_KEEP_SNAPSHOTS=2 TIERED_MIN_LOGS=1
  export TIERED_HEALTH_INTERVAL=1s
  # Where the volume's files land on the host: the plugin keeps PRIMARY/NAME/data
  # (the volume root) and ARCHIVE/NAME (its archived/).
  SYS_DATA="$SYS_PRIMARY/$TIERED_VOLUME/data"
  SYS_ARCHIVED="$SYS_ARCHIVE/$TIERED_VOLUME"
}

sys_compose() { "$TIERED_ROOT/scripts/compose.sh" "$@"; }

# sys_compose_up: compose up -d; containers and volume removed on exit.
sys_compose_up() {
  on_exit docker volume rm -f "$TIERED_VOLUME"
  on_exit sys_compose down -v --timeout 10
  # Before the containers go: their logs, the tiers as they are.
  on_exit sys_diagnostics
  sys_compose up -d
}

# The container id of a compose service.
sys_container() { sys_compose ps -q "$1"; }

engine_pings() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }
# sys_wait_engine PORT: the engine answers PING (recovery done).
sys_wait_engine() {
  wait_for "${2:-60}" engine_pings "$1" || die "the engine on port $1 did not answer PING"
}

# sys_load OUT [SECONDS] [CONNECTIONS]: write load on the engine until done or
# the engine goes away; OUT records the acknowledged writes.
sys_load() {
  python3 "$SYS_LOAD" write --port "$TIERED_ENGINE_PORT" --prefix "$(basename "$1" .json)" \
    --seconds "${2:-5}" --connections "${3:-4}" --out "$1"
}

# sys_check OUT...: every acknowledged write in OUT... reads back.
sys_check() { python3 "$SYS_LOAD" check --port "$TIERED_ENGINE_PORT" "$@"; }

# Files of a kind in a directory (non-recursive): sys_count DIR GLOB.
sys_count() { find "$1" -maxdepth 1 -name "$2" 2>/dev/null | wc -l; }

# sys_busybox_image: SYS_BUSYBOX, a FROM-scratch image with Debian's static
# busybox (no pull), running as 1000:1000; removed on exit.
sys_busybox_image() {
  SYS_BUSYBOX="$SYS_ID-busybox"
  on_exit docker image rm -f "$SYS_BUSYBOX"
  busybox_image "$SYS_BUSYBOX" "$SYS_WORK/busybox" 1000:1000
}
