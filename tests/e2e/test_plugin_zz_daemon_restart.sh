#!/usr/bin/env bash
# Restarting the Docker daemon itself (moby integration-cli's external volume
# driver tests do) with a managed tiered plugin, a volume with options, a
# `--restart unless-stopped` container writing into the volume root and its
# archived/, and a second container holding the same volume:
#  - the daemon stops both containers (each Unmount reaches the plugin) and
#    the plugin; on start it enables the plugin again and restarts the
#    restart-policy container, which mounts the volume again;
#  - `docker volume ls`/`inspect` show the volume with its Status and
#    options; the restarted container sees its files in both tiers and its
#    archived/ writes land in the archive source on the host;
#  - the mount references are consistent: one mount of the volume root and
#    one of archived/ in the plugin, the same host mount table as before the
#    restart, and after both containers stop nothing is mounted and
#    `docker volume rm` succeeds.
#
# This restarts the machine's shared daemon: whatever else runs containers on
# it at the same moment sees them stopped. It runs last among the plugin
# tests (all e2e tests run one after the other). The daemon is restarted the
# way it is managed: systemctl or service when they manage it, otherwise the
# dockerd process is sent SIGTERM and started again, detached (setsid), with
# its recorded command line. Whatever happens, the exit handler makes sure a
# daemon answers again.
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"
ensure_docker
[ -x "$TIERED_BIN/tiered-plugin" ] || die "missing $TIERED_BIN/tiered-plugin (run scripts/build.sh)"

plugin=$(uniq_name plugin)
image=$(uniq_name bb):e2e
vol=$(uniq_name vol)
ctr=$(uniq_name ctr)
peer=$(uniq_name peer)
tmp=$(mktemp -d /tmp/tiered-e2e-dockerd.XXXXXX)
primary=$tmp/primary archive=$tmp/archive
dockerd_log=/var/log/tiered-dockerd.log
# Known before the restart: the mount checks run while the daemon is down.
docker_root=$(docker info --format '{{.DockerRootDir}}')


# --- the daemon ------------------------------------------------------------

# How the daemon is managed, its pid and command line (set by find_dockerd).
dockerd_manager="" dockerd_pid="" dockerd_cmd=() containerd_pid=""

# The pid of the running dockerd: its pid file, else the only dockerd process.
dockerd_running_pid() {
  local pid pids
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    echo "$pid"
    return 0
  fi
  pids=$(pgrep -x dockerd || true)
  [ -n "$pids" ] && [ "$(wc -l <<<"$pids")" = 1 ] || return 1
  echo "$pids"
}

find_dockerd() {
  dockerd_pid=$(dockerd_running_pid) || fail "cannot tell which dockerd serves this machine (no /var/run/docker.pid, not one dockerd process)"
  if [ -d /run/systemd/system ] && systemctl is-active --quiet docker 2>/dev/null; then
    dockerd_manager=systemctl
  elif [ -x /etc/init.d/docker ] && [ "$(cat /var/run/docker-ssd.pid 2>/dev/null)" = "$dockerd_pid" ]; then
    dockerd_manager=service
  else
    dockerd_manager=process
    mapfile -d '' -t dockerd_cmd <"/proc/$dockerd_pid/cmdline"
    [ ${#dockerd_cmd[@]} -gt 0 ] || fail "empty command line for dockerd $dockerd_pid"
    # The containerd it started itself (stopped with it); an external
    # containerd is not its child and is left alone.
    containerd_pid=$(pgrep -x -P "$dockerd_pid" containerd || true)
  fi
  log "dockerd pid $dockerd_pid managed by $dockerd_manager${dockerd_cmd[*]:+: ${dockerd_cmd[*]}}${containerd_pid:+ (its containerd: $containerd_pid)}"
}

start_dockerd() {
  case "$dockerd_manager" in
    systemctl) systemctl start docker ;;
    service) service docker start >/dev/null ;;
    *)
      local cmd=("${dockerd_cmd[@]}")
      [ ${#cmd[@]} -gt 0 ] || cmd=(dockerd)
      log "starting ${cmd[*]} (log: $dockerd_log)"
      # Its own session, detached from this test (see ensure_docker); no
      # shell of this test stays its parent holding the test's output open.
      (cd / || exit 1; setsid nohup "${cmd[@]}" >>"$dockerd_log" 2>&1 </dev/null &)
      ;;
  esac
}

stop_dockerd() {
  case "$dockerd_manager" in
    systemctl) systemctl stop docker ;;
    service) service docker stop >/dev/null ;;
    *) kill -TERM "$dockerd_pid" ;;
  esac
  local deadline=$((SECONDS + 60))
  while kill -0 "$dockerd_pid" 2>/dev/null || { [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null; }; do
    [ $SECONDS -lt $deadline ] || fail "dockerd $dockerd_pid (or its containerd) still running 60s after the stop"
    sleep 0.2
  done
}

