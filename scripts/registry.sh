#!/usr/bin/env bash
# Installs or upgrades the tiered plugin the way users get plugins: pulled
# from a registry. The registry is Debian's `docker-registry`, started here on
# 127.0.0.1:5000 (another free loopback port when 5000 is taken) with its own
# config and a temporary storage dir, and stopped before the script exits.
#
#   scripts/registry.sh install [--alias NAME] [--primary DIR] [--archive DIR]
#                               [--repo REPO] [--tag TAG] [--set KEY=VALUE]...
#   scripts/registry.sh upgrade [--alias NAME] [--primary DIR] [--archive DIR]
#                               [--repo REPO] [--tag TAG]
#
# Both pack config.json + rootfs/ + build/bin/tiered-plugin into a plugin,
# push it as localhost:PORT/REPO:TAG and pull it back through the daemon:
#   install: docker plugin install --grant-all-permissions --alias NAME
#            localhost:PORT/REPO:TAG primary.source=DIR archive.source=DIR
#   upgrade: docker plugin disable -f NAME; docker plugin upgrade NAME
#            localhost:PORT/REPO:TAG; docker plugin set NAME
#            primary.source=… archive.source=…; docker plugin enable NAME
#
# Defaults: NAME `tiered` (the driver name volumes use), REPO `tiered-plugin`,
# TAG `b<UTC time>`, tiers /var/lib/tiered/{primary,archive} on install and
# the plugin's current tier sources on upgrade. Tier directories are created
# when missing. --set passes more settings to `docker plugin install` (e.g.
# TIERED_METRICS_LISTEN=127.0.0.1:9123, TIERED_LOG_LEVEL=debug).
#
# Facts of the Docker daemon (20.10) this script works around:
# - `localhost:PORT` is the name to push to: the daemon treats 127.0.0.0/8 as
#   an insecure registry, so it accepts the registry's self-signed certificate.
# - The registry serves HTTPS: the daemon pushes over HTTPS first even to an
#   insecure registry, and when that attempt fails and it falls back to HTTP,
#   Docker 20.10's containerd pusher sometimes panics ("send on closed
#   channel") and takes the whole daemon down.
# - `docker plugin create` fails with "content sha256:… already exists" when
#   the rootfs layer is byte-identical to one the daemon already holds (the
#   same build installed under another name). Every packed rootfs therefore
#   carries a /.tiered-build file naming its reference and build time.
# - `docker plugin upgrade` replaces the plugin's config, and with it the
#   mount sources the daemon uses on the next enable, with the new config's
#   defaults, while `docker plugin inspect` still shows the old sources under
#   Settings.Mounts. Enabled as is, the plugin would come up on
#   /var/lib/tiered/* (or fail if those do not exist). So upgrade re-sets the
#   sources with `docker plugin set` before enabling.
# - The CLI asks for confirmation when the new reference differs from the
#   old one; --skip-remote-check answers it.
# - Disabling a plugin that volumes refer to needs `-f`; stop the containers
#   that use its volumes first.
#
# For development, TIERED_PLUGIN_CONFIG, TIERED_PLUGIN_ROOTFS and
# TIERED_PLUGIN_BINARY point at another config.json, rootfs and binary.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
  cat >&2 <<'EOF'
usage: scripts/registry.sh install [--alias NAME] [--primary DIR] [--archive DIR] [--repo REPO] [--tag TAG] [--set KEY=VALUE]...
       scripts/registry.sh upgrade [--alias NAME] [--primary DIR] [--archive DIR] [--repo REPO] [--tag TAG]
EOF
  exit 2
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
case "$cmd" in
  install | upgrade) ;;
  -h | --help) usage ;;
  *) die "unknown command: $cmd (accepted: install, upgrade)" ;;
esac

alias_name=tiered repo=tiered-plugin tag="b$(date -u +%Y%m%d%H%M%S)" primary="" archive="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --alias) alias_name=${2:?--alias needs a value}; shift 2 ;;
    --repo) repo=${2:?--repo needs a value}; shift 2 ;;
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --primary) primary=${2:?--primary needs a value}; shift 2 ;;
    --archive) archive=${2:?--archive needs a value}; shift 2 ;;
    --set)
      [ "$cmd" = install ] || die "--set is for install (on an installed plugin: docker plugin disable; docker plugin set)"
      [[ "${2:-}" =~ ^[A-Za-z_][A-Za-z0-9_.]*=.*$ ]] || die "--set needs KEY=VALUE, got '${2:-}'"
      extra+=("$2"); shift 2 ;;
    *) die "unknown argument: $1 (accepted: --alias --repo --tag --primary --archive --set)" ;;
  esac
