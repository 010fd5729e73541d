#!/usr/bin/env bash
# End-to-end test of the monitoring set-up in deploy/monitoring/:
#   1. promtool checks the scrape config and the rules and runs the rules'
#      unit tests (tiered-rules.test.yml);
#   2. tiered-engine, tiered-snapshotter and tiered-plugin (static binaries
#      from build/bin) run with --metrics-listen on free loopback ports,
#      every tier on a small tmpfs of known size;
#   3. a real Prometheus (Debian's `prometheus`) runs on loopback with a copy
#      of deploy/monitoring/prometheus.yml pointing at those ports, and the
#      test checks through its HTTP API that the three targets are up, every
#      rule group loaded and evaluates, writes move the engine's counters, a
#      snapshot and an archive move show up, every query of the Grafana
#      dashboard is valid and returns data, and alerts come from the live
#      series: archive growth without retention raises the archive alerts
#      (and nothing else), a nearly full tier TieredTierAlmostFull, a stopped
#      target TieredTargetDown;
#   4. the README's way to turn on a managed plugin's metrics listener
#      (`docker plugin set … TIERED_METRICS_LISTEN=…` while disabled) works.
# Every process is stopped and every mount and temp dir removed on exit.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
MON="$TIERED_ROOT/deploy/monitoring"

for b in tiered-engine tiered-snapshotter tiered-plugin; do
  [ -x "$TIERED_BIN/$b" ] || die "missing $TIERED_BIN/$b (run scripts/build.sh)"
done
for c in prometheus promtool redis-cli python3; do
  command -v "$c" >/dev/null || die "missing $c (run scripts/deps.sh)"
done

# --- 1. static checks and rule unit tests ---------------------------------
log "promtool: config, rules, rule unit tests"
promtool check config "$MON/prometheus.yml"
promtool check rules "$MON/tiered-rules.yml"
promtool test rules "$MON/tiered-rules.test.yml"
# The dashboard's structure: unique panel ids, panels inside the 24-column
# grid and not overlapping, every query on the dashboard's data-source
# variable with a unique refId. (Its queries are run against Prometheus below.)
python3 - "$MON/grafana-dashboard.json" <<'EOF' || die "grafana-dashboard.json is malformed"
import json, sys
d = json.load(open(sys.argv[1]))
assert [v["name"] for v in d["templating"]["list"] if v["type"] == "datasource"] == ["datasource"], "no datasource variable"
panels = d["panels"]
ids = [p["id"] for p in panels]
assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
cells = {}
for p in panels:
    g = p["gridPos"]
    assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, f"{p['title']}: outside the grid: {g}"
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
            cells[(x, y)] = p["title"]
    if p["type"] == "row":
        continue
    refs = [t["refId"] for t in p["targets"]]
    assert p["targets"] and len(refs) == len(set(refs)), f"{p['title']}: targets {refs}"
    for t in p["targets"] + [p]:
        assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, f"{p['title']}: {t['datasource']}"
print(f"ok: dashboard: {len(panels)} panels, {sum(len(p.get('targets', [])) for p in panels)} queries")
EOF

# --- helpers --------------------------------------------------------------
work=$(mktemp -d /tmp/tiered-monitoring.XXXXXX)
# Registered first, so it runs last: after every process stopped and every
# mount is gone. --one-file-system never crosses a mount left behind.
on_exit rm -rf --one-file-system "$work"

