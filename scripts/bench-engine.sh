#!/usr/bin/env bash
# Benchmarks tiered-engine against redis-server at equal durability
# (appendonly yes, appendfsync always), on the same disk, in the same run:
# redis-benchmark SET and GET with 50 connections, without and with
# pipelining; one connection sending one big pipeline (BENCH_PIPE_PAIRS
# interleaved SET/GET pairs, and as many SETs alone), timed from the first
# byte sent to the last reply read; then the replay speed of a >= 1 GiB
# command log.
#
#   scripts/bench-engine.sh
#   BENCH_REQUESTS=100000 BENCH_PIPELINE=16 BENCH_REPLAY_BYTES=$((1<<30)) scripts/bench-engine.sh
#   BENCH_DIR=/mnt/ssd scripts/bench-engine.sh   # where the temp dirs go (default: $TMPDIR or /var/tmp)
#
# Not part of CI: speed is measured here, never asserted in tests.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"

requests=${BENCH_REQUESTS:-200000}
pipeline=${BENCH_PIPELINE:-16}
clients=${BENCH_CLIENTS:-50}
keyspace=${BENCH_KEYSPACE:-100000}
replay_bytes=${BENCH_REPLAY_BYTES:-$((1 << 30))}
pipe_pairs=${BENCH_PIPE_PAIRS:-20000}
base=${BENCH_DIR:-${TMPDIR:-/var/tmp}}

for tool in redis-server redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/test-deps.sh installs redis-server; scripts/deps.sh redis-tools)"
done

log "building tiered-engine (release)"
cargo build --release --locked -p tiered-engine --bin tiered-engine
engine_bin="$TIERED_ROOT/target/release/tiered-engine"

work=$(mktemp -d -p "$base" tiered-bench.XXXXXX)
on_exit rm -rf "$work"
mkdir -p "$work/engine" "$work/redis" "$work/replay"
log "temp dirs under $work ($(df -h --output=source,fstype "$work" | tail -1 | tr -s ' '))"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
engine_port=$(free_port)
redis_port=$(free_port)

"$engine_bin" --dir "$work/engine" --listen "127.0.0.1:$engine_port" --reserve-bytes 0 \
  >"$work/engine.log" 2>&1 &
engine_pid=$!
on_exit "kill $engine_pid 2>/dev/null; wait $engine_pid 2>/dev/null"

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" \
  --appendonly yes --appendfsync always --save "" --daemonize no \
  >"$work/redis.log" 2>&1 &
redis_pid=$!
on_exit "kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null"

wait_for 30 redis-cli -p "$engine_port" ping || die "tiered-engine did not start: $(cat "$work/engine.log")"
wait_for 30 redis-cli -p "$redis_port" ping || die "redis-server did not start: $(cat "$work/redis.log")"

# run_bench PORT TEST PIPELINE -> "rps p50 p99" (from redis-benchmark --csv)
run_bench() {
  local port=$1 test=$2 p=$3 n=$requests
  [ "$p" -gt 1 ] && n=$((requests * 5))
  redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n "$n" -r "$keyspace" -P "$p" -t "$test" --csv 2>/dev/null |
    tr -d '"' | awk -F, 'NR > 1 { print $2, $5, $7 }' | tail -1
}

printf '\n%-5s %-8s | %12s %8s %8s | %12s %8s %8s | %6s\n' \
  test pipeline "engine rps" p50ms p99ms "redis rps" p50ms p99ms ratio
printf '%s\n' "------------------------------------------------------------------------------------------------"
for p in 1 "$pipeline"; do
  for t in set get; do
    read -r e_rps e_p50 e_p99 <<<"$(run_bench "$engine_port" "$t" "$p")"
    read -r r_rps r_p50 r_p99 <<<"$(run_bench "$redis_port" "$t" "$p")"
    ratio=$(awk -v a="$e_rps" -v b="$r_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
    printf '%-5s %-8s | %12s %8s %8s | %12s %8s %8s | %6s\n' \
      "$t" "-P $p" "$e_rps" "$e_p50" "$e_p99" "$r_rps" "$r_p50" "$r_p99" "$ratio"
  done
done
printf '(ratio = engine rps / redis rps; %s clients, %s requests (x5 pipelined), %s random keys)\n\n' \
  "$clients" "$requests" "$keyspace"

# One connection, one pipeline: a read after a write must not cost an
# fsync of its own (the engine holds replies until the batch is durable).
python3 - "$work" "$pipe_pairs" <<'PY'
import sys
work, n = sys.argv[1], int(sys.argv[2])
def cmd(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
v = b"x" * 16
with open(work + "/setget.resp", "wb") as f:
    for i in range(n):
        k = b"pipe:%d" % i
        f.write(cmd(b"SET", k, v) + cmd(b"GET", k))
with open(work + "/set.resp", "wb") as f:
    for i in range(n):
        f.write(cmd(b"SET", b"pipe:%d" % i, v))
PY
# pipe_secs PORT FILE -> seconds for redis-cli --pipe to send FILE and read every reply
pipe_secs() {
  local t0 t1 out
  t0=$(date +%s%N)
  out=$(redis-cli -h 127.0.0.1 -p "$1" --pipe <"$2" 2>&1)
  t1=$(date +%s%N)
  grep -q 'errors: 0' <<<"$out" || die "pipeline to port $1 failed: $out"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}
printf '%-32s | %10s | %10s | %12s\n' "one pipeline, one connection" "engine s" "redis s" "engine/redis"
printf '%s\n' "------------------------------------------------------------------------"
for f in setget set; do
  label="$pipe_pairs SET+GET pairs"
  [ "$f" = set ] && label="$pipe_pairs SETs"
  e_s=$(pipe_secs "$engine_port" "$work/$f.resp")
  r_s=$(pipe_secs "$redis_port" "$work/$f.resp")
  ratio=$(awk -v a="$e_s" -v b="$r_s" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  printf '%-32s | %10s | %10s | %12s\n' "$label" "$e_s" "$r_s" "$ratio"
done
printf '(time from the first byte sent to the last reply read, redis-cli --pipe; goal: engine/redis <= 1.0)\n\n'

kill "$engine_pid" "$redis_pid"
wait "$engine_pid" 2>/dev/null || true
wait "$redis_pid" 2>/dev/null || true

log "replay benchmark: writing and recovering a $((replay_bytes >> 20)) MiB command log"
"$engine_bin" bench-replay --dir "$work/replay" --bytes "$replay_bytes"