done
[[ "$alias_name" =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "invalid plugin name: $alias_name"
[[ "$repo" =~ ^[a-z0-9]+([._-][a-z0-9]+)*$ ]] || die "invalid repository name: $repo"
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid tag: $tag"
for d in "$primary" "$archive"; do
  [ -z "$d" ] || [[ "$d" == /* ]] || die "tier directories must be absolute paths: $d"
done

config=${TIERED_PLUGIN_CONFIG:-$TIERED_ROOT/config.json}
rootfs=${TIERED_PLUGIN_ROOTFS:-$TIERED_ROOT/rootfs}
binary=${TIERED_PLUGIN_BINARY:-$TIERED_BIN/tiered-plugin}
[ -f "$config" ] || die "missing plugin config $config"
[ -d "$rootfs" ] || die "missing plugin rootfs skeleton $rootfs"
[ -x "$binary" ] || die "missing $binary: run scripts/build.sh first"
command -v docker-registry >/dev/null || die "missing docker-registry: run scripts/deps.sh"
command -v python3 >/dev/null || die "missing python3: run scripts/deps.sh"
command -v openssl >/dev/null || die "missing openssl: run scripts/deps.sh"
ensure_docker

plugin_exists() { docker plugin inspect "$alias_name" >/dev/null 2>&1; }
if [ "$cmd" = install ] && plugin_exists; then
  die "plugin $alias_name is already installed (use: scripts/registry.sh upgrade --alias $alias_name)"
fi
if [ "$cmd" = upgrade ] && ! plugin_exists; then
  die "plugin $alias_name is not installed (use: scripts/registry.sh install --alias $alias_name)"
fi

work=$(mktemp -d /tmp/tiered-registry.XXXXXX)
on_exit rm -rf "$work"

# --- the local registry -----------------------------------------------------
port_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
# Like the registry (Go sets SO_REUSEADDR): a port in TIME_WAIT is free.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=${TIERED_REGISTRY_PORT:-5000}
if ! port_free "$port"; then
  log "127.0.0.1:$port is taken; using another loopback port for the registry"
  port=$(free_port)
fi
mkdir -p "$work/storage"
# TLS with a throwaway self-signed certificate. The daemon pushes over HTTPS
# first even to an insecure registry (it skips verification for those), and
# Docker 20.10 panics in its containerd pusher ("send on closed channel") now
# and then when that first attempt fails and it falls back to HTTP: the whole
# daemon dies. Serving HTTPS makes the first attempt the one that works.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/registry.key" -out "$work/registry.crt" >/dev/null 2>&1 \
  || die "openssl could not make the registry's certificate"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  tls:
    certificate: $work/registry.crt
    key: $work/registry.key
EOF
log "starting docker-registry on 127.0.0.1:$port"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
# Registered after `rm -rf $work`, so it runs first: the registry stops
# before its storage goes away.
on_exit "kill $registry_pid; wait $registry_pid"
registry_up() {
  kill -0 "$registry_pid" 2>/dev/null || return 2
  python3 -c 'import ssl, sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2, context=ssl._create_unverified_context())' \
    "https://127.0.0.1:$port/v2/"
}
wait_for 30 registry_up || { cat "$work/registry.log" >&2; die "docker-registry did not answer on 127.0.0.1:$port"; }

# --- pack and push ------------------------------------------------------------
ref="localhost:$port/$repo:$tag"
stage="$work/plugin"
mkdir -p "$stage/rootfs"
cp "$config" "$stage/config.json"
cp -a "$rootfs/." "$stage/rootfs/"
# The entry point, mount destinations and propagated mount named by the
# config, so the packed rootfs matches whatever config.json says.
python3 - "$stage/config.json" "$stage/rootfs" "$binary" <<'PY'
import json, os, shutil, sys
config_path, rootfs, binary = sys.argv[1:4]
with open(config_path) as f:
    config = json.load(f)
entry = config["entrypoint"][0]
if not entry.startswith("/"):
    sys.exit(f"config.json: entrypoint {entry!r} is not an absolute path")
dest = os.path.join(rootfs, entry.lstrip("/"))
os.makedirs(os.path.dirname(dest), exist_ok=True)
shutil.copy2(binary, dest)
os.chmod(dest, 0o755)
dirs = [m["destination"] for m in config.get("mounts", []) if m.get("type", "bind") == "bind"]
dirs += [config.get("propagatedMount") or "", "/run/docker/plugins"]
for d in dirs:
    if d:
        os.makedirs(os.path.join(rootfs, d.lstrip("/")), exist_ok=True)
PY
printf 'reference=%s\ncommit=%s\nbuilt=%s\n' "$ref" \
  "$(git -C "$TIERED_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$stage/rootfs/.tiered-build"

log "docker plugin create + push $ref"
docker plugin create "$ref" "$stage" >/dev/null
on_exit docker plugin rm -f "$ref"
docker plugin push "$ref" >"$work/push.log" 2>&1 || { cat "$work/push.log" >&2; die "docker plugin push $ref failed"; }
# Drop the local copy: what gets installed is what the registry serves.
docker plugin rm -f "$ref" >/dev/null

# --- install or upgrade -------------------------------------------------------
# "NAME=SOURCE" for every mount of the installed plugin whose source is
# settable, as Settings.Mounts records them (see the upgrade note above).
current_sources() {
  docker plugin inspect "$alias_name" \
    -f '{{range .Settings.Mounts}}{{$m := .}}{{range .Settable}}{{if eq . "source"}}{{$m.Name}}={{$m.Source}}{{"\n"}}{{end}}{{end}}{{end}}'
}

if [ "$cmd" = install ]; then
  primary=${primary:-/var/lib/tiered/primary}
  archive=${archive:-/var/lib/tiered/archive}
  mkdir -p "$primary" "$archive"
  log "docker plugin install $ref as $alias_name (primary $primary, archive $archive)"
  docker plugin install --grant-all-permissions --alias "$alias_name" "$ref" \
    "primary.source=$primary" "archive.source=$archive" \
    "TIERED_PRIMARY_SOURCE=$primary" "TIERED_ARCHIVE_SOURCE=$archive" ${extra[@]+"${extra[@]}"} >"$work/install.log" 2>&1 \
    || { cat "$work/install.log" >&2; die "docker plugin install $ref failed"; }
else
  sets=()
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    case "$line" in
      primary=*) [ -n "$primary" ] || primary=${line#primary=} ;;
      archive=*) [ -n "$archive" ] || archive=${line#archive=} ;;
      *) sets+=("${line%%=*}.source=${line#*=}") ;;
    esac
  done < <(current_sources)
  if [ -z "$primary" ] || [ -z "$archive" ]; then
    die "plugin $alias_name has no primary/archive mount sources to keep"
  fi
  mkdir -p "$primary" "$archive"
  sets+=("primary.source=$primary" "archive.source=$archive"
    "TIERED_PRIMARY_SOURCE=$primary" "TIERED_ARCHIVE_SOURCE=$archive")
  if [ "$(docker plugin inspect -f '{{.Enabled}}' "$alias_name")" = true ]; then
    log "docker plugin disable -f $alias_name"
    docker plugin disable -f "$alias_name" >/dev/null
  fi
  log "docker plugin upgrade $alias_name $ref"
  docker plugin upgrade --grant-all-permissions --skip-remote-check "$alias_name" "$ref" \
    </dev/null >"$work/upgrade.log" 2>&1 \
    || { cat "$work/upgrade.log" >&2; die "docker plugin upgrade $alias_name $ref failed (the plugin is left disabled)"; }
  log "docker plugin set $alias_name ${sets[*]}"
  docker plugin set "$alias_name" "${sets[@]}"
  docker plugin enable "$alias_name" >/dev/null
fi

enabled=$(docker plugin inspect -f '{{.Enabled}}' "$alias_name")
[ "$enabled" = true ] || die "plugin $alias_name is installed but not enabled"
log "plugin $alias_name: $(docker plugin inspect -f '{{.PluginReference}}' "$alias_name"), tiers: $(current_sources | tr '\n' ' ')"