# Exit handler (registered last, so it runs first, before the cleanup of the
# Docker objects): a daemon answers again, whatever failed.
daemon_back() {
  docker info >/dev/null 2>&1 && return 0
  # One may still be stopping or starting: give it time before starting one.
  if dockerd_running_pid >/dev/null; then
    wait_for 60 docker info && return 0
    # A daemon that neither answers nor exits: stop it for good.
    local pid
    pid=$(dockerd_running_pid) && kill -TERM "$pid" 2>/dev/null
    wait_for 30 sh -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
  fi
  start_dockerd
  wait_for 60 docker info || log "error: no Docker daemon answers after the test (see $dockerd_log)"
}

# --- the plugin's mounts ---------------------------------------------------

plugin_id() { docker plugin inspect "$plugin" --format '{{.ID}}'; }
# The volume's mounts in the host's mount table (the propagated mount),
# one line per mount table entry: duplicates count.
host_mounts() {
  local p
  p="$docker_root/plugins/$1/propagated-mount/$vol"
  awk -v p="$p" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo | sort
}
# The volume's mounts inside the plugin's own mount namespace. The plugin's
# process is found by its cgroup, named after the plugin's ID (several tiered
# plugins may run).
plugin_mounts() {
  local id pid
  id=$(plugin_id)
  for pid in $(pgrep -x tiered-plugin); do
    if grep -q ":/$id\$" "/proc/$pid/cgroup" 2>/dev/null; then
      awk -v p="/mnt/volumes/$vol" '$5 == p || index($5, p "/") == 1 { print $5 }' "/proc/$pid/mountinfo" | sort
      return 0
    fi
  done
  fail "no tiered-plugin process in a cgroup named $id"
}

# --- cleanup, last registered first -----------------------------------------

on_exit rm -rf "$tmp"
on_exit docker rmi -f "$image"
on_exit docker plugin rm -f "$plugin"
on_exit docker volume rm -f "$vol"
on_exit docker rm -f "$ctr" "$peer"
on_exit daemon_back

# --- set-up -----------------------------------------------------------------

busybox_image "$image" "$tmp/image"
"$TIERED_ROOT/scripts/plugin.sh" install --name "$plugin" --primary-source "$primary" --archive-source "$archive"
docker volume create -d "$plugin" -o uid=1000 -o gid=1000 -o mode=0750 "$vol" >/dev/null

# The restart-policy container: writes its files once, appends a line to
# archived/starts on every start, exits on SIGTERM (PID 1 ignores it
# otherwise, and the daemon's shutdown would wait for its stop timeout).
log "containers $ctr (--restart unless-stopped) and $peer hold $vol"
docker run -d --name "$ctr" --restart unless-stopped -v "$vol:/data" "$image" sh -c '
  trap "exit 0" TERM
  [ -e /data/hot ] || { echo hot >/data/hot && echo cold >/data/archived/cold; } || exit 1
  echo start >>/data/archived/starts && sync || exit 1
  while :; do sleep 0.2; done' >/dev/null
docker run -d --name "$peer" -v "$vol:/data" "$image" sh -c 'trap "exit 0" TERM; while :; do sleep 0.2; done' >/dev/null
wait_for 10 test -s "$archive/$vol/starts" || fail "$ctr did not write into archived/"
expect_eq "$(cat "$primary/$vol/data/hot")" hot "primary file on the host"
expect_eq "$(cat "$archive/$vol/cold")" cold "archived file on the host's archive source"
expect_eq "$(status "$vol" active_mounts)" 2 "active mounts with two containers"
id=$(plugin_id)
mounts_before=$(host_mounts "$id")
[ -n "$mounts_before" ] || fail "no host mount for $vol"
expect_eq "$(plugin_mounts | tr '\n' ' ')" "/mnt/volumes/$vol /mnt/volumes/$vol/archived " "mounts in the plugin"

