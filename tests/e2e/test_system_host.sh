#!/usr/bin/env bash
# A host that already runs Redis on its default port (the systemd-less
# equivalent of an enabled redis-server service): scripts/up.sh must refuse
# with a clear port message before installing or creating anything, and
# leave that Redis running. `scripts/up.sh --check` changes nothing either.
#
# The Redis on 6379 is this test's own redis-server when 6379 is free (stopped
# at the end, by its pid); when something already listens there, that is the
# occupant, and the test only checks that it is still there afterwards.
set -euo pipefail
source "$(dirname "$0")/system_lib.sh"
source "$(dirname "$0")/../../scripts/checks.sh"

sys_init host
export TIERED_PLUGIN="$SYS_ID" TIERED_IMAGE_TAG="$SYS_ID" COMPOSE_PROJECT_NAME="$SYS_ID" TIERED_VOLUME="$SYS_ID-data"
# Tier directories that do not exist yet: up.sh must not create them.
export TIERED_PRIMARY_SOURCE="$SYS_WORK/tiers/primary" TIERED_ARCHIVE_SOURCE="$SYS_WORK/tiers/archive"
export TIERED_ENGINE_METRICS_PORT TIERED_SNAPSHOTTER_METRICS_PORT TIERED_PLUGIN_METRICS_PORT
TIERED_ENGINE_METRICS_PORT=$(sys_free_port)
TIERED_SNAPSHOTTER_METRICS_PORT=$(sys_free_port)
TIERED_PLUGIN_METRICS_PORT=$(sys_free_port)
unset TIERED_ENGINE_PORT # the default, 6379

# --- the occupant of 6379 -----------------------------------------------------
if [ -z "$(port_listeners 6379)" ]; then
  command -v redis-server >/dev/null || die "missing redis-server (run scripts/test-deps.sh)"
  mkdir -p "$SYS_WORK/redis"
  redis-server --port 6379 --bind 127.0.0.1 --dir "$SYS_WORK/redis" --save '' --appendonly no \
    >"$SYS_WORK/redis.log" 2>&1 &
  redis_pid=$!
  on_exit "kill $redis_pid; wait $redis_pid"
  wait_for 30 redis-cli -p 6379 ping || die "redis-server did not start on 6379: $(cat "$SYS_WORK/redis.log")"
  redis-cli -p 6379 set tiered-t-host-marker "$SYS_ID" >/dev/null
  log "started redis-server on 6379 (pid $redis_pid)"
else
  redis_pid=""
  log "6379 is already taken ($(port_listeners 6379 | paste -sd ';' -)); that is the occupant"
fi
occupant_before=$(port_listeners 6379)

# Every object up.sh would make carries SYS_ID: none may exist afterwards.
objects() {
  {
    docker plugin ls --format '{{.Name}}'
    docker volume ls -q
    docker images --format '{{.Repository}}:{{.Tag}}'
    docker ps -a --format '{{.Names}}'
    docker network ls --format '{{.Name}}'
  } | grep -F "$SYS_ID" || true
}
nothing_made() { # WHAT
  [ -z "$(objects)" ] || fail "$1 created Docker objects: $(objects | paste -sd ' ' -)"
  [ ! -e "$SYS_WORK/tiers" ] || fail "$1 created the tier directories"
}
policy_before=$(sha256sum /usr/sbin/policy-rc.d 2>/dev/null || echo none)

# --- up.sh --check: prints the checks, changes nothing ---------------------------
set +e
"$TIERED_ROOT/scripts/up.sh" --check >"$SYS_WORK/check.out" 2>&1
rc=$?
set -e
cat "$SYS_WORK/check.out" >&2
[ $rc != 0 ] || fail "up.sh --check passed with 6379 taken"
grep -qE '^  FAIL  port 6379 \(engine, TIERED_ENGINE_PORT\) is in use' "$SYS_WORK/check.out" \
  || fail "up.sh --check did not name port 6379 as taken"
grep -q 'TIERED_ENGINE_PORT=[0-9]* scripts/up.sh' "$SYS_WORK/check.out" || fail "up.sh --check did not say how to choose another port"
for line in "running as root" "Docker daemon answers" "rustc" "primary tier" "archive tier"; do
  grep -q "$line" "$SYS_WORK/check.out" || fail "up.sh --check did not print the '$line' check"
done
nothing_made "up.sh --check"

# --- up.sh: refuses before installing or creating anything -----------------------
start=$SECONDS
set +e
"$TIERED_ROOT/scripts/up.sh" >"$SYS_WORK/up.out" 2>&1
rc=$?
set -e
cat "$SYS_WORK/up.out" >&2
[ $rc != 0 ] || fail "up.sh went ahead with 6379 taken"
grep -q 'FAIL  port 6379' "$SYS_WORK/up.out" || fail "up.sh's refusal does not name port 6379"
grep -q 'nothing was installed or created' "$SYS_WORK/up.out" || fail "up.sh's refusal does not say that nothing was changed"
# It stopped at the checks: no package step, no build, no registry.
if grep -qE '\] (apt-get install|static binaries in|starting docker-registry|docker build|compose up)' "$SYS_WORK/up.out"; then
  fail "up.sh did work before refusing"
fi
[ $((SECONDS - start)) -lt 60 ] || fail "up.sh took $((SECONDS - start)) s to refuse"
nothing_made "up.sh"
expect_eq "$(sha256sum /usr/sbin/policy-rc.d 2>/dev/null || echo none)" "$policy_before" "policy-rc.d after up.sh"

# --- the occupant is untouched -----------------------------------------------------
expect_eq "$(port_listeners 6379)" "$occupant_before" "listener on 6379 after up.sh"
if [ -n "$redis_pid" ]; then
  kill -0 "$redis_pid" 2>/dev/null || fail "our redis-server (pid $redis_pid) is gone"
  expect_eq "$(redis-cli -p 6379 get tiered-t-host-marker)" "$SYS_ID" "the key in the redis-server on 6379"
fi

# --- with a free port instead, the checks pass (and still change nothing) -------
TIERED_ENGINE_PORT=$(sys_free_port) "$TIERED_ROOT/scripts/up.sh" --check >"$SYS_WORK/check2.out" 2>&1 \
  || { cat "$SYS_WORK/check2.out" >&2; fail "up.sh --check failed with free ports"; }
grep -q 'todo  primary tier .* will be created' "$SYS_WORK/check2.out" || fail "up.sh --check did not announce the tier directory"
nothing_made "up.sh --check (passing)"

SYS_OK=1
log "a host with Redis on 6379: up.sh refuses before changing anything, Redis untouched; --check changes nothing: ok"
