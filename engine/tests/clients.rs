//! Real clients, unchanged, against the engine and side by side against a
//! real `redis-server`: redis-py (the newest from PyPI, in the venv that
//! `scripts/test-deps.sh` makes), `redis-cli` and `redis-benchmark`.
//!
//! Needs `redis-server`, `redis-cli` and `redis-benchmark` on PATH and
//! redis-py in `/opt/tiered/test-venv` (or `$TIERED_TEST_PYTHON` naming a
//! python with redis-py); a missing tool fails the test, naming the way out.
mod common;

use common::{Engine, Redis};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

const VENV_PYTHON: &str = "/opt/tiered/test-venv/bin/python";
const PY_CHECK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/redis_py_check.py"
);

fn python() -> String {
    let py = std::env::var("TIERED_TEST_PYTHON").unwrap_or_else(|_| VENV_PYTHON.to_string());
    assert!(
        Path::new(&py).exists(),
        "{py} missing: run scripts/test-deps.sh (it makes the venv with redis-py) \
         or set TIERED_TEST_PYTHON to a python that has redis-py"
    );
    py
}

/// Runs `prog args` under coreutils `timeout` (so a hung client fails the
/// test instead of hanging it) and returns what it printed.
fn run(secs: u32, prog: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg(secs.to_string())
        .arg(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {prog}: {e}"))
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        text(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    text(&o)
}

fn cli(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let all: Vec<&str> = ["-p", p.as_str()]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    ok(run(60, "redis-cli", &all), &format!("redis-cli {args:?}"))
}

fn flushall(port: u16) {
    assert_eq!(cli(port, &["FLUSHALL"]).trim(), "OK");
}

/// Runs the redis-py script against `port` with `proto` and returns its
/// `name=value` lines (the script asserts everything else itself).
fn redis_py(port: u16, proto: &str) -> String {
    let p = port.to_string();
    ok(
        run(300, &python(), &[PY_CHECK, &p, proto]),
        &format!("redis-py (protocol {proto}) on port {port}"),
    )
}

#[test]
fn redis_py_resp3_and_resp2_pools_pipelines_transactions_scan_as_redis() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let redis = Redis::start();
    let py = python();
    let version = ok(
        run(30, &py, &["-c", "import redis; print(redis.__version__)"]),
        "redis-py version",
    );
    eprintln!("redis-py {}", version.trim());
    // "default" is redis-py's own default, RESP3 (HELLO 3) since 6.x
    for proto in ["default", "2", "3"] {
        let want = redis_py(redis.port, proto);
        let got = redis_py(engine.port, proto);
        let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
        let diff: Vec<String> = w
            .iter()
            .zip(&g)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("redis-server {a}\n      engine {b}"))
            .collect();
        assert!(
            diff.is_empty() && w.len() == g.len(),
            "protocol {proto}: redis-py saw the engine differ from redis-server:\n{}",
            diff.join("\n")
        );
        flushall(redis.port);
        flushall(engine.port);
    }
    assert!(engine.healthy());
}

/// The keys both servers get before the redis-cli checks.
fn fill(port: u16) {
    for i in 0..50 {
        cli(port, &["SET", &format!("user:{i}"), &"x".repeat(i)]);
    }
    cli(port, &["MSET", "other:a", "1", "other:b", "22"]);
    cli(port, &["HSET", "hash:small", "f", "v"]);
    let mut big = vec!["HSET", "hash:big"];
    let fields: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
    for f in &fields {
        big.push(f);
        big.push("v");
    }
    cli(port, &big);
    cli(port, &["INCR", "counter"]);
}

/// The `-------- summary -------` part of `--bigkeys`/`--memkeys` output
/// (the progress lines before it depend on the SCAN order).
fn summary(out: &str) -> &str {
    let at = out
        .find("-------- summary -------")
        .unwrap_or_else(|| panic!("no summary in:\n{out}"));
    &out[at..]
}