# stop_pid PID: SIGTERM, then SIGKILL if still alive after 5 s.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# free_ports N: N distinct free loopback TCP ports (held together while
# chosen, so they differ; the kernel does not hand them out again at once).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# http_ok URL: exit 0 if GET URL answers 200.
http_ok() {
  python3 - "$1" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

# show_logs: the processes' logs, for a failure.
show_logs() {
  local f
  for f in "$work"/*.log; do
    [ -f "$f" ] || continue
    echo "----- $(basename "$f") (last 30 lines)" >&2
    tail -n 30 "$f" >&2
  done
}
fail() { show_logs; die "$*"; }

read -r engine_port engine_mport snap_mport plugin_mport prom_port < <(free_ports 5)
log "ports: engine $engine_port, metrics engine $engine_mport snapshotter $snap_mport plugin $plugin_mport, prometheus $prom_port"

# --- 2. the three programs ------------------------------------------------
# Every tier is a tmpfs of its own, as in a deployment (the archive another
# file system than the primary): their sizes are known, so the tier metrics
# are checked end to end, and the host's disk usage cannot raise an alert.
# (The engine refuses writes with less than 16 MiB free: --reserve-bytes.)
dir="$work/persistence"              # the engine's and snapshotter's volume
primary_tier_bytes=$((256 * 1024 * 1024))
archive_tier_bytes=$((64 * 1024 * 1024))
plugin_primary_bytes=$((128 * 1024 * 1024))
plugin_archive_bytes=$((32 * 1024 * 1024))
mkdir -p "$dir" "$work/plugin/primary" "$work/plugin/archive" "$work/plugin/mnt"
mount -t tmpfs -o "size=$primary_tier_bytes" tiered-mon-primary "$dir"
on_exit umount "$dir"
mkdir "$dir/archived"
mount -t tmpfs -o "size=$archive_tier_bytes" tiered-mon-archive "$dir/archived"
on_exit umount "$dir/archived"
mount -t tmpfs -o "size=$plugin_primary_bytes" tiered-mon-plugin-primary "$work/plugin/primary"
on_exit umount "$work/plugin/primary"
mount -t tmpfs -o "size=$plugin_archive_bytes" tiered-mon-plugin-archive "$work/plugin/archive"
on_exit umount "$work/plugin/archive"
tier_totals="{\"tiered_snapshotter\": {\"primary\": $primary_tier_bytes, \"archive\": $archive_tier_bytes},"
tier_totals+=" \"tiered_plugin\": {\"primary\": $plugin_primary_bytes, \"archive\": $plugin_archive_bytes}}"

log "starting tiered-engine"
"$TIERED_BIN/tiered-engine" --dir "$dir" --listen "127.0.0.1:$engine_port" \
  --metrics-listen "127.0.0.1:$engine_mport" --rotate-bytes 65536 \
  >"$work/engine.log" 2>&1 &
engine_pid=$!
on_exit stop_pid "$engine_pid"
wait_for 30 http_ok "http://127.0.0.1:$engine_mport/healthz" || fail "engine /healthz not 200 within 30s"

log "starting tiered-snapshotter"
"$TIERED_BIN/tiered-snapshotter" run --dir "$dir" --min-logs 1 \
  --metrics-listen "127.0.0.1:$snap_mport" \
  >"$work/snapshotter.log" 2>&1 &
snap_pid=$!
on_exit stop_pid "$snap_pid"
wait_for 30 http_ok "http://127.0.0.1:$snap_mport/metrics" || fail "snapshotter /metrics not 200 within 30s"

log "starting tiered-plugin"
"$TIERED_BIN/tiered-plugin" --socket "$work/plugin/plugin.sock" \
  --primary-root "$work/plugin/primary" --archive-root "$work/plugin/archive" \
  --mount-root "$work/plugin/mnt" --metrics-listen "127.0.0.1:$plugin_mport" \
  >"$work/plugin.log" 2>&1 &
plugin_pid=$!
on_exit stop_pid "$plugin_pid"
wait_for 30 http_ok "http://127.0.0.1:$plugin_mport/metrics" || fail "plugin /metrics not 200 within 30s"

# --- 3. Prometheus with the project's config and rules --------------------
prom="$work/prometheus"
mkdir -p "$prom/data"
sed -e "s/127\.0\.0\.1:9121/127.0.0.1:$engine_mport/" \
    -e "s/127\.0\.0\.1:9122/127.0.0.1:$snap_mport/" \
    -e "s/127\.0\.0\.1:9123/127.0.0.1:$plugin_mport/" \
    -e 's/^\(  scrape_interval:\).*/\1 1s/' \
    -e 's/^\(  evaluation_interval:\).*/\1 1s/' \
    "$MON/prometheus.yml" >"$prom/prometheus.yml"
cp "$MON/tiered-rules.yml" "$prom/"
for p in "$engine_mport" "$snap_mport" "$plugin_mport"; do
  grep -q "\"127.0.0.1:$p\"" "$prom/prometheus.yml" || die "rendered config lacks target 127.0.0.1:$p"
done
! grep -qE '127\.0\.0\.1:912[123]\b' "$prom/prometheus.yml" || die "rendered config still has a default port"
grep -q '^  scrape_interval: 1s$' "$prom/prometheus.yml" || die "rendered config: scrape_interval not replaced"
promtool check config "$prom/prometheus.yml" >/dev/null

log "starting prometheus on 127.0.0.1:$prom_port"
prometheus --config.file="$prom/prometheus.yml" --storage.tsdb.path="$prom/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
on_exit stop_pid "$prom_pid"
wait_for 30 http_ok "http://127.0.0.1:$prom_port/-/ready" || fail "prometheus not ready within 30s"

# prom_has EXPR: exit 0 if the instant query EXPR returns at least one series.
prom_has() {
  python3 - "http://127.0.0.1:$prom_port" "$1" <<'EOF'
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[2]})
with urllib.request.urlopen(url, timeout=10) as r:
    sys.exit(0 if json.load(r)["data"]["result"] else 1)
EOF
}
# Prometheus must see the archive before it grows: the archive-growth alerts
# are checked on the growth that follows.
wait_for 30 prom_has 'count(up{job=~"tiered-.*"} == 1) == 3 and on () count(tiered_snapshotter_archive_bytes) == 1' \
  || fail "prometheus did not scrape the three targets within 30s"

