#!/usr/bin/env bash
# Restarting the managed plugin while a container holds one of its volumes,
# and moving a tier with `docker plugin set`: what the daemon really does and
# that the plugin keeps its references straight through it.
#  - `docker plugin disable` is refused while volumes exist; `disable -f`
#    works and the daemon unmounts everything under the propagated mount.
#  - on `enable` the plugin finds the held reference in its metadata and
#    mounts the volume again (once); the container's later Unmount drops it
#    and nothing stays mounted.
#  - `docker plugin set archive.source=...` works only while disabled; after
#    it, archived/ writes land in the new source.
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"
ensure_docker
[ -x "$TIERED_BIN/tiered-plugin" ] || die "missing $TIERED_BIN/tiered-plugin (run scripts/build.sh)"

plugin=$(uniq_name plugin)
image=$(uniq_name bb):e2e
vol=$(uniq_name vol)
ctr=$(uniq_name ctr)
tmp=$(mktemp -d /tmp/tiered-e2e-restart.XXXXXX)
primary=$tmp/primary archive=$tmp/archive
on_exit rm -rf "$tmp"
on_exit docker rmi -f "$image"
on_exit docker plugin rm -f "$plugin"
on_exit docker volume rm -f "$vol"
on_exit docker rm -f "$ctr"

# Host mounts under the plugin's propagated mount for the volume.
host_mounts() {
  local id root
  id=$(docker plugin inspect "$plugin" --format '{{.ID}}')
  root=$(docker info --format '{{.DockerRootDir}}')
  awk -v p="$root/plugins/$id/propagated-mount/$vol" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo | sort -u
}

busybox_image "$image" "$tmp/image"
"$TIERED_ROOT/scripts/plugin.sh" install --name "$plugin" --primary-source "$primary" --archive-source "$archive"
docker volume create -d "$plugin" "$vol" >/dev/null

log "a container holds $vol"
docker run -d --name "$ctr" -v "$vol:/data" "$image" sleep 300 >/dev/null
docker exec "$ctr" /bin/busybox sh -c 'echo before >/data/archived/before'
expect_eq "$(status "$vol" active_mounts)" 1 "active mounts"
[ -n "$(host_mounts)" ] || fail "no host mount for $vol"

log "disable is refused while volumes exist; disable -f stops the plugin"
if docker plugin disable "$plugin" >/dev/null 2>&1; then fail "disable without -f succeeded with volumes"; fi
docker plugin disable -f "$plugin" >/dev/null
expect_eq "$(host_mounts)" "" "host mounts after disable -f (the daemon unmounts the propagated mount)"

log "enable: the held reference is recognised and mounted again, once"
docker plugin enable "$plugin" >/dev/null
expect_eq "$(status "$vol" active_mounts)" 1 "active mounts after the restart"
expect_eq "$(host_mounts | wc -l)" 2 "volume root and archived/ mounted again"
expect_eq "$(cat "$archive/$vol/before")" before "archive data"

log "the container's removal drops the last reference: nothing leaks"
docker rm -f "$ctr" >/dev/null
expect_eq "$(status "$vol" active_mounts)" 0 "active mounts after the container left"
expect_eq "$(host_mounts)" "" "host mounts after the last unmount"

log "moving the archive tier: set only while disabled"
if docker plugin set "$plugin" archive.source="$tmp/archive2" >/dev/null 2>&1; then fail "set on an enabled plugin succeeded"; fi
docker plugin disable -f "$plugin" >/dev/null
cp -a "$archive" "$tmp/archive2"
docker plugin set "$plugin" archive.source="$tmp/archive2"
docker plugin enable "$plugin" >/dev/null
docker run --rm -v "$vol:/data" "$image" sh -c 'cat /data/archived/before && echo after >/data/archived/after' >/dev/null
expect_eq "$(cat "$tmp/archive2/$vol/after")" after "archived/ writes land in the new source"
[ ! -e "$archive/$vol/after" ] || fail "write went to the old archive source"
docker volume rm "$vol" >/dev/null
[ ! -e "$tmp/archive2/$vol" ] && [ ! -e "$primary/$vol" ] || fail "volume data left after docker volume rm"
log "plugin restart e2e passed"
