//! Property: a random stream of commands over every type (strings, hashes,
//! lists, sets, sorted sets, bits, expiry, MULTI/EXEC, Lua scripts, blocking
//! pops served by a later push), applied live by the real engine binary,
//! gives the same state
//!   1. when the engine restarts from its command log alone (after kill -9),
//!   2. when it restarts from a snapshot built by the snapshotter (older
//!      logs moved to the archive) plus the log after it.
//!
//! The states are read through the Redis protocol key by key: type,
//! contents (sets sorted, hashes in their field order, sorted sets with
//! their scores as the engine formats them) and absolute expiry. The
//! snapshot must load as it is (a damaged one would be skipped at start,
//! the archived logs replayed instead, hiding the damage).
//!
//! `TIERED_PROP_SEED=n` replays one seed; `TIERED_PROP_OPS` sets the stream
//! length (default 3000 per seed).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Value;

fn engine_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("tiered-engine");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p tiered-engine`; `cargo test --workspace` builds it)",
        bin.display()
    );
    bin
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The engine binary on a dir, killed (SIGKILL) when dropped.
struct Engine {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Engine {
    fn start(dir: &Path) -> Engine {
        let addr = free_addr();
        let child = Command::new(engine_bin())
            .arg("--dir")
            .arg(dir)
            .args(["--listen", &addr.to_string()])
            // many small segments: the snapshotter has sealed ones to fold
            .args(["--rotate-bytes", "16384", "--reserve-bytes", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let e = Engine { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while e.try_conn().is_none() {
            assert!(
                Instant::now() < deadline,
                "engine on {} did not start",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        e
    }

    fn try_conn(&self) -> Option<redis::Connection> {
        let mut c = redis::Client::open(format!("redis://{}/", self.addr))
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(5))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut c).ok()?;
        Some(c)
    }

    fn conn(&self) -> redis::Connection {
        self.try_conn().expect("connect to the engine")
    }
}

// ------------------------------------------------------------------ state

/// One key as the protocol shows it: type, contents, absolute expiry (ms, -1 none).
type KeyState = (String, Vec<Vec<u8>>, i64);
type State = BTreeMap<Vec<u8>, KeyState>;

fn bulks(v: Value) -> Vec<Vec<u8>> {
    match v {
        Value::Array(xs) => xs
            .into_iter()
            .map(|x| match x {
                Value::BulkString(b) => b,
                other => format!("{other:?}").into_bytes(),
            })
            .collect(),
        Value::Nil => Vec::new(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// Every key of the engine behind `c`, read key by key.
fn state(c: &mut redis::Connection) -> State {
    let mut keys = BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, batch): (String, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(&cursor)
            .arg("COUNT")
            .arg(500)
            .query(c)
            .unwrap();
        keys.extend(batch);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let mut out = State::new();
    for k in keys {
        let ty: String = redis::cmd("TYPE").arg(&k).query(c).unwrap();
        let q = |name: &str, extra: &[&str], c: &mut redis::Connection| -> Value {
            redis::cmd(name).arg(&k).arg(extra).query(c).unwrap()
        };
        let mut contents = match ty.as_str() {
            "string" => match q("GET", &[], c) {
                Value::BulkString(b) => vec![b],
                other => panic!("GET gave {other:?}"),
            },
            "hash" => bulks(q("HGETALL", &[], c)),
            "list" => bulks(q("LRANGE", &["0", "-1"], c)),
            "set" => bulks(q("SMEMBERS", &[], c)),
            "zset" => bulks(q("ZRANGE", &["0", "-1", "WITHSCORES"], c)),
            other => panic!(
                "key {:?} has unexpected type {other}",
                String::from_utf8_lossy(&k)
            ),
        };
        // a hash's fields stay in their order (insertion order) across
        // replay and snapshots, so HGETALL is compared as it is
        if ty == "set" {
            contents.sort();
        }
        let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(c).unwrap();
        out.insert(k, (ty, contents, at));
    }
    out
}

fn show_diff(what: &str, want: &State, got: &State) -> String {
    let mut lines = vec![format!(
        "{what}: {} keys live, {} after",
        want.len(),
        got.len()
    )];
    for (k, v) in want {
        match got.get(k) {
            None => lines.push(format!("  missing {:?}", String::from_utf8_lossy(k))),
            Some(g) if g != v => lines.push(format!(
                "  {:?}: live {v:?}\n    after {g:?}",
                String::from_utf8_lossy(k)
            )),
            _ => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        lines.push(format!("  extra {:?}", String::from_utf8_lossy(k)));
    }
    lines.truncate(40);
    lines.join("\n")
}

// ------------------------------------------------------------------ stream

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A key of type `t` (`s` string, `h` hash, `l` list, `S` set, `z` zset);
/// now and then one of another type, for WRONGTYPE paths.
fn key(r: &mut Rng, t: &str) -> String {
    let t = if r.chance(5) {
        r.pick(&["s", "h", "l", "S", "z"])
    } else {
        t
    };
    format!("{t}:{}", r.below(12))
}

/// A key of any type.
fn any_key(r: &mut Rng) -> String {
    let t = r.pick(&["s", "h", "l", "S", "z"]);
    key(r, t)
}

fn member(r: &mut Rng) -> String {
    match r.below(3) {
        0 => r.below(40).to_string(),
        _ => format!("m{}", r.below(30)),
    }
}

fn score(r: &mut Rng) -> String {
    r.pick(&[
        "0", "1", "-2", "1.5", "-3.25", "0.1", "100", "inf", "-inf", "3e3", "7",
    ])
    .to_string()
}

/// A far expiry (the test must not race the clock), or one in the past.
fn expiry(r: &mut Rng) -> Vec<String> {
    match r.below(4) {
        0 => vec!["EX".into(), (1000 + r.below(100_000)).to_string()],
        1 => vec!["PX".into(), (2_000_000 + r.below(1_000_000)).to_string()],
        2 => vec!["EXAT".into(), (4_000_000_000 + r.below(1000)).to_string()],
        _ => vec!["KEEPTTL".into()],
    }
}

fn write(r: &mut Rng) -> Vec<String> {
    let s = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut a: Vec<String> = match r.below(60) {
        // strings
        0 => s(&["SET", &key(r, "s"), &member(r)]),
        1 => {
            let mut a = s(&["SET", &key(r, "s"), &member(r)]);
            a.extend(expiry(r));
            a
        }
        2 => s(&["APPEND", &key(r, "s"), &member(r)]),
        3 => s(&[
            "INCRBY",
            &format!("n:{}", r.below(4)),
            &(r.below(100) as i64 - 50).to_string(),
        ]),
        4 => s(&[
            "INCRBYFLOAT",
            &format!("f:{}", r.below(3)),
            r.pick(&["0.1", "1.5", "-2.25", "1e3", "3.0e-2"]),
        ]),
        5 => s(&[
            "SETRANGE",
            &key(r, "s"),
            &r.below(20).to_string(),
            &member(r),
        ]),
        6 => s(&["GETDEL", &key(r, "s")]),
        7 => s(&["GETEX", &key(r, "s"), "PERSIST"]),
        8 => s(&["MSET", &key(r, "s"), &member(r), &key(r, "s"), &member(r)]),
        9 => s(&[
            "SETBIT",
            &format!("b:{}", r.below(3)),
            &r.below(200).to_string(),
            r.pick(&["0", "1"]),
        ]),
        10 => s(&[
            "BITOP",
            r.pick(&["AND", "OR", "XOR"]),
            &format!("b:{}", r.below(3)),
            &format!("b:{}", r.below(3)),
            &format!("b:{}", r.below(3)),
        ]),
        // keys and expiry
        11 => s(&["DEL", &any_key(r)]),
        12 => s(&[
            "EXPIRE",
            &any_key(r),
            &(1000 + r.below(9000)).to_string(),
            r.pick(&["", "NX", "XX", "GT", "LT"]),
        ]),
        13 => s(&["PEXPIREAT", &any_key(r), "1000"]),
        14 => s(&["PERSIST", &any_key(r)]),
        15 => {
            let t = r.pick(&["s", "h", "l", "S", "z"]);
            s(&["RENAME", &key(r, t), &key(r, t)])
        }
        16 => {
            let t = r.pick(&["s", "h", "l", "S", "z"]);
            s(&["COPY", &key(r, t), &key(r, t), r.pick(&["", "REPLACE"])])
        }
        // hashes
        17 | 18 => s(&[
            "HSET",
            &key(r, "h"),
            &member(r),
            &member(r),
            &member(r),
            &member(r),
        ]),
        19 => s(&["HDEL", &key(r, "h"), &member(r)]),
        20 => s(&["HINCRBY", &key(r, "h"), "cnt", &r.below(10).to_string()]),
        21 => s(&[
            "HINCRBYFLOAT",
            &key(r, "h"),
            "flt",
            r.pick(&["0.5", "-1.25", "1e2"]),
        ]),
        22 => s(&["HSETNX", &key(r, "h"), &member(r), &member(r)]),
        // lists
        23 | 24 => s(&[
            r.pick(&["LPUSH", "RPUSH"]),
            &key(r, "l"),
            &member(r),
            &member(r),
        ]),
        25 => s(&[
            r.pick(&["LPOP", "RPOP"]),
            &key(r, "l"),
            &(1 + r.below(3)).to_string(),
        ]),
        26 => s(&[
            "LSET",
            &key(r, "l"),
            &(r.below(6) as i64 - 3).to_string(),
            &member(r),
        ]),
        27 => s(&[
            "LTRIM",
            &key(r, "l"),
            &r.below(3).to_string(),
            &(r.below(8) as i64 - 2).to_string(),
        ]),
        28 => s(&[
            "LREM",
            &key(r, "l"),
            &(r.below(5) as i64 - 2).to_string(),
            &member(r),
        ]),
        29 => s(&[
            "LINSERT",
            &key(r, "l"),
            r.pick(&["BEFORE", "AFTER"]),
            &member(r),
            &member(r),
        ]),
        30 => s(&[
            "LMOVE",
            &key(r, "l"),
            &key(r, "l"),
            r.pick(&["LEFT", "RIGHT"]),
            r.pick(&["LEFT", "RIGHT"]),
        ]),
        31 => s(&[
            "LMPOP",
            "2",
            &key(r, "l"),
            &key(r, "l"),
            r.pick(&["LEFT", "RIGHT"]),
            "COUNT",
            "2",
        ]),
        // sets
        32 | 33 => s(&["SADD", &key(r, "S"), &member(r), &member(r), &member(r)]),
        34 => s(&["SREM", &key(r, "S"), &member(r), &member(r)]),
        35 => s(&["SPOP", &key(r, "S"), &(1 + r.below(3)).to_string()]),
        36 => s(&["SPOP", &key(r, "S")]),
        37 => s(&["SMOVE", &key(r, "S"), &key(r, "S"), &member(r)]),
        38 => s(&[
            r.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]),
            &key(r, "S"),
            &key(r, "S"),
            &key(r, "S"),
        ]),
        // sorted sets
        39 | 40 => s(&[
            "ZADD",
            &key(r, "z"),
            &score(r),
            &member(r),
            &score(r),
            &member(r),
        ]),
        41 => {
            let flag = r.pick(&["NX", "XX", "GT", "LT", "CH"]);
            s(&["ZADD", &key(r, "z"), flag, &score(r), &member(r)])
        }
        42 => s(&[
            "ZADD",
            &key(r, "z"),
            "INCR",
            r.pick(&["1", "0.5", "-2.5", "1e1"]),
            &member(r),
        ]),
        43 => s(&[
            "ZINCRBY",
            &key(r, "z"),
            r.pick(&["1", "0.1", "-3", "2.5"]),
            &member(r),
        ]),
        44 => s(&["ZREM", &key(r, "z"), &member(r), &member(r)]),
        45 => s(&[
            r.pick(&["ZPOPMIN", "ZPOPMAX"]),
            &key(r, "z"),
            &(1 + r.below(2)).to_string(),
        ]),
        46 => s(&[
            "ZREMRANGEBYSCORE",
            &key(r, "z"),
            r.pick(&["-inf", "(0", "1"]),
            r.pick(&["+inf", "5", "(100"]),
        ]),
        47 => s(&[
            "ZREMRANGEBYRANK",
            &key(r, "z"),
            "0",
            &r.below(3).to_string(),
        ]),
        48 => s(&[
            "ZREMRANGEBYLEX",
            &key(r, "z"),
            r.pick(&["-", "[m1", "(m2"]),
            r.pick(&["+", "[m5", "(m9"]),
        ]),
        49 => {
            let op = r.pick(&["ZUNIONSTORE", "ZINTERSTORE"]);
            let agg = r.pick(&["SUM", "MIN", "MAX"]);
            s(&[
                op,
                &key(r, "z"),
                "2",
                &key(r, "z"),
                &key(r, "z"),
                "WEIGHTS",
                r.pick(&["1", "2", "0.5"]),
                "3",
                "AGGREGATE",
                agg,
            ])
        }
        50 => s(&["ZDIFFSTORE", &key(r, "z"), "2", &key(r, "z"), &key(r, "z")]),
        51 => s(&[
            "ZRANGESTORE",
            &key(r, "z"),
            &key(r, "z"),
            "0",
            &r.below(5).to_string(),
        ]),
        52 => s(&[
            "ZMPOP",
            "2",
            &key(r, "z"),
            &key(r, "z"),
            r.pick(&["MIN", "MAX"]),
            "COUNT",
            "2",
        ]),
        // scripts: several writes logged as one record; the second one may fail
        53 | 54 => {
            let body = "redis.call('SADD', KEYS[1], ARGV[1]); redis.call('INCR', KEYS[2]); \
                        redis.call('ZINCRBY', KEYS[3], ARGV[2], ARGV[1]); return redis.call('SCARD', KEYS[1])";
            s(&[
                "EVAL",
                body,
                "3",
                &key(r, "S"),
                &format!("n:{}", r.below(4)),
                &key(r, "z"),
                &member(r),
                &score(r),
            ])
        }
        55 => {
            let body = "redis.call('RPUSH', KEYS[1], ARGV[1]); return redis.pcall('INCR', KEYS[2])";
            s(&["EVAL", body, "2", &key(r, "l"), &key(r, "s"), &member(r)])
        }
        56 => s(&["FLUSHDB"])
            .into_iter()
            .filter(|_| r.chance(10))
            .collect(),
        _ => s(&["HSET", &key(r, "h"), "a", &member(r)]),
    };
    a.retain(|x| !x.is_empty());
    if a.is_empty() {
        a = s(&["PING"]);
    }
    a
}

fn send(c: &mut redis::Connection, args: &[String]) -> Value {
    let mut cmd = redis::cmd(&args[0]);
    for x in &args[1..] {
        cmd.arg(x);
    }
    // errors (wrong type, not an integer…) are part of the stream
    cmd.query::<Value>(c).unwrap_or(Value::Nil)
}

/// Runs the stream against the engine at `addr`.
fn run_stream(engine: &Engine, seed: u64, ops: usize) {
    let mut r = Rng(seed | 1);
    let mut c = engine.conn();
    let mut i = 0;
    while i < ops {
        // a FLUSHDB in the last stretch would leave nothing to compare
        // (seed 1796249334213554377 ended on one)
        let write = |r: &mut Rng| loop {
            let w = write(r);
            if w[0] != "FLUSHDB" || i + 200 < ops {
                break w;
            }
        };
        match r.below(40) {
            // a transaction of a few writes
            0 => {
                let n = 2 + r.below(4);
                let _ = redis::cmd("MULTI").query::<Value>(&mut c);
                for _ in 0..n {
                    send(&mut c, &write(&mut r));
                }
                let end = if r.chance(15) { "DISCARD" } else { "EXEC" };
                let _ = redis::cmd(end).query::<Value>(&mut c);
                i += n as usize;
            }
            // a blocking pop served by a later push from another connection
            1 => {
                let q = format!("q:{}", r.below(3));
                let mut waiter = engine.conn();
                let (qq, cmdname) = (q.clone(), r.pick(&["BLPOP", "BRPOP"]).to_string());
                let t = std::thread::spawn(move || {
                    redis::cmd(&cmdname)
                        .arg(&qq)
                        .arg(5)
                        .query::<Value>(&mut waiter)
                        .ok()
                });
                // let the waiter block first (when the list is empty)
                std::thread::sleep(Duration::from_millis(20));
                send(
                    &mut c,
                    &["RPUSH".into(), q, format!("job{i}"), format!("job{i}b")],
                );
                let got = t.join().unwrap();
                assert!(
                    matches!(got, Some(Value::Array(_))),
                    "blocked pop not served by a push: {got:?}"
                );
                i += 2;
            }
            _ => {
                send(&mut c, &write(&mut r));
                i += 1;
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

fn files_under(dir: &Path, prefix: &str) -> usize {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

fn check_seed(seed: u64, ops: usize) {
    eprintln!("replay property: seed {seed}, {ops} ops (TIERED_PROP_SEED={seed} replays it)");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir_all(&a).unwrap();

    let engine = Engine::start(&a);
    run_stream(&engine, seed, ops);
    let live = state(&mut engine.conn());
    assert!(live.len() > 10, "the stream left almost nothing: {live:?}");
    let types: BTreeSet<&str> = live.values().map(|v| v.0.as_str()).collect();
    eprintln!("  live: {} keys of types {types:?}", live.len());
    drop(engine); // kill -9: every acknowledged write is on disk

    copy_dir(&a, &b);

    // 1. the command log alone
    let engine = Engine::start(&a);
    let after_log = state(&mut engine.conn());
    drop(engine);
    assert!(
        after_log == live,
        "seed {seed}: {}",
        show_diff("replay of the log", &live, &after_log)
    );

    // 2. a snapshot plus the log after it (older logs moved to the archive)
    let o = Command::new(env!("CARGO_BIN_EXE_tiered-snapshotter"))
        .args(["once", "--keep-snapshots", "1", "--dir"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(files_under(&b, "snapshot-") >= 1, "no snapshot was built");
    assert!(
        files_under(&b.join("archived").join("logs"), "cmdlog-") >= 1,
        "no log was archived: the restart could replay the logs alone"
    );
    for e in fs::read_dir(&b).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "snap") {
            if let Err(err) = tiered_engine::snapshot::read_snapshot(&path) {
                panic!("seed {seed}: the snapshot does not load: {err}");
            }
        }
    }
    let engine = Engine::start(&b);
    let after_snap = state(&mut engine.conn());
    drop(engine);
    assert!(
        after_snap == live,
        "seed {seed}: {}",
        show_diff("snapshot + log", &live, &after_snap)
    );
}

#[test]
fn live_state_equals_replay_from_log_and_from_snapshot() {
    let ops = std::env::var("TIERED_PROP_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    match std::env::var("TIERED_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => check_seed(seed, ops),
        None => {
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            for i in 0..2 {
                check_seed(base.wrapping_add(i * 0x9e37_79b9), ops);
            }
        }
    }
}