# --- activity: writes, snapshots, archive moves, plugin requests ----------
writes=2000
start_s=$(date +%s)
log "writing $writes keys through redis-cli"
for i in $(seq "$writes"); do
  printf 'SET key:%05d %0200d\n' "$i" "$i"
done | redis-cli -p "$engine_port" >"$work/redis-cli.out" 2>&1 || fail "redis-cli failed"
oks=$(grep -c '^OK$' "$work/redis-cli.out" || true)
[ "$oks" = "$writes" ] || fail "expected $writes OK replies, got $oks (see $work/redis-cli.out)"

log "sending VolumeDriver requests to the plugin"
python3 - "$work/plugin/plugin.sock" <<'EOF' || fail "plugin requests failed"
import http.client, json, socket, sys

class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)

def call(endpoint, body):
    c = UnixConnection(sys.argv[1])
    c.request("POST", endpoint, json.dumps(body),
              {"Content-Type": "application/vnd.docker.plugins.v1+json"})
    r = c.getresponse()
    out = json.loads(r.read() or b"{}")
    c.close()
    return out

assert "Implements" in call("/Plugin.Activate", {}), "activate"
assert not call("/VolumeDriver.Create", {"Name": "monvol", "Opts": {}}).get("Err"), "create"
vols = call("/VolumeDriver.List", {}).get("Volumes") or []
assert any(v["Name"] == "monvol" for v in vols), f"list: {vols}"
assert call("/VolumeDriver.Get", {"Name": "no-such-volume"}).get("Err"), "get of a missing volume must fail"
# the same metrics on the plugin socket, beside the protocol
c = UnixConnection(sys.argv[1])
c.request("GET", "/metrics")
r = c.getresponse()
text = r.read().decode()
assert r.status == 200, f"GET /metrics on the socket: {r.status} {text}"
assert "tiered_plugin_volumes 1" in text.splitlines(), f"GET /metrics on the socket: {text}"
EOF

