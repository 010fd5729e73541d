//! Pub/sub, keyspace notifications, MONITOR and CLIENT REPLY: across
//! connections on the engine run in-process (on the fault-injecting file
//! seam where durability matters), byte for byte against redis-server where
//! the protocol matters, and with redis-py. Needs `redis-server` on PATH and
//! redis-py in `/opt/tiered/test-venv` (or `$TIERED_TEST_PYTHON`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tiered_engine::sys::{real, Fault, FaultFs, Op, Rule};
use tiered_engine::Config;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------- helpers

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The engine in-process on a free port (the runtime runs it while the
/// test talks to it over blocking sockets).
struct Server {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(fault: Option<&FaultFs>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        cfg.reserve_bytes = 0;
        if let Some(f) = fault {
            cfg.fs = f.handle();
        }
        let rt = rt();
        let stop = CancellationToken::new();
        let running = rt
            .block_on(tiered_engine::start(cfg, stop.clone()))
            .unwrap();
        let addr = running.addr;
        rt.spawn(async move {
            let _ = running.wait().await;
        });
        Server {
            rt,
            addr,
            stop,
            _dir: dir,
        }
    }

    fn conn(&self) -> Conn {
        Conn::connect(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = &self.rt;
    }
}

/// A raw RESP connection; replies are rendered as text: `OK`, `(error) …`,
/// `(nil)`, integers, strings, `[a, b]` arrays, `>[…]` pushes, `{k: v}` maps.
struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    fn connect(addr: SocketAddr) -> Conn {
        let w = TcpStream::connect(addr).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        }
    }

    fn send(&mut self, args: &[&str]) {
        let mut b = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            b.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.w.write_all(&b).unwrap();
    }

    fn call(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.read()
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r
            .read_line(&mut l)
            .expect("a reply before the timeout");
        assert!(l.ends_with("\r\n"), "connection closed or torn: {l:?}");
        l.truncate(l.len() - 2);
        l
    }

    fn read(&mut self) -> String {
        let l = self.line();
        let (t, rest) = l.split_at(1);
        match t {
            "+" => rest.to_string(),
            "-" => format!("(error) {rest}"),
            ":" => rest.to_string(),
            "_" => "(nil)".into(),
            "$" if rest == "-1" => "(nil)".into(),
            "*" if rest == "-1" => "(nil)".into(),
            "$" => {
                let n: usize = rest.parse().unwrap();
                let mut b = vec![0; n + 2];
                self.r.read_exact(&mut b).unwrap();
                b.truncate(n);
                String::from_utf8_lossy(&b).into_owned()
            }
            "*" | ">" | "~" => {
                let n: usize = rest.parse().unwrap();
                let items: Vec<String> = (0..n).map(|_| self.read()).collect();
                let p = if t == ">" { ">" } else { "" };
                format!("{p}[{}]", items.join(", "))
            }
            "%" => {
                let n: usize = rest.parse().unwrap();
                let items: Vec<String> = (0..n)
                    .map(|_| format!("{}: {}", self.read(), self.read()))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
            _ => panic!("unexpected reply line {l:?}"),
        }
    }

    /// Every byte that arrives within `ms` (until the connection closes).
    fn drain_for(&mut self, ms: u64) -> String {
        let mut got = self.r.buffer().to_vec();
        let n = got.len();
        self.r.consume(n);
        self.w
            .set_read_timeout(Some(Duration::from_millis(ms)))
            .unwrap();
        let mut b = [0u8; 4096];
        while let Ok(n) = self.r.get_mut().read(&mut b) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&b[..n]);
        }
        self.w
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        String::from_utf8_lossy(&got).into_owned()
    }
}

// ---------------------------------------------------------------- pub/sub

