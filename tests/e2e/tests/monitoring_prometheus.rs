//! End-to-end test of the monitoring set-up in deploy/monitoring/:
//!   1. promtool checks the scrape config and the rules and runs the rules'
//!      unit tests (tiered-rules.test.yml); the dashboard's structure is sound;
//!   2. tiered-engine, tiered-snapshotter and tiered-plugin (static binaries
//!      from build/bin) run with --metrics-listen on free loopback ports,
//!      every tier on a small tmpfs of known size;
//!   3. a real Prometheus (Debian's `prometheus`) runs on loopback with a copy
//!      of deploy/monitoring/prometheus.yml pointing at those ports, and the
//!      test checks through its HTTP API that the three targets are up, every
//!      rule group loaded and evaluates, writes move the engine's counters, a
//!      snapshot and an archive move show up, every metric name the rules,
//!      their tests and the dashboard use is exposed, every query of the
//!      Grafana dashboard returns data, and alerts come from the live series:
//!      archive growth without retention raises the archive alerts (and
//!      nothing else), a nearly full tier TieredTierAlmostFull, a stopped
//!      target TieredTargetDown;
//!   4. the documented way to turn on a managed plugin's metrics listener
//!      (`docker plugin set … TIERED_METRICS_LISTEN=…` while disabled) works.
//!
//! Every process is stopped and every mount and temp dir removed on drop.
#![cfg(feature = "docker-e2e")]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use tiered_e2e::env::{bin, free_port, repo_root, require_tool};
use tiered_e2e::http::{encode_query, get, scrape, unix_request};
use tiered_e2e::plugin::Install;
use tiered_e2e::process::Background;
use tiered_e2e::{docker, wait_for, Cmd, Defer, TestEnv};

const MIB: u64 = 1024 * 1024;

/// Mounts a tmpfs of `bytes` at `dir`; unmounted on drop.
fn tmpfs(dir: &Path, bytes: u64, name: &str) -> Result<Defer<impl FnOnce()>> {
    std::fs::create_dir_all(dir)?;
    Cmd::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), name])
        .arg(dir)
        .run()?;
    let dir = dir.to_owned();
    Ok(Defer::new(move || {
        if let Err(e) = Cmd::new("umount").arg(&dir).run() {
            eprintln!("cleanup: {e}");
        }
    }))
}

fn http_ok(url_addr: &str, path: &str) -> bool {
    get(url_addr, path).is_ok_and(|(code, _)| code == 200)
}

