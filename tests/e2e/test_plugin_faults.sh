#!/usr/bin/env bash
# Faults a storage operator meets (issue 11) on the real daemon, with each
# tier "disk" a loop-mounted ext4 file system over the tier source, and the
# managed plugin created from config.json + rootfs/:
#  1. the primary disk fails to mount (unmounted while the plugin is
#     disabled; its mount point is an empty directory on the root disk):
#     the plugin starts, still lists the volume (no `local` volume takes the
#     name), shows primary_tier=missing, refuses to run it, to create
#     volumes and to remove it, naming the tier and its source; nothing is
#     written on the empty mount point; once the disk is back, everything is
#     where it was;
#  2. the same with the archive disk;
#  3. EBUSY on Unmount: a host process keeps its cwd inside the volume's
#     archived/ mount when the container exits; the plugin detaches the
#     mount lazily, drops the reference, counts it; the volume is removable
#     and no mount is left.
# Holds the shared Docker lock (it does not restart dockerd).
set -euo pipefail
if [ -z "${TIERED_DOCKER_LOCK_HELD:-}" ]; then
  exec env TIERED_DOCKER_LOCK_HELD=shared flock -s -o /tmp/tiered-docker.lock bash "$0" "$@"
fi
# shellcheck source=tests/e2e/faults_lib.sh
source "$(dirname "$0")/faults_lib.sh"
ensure_docker
[ -x "$TIERED_BIN/tiered-plugin" ] || die "missing $TIERED_BIN/tiered-plugin (run scripts/build.sh)"
for t in mkfs.ext4 mount umount curl; do command -v "$t" >/dev/null || die "missing $t"; done

plugin=$(uniq_name plugin)
image=$(uniq_name bb):e2e
vol=$(uniq_name vol)
new=$(uniq_name new)
ctr=$(uniq_name ctr)
tmp=$(mktemp -d /tmp/tiered-e2e-faults.XXXXXX)
primary=$tmp/primary archive=$tmp/archive
docker_root=$(docker info --format '{{.DockerRootDir}}')
busy_pid=""

# Cleanup, last registered first: the busy process, containers, volumes,
# the plugin, the image, the disks, the temp dir.
on_exit rm -rf "$tmp"
on_exit umount "$archive"
on_exit umount "$primary"
on_exit docker rmi -f "$image"
on_exit docker plugin rm -f "$plugin"
on_exit docker volume rm -f "$vol" "$new"
on_exit docker rm -f "$ctr"
# shellcheck disable=SC2016 # expanded when the cleanup runs
on_exit '[ -z "$busy_pid" ] || kill "$busy_pid"'

# --- helpers ------------------------------------------------------------------

