//! Blocking list pops end to end (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH,
//! BLMPOP): served at once, blocked then served by another client's push,
//! first come first served, timeouts, disconnects, MULTI, CLIENT UNBLOCK,
//! a kill -9 after a served pop (the pop is in the log exactly once), and
//! a work queue with redis-py.
//!
//! Every read has a timeout, so a waiter that is never answered fails the
//! test instead of hanging it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{run_bin, Engine};

/// A raw RESP connection; replies are rendered as text
/// (`[a b]` arrays, `nil`, `(error) …`, `:n`).
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

    fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.w.write_all(out.as_bytes()).unwrap();
    }

    fn read(&mut self) -> String {
        let mut line = String::new();
        self.r
            .read_line(&mut line)
            .expect("a reply before the timeout");
        assert!(!line.is_empty(), "connection closed");
        let line = line.trim_end().to_string();
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => rest.to_string(),
            "-" => format!("(error) {rest}"),
            ":" => format!(":{rest}"),
            "_" => "nil".into(),
            "$" if rest == "-1" => "nil".into(),
            "*" if rest == "-1" => "nil".into(),
            "$" => {
                let n: usize = rest.parse().unwrap();
                let mut b = vec![0u8; n + 2];
                self.r.read_exact(&mut b).unwrap();
                String::from_utf8_lossy(&b[..n]).into_owned()
            }
            "*" | "%" => {
                let n: usize = rest.parse().unwrap();
                let n = if kind == "%" { 2 * n } else { n };
                let items: Vec<String> = (0..n).map(|_| self.read()).collect();
                format!("[{}]", items.join(" "))
            }
            _ => panic!("unexpected reply line {line:?}"),
        }
    }

    fn cmd(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.read()
    }

    /// True when nothing arrives within `ms`.
    fn silent_for(&mut self, ms: u64) -> bool {
        self.w
            .set_read_timeout(Some(Duration::from_millis(ms)))
            .unwrap();
        let r = self.r.fill_buf().map(|b| b.is_empty());
        self.w
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        match r {
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            Ok(_) => false,
        }
    }
}

fn blocked_clients(c: &mut Conn) -> usize {
    let info = c.cmd(&["INFO", "clients"]);
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .expect("blocked_clients in INFO")
        .trim()
        .parse()
        .unwrap()
}

/// Waits until `n` clients are blocked.
fn wait_blocked(c: &mut Conn, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocked_clients(c) != n {
        assert!(Instant::now() < deadline, "never {n} blocked clients");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn served_now_blocked_then_served_timeouts_and_wrong_types() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &[]);
    let mut c = Conn::open(e.port);
    let mut w = Conn::open(e.port);

    // data there: served at once; the first non-empty key of several
    assert_eq!(c.cmd(&["RPUSH", "l2", "a", "b"]), ":2");
    assert_eq!(c.cmd(&["BLPOP", "l1", "l2", "0"]), "[l2 a]");
    assert_eq!(c.cmd(&["BRPOP", "l1", "l2", "0"]), "[l2 b]");
    assert_eq!(c.cmd(&["EXISTS", "l2"]), ":0");

    // nothing there: blocks until another client pushes
    w.send(&["BLPOP", "q1", "q2", "0"]);
    wait_blocked(&mut c, 1);
    assert!(w.silent_for(100));
    assert_eq!(c.cmd(&["RPUSH", "q2", "x", "y"]), ":2");
    assert_eq!(w.read(), "[q2 x]");
    assert_eq!(c.cmd(&["LRANGE", "q2", "0", "-1"]), "[y]");
    wait_blocked(&mut c, 0);

    // timeout: a null array (BLPOP) / null bulk (BLMOVE), nothing logged
    let t = Instant::now();
    assert_eq!(w.cmd(&["BLPOP", "none", "0.2"]), "nil");
    assert!(t.elapsed() >= Duration::from_millis(190));
    assert_eq!(
        w.cmd(&["BLMOVE", "none", "d", "LEFT", "RIGHT", "0.1"]),
        "nil"
    );
    assert_eq!(w.cmd(&["BLMPOP", "0.1", "2", "a", "b", "LEFT"]), "nil");
    wait_blocked(&mut c, 0);
    // RESP3: `_`
    assert!(w.cmd(&["HELLO", "3"]).contains("proto"));
    w.send(&["BRPOPLPUSH", "none", "d", "0.05"]);
    let mut line = String::new();
    w.r.read_line(&mut line).unwrap();
    assert_eq!(line, "_\r\n");
    assert!(w.cmd(&["HELLO", "2"]).contains("proto"));

    // BLMOVE: blocks on its source, served into its destination
    w.send(&["BLMOVE", "src", "dst", "RIGHT", "LEFT", "0"]);
    wait_blocked(&mut c, 1);
    assert_eq!(c.cmd(&["RPUSH", "dst", "old"]), ":1");
    assert_eq!(c.cmd(&["RPUSH", "src", "1", "2"]), ":2");
    assert_eq!(w.read(), "2");
    assert_eq!(c.cmd(&["LRANGE", "dst", "0", "-1"]), "[2 old]");
    assert_eq!(c.cmd(&["LRANGE", "src", "0", "-1"]), "[1]");

    // BLMPOP with COUNT
    assert_eq!(
        w.cmd(&["BLMPOP", "0", "2", "none", "src", "LEFT", "COUNT", "5"]),
        "[src [1]]"
    );

    // argument errors, as Redis words them
    assert_eq!(
        c.cmd(&["BLPOP", "k", "-1"]),
        "(error) ERR timeout is negative"
    );
    assert_eq!(
        c.cmd(&["BLPOP", "k", "abc"]),
        "(error) ERR timeout is not a float or out of range"
    );
    // WRONGTYPE at once for a key of another type met before a list
    assert_eq!(c.cmd(&["SET", "s", "v"]), "OK");
    assert!(c.cmd(&["BLPOP", "s", "0"]).starts_with("(error) WRONGTYPE"));
    // a waiting BRPOPLPUSH whose destination is not a list: WRONGTYPE when
    // served, the element stays
    w.send(&["BRPOPLPUSH", "src2", "s", "0"]);
    wait_blocked(&mut c, 1);
    assert_eq!(c.cmd(&["RPUSH", "src2", "e"]), ":1");
    assert!(w.read().starts_with("(error) WRONGTYPE"));
    assert_eq!(c.cmd(&["LRANGE", "src2", "0", "-1"]), "[e]");
    // a waited key that becomes another type keeps its waiter waiting
    w.send(&["BLPOP", "k2", "0"]);
    wait_blocked(&mut c, 1);
    assert_eq!(c.cmd(&["SET", "k2", "str"]), "OK");
    assert!(w.silent_for(100));
    assert_eq!(c.cmd(&["DEL", "k2"]), ":1");
    assert_eq!(c.cmd(&["LPUSH", "k2", "v"]), ":1");
    assert_eq!(w.read(), "[k2 v]");
}

