#!/usr/bin/env bash
# Builds the managed plugin (config.json + rootfs/ with the static
# tiered-plugin binary) and creates and enables it in the local Docker
# daemon; or removes it. No image pull is needed.
#
#   scripts/plugin.sh install [--name tiered] [--primary-source DIR] [--archive-source DIR]
#                             [--metrics-listen ADDR] [--log-level LEVEL] [--replace]
#   scripts/plugin.sh remove  [--name tiered]
#   scripts/plugin.sh status  [--name tiered]
#
# install: uses build/bin/tiered-plugin (building the plugin alone if it is
# missing), creates the tier source directories (default
# /var/lib/tiered/primary and /var/lib/tiered/archive), `docker plugin
# create`, `docker plugin set` the sources and env, `docker plugin enable`.
# An already installed plugin of that name is left alone unless --replace,
# which force-removes it first (volume data lives in the tier sources, not
# in the plugin, so nothing is lost).
# remove: `docker plugin rm -f` (the volumes' data stays in the sources).
# The name is also read from TIERED_PLUGIN_NAME.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd=${1:-}; [ $# -gt 0 ] && shift
name=${TIERED_PLUGIN_NAME:-tiered}
primary=/var/lib/tiered/primary
archive=/var/lib/tiered/archive
metrics_listen="" log_level=info replace=0
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name=${2:?--name needs a value}; shift 2 ;;
    --primary-source) primary=${2:?--primary-source needs a directory}; shift 2 ;;
    --archive-source) archive=${2:?--archive-source needs a directory}; shift 2 ;;
    --metrics-listen) metrics_listen=${2?--metrics-listen needs an address}; shift 2 ;;
    --log-level) log_level=${2:?--log-level needs a value}; shift 2 ;;
    --replace) replace=1; shift ;;
    -h|--help) usage ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
[[ "$name" =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "invalid plugin name: $name (lowercase letters, digits, . _ -)"

plugin_exists() { docker plugin inspect "$1" >/dev/null 2>&1; }

# Lays out a plugin directory (config.json + rootfs/) in $1.
layout() {
  local dir=$1 bin="$TIERED_BIN/tiered-plugin"
  if [ ! -x "$bin" ]; then
    log "building the static tiered-plugin"
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
      cargo build --release --locked --target x86_64-unknown-linux-gnu -p tiered-plugin --bin tiered-plugin
    mkdir -p "$TIERED_BIN"
    install -m 0755 target/x86_64-unknown-linux-gnu/release/tiered-plugin "$bin"
  fi
  # The committed skeleton, then the binary (never committed).
  cp -a rootfs "$dir/rootfs"
  install -m 0755 "$bin" "$dir/rootfs/tiered-plugin"
  # The daemon refuses to create a plugin whose rootfs layer is byte-identical
  # to one it already holds ("content sha256:... already exists"): mark each
  # build so several plugins of the same binary can coexist.
  printf '%s %s\n' "$name" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" >"$dir/rootfs/.tiered-build"
  mkdir -p "$dir/rootfs"/{mnt/primary,mnt/archive,mnt/volumes,run/docker/plugins,proc,dev,sys,tmp,etc,var/lib/tiered-plugin}
  cp config.json "$dir/config.json"
}

case "$cmd" in
  install)
    ensure_docker
    if plugin_exists "$name"; then
      if [ $replace = 0 ]; then
        log "plugin $name already installed (use --replace to re-create it)"
        docker plugin ls --filter "capability=volumedriver" >&2
        exit 0
      fi
      log "removing existing plugin $name"
      docker plugin rm -f "$name" >/dev/null
    fi
    mkdir -p "$primary" "$archive"
    build_dir=$(mktemp -d)
    on_exit rm -rf "$build_dir"
    layout "$build_dir"
    log "docker plugin create $name"
    docker plugin create "$name" "$build_dir" >/dev/null
    primary_abs=$(cd "$primary" && pwd) archive_abs=$(cd "$archive" && pwd)
    docker plugin set "$name" \
      primary.source="$primary_abs" archive.source="$archive_abs" \
      TIERED_PRIMARY_SOURCE="$primary_abs" TIERED_ARCHIVE_SOURCE="$archive_abs" \
      TIERED_METRICS_LISTEN="$metrics_listen" TIERED_LOG_LEVEL="$log_level"
    if ! docker plugin enable "$name" >/dev/null; then
      docker plugin rm -f "$name" >/dev/null 2>&1 || true
      die "docker plugin enable $name failed"
    fi
    log "plugin $name enabled: primary=$primary archive=$archive${metrics_listen:+ metrics=$metrics_listen}"
    ;;
  remove)
    ensure_docker
    if plugin_exists "$name"; then
      docker plugin rm -f "$name" >/dev/null
      log "plugin $name removed (volume data kept in the tier sources)"
    else
      log "plugin $name is not installed"
    fi
    ;;
  status)
    docker plugin inspect "$name" --format '{{.Name}} enabled={{.Enabled}} mounts={{range .Settings.Mounts}}{{.Name}}:{{.Source}} {{end}}env={{.Settings.Env}}'
    ;;
  *) usage ;;
esac
