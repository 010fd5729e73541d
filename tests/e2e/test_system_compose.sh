#!/usr/bin/env bash
# The deployment of deploy/compose.yaml on a real daemon: the plugin from the
# local registry on temp tiers, the engine and the snapshotter containers
# (FROM-scratch images, non-root) on one tiered volume, a small rotation size.
#   1. Writes through the Redis protocol (acknowledgements recorded), the
#      engine's health check passes; snapshots appear; the archive tier's host dir
#      receives the old logs and snapshots while the primary keeps the
#      newest snapshot and the open log.
#   2. `docker kill` of the engine in the middle of a write load, start
#      again: every acknowledged write is there.
#   3. `docker restart` of both containers in the middle of a write load:
#      every acknowledged write (of all three loads) is there, and the
#      snapshotter carries on. Stopped, `tiered-engine verify` passes on a
#      read-only mount of the volume.
set -euo pipefail
source "$(dirname "$0")/system_lib.sh"

sys_init sys
sys_install_plugin
sys_images
sys_compose_env
sys_compose_up
engine=$(sys_container engine)
snapshotter=$(sys_container snapshotter)
[ -n "$engine" ] && [ -n "$snapshotter" ] || die "compose did not start both services"
sys_wait_engine "$TIERED_ENGINE_PORT"
[ "$(docker inspect -f '{{.Config.User}}' "$engine")" = 1000:1000 ] || die "engine does not run as 1000:1000"

# --- 1. writes, snapshots, archive ------------------------------------------
log "write load with ${TIERED_ROTATE_BYTES}-byte rotation"
sys_load "$SYS_WORK/load1.json" 8
sys_check "$SYS_WORK/load1.json"
[ "$(redis-cli -p "$TIERED_ENGINE_PORT" set via-redis-cli yes)" = OK ] || die "redis-cli SET failed"
[ "$(redis-cli -p "$TIERED_ENGINE_PORT" get via-redis-cli)" = yes ] || die "redis-cli GET failed"

# The health check (`tiered-engine health`, the image has no shell) passes on
# the running engine, and fails where no engine answers.
engine_healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$engine")" = healthy ]; }
wait_for 30 engine_healthy || die "engine container not healthy: $(docker inspect -f '{{json .State.Health}}' "$engine")"
if docker run --rm --name "$SYS_ID-health" "$SYS_ENGINE_IMAGE" health --addr 127.0.0.1:9 2>/dev/null; then
  die "tiered-engine health passed with no engine to ask"
fi


archived_settled() {
  [ "$(sys_count "$SYS_ARCHIVED/logs" 'cmdlog-*.log')" -ge 2 ] \
    && [ "$(sys_count "$SYS_ARCHIVED/snapshots" 'snapshot-*.snap')" -ge 1 ] \
    && [ "$(sys_count "$SYS_DATA" 'snapshot-*.snap')" -ge 1 ] \
    && [ "$(sys_count "$SYS_DATA" 'snapshot-*.snap')" -le "$TIERED_KEEP_SNAPSHOTS" ] \
    && [ "$(sys_count "$SYS_DATA" 'cmdlog-*.log')" -le 2 ]
}
wait_for 60 archived_settled || die "snapshots/archive did not settle: primary $(ls "$SYS_DATA" | tr '\n' ' '); archive logs $(ls "$SYS_ARCHIVED/logs" 2>/dev/null | wc -l), snapshots $(ls "$SYS_ARCHIVED/snapshots" 2>/dev/null | tr '\n' ' ')"
python3 - "$SYS_DATA" "$SYS_ARCHIVED" <<'PY' || die "tiers do not hold what they should"
import os, re, sys
data, archived = sys.argv[1:3]
def seqs(d, pat):
    out = []
    for n in os.listdir(d) if os.path.isdir(d) else []:
        m = re.fullmatch(pat, n)
        if m:
            out.append((n, tuple(int(g) for g in m.groups())))
    return out
top = os.listdir(data)
open_logs = [n for n in top if re.fullmatch(r"cmdlog-\d{20}\.open", n)]
primary_snaps = seqs(data, r"snapshot-(\d{20})\.snap")
archived_snaps = seqs(os.path.join(archived, "snapshots"), r"snapshot-(\d{20})\.snap")
archived_logs = seqs(os.path.join(archived, "logs"), r"cmdlog-(\d{20})-(\d{20})\.log")
assert open_logs, f"no open command log on the primary tier: {top}"
newest = max(s for _, (s,) in primary_snaps)
assert all(s < newest for _, (s,) in archived_snaps), "an archived snapshot is newer than the primary's"
assert all(last <= newest for _, (_, last) in archived_logs), "an archived log is not covered by the newest snapshot"
moved = {n for n, _ in archived_logs + archived_snaps} & set(top)
assert not moved, f"files both archived and on the primary tier: {moved}"
print(f"primary: {len(open_logs)} open log, snapshots {sorted(s for _, (s,) in primary_snaps)}; "
      f"archive: {len(archived_logs)} logs, {len(archived_snaps)} snapshots", file=sys.stderr)
