#!/usr/bin/env bash
# Stops the deployment that scripts/up.sh started, and optionally uninstalls it.
#
#   scripts/down.sh                     stop: `compose down` removes the engine
#                                       and snapshotter containers and their
#                                       network. The volume, the plugin, the
#                                       images and all data stay; scripts/up.sh
#                                       brings the same data back.
#   scripts/down.sh --purge             uninstall: also removes the volume from
#                                       Docker, the plugin and the two images.
#                                       The volume's DATA STAYS on both tiers
#                                       (reinstalling on the same tiers brings
#                                       the volume back with its data).
#   scripts/down.sh --purge --delete-data [--yes]
#                                       uninstall and also delete the volume's
#                                       data on both tiers. Asks first, unless
#                                       --yes.
#
# --purge prints exactly what it will remove, and where each tier's data is,
# before removing anything. It removes only what scripts/up.sh made: the
# compose project, the volume TIERED_VOLUME, the plugin TIERED_PLUGIN and the
# images tiered-engine:TAG and tiered-snapshotter:TAG. It refuses when the
# plugin has other volumes (remove or keep them first). The tier directories
# themselves (and the plugin's state in PRIMARY/.tiered) are never deleted.
#
# Environment: as for scripts/up.sh (COMPOSE_PROJECT_NAME, TIERED_VOLUME,
# TIERED_PLUGIN, TIERED_IMAGE_TAG).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

purge=0 delete_data=0 yes=0
for a in "$@"; do
  case "$a" in
    --purge) purge=1 ;;
    --delete-data) delete_data=1 ;;
    --yes) yes=1 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $a (accepted: --purge, --delete-data, --yes)" ;;
  esac
done
[ $delete_data = 0 ] || [ $purge = 1 ] || die "--delete-data goes with --purge (scripts/down.sh --purge --delete-data)"

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-tiered}
plugin=${TIERED_PLUGIN:-tiered}
export TIERED_DRIVER=$plugin
volume=${TIERED_VOLUME:-tiered-persistence}
tag=${TIERED_IMAGE_TAG:-latest}
images=("${TIERED_ENGINE_REPO:-tiered-engine}:$tag" "${TIERED_SNAPSHOTTER_REPO:-tiered-snapshotter}:$tag")
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (nothing to stop; start it to uninstall)"

if [ $purge = 0 ]; then
  # Never `down -v`: that would remove the volume, and with it the data.
  "$TIERED_ROOT/scripts/compose.sh" down --timeout 60
  log "stopped; volume $volume and its data are kept (scripts/up.sh starts it again; scripts/down.sh --purge uninstalls)"
  exit 0
fi

# --- the plan ---------------------------------------------------------------------
plugin_installed=0 primary="" archive=""
if docker plugin inspect "$plugin" >/dev/null 2>&1; then
  plugin_installed=1
  while IFS='=' read -r name src; do
    case "$name" in
      primary) primary=$src ;;
      archive) archive=$src ;;
    esac
  done < <(docker plugin inspect "$plugin" -f '{{range .Settings.Mounts}}{{.Name}}={{.Source}}{{"\n"}}{{end}}')
fi
volume_driver=$(docker volume inspect -f '{{.Driver}}' "$volume" 2>/dev/null || true)
if [ -n "$volume_driver" ] && [ "$volume_driver" != "$plugin" ] && [ "$volume_driver" != "$plugin:latest" ]; then
  die "volume $volume has driver $volume_driver, not $plugin: not one scripts/up.sh made with this plugin; nothing removed"
