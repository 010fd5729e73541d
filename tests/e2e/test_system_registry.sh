#!/usr/bin/env bash
# The plugin installed the way users install plugins: packed, pushed to a
# local registry (Debian's docker-registry, started and stopped by
# scripts/registry.sh), pulled back with `docker plugin install
# --grant-all-permissions … primary.source=DIR archive.source=DIR`, both tier
# sources being temp dirs. A volume created with options shows its tiers in
# `docker volume inspect`'s Status, and a container writing into it lands on
# the right tier.
set -euo pipefail
source "$(dirname "$0")/system_lib.sh"

sys_init reg
sys_install_plugin

# The registry is gone once the script returns.
if pgrep -f "docker-registry serve /tmp/tiered-registry" >/dev/null; then
  die "scripts/registry.sh left its registry running"
fi
[ "$(docker plugin inspect -f '{{.Enabled}}' "$SYS_PLUGIN")" = true ] || die "plugin not enabled"
ref=$(docker plugin inspect -f '{{.PluginReference}}' "$SYS_PLUGIN")
[[ "$ref" == localhost:*/"$SYS_ID":v1 ]] || die "plugin reference is $ref, not from the local registry"
sources=$(docker plugin inspect -f '{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}' "$SYS_PLUGIN")
[[ "$sources" == *"primary=$SYS_PRIMARY "* && "$sources" == *"archive=$SYS_ARCHIVE "* ]] \
  || die "plugin mount sources are '$sources'"

vol="$SYS_ID-vol"
on_exit docker volume rm -f "$vol"
docker volume create -d "$SYS_PLUGIN" -o uid=1000 -o gid=1000 "$vol" >/dev/null
status=$(docker volume inspect -f '{{json .Status}}' "$vol")
log "Status: $status"
python3 - "$status" "$vol" <<'PY' || die "volume Status does not tell the tiers"
import json, sys
status, vol = json.loads(sys.argv[1]), sys.argv[2]
# Paths as the plugin sees them (inside its rootfs), sizes from statvfs.
assert status["primary_path"].endswith(f"/{vol}/data"), status
assert status["archive_path"].endswith(f"/{vol}"), status
for tier in ("primary", "archive"):
    assert status[f"{tier}_total_bytes"] > 0, status
    assert 0 < status[f"{tier}_free_bytes"] <= status[f"{tier}_total_bytes"], status
assert status["active_mounts"] == 0, status
assert (status["uid"], status["gid"]) == (1000, 1000), status
PY
[ -d "$SYS_PRIMARY/$vol/data" ] || die "no $SYS_PRIMARY/$vol/data on the primary tier"
[ -d "$SYS_ARCHIVE/$vol" ] || die "no $SYS_ARCHIVE/$vol on the archive tier"
[ "$(stat -c %u:%g "$SYS_PRIMARY/$vol/data")" = 1000:1000 ] || die "uid/gid options not applied to the volume root"

# A container (FROM scratch + busybox, no pull) writes into the volume and its
# archived/ as 1000:1000.
sys_busybox_image
docker run --rm --name "$SYS_ID-writer" -v "$vol:/app/persistence" "$SYS_BUSYBOX" \
  sh -c 'echo fast > /app/persistence/top && echo slow > /app/persistence/archived/old'
[ "$(cat "$SYS_PRIMARY/$vol/data/top")" = fast ] || die "file written at the volume root is not on the primary tier"
[ "$(cat "$SYS_ARCHIVE/$vol/old")" = slow ] || die "file written under archived/ is not on the archive tier"
[ ! -e "$SYS_PRIMARY/$vol/data/archived/old" ] || die "archived/ file also on the primary tier"

SYS_OK=1
log "plugin from the registry: ok"
