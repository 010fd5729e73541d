#!/usr/bin/env bash
# The same compose file deployed as a Swarm stack on this single node:
#   `docker swarm init` (only when the node is in no swarm; left again at the
#   end only then), `docker stack deploy -c deploy/compose.yaml -c
#   deploy/compose.swarm.yaml` with the tiered volume, the engine reachable
#   and writing, the snapshotter archiving, `docker stack rm`; afterwards the
#   data is still on the tiers: a plain container of the engine image on the
#   same volume serves every acknowledged write.
set -euo pipefail
source "$(dirname "$0")/system_lib.sh"

sys_init swarm
sys_install_plugin
sys_images
sys_compose_env

state=$(docker info -f '{{.Swarm.LocalNodeState}}')
case "$state" in
  inactive)
    had_gwbridge=0
    docker network inspect docker_gwbridge >/dev/null 2>&1 && had_gwbridge=1
    log "docker swarm init"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    leave_swarm() {
      docker swarm leave --force >/dev/null 2>&1 || true
      # swarm init made docker_gwbridge; leaving does not remove it.
      [ "$had_gwbridge" = 1 ] || docker network rm docker_gwbridge >/dev/null 2>&1 || true
    }
    on_exit leave_swarm
    ;;
  active)
    [ "$(docker info -f '{{.Swarm.ControlAvailable}}')" = true ] || die "this node is a swarm worker; stacks need a manager"
    log "node already in a swarm: using it, leaving it as it is"
    ;;
  *) die "swarm state '$state': neither in a swarm nor out of one" ;;
esac

stack="$SYS_ID"
stack_gone() { [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ]; }
remove_stack() {
  docker stack rm "$stack" >/dev/null 2>&1 || true
  wait_for 60 stack_gone || true
}
# The stack leaves its volume behind (as compose down does without -v).
on_exit docker volume rm -f "$TIERED_VOLUME"
on_exit remove_stack
log "docker stack deploy $stack"
# (It warns that it ignores compose.yaml's 127.0.0.1: compose.swarm.yaml
# publishes in host mode instead.)
out=$(docker stack deploy --resolve-image never \
  -c "$TIERED_ROOT/deploy/compose.yaml" -c "$TIERED_ROOT/deploy/compose.swarm.yaml" "$stack" 2>&1) \
  || die "docker stack deploy failed: $out"
sys_wait_engine "$TIERED_ENGINE_PORT" 90

sys_load "$SYS_WORK/load1.json" 5
sys_check "$SYS_WORK/load1.json"
docker volume inspect -f '{{.Driver}}' "$TIERED_VOLUME" | grep -q "^$SYS_PLUGIN" \
  || die "the stack's volume is not $TIERED_VOLUME on the tiered plugin"
archive_has_logs() { [ "$(sys_count "$SYS_ARCHIVED/logs" 'cmdlog-*.log')" -ge 1 ]; }
wait_for 60 archive_has_logs || die "the snapshotter service archived nothing"

log "docker stack rm $stack"
docker stack rm "$stack" >/dev/null
wait_for 60 stack_gone || die "stack containers still there 60 s after docker stack rm"
if [ "$state" = inactive ]; then
  leave_swarm
  [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" = inactive ] || die "swarm not left"
fi

# The data stayed on the tiers: the volume is still there, its files are on
# the host, and an engine container started on it (outside any swarm) has
# every acknowledged write.
[ -n "$(find "$SYS_DATA" -maxdepth 1 -name 'snapshot-*.snap')" ] || die "no snapshot left on the primary tier"
archive_has_logs || die "archive tier emptied"
name="$SYS_ID-engine"
on_exit docker rm -f "$name"
docker run -d --name "$name" -v "$TIERED_VOLUME:/app/persistence" \
  -p "127.0.0.1:$TIERED_ENGINE_PORT:6379" "$SYS_ENGINE_IMAGE" >/dev/null
sys_wait_engine "$TIERED_ENGINE_PORT"
sys_check "$SYS_WORK/load1.json"
docker stop -t 30 "$name" >/dev/null

SYS_OK=1
log "swarm stack: ok"