PY
for port in "$TIERED_ENGINE_METRICS_PORT" "$TIERED_SNAPSHOTTER_METRICS_PORT"; do
  metrics=$(curl -fsS "http://127.0.0.1:$port/metrics") || die "no metrics on 127.0.0.1:$port"
  grep -q '^tiered_' <<<"$metrics" || die "no tiered_ metrics on 127.0.0.1:$port"
done

# --- backup of the archive alone, live: an archive-of volume mounted read-only
arch_vol="$SYS_ID-archive"
on_exit docker volume rm -f "$arch_vol"
docker volume create -d "$SYS_PLUGIN" -o "archive-of=$TIERED_VOLUME" "$arch_vol" >/dev/null
sys_busybox_image
mkdir -p "$SYS_WORK/backup"
chown 1000:1000 "$SYS_WORK/backup"
if docker run --rm --name "$SYS_ID-ro" -v "$arch_vol:/archive:ro" "$SYS_BUSYBOX" touch /archive/x 2>/dev/null; then
  die "the archive-of volume mounted :ro is writable"
fi
docker run --rm --name "$SYS_ID-backup" -v "$arch_vol:/archive:ro" -v "$SYS_WORK/backup:/backup" "$SYS_BUSYBOX" \
  tar -C /archive -cf /backup/archive.tar logs snapshots
mkdir -p "$SYS_WORK/restored"
tar -C "$SYS_WORK/restored" -xf "$SYS_WORK/backup/archive.tar"
backed_up=$(find "$SYS_WORK/restored" -type f ! -name '*.tmp' | wc -l)
[ "$backed_up" -ge 3 ] || die "backup holds only $backed_up files"
# Archived files never change: each one backed up is identical in the archive.
(cd "$SYS_WORK/restored" && find . -type f ! -name '*.tmp' -exec cmp {} "$SYS_ARCHIVED/{}" \;) \
  || die "backup differs from the archive tier"
log "archive backup through an archive-of volume: $backed_up files"

# --- 2. docker kill mid-load ---------------------------------------------------
log "docker kill of the engine under load"
sys_load "$SYS_WORK/load2.json" 30 &
load_pid=$!
sleep 2
docker kill "$engine" >/dev/null
wait "$load_pid" || die "load generator failed"
python3 -c 'import json, sys; a = json.load(open(sys.argv[1])); sys.exit(0 if all(a["errors"]) and sum(a["counts"]) > 0 else 1)' \
  "$SYS_WORK/load2.json" || die "the kill did not land in the middle of the load: $(cat "$SYS_WORK/load2.json")"
# The restart policy may already be bringing it back; start it either way.
docker start "$engine" >/dev/null 2>&1 || true
sys_wait_engine "$TIERED_ENGINE_PORT"
sys_check "$SYS_WORK/load1.json" "$SYS_WORK/load2.json"

# --- 3. docker restart of both mid-load ------------------------------------------
log "docker restart of both containers under load"
sys_load "$SYS_WORK/load3.json" 30 &
load_pid=$!
sleep 2
docker restart -t 30 "$engine" "$snapshotter" >/dev/null
wait "$load_pid" || die "load generator failed"
sys_wait_engine "$TIERED_ENGINE_PORT"
sys_check "$SYS_WORK/load1.json" "$SYS_WORK/load2.json" "$SYS_WORK/load3.json"
[ "$(docker inspect -f '{{.State.Running}}' "$snapshotter")" = true ] || die "snapshotter not running after restart"
# The snapshotter goes on archiving after its restart.
before=$(sys_count "$SYS_ARCHIVED/logs" 'cmdlog-*.log')
sys_load "$SYS_WORK/load4.json" 3
more_archived() { [ "$(sys_count "$SYS_ARCHIVED/logs" 'cmdlog-*.log')" -gt "$before" ]; }
wait_for 60 more_archived || die "no log archived after the restart"
sys_check "$SYS_WORK/load1.json" "$SYS_WORK/load2.json" "$SYS_WORK/load3.json" "$SYS_WORK/load4.json"

# Stopped: every snapshot, record and checksum on both tiers verifies, read
# through a read-only mount of the volume by the engine image's `verify`.
sys_compose stop -t 30
if ! out=$(docker run --rm --name "$SYS_ID-verify" -v "$TIERED_VOLUME:/app/persistence:ro" "$SYS_ENGINE_IMAGE" verify 2>&1); then
  printf '%s\n' "$out" | tail -20 >&2
  die "tiered-engine verify found damage on the tiers"
fi
log "verify: $(printf '%s\n' "$out" | grep '^summary' || true)"

SYS_OK=1
log "compose deployment: ok"
