#!/usr/bin/env bash
# The managed plugin on the real Docker daemon: create it from config.json +
# rootfs/ with the tier sources in temp dirs, create volumes, run FROM-scratch
# busybox containers that write into the volume and its archived/, check on
# the host which tier each file landed in, `docker cp` into a running
# container (the same mount ID twice), two containers sharing a volume,
# implicit creation (null Opts), bad options, then remove and re-create the
# plugin and find the volumes and their data still there.
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"
ensure_docker
[ -x "$TIERED_BIN/tiered-plugin" ] || die "missing $TIERED_BIN/tiered-plugin (run scripts/build.sh)"

plugin=$(uniq_name plugin)
image=$(uniq_name bb):e2e
vol=$(uniq_name vol)
auto=$(uniq_name auto)
backup=$(uniq_name backup)
ctr=$(uniq_name ctr)
vf=$(uniq_name vf)
tmp=$(mktemp -d /tmp/tiered-e2e-plugin.XXXXXX)
primary=$tmp/primary archive=$tmp/archive
# Cleanup runs last-registered first: containers, volumes, plugin, image, dirs.
on_exit rm -rf "$tmp"
on_exit docker rmi -f "$image"
on_exit docker plugin rm -f "$plugin"
on_exit docker volume rm -f "$vol" "$auto" "$backup"
on_exit docker rm -f "$ctr"
on_exit docker rm -fv "$vf"

log "building $image FROM scratch with busybox-static"
busybox_image "$image" "$tmp/image"

# A free loopback port for the plugin's metrics (the plugin uses the host network).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
scrape() {
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$port/metrics"
}
metric() { scrape | awk -v m="$1" '$1 == m { print $2 }'; }

log "creating plugin $plugin (primary=$primary archive=$archive metrics=127.0.0.1:$port)"
"$TIERED_ROOT/scripts/plugin.sh" install --name "$plugin" --primary-source "$primary" --archive-source "$archive" \
  --metrics-listen "127.0.0.1:$port"
wait_for 10 scrape || fail "metrics endpoint on 127.0.0.1:$port"
expect_eq "$(metric tiered_plugin_volumes)" 0 "volumes metric before any volume"
expect_eq "$(docker plugin inspect "$plugin" --format '{{.Enabled}}')" true "plugin enabled"
# Settings can only change on a disabled plugin.
if docker plugin set "$plugin" TIERED_LOG_LEVEL=debug 2>/dev/null; then fail "set on an enabled plugin succeeded"; fi

log "bad option is refused with the accepted list"
if out=$(docker volume create -d "$plugin" -o size=1G "$(uniq_name bad)" 2>&1); then fail "unknown option accepted"; fi
[[ "$out" == *"accepted options: uid, gid, mode, archive-of, keep-archive"* ]] || fail "unclear error: $out"
if docker volume create -d "$plugin" "bad..name" >/dev/null 2>&1; then fail "bad name accepted"; fi

log "volume $vol"
docker volume create -d "$plugin" -o mode=0777 -o uid=1000 "$vol" >/dev/null
expect_eq "$(status "$vol" active_mounts)" 0 "active mounts after create"
expect_eq "$(status "$vol" archive_path)" "/mnt/archive/$vol" "archive path"
# Docker renders Status numbers as floats (1.2e+10).
for k in primary_free_bytes primary_total_bytes archive_free_bytes archive_total_bytes; do
  awk -v v="$(status "$vol" "$k")" 'BEGIN { exit !(v + 0 > 0) }' || fail "$k: $(status "$vol" "$k")"
done
[ "$(stat -c %u:%a "$primary/$vol/data")" = "1000:777" ] || fail "owner/mode of the volume root: $(stat -c %u:%a "$primary/$vol/data")"
[ -d "$archive/$vol" ] || fail "archive dir not created"

log "a container writes into the volume and its archived/"
docker run --rm -v "$vol:/data" "$image" sh -c \
  'echo hot >/data/hot && mkdir /data/archived/logs && echo cold >/data/archived/logs/cold && sync'
expect_eq "$(cat "$primary/$vol/data/hot")" hot "primary file on the host"
expect_eq "$(cat "$archive/$vol/logs/cold")" cold "archived file on the host's archive source"
[ ! -e "$primary/$vol/data/archived/logs" ] || fail "archived file landed on the primary tier"
[ ! -e "$archive/$vol/hot" ] || fail "primary file landed on the archive tier"
expect_eq "$(status "$vol" active_mounts)" 0 "active mounts after the container ended"
expect_eq "$(metric tiered_plugin_volumes)" 1 "volumes metric"
[ "$(metric 'tiered_plugin_requests_total{endpoint="mount"}')" -ge 1 ] || fail "mount requests metric"

