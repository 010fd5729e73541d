//! Transactions and the execution model, end to end:
//! - MULTI/EXEC/DISCARD/WATCH/UNWATCH: scripted sessions (one or two
//!   connections) sent as raw RESP to the engine and to a real
//!   `redis-server`, every reply compared byte for byte;
//! - a transaction is one record: kill -9 while several connections run
//!   transactions, then every acknowledged EXEC is there whole and no
//!   transaction is there in part;
//! - a pipeline of interleaved SET/GET is answered in order, each GET
//!   seeing the SET before it, with far fewer group commits than commands.
//!
//! Needs `redis-server` on PATH (`scripts/deps.sh --test` installs it).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, metric, Engine};

/// A redis-server on a free port with no persistence, killed on drop.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/deps.sh --test installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw RESP connection; replies are read back as their raw bytes.
struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    fn send(&mut self, line: &str) {
        let args: Vec<&str> = line.split(' ').collect();
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.w.write_all(&out).unwrap();
    }

    /// One whole reply, as the bytes on the wire.
    fn reply(&mut self) -> String {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "truncated reply {line:?}");
        let n: i64 = line[1..line.len() - 2].parse().unwrap_or(0);
        match line.as_bytes()[0] {
            b'$' if n >= 0 => {
                let mut buf = vec![0; n as usize + 2];
                self.r.read_exact(&mut buf).unwrap();
                line.push_str(&String::from_utf8_lossy(&buf));
            }
            b'*' => {
                for _ in 0..n.max(0) {
                    let item = self.reply();
                    line.push_str(&item);
                }
            }
            _ => {}
        }
        line
    }

    fn call(&mut self, line: &str) -> String {
        self.send(line);
        self.reply()
    }
}