# --- checks through Prometheus's HTTP API ---------------------------------
groups=$(sed -n 's/^  - name: //p' "$MON/tiered-rules.yml" | tr '\n' ' ')
nrules=$(grep -cE '^      - (alert|record):' "$MON/tiered-rules.yml")
log "checking targets, rules and values through the Prometheus API"
python3 - "http://127.0.0.1:$prom_port" "$MON" "$engine_mport,$snap_mport,$plugin_mport" \
  "$writes" "$start_s" "$tier_totals" "$nrules" $groups <<'EOF' || fail "prometheus checks failed"
import json, re, sys, time, urllib.error, urllib.parse, urllib.request

base, mon, metrics_ports = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
writes, start_s, tier_totals = int(sys.argv[4]), int(sys.argv[5]), json.loads(sys.argv[6])
nrules, groups = int(sys.argv[7]), set(sys.argv[8:])
dashboard = f"{mon}/grafana-dashboard.json"
used_files = [f"{mon}/tiered-rules.yml", f"{mon}/tiered-rules.test.yml", dashboard]

def api(path, **params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.load(r)
    if doc.get("status") != "success":
        raise AssertionError(f"{url}: {doc}")
    return doc["data"]

def query(expr):
    try:
        data = api("/api/v1/query", query=expr)
    except urllib.error.HTTPError as e:
        raise AssertionError(f"query {expr!r}: HTTP {e.code}: {e.read().decode()}")
    return data["result"]

def wait(what, check, secs=60):
    """Poll check() until it returns a true value; fail with its last state."""
    deadline, last = time.time() + secs, None
    while time.time() < deadline:
        try:
            ok, last = check()
            if ok:
                print(f"ok: {what}: {last}", flush=True)
                return
        except (AssertionError, OSError, KeyError, ValueError) as e:
            last = repr(e)
        time.sleep(0.5)
    raise SystemExit(f"FAIL: {what}: {last}")

def values(expr):
    return [float(s["value"][1]) for s in query(expr)]

# all three targets up
def targets():
    active = api("/api/v1/targets", state="active")["activeTargets"]
    health = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in active}
    want = {"tiered-engine", "tiered-snapshotter", "tiered-plugin"}
    return set(health) == want and all(h == "up" for h, _ in health.values()), health
wait("three targets up", targets, 30)

# every rule group loaded; every rule evaluated without error
def rules():
    got = api("/api/v1/rules")["groups"]
    names = {g["name"] for g in got}
    rs = [r for g in got for r in g["rules"]]
    bad = [(r["name"], r["health"], r.get("lastError")) for r in rs if r["health"] != "ok"]
    return names == groups and len(rs) == nrules and not bad, {"groups": sorted(names), "rules": len(rs), "not ok": bad}
wait("rule groups loaded and healthy", rules, 30)

# the writes moved the engine's counters
wait(f"{writes} SETs counted",
     lambda: (values('sum(tiered_engine_commands_total{command="set",outcome="ok"})') == [writes],
              values('sum(tiered_engine_commands_total{command="set",outcome="ok"})')))
wait(f"sequence number >= {writes}",
     lambda: ((v := values("tiered_engine_sequence_number")) and v[0] >= writes, v))
wait("logged bytes > 200 per write",
     lambda: ((v := values("tiered_engine_logged_bytes_total")) and v[0] > 200 * writes, v))
wait("rotations happened", lambda: ((v := values("tiered_engine_rotations_total")) and v[0] >= 1, v))
wait("engine ready, writes not failed",
     lambda: (values("tiered_engine_ready") == [1] and values("tiered_engine_writes_failed") == [0],
              (values("tiered_engine_ready"), values("tiered_engine_writes_failed"))))

# tiers: the tmpfs sizes come through statvfs, the exporters and Prometheus
for prog, tiers in tier_totals.items():
    for tier, size in tiers.items():
        expr = f'{prog}_tier_total_bytes{{tier="{tier}"}}'
        wait(f"{expr} == {size}", lambda expr=expr, size=size: (values(expr) == [size], values(expr)))
wait("free fraction recorded for both tiers of both jobs",
     lambda: (len(values("tiered:tier_free:ratio")) == 4, query("tiered:tier_free:ratio")))