#[test]
fn subscribers_on_other_connections_get_messages_of_channels_and_patterns() {
    let s = Server::start(None);
    let (mut sub, mut sub2, mut p) = (s.conn(), s.conn(), s.conn());
    sub.send(&["SUBSCRIBE", "a", "b", "a"]);
    assert_eq!(sub.read(), "[subscribe, a, 1]");
    assert_eq!(sub.read(), "[subscribe, b, 2]");
    assert_eq!(sub.read(), "[subscribe, a, 2]");
    assert_eq!(sub.call(&["PSUBSCRIBE", "n.*"]), "[psubscribe, n.*, 3]");
    assert_eq!(sub2.call(&["PSUBSCRIBE", "*"]), "[psubscribe, *, 1]");

    assert_eq!(p.call(&["PUBLISH", "a", "hello"]), "2");
    assert_eq!(p.call(&["PUBLISH", "n.1", "x"]), "2");
    assert_eq!(p.call(&["PUBLISH", "zzz", "y"]), "1");
    assert_eq!(sub.read(), "[message, a, hello]");
    assert_eq!(sub.read(), "[pmessage, n.*, n.1, x]");
    assert_eq!(sub2.read(), "[pmessage, *, a, hello]");
    assert_eq!(sub2.read(), "[pmessage, *, n.1, x]");
    assert_eq!(sub2.read(), "[pmessage, *, zzz, y]");

    // introspection
    assert_eq!(p.call(&["PUBSUB", "CHANNELS"]), "[a, b]");
    assert_eq!(p.call(&["PUBSUB", "CHANNELS", "b*"]), "[b]");
    assert_eq!(p.call(&["PUBSUB", "NUMSUB", "a", "x"]), "[a, 1, x, 0]");
    assert_eq!(p.call(&["PUBSUB", "NUMPAT"]), "2");
    let list = p.call(&["CLIENT", "LIST"]);
    assert!(
        list.contains("flags=P db=0 sub=2 psub=1 ssub=0")
            && list.contains("flags=P db=0 sub=0 psub=1 ssub=0")
            && list.contains("flags=N db=0 sub=0 psub=0 ssub=0"),
        "{list}"
    );
    assert!(p
        .call(&["INFO", "stats"])
        .contains("pubsub_channels:2\r\npubsub_patterns:2"));

    // unsubscribe all: one reply per channel, then publishing reaches no one
    sub.send(&["UNSUBSCRIBE"]);
    let mut got = vec![sub.read(), sub.read()];
    got.sort();
    assert_eq!(got, ["[unsubscribe, a, 2]", "[unsubscribe, b, 1]"]);
    assert_eq!(sub.call(&["PUNSUBSCRIBE"]), "[punsubscribe, n.*, 0]");
    assert_eq!(sub.call(&["UNSUBSCRIBE"]), "[unsubscribe, (nil), 0]");
    assert_eq!(p.call(&["PUBLISH", "a", "again"]), "1");
    assert_eq!(sub2.read(), "[pmessage, *, a, again]");
    // a closed subscriber is forgotten
    drop(sub2);
    let t = Instant::now();
    while p.call(&["PUBSUB", "NUMPAT"]) != "0" {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(p.call(&["PUBLISH", "a", "nobody"]), "0");

    // shard channels are their own namespace
    assert_eq!(sub.call(&["SSUBSCRIBE", "s1"]), "[ssubscribe, s1, 1]");
    assert_eq!(p.call(&["PUBLISH", "s1", "m"]), "0");
    assert_eq!(p.call(&["SPUBLISH", "s1", "m"]), "1");
    assert_eq!(sub.read(), "[smessage, s1, m]");
    assert_eq!(p.call(&["PUBSUB", "SHARDCHANNELS"]), "[s1]");
    assert_eq!(p.call(&["PUBSUB", "SHARDNUMSUB", "s1"]), "[s1, 1]");
    assert_eq!(sub.call(&["SUNSUBSCRIBE"]), "[sunsubscribe, s1, 0]");
}

#[test]
fn resp2_subscribed_mode_allows_only_subscription_commands_and_resp3_allows_all() {
    let s = Server::start(None);
    let (mut sub, mut p) = (s.conn(), s.conn());
    sub.call(&["SUBSCRIBE", "c"]);
    assert_eq!(
        sub.call(&["GET", "k"]),
        "(error) ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    );
    assert_eq!(sub.call(&["PING"]), "[pong, ]");
    assert_eq!(sub.call(&["PING", "hi"]), "[pong, hi]");
    // a refused command inside MULTI fails the transaction
    sub.call(&["UNSUBSCRIBE"]);
    assert_eq!(sub.call(&["PING"]), "PONG");
    // RESET leaves subscribed mode
    sub.call(&["PSUBSCRIBE", "x*"]);
    assert_eq!(sub.call(&["RESET"]), "RESET");
    assert_eq!(sub.call(&["SET", "k", "v"]), "OK");
    assert_eq!(p.call(&["PUBLISH", "x1", "m"]), "0");

    // RESP3: pushes, and every command still works while subscribed
    let mut s3 = s.conn();
    assert!(s3.call(&["HELLO", "3"]).contains("proto: 3"));
    assert_eq!(s3.call(&["SUBSCRIBE", "c3"]), ">[subscribe, c3, 1]");
    assert_eq!(s3.call(&["GET", "k"]), "v");
    assert_eq!(s3.call(&["PING"]), "PONG");
    assert_eq!(p.call(&["PUBLISH", "c3", "m3"]), "1");
    assert_eq!(s3.read(), ">[message, c3, m3]");
    // a message published before a command precedes its reply
    assert_eq!(p.call(&["PUBLISH", "c3", "first"]), "1");
    s3.send(&["GET", "k"]);
    assert_eq!(s3.read(), ">[message, c3, first]");
    assert_eq!(s3.read(), "v");
}

/// The same raw requests on fresh connections get the same bytes from the
/// engine and from redis-server.
#[test]
fn pubsub_replies_are_byte_for_byte_those_of_redis() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::Engine::start(dir.path(), &[]);
    let redis = common::Redis::start();
    let reqs: &[&[u8]] = &[
        b"SUBSCRIBE a b a\r\nPING\r\nPING x\r\nGET k\r\nCLIENT ID\r\nPSUBSCRIBE p*\r\nUNSUBSCRIBE b\r\nPUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nPING\r\n",
        b"UNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nSUNSUBSCRIBE\r\nUNSUBSCRIBE x y\r\n",
        b"HELLO 3\r\nSUBSCRIBE a\r\nGET k\r\nPING\r\nUNSUBSCRIBE\r\nHELLO 2\r\n",
        b"HELLO 3\r\nUNSUBSCRIBE\r\nHELLO 2\r\n",
        b"SSUBSCRIBE s\r\nSUNSUBSCRIBE s\r\n",
        b"PUBLISH nobody m\r\nSPUBLISH nobody m\r\nPUBSUB NUMSUB a b\r\nPUBSUB NUMPAT\r\nPUBSUB CHANNELS\r\nPUBSUB CHANNELS x*\r\n",
        b"PUBSUB SHARDCHANNELS\r\nPUBSUB SHARDNUMSUB a\r\nPUBSUB HELP\r\nPUBSUB\r\nPUBSUB NUMPAT x\r\nPUBSUB bogus\r\nPUBLISH a\r\nSUBSCRIBE\r\n",
        b"CLIENT REPLY OFF\r\nPING\r\nSET k v\r\nCLIENT REPLY ON\r\nGET k\r\nDEL k\r\n",
        b"CLIENT REPLY SKIP\r\nPING a\r\nPING b\r\nCLIENT REPLY bogus\r\nCLIENT REPLY\r\n",
        b"CLIENT REPLY OFF\r\nSUBSCRIBE a\r\nUNSUBSCRIBE a\r\nCLIENT REPLY ON\r\n",
        b"MULTI\r\nPUBLISH a b\r\nPUBSUB NUMSUB a\r\nEXEC\r\n",
        b"MONITOR\r\nRESET\r\n",
        b"SUBSCRIBE a\r\nMULTI\r\nRESET\r\nPING\r\n",
    ];
    // HELLO's `version` and `id` name the server
    let normalized = |port: u16, req: &[u8]| {
        let mut r = common::session(port, req);
        for key in [&b"$7\r\nversion\r\n"[..], b"$2\r\nid\r\n"] {
            let mut from = 0;
            while let Some(p) = r[from..].windows(key.len()).position(|w| w == key) {
                let start = from + p + key.len();
                let line_end =
                    start + r[start..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
                let end = if r[start] == b'$' {
                    line_end + r[line_end..].windows(2).position(|w| w == b"\r\n").unwrap() + 2
                } else {
                    line_end
                };
                r.splice(start..end, b"X".iter().copied());
                from = start + 1;
            }
        }
        String::from_utf8_lossy(&r).into_owned()
    };
    let mut diffs = Vec::new();
    for req in reqs {
        let e = normalized(engine.port, req);
        let r = normalized(redis.port, req);
        if e != r {
            diffs.push(format!(
                "request {:?}\n  engine: {e:?}\n  redis:  {r:?}",
                String::from_utf8_lossy(req)
            ));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

// ---------------------------------------------------------------- keyspace

#[test]
fn keyspace_notifications_name_the_key_and_the_event_as_redis() {
    let s = Server::start(None);
    let (mut sub, mut c) = (s.conn(), s.conn());
    assert_eq!(
        c.call(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
        "OK"
    );
    // no subscriber, nothing collected
    assert_eq!(c.call(&["SET", "early", "1"]), "OK");
    assert_eq!(
        sub.call(&["PSUBSCRIBE", "__key*__:*"]),
        "[psubscribe, __key*__:*, 1]"
    );
    let expect = |sub: &mut Conn, key: &str, event: &str| {
        assert_eq!(
            sub.read(),
            format!("[pmessage, __key*__:*, __keyspace@0__:{key}, {event}]")
        );
        assert_eq!(
            sub.read(),
            format!("[pmessage, __key*__:*, __keyevent@0__:{event}, {key}]")
        );
    };
    c.call(&["SET", "s", "1", "EX", "100"]);
    expect(&mut sub, "s", "set");
    expect(&mut sub, "s", "expire");
    c.call(&["INCR", "s"]);
    expect(&mut sub, "s", "incrby");
    c.call(&["APPEND", "s", "x"]);
    expect(&mut sub, "s", "append");
    c.call(&["PERSIST", "s"]);
    expect(&mut sub, "s", "persist");
    c.call(&["RENAME", "s", "t"]);
    expect(&mut sub, "s", "rename_from");
    expect(&mut sub, "t", "rename_to");
    c.call(&["HSET", "h", "f", "v"]);
    expect(&mut sub, "h", "hset");
    c.call(&["HDEL", "h", "f"]);
    expect(&mut sub, "h", "hdel");
    expect(&mut sub, "h", "del");
    c.call(&["RPUSH", "l", "a", "b"]);
    expect(&mut sub, "l", "rpush");
    c.call(&["LMOVE", "l", "m", "LEFT", "RIGHT"]);
    expect(&mut sub, "l", "lpop");
    expect(&mut sub, "m", "rpush");
    c.call(&["LREM", "l", "0", "nothere"]);
    c.call(&["DEL", "l", "m", "missing"]);
    expect(&mut sub, "l", "del");
    expect(&mut sub, "m", "del");
    // failed or no-op writes notify nothing
    c.call(&["SET", "t", "2", "NX"]);
    c.call(&["LPUSHX", "nolist", "a"]);
    c.call(&["EXPIRE", "missing", "10"]);
    // a transaction's events, in order
    c.send(&["MULTI"]);
    c.send(&["SET", "u", "1"]);
    c.send(&["EXPIRE", "u", "0"]);
    c.send(&["EXEC"]);
    for _ in 0..4 {
        c.read();
    }
    expect(&mut sub, "u", "set");
    expect(&mut sub, "u", "del");
    // new keys, only when asked for
    c.call(&["CONFIG", "SET", "notify-keyspace-events", "En"]);
    c.call(&["SET", "t", "3"]);
    c.call(&["SET", "fresh", "1"]);
    assert_eq!(
        sub.read(),
        "[pmessage, __key*__:*, __keyevent@0__:new, fresh]"
    );
    // expired keys, found by the background purge
    c.call(&["CONFIG", "SET", "notify-keyspace-events", "Ex"]);
    c.call(&["PSETEX", "short", "50", "v"]);
    assert_eq!(
        sub.read(),
        "[pmessage, __key*__:*, __keyevent@0__:expired, short]"
    );
    assert_eq!(sub.drain_for(200), "");
}

/// A keyspace notification describes a write: it reaches subscribers only
/// once the write is durable, and never when its record fails to become
/// durable (the log is poisoned).
#[test]
fn keyspace_notifications_are_delivered_only_for_durable_writes() {
    let fault = FaultFs::new(real());
    let s = Server::start(Some(&fault));
    let (mut sub, mut c) = (s.conn(), s.conn());
    c.call(&["CONFIG", "SET", "notify-keyspace-events", "K$"]);
    sub.call(&["SUBSCRIBE", "__keyspace@0__:k", "plain"]);
    sub.read();
    assert_eq!(c.call(&["SET", "k", "1"]), "OK");
    assert_eq!(sub.read(), "[message, __keyspace@0__:k, set]");
    fault.add_rule(Rule {
        op: Op::Fdatasync,
        name_suffix: Some(".open".into()),
        skip: 0,
        times: 1,
        fault: Fault::Errno(libc::EIO),
    });
    let err = c.call(&["SET", "k", "2"]);
    assert!(err.starts_with("(error)"), "{err}");
    // the write ran against the state but was never durable: its
    // notification is never delivered (the poisoned engine then stops)
    let late = sub.drain_for(1000);
    assert!(
        !late.contains("__keyspace"),
        "a non-durable write was notified: {late:?}"
    );
}

// ---------------------------------------------------------------- monitor

#[test]
fn monitor_shows_each_command_in_redis_line_format() {
    let s = Server::start(None);
    let (mut m, mut c) = (s.conn(), s.conn());
    assert_eq!(m.call(&["MONITOR"]), "OK");
    assert!(c.call(&["CLIENT", "LIST"]).contains("flags=O "));
    c.call(&["SET", "k", "a \"q\"\n\x01"]);
    c.call(&["GET", "k"]);
    c.call(&["CONFIG", "GET", "port"]); // admin: not shown
    c.call(&["AUTH", "default", "secret"]);
    c.call(&["HELLO", "2", "AUTH", "default", "secret"]);
    let port = c.w.local_addr().unwrap().port();
    let re = |line: &str, want: &str| {
        let (ts, rest) = line.split_once(' ').unwrap();
        let (secs, micros) = ts.split_once('.').unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_600_000_000, "{line}");
        assert_eq!(micros.len(), 6, "{line}");
        assert_eq!(rest, format!("[0 127.0.0.1:{port}] {want}"));
    };
    re(&m.read(), r#""CLIENT" "LIST""#);
    re(&m.read(), r#""SET" "k" "a \"q\"\n\x01""#);
    re(&m.read(), r#""GET" "k""#);
    re(&m.read(), r#""AUTH" "(redacted)" "(redacted)""#);
    re(&m.read(), r#""HELLO" "2" "AUTH" "(redacted)" "(redacted)""#);
    // a transaction: MULTI, its commands when EXEC runs them, then EXEC
    for cmd in [&["MULTI"][..], &["INCR", "n"], &["EXEC"]] {
        c.call(cmd);
    }
    re(&m.read(), r#""MULTI""#);
    re(&m.read(), r#""INCR" "n""#);
    re(&m.read(), r#""EXEC""#);
    assert_eq!(m.call(&["RESET"]), "RESET");
    c.call(&["PING"]);
    assert_eq!(m.call(&["PING"]), "PONG", "no more lines after RESET");
}

#[test]
fn client_reply_off_and_skip_silence_replies_but_not_messages() {
    let s = Server::start(None);
    let (mut sub, mut p) = (s.conn(), s.conn());
    sub.send(&["CLIENT", "REPLY", "OFF"]);
    sub.send(&["SET", "a", "1"]);
    assert_eq!(sub.call(&["SUBSCRIBE", "c"]), "[subscribe, c, 1]");
    p.call(&["PUBLISH", "c", "m"]);
    assert_eq!(sub.read(), "[message, c, m]");
    sub.send(&["UNSUBSCRIBE"]);
    assert_eq!(sub.read(), "[unsubscribe, c, 0]");
    assert_eq!(sub.call(&["CLIENT", "REPLY", "ON"]), "OK");
    assert_eq!(sub.call(&["GET", "a"]), "1");
    sub.send(&["CLIENT", "REPLY", "SKIP"]);
    sub.send(&["GET", "a"]);
    assert_eq!(sub.call(&["PING"]), "PONG");
}

#[test]
fn a_subscriber_that_falls_behind_is_disconnected() {
    let s = Server::start(None);
    let (mut sub, mut p) = (s.conn(), s.conn());
    p.call(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "pubsub 256kb 0 0",
    ]);
    assert_eq!(sub.call(&["SUBSCRIBE", "flood"]), "[subscribe, flood, 1]");
    // the subscriber reads nothing: socket buffers fill, then its queue
    let big = "x".repeat(64 * 1024);
    let t = Instant::now();
    loop {
        let n = p.call(&["PUBLISH", "flood", &big]);
        if n == "0" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the subscriber was never disconnected"
        );
    }
    assert_eq!(p.call(&["PUBSUB", "NUMSUB", "flood"]), "[flood, 0]");
}

// ---------------------------------------------------------------- redis-py

const VENV_PYTHON: &str = "/opt/tiered/test-venv/bin/python";

#[test]
fn redis_py_pubsub_sees_the_engine_as_redis() {
    let py = std::env::var("TIERED_TEST_PYTHON").unwrap_or_else(|_| VENV_PYTHON.to_string());
    assert!(
        std::path::Path::new(&py).exists(),
        "{py} missing: run scripts/test-deps.sh or set TIERED_TEST_PYTHON"
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/redis_py_pubsub.py"
    );
    let dir = tempfile::tempdir().unwrap();
    let engine = common::Engine::start(dir.path(), &[]);
    let redis = common::Redis::start();
    for proto in ["2", "3"] {
        let run = |port: u16| {
            let o = std::process::Command::new("timeout")
                .args(["120", &py, script, &port.to_string(), proto])
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "redis-py pubsub on {port} (RESP{proto}): {}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        assert_eq!(run(engine.port), run(redis.port), "RESP{proto}");
    }
}