/// Polls `check` (which says whether it holds and what it saw) until it holds.
fn wait_check(
    what: &str,
    secs: u64,
    mut check: impl FnMut() -> Result<(bool, String)>,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    while Instant::now() < deadline {
        match check() {
            Ok((true, seen)) => {
                eprintln!("ok: {what}: {seen}");
                return Ok(());
            }
            Ok((false, seen)) => last = seen,
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("{what}: {last}")
}

struct Prometheus {
    addr: String,
}

impl Prometheus {
    fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_query(v)))
            .collect();
        let url = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", query.join("&"))
        };
        let (code, body) = get(&self.addr, &url)?;
        ensure!(code == 200, "{url}: HTTP {code}: {body}");
        let doc: Value = serde_json::from_str(&body)?;
        ensure!(doc["status"] == "success", "{url}: {doc}");
        Ok(doc["data"].clone())
    }
    fn query(&self, expr: &str) -> Result<Vec<Value>> {
        let data = self
            .api("/api/v1/query", &[("query", expr)])
            .with_context(|| format!("query {expr:?}"))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }
    fn values(&self, expr: &str) -> Result<Vec<f64>> {
        Ok(self
            .query(expr)?
            .iter()
            .filter_map(|s| s["value"][1].as_str()?.parse().ok())
            .collect())
    }
    fn alerts(&self) -> Result<Vec<Value>> {
        Ok(self.api("/api/v1/alerts", &[])?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
    /// Waits until alert `name` is pending or firing for a series with the
    /// labels `want`, and for no other series.
    fn expect_alert(&self, name: &str, want: &[(&str, &str)]) -> Result<()> {
        let matches = |a: &Value| want.iter().all(|(k, v)| a["labels"][*k] == *v);
        wait_check(&format!("{name} for {want:?}"), 30, || {
            let hit: Vec<Value> = self
                .alerts()?
                .into_iter()
                .filter(|a| a["labels"]["alertname"] == name)
                .collect();
            let others: Vec<&Value> = hit.iter().filter(|a| !matches(a)).collect();
            let mine = hit
                .iter()
                .any(|a| matches(a) && (a["state"] == "pending" || a["state"] == "firing"));
            if mine && !others.is_empty() {
                bail!("{name} also for {others:?}");
            }
            Ok((mine, format!("{hit:?}")))
        })
    }
}

/// Structure of the Grafana dashboard: unique panel ids, panels inside the
/// 24-column grid and not overlapping, every query on the dashboard's
/// data-source variable with a unique refId.
fn check_dashboard(d: &Value) -> Result<()> {
    let vars: Vec<&Value> = d["templating"]["list"]
        .as_array()
        .context("templating.list")?
        .iter()
        .filter(|v| v["type"] == "datasource")
        .map(|v| &v["name"])
        .collect();
    ensure!(
        vars == [&json!("datasource")],
        "no datasource variable: {vars:?}"
    );
    let panels = d["panels"].as_array().context("panels")?;
    let ids: Vec<&Value> = panels.iter().map(|p| &p["id"]).collect();
    ensure!(
        ids.iter().collect::<HashSet<_>>().len() == ids.len(),
        "duplicate panel ids: {ids:?}"
    );
    let mut cells: HashMap<(i64, i64), &Value> = HashMap::new();
    let mut queries = 0;
    for p in panels {
        let title = &p["title"];
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_i64(),
            g["y"].as_i64(),
            g["w"].as_i64(),
            g["h"].as_i64(),
        );
        let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else {
            bail!("{title}: gridPos {g}")
        };
        ensure!(
            x >= 0 && w > 0 && x + w <= 24,
            "{title}: outside the grid: {g}"
        );
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title) {
                    bail!("{title} overlaps {other}");
                }
            }
        }
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"]
            .as_array()
            .with_context(|| format!("{title}: no targets"))?;
        let refs: Vec<&Value> = targets.iter().map(|t| &t["refId"]).collect();
        ensure!(
            !targets.is_empty() && refs.iter().collect::<HashSet<_>>().len() == refs.len(),
            "{title}: targets {refs:?}"
        );
        let want = json!({"type": "prometheus", "uid": "${datasource}"});
        for t in targets.iter().chain([p]) {
            ensure!(t["datasource"] == want, "{title}: {}", t["datasource"]);
        }
        queries += targets.len();
    }
    eprintln!("ok: dashboard: {} panels, {queries} queries", panels.len());
    Ok(())
}

/// Every `tiered_…` metric name in `text` (a word starting with `tiered_`).
fn metric_names(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(off) = text[i..].find("tiered_") {
        let start = i + off;
        let mut end = start + "tiered_".len();
        if start == 0 || !word(b[start - 1]) {
            while end < b.len()
                && (b[end].is_ascii_lowercase() || b[end].is_ascii_digit() || b[end] == b'_')
            {
                end += 1;
            }
            out.insert(text[start..end].to_owned());
        }
        i = end;
    }
    out
}

/// Names a program exposes, from the TYPE lines too (so that a family with
/// no sample yet, like an error counter, counts).
fn exposed_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (Some(name), Some(kind)) = (it.next(), it.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    out.insert(format!("{name}_total"));
                }
                "histogram" => {
                    out.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")))
                }
                _ => {
                    out.insert(name.to_owned());
                }
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            out.insert(line.split(['{', ' ']).next().unwrap_or("").to_owned());
        }
    }
    out
}

