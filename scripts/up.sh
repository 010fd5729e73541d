#!/usr/bin/env bash
# Sets up and starts the whole deployment on a machine with Docker (or where
# Docker can be installed from Debian's packages):
#
#   1. scripts/deps.sh      Debian packages (Docker if no daemon answers,
#                           docker-compose, docker-registry, redis-tools, …)
#   2. scripts/build.sh     the three static binaries into build/bin/
#   3. the plugin           installed like users install it, from a local
#                           registry (scripts/registry.sh install), as
#                           `tiered`, unless a plugin of that name exists
#   4. scripts/images.sh    tiered-engine:latest, tiered-snapshotter:latest
#   5. compose up -d        deploy/compose.yaml, project `tiered`
#
# then waits until the engine reports healthy and prints how to reach it.
# Running it again is safe: it rebuilds, keeps the plugin and the data, and
# recreates only containers whose image changed.
#
# Environment (all optional):
#   TIERED_PLUGIN=tiered                       plugin (= volume driver) name
#   TIERED_PRIMARY_SOURCE=/var/lib/tiered/primary   fast tier, on first install
#   TIERED_ARCHIVE_SOURCE=/var/lib/tiered/archive   slow tier, on first install
#   TIERED_PLUGIN_METRICS_PORT=9123            plugin's /metrics on 127.0.0.1, on first install
#   TIERED_IMAGE_TAG=latest                    tag of the two images
#   COMPOSE_PROJECT_NAME=tiered
#   TIERED_VOLUME, TIERED_ENGINE_PORT, …       see deploy/compose.yaml
#
# scripts/down.sh stops it again without touching the data.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"
[ $# = 0 ] || die "scripts/up.sh takes no arguments (settings come from the environment; see the script's header)"

plugin=${TIERED_PLUGIN:-tiered}
primary=${TIERED_PRIMARY_SOURCE:-/var/lib/tiered/primary}
archive=${TIERED_ARCHIVE_SOURCE:-/var/lib/tiered/archive}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-tiered}
export TIERED_DRIVER=$plugin
tag=${TIERED_IMAGE_TAG:-latest}
export TIERED_ENGINE_IMAGE="tiered-engine:$tag" TIERED_SNAPSHOTTER_IMAGE="tiered-snapshotter:$tag"
engine_port=${TIERED_ENGINE_PORT:-6379}

scripts/deps.sh
scripts/build.sh

if docker plugin inspect "$plugin" >/dev/null 2>&1; then
  if [ "$(docker plugin inspect -f '{{.Enabled}}' "$plugin")" != true ]; then
    log "enabling plugin $plugin"
    docker plugin enable "$plugin" >/dev/null
  fi
  log "plugin $plugin is installed; kept (to move it to this build: scripts/registry.sh upgrade --alias $plugin)"
else
  scripts/registry.sh install --alias "$plugin" --primary "$primary" --archive "$archive" \
    --set "TIERED_METRICS_LISTEN=127.0.0.1:${TIERED_PLUGIN_METRICS_PORT:-9123}"
fi

scripts/images.sh "$tag"
log "compose up (project $COMPOSE_PROJECT_NAME)"
scripts/compose.sh up -d

engine_container=$(scripts/compose.sh ps -q engine)
[ -n "$engine_container" ] || die "compose started no engine container"
engine_ready() {
  [ "$(redis-cli -p "$engine_port" ping 2>/dev/null)" = PONG ] \
    && [ "$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}healthy{{end}}' "$engine_container")" = healthy ]
}
log "waiting for the engine to answer and report healthy"
if ! wait_for 180 engine_ready; then
  scripts/compose.sh ps >&2 || true
  scripts/compose.sh logs --tail 50 engine >&2 || true
  die "the engine did not become ready within 180 s (logs above)"
fi

# The plugin's metrics listener, as set at install (or later with docker plugin set).
plugin_metrics() {
  local addr
  addr=$(docker plugin inspect "$plugin" -f '{{range .Settings.Env}}{{println .}}{{end}}' | sed -n 's/^TIERED_METRICS_LISTEN=//p')
  if [ -n "$addr" ]; then echo "http://$addr/metrics   plugin"; else echo "(plugin: metrics listener off; see the README's Monitoring section)"; fi
}
volume=${TIERED_VOLUME:-tiered-persistence}
cat <<EOF

tiered is running (compose project $COMPOSE_PROJECT_NAME, volume $volume on plugin $plugin).

  talk to the engine:    redis-cli -p $engine_port
                         redis-cli -p $engine_port set hello world
                         redis-cli -p $engine_port info persistence
  metrics (Prometheus):  http://127.0.0.1:${TIERED_ENGINE_METRICS_PORT:-9121}/metrics   engine
                         http://127.0.0.1:${TIERED_SNAPSHOTTER_METRICS_PORT:-9122}/metrics   snapshotter
                         $(plugin_metrics)
  tiers on this host:    $(docker plugin inspect "$plugin" -f '{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}')
  volume status:         docker volume inspect $volume
  containers and logs:   scripts/compose.sh ps; scripts/compose.sh logs -f
  stop (data is kept):   scripts/down.sh
EOF
