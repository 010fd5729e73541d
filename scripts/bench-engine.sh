#!/usr/bin/env bash
# Benchmarks tiered-engine against redis-server at equal durability
# (appendonly yes, appendfsync always), on the same disk, in the same run,
# and prints every figure of issue #16 with the Redis figure beside it:
#
#   1. machine facts: cores, load, file system, fdatasync latency (p50 of
#      BENCH_FSYNC_N writes of 100 bytes + fdatasync in the bench dir)
#   2. SET and GET, BENCH_VALUE_BYTES values: 1 connection (p50 beside one
#      fdatasync), 50 connections, 50 pipelined BENCH_PIPELINE, 500
#      connections (BENCH_CONNS), rps p50 p99 and engine/redis
#   3. one connection sending one big pipeline (redis-cli --pipe)
#   4. memory of BENCH_KEYS keys (INFO used_memory and RSS of both)
#   5. SET at 50 connections idle vs while snapshots of the BENCH_KEYS keys
#      are built (tiered-snapshotter once, in a loop, on the engine's dir,
#      the engine sealing a segment every BENCH_SNAP_ROTATE_BYTES; with the
#      snapshotter's defaults, then in the normal CPU class, unpaced); Redis
#      idle vs during BGSAVE (in a loop)
#   6. log bytes per command: BENCH_LOG_SETS SETs, engine segments vs the
#      Redis AOF; then replay of the same commands: engine restart vs Redis
#      loading its AOF
#   7. tiered-engine bench-replay (BENCH_REPLAY_BYTES of log)
#   8. restart time vs history: BENCH_HISTORY_KEYS keys after each total of
#      BENCH_HISTORY_GIB GiB of history, a snapshot taken after each step
#
# Tunables (environment; defaults in brackets, BENCH_QUICK=1 for the smaller
# second value, a smoke test of a few minutes):
#   BENCH_DIR            where the temp dirs go [$TMPDIR or /var/tmp]
#   BENCH_QUICK          1: small sizes everywhere [0]
#   BENCH_REQUESTS       requests per redis-benchmark row (x5 pipelined,
#                        /10 with 1 connection) [200000 | 20000]
#   BENCH_VALUE_BYTES    value size (-d) [64]
#   BENCH_KEYSPACE       random keys of the rows of 2. (-r) [100000]
#   BENCH_CONNS          connection counts of 2. [1 50 500]
#   BENCH_ROUNDS         rounds of each row of 2., engine and redis taking
#                        turns; medians printed [3 | 1]
#   BENCH_PIPELINE       pipeline depth of the pipelined row [16]
#   BENCH_PIPE_PAIRS     SET+GET pairs of 3. [20000 | 5000]
#   BENCH_FSYNC_N        fdatasync samples [200]
#   BENCH_KEYS           keys of 4. and 5. [1000000 | 100000]
#   BENCH_SNAP_REQUESTS  SETs of each run of 5. [300000 | 50000]
#   BENCH_SNAP_ROTATE_BYTES  engine --rotate-bytes in 5. [8388608]
#   BENCH_LOG_SETS       SETs of 6. [3000000 | 300000]
#   BENCH_REPLAY_BYTES   log size of 7. [1073741824 | 67108864]
#   BENCH_HISTORY_GIB    history totals of 8., ascending [1 2 4 | 0.05 0.1]
#   BENCH_HISTORY_KEYS   keys of 8. [1000000 | 100000]
#   BENCH_SKIP           sections to skip, by number (e.g. "7 8") []
#
#   scripts/bench-engine.sh
#   BENCH_QUICK=1 scripts/bench-engine.sh
#   BENCH_HISTORY_GIB="1 4 8" BENCH_DIR=/mnt/ssd scripts/bench-engine.sh
#
# Not part of CI: speed is measured here, never asserted in tests.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"