# make_disk NAME: a 64 MiB ext4 image (with its lost+found).
make_disk() { truncate -s 64M "$tmp/$1.img" && mkfs.ext4 -q -F "$tmp/$1.img"; }
# plug NAME DIR: mounts the disk over the tier source (the loop device is
# freed by the umount: mount -o loop sets autoclear).
plug() { mount -o loop "$tmp/$1.img" "$2"; }
plugin_id() { docker plugin inspect "$plugin" --format '{{.ID}}'; }
# The plugin's socket on the host, for GET /metrics.
scrape() { curl -sf --unix-socket "/run/docker/plugins/$(plugin_id)/tiered.sock" http://plugin/metrics; }
metric() { scrape | awk -v m="$1" '$1 == m { print $2 }'; }
# The volume's mounts in the host's mount table (the propagated mount).
host_mounts() {
  awk -v p="$docker_root/plugins/$(plugin_id)/propagated-mount/$vol" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo
}
restart_plugin() { docker plugin disable -f "$plugin" >/dev/null && "$@" && docker plugin enable "$plugin" >/dev/null; }
# expect_refused WHAT TIER DIR CMD...: CMD fails with an error naming the tier
# and its source.
expect_refused() {
  local what=$1 tier=$2 dir=$3 out; shift 3
  if out=$("$@" 2>&1); then fail "$what succeeded with the $tier disk missing"; fi
  [[ "$out" == *"$tier tier at $dir"* ]] || fail "$what: error does not name the $tier tier and $dir: $out"
}
no_local_volume() {
  expect_eq "$(docker volume inspect "$vol" --format '{{.Driver}}')" "$plugin:latest" "driver of $vol (no local volume took the name)"
  docker volume ls -q --filter driver=local | grep -qx "$vol" && fail "a local volume $vol exists"
  return 0
}

# --- set-up -----------------------------------------------------------------

busybox_image "$image" "$tmp/image"
mkdir -p "$primary" "$archive"
make_disk p && make_disk a
plug p "$primary" && plug a "$archive"
"$TIERED_ROOT/scripts/plugin.sh" install --name "$plugin" --primary-source "$primary" --archive-source "$archive"
if ! [ -f "$primary/.tiered-tier" ] || ! [ -f "$archive/.tiered-tier" ]; then fail "first run on two empty disks did not write both identity markers"; fi
docker volume create -d "$plugin" "$vol" >/dev/null
docker run --rm -v "$vol:/data" "$image" sh -c 'echo hot >/data/hot && echo cold >/data/archived/cold'
expect_eq "$(status "$vol" primary_tier):$(status "$vol" archive_tier)" "ok:ok" "tier states"
expect_eq "$(metric 'tiered_plugin_tier_state{tier="primary",state="ok"}')" 1 "tier state metric"

# --- 1. the primary disk fails to mount -----------------------------------------

log "primary disk not mounted when the plugin starts"
restart_plugin umount "$primary"
docker volume ls -q --filter "driver=$plugin:latest" | grep -qx "$vol" || fail "$vol not listed with the primary disk missing"
expect_eq "$(status "$vol" primary_tier)" missing "primary tier state in Status"
expect_eq "$(metric 'tiered_plugin_tier_state{tier="primary",state="missing"}')" 1 "primary missing in metrics"
expect_refused "docker run" primary "$primary" docker run --rm -v "$vol:/data" "$image" true
# What compose does: must create nothing.
docker volume create -d "$plugin" "$vol" >/dev/null 2>&1 || true
expect_refused "docker volume create $new" primary "$primary" docker volume create -d "$plugin" "$new"
expect_refused "docker volume rm" primary "$primary" docker volume rm "$vol"
no_local_volume
expect_eq "$(ls -A "$primary")" "" "the empty mount point of the primary disk (nothing written)"
expect_eq "$(cat "$archive/$vol/cold")" cold "archive data kept"
log "primary disk back"
restart_plugin plug p "$primary"
expect_eq "$(docker run --rm -v "$vol:/data" "$image" cat /data/hot /data/archived/cold | tr '\n' ' ')" "hot cold " "both tiers after the disk is back"

# --- 2. the archive disk fails to mount -----------------------------------------

log "archive disk not mounted when the plugin starts"
restart_plugin umount "$archive"
docker volume ls -q --filter "driver=$plugin:latest" | grep -qx "$vol" || fail "$vol not listed with the archive disk missing"
expect_eq "$(status "$vol" archive_tier)" missing "archive tier state in Status"
expect_refused "docker run" archive "$archive" docker run --rm -v "$vol:/data" "$image" sh -c 'echo lost >/data/archived/lost'
expect_refused "docker volume create $new" archive "$archive" docker volume create -d "$plugin" "$new"
expect_refused "docker volume rm" archive "$archive" docker volume rm "$vol"
no_local_volume
expect_eq "$(ls -A "$archive")" "" "the empty mount point of the archive disk (nothing written)"
log "archive disk back"
restart_plugin plug a "$archive"
expect_eq "$(docker run --rm -v "$vol:/data" "$image" cat /data/archived/cold)" cold "archive after the disk is back"

# --- 3. EBUSY on Unmount ----------------------------------------------------------

log "a host process keeps its cwd in archived/ when the container exits"
docker run -d --name "$ctr" -v "$vol:/data" "$image" sleep 300 >/dev/null
expect_eq "$(status "$vol" active_mounts)" 1 "active mounts with the container"
pm="$docker_root/plugins/$(plugin_id)/propagated-mount/$vol/archived"
(cd "$pm" && exec sleep 300) &
busy_pid=$!
wait_for 10 sh -c "[ \"\$(readlink /proc/$busy_pid/cwd)\" = '$pm' ]" || fail "busy process not in $pm"
lazy_before=$(metric tiered_plugin_lazy_unmounts_total)
docker rm -f "$ctr" >/dev/null
expect_eq "$(status "$vol" active_mounts)" 0 "active mounts after the container left (busy mount)"
expect_eq "$(metric tiered_plugin_lazy_unmounts_total)" "$((lazy_before + 1))" "lazy unmounts counted"
expect_eq "$(host_mounts)" "" "host mounts of $vol after the lazy detach"
docker volume rm "$vol" >/dev/null || fail "docker volume rm after a busy unmount"
kill "$busy_pid" && busy_pid=""
if [ -e "$primary/$vol" ] || [ -e "$archive/$vol" ]; then fail "volume data left after docker volume rm"; fi
log "plugin faults e2e passed"
