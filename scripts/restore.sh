#!/usr/bin/env bash
# Restores a tiered volume's history into a new tiered volume, in one command:
#
#   scripts/restore.sh --from VOLUME --into NEW_VOLUME [--to-seq N | --to-time T]
#
# The state as of command N (--to-seq), as of time T (--to-time: RFC 3339 or
# unix milliseconds, every command logged at or before it), or the newest
# state (neither), with the meaning of `tiered-snapshotter restore`
# (docs/snapshotter.md). VOLUME may be in use (a live engine): its history is
# read through a read-only mount and left untouched.
#
# NEW_VOLUME is created on VOLUME's plugin with the options of the compose
# file (uid=1000, gid=1000, mode=0750, keep-archive=true) unless it exists;
# an existing one must be a tiered volume that holds no data (its root empty
# but for its empty `archived/`), else the restore is refused and nothing
# changes. The restore runs in the snapshotter image, as 1000:1000 (the user
# the images run as), with both volumes mounted and no network: NEW_VOLUME
# gets one file, snapshot-N.snap, written atomically beside its `archived/`.
# A NEW_VOLUME this script created is removed again when the restore fails.
#
# Then start an engine on it, e.g. the deployment:
#   scripts/down.sh && TIERED_VOLUME=NEW_VOLUME scripts/up.sh
#
# Environment: TIERED_SNAPSHOTTER_IMAGE (default
# tiered-snapshotter:${TIERED_IMAGE_TAG:-latest}; scripts/images.sh builds it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }

from="" into="" target=()
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from=${2:?--from needs a volume name}; shift 2 ;;
    --into) into=${2:?--into needs a volume name}; shift 2 ;;
    --to-seq)
      [ ${#target[@]} = 0 ] || die "give at most one of --to-seq, --to-time"
      [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--to-seq needs a sequence number, got '${2:-}'"
      target=(--to-seq "$2"); shift 2 ;;
    --to-time)
      [ ${#target[@]} = 0 ] || die "give at most one of --to-seq, --to-time"
      [ -n "${2:-}" ] || die "--to-time needs a time (RFC 3339 or unix milliseconds)"
      target=(--to-time "$2"); shift 2 ;;
    -h | --help) usage ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
{ [ -n "$from" ] && [ -n "$into" ]; } || usage
[ ${#target[@]} -gt 0 ] || target=(--latest)
[ "$from" != "$into" ] || die "--from and --into name the same volume ($from); restore into a new one"
for v in "$from" "$into"; do
  [[ "$v" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]+$ ]] || die "invalid volume name: $v"
done
image=${TIERED_SNAPSHOTTER_IMAGE:-tiered-snapshotter:${TIERED_IMAGE_TAG:-latest}}

docker info >/dev/null 2>&1 || die "the Docker daemon does not answer"
docker image inspect "$image" >/dev/null 2>&1 || die "no image $image: build it with scripts/images.sh (or set TIERED_SNAPSHOTTER_IMAGE)"
driver=$(docker volume inspect -f '{{.Driver}}' "$from" 2>/dev/null) || die "no volume $from"
# A tiered volume reports its tiers in its Status.
[ -n "$(docker volume inspect -f '{{with .Status}}{{index . "primary"}}{{end}}' "$from" 2>/dev/null)" ] \
  || die "volume $from (driver $driver) is not a tiered volume"

created=0
if into_driver=$(docker volume inspect -f '{{.Driver}}' "$into" 2>/dev/null); then
  [ "$into_driver" = "$driver" ] || die "volume $into exists on driver $into_driver, not $driver (the plugin of $from); nothing changed"
  log "volume $into exists; restoring into it only if it holds no data"
else
  log "creating volume $into on $driver"
  docker volume create -d "$driver" -o uid=1000 -o gid=1000 -o mode=0750 -o keep-archive=true "$into" >/dev/null
  created=1
fi

name=$(uniq_name restore)
on_exit docker rm -f "$name"
log "restoring $from (${target[*]}) into $into, in $image"
set +e
out=$(docker run --rm --name "$name" --network none --user 1000:1000 \
  -v "$from:/from:ro" -v "$into:/into" \
  "$image" restore --from /from --into /into "${target[@]}" 2>&1)
rc=$?
set -e
if [ $rc != 0 ]; then
  printf '%s\n' "$out" >&2
  if [ $created = 1 ]; then
    docker volume rm "$into" >/dev/null 2>&1 || log "could not remove volume $into again (docker volume rm $into)"
  fi
  if [ $created = 1 ]; then die "restore failed (above); $from is untouched, $into removed again"; fi
  die "restore failed (above); $from and $into are unchanged"
fi
summary=$(printf '%s\n' "$out" | grep '^restored' | tail -1)
log "${summary:-restored}"
cat <<EOF

$from restored into volume $into (${summary:-see above}).
$from is untouched. To serve the restored state, start an engine on $into, e.g.:
  scripts/down.sh && TIERED_VOLUME=$into scripts/up.sh
EOF