# the snapshotter made a snapshot after the writes and moved files to the archive
wait("snapshot newer than the test start",
     lambda: ((v := values("tiered_snapshotter_last_snapshot_timestamp_seconds")) and v[0] >= start_s, v))
wait("snapshots ok counted",
     lambda: ((v := values('tiered_snapshotter_snapshots_total{outcome="ok"}')) and v[0] >= 1, v))
wait("archive grew",
     lambda: ((v := values("tiered_snapshotter_archive_bytes")) and v[0] > 0, v))
wait("archived log bytes counted",
     lambda: ((v := values('tiered_snapshotter_archived_bytes_total{kind="log"}')) and v[0] > 0, v))

# the plugin counted its requests and the Get of an unknown volume (the
# daemon's probe before Create) as not_found, not as an error
wait("plugin volume counted", lambda: (values("tiered_plugin_volumes") == [1], values("tiered_plugin_volumes")))
wait("plugin requests counted",
     lambda: ((v := values('tiered_plugin_requests_total{endpoint="create"}')) == [1], v))
wait("plugin not_found counted",
     lambda: ((v := values('tiered_plugin_request_not_found_total{endpoint="get"}')) == [1], v))
wait("plugin Get probe not counted as an error",
     lambda: ((v := values('tiered_plugin_request_errors_total{endpoint="get"}')) in ([], [0]), v))

# every tiered_* name that the rules, their unit tests and the dashboard use
# is one the programs expose (from the TYPE lines too, so that a family that
# has no sample yet, like an error counter, counts)
exposed = set()
for port in metrics_ports:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            exposed |= {"counter": {name + "_total"},
                        "histogram": {name + "_bucket", name + "_sum", name + "_count"}}.get(kind, {name})
        elif line and not line.startswith("#"):
            exposed.add(re.split(r"[{ ]", line, 1)[0])
used = {}
for path in used_files:
    for name in re.findall(r"\btiered_[a-z0-9_]+", open(path).read()):
        used.setdefault(name, path)
unknown = {n: p for n, p in used.items() if n not in exposed}
if unknown:
    raise SystemExit(f"FAIL: names not exposed by any program: {unknown}")
print(f"ok: all {len(used)} metric names used by rules, rule tests and dashboard are exposed", flush=True)

# every dashboard query is valid PromQL and, with all of the above done, has data
d = json.load(open(dashboard))
exprs = [(p["title"], t["expr"]) for p in d["panels"] for t in p.get("targets", [])]
assert exprs, "dashboard has no queries"
def dashboard_queries():
    empty = [f"{title}: {e}" for title, e in exprs
             if not query(e.replace("$__rate_interval", "1m"))]
    return not empty, {"queries": len(exprs), "empty": empty}
wait("every dashboard query returns data", dashboard_queries, 30)
EOF

# --- alerts computed from the live series --------------------------------
# expect_alert NAME LABEL=VALUE...: wait until alert NAME is pending or firing
# for a series with those labels, and for no other series.
expect_alert() {
  python3 - "http://127.0.0.1:$prom_port" "$@" <<'EOF'
import json, sys, time, urllib.request
base, name, want = sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:])
deadline, hit = time.time() + 30, None
while time.time() < deadline:
    with urllib.request.urlopen(base + "/api/v1/alerts", timeout=10) as r:
        alerts = json.load(r)["data"]["alerts"]
    hit = [(a["labels"], a["state"]) for a in alerts if a["labels"]["alertname"] == name]
    mine = [l for l, st in hit if st in ("pending", "firing") and want.items() <= l.items()]
    if mine:
        others = [l for l, _ in hit if not want.items() <= l.items()]
        if others:
            raise SystemExit(f"FAIL: {name} also for {others}")
        print(f"ok: {name} {hit[0][1]} for {want}", flush=True)
        sys.exit(0)
    time.sleep(0.5)
raise SystemExit(f"FAIL: {name} for {want} did not appear; {name} alerts: {hit}")
EOF
}

