# Prerequisite checks of scripts/up.sh: everything is looked at, nothing is
# installed, created, started or changed. Sourced by scripts/up.sh (which runs
# them before doing anything, and alone with --check).
#
# Each check prints one line: `ok` (ready), `todo` (scripts/up.sh will do it:
# install a Debian package, start dockerd, create a directory) or `FAIL` (with
# what to do about it, on the lines below). CHECK_FAILED counts the FAILs.
# shellcheck shell=bash

CHECK_FAILED=0
check_ok() { printf '  ok    %s\n' "$*"; }
check_todo() { printf '  todo  %s\n' "$*"; }
# check_fail WHAT [HOW-TO-FIX-LINE]...
check_fail() {
  printf '  FAIL  %s\n' "$1"
  shift
  local l
  for l in "$@"; do printf '        %s\n' "$l"; done
  CHECK_FAILED=$((CHECK_FAILED + 1))
}

# The rust-version the workspace declares (Cargo.toml).
required_rust_version() {
  sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$TIERED_ROOT/Cargo.toml" | head -1
}

# version_ge A B: A >= B (dotted numbers).
version_ge() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$2" ]; }

# The host's listeners on TCP port $1 that a bind of 127.0.0.1:$1 would
# collide with (wildcard or loopback addresses), one a line, with the
# process when `ss` may name it. Empty when the port is free.
port_listeners() {
  local port=$1
  if command -v ss >/dev/null 2>&1; then
    ss -Htlnp "sport = :$port" 2>/dev/null | awk '
      { addr = $4; sub(/:[0-9]+$/, "", addr); sub(/%.*/, "", addr) }
      addr == "0.0.0.0" || addr == "*" || addr == "[::]" || addr == "127.0.0.1" || addr == "[::ffff:127.0.0.1]" || addr == "[::1]" {
        who = ""; if (match($0, /users:\(\("[^"]*",pid=[0-9]+/)) { who = substr($0, RSTART + 9, RLENGTH - 9); gsub(/"/, "", who); sub(/,/, " ", who) }
        print $4 (who == "" ? "" : " (" who ")")
      }'
  elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port (something answers)"
  fi
}

# check_port PORT VARIABLE WHAT PROJECT: PORT must be free, or held by a
# container of compose project PROJECT (a running deployment, restarted by
# up.sh in place).
check_port() {
  local port=$1 var=$2 what=$3 project=$4 who
  if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    check_fail "$var=$port is not a TCP port" "set $var to a number in 1..65535"
    return
  fi
  who=$(port_listeners "$port")
  if [ -z "$who" ]; then
    check_ok "port $port free ($what, $var)"
    return
  fi
  if docker info >/dev/null 2>&1 \
    && docker ps --filter "label=com.docker.compose.project=$project" --format '{{.Ports}}' 2>/dev/null | grep -q "127.0.0.1:$port->"; then
    check_ok "port $port held by this deployment (compose project $project; $what)"
    return
  fi
  check_fail "port $port ($what, $var) is in use: $(echo "$who" | paste -sd ';' -)" \
    "scripts/up.sh publishes 127.0.0.1:$port and does not stop what holds it." \
    "Choose another port, e.g.: $var=$(free_port_near "$port") scripts/up.sh" \
    "(or stop that program yourself if it is yours to stop)."
}

# A free port at or above $1 (for the suggestion in a message).
free_port_near() {
  local p=$(($1 + 1))
  while [ "$p" -lt 65535 ] && [ -n "$(port_listeners "$p")" ]; do p=$((p + 1)); done
  echo "$p"
}

# check_space DIR WHAT MIN_MB: the file system that holds DIR (or would: its
# nearest existing parent) has MIN_MB free.
check_space() {
  local dir=$1 what=$2 min_mb=$3 probe avail_kb
  [[ "$dir" == /* ]] || { check_fail "$what $dir is not an absolute path" "give an absolute directory"; return; }
  probe=$dir
  while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done
  if [ ! -d "$probe" ]; then
    check_fail "$what $dir: $probe is not a directory" "choose another directory"
    return
  fi
  avail_kb=$(df -Pk "$probe" 2>/dev/null | awk 'NR == 2 { print $4 }')
  if [ -z "$avail_kb" ]; then
    check_fail "$what $dir: cannot tell the free space (df $probe failed)"
    return
  fi
  local avail_mb=$((avail_kb / 1024))
  if [ "$avail_mb" -lt "$min_mb" ]; then
    check_fail "$what $dir: $avail_mb MiB free on its file system, at least $min_mb MiB wanted" \
      "free some space there, or point the tier elsewhere (TIERED_PRIMARY_SOURCE / TIERED_ARCHIVE_SOURCE on the first install)," \
      "or lower the bar with TIERED_MIN_FREE_MB=N"
    return
  fi
  if [ -d "$dir" ]; then
    check_ok "$what $dir: $avail_mb MiB free"
  else
    check_todo "$what $dir: will be created ($avail_mb MiB free on $probe)"
  fi
}

# check_rust: cargo and rustc at the workspace's rust-version, the static
# x86_64 target, a C linker and the static C library.
check_rust() {
  local want have
  want=$(required_rust_version)
  if [ "$(uname -m)" != x86_64 ]; then
    check_fail "this is $(uname -m): the build makes static x86_64 binaries (x86_64-unknown-linux-gnu) only" "run it on an x86_64 host"
  fi
  if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
    local hint=()
    [ ! -x "$HOME/.cargo/bin/cargo" ] || hint=("$HOME/.cargo/bin/cargo exists but is not on PATH: . \"$HOME/.cargo/env\" (under sudo, PATH is reset)")
    check_fail "no Rust toolchain (cargo, rustc) on PATH; the build needs rustc >= $want" \
      ${hint[@]+"${hint[@]}"} \
      "install it with rustup, the toolchain's own installer:" \
      "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal && . \"\$HOME/.cargo/env\"" \
      "or a distribution's rustc/cargo packages if they are >= $want (Debian 12's are 1.63: too old)"
    return
  fi
  have=$(rustc --version 2>/dev/null | awk '{ print $2 }' | sed 's/-.*//')
  if [ -z "$have" ] || ! version_ge "$have" "$want"; then
    check_fail "rustc ${have:-?} is older than the workspace's rust-version $want (Cargo.toml)" \
      "with rustup: rustup update stable" \
      "without: install rustup (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal)," \
      "or a distribution's newer rustc/cargo packages (>= $want)"
  else
    check_ok "rustc $have (workspace needs >= $want)"
  fi
  if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-gnu; then
    check_fail "the Rust target x86_64-unknown-linux-gnu is not installed" "rustup target add x86_64-unknown-linux-gnu"
  fi
  if command -v cc >/dev/null 2>&1 && [ -e /usr/lib/x86_64-linux-gnu/libc.a ]; then
    check_ok "C linker and static C library (cc, libc.a)"
  elif command -v apt-get >/dev/null 2>&1; then
    check_todo "C linker and static C library: will install gcc libc6-dev"
  else
    check_fail "no C linker (cc) or static C library (libc.a) for the static build" "install gcc and the C library's static archive (Debian: libc6-dev)"
  fi
}

# check_debian_pkgs WHAT PKG...: what apt-get would install (a todo), or a
# FAIL when the packages are missing and there is no apt-get.
check_debian_pkgs() {
  local what=$1 missing
  shift
  if ! command -v dpkg-query >/dev/null 2>&1; then
    check_fail "not a Debian-like system (no dpkg): install by hand: $what ($*)"
    return
  fi
  missing=$(apt_missing "$@" | paste -sd ' ' -)
  if [ -z "$missing" ]; then
    check_ok "$what: installed ($*)"
  else
    check_todo "$what: will apt-get install $missing"
  fi
}

# check_docker: a daemon that answers, or one scripts/up.sh can install/start.
check_docker() {
  local v
  if v=$(docker version --format '{{.Server.Version}}' 2>/dev/null) && [ -n "$v" ]; then
    check_ok "Docker daemon answers (version $v)"
  elif command -v dockerd >/dev/null 2>&1; then
    check_todo "Docker daemon does not answer: will start it (systemctl start docker, else a detached dockerd)"
  elif command -v apt-get >/dev/null 2>&1; then
    check_todo "Docker is not installed: will apt-get install docker.io and start it"
  else
    check_fail "no Docker, and no apt-get to install it" "install Docker (https://docs.docker.com/engine/install/) and start it"
  fi
  if docker compose version >/dev/null 2>&1; then
    check_ok "compose: docker compose (v2)"
  elif command -v docker-compose >/dev/null 2>&1; then
    check_ok "compose: docker-compose (v1)"
  elif command -v apt-get >/dev/null 2>&1; then
    check_todo "compose: will apt-get install docker-compose"
  else
    check_fail "no docker compose / docker-compose" "install the compose plugin (docker-compose-plugin) or docker-compose"
  fi
}

# check_root: what scripts/up.sh does needs root (packages, tier directories,
# the plugin's mounts).
check_root() {
  if [ "$(id -u)" = 0 ]; then
    check_ok "running as root"
  else
    check_fail "not running as root" "run it as root (sudo -E scripts/up.sh): it installs Debian packages, creates the tier directories and installs a managed plugin"
  fi
}
