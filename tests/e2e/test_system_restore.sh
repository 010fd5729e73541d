#!/usr/bin/env bash
# Backup and restore round trip on the real daemon, with scripts/restore.sh:
#   1. the compose deployment takes a write load (acknowledgements recorded);
#      the engine is stopped (it seals its log) and the snapshotter archives
#      every log;
#   2. backup: the archive tier read through an `archive-of` volume mounted
#      read-only, into a tar file on the host;
#   3. the deployment, its volume and the volume's archive tier are destroyed;
#   4. the backup goes into a new tiered volume's archived/, and
#      `scripts/restore.sh --from THAT --into NEW` builds NEW: one snapshot,
#      owned 1000:1000; the source volume is unchanged; a second restore into
#      NEW (now holding data) is refused and changes nothing; a restore that
#      fails removes the volume it created;
#   5. the deployment on NEW serves every acknowledged write.
set -euo pipefail
source "$(dirname "$0")/system_lib.sh"

sys_init restore
sys_install_plugin "$SYS_ID"
sys_images
sys_busybox_image
sys_compose_env
export TIERED_SNAPSHOTTER_IMAGE="$SYS_SNAPSHOTTER_IMAGE"
original=$TIERED_VOLUME
sys_compose_up
sys_wait_engine "$TIERED_ENGINE_PORT"

# --- 1. writes; stop; everything archived ---------------------------------------
sys_load "$SYS_WORK/load1.json" 5
[ "$(redis-cli -p "$TIERED_ENGINE_PORT" set restore-marker "$SYS_ID")" = OK ] || die "SET failed"
sys_check "$SYS_WORK/load1.json"
sys_compose stop --timeout 30 engine
all_archived() {
  [ "$(sys_count "$SYS_DATA" 'cmdlog-*')" = 0 ] && [ "$(sys_count "$SYS_ARCHIVED/logs" 'cmdlog-*.log')" -gt 0 ]
}
wait_for 90 all_archived || die "the snapshotter did not archive every log: $(ls "$SYS_DATA" "$SYS_ARCHIVED/logs")"
snapshotter=$(sys_container snapshotter)
# The snapshotter's own health check (tiered-snapshotter health) passes.
snapshotter_healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$snapshotter")" = healthy ]; }
wait_for 60 snapshotter_healthy || die "snapshotter not healthy: $(docker inspect -f '{{json .State.Health}}' "$snapshotter")"

# --- 2. backup through an archive-of volume ----------------------------------------
arch_vol="$SYS_ID-archive"
on_exit docker volume rm -f "$arch_vol"
docker volume create -d "$SYS_PLUGIN" -o "archive-of=$original" "$arch_vol" >/dev/null
mkdir -p "$SYS_WORK/backup"
chown 1000:1000 "$SYS_WORK/backup"
docker run --rm --name "$SYS_ID-backup" -v "$arch_vol:/archive:ro" -v "$SYS_WORK/backup:/backup" "$SYS_BUSYBOX" \
  tar -C /archive -cf /backup/archive.tar logs snapshots
log "backup: $(tar -tf "$SYS_WORK/backup/archive.tar" | grep -c 'cmdlog-\|snapshot-') files"

# --- 3. destroy -----------------------------------------------------------------
docker volume rm "$arch_vol" >/dev/null
sys_compose down -v --timeout 30
docker volume inspect "$original" >/dev/null 2>&1 && die "volume $original survived compose down -v"
# keep-archive=true kept the archive tier's directory: destroy that too.
rm -rf --one-file-system "$SYS_ARCHIVED"
[ ! -e "$SYS_PRIMARY/$original" ] || die "the primary tier still holds $original"

# --- 4. restore -----------------------------------------------------------------
src="$SYS_ID-src" new="$SYS_ID-new" failed="$SYS_ID-failed"
on_exit docker volume rm -f "$src" "$new" "$failed"
docker volume create -d "$SYS_PLUGIN" -o uid=1000 -o gid=1000 -o mode=0750 "$src" >/dev/null
docker run --rm --name "$SYS_ID-load" -v "$src:/v" -v "$SYS_WORK/backup:/backup:ro" "$SYS_BUSYBOX" \
  tar -C /v/archived -xf /backup/archive.tar
src_sums() { (cd "$SYS_PRIMARY/$src" && find . -type f ! -name volume.json -exec sha256sum {} +; cd "$SYS_ARCHIVE/$src" && find . -type f -exec sha256sum {} +) | sort; }
src_before=$(src_sums)

"$TIERED_ROOT/scripts/restore.sh" --from "$src" --into "$new" >"$SYS_WORK/restore.out"
cat "$SYS_WORK/restore.out" >&2
grep -q "restored into volume $new" "$SYS_WORK/restore.out" || die "restore.sh did not report the restore"
new_data="$SYS_PRIMARY/$new/data"
mapfile -t restored < <(cd "$new_data" && ls -A)
{ [ "${#restored[@]}" = 2 ] && [ "${restored[0]}" = archived ] && [[ "${restored[1]}" == snapshot-*.snap ]]; } \
  || die "the new volume holds: ${restored[*]} (wanted archived/ and one snapshot)"
expect_eq "$(stat -c %u:%g "$new_data/${restored[1]}")" 1000:1000 "owner of the restored snapshot"
expect_eq "$(src_sums)" "$src_before" "the source volume's files after the restore"

# Into a volume that holds data now: refused, nothing changes.
new_before=$(cd "$new_data" && find . -exec stat -c '%n %s %Y' {} + | sort)
if "$TIERED_ROOT/scripts/restore.sh" --from "$src" --into "$new" >"$SYS_WORK/again.out" 2>&1; then
  die "a second restore into $new (which holds data) went through"
fi
grep -q 'not an empty directory' "$SYS_WORK/again.out" || { cat "$SYS_WORK/again.out" >&2; die "the refusal does not say why"; }
expect_eq "$(cd "$new_data" && find . -exec stat -c '%n %s %Y' {} + | sort)" "$new_before" "the new volume after a refused restore"
# A restore that fails (a point beyond the history) removes the volume it made.
if "$TIERED_ROOT/scripts/restore.sh" --from "$src" --into "$failed" --to-seq 999999999999 >"$SYS_WORK/failed.out" 2>&1; then
  die "a restore beyond the history went through"
fi
docker volume inspect "$failed" >/dev/null 2>&1 && die "restore.sh left the volume it created for a failed restore"
expect_eq "$(src_sums)" "$src_before" "the source volume's files after the failed restores"

# --- 5. serve the restored volume ---------------------------------------------------
export TIERED_VOLUME="$new"
sys_compose up -d
sys_wait_engine "$TIERED_ENGINE_PORT" 120
sys_check "$SYS_WORK/load1.json"
expect_eq "$(redis-cli -p "$TIERED_ENGINE_PORT" get restore-marker)" "$SYS_ID" "the last key written before the backup"
[ "$(redis-cli -p "$TIERED_ENGINE_PORT" set after-restore yes)" = OK ] || die "the restored engine refuses writes"
sys_compose down --timeout 30

SYS_OK=1
log "backup through archive-of, destroy, scripts/restore.sh, every acknowledged write back: ok"