# The test's snapshotter has no retention and its archive just grew while
# Prometheus watched: exactly the two archive-growth alerts are pending, and
# nothing else is pending or firing.
log "only the archive-growth alerts are pending"
python3 - "http://127.0.0.1:$prom_port" <<'EOF' || fail "unexpected alerts"
import json, sys, time, urllib.request
want = {("TieredArchiveOutgrowingRetention", "pending"), ("TieredArchiveTierFullSoon", "pending")}
deadline, got = time.time() + 30, None
while time.time() < deadline:
    with urllib.request.urlopen(sys.argv[1] + "/api/v1/alerts", timeout=10) as r:
        alerts = json.load(r)["data"]["alerts"]
    got = {(a["labels"]["alertname"], a["state"]) for a in alerts}
    if got - want:
        raise SystemExit(f"FAIL: unexpected alerts: {[(a['labels'], a['state']) for a in alerts]}")
    if got == want and all(a["labels"]["job"] == "tiered-snapshotter" for a in alerts):
        print(f"ok: alerts: {sorted(got)}", flush=True)
        sys.exit(0)
    time.sleep(0.5)
raise SystemExit(f"FAIL: alerts {got}, expected {want}")
EOF

log "filling the plugin's archive tier to 94%: TieredTierAlmostFull must become pending"
head -c $((plugin_archive_bytes / 16 * 15)) /dev/zero >"$work/plugin/archive/filler"
expect_alert TieredTierAlmostFull job=tiered-plugin tier=archive || fail "TieredTierAlmostFull did not appear"
rm -f "$work/plugin/archive/filler"

log "stopping the plugin: TieredTargetDown must become pending"
stop_pid "$plugin_pid"
expect_alert TieredTargetDown job=tiered-plugin || fail "TieredTargetDown did not appear"

# --- the README's managed-plugin path -------------------------------------
# A managed plugin (config.json + rootfs/, as scripts/plugin.sh installs it)
# has no metrics listener until TIERED_METRICS_LISTEN is set while disabled;
# it runs in the host's network namespace, so the host reaches it.
log "managed plugin: docker plugin set TIERED_METRICS_LISTEN while disabled"
ensure_docker
mp_name=$(uniq_name monitoring)
read -r mp_port < <(free_ports 1)
managed_archive_bytes=$((16 * 1024 * 1024))
mkdir -p "$work/managed/primary" "$work/managed/archive"
mount -t tmpfs -o "size=$managed_archive_bytes" tiered-mon-managed-archive "$work/managed/archive"
on_exit umount "$work/managed/archive"
on_exit docker plugin rm -f "$mp_name"
"$TIERED_ROOT/scripts/plugin.sh" install --name "$mp_name" --primary-source "$work/managed/primary" \
  --archive-source "$work/managed/archive" >"$work/managed-plugin.log" 2>&1 \
  || fail "scripts/plugin.sh install failed"
! http_ok "http://127.0.0.1:$mp_port/metrics" || fail "managed plugin listens on $mp_port before the setting"
docker plugin disable "$mp_name" >/dev/null
docker plugin set "$mp_name" "TIERED_METRICS_LISTEN=127.0.0.1:$mp_port"
docker plugin enable "$mp_name" >/dev/null
wait_for 15 http_ok "http://127.0.0.1:$mp_port/metrics" || fail "managed plugin: no metrics on 127.0.0.1:$mp_port"
python3 - "http://127.0.0.1:$mp_port/metrics" "$managed_archive_bytes" <<'EOF' || fail "managed plugin metrics"
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    lines = r.read().decode().splitlines()
want = f'tiered_plugin_tier_total_bytes{{tier="archive"}} {sys.argv[2]}'
if want not in lines:
    raise SystemExit(f"FAIL: {want!r} not in the managed plugin's metrics: {[l for l in lines if 'tier_' in l]}")
print(f"ok: managed plugin serves its metrics: {want}", flush=True)
EOF

log "monitoring e2e: ok"