#[test]
fn first_blocked_first_served_and_chains_in_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &[]);
    let mut c = Conn::open(e.port);
    let mut ws: Vec<Conn> = (0..3).map(|_| Conn::open(e.port)).collect();
    for (i, w) in ws.iter_mut().enumerate() {
        w.send(&["BRPOP", "q", "0"]);
        wait_blocked(&mut c, i + 1);
    }
    // one push of two: the first two waiters, in the order they blocked
    assert_eq!(c.cmd(&["LPUSH", "q", "a", "b"]), ":2");
    assert_eq!(ws[0].read(), "[q a]");
    assert_eq!(ws[1].read(), "[q b]");
    assert!(ws[2].silent_for(100));
    assert_eq!(c.cmd(&["LPUSH", "q", "c"]), ":1");
    assert_eq!(ws[2].read(), "[q c]");
    wait_blocked(&mut c, 0);

    // BLMOVE into a key another client waits on: both served by one push
    ws[0].send(&["BLPOP", "target", "0"]);
    wait_blocked(&mut c, 1);
    ws[1].send(&["BLMOVE", "list", "target", "LEFT", "RIGHT", "0"]);
    wait_blocked(&mut c, 2);
    assert_eq!(c.cmd(&["RPUSH", "list", "foo"]), ":1");
    assert_eq!(ws[1].read(), "foo");
    assert_eq!(ws[0].read(), "[target foo]");
    assert_eq!(c.cmd(&["EXISTS", "target", "list"]), ":0");

    // a transaction is one event: LPUSH then DEL wakes nobody
    ws[0].send(&["BLPOP", "t", "0"]);
    wait_blocked(&mut c, 1);
    assert_eq!(c.cmd(&["MULTI"]), "OK");
    assert_eq!(c.cmd(&["LPUSH", "t", "a"]), "QUEUED");
    assert_eq!(c.cmd(&["DEL", "t"]), "QUEUED");
    assert_eq!(c.cmd(&["EXEC"]), "[:1 :1]");
    assert!(ws[0].silent_for(100));
    // three pushes in one EXEC: served the last pushed (the head)
    assert_eq!(c.cmd(&["MULTI"]), "OK");
    for v in ["a", "b", "c"] {
        assert_eq!(c.cmd(&["LPUSH", "t", v]), "QUEUED");
    }
    assert_eq!(c.cmd(&["EXEC"]), "[:1 :2 :3]");
    assert_eq!(ws[0].read(), "[t c]");

    // RENAME moves a list into place
    ws[0].send(&["BLPOP", "dest", "0"]);
    wait_blocked(&mut c, 1);
    assert_eq!(c.cmd(&["RPUSH", "from", "v"]), ":1");
    assert_eq!(c.cmd(&["RENAME", "from", "dest"]), "OK");
    assert_eq!(ws[0].read(), "[dest v]");
}