# --- the restart ------------------------------------------------------------

find_dockerd
log "stopping the Docker daemon"
start=$SECONDS
stop_dockerd
log "daemon stopped in $((SECONDS - start))s"
expect_eq "$(host_mounts "$id")" "" "host mounts while the daemon is down"
start_dockerd
wait_for 60 docker info || fail "the daemon did not answer within 60s after the restart (see $dockerd_log)"
log "daemon answers again after $((SECONDS - start))s"

# --- after the restart ------------------------------------------------------

wait_for 30 sh -c "[ \"\$(docker plugin inspect '$plugin' --format '{{.Enabled}}')\" = true ]" || fail "plugin not enabled again"
docker volume ls -q | grep -qx "$vol" || fail "volume $vol not listed after the restart"
expect_eq "$(docker volume inspect "$vol" --format '{{.Driver}}')" "$plugin:latest" "driver of $vol"
expect_eq "$(status "$vol" uid):$(status "$vol" gid):$(status "$vol" mode)" "1000:1000:0750" "options in Status"
expect_eq "$(status "$vol" archive_path)" "/mnt/archive/$vol" "archive path in Status"
wait_for 60 sh -c "[ \"\$(docker inspect '$ctr' --format '{{.State.Running}}')\" = true ]" || fail "$ctr not restarted"
expect_eq "$(docker inspect "$peer" --format '{{.State.Running}}')" false "$peer (no restart policy) after the restart"
wait_for 10 sh -c "[ \$(wc -l <'$archive/$vol/starts') = 2 ]" || fail "$ctr did not write into archived/ on its restart"
expect_eq "$(status "$vol" active_mounts)" 1 "active mounts: the restarted container alone"
expect_eq "$(docker exec "$ctr" /bin/busybox cat /data/hot /data/archived/cold | tr '\n' ' ')" "hot cold " "files of both tiers in the restarted container"
docker exec "$ctr" /bin/busybox sh -c 'echo after >/data/archived/after && sync'
expect_eq "$(cat "$archive/$vol/after")" after "archived/ write after the restart on the host's archive source"
[ ! -e "$primary/$vol/data/archived/after" ] || fail "archived/ write landed on the primary tier"
expect_eq "$(plugin_mounts | tr '\n' ' ')" "/mnt/volumes/$vol /mnt/volumes/$vol/archived " "mounts in the plugin after the restart"

log "the second container joins again: shared, not doubled"
docker start "$peer" >/dev/null
expect_eq "$(status "$vol" active_mounts)" 2 "active mounts with both containers"
expect_eq "$(docker exec "$peer" /bin/busybox cat /data/archived/after)" after "second container sees archived/"
id=$(plugin_id)
expect_eq "$(host_mounts "$id")" "$mounts_before" "host mount table entries for $vol (as before the restart)"
expect_eq "$(plugin_mounts | tr '\n' ' ')" "/mnt/volumes/$vol /mnt/volumes/$vol/archived " "mounts in the plugin with both containers"

log "stopping both containers takes the mounts down; the volume can be removed"
docker stop "$ctr" "$peer" >/dev/null
expect_eq "$(status "$vol" active_mounts)" 0 "active mounts after both containers stopped"
expect_eq "$(host_mounts "$id")" "" "host mounts after the last unmount"
expect_eq "$(plugin_mounts)" "" "mounts in the plugin after the last unmount"
expect_eq "$(docker volume inspect "$vol" --format '{{.Mountpoint}}')" "" "mountpoint after the last unmount"
docker rm "$ctr" "$peer" >/dev/null
docker volume rm "$vol" >/dev/null || fail "docker volume rm $vol after the restart"
[ ! -e "$primary/$vol" ] && [ ! -e "$archive/$vol" ] || fail "volume data left after docker volume rm"
log "daemon restart e2e passed"
