#!/usr/bin/env bash
# The plugin under a running deployment is upgraded in place, then removed
# and installed again; neither loses a volume, a write or an archived file.
#   1. compose deployment on the plugin installed from the local registry
#      (:v1), writes until the archive tier holds logs;
#   2. containers stopped, `scripts/registry.sh upgrade`: a new package of
#      the plugin pushed as :v2, `docker plugin disable -f`, `docker plugin
#      upgrade`, the tier sources set again (upgrade resets them to the
#      config's defaults), `enable`; the volume is listed again with its
#      tiers, the containers mount it again, every acknowledged write reads
#      back, every archived file is still there, unchanged;
#   3. `docker plugin rm -f`, then installed again from the registry (:v3) on
#      the same tiers: the same checks.
set -euo pipefail
source "$(dirname "$0")/system_lib.sh"

sys_init upg
sys_install_plugin
sys_images
sys_compose_env
sys_compose_up
sys_wait_engine "$TIERED_ENGINE_PORT"

sys_load "$SYS_WORK/load1.json" 5
archive_has_logs() { [ "$(sys_count "$SYS_ARCHIVED/logs" 'cmdlog-*.log')" -ge 1 ]; }
wait_for 60 archive_has_logs || die "nothing archived"
sys_check "$SYS_WORK/load1.json"

# Stop the containers first: the volume is unmounted while the plugin is
# replaced. What the archive holds now must survive everything below.
sys_compose stop -t 30
(cd "$SYS_ARCHIVED" && find . -type f ! -name '*.tmp' -print0 | sort -z | xargs -0 sha256sum) >"$SYS_WORK/archive.sha256"
[ -s "$SYS_WORK/archive.sha256" ] || die "empty archive"
log "archive holds $(wc -l <"$SYS_WORK/archive.sha256") files"

# After a plugin change: the volume is listed by the plugin, its Status
# names its tiers, the archive is intact, the containers mount it again and
# every acknowledged write is there.
check_after() { # check_after WHAT ACKED...
  local what=$1; shift
  docker volume ls -q --filter "driver=$SYS_PLUGIN:latest" | grep -qx "$TIERED_VOLUME" \
    || die "$what: volume $TIERED_VOLUME not listed (plugin sees: $(docker volume ls -q --filter "driver=$SYS_PLUGIN:latest" | tr '\n' ' '))"
  docker volume inspect -f '{{index .Status "primary_path"}}' "$TIERED_VOLUME" | grep -q "/$TIERED_VOLUME/data\$" \
    || die "$what: volume Status does not name its primary tier"
  local sources
  sources=$(docker plugin inspect -f '{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}' "$SYS_PLUGIN")
  [[ "$sources" == *"primary=$SYS_PRIMARY "* && "$sources" == *"archive=$SYS_ARCHIVE "* ]] \
    || die "$what: tier sources are now '$sources'"
  (cd "$SYS_ARCHIVED" && sha256sum --quiet -c "$SYS_WORK/archive.sha256") || die "$what: archived files changed"
  sys_compose start
  sys_wait_engine "$TIERED_ENGINE_PORT"
  sys_check "$@"
  log "$what: volume, archive and data intact"
}

# --- upgrade in place ------------------------------------------------------------
"$TIERED_ROOT/scripts/registry.sh" upgrade --alias "$SYS_PLUGIN" --repo "$SYS_ID" --tag v2
ref=$(docker plugin inspect -f '{{.PluginReference}}' "$SYS_PLUGIN")
[[ "$ref" == *"/$SYS_ID:v2" ]] || die "plugin reference after upgrade is $ref"
check_after "upgrade" "$SYS_WORK/load1.json"
sys_load "$SYS_WORK/load2.json" 3
sys_check "$SYS_WORK/load1.json" "$SYS_WORK/load2.json"
sys_compose stop -t 30

# --- remove and install again ----------------------------------------------------
docker plugin disable -f "$SYS_PLUGIN" >/dev/null
# Volumes still refer to the plugin, hence -f; their data is on the tiers.
docker plugin rm -f "$SYS_PLUGIN" >/dev/null
! docker plugin inspect "$SYS_PLUGIN" >/dev/null 2>&1 || die "plugin still installed"
[ -n "$(ls -A "$SYS_DATA")" ] || die "primary tier emptied by docker plugin rm"
"$TIERED_ROOT/scripts/registry.sh" install --alias "$SYS_PLUGIN" --repo "$SYS_ID" --tag v3 \
  --primary "$SYS_PRIMARY" --archive "$SYS_ARCHIVE"
check_after "reinstall" "$SYS_WORK/load1.json" "$SYS_WORK/load2.json"

SYS_OK=1
log "plugin upgrade and reinstall: ok"