#[test]
fn multi_disconnect_pipeline_and_client_unblock() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &[]);
    let mut c = Conn::open(e.port);

    // inside MULTI a blocking pop does not block
    assert_eq!(c.cmd(&["RPUSH", "x", "a"]), ":1");
    assert_eq!(c.cmd(&["MULTI"]), "OK");
    assert_eq!(c.cmd(&["BLPOP", "x", "0"]), "QUEUED");
    assert_eq!(c.cmd(&["BLPOP", "x", "0"]), "QUEUED");
    assert_eq!(c.cmd(&["BLMOVE", "x", "y", "LEFT", "LEFT", "0"]), "QUEUED");
    assert_eq!(c.cmd(&["EXEC"]), "[[x a] nil nil]");

    // a blocked client that disconnects is forgotten: nothing is popped
    let mut gone = Conn::open(e.port);
    gone.send(&["BLPOP", "d", "0"]);
    wait_blocked(&mut c, 1);
    drop(gone);
    wait_blocked(&mut c, 0);
    assert_eq!(c.cmd(&["RPUSH", "d", "v"]), ":1");
    assert_eq!(c.cmd(&["LLEN", "d"]), ":1");

    // commands pipelined after a blocking one wait for it
    let mut p = Conn::open(e.port);
    p.send(&["BLPOP", "pq", "0"]);
    p.send(&["PING"]);
    p.send(&["LLEN", "pq"]);
    wait_blocked(&mut c, 1);
    assert!(p.silent_for(100));
    assert_eq!(c.cmd(&["RPUSH", "pq", "1", "2"]), ":2");
    assert_eq!(p.read(), "[pq 1]");
    assert_eq!(p.read(), "PONG");
    assert_eq!(p.read(), ":1");

    // CLIENT UNBLOCK: the timeout reply, or the UNBLOCKED error; CLIENT
    // LIST shows the blocked client
    let id = p.cmd(&["CLIENT", "ID"]);
    let id = id.trim_start_matches(':').to_string();
    p.send(&["BLMPOP", "0", "1", "u", "LEFT"]);
    wait_blocked(&mut c, 1);
    let line = c.cmd(&["CLIENT", "LIST", "ID", &id]);
    assert!(
        line.contains("flags=b") && line.contains("cmd=blmpop"),
        "{line}"
    );
    assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id]), ":1");
    assert_eq!(p.read(), "nil");
    assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id]), ":0");
    p.send(&["BLPOP", "u", "0"]);
    wait_blocked(&mut c, 1);
    assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]), ":1");
    assert_eq!(
        p.read(),
        "(error) UNBLOCKED client unblocked via CLIENT UNBLOCK"
    );
    let line = c.cmd(&["CLIENT", "LIST", "ID", &id]);
    assert!(line.contains("flags=N"), "{line}");
    assert_eq!(p.cmd(&["PING"]), "PONG");
}

/// SIGTERM with a client blocked forever: the engine closes it and stops
/// cleanly, at once.
#[test]
fn shutdown_closes_a_blocked_client() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &[]);
    let mut c = Conn::open(e.port);
    let mut w = Conn::open(e.port);
    w.send(&["BLPOP", "never", "0"]);
    wait_blocked(&mut c, 1);
    let t = Instant::now();
    assert!(e.terminate().success());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let mut line = String::new();
    assert_eq!(w.r.read_line(&mut line).unwrap_or(0), 0, "{line}");
}