quick=${BENCH_QUICK:-0}
q() { if [ "$quick" = 1 ]; then echo "$2"; else echo "$1"; fi; }
requests=${BENCH_REQUESTS:-$(q 200000 20000)}
vbytes=${BENCH_VALUE_BYTES:-64}
keyspace=${BENCH_KEYSPACE:-100000}
conns=${BENCH_CONNS:-1 50 500}
pipeline=${BENCH_PIPELINE:-16}
pipe_pairs=${BENCH_PIPE_PAIRS:-$(q 20000 5000)}
fsync_n=${BENCH_FSYNC_N:-200}
rounds=${BENCH_ROUNDS:-$(q 3 1)}
keys=${BENCH_KEYS:-$(q 1000000 100000)}
snap_requests=${BENCH_SNAP_REQUESTS:-$(q 300000 50000)}
snap_rotate=${BENCH_SNAP_ROTATE_BYTES:-$((8 << 20))}
log_sets=${BENCH_LOG_SETS:-$(q 3000000 300000)}
replay_bytes=${BENCH_REPLAY_BYTES:-$(q $((1 << 30)) $((64 << 20)))}
history_gib=${BENCH_HISTORY_GIB:-$(q "1 2 4" "0.05 0.1")}
history_keys=${BENCH_HISTORY_KEYS:-$(q 1000000 100000)}
skip=" ${BENCH_SKIP:-} "
base=${BENCH_DIR:-${TMPDIR:-/var/tmp}}

for tool in redis-server redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/test-deps.sh installs redis-server and redis-tools)"
done

log "building tiered-engine and tiered-snapshotter (release)"
cargo build --release --locked -p tiered-engine --bin tiered-engine -p tiered-snapshotter --bin tiered-snapshotter
engine_bin="$TIERED_ROOT/target/release/tiered-engine"
snapshotter_bin="$TIERED_ROOT/target/release/tiered-snapshotter"

work=$(mktemp -d -p "$base" tiered-bench.XXXXXX)
on_exit rm -rf "$work"

# ---------------------------------------------------------------- helpers

want() { [[ "$skip" != *" $1 "* ]]; }
# medians: reads lines of numbers, prints the median of each column
medians() {
  awk 'NF { for (i = 1; i <= NF; i++) v[i, NR] = $i; n = NR; w = NF }
    END { for (i = 1; i <= w; i++) { k = 0
            for (j = 1; j <= n; j++) if ((i, j) in v) a[++k] = v[i, j]
            for (x = 2; x <= k; x++) { t = a[x]; for (y = x - 1; y >= 1 && a[y] > t; y--) a[y + 1] = a[y]; a[y + 1] = t }
            printf "%s%s", (i > 1 ? " " : ""), (k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2) }
          print "" }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
now_ns() { date +%s%N; }
ms_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.0f", (b - a) / 1e6 }'; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_pong PORT SECS: polls PING every 10 ms until it answers PONG (not
# -LOADING); fails after SECS.
wait_pong() {
  local port=$1 deadline=$((SECONDS + $2))
  until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.01
  done
}

# start_engine DIR [ARGS...]: starts the engine on a new port (ENGINE_PORT,
# ENGINE_PID) and waits for PONG; START_MS = ms from exec to PONG.
start_engine() {
  local dir=$1 t0
  shift
  mkdir -p "$dir"
  ENGINE_PORT=$(free_port)
  t0=$(now_ns)
  "$engine_bin" --dir "$dir" --listen "127.0.0.1:$ENGINE_PORT" --reserve-bytes 0 "$@" \
    >>"$dir.engine.log" 2>&1 &
  ENGINE_PID=$!
  on_exit "kill $ENGINE_PID 2>/dev/null"
  wait_pong "$ENGINE_PORT" 600 || die "tiered-engine did not start: $(tail -5 "$dir.engine.log")"
  START_MS=$(ms_since "$t0")
}

# start_redis DIR [ARGS...]: redis-server with appendonly yes, appendfsync
# always (REDIS_PORT, REDIS_PID, START_MS as for the engine).
start_redis() {
  local dir=$1 t0
  shift
  mkdir -p "$dir"
  REDIS_PORT=$(free_port)
  t0=$(now_ns)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" \
    --appendonly yes --appendfsync always --save "" --daemonize no "$@" \
    >>"$dir.redis.log" 2>&1 &
  REDIS_PID=$!
  on_exit "kill $REDIS_PID 2>/dev/null"
  wait_pong "$REDIS_PORT" 600 || die "redis-server did not start: $(tail -5 "$dir.redis.log")"
  START_MS=$(ms_since "$t0")
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# bench PORT TEST CLIENTS PIPELINE N KEYSPACE -> "rps p50 p99" (redis-benchmark --csv)
bench() {
  redis-benchmark -h 127.0.0.1 -p "$1" -t "$2" -c "$3" -P "$4" -n "$5" -r "$6" -d "$vbytes" --csv 2>/dev/null |
    tr -d '"' | awk -F, 'NR > 1 { print $2, $5, $7 }' | tail -1
}

# gen_sets FILE N: N SETs of key:0..key:N-1 with BENCH_VALUE_BYTES values, as RESP
gen_sets() {
  python3 - "$1" "$2" "$vbytes" <<'PY'
import sys
path, n, vb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
v = b"v" * vb
with open(path, "wb") as f:
    out = []
    for i in range(n):
        k = b"key:%d" % i
        out.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, vb, v))
        if len(out) == 10000:
            f.write(b"".join(out))
            out = []
    f.write(b"".join(out))
PY
}

