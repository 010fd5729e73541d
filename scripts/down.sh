#!/usr/bin/env bash
# Stops the deployment that scripts/up.sh started: `compose down` removes the
# engine and snapshotter containers and their network. The volume, its data on
# both tiers, the plugin and the images stay: scripts/up.sh brings the same
# data back.
#
# Environment: COMPOSE_PROJECT_NAME (default `tiered`), TIERED_VOLUME, … as
# for scripts/up.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ $# = 0 ] || die "scripts/down.sh takes no arguments"
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-tiered}
export TIERED_DRIVER=${TIERED_PLUGIN:-tiered}
ensure_docker
# Never `down -v`: that would remove the volume, and with it the data.
"$TIERED_ROOT/scripts/compose.sh" down --timeout 60
log "stopped; volume ${TIERED_VOLUME:-tiered-persistence} and its data are kept (scripts/up.sh starts it again)"