/// The log's records as `dump` prints them.
fn dump(dir: &Path) -> String {
    let out = run_bin(&["dump", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kill9_after_a_served_pop_replays_it_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let e = Engine::start(&data, &[]);
    let mut c = Conn::open(e.port);
    let mut w = Conn::open(e.port);
    w.send(&["BLPOP", "jobs", "0"]);
    wait_blocked(&mut c, 1);
    assert_eq!(c.cmd(&["RPUSH", "jobs", "j1", "j2"]), ":2");
    // the waiter's reply comes once its pop is durable
    assert_eq!(w.read(), "[jobs j1]");
    // a timeout logs nothing
    assert_eq!(w.cmd(&["BLPOP", "other", "0.05"]), "nil");
    e.kill9();

    let log = dump(&data);
    let pops = log.lines().filter(|l| l.contains("LPOP \"jobs\"")).count();
    assert_eq!(pops, 1, "{log}");
    assert!(!log.contains("other"), "{log}");
    assert!(!log.contains("BLPOP"), "{log}");

    let e = Engine::start(&data, &[]);
    let mut c = Conn::open(e.port);
    assert_eq!(c.cmd(&["LRANGE", "jobs", "0", "-1"]), "[j2]");
}

/// Producers push, consumers BLPOP on one queue, concurrently: every
/// job is consumed exactly once. Then the same under a kill -9: no job a
/// consumer received is back in the queue after the replay, none is
/// received twice.
#[test]
fn concurrent_producers_and_consumers_exactly_once_and_after_kill9() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |port: u16, per_producer: usize, stop: Arc<AtomicBool>| {
        let consumers: Vec<_> = (0..5)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut c = Conn::open(port);
                    loop {
                        c.send(&["BLPOP", "q", "0.3"]);
                        let mut line = String::new();
                        match c.r.read_line(&mut line) {
                            Ok(n) if n > 0 => {}
                            _ => return got, // the engine is gone
                        }
                        if line.starts_with("*-1") {
                            if stop.load(Ordering::SeqCst) {
                                return got;
                            }
                            continue;
                        }
                        let mut item = String::new();
                        for _ in 0..4 {
                            item.clear();
                            if c.r.read_line(&mut item).unwrap_or(0) == 0 {
                                return got;
                            }
                        }
                        got.push(item.trim_end().to_string());
                    }
                })
            })
            .collect();
        let producers: Vec<_> = (0..3)
            .map(|p| {
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    let mut c = Conn::open(port);
                    for j in 0..per_producer {
                        let job = format!("p{p}-{j}");
                        c.send(&["RPUSH", "q", &job]);
                        let mut line = String::new();
                        match c.r.read_line(&mut line) {
                            Ok(n) if n > 0 => acked.push(job),
                            _ => break,
                        }
                    }
                    acked
                })
            })
            .collect();
        let pushed: Vec<String> = producers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        stop.store(true, Ordering::SeqCst);
        let got: Vec<String> = consumers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        (pushed, got)
    };

    let e = Engine::start(&data, &[]);
    let (pushed, got) = run(e.port, 300, Arc::new(AtomicBool::new(false)));
    assert_eq!(pushed.len(), 900);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a job consumed twice");
    assert_eq!(unique, pushed.iter().collect::<HashSet<_>>());
    let mut c = Conn::open(e.port);
    assert_eq!(c.cmd(&["LLEN", "q"]), ":0");
    drop(c);

    // a kill -9 while jobs flow
    let port = e.port;
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        e.kill9();
    });
    let (_pushed, got) = run(port, 100_000, Arc::new(AtomicBool::new(false)));
    killer.join().unwrap();
    assert!(!got.is_empty(), "no job consumed before the kill");
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a job consumed twice");
    let e = Engine::start(&data, &[]);
    let mut c = Conn::open(e.port);
    let left = c.cmd(&["LRANGE", "q", "0", "-1"]);
    let left = left.trim_start_matches('[').trim_end_matches(']');
    for job in left.split(' ').filter(|j| !j.is_empty()) {
        assert!(
            !unique.contains(&job.to_string()),
            "{job} was received by a consumer and is back after the replay"
        );
    }
}

/// A work queue with redis-py: a consumer BLPOPs while a producer LPUSHes
/// (two clients, each job consumed once, in order).
#[test]
fn redis_py_work_queue() {
    let py = std::env::var("TIERED_TEST_PYTHON")
        .unwrap_or_else(|_| "/opt/tiered/test-venv/bin/python".to_string());
    assert!(
        Path::new(&py).exists(),
        "{py} missing: run scripts/test-deps.sh (it makes the venv with redis-py) \
         or set TIERED_TEST_PYTHON to a python that has redis-py"
    );
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &[]);
    let script = r#"
import sys, threading, time, redis
port = int(sys.argv[1])
N = 200
got = []
def consume():
    r = redis.Redis(port=port, socket_timeout=20)
    while len(got) < N:
        item = r.blpop(["jobs"], timeout=10)
        assert item is not None, "consumer timed out"
        got.append(item[1].decode())
    assert r.blpop("jobs", timeout=0.1) is None
    assert r.brpoplpush("jobs", "done", timeout=0.1) is None
t = threading.Thread(target=consume)
t.start()
p = redis.Redis(port=port, socket_timeout=20)
for i in range(N):
    p.rpush("jobs", f"job{i}")
    if i % 50 == 0:
        time.sleep(0.05)
t.join(60)
assert not t.is_alive(), "consumer hung"
assert got == [f"job{i}" for i in range(N)], got[:10]
assert p.llen("jobs") == 0
print("ok", len(got))
"#;
    let out = Command::new("timeout")
        .arg("120")
        .arg(&py)
        .arg("-c")
        .arg(script)
        .arg(e.port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 200");
}
