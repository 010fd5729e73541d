#!/usr/bin/env bash
# Sets up and starts the whole deployment on a machine with Docker (or where
# Docker can be installed from Debian's packages):
#
#   0. prerequisites        checked first, before anything is installed or
#                           created (Docker, compose, Rust >= the workspace's
#                           rust-version, free ports, free space on each
#                           tier); any failure stops it here, with the fix
#   1. scripts/deps.sh      what running it needs: Debian packages (Docker if
#                           no daemon answers, docker-compose, docker-registry,
#                           redis-tools, …); not the tests' packages
#   2. scripts/build.sh     the three static binaries into build/bin/
#   3. the plugin           installed like users install it, from a local
#                           registry (scripts/registry.sh install), as
#                           `tiered`, unless a plugin of that name exists
#   4. scripts/images.sh    tiered-engine:latest, tiered-snapshotter:latest
#   5. compose up -d        deploy/compose.yaml, project `tiered`
#
# then waits until the engine reports healthy and prints how to reach it.
# Running it again is safe: it rebuilds, keeps the plugin and the data, and
# recreates only containers whose image changed. It never stops, disables or
# reconfigures a service of the host: a port in use is a failed check.
#
#   scripts/up.sh            check, then set up and start
#   scripts/up.sh --check    only print the checks (changes nothing; exit 1
#                            when one fails)
#
# Environment (all optional):
#   TIERED_PLUGIN=tiered                       plugin (= volume driver) name
#   TIERED_PRIMARY_SOURCE=/var/lib/tiered/primary   fast tier, on first install
#   TIERED_ARCHIVE_SOURCE=/var/lib/tiered/archive   slow tier, on first install
#   TIERED_PLUGIN_METRICS_PORT=9123            plugin's /metrics on 127.0.0.1, on first install
#   TIERED_IMAGE_TAG=latest                    tag of the two images
#   TIERED_MIN_FREE_MB=1024                    free space wanted on each tier
#   COMPOSE_PROJECT_NAME=tiered
#   TIERED_VOLUME, TIERED_ENGINE_PORT, …       see deploy/compose.yaml
#
# scripts/down.sh stops it again without touching the data; scripts/down.sh
# --purge also removes the plugin, the images and the volume (see
# docs/operations.md).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/checks.sh"
cd "$TIERED_ROOT"
check_only=0
for a in "$@"; do
  case "$a" in
    --check) check_only=1 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $a (accepted: --check; settings come from the environment, see --help)" ;;
  esac
done

plugin=${TIERED_PLUGIN:-tiered}
primary=${TIERED_PRIMARY_SOURCE:-/var/lib/tiered/primary}
archive=${TIERED_ARCHIVE_SOURCE:-/var/lib/tiered/archive}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-tiered}
export TIERED_DRIVER=$plugin
tag=${TIERED_IMAGE_TAG:-latest}
export TIERED_ENGINE_IMAGE="tiered-engine:$tag" TIERED_SNAPSHOTTER_IMAGE="tiered-snapshotter:$tag"
engine_port=${TIERED_ENGINE_PORT:-6379}
volume=${TIERED_VOLUME:-tiered-persistence}
min_free_mb=${TIERED_MIN_FREE_MB:-1024}
[[ "$min_free_mb" =~ ^[0-9]+$ ]] || die "TIERED_MIN_FREE_MB must be a number of MiB, got '$min_free_mb'"

# --- 0. prerequisites: look, change nothing --------------------------------------
plugin_installed=0
if docker info >/dev/null 2>&1 && docker plugin inspect "$plugin" >/dev/null 2>&1; then
  plugin_installed=1
  # The tiers of the installed plugin, not the environment's (kept on reruns).
  while IFS='=' read -r name src; do
    case "$name" in
      primary) primary=$src ;;
      archive) archive=$src ;;
    esac
  done < <(docker plugin inspect "$plugin" -f '{{range .Settings.Mounts}}{{.Name}}={{.Source}}{{"\n"}}{{end}}')
fi

echo "scripts/up.sh: checking prerequisites (nothing is installed or created yet)"
check_root
check_docker
check_debian_pkgs "runtime packages" "${TIERED_RUNTIME_PKGS[@]}" "${TIERED_RUNTIME_NOSTART_PKGS[@]}"
check_rust
check_port "$engine_port" TIERED_ENGINE_PORT "engine" "$COMPOSE_PROJECT_NAME"
check_port "${TIERED_ENGINE_METRICS_PORT:-9121}" TIERED_ENGINE_METRICS_PORT "engine metrics" "$COMPOSE_PROJECT_NAME"
check_port "${TIERED_SNAPSHOTTER_METRICS_PORT:-9122}" TIERED_SNAPSHOTTER_METRICS_PORT "snapshotter metrics" "$COMPOSE_PROJECT_NAME"
if [ $plugin_installed = 1 ]; then
  check_ok "plugin $plugin installed; kept (its metrics listener is its own)"
else
  check_port "${TIERED_PLUGIN_METRICS_PORT:-9123}" TIERED_PLUGIN_METRICS_PORT "plugin metrics" "$COMPOSE_PROJECT_NAME"
  check_todo "plugin $plugin: will be installed from a local registry"
fi
check_space "$primary" "primary tier" "$min_free_mb"
check_space "$archive" "archive tier" "$min_free_mb"
if docker info >/dev/null 2>&1 && vdriver=$(docker volume inspect -f '{{.Driver}}' "$volume" 2>/dev/null); then
  if [ "$vdriver" = "$plugin" ] || [ "$vdriver" = "$plugin:latest" ]; then
    check_ok "volume $volume exists on $vdriver; its data is kept"
  else
    check_fail "volume $volume exists with driver $vdriver, not $plugin" \
      "choose another name (TIERED_VOLUME=...) or another plugin name (TIERED_PLUGIN=$vdriver)"
  fi
fi
if [ "$CHECK_FAILED" -gt 0 ]; then
  [ $check_only = 1 ] && die "$CHECK_FAILED check(s) failed (scripts/up.sh --check changes nothing)"
  die "$CHECK_FAILED check(s) failed; nothing was installed or created"
fi
if [ $check_only = 1 ]; then
  echo "all checks passed; scripts/up.sh would do the 'todo' lines above, then build and start"
  exit 0
fi

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
  uninstall:             scripts/down.sh --purge   (see docs/operations.md; tier data is kept)
  restore into a volume: scripts/restore.sh --from $volume --into NEW_VOLUME [--to-seq N | --to-time T]
EOF
