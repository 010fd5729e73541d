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

# spawn_detached LOG CMD...: starts CMD in its own session (so that the end
# of the calling script, or a kill of its process group, does not take it
# along), output to LOG, with no file descriptor but 0-2 inherited. The last
# part matters for a daemon: a script run under `flock /tmp/tiered-docker.lock`
# holds the lock on an inherited descriptor, and a dockerd that kept it would
# hold the lock for as long as it runs, blocking every other test.
spawn_detached() {
  local log=$1 fd
  shift
  (
    for fd in "/proc/$BASHPID/fd/"*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
    done
    exec setsid nohup "$@" </dev/null >"$log" 2>&1
  ) &
}

# Make sure a Docker daemon answers: install docker.io and start the daemon
# if needed (through systemd where systemd runs, else a detached dockerd).
# It never stops or restarts a daemon that runs. Under CI=true a daemon that
# still does not answer is a failure.
ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io"
    apt_install docker.io
  fi
  if ! docker info >/dev/null 2>&1; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      log "starting docker (systemctl start docker)"
      systemctl start docker || die "systemctl start docker failed (see journalctl -u docker)"
      wait_for 60 docker info || die "dockerd did not answer within 60s (see journalctl -u docker)"
      return 0
    fi
    log "starting dockerd"
    spawn_detached /var/log/tiered-dockerd.log dockerd
    wait_for 60 docker info || die "dockerd did not answer within 60s (see /var/log/tiered-dockerd.log)"
  fi
}

# The Debian packages of the two kinds of setup (scripts/deps.sh,
# scripts/test-deps.sh). *_NOSTART: packages whose service Debian would start
# on installation; installed with apt_install_no_start.
# Running the deployment (scripts/up.sh): scripts/registry.sh (the plugin
# through a local registry) needs docker-registry, python3, openssl;
# redis-cli talks to the engine. Docker, compose and a C linker come on top
# when missing (scripts/deps.sh).
# shellcheck disable=SC2034 # used by the scripts that source this file
TIERED_RUNTIME_PKGS=(ca-certificates curl openssl python3 redis-tools)
# shellcheck disable=SC2034
TIERED_RUNTIME_NOSTART_PKGS=(docker-registry)
# The tests and benchmarks on top: busybox for test images, redis-server
# (a reference server for the benchmark, an occupant of 6379 for a test),
# prometheus and promtool (the monitoring test), ss (iproute2: who listens),
# the linter of every bash script (shellcheck, run by scripts/test.sh), and
# fuse3 (fusermount3: the power-loss tests mount tools/lossyfs).
# shellcheck disable=SC2034
TIERED_TEST_PKGS=(busybox-static iproute2 shellcheck fuse3)
# shellcheck disable=SC2034
TIERED_TEST_NOSTART_PKGS=(redis-server prometheus)

_TIERED_APT_UPDATED=0
# The packages among "$@" that are not installed, one a line.
apt_missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

# apt-get update, once per run.
apt_update_once() {
  [ $_TIERED_APT_UPDATED = 0 ] || return 0
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || die "apt-get update failed"
  _TIERED_APT_UPDATED=1
}

# Install Debian packages that are missing. Installed ones are left as they
# are (never upgraded, never reconfigured).
apt_install() {
  local missing=()
  mapfile -t missing < <(apt_missing "$@")
  [ ${#missing[@]} -gt 0 ] || return 0
  apt_update_once
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# Where Debian's invoke-rc.d and deb-systemd-invoke ask whether a package's
# maintainer scripts may start its service (exit 101: no).
TIERED_POLICY_RC_D=${TIERED_POLICY_RC_D:-/usr/sbin/policy-rc.d}

# apt_install_no_start PKG...: apt_install for packages that ship a service
# Debian would start on installation (redis-server, prometheus,
# docker-registry), without starting it: for the duration of this install
# only, a policy-rc.d that answers 101 ("action forbidden"). A policy-rc.d the
# host already has is put aside and restored afterwards, byte for byte, on
# failure too. Nothing is stopped, disabled or reconfigured: services of
# packages that were installed before are not touched at all. (Debian still
# enables a newly installed service for the next boot, as it always does.)
apt_install_no_start() {
  local missing=()
  mapfile -t missing < <(apt_missing "$@")
  [ ${#missing[@]} -gt 0 ] || return 0
  apt_update_once
  # A subshell with its own EXIT trap: the policy goes away however the
  # install ends. The lock keeps two of these runs from interleaving.
  (
    flock -x 9
    policy=$TIERED_POLICY_RC_D saved=""
    if [ -e "$policy" ] || [ -L "$policy" ]; then
      saved=$(mktemp "$(dirname "$policy")/.policy-rc.d.tiered-saved.XXXXXX")
      cp -a "$policy" "$saved"
    fi
    trap 'if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi' EXIT
    tmp=$(mktemp "$(dirname "$policy")/.policy-rc.d.tiered.XXXXXX")
    printf '#!/bin/sh\n# Written by tiered scripts/lib.sh for one apt-get install; removed afterwards.\nexit 101\n' >"$tmp"
    chmod 0755 "$tmp"
    mv -f "$tmp" "$policy"
    log "apt-get install ${missing[*]} (their services are not started: $policy answers 101 during the install)"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  ) 9>"${TIERED_POLICY_LOCK:-$([ -d /run/lock ] && echo /run/lock || echo /tmp)/tiered-policy-rc.d.lock}"
}
