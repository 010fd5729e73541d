#!/usr/bin/env bash
# Memory per key, engine vs redis-server, for each data type: a fresh
# tiered-engine and a fresh redis-server (appendonly yes, appendfsync always)
# each get the same N small keys of one type through one `redis-cli --pipe`,
# and the growth of each server's memory is printed side by side:
#   string  SET key:i <16 bytes>          hash  HSET key:i f <16 bytes>
#   list    RPUSH key:i <16 bytes>        set   SADD key:i m<i>
#   zset    ZADD key:i <i> m<i>
# Memory is INFO used_memory of each: the allocator's live bytes (both
# servers use jemalloc), lower than the RSS. Growth = after loading - before.
#
#   scripts/bench-memory.sh                       1M keys per type
#   BENCH_KEYS=200000 BENCH_TYPES="string zset" scripts/bench-memory.sh
#   BENCH_DIR=/mnt/ssd scripts/bench-memory.sh     where the data dirs go (default /dev/shm:
#                                                  the disk is not what is measured)
#   TIERED_ENGINE_BIN=/path/to/tiered-engine ...  (no build)
#
# Not part of CI: measured here, never asserted in tests.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"

keys=${BENCH_KEYS:-1000000}
types=${BENCH_TYPES:-string hash list set zset}
base=${BENCH_DIR:-/dev/shm}

for tool in redis-server redis-cli python3; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/test-deps.sh installs redis-server)"
done
if [ -n "${TIERED_ENGINE_BIN:-}" ]; then
  engine_bin=$TIERED_ENGINE_BIN
else
  log "building tiered-engine (release)"
  cargo build --release --locked -p tiered-engine --bin tiered-engine
  engine_bin="$TIERED_ROOT/target/release/tiered-engine"
fi

work=$(mktemp -d -p "$base" tiered-bench-mem.XXXXXX)
on_exit rm -rf "$work"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# used_memory PORT -> bytes
used_memory() {
  redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'
}

# load PORT FILE: every reply read, no error
load() {
  local out
  out=$(redis-cli -p "$1" --pipe <"$2" 2>&1)
  grep -q 'errors: 0' <<<"$out" || die "loading into port $1 failed: $out"
}

printf '%s keys per type; %s cores; memory = INFO used_memory of each\n' "$keys" "$(nproc)"
printf '%-7s | %14s %10s | %14s %10s | %12s\n' type "engine bytes" "B/key" "redis bytes" "B/key" "engine/redis"
printf '%s\n' "--------------------------------------------------------------------------------------"
for t in $types; do
  python3 - "$work/$t.resp" "$t" "$keys" <<'PY'
import sys
path, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def cmd(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
v = b"v" * 16
with open(path, "wb") as f:
    for i in range(n):
        k = b"key:%d" % i
        if kind == "string":
            f.write(cmd(b"SET", k, v))
        elif kind == "hash":
            f.write(cmd(b"HSET", k, b"f", v))
        elif kind == "list":
            f.write(cmd(b"RPUSH", k, v))
        elif kind == "set":
            f.write(cmd(b"SADD", k, b"m%d" % i))
        elif kind == "zset":
            f.write(cmd(b"ZADD", k, b"%d" % i, b"m%d" % i))
        else:
            sys.exit("unknown type " + kind)
PY
  e_port=$(free_port)
  r_port=$(free_port)
  mkdir -p "$work/$t-engine" "$work/$t-redis"
  "$engine_bin" --dir "$work/$t-engine" --listen "127.0.0.1:$e_port" --reserve-bytes 0 \
    --no-preallocate >"$work/$t-engine.log" 2>&1 &
  e_pid=$!
  redis-server --port "$r_port" --bind 127.0.0.1 --dir "$work/$t-redis" \
    --appendonly yes --appendfsync always --save "" --daemonize no >"$work/$t-redis.log" 2>&1 &
  r_pid=$!
  on_exit "kill $e_pid $r_pid 2>/dev/null || true"
  wait_for 30 redis-cli -p "$e_port" ping || die "tiered-engine did not start: $(cat "$work/$t-engine.log")"
  wait_for 30 redis-cli -p "$r_port" ping || die "redis-server did not start: $(cat "$work/$t-redis.log")"
  e0=$(used_memory "$e_port")
  r0=$(used_memory "$r_port")
  load "$e_port" "$work/$t.resp"
  load "$r_port" "$work/$t.resp"
  [ "$(redis-cli -p "$e_port" dbsize)" = "$keys" ] || die "the engine holds $(redis-cli -p "$e_port" dbsize) keys, not $keys"
  e1=$(used_memory "$e_port")
  r1=$(used_memory "$r_port")
  kill "$e_pid" "$r_pid"
  wait "$e_pid" 2>/dev/null || true
  wait "$r_pid" 2>/dev/null || true
  rm -rf "$work/$t-engine" "$work/$t-redis" "$work/$t.resp"
  awk -v t="$t" -v n="$keys" -v e=$((e1 - e0)) -v r=$((r1 - r0)) 'BEGIN {
    printf "%-7s | %14d %10.1f | %14d %10.1f | %12.2f\n", t, e, e / n, r, r / n, (r > 0 ? e / r : 0)
  }'
done
printf '(goal of the data-types issue: engine/redis <= 2.0 for every type)\n'