fi
others=()
if [ $plugin_installed = 1 ]; then
  mapfile -t others < <(docker volume ls -q --filter "driver=$plugin:latest" | grep -vxF "$volume" || true)
  [ ${#others[@]} = 0 ] || die "plugin $plugin also has the volumes: ${others[*]}
  they are not scripts/up.sh's: remove them (docker volume rm …) or keep the plugin; nothing removed"
fi
containers=$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" | wc -l)
present_images=()
for i in "${images[@]}"; do
  docker image inspect "$i" >/dev/null 2>&1 && present_images+=("$i")
done
size_of() { if [ -e "$1" ]; then du -sh --one-file-system "$1" 2>/dev/null | cut -f1; else echo "absent"; fi; }

{
  echo "scripts/down.sh --purge will remove:"
  echo "  compose project  $COMPOSE_PROJECT_NAME ($containers container(s) and its network)"
  if [ -n "$volume_driver" ]; then
    if [ $delete_data = 1 ]; then
      echo "  volume           $volume, WITH ITS DATA on both tiers (--delete-data)"
    else
      echo "  volume           $volume from Docker's list only; its data is KEPT on the tiers"
    fi
  else
    echo "  volume           $volume: not present"
  fi
  if [ $plugin_installed = 1 ]; then
    echo "  plugin           $plugin ($(docker plugin inspect -f '{{.PluginReference}}' "$plugin"))"
  else
    echo "  plugin           $plugin: not installed"
  fi
  echo "  images           ${present_images[*]:-(none present)}"
  if [ -n "$primary" ]; then
    echo "tier data of volume $volume:"
    echo "  primary tier     $primary/$volume   ($(size_of "$primary/$volume"))  $([ $delete_data = 1 ] && echo DELETED || echo kept)"
    echo "  archive tier     $archive/$volume   ($(size_of "$archive/$volume"))  $([ $delete_data = 1 ] && echo DELETED || echo kept)"
    echo "  plugin state     $primary/.tiered   kept (the tier directories $primary and $archive are never deleted)"
    if [ $delete_data = 0 ]; then
      echo "reinstalling on the same tiers brings the volume back with its data:"
      echo "  TIERED_PRIMARY_SOURCE=$primary TIERED_ARCHIVE_SOURCE=$archive scripts/up.sh"
    fi
  elif [ -n "$volume_driver" ]; then
    echo "tier data: unknown (plugin $plugin is not installed); nothing on the tiers is deleted"
  fi
} >&2

if [ $delete_data = 1 ]; then
  [ -n "$primary" ] || die "--delete-data needs the plugin installed (it deletes the volume through it); nothing removed"
  if [ $yes = 0 ]; then
    [ -t 0 ] || die "--delete-data deletes data: confirm with --yes (stdin is not a terminal); nothing removed"
    read -r -p "delete the data of volume $volume on both tiers? type the volume name to confirm: " answer
    [ "$answer" = "$volume" ] || die "not confirmed; nothing removed"
  fi
fi

# --- do it ----------------------------------------------------------------------
"$TIERED_ROOT/scripts/compose.sh" down --timeout 60
if [ -n "$volume_driver" ]; then
  if [ $delete_data = 1 ]; then
    # Through the plugin: it deletes the primary tier's data; the compose
    # file's keep-archive=true keeps the archive tier's, deleted here.
    docker volume rm "$volume" >/dev/null
    if [ -e "$archive/$volume" ]; then
      rm -rf --one-file-system -- "${archive:?}/${volume:?}"
    fi
    log "volume $volume and its data on both tiers deleted"
  fi
fi
if [ $plugin_installed = 1 ]; then
  docker plugin disable -f "$plugin" >/dev/null 2>&1 || true
  docker plugin rm -f "$plugin" >/dev/null
  log "plugin $plugin removed"
fi
if [ -n "$volume_driver" ] && [ $delete_data = 0 ]; then
  # With the plugin gone, the daemon cannot reach the volume's data: -f only
  # drops the daemon's own record of the volume. The data stays on the tiers.
  docker volume rm -f "$volume" >/dev/null 2>&1 || true
  if docker volume inspect "$volume" >/dev/null 2>&1; then
    die "the daemon still lists volume $volume (docker volume rm -f $volume)"
  fi
  log "volume $volume removed from Docker's list; its data is kept on the tiers"
fi
if [ ${#present_images[@]} -gt 0 ]; then
  docker image rm "${present_images[@]}" >/dev/null
  log "images removed: ${present_images[*]}"
fi
log "uninstalled"