log "docker cp into a running container, and a second container sharing the volume"
docker run -d --name "$ctr" -v "$vol:/data" "$image" sleep 300 >/dev/null
expect_eq "$(status "$vol" active_mounts)" 1 "active mounts with one container"
echo copied >"$tmp/copied"
docker cp "$tmp/copied" "$ctr:/data/archived/copied"
expect_eq "$(cat "$archive/$vol/copied")" copied "docker cp into archived/"
expect_eq "$(status "$vol" active_mounts)" 1 "active mounts after docker cp (same ID twice)"
expect_eq "$(docker exec "$ctr" /bin/busybox cat /data/archived/copied)" copied "archived/ still mounted in the running container"
expect_eq "$(docker run --rm -v "$vol:/data" "$image" cat /data/archived/logs/cold)" cold "second container"
expect_eq "$(docker exec "$ctr" /bin/busybox cat /data/archived/logs/cold)" cold "first container still sees archived/ after the second left"
if docker volume rm "$vol" >/dev/null 2>&1; then fail "removed a volume in use"; fi
docker rm -f "$ctr" >/dev/null
expect_eq "$(status "$vol" active_mounts)" 0 "active mounts after the container was removed"
expect_eq "$(docker volume inspect "$vol" --format '{{.Mountpoint}}')" "" "mountpoint after the last unmount"

log "implicit creation (null Opts) with --volume-driver, and archive-of"
docker run --rm -v "$auto:/x" --volume-driver "$plugin" "$image" sh -c 'echo a >/x/archived/a'
expect_eq "$(cat "$archive/$auto/a")" a "implicitly created volume"
docker volume create -d "$plugin" -o archive-of="$vol" "$backup" >/dev/null
expect_eq "$(docker run --rm -v "$backup:/backup:ro" "$image" cat /backup/logs/cold)" cold "archive-of sees the archive tier"
expect_eq "$(docker run --rm -v "$backup:/backup:ro" "$image" sh -c 'test -e /backup/hot && echo yes || echo no')" no "archive-of hides the primary tier"

log "anonymous volumes: removed with --rm and with rm -v, shared by --volumes-from"
count() { find "$1" -mindepth 1 -maxdepth 1 ! -name '.*' | wc -l; }
n_primary=$(count "$primary") n_archive=$(count "$archive")
docker run --rm -v /anon --volume-driver "$plugin" "$image" sh -c 'echo x >/anon/archived/x'
expect_eq "$(count "$primary"):$(count "$archive")" "$n_primary:$n_archive" "tiers after --rm of an anonymous volume"
docker run --name "$vf" -v /foo --volume-driver "$plugin" "$image" sh -c 'echo vf >/foo/archived/vf'
expect_eq "$(docker run --rm --volumes-from "$vf" "$image" cat /foo/archived/vf)" vf "--volumes-from"
docker rm -v "$vf" >/dev/null
expect_eq "$(count "$primary"):$(count "$archive")" "$n_primary:$n_archive" "tiers after rm -v"

log "a failed mount fails the container and holds no reference"
rm -rf "${archive:?}/$auto"
touch "$archive/$auto"
if out=$(docker run --rm -v "$auto:/x" "$image" true 2>&1); then fail "container started on a failed mount"; fi
[[ "$out" == *"$auto"* ]] || fail "mount error does not name the volume: $out"
expect_eq "$(status "$auto" active_mounts)" 0 "active mounts after a failed mount"
rm -f "$archive/$auto"
expect_eq "$(docker run --rm -v "$auto:/x" "$image" sh -c 'echo b >/x/archived/b && cat /x/archived/b')" b "mount after the fix"
expect_eq "$(cat "$archive/$auto/b")" b "recreated archive dir"

log "remove and re-create the plugin: volumes and data survive"
docker plugin rm -f "$plugin" >/dev/null
[ -f "$primary/$vol/data/hot" ] || fail "primary data lost with the plugin"
"$TIERED_ROOT/scripts/plugin.sh" install --name "$plugin" --primary-source "$primary" --archive-source "$archive"
docker volume ls -q | grep -qx "$vol" || fail "volume $vol not listed after re-creating the plugin"
expect_eq "$(docker volume inspect "$vol" --format '{{.Driver}}')" "$plugin:latest" "driver of $vol"
expect_eq "$(docker run --rm -v "$vol:/data" "$image" sh -c 'cat /data/hot /data/archived/logs/cold /data/archived/copied' | tr '\n' ' ')" \
  "hot cold copied " "data after re-creating the plugin"

log "removing the volumes deletes both tiers"
docker volume rm "$backup" "$auto" "$vol" >/dev/null
[ ! -e "$primary/$vol" ] && [ ! -e "$archive/$vol" ] || fail "volume data left after docker volume rm"
log "plugin e2e passed"
