#!/usr/bin/env bash
# The README's main command, end to end: scripts/up.sh (deps, build, plugin
# from the local registry, images, compose up) prints how to reach the
# engine, and that works, as do the three metrics endpoints; scripts/down.sh
# stops everything and keeps the data; scripts/up.sh again keeps the plugin
# and brings the same data back. Every name, port and directory is this
# test's own (the scripts read them from the environment).
set -euo pipefail
source "$(dirname "$0")/system_lib.sh"

sys_init up
export TIERED_PLUGIN="$SYS_ID" SYS_PLUGIN="$SYS_ID"
export TIERED_PRIMARY_SOURCE="$SYS_PRIMARY" TIERED_ARCHIVE_SOURCE="$SYS_ARCHIVE"
export TIERED_IMAGE_TAG="$SYS_ID" COMPOSE_PROJECT_NAME="$SYS_ID" TIERED_VOLUME="$SYS_ID-data"
export TIERED_ENGINE_PORT TIERED_ENGINE_METRICS_PORT TIERED_SNAPSHOTTER_METRICS_PORT TIERED_PLUGIN_METRICS_PORT
TIERED_ENGINE_PORT=$(sys_free_port)
TIERED_ENGINE_METRICS_PORT=$(sys_free_port)
TIERED_SNAPSHOTTER_METRICS_PORT=$(sys_free_port)
TIERED_PLUGIN_METRICS_PORT=$(sys_free_port)
export TIERED_HEALTH_INTERVAL=1s TIERED_DRIVER="$SYS_ID"

on_exit sys_remove_plugin "$SYS_ID"
on_exit docker image rm -f "tiered-engine:$SYS_ID" "tiered-snapshotter:$SYS_ID"
on_exit docker volume rm -f "$TIERED_VOLUME"
on_exit sys_compose down -v --timeout 10
on_exit sys_diagnostics

"$TIERED_ROOT/scripts/up.sh" >"$SYS_WORK/up1.out"
cat "$SYS_WORK/up1.out" >&2
grep -q "redis-cli -p $TIERED_ENGINE_PORT\$" "$SYS_WORK/up1.out" || die "up.sh did not print how to reach the engine"
[ "$(redis-cli -p "$TIERED_ENGINE_PORT" set greeting hello)" = OK ] || die "SET through the printed port failed"
sys_load "$SYS_WORK/load1.json" 3
for port in "$TIERED_ENGINE_METRICS_PORT" "$TIERED_SNAPSHOTTER_METRICS_PORT" "$TIERED_PLUGIN_METRICS_PORT"; do
  grep -q "http://127.0.0.1:$port/metrics" "$SYS_WORK/up1.out" || die "up.sh did not print the metrics URL on port $port"
  metrics=$(curl -fsS "http://127.0.0.1:$port/metrics") || die "no metrics on 127.0.0.1:$port"
  grep -q '^tiered_' <<<"$metrics" || die "no tiered_ metrics on 127.0.0.1:$port"
done

"$TIERED_ROOT/scripts/down.sh"
[ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$SYS_ID")" ] || die "down.sh left containers"
docker volume inspect "$TIERED_VOLUME" >/dev/null || die "down.sh removed the volume"
[ -n "$(ls -A "$SYS_PRIMARY/$TIERED_VOLUME/data")" ] || die "down.sh emptied the primary tier"

"$TIERED_ROOT/scripts/up.sh" >"$SYS_WORK/up2.out"
[ "$(redis-cli -p "$TIERED_ENGINE_PORT" get greeting)" = hello ] || die "data gone after down.sh + up.sh"
sys_check "$SYS_WORK/load1.json"

SYS_OK=1
log "up.sh / down.sh: ok"
