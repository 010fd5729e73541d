#!/usr/bin/env bash
# Runs compose on the deployment (deploy/compose.yaml) with the project name
# $COMPOSE_PROJECT_NAME (default `tiered`), through `docker compose` (v2)
# where it exists, else Debian's `docker-compose` (v1):
#
#   scripts/compose.sh ps
#   scripts/compose.sh logs -f engine
#   scripts/compose.sh exec engine /usr/local/bin/tiered-engine verify --dir /app/persistence
#
# Any `${VAR}` of compose.yaml (TIERED_ENGINE_PORT, TIERED_VOLUME, …) can be
# set in the environment.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

project=${COMPOSE_PROJECT_NAME:-tiered}
# Docker names an installed plugin NAME:latest, and so the driver of every
# volume made with it. docker-compose compares that name with the compose
# file's `driver:` before reusing a volume, and refuses to start when they
# differ ("a volume with the same name uses a different driver"): the second
# `up` after a `down` would fail. So the driver always carries its tag.
if [ -n "${TIERED_DRIVER:-}" ] && [[ "${TIERED_DRIVER##*/}" != *:* ]]; then
  export TIERED_DRIVER="$TIERED_DRIVER:latest"
fi
file=${TIERED_COMPOSE_FILE:-$TIERED_ROOT/deploy/compose.yaml}
if docker compose version >/dev/null 2>&1; then
  exec docker compose -p "$project" -f "$file" "$@"
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose -p "$project" -f "$file" "$@"
else
  die "neither 'docker compose' nor 'docker-compose' found: run scripts/deps.sh"
fi
