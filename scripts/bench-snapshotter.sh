#!/usr/bin/env bash
# Benchmarks the snapshotter on a real command log: the engine (release
# build) takes redis-benchmark SETs while rotating its log, then one
# `tiered-snapshotter once` pass is timed (replay of every completed log +
# snapshot + move of the logs to an archive on another file system, a tmpfs
# when run as root), then a point-in-time restore to the newest command, then
# the engine's restart (recovery from the new snapshot).
#
#   scripts/bench-snapshotter.sh
#   BENCH_REQUESTS=500000 BENCH_VALUE_BYTES=200 BENCH_ROTATE_BYTES=$((8<<20)) scripts/bench-snapshotter.sh
#   BENCH_DIR=/mnt/ssd scripts/bench-snapshotter.sh   # where the temp dir goes (default: $TMPDIR or /var/tmp)
#
# Not part of CI: speed is measured here, never asserted in tests.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"

requests=${BENCH_REQUESTS:-300000}
value_bytes=${BENCH_VALUE_BYTES:-200}
rotate_bytes=${BENCH_ROTATE_BYTES:-$((4 << 20))}
keyspace=${BENCH_KEYSPACE:-100000}
base=${BENCH_DIR:-${TMPDIR:-/var/tmp}}
for n in "$requests" "$value_bytes" "$rotate_bytes" "$keyspace"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "not a positive number: $n"
done
for tool in redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs redis-tools)"
done

log "building tiered-engine and tiered-snapshotter (release)"
cargo build --release --locked -p tiered-engine -p tiered-snapshotter --bins
engine_bin="$TIERED_ROOT/target/release/tiered-engine"
snap_bin="$TIERED_ROOT/target/release/tiered-snapshotter"

tmp=$(mktemp -d "$base/tiered-bench-snapshotter.XXXXXX")
on_exit rm -rf "$tmp"
dir="$tmp/vol"
mkdir -p "$dir/archived"
if [ "$(id -u)" = 0 ]; then
  mount -t tmpfs -o size=4g tmpfs "$dir/archived"
  on_exit umount -l "$dir/archived"
  archive_fs="tmpfs (another file system: moves copy)"
else
  archive_fs="same file system (not root: moves link)"
fi

port=$((20000 + RANDOM % 20000))
start_engine() {
  "$engine_bin" --dir "$1" --listen "127.0.0.1:$port" --rotate-bytes "$rotate_bytes" \
    >"$tmp/engine.log" 2>&1 &
  engine_pid=$!
  on_exit kill -9 "$engine_pid"
  wait_for 60 redis-cli -p "$port" ping || die "engine did not answer (see $tmp/engine.log)"
}
ms() { date +%s%3N; }

start_engine "$dir"
log "loading: $requests SETs of $value_bytes bytes over $keyspace keys, rotating every $rotate_bytes bytes"
redis-benchmark -p "$port" -t set -n "$requests" -d "$value_bytes" -r "$keyspace" -P 64 -c 20 -q >/dev/null
kill "$engine_pid"; wait "$engine_pid" 2>/dev/null || true

logs=$(find "$dir" -maxdepth 1 -name 'cmdlog-*.log' | wc -l)
log_bytes=$(find "$dir" -maxdepth 1 -name 'cmdlog-*.log' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
[ "$logs" -gt 0 ] || die "the engine sealed no log"

t0=$(ms)
"$snap_bin" once --dir "$dir" --keep-snapshots 1 2>"$tmp/once.log" || die "snapshot pass failed: $(tail -3 "$tmp/once.log")"
t1=$(ms)
snap=$(find "$dir" -maxdepth 1 -name 'snapshot-*.snap' | sort | tail -1)
[ -n "$snap" ] || die "no snapshot published"
seq=$(basename "$snap" .snap); seq=$((10#${seq#snapshot-}))
snap_bytes=$(stat -c %s "$snap")

t2=$(ms)
"$snap_bin" restore --from "$dir" --to-seq "$seq" --into "$tmp/restored" >/dev/null 2>"$tmp/restore.log" \
  || die "restore failed: $(tail -3 "$tmp/restore.log")"
t3=$(ms)

t4=$(ms)
start_engine "$dir"
t5=$(ms)
kill "$engine_pid"; wait "$engine_pid" 2>/dev/null || true

mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
rate() { awk -v b="$1" -v t="$2" 'BEGIN {printf "%.1f", (t > 0 ? b / 1048576 / (t / 1000) : 0)}'; }
echo "archive tier:      $archive_fs"
echo "completed logs:    $logs files, $(mib "$log_bytes") MiB, up to seq $seq"
echo "snapshot pass:     $((t1 - t0)) ms ($(rate "$log_bytes" $((t1 - t0))) MiB/s of log replayed and archived), snapshot $(mib "$snap_bytes") MiB"
echo "restore to seq:    $((t3 - t2)) ms"
echo "engine restart:    $((t5 - t4)) ms (recovery from the snapshot, until PING answers)"
