# Shared shell helpers, sourced by scripts/*.sh and tests/e2e/system_lib.sh.
# shellcheck shell=bash

# Repository root (this file lives in scripts/).
TIERED_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TIERED_ROOT
# Where scripts/build.sh puts the static binaries.
TIERED_BIN="${TIERED_BIN:-$TIERED_ROOT/build/bin}"
export TIERED_BIN

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A name unique to this run, for every Docker object a script creates:
# `uniq_name plugin` -> tiered-t-plugin-<pid>-<random>.
uniq_name() { printf 'tiered-t-%s-%s-%s' "$1" "$$" "$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"; }

# Cleanup stack: `on_exit CMD...` registers a command run (last first) when
# the script exits, whether it succeeded or failed.
_TIERED_CLEANUP=()
on_exit() { _TIERED_CLEANUP+=("$*"); }
_tiered_run_cleanup() {
  local rc=$? i
  for ((i=${#_TIERED_CLEANUP[@]}-1; i>=0; i--)); do
    eval "${_TIERED_CLEANUP[$i]}" >/dev/null 2>&1 || true
  done
  return $rc
}
trap _tiered_run_cleanup EXIT

# Wait until CMD succeeds, up to SECS seconds: `wait_for 30 docker info`.
wait_for() {
  local secs=$1; shift
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

# start_dockerd_detached CMD...: starts the daemon (CMD, e.g. `dockerd`) in
# its own session (the end of the calling script, or a kill of its process
# group, does not take the shared daemon with it), from /, with no file
# descriptor of the caller but stdin/stdout/stderr (redirected): a daemon
# that inherited, say, the fd of `flock -x /tmp/tiered-docker.lock` would
# hold that lock for as long as it runs and block every test.
start_dockerd_detached() {
  (
    cd / || exit 1
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null; fi
    done
    exec setsid nohup "$@" >>/var/log/tiered-dockerd.log 2>&1 </dev/null
  ) &
}

# Make sure a Docker daemon answers: install docker.io and start dockerd if
# needed. Under CI=true a daemon that still does not answer is a failure.
ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io"
    apt_install docker.io
  fi
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    start_dockerd_detached dockerd
    wait_for 60 docker info || die "dockerd did not answer within 60s (see /var/log/tiered-dockerd.log)"
  fi
}

_TIERED_APT_UPDATED=0
# Install Debian packages that are missing (apt-get update once per run).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ $_TIERED_APT_UPDATED = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || die "apt-get update failed"
    _TIERED_APT_UPDATED=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}