# pipe PORT FILE: sends FILE with redis-cli --pipe, fails on any error reply
pipe() {
  local out
  out=$(redis-cli -h 127.0.0.1 -p "$1" --pipe <"$2" 2>&1)
  grep -q 'errors: 0' <<<"$out" || die "pipeline to port $1 failed: $out"
}

info_field() { redis-cli -p "$1" info "$2" | tr -d '\r' | awk -F: -v k="$3" '$1 == k { print $2 }'; }
rss_bytes() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
# Sum of the sizes of the files matching the glob patterns (none: 0)
sum_sizes() {
  local f total=0
  for f in "$@"; do [ -f "$f" ] && total=$((total + $(stat -c %s "$f"))); done
  echo "$total"
}

# ---------------------------------------------------------------- 1. machine

# fsync_probe: p50 and p99 in us of BENCH_FSYNC_N writes of 100 bytes, each
# followed by fdatasync, in the bench dir
fsync_probe() {
  python3 - "$work" "$fsync_n" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
fd = os.open(os.path.join(d, "fsync-probe"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
lat = []
for i in range(n):
    os.write(fd, b"x" * 100)
    t = time.perf_counter()
    os.fdatasync(fd)
    lat.append((time.perf_counter() - t) * 1e6)
os.close(fd)
lat.sort()
print("%.0f %.0f" % (lat[len(lat) // 2], lat[min(len(lat) - 1, len(lat) * 99 // 100)]))
PY
}

fsync_stats=$(fsync_probe)
read -r fsync_p50_us fsync_p99_us <<<"$fsync_stats"
fstype=$(df --output=fstype "$work" | tail -1)
device=$(df --output=source "$work" | tail -1)
printf '\n== 1. machine\n'
printf 'cores: %s   load average: %s   kernel: %s\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(uname -r)"
printf 'bench dir: %s on %s (%s)\n' "$work" "$device" "$fstype"
printf 'fdatasync of 100 bytes, %s times: p50 %s us, p99 %s us\n' "$fsync_n" "$fsync_p50_us" "$fsync_p99_us"
printf 'redis-server: %s\n' "$(redis-server --version | awk '{ print $3 }')"
if [ "$quick" = 1 ]; then printf 'BENCH_QUICK=1: small sizes (a smoke test, not figures)\n'; fi

# ---------------------------------------------------------------- 2. + 3. latency and throughput

if want 2 || want 3; then
  start_engine "$work/e2"
  e_pid=$ENGINE_PID e_port=$ENGINE_PORT
  start_redis "$work/r2"
  r_pid=$REDIS_PID r_port=$REDIS_PORT
fi

if want 2; then
  printf '\n== 2. redis-benchmark, %s-byte values, %s random keys\n' "$vbytes" "$keyspace"
  printf '%-4s %-10s | %10s %7s %7s | %10s %7s %7s | %6s | %s\n' \
    test clients "engine rps" p50ms p99ms "redis rps" p50ms p99ms ratio "ratio per round"
  printf '%s\n' "-----------------------------------------------------------------------------------------------"
  rows=()
  for c in $conns; do rows+=("$c 1"); done
  rows+=("50 $pipeline")
  for row in "${rows[@]}"; do
    read -r c p <<<"$row"
    n=$requests
    [ "$p" -gt 1 ] && n=$((requests * 5))
    [ "$c" -eq 1 ] && n=$((requests / 10))
    label="c=$c"
    [ "$p" -gt 1 ] && label="c=$c P$p"
    for t in set get; do
      # the two servers take turns, round after round, so that a change in
      # the machine's speed during the row reaches both
      e_runs='' r_runs='' ratios=''
      probes=''
      for ((i = 0; i < rounds; i++)); do
        # one connection's SET is one fdatasync: measure it beside each round
        if [ "$c" -eq 1 ] && [ "$t" = set ]; then probes+="$(fsync_probe)"$'\n'; fi
        e_run=$(bench "$e_port" "$t" "$c" "$p" "$n" "$keyspace")
        r_run=$(bench "$r_port" "$t" "$c" "$p" "$n" "$keyspace")
        e_runs+="$e_run"$'\n' r_runs+="$r_run"$'\n'
        ratios+="$(ratio "${e_run%% *}" "${r_run%% *}")"$'\n'
      done
      read -r e_rps e_p50 e_p99 <<<"$(medians <<<"$e_runs")"
      read -r r_rps r_p50 r_p99 <<<"$(medians <<<"$r_runs")"
      printf '%-4s %-10s | %10s %7s %7s | %10s %7s %7s | %6s | %s\n' \
        "$t" "$label" "$e_rps" "$e_p50" "$e_p99" "$r_rps" "$r_p50" "$r_p99" "$(ratio "$e_rps" "$r_rps")" \
        "$(sort -g <<<"$ratios" | awk 'NF { r = r (r ? " " : "") $1 } END { print r }')"
      if [ "$c" -eq 1 ] && [ "$t" = set ]; then
        set_c1_p50=$e_p50 set_c1_p50_redis=$r_p50
        read -r set_c1_fsync_us _ <<<"$(medians <<<"$probes")"
      fi
    done
  done
  printf '(medians of %s rounds, the servers alternating; ratio = engine rps / redis rps of the medians,\n' "$rounds"
  printf ' then each round'"'"'s ratio, ascending; %s requests per row, x5 pipelined, /10 with 1 connection)\n' "$requests"
  if [ -n "${set_c1_p50:-}" ]; then
    printf 'SET c=1: p50 %s ms = one fdatasync (%s us, the median of a probe before each round) + %s us\n' \
      "$set_c1_p50" "$set_c1_fsync_us" \
      "$(awk -v a="$set_c1_p50" -v f="$set_c1_fsync_us" 'BEGIN { printf "%.0f", a * 1000 - f }')"
    printf '         (redis: + %s us; goal: engine within 30 us)\n' \
      "$(awk -v a="$set_c1_p50_redis" -v f="$set_c1_fsync_us" 'BEGIN { printf "%.0f", a * 1000 - f }')"
  fi
fi

if want 3; then
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
  pipe_secs() {
    local t0
    t0=$(now_ns)
    pipe "$1" "$2"
    awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
  }
  printf '\n== 3. one connection, one pipeline (redis-cli --pipe)\n'
  printf '%-28s | %9s | %9s | %12s\n' "" "engine s" "redis s" "engine/redis"
  for f in setget set; do
    label="$pipe_pairs SET+GET pairs"
    [ "$f" = set ] && label="$pipe_pairs SETs"
    e_s=$(pipe_secs "$e_port" "$work/$f.resp")
    r_s=$(pipe_secs "$r_port" "$work/$f.resp")
    printf '%-28s | %9s | %9s | %12s\n' "$label" "$e_s" "$r_s" "$(ratio "$e_s" "$r_s")"
  done
  printf '(time from the first byte sent to the last reply read; goal: engine/redis <= 1.0)\n'
fi

if want 2 || want 3; then
  stop_pid "$e_pid"
  stop_pid "$r_pid"
fi

# ---------------------------------------------------------------- 4. + 5. memory, snapshots under load

if want 4 || want 5; then
  log "loading $keys keys into both servers"
  gen_sets "$work/keys.resp" "$keys"
  start_engine "$work/e5" --rotate-bytes "$snap_rotate"
  e_pid=$ENGINE_PID e_port=$ENGINE_PORT
  start_redis "$work/r5"
  r_pid=$REDIS_PID r_port=$REDIS_PORT
  e_mem0=$(info_field "$e_port" memory used_memory)
  e_rss0=$(rss_bytes "$e_pid")
  r_mem0=$(info_field "$r_port" memory used_memory)
  r_rss0=$(rss_bytes "$r_pid")
  pipe "$e_port" "$work/keys.resp"
  pipe "$r_port" "$work/keys.resp"
  rm -f "$work/keys.resp"
  e_mem=$(info_field "$e_port" memory used_memory)
  e_rss=$(rss_bytes "$e_pid")
  r_mem=$(info_field "$r_port" memory used_memory)
  r_rss=$(rss_bytes "$r_pid")
  e_keys=$(redis-cli -p "$e_port" dbsize)
  r_keys=$(redis-cli -p "$r_port" dbsize)
fi

if want 4; then
  printf '\n== 4. memory, %s keys of %s-byte values\n' "$keys" "$vbytes"
  printf '%-14s | %8s | %14s | %14s | %10s\n' "" keys "empty bytes" "loaded bytes" "bytes/key"
  # growth per key of each figure: NAME KEYS EMPTY LOADED
  declare -A per_key
  for row in "engine used $e_keys $e_mem0 $e_mem" "redis used $r_keys $r_mem0 $r_mem" \
    "engine rss $e_keys $e_rss0 $e_rss" "redis rss $r_keys $r_rss0 $r_rss"; do
    read -r who what n empty loaded <<<"$row"
    per_key[$who $what]=$(((loaded - empty) / n))
    printf '%-14s | %8s | %14s | %14s | %10s\n' "$who $what" "$n" "$empty" "$loaded" "${per_key[$who $what]}"
  done
  printf '(used: INFO used_memory, the allocator'"'"'s live bytes (both servers use jemalloc); rss: from /proc;\n'
  printf ' engine/redis per key: used %s, rss %s)\n' \
    "$(ratio "${per_key[engine used]}" "${per_key[redis used]}")" \
    "$(ratio "${per_key[engine rss]}" "${per_key[redis rss]}")"
fi

if want 5; then
  printf '\n== 5. SET c=50 (%s requests, %s random keys) idle vs while snapshots of %s keys are built\n' \
    "$snap_requests" "$keys" "$keys"
  # one pass first, so the timed ones build on a snapshot, as in steady state
  "$snapshotter_bin" once --dir "$work/e5" >"$work/snap.log" 2>&1 || die "snapshotter: $(tail -5 "$work/snap.log")"
  # under_load PORT KIND: runs the benchmark while KIND (snap|bgsave)
  # repeats; prints "rps p50 p99 passes avg_pass_ms"
  under_load() {
    local port=$1 kind=$2 out=$work/under.$2 passes=0 total_ms=0 t0 bpid
    bench "$port" set 50 1 "$snap_requests" "$keys" >"$out" &
    bpid=$!
    while kill -0 "$bpid" 2>/dev/null; do
      t0=$(now_ns)
      if [ "$kind" = snap ]; then
        "$snapshotter_bin" once --dir "$work/e5" "${snap_args[@]}" >>"$work/snap.log" 2>&1 ||
          die "snapshotter: $(tail -5 "$work/snap.log")"
      else
        redis-cli -p "$port" bgsave >/dev/null
        sleep 0.05
        while [ "$(info_field "$port" persistence rdb_bgsave_in_progress)" = 1 ]; do sleep 0.02; done
      fi
      passes=$((passes + 1))
      total_ms=$((total_ms + $(ms_since "$t0")))
    done
    wait "$bpid"
    echo "$(cat "$out") $passes $((total_ms / (passes > 0 ? passes : 1)))"
  }
  read -r ei_rps _ ei_p99 <<<"$(bench "$e_port" set 50 1 "$snap_requests" "$keys")"
  snap_args=()
  read -r el_rps _ el_p99 e_passes e_pass_ms <<<"$(under_load "$e_port" snap)"
  # the same with the snapshotter as it was before session 6: normal CPU
  # class, unpaced writes
  snap_args=(--cpu-class normal --nice 0 --snapshot-write-mib-per-sec 0)
  read -r en_rps _ en_p99 n_passes n_pass_ms <<<"$(under_load "$e_port" snap)"
  read -r ri_rps _ ri_p99 <<<"$(bench "$r_port" set 50 1 "$snap_requests" "$keys")"
  read -r rl_rps _ rl_p99 r_passes r_pass_ms <<<"$(under_load "$r_port" bgsave)"
  printf '%-8s | %10s %7s | %10s %7s | %9s %9s | %s\n' \
    "" "idle rps" p99ms "load rps" p99ms "rps ratio" "p99 ratio" "during"
  printf '%-8s | %10s %7s | %10s %7s | %9s %9s | %s\n' engine "$ei_rps" "$ei_p99" "$el_rps" "$el_p99" \
    "$(ratio "$el_rps" "$ei_rps")" "$(ratio "$el_p99" "$ei_p99")" "$e_passes snapshotter passes, ${e_pass_ms} ms each"
  printf '%-8s | %10s %7s | %10s %7s | %9s %9s | %s\n' "(normal)" "$ei_rps" "$ei_p99" "$en_rps" "$en_p99" \
    "$(ratio "$en_rps" "$ei_rps")" "$(ratio "$en_p99" "$ei_p99")" "$n_passes passes, ${n_pass_ms} ms each, --cpu-class normal --nice 0, unpaced"
  printf '%-8s | %10s %7s | %10s %7s | %9s %9s | %s\n' redis "$ri_rps" "$ri_p99" "$rl_rps" "$rl_p99" \
    "$(ratio "$rl_rps" "$ri_rps")" "$(ratio "$rl_p99" "$ri_p99")" "$r_passes BGSAVEs, ${r_pass_ms} ms each"
  printf "(ratio = under load / idle; goal for the engine: rps >= 0.95, p99 <= 1.1; engine --rotate-bytes %s; snapshotter first row: --cpu-class %s, --snapshot-write-mib-per-sec %s)\n" "$snap_rotate" "${TIERED_CPU_CLASS:-its default}" "${TIERED_SNAPSHOT_WRITE_MIB_PER_SEC:-its default}"
fi

if want 4 || want 5; then
  stop_pid "$e_pid"
  stop_pid "$r_pid"
fi

# ---------------------------------------------------------------- 6. log bytes and replay vs AOF

if want 6; then
  printf '\n== 6. %s SETs of %s-byte values (redis-benchmark -P 16, %s random keys): log bytes, then replay\n' \
    "$log_sets" "$vbytes" "$keys"
  start_engine "$work/e6"
  e_pid=$ENGINE_PID e_port=$ENGINE_PORT
  # no AOF rewrite: the AOF holds the same commands as the engine's log
  start_redis "$work/r6" --auto-aof-rewrite-percentage 0
  r_pid=$REDIS_PID r_port=$REDIS_PORT
  bench "$e_port" set 50 16 "$log_sets" "$keys" >/dev/null
  bench "$r_port" set 50 16 "$log_sets" "$keys" >/dev/null
  e_seq=$(info_field "$e_port" persistence last_seq)
  # while it runs: the open segment is preallocated to --rotate-bytes
  e_files=$(sum_sizes "$work"/e6/cmdlog-*)
  stop_pid "$e_pid"
  stop_pid "$r_pid"
  e_used=$("$engine_bin" verify --dir "$work/e6" 2>/dev/null | awk '/^summary:/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "bytes,") print $i }')
  r_aof=$(sum_sizes "$work"/r6/appendonlydir/*)
  printf '%-8s | %10s | %14s | %14s | %9s\n' "" commands "bytes" "bytes/command" "vs redis"
  printf '%-8s | %10s | %14s | %14s | %9s\n' "engine" "$e_seq" "$e_used" "$((e_used / e_seq))" "$(ratio "$e_used" "$r_aof")"
  printf '%-8s | %10s | %14s | %14s | %9s\n' "redis" "$log_sets" "$r_aof" "$((r_aof / log_sets))" 1.00
  printf '(redis: its AOF dir, auto-aof-rewrite off so that it holds every command)\n'
  printf '(engine: segment headers and batches actually used (verify after a clean stop, which seals and cuts the open segment); while it ran, its cmdlog files took %s bytes with the preallocated open segment)\n' "$e_files"

  start_engine "$work/e6"
  e_pid=$ENGINE_PID e_port=$ENGINE_PORT e_start=$START_MS
  e_rec_ms=$(info_field "$e_port" persistence recovery_duration_ms)
  e_rec_n=$(info_field "$e_port" persistence recovery_replayed_commands)
  stop_pid "$e_pid"
  start_redis "$work/r6" --auto-aof-rewrite-percentage 0
  r_pid=$REDIS_PID r_start=$START_MS
  r_load=$(grep -o 'DB loaded from append only file: [0-9.]* seconds' "$work/r6.redis.log" | tail -1 | awk '{ print $(NF - 1) }')
  stop_pid "$r_pid"
  printf '%-8s | %14s | %12s | %14s\n' "restart" "start ms" "replay ms" "commands/s"
  printf '%-8s | %14s | %12s | %14s\n' engine "$e_start" "$e_rec_ms" \
    "$(awk -v n="$e_rec_n" -v ms="$e_rec_ms" 'BEGIN { if (ms > 0) printf "%.0f", n / ms * 1000; else print "n/a" }')"
  printf '%-8s | %14s | %12s | %14s\n' redis "$r_start" "$(awk -v s="${r_load:-0}" 'BEGIN { printf "%.0f", s * 1000 }')" \
    "$(awk -v n="$log_sets" -v s="${r_load:-0}" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "n/a" }')"
  printf '(start = exec to the first PONG; replay = engine INFO recovery_duration_ms, redis "DB loaded from append only file"; redis/engine start time %s, goal >= 5)\n' \
    "$(ratio "$r_start" "$e_start")"
fi

# ---------------------------------------------------------------- 7. bench-replay

if want 7; then
  printf '\n== 7. tiered-engine bench-replay, %s MiB of SETs (page cache warm)\n' "$((replay_bytes >> 20))"
  "$engine_bin" bench-replay --dir "$work/replay" --bytes "$replay_bytes" --value-bytes "$vbytes" 2>/dev/null
  rm -rf "$work/replay"
  printf '(goal: >= 5M commands/s)\n'
fi

# ---------------------------------------------------------------- 8. restart time vs history

if want 8; then
  printf '\n== 8. restart with %s keys after growing history (SET -P 16 c=50, %s-byte values; a snapshot after each step)\n' \
    "$history_keys" "$vbytes"
  printf '%-12s | %12s | %10s | %12s | %10s | %s\n' "history GiB" "log bytes" "start ms" "replayed" "replay ms" snapshot
  start_engine "$work/e8"
  e_pid=$ENGINE_PID e_port=$ENGINE_PORT
  # each SET logs ~ (vbytes + 60) bytes
  per_set=$((vbytes + 60))
  for gib in $history_gib; do
    target=$(awk -v g="$gib" 'BEGIN { printf "%.0f", g * 1073741824 }')
    while :; do
      have=$(sum_sizes "$work"/e8/cmdlog-*.log "$work"/e8/archived/logs/cmdlog-*.log)
      [ "$have" -lt "$target" ] || break
      n=$(((target - have) / per_set + 1000))
      [ "$n" -gt 5000000 ] && n=5000000
      bench "$e_port" set 50 16 "$n" "$history_keys" >/dev/null
      "$snapshotter_bin" once --dir "$work/e8" >>"$work/snap8.log" 2>&1 || die "snapshotter: $(tail -5 "$work/snap8.log")"
    done
    stop_pid "$e_pid"
    start_engine "$work/e8"
    e_pid=$ENGINE_PID e_port=$ENGINE_PORT
    printf '%-12s | %12s | %10s | %12s | %10s | %s\n' "$gib" "$have" "$START_MS" \
      "$(info_field "$e_port" persistence recovery_replayed_commands)" \
      "$(info_field "$e_port" persistence recovery_duration_ms)" \
      "$(basename "$(info_field "$e_port" persistence last_snapshot_loaded)")"
  done
  stop_pid "$e_pid"
  printf '(log bytes = sealed segments, primary and archive; start = exec to the first PONG; goal: flat)\n'
fi
