# Restarting the shared Docker daemon from a test (sourced after faults_lib.sh).
# The daemon is restarted the way it is managed: systemctl or service when
# they manage it, otherwise the dockerd process is started again, detached
# (setsid), with its recorded command line. A test using this holds the
# exclusive lock /tmp/tiered-docker.lock and registers `on_exit daemon_back`
# last, so a daemon answers again whatever failed.
# (The same logic as tiered_e2e::dockerd in the Rust crate.)
# shellcheck shell=bash

dockerd_log=/var/log/tiered-dockerd.log
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
      # The Docker lock's fd (flock(1) leaves it open across exec) must not
      # go to the daemon: it would hold the lock as long as it runs.
      (
        cd / || exit 1
        for fd in "/proc/$BASHPID/fd"/*; do
          [ "$(readlink "$fd")" = /tmp/tiered-docker.lock ] && eval "exec ${fd##*/}>&-"
        done
        setsid nohup "${cmd[@]}" >>"$dockerd_log" 2>&1 </dev/null &
      )
      ;;
  esac
}

# kill -9 of dockerd alone (an OOM kill, a crash): its containerd, the
# containers' shims and the plugin's process are left running.
crash_dockerd() {
  log "kill -9 dockerd $dockerd_pid"
  kill -KILL "$dockerd_pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$dockerd_pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "dockerd $dockerd_pid still there 30s after kill -9"
    sleep 0.2
  done
  # A systemd unit would restart it by itself; make sure one starts.
  if [ "$dockerd_manager" = systemctl ]; then systemctl reset-failed docker 2>/dev/null || true; fi
}

# Exit handler: a daemon answers again, whatever failed.
daemon_back() {
  docker info >/dev/null 2>&1 && return 0
  if dockerd_running_pid >/dev/null; then
    wait_for 60 docker info && return 0
    local pid
    pid=$(dockerd_running_pid) && kill -TERM "$pid" 2>/dev/null
    wait_for 30 sh -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
  fi
  start_dockerd
  wait_for 60 docker info || log "error: no Docker daemon answers after the test (see $dockerd_log)"
}