#[test]
fn redis_cli_scan_bigkeys_memkeys_latency_and_resp3_as_redis() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let redis = Redis::start();
    fill(engine.port);
    fill(redis.port);

    // --scan --pattern: the same key set (order is the server's own)
    let keys = |port| -> BTreeSet<String> {
        cli(port, &["--scan", "--pattern", "user:*"])
            .lines()
            .map(str::to_string)
            .collect()
    };
    let got = keys(engine.port);
    assert_eq!(got.len(), 50, "{got:?}");
    assert_eq!(got, keys(redis.port));
    let all = cli(engine.port, &["--scan"]);
    assert_eq!(all.lines().collect::<BTreeSet<_>>().len(), 55);

    // --bigkeys: same summary (key counts, biggest per type by length)
    let big = cli(engine.port, &["--bigkeys"]);
    assert_eq!(summary(&big), summary(&cli(redis.port, &["--bigkeys"])));
    assert!(
        big.contains("Biggest   hash found '\"hash:big\"' has 40 fields"),
        "{big}"
    );
    assert!(big.contains("Sampled 55 keys"), "{big}");

    // --memkeys: MEMORY USAGE sizes are the engine's own, so compare what
    // does not depend on them (keys sampled, count per type) and that the
    // biggest hash is the 40-field one
    let mem = cli(engine.port, &["--memkeys"]);
    let rmem = cli(redis.port, &["--memkeys"]);
    let counts = |s: &str| -> Vec<String> {
        summary(s)
            .lines()
            .filter(|l| l.starts_with("Sampled") || l.contains(" of keys,"))
            .map(|l| l.split(" with ").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(counts(&mem), counts(&rmem), "{mem}");
    assert!(
        mem.contains("Biggest   hash found '\"hash:big\"' has "),
        "{mem}"
    );
    assert!(!mem.contains("has 0 bytes"), "{mem}");

    // --latency: off a terminal it prints one `min max avg samples` line
    // after the interval and exits
    let lat = cli(engine.port, &["--latency", "-i", "1"]);
    let nums: Vec<f64> = lat
        .split_whitespace()
        .map(|n| n.parse().unwrap_or_else(|_| panic!("--latency: {lat}")))
        .collect();
    assert_eq!(nums.len(), 4, "--latency: {lat}");
    assert!(
        nums[3] >= 1.0 && nums[0] <= nums[2] && nums[2] <= nums[1],
        "{lat}"
    );
    // --latency-history runs until stopped: 3 s of it shows whole
    // intervals (stdbuf: redis-cli's stdout is a pipe, block buffered, and
    // the timeout's SIGTERM would lose the buffer)
    let p = engine.port.to_string();
    let hist = run(
        3,
        "stdbuf",
        &["-oL", "redis-cli", "-p", &p, "--latency-history", "-i", "1"],
    );
    assert_eq!(hist.status.code(), Some(124), "stopped by timeout");
    assert!(text(&hist).contains("seconds range"), "{}", text(&hist));

    // -3: RESP3 replies as redis-cli renders them (--no-raw: with types)
    for args in [
        &["SET", "r3", "v"][..],
        &["GET", "r3"],
        &["GET", "missing"],
        &["INCR", "counter"],
        &["EXPIRE", "r3", "100"],
        &["EXISTS", "r3", "missing"],
        &["HGETALL", "hash:small"],
        &["HGET", "hash:small", "nope"],
        &["TYPE", "hash:small"],
        &["GET", "hash:small"],
        &["INCRBYFLOAT", "float", "1.5"],
        &["NOSUCHCOMMAND"],
    ] {
        let with = |port| {
            let mut a = vec!["-3", "--no-raw"];
            a.extend_from_slice(args);
            cli(port, &a)
        };
        assert_eq!(with(engine.port), with(redis.port), "redis-cli -3 {args:?}");
    }
    let hello = cli(engine.port, &["-3", "--no-raw", "HELLO", "3"]);
    assert!(hello.contains("\"proto\" => (integer) 3"), "{hello}");
    assert!(engine.healthy());
}

#[test]
fn redis_benchmark_set_get_incr_mset_completes_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let p = engine.port.to_string();
    let args = ["-p", &p, "-t", "set,get,incr,mset", "-n", "2000", "-q"];
    let o = run(300, "redis-benchmark", &args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let out = ok(o, "redis-benchmark");
    // -q shows progress with \r; the last state of each line is the result
    let finals: Vec<&str> = out
        .lines()
        .filter_map(|l| l.rsplit('\r').find(|s| !s.trim().is_empty()))
        .collect();
    for test in ["SET", "GET", "INCR", "MSET (10 keys)"] {
        assert!(
            finals
                .iter()
                .any(|l| l.starts_with(&format!("{test}: ")) && l.contains("requests per second")),
            "no result for {test}:\n{out}"
        );
    }
    for bad in ["ERR", "Error", "error"] {
        assert!(!out.contains(bad) && !err.contains(bad), "{out}\n{err}");
    }
    // every INCR reached the one counter the benchmark uses
    assert_eq!(
        cli(engine.port, &["GET", "counter:__rand_int__"]).trim(),
        "2000"
    );
    assert!(engine.healthy());
}