/// A step of a scripted session: a command on connection 0 or 1, or a
/// pause.
enum Step {
    On(usize, &'static str),
    Sleep(u64),
}
use Step::{On, Sleep};

/// Runs `steps` against a server; returns "conn> command -> reply" lines.
fn run(port: u16, steps: &[Step]) -> Vec<String> {
    let mut conns = [Conn::open(port), Conn::open(port)];
    conns[0].call("FLUSHALL");
    steps
        .iter()
        .filter_map(|s| match s {
            On(c, cmd) => Some(format!("{c}> {cmd} -> {:?}", conns[*c].call(cmd))),
            Sleep(ms) => {
                std::thread::sleep(Duration::from_millis(*ms));
                None
            }
        })
        .collect()
}

/// WATCH x, `setup` before, `write` from another connection, then EXEC:
/// aborted exactly when Redis 7.0 signals x modified (a write of the value
/// it already holds does; a write that does nothing does not).
fn touch(setup: &'static str, write: &'static str) -> (&'static str, Vec<Step>) {
    (
        write,
        vec![
            On(0, setup),
            On(0, "WATCH x"),
            On(1, write),
            On(0, "MULTI"),
            On(0, "PING"),
            On(0, "EXEC"),
            On(0, "MULTI"),
            On(0, "RESET"),
            On(0, "EXEC"),
        ],
    )
}

/// Writes around a watched key, compared with redis-server.
fn touch_sessions() -> Vec<(&'static str, Vec<Step>)> {
    vec![
        touch("SET x v", "SET x v"),
        touch("SET x v", "SET x v NX"),
        touch("SET x v", "SET x v XX GET"),
        touch("SET x v", "SET x w NX GET"),
        touch("SET x v", "GETSET x v"),
        touch("SET x v", "MSET x v"),
        touch("SET x v", "MSETNX x v"),
        touch("SET x v", "APPEND x \"\""),
        touch("SET x v", "SETRANGE x 0 v"),
        touch("SET x v", "SETRANGE x 0 \"\""),
        touch("SET x 5", "INCRBY x 0"),
        touch("SET x 1.5", "INCRBYFLOAT x 0"),
        touch("HSET x f v", "HSET x f v"),
        touch("HSET x f 1", "HINCRBY x f 0"),
        touch("HSET x f v", "HSETNX x f v"),
        touch("HSET x f v", "HDEL x nofield"),
        touch("RPUSH x a", "LSET x 0 a"),
        touch("RPUSH x a", "LTRIM x 0 -1"),
        touch("RPUSH x a", "LREM x 0 nothing"),
        touch("SET x v EX 100", "EXPIRE x 100"),
        touch("SET x v", "PERSIST x"),
        touch("SET x v", "GETEX x EX 100"),
        touch("SET x \"\\x00\"", "SETBIT x 0 0"),
        touch("SET x \"\\x00\"", "BITFIELD x SET u8 0 0"),
        touch("SET x \"\\x00\"", "BITOP OR x x"),
        touch("SET y v", "COPY y x"),
        touch("SET x v", "COPY x y"),
        touch("SET x v", "RENAME x x"),
        touch("SET x v", "DEL nokey"),
        touch("RPUSH x 1", "SORT x STORE x"),
        touch("SET x v", "SAVE"),
    ]
}

fn sessions() -> Vec<(&'static str, Vec<Step>)> {
    vec![
        (
            "basics",
            vec![
                On(0, "MULTI"),
                On(0, "SET a 1"),
                On(0, "INCR a"),
                On(0, "GET a"),
                On(0, "PING"),
                On(0, "EXEC"),
                On(0, "GET a"),
            ],
        ),
        ("empty", vec![On(0, "MULTI"), On(0, "EXEC")]),
        (
            "discard",
            vec![
                On(0, "SET a 1"),
                On(0, "MULTI"),
                On(0, "DEL a"),
                On(0, "DISCARD"),
                On(0, "GET a"),
                On(0, "DISCARD"),
                On(0, "EXEC"),
            ],
        ),
        (
            "nesting and watch inside multi",
            vec![
                On(0, "MULTI"),
                On(0, "MULTI"),
                On(0, "WATCH x"),
                On(0, "SET x 1"),
                On(0, "EXEC"),
                On(0, "GET x"),
            ],
        ),
        (
            "queue-time errors abort",
            vec![
                On(0, "MULTI"),
                On(0, "SET foo1 bar1"),
                On(0, "NOSUCHCOMMAND x"),
                On(0, "SET foo2 bar2"),
                On(0, "EXEC"),
                On(0, "EXISTS foo1 foo2"),
                On(0, "MULTI"),
                On(0, "SET foo1"),
                On(0, "EXEC"),
                On(0, "PING"),
            ],
        ),
        (
            "runtime errors do not stop the others",
            vec![
                On(0, "SET s abc"),
                On(0, "HSET h f v"),
                On(0, "MULTI"),
                On(0, "INCR s"),
                On(0, "SET t 1"),
                On(0, "GET h"),
                On(0, "SET u v BOGUS"),
                On(0, "INCRBY t 5"),
                On(0, "EXEC"),
                On(0, "MGET s t u"),
            ],
        ),
        (
            "watch: another client changes the key",
            vec![
                On(0, "SET x 30"),
                On(0, "WATCH x"),
                On(1, "SET x 40"),
                On(0, "MULTI"),
                On(0, "SET y 1"),
                On(0, "EXEC"),
                On(0, "EXISTS y"),
                // no longer watched after a failed EXEC
                On(1, "SET x 50"),
                On(0, "MULTI"),
                On(0, "SET y 1"),
                On(0, "EXEC"),
            ],
        ),
        (
            "watch: untouched keys, unwatch",
            vec![
                On(0, "WATCH a b x k"),
                On(1, "SET other 1"),
                On(1, "DEL a"),
                On(1, "SET x 1 NX XX"),
                On(0, "MULTI"),
                On(0, "PING"),
                On(0, "EXEC"),
                On(0, "SET x 1"),
                On(0, "WATCH x"),
                On(1, "SET x 2"),
                On(0, "UNWATCH"),
                On(0, "MULTI"),
                On(0, "GET x"),
                On(0, "EXEC"),
                On(0, "UNWATCH"),
            ],
        ),
        (
            "watch: flushall touches existing keys only",
            vec![
                On(0, "SET x 30"),
                On(0, "WATCH x"),
                On(1, "FLUSHALL"),
                On(0, "MULTI"),
                On(0, "PING"),
                On(0, "EXEC"),
                On(0, "DEL x"),
                On(0, "WATCH x"),
                On(1, "FLUSHALL"),
                On(0, "MULTI"),
                On(0, "PING"),
                On(0, "EXEC"),
            ],
        ),
        (
            "watch: expiry and expire",
            vec![
                On(0, "SET x foo PX 50"),
                On(0, "WATCH x"),
                Sleep(200),
                On(0, "MULTI"),
                On(0, "PING"),
                On(0, "EXEC"),
                On(0, "SET x foo"),
                On(0, "WATCH x"),
                On(1, "EXPIRE x 100"),
                On(0, "MULTI"),
                On(0, "PING"),
                On(0, "EXEC"),
            ],
        ),
        (
            "discard clears the dirty flag and unwatches",
            vec![
                On(0, "WATCH x"),
                On(0, "SET x 10"),
                On(0, "MULTI"),
                On(0, "DISCARD"),
                On(0, "MULTI"),
                On(0, "INCR x"),
                On(0, "EXEC"),
            ],
        ),
        (
            "own writes inside exec do not abort it; unwatch queued",
            vec![
                On(0, "WATCH x"),
                On(0, "MULTI"),
                On(0, "SET x 1"),
                On(0, "UNWATCH"),
                On(0, "INCR x"),
                On(0, "EXEC"),
                On(0, "WATCH"),
            ],
        ),
    ]
}

#[test]
fn transactions_reply_like_redis_server() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let redis = Redis::start();
    let mut diffs = Vec::new();
    for (name, steps) in sessions().into_iter().chain(touch_sessions()) {
        let e = run(engine.port, &steps);
        let r = run(redis.port, &steps);
        for (a, b) in e.iter().zip(&r) {
            if a != b {
                diffs.push(format!("{name}:\n  engine: {a}\n  redis:  {b}"));
            }
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// Raw bytes of a pipeline of commands.
fn pipeline_bytes(cmds: &[Vec<String>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        out.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
        for a in c {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
    }
    out
}

#[test]
fn a_pipeline_of_interleaved_set_get_costs_few_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let before = metric(
        &engine.http_get("/metrics").1,
        "tiered_engine_logged_records_total",
        &[],
    )
    .unwrap_or(0.0);
    let n = 2000;
    let mut cmds = Vec::new();
    for i in 0..n {
        cmds.push(vec!["SET".into(), format!("k{i}"), format!("v{i}")]);
        cmds.push(vec!["GET".into(), format!("k{i}")]);
    }
    let mut c = Conn::open(engine.port);
    c.w.write_all(&pipeline_bytes(&cmds)).unwrap();
    for i in 0..n {
        assert_eq!(c.reply(), "+OK\r\n");
        assert_eq!(c.reply(), format!("${}\r\nv{i}\r\n", format!("v{i}").len()));
    }
    let scrape = engine.http_get("/metrics").1;
    let records = metric(&scrape, "tiered_engine_logged_records_total", &[]).unwrap() - before;
    assert_eq!(records, n as f64, "one record per SET, none per GET");
    let commits = metric(&scrape, "tiered_engine_group_commit_batch_size_count", &[]).unwrap();
    assert!(
        commits < (n / 10) as f64,
        "{commits} group commits for {n} SET/GET pairs: reads must not cost an fsync each"
    );
}

/// Several connections run transactions (two SETs, an INCR and an HSET,
/// one record each) as fast as they can; the engine is killed -9; after a
/// restart every acknowledged EXEC is there whole, and every transaction is
/// there whole or not at all.
#[test]
fn kill9_during_transactions_keeps_each_whole_or_absent() {
    use redis::AsyncCommands;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p");
    let extra = ["--rotate-bytes", "65536"];
    let e = Engine::start(&data, &extra);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = 6u64;
    let acked: Vec<u64> = rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..writers {
            let client = e.client();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = client.get_multiplexed_async_connection().await.unwrap();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r: redis::RedisResult<(String, i64, i64, String)> = redis::pipe()
                        .atomic()
                        .set(format!("w{w}:{i}:a"), format!("a{i}"))
                        .incr(format!("count{w}"), 1)
                        .hset(format!("w{w}:h"), format!("f{i}"), i)
                        .set(
                            format!("w{w}:{i}:b"),
                            format!("b{i}{}", "x".repeat(i as usize % 300)),
                        )
                        .query_async(&mut c)
                        .await;
                    match r {
                        Ok((_, count, _, _)) => {
                            assert_eq!(count as u64, i + 1, "transactions of w{w} in order");
                        }
                        Err(_) => break, // the engine died
                    }
                    i += 1;
                }
                i
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        e.kill9();
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        all
    });
    assert!(
        acked.iter().sum::<u64>() > 100,
        "load too small to mean anything: {acked:?}"
    );
    let e = Engine::start(&data, &extra);
    rt.block_on(async {
        let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
        for (w, &n) in acked.iter().enumerate() {
            let count: Option<u64> = c.get(format!("count{w}")).await.unwrap();
            let count = count.unwrap_or(0);
            // the acknowledged ones, and at most the one in flight
            assert!(
                count == n || count == n + 1,
                "w{w}: {n} acknowledged, {count} recovered"
            );
            let fields: u64 = c.hlen(format!("w{w}:h")).await.unwrap();
            assert_eq!(
                fields, count,
                "w{w}: the HSETs of exactly the recovered transactions"
            );
            for i in 0..count + 2 {
                let a: Option<String> = c.get(format!("w{w}:{i}:a")).await.unwrap();
                let b: Option<String> = c.get(format!("w{w}:{i}:b")).await.unwrap();
                if i < count {
                    assert_eq!(a, Some(format!("a{i}")), "w{w}:{i}");
                    assert_eq!(
                        b,
                        Some(format!("b{i}{}", "x".repeat(i as usize % 300))),
                        "w{w}:{i}"
                    );
                } else {
                    assert_eq!((a, b), (None, None), "w{w}:{i} half applied or beyond");
                }
            }
        }
    });
    assert!(e.terminate().success());
}