#[test]
fn monitoring_with_a_real_prometheus() -> Result<()> {
    for tool in ["prometheus", "promtool", "redis-cli"] {
        require_tool(tool)?;
    }
    let (engine_bin, snap_bin, plugin_bin) = (
        bin("tiered-engine")?,
        bin("tiered-snapshotter")?,
        bin("tiered-plugin")?,
    );
    let mon = repo_root().join("deploy/monitoring");
    let monf = |f: &str| mon.join(f);

    // 1. Static checks and rule unit tests.
    Cmd::new("promtool")
        .args(["check", "config"])
        .arg(monf("prometheus.yml"))
        .run()?;
    Cmd::new("promtool")
        .args(["check", "rules"])
        .arg(monf("tiered-rules.yml"))
        .run()?;
    Cmd::new("promtool")
        .args(["test", "rules"])
        .arg(monf("tiered-rules.test.yml"))
        .run()?;
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(monf("grafana-dashboard.json"))?)?;
    check_dashboard(&dashboard)?;

    let t = TestEnv::shared("mon")?;
    let work = t.tmp.path().to_owned();
    let (engine_port, engine_mport, snap_mport, plugin_mport, prom_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let ports: BTreeSet<u16> = [
        engine_port,
        engine_mport,
        snap_mport,
        plugin_mport,
        prom_port,
    ]
    .into();
    ensure!(ports.len() == 5, "free ports collided: {ports:?}");

    // 2. The three programs. Every tier is a tmpfs of its own, as in a
    // deployment (the archive another file system than the primary): their
    // sizes are known, so the tier metrics are checked end to end, and the
    // host's disk usage cannot raise an alert. (The engine refuses writes with
    // less than 16 MiB free: --reserve-bytes.)
    let dir = work.join("persistence");
    let (primary_tier, archive_tier, plugin_primary, plugin_archive) =
        (256 * MIB, 64 * MIB, 128 * MIB, 32 * MIB);
    let _m1 = tmpfs(&dir, primary_tier, "tiered-mon-primary")?;
    let _m2 = tmpfs(&dir.join("archived"), archive_tier, "tiered-mon-archive")?;
    let plugin_dir = work.join("plugin");
    let _m3 = tmpfs(
        &plugin_dir.join("primary"),
        plugin_primary,
        "tiered-mon-plugin-primary",
    )?;
    let _m4 = tmpfs(
        &plugin_dir.join("archive"),
        plugin_archive,
        "tiered-mon-plugin-archive",
    )?;
    std::fs::create_dir_all(plugin_dir.join("mnt"))?;
    let tier_totals = [
        ("tiered_snapshotter", "primary", primary_tier),
        ("tiered_snapshotter", "archive", archive_tier),
        ("tiered_plugin", "primary", plugin_primary),
        ("tiered_plugin", "archive", plugin_archive),
    ];
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let dir_s = dir.to_string_lossy().into_owned();

    let _engine = Background::start(
        "tiered-engine",
        &engine_bin,
        [
            "--dir",
            &dir_s,
            "--listen",
            &addr(engine_port),
            "--metrics-listen",
            &addr(engine_mport),
            "--rotate-bytes",
            "65536",
        ],
        &work.join("engine.log"),
    )?;
    wait_for(Duration::from_secs(30), "engine /healthz 200", || {
        http_ok(&addr(engine_mport), "/healthz")
    })?;
    let _snapshotter = Background::start(
        "tiered-snapshotter",
        &snap_bin,
        [
            "run",
            "--dir",
            &dir_s,
            "--min-logs",
            "1",
            "--metrics-listen",
            &addr(snap_mport),
        ],
        &work.join("snapshotter.log"),
    )?;
    wait_for(Duration::from_secs(30), "snapshotter /metrics 200", || {
        http_ok(&addr(snap_mport), "/metrics")
    })?;
    let socket = plugin_dir.join("plugin.sock");
    let pd = |s: &str| plugin_dir.join(s).to_string_lossy().into_owned();
    let mut plugin = Background::start(
        "tiered-plugin",
        &plugin_bin,
        [
            "--socket",
            &socket.to_string_lossy(),
            "--primary-root",
            &pd("primary"),
            "--archive-root",
            &pd("archive"),
            "--mount-root",
            &pd("mnt"),
            "--metrics-listen",
            &addr(plugin_mport),
        ],
        &work.join("plugin.log"),
    )?;
    wait_for(Duration::from_secs(30), "plugin /metrics 200", || {
        http_ok(&addr(plugin_mport), "/metrics")
    })?;

    // 3. Prometheus with the project's config and rules.
    let prom_dir = work.join("prometheus");
    std::fs::create_dir_all(prom_dir.join("data"))?;
    let config: String = std::fs::read_to_string(monf("prometheus.yml"))?
        .replace("127.0.0.1:9121", &addr(engine_mport))
        .replace("127.0.0.1:9122", &addr(snap_mport))
        .replace("127.0.0.1:9123", &addr(plugin_mport))
        .lines()
        .map(|l| {
            if l.starts_with("  scrape_interval:") {
                "  scrape_interval: 1s".to_owned()
            } else if l.starts_with("  evaluation_interval:") {
                "  evaluation_interval: 1s".to_owned()
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    for p in [engine_mport, snap_mport, plugin_mport] {
        ensure!(
            config.contains(&format!("\"127.0.0.1:{p}\"")),
            "rendered config lacks target 127.0.0.1:{p}"
        );
    }
    ensure!(
        config.contains("\n  scrape_interval: 1s\n"),
        "rendered config: scrape_interval not replaced"
    );
    std::fs::write(prom_dir.join("prometheus.yml"), &config)?;
    std::fs::copy(monf("tiered-rules.yml"), prom_dir.join("tiered-rules.yml"))?;
    Cmd::new("promtool")
        .args(["check", "config"])
        .arg(prom_dir.join("prometheus.yml"))
        .run()?;
    let _prometheus = Background::start(
        "prometheus",
        "prometheus",
        [
            format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", prom_dir.join("data").display()),
            format!("--web.listen-address={}", addr(prom_port)),
        ],
        &work.join("prometheus.log"),
    )?;
    wait_for(Duration::from_secs(30), "prometheus ready", || {
        http_ok(&addr(prom_port), "/-/ready")
    })?;
    let prom = Prometheus {
        addr: addr(prom_port),
    };
    // Prometheus must see the archive before it grows: the archive-growth
    // alerts are checked on the growth that follows.
    wait_check("prometheus scrapes the three targets", 30, || {
        let r = prom.query(
            r#"count(up{job=~"tiered-.*"} == 1) == 3 and on () count(tiered_snapshotter_archive_bytes) == 1"#,
        )?;
        Ok((!r.is_empty(), format!("{r:?}")))
    })?;

    // Activity: writes, snapshots, archive moves, plugin requests.
    let writes = 2000;
    let start_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs() as f64;
    let input: String = (1..=writes)
        .map(|i| format!("SET key:{i:05} {i:0200}\n"))
        .collect();
    let out = Cmd::new("redis-cli")
        .args(["-p", &engine_port.to_string()])
        .stdin(input)
        .run()?;
    let oks = out.lines().filter(|l| *l == "OK").count();
    ensure!(oks == writes, "expected {writes} OK replies, got {oks}");

    let call = |endpoint: &str, body: Value| -> Result<Value> {
        let (_, text) = unix_request(&socket, "POST", endpoint, &body.to_string())?;
        Ok(if text.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&text)?
        })
    };
    ensure!(
        call("/Plugin.Activate", json!({}))?
            .get("Implements")
            .is_some(),
        "activate"
    );
    let created = call(
        "/VolumeDriver.Create",
        json!({"Name": "monvol", "Opts": {}}),
    )?;
    ensure!(
        created["Err"].is_null() || created["Err"] == "",
        "create: {created}"
    );
    let vols = call("/VolumeDriver.List", json!({}))?;
    ensure!(
        vols["Volumes"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["Name"] == "monvol")),
        "list: {vols}"
    );
    let missing = call("/VolumeDriver.Get", json!({"Name": "no-such-volume"}))?;
    ensure!(
        missing["Err"].as_str().is_some_and(|e| !e.is_empty()),
        "get of a missing volume must fail: {missing}"
    );
    // The same metrics on the plugin socket, beside the protocol.
    let (code, text) = unix_request(&socket, "GET", "/metrics", "")?;
    ensure!(code == 200, "GET /metrics on the socket: {code} {text}");
    ensure!(
        text.lines().any(|l| l == "tiered_plugin_volumes 1"),
        "GET /metrics on the socket: {text}"
    );

    // Checks through Prometheus's HTTP API.
    let rules_text = std::fs::read_to_string(monf("tiered-rules.yml"))?;
    let groups: BTreeSet<String> = rules_text
        .lines()
        .filter_map(|l| l.strip_prefix("  - name: "))
        .map(|s| s.trim().to_owned())
        .collect();
    let nrules = rules_text
        .lines()
        .filter(|l| l.starts_with("      - alert:") || l.starts_with("      - record:"))
        .count();

    wait_check("three targets up", 30, || {
        let active = prom.api("/api/v1/targets", &[("state", "active")])?;
        let health: BTreeMap<String, (String, String)> = active["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| {
                let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
                (
                    s(&t["labels"]["job"]),
                    (s(&t["health"]), s(&t["lastError"])),
                )
            })
            .collect();
        let want: BTreeSet<&str> = ["tiered-engine", "tiered-snapshotter", "tiered-plugin"].into();
        let ok = health.keys().map(String::as_str).collect::<BTreeSet<_>>() == want
            && health.values().all(|(h, _)| h == "up");
        Ok((ok, format!("{health:?}")))
    })?;
    wait_check("rule groups loaded and healthy", 30, || {
        let got = prom.api("/api/v1/rules", &[])?["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let names: BTreeSet<String> = got
            .iter()
            .filter_map(|g| g["name"].as_str().map(str::to_owned))
            .collect();
        let rules: Vec<Value> = got
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let bad: Vec<String> = rules
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{} {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        let ok = names == groups && rules.len() == nrules && bad.is_empty();
        Ok((
            ok,
            format!("groups {names:?}, rules {}, not ok {bad:?}", rules.len()),
        ))
    })?;

    let at_least = |expr: &'static str, min: f64| {
        let prom = &prom;
        move || -> Result<(bool, String)> {
            let v = prom.values(expr)?;
            Ok((v.first().is_some_and(|x| *x >= min), format!("{v:?}")))
        }
    };
    let equals = |expr: String, want: f64| {
        let prom = &prom;
        move || -> Result<(bool, String)> {
            let v = prom.values(&expr)?;
            Ok((v == [want], format!("{v:?}")))
        }
    };
    let w = writes as f64;
    wait_check(
        &format!("{writes} SETs counted"),
        60,
        equals(
            r#"sum(tiered_engine_commands_total{command="set",outcome="ok"})"#.into(),
            w,
        ),
    )?;
    wait_check(
        &format!("sequence number >= {writes}"),
        60,
        at_least("tiered_engine_sequence_number", w),
    )?;
    wait_check(
        "logged bytes > 200 per write",
        60,
        at_least("tiered_engine_logged_bytes_total", 200.0 * w + 1.0),
    )?;
    wait_check(
        "rotations happened",
        60,
        at_least("tiered_engine_rotations_total", 1.0),
    )?;
    wait_check(
        "engine ready",
        60,
        equals("tiered_engine_ready".into(), 1.0),
    )?;
    wait_check(
        "engine writes not failed",
        60,
        equals("tiered_engine_writes_failed".into(), 0.0),
    )?;
    // Tiers: the tmpfs sizes come through statvfs, the exporters and Prometheus.
    for (prog, tier, size) in tier_totals {
        let expr = format!(r#"{prog}_tier_total_bytes{{tier="{tier}"}}"#);
        wait_check(
            &format!("{expr} == {size}"),
            60,
            equals(expr.clone(), size as f64),
        )?;
    }
    wait_check(
        "free fraction recorded for both tiers of both jobs",
        60,
        || {
            let v = prom.values("tiered:tier_free:ratio")?;
            Ok((v.len() == 4, format!("{v:?}")))
        },
    )?;
    // The snapshotter made a snapshot after the writes and moved files to the archive.
    wait_check("snapshot newer than the test start", 60, || {
        let v = prom.values("tiered_snapshotter_last_snapshot_timestamp_seconds")?;
        Ok((v.first().is_some_and(|x| *x >= start_s), format!("{v:?}")))
    })?;
    wait_check(
        "snapshots ok counted",
        60,
        at_least(r#"tiered_snapshotter_snapshots_total{outcome="ok"}"#, 1.0),
    )?;
    wait_check(
        "archive grew",
        60,
        at_least("tiered_snapshotter_archive_bytes", 1.0),
    )?;
    wait_check(
        "archived log bytes counted",
        60,
        at_least(
            r#"tiered_snapshotter_archived_bytes_total{kind="log"}"#,
            1.0,
        ),
    )?;
    // The plugin counted its requests, and the Get of an unknown volume (the
    // daemon's probe before Create) as not_found, not as an error.
    wait_check(
        "plugin volume counted",
        60,
        equals("tiered_plugin_volumes".into(), 1.0),
    )?;
    wait_check(
        "plugin requests counted",
        60,
        equals(
            r#"tiered_plugin_requests_total{endpoint="create"}"#.into(),
            1.0,
        ),
    )?;
    wait_check(
        "plugin not_found counted",
        60,
        equals(
            r#"tiered_plugin_request_not_found_total{endpoint="get"}"#.into(),
            1.0,
        ),
    )?;
    wait_check("plugin Get probe not counted as an error", 60, || {
        let v = prom.values(r#"tiered_plugin_request_errors_total{endpoint="get"}"#)?;
        Ok((v.is_empty() || v == [0.0], format!("{v:?}")))
    })?;

    // Every tiered_* name that the rules, their unit tests and the dashboard
    // use is one the programs expose.
    let mut exposed = BTreeSet::new();
    for p in [engine_mport, snap_mport, plugin_mport] {
        exposed.extend(exposed_names(&scrape(&addr(p))?));
    }
    let mut used: BTreeMap<String, &str> = BTreeMap::new();
    for f in [
        "tiered-rules.yml",
        "tiered-rules.test.yml",
        "grafana-dashboard.json",
    ] {
        for n in metric_names(&std::fs::read_to_string(monf(f))?) {
            used.entry(n).or_insert(f);
        }
    }
    let unknown: Vec<_> = used.iter().filter(|(n, _)| !exposed.contains(*n)).collect();
    ensure!(
        unknown.is_empty(),
        "names not exposed by any program: {unknown:?}"
    );
    eprintln!(
        "ok: all {} metric names used by rules, rule tests and dashboard are exposed",
        used.len()
    );

    // Every dashboard query is valid PromQL and, with all of the above done, has data.
    let exprs: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    (
                        p["title"].as_str().unwrap_or("").to_owned(),
                        t["expr"].as_str().unwrap_or("").to_owned(),
                    )
                })
        })
        .collect();
    ensure!(!exprs.is_empty(), "dashboard has no queries");
    wait_check("every dashboard query returns data", 30, || {
        let mut empty = Vec::new();
        for (title, e) in &exprs {
            if prom.query(&e.replace("$__rate_interval", "1m"))?.is_empty() {
                empty.push(format!("{title}: {e}"));
            }
        }
        Ok((
            empty.is_empty(),
            format!("{} queries, empty: {empty:?}", exprs.len()),
        ))
    })?;

    // Alerts computed from the live series. The test's snapshotter has no
    // retention and its archive just grew while Prometheus watched: exactly
    // the two archive-growth alerts are pending, and nothing else is pending
    // or firing.
    let want: BTreeSet<(String, String)> = [
        (
            "TieredArchiveOutgrowingRetention".to_owned(),
            "pending".to_owned(),
        ),
        ("TieredArchiveTierFullSoon".to_owned(), "pending".to_owned()),
    ]
    .into();
    wait_check("only the archive-growth alerts are pending", 30, || {
        let alerts = prom.alerts()?;
        let got: BTreeSet<(String, String)> = alerts
            .iter()
            .map(|a| {
                let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
                (s(&a["labels"]["alertname"]), s(&a["state"]))
            })
            .collect();
        if !got.is_subset(&want) {
            bail!("unexpected alerts: {alerts:?}");
        }
        let ok = got == want
            && alerts
                .iter()
                .all(|a| a["labels"]["job"] == "tiered-snapshotter");
        Ok((ok, format!("{got:?}")))
    })?;

    // Filling the plugin's archive tier to 94%: TieredTierAlmostFull.
    let filler = plugin_dir.join("archive/filler");
    std::fs::write(&filler, vec![0u8; (plugin_archive / 16 * 15) as usize])?;
    prom.expect_alert(
        "TieredTierAlmostFull",
        &[("job", "tiered-plugin"), ("tier", "archive")],
    )?;
    std::fs::remove_file(&filler)?;

    // Stopping the plugin: TieredTargetDown.
    plugin.stop();
    prom.expect_alert("TieredTargetDown", &[("job", "tiered-plugin")])?;

    // 4. The managed-plugin path: a managed plugin (config.json + rootfs/) has
    // no metrics listener until TIERED_METRICS_LISTEN is set while disabled;
    // it runs in the host's network namespace, so the host reaches it.
    let managed: PathBuf = work.join("managed");
    let managed_archive = 16 * MIB;
    let _m5 = tmpfs(
        &managed.join("archive"),
        managed_archive,
        "tiered-mon-managed-archive",
    )?;
    let mp = Install::new(
        &t.name("monitoring"),
        &managed.join("primary"),
        &managed.join("archive"),
    )
    .install()?;
    let mp_port = free_port();
    ensure!(
        !http_ok(&addr(mp_port), "/metrics"),
        "managed plugin listens on {mp_port} before the setting"
    );
    docker(["plugin", "disable", mp.name()])?;
    docker([
        "plugin",
        "set",
        mp.name(),
        &format!("TIERED_METRICS_LISTEN={}", addr(mp_port)),
    ])?;
    docker(["plugin", "enable", mp.name()])?;
    wait_for(Duration::from_secs(15), "managed plugin metrics", || {
        http_ok(&addr(mp_port), "/metrics")
    })?;
    let line = format!(r#"tiered_plugin_tier_total_bytes{{tier="archive"}} {managed_archive}"#);
    let text = scrape(&addr(mp_port))?;
    ensure!(
        text.lines().any(|l| l == line),
        "{line:?} not in the managed plugin's metrics"
    );
    eprintln!("ok: managed plugin serves its metrics: {line}");
    Ok(())
}

#[test]
fn metric_name_scanner() {
    let names = metric_names(
        r#"expr: rate(tiered_engine_x_total[5m]) / tiered:tier_free:ratio + my_tiered_y"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["tiered_engine_x_total"]
    );
    let exposed = exposed_names("# TYPE a counter\n# TYPE h histogram\nb{x=\"1\"} 2\n");
    assert_eq!(
        exposed.into_iter().collect::<Vec<_>>(),
        ["a_total", "b", "h_bucket", "h_count", "h_sum"]
    );
}
