#!/usr/bin/env bash
# Runs Redis's own tcl test suite (external-server mode) against tiered-engine
# and against redis-server (appendonly yes, appendfsync always) in the same run,
# and prints per unit how many tests each passes and the engine's share of
# what redis-server passes.
#
#   scripts/redis-suite.sh                      the units of the client issue
#   scripts/redis-suite.sh unit/type/list ...   the units named
#   REDIS_TESTS=/path/to/redis-tests scripts/redis-suite.sh
#   TIERED_ENGINE_BIN=/path/to/tiered-engine scripts/redis-suite.sh   (no build)
#   REDIS_SUITE_KEEP=/some/dir scripts/redis-suite.sh   keeps the runner's
#       per-unit output and both servers' logs there (otherwise they go with
#       the temp dir): what to read when a unit stops short of redis-server
#       with no failing test listed
#
# The suite is Redis's (BSD-3-Clause), not part of this repository: point
# REDIS_TESTS at a directory holding its `run.sh` and `redis-tests.tar.gz`
# (default: ../shared/redis-tests beside the checkout). Needs tclsh and
# redis-server (scripts/deps.sh --test installs them). Not part of CI: the
# numbers are recorded in docs/engine.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"

suite=${REDIS_TESTS:-$TIERED_ROOT/../shared/redis-tests}
[ -x "$suite/run.sh" ] || die "Redis's test suite not found at $suite (set REDIS_TESTS to the directory with run.sh)"
for tool in redis-server redis-cli tclsh; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh --test installs it)"
done

units=("$@")
[ ${#units[@]} -gt 0 ] || units=(unit/type/string unit/type/incr unit/expire unit/type/hash
  unit/keyspace unit/scan unit/protocol unit/quit unit/info-command unit/other unit/multi)

if [ -n "${TIERED_ENGINE_BIN:-}" ]; then
  engine_bin=$TIERED_ENGINE_BIN   # e.g. an older build, for before/after numbers
else
  log "building tiered-engine (release)"
  cargo build --release --locked -p tiered-engine --bin tiered-engine
  engine_bin="$TIERED_ROOT/target/release/tiered-engine"
fi

work=$(mktemp -d -p "${TMPDIR:-/var/tmp}" tiered-suite.XXXXXX)
on_exit rm -rf "$work"
mkdir -p "$work/engine" "$work/redis"

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

log "suite against redis-server on $redis_port"
OUT_DIR="$work/out-redis" "$suite/run.sh" 127.0.0.1 "$redis_port" "${units[@]}" >"$work/redis.txt" 2>&1 || true
log "suite against tiered-engine on $engine_port"
OUT_DIR="$work/out-engine" "$suite/run.sh" 127.0.0.1 "$engine_port" "${units[@]}" >"$work/engine.txt" 2>&1 || true
kill -0 "$engine_pid" 2>/dev/null || log "warning: tiered-engine is no longer running (crashed during the suite?): $(tail -5 "$work/engine.log")"

# ok count of UNIT in FILE (lines 'UNIT ok N err N exception N')
ok_of() { awk -v u="$1" '$1 == u && $2 == "ok" { print $3; exit }' "$2"; }

printf '\n%-24s %8s %8s %8s\n' unit redis engine share
printf '%s\n' "--------------------------------------------------"
tr=0 te=0
for u in "${units[@]}"; do
  r=$(ok_of "$u" "$work/redis.txt"); e=$(ok_of "$u" "$work/engine.txt")
  r=${r:-0} e=${e:-0}
  tr=$((tr + r)) te=$((te + e))
  share=$(awk -v a="$e" -v b="$r" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }')
  printf '%-24s %8s %8s %8s\n' "$u" "$r" "$e" "$share"
done
share=$(awk -v a="$te" -v b="$tr" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else print "n/a" }')
printf '%-24s %8s %8s %8s\n' total "$tr" "$te" "$share"
printf '\n(tests passed; share = engine / redis-server, same run, same flags: %s)\n' "$(date -u +%F)"
echo
log "engine failures (first lines):"
grep -E '^    ' "$work/engine.txt" | head -60 >&2 || true
if [ -n "${REDIS_SUITE_KEEP:-}" ]; then
  mkdir -p "$REDIS_SUITE_KEEP"
  cp -r "$work/out-engine" "$work/out-redis" "$work/engine.txt" "$work/redis.txt" \
    "$work/engine.log" "$work/redis.log" "$REDIS_SUITE_KEEP/"
  log "runner output and server logs kept in $REDIS_SUITE_KEEP"
fi
