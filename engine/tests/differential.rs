//! Differential test: one seeded random stream of commands sent to the engine
//! and to a real `redis-server`, every reply compared byte for byte (replies
//! whose order Redis leaves unspecified are compared as sets; TTLs within a
//! second). redis-server is the reference: a mismatch is a bug here.
//!
//! `TIERED_DIFF_OPS` (default 3000) sets the length, `TIERED_DIFF_SEED` the
//! seed (a random one is printed, so a failure replays exactly);
//! `scripts/redis-diff.sh` runs a long one. Needs `redis-server` on PATH
//! (`scripts/deps.sh --test` installs it).
//!
//! The generator below is the contract of what the engine claims to speak:
//! a command joins [`gen_command`] when it is implemented.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Engine};

/// A tiny seeded PRNG (splitmix64): the stream depends on the seed only.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A reply frame (RESP2 and RESP3).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Frame {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Frame>>),
    Other(u8, Vec<u8>),
}

fn read_line(r: &mut impl BufRead) -> Vec<u8> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).expect("read reply");
    assert!(line.ends_with(b"\r\n"), "truncated reply line {line:?}");
    line.truncate(line.len() - 2);
    line
}

fn read_frame(r: &mut impl BufRead) -> Frame {
    let line = read_line(r);
    let (kind, rest) = (line[0], line[1..].to_vec());
    let num = |b: &[u8]| -> i64 { std::str::from_utf8(b).unwrap().parse().unwrap() };
    match kind {
        b'+' => Frame::Simple(rest),
        b'-' => Frame::Error(rest),
        b':' => Frame::Int(num(&rest)),
        b'$' => {
            let n = num(&rest);
            if n < 0 {
                return Frame::Bulk(None);
            }
            let mut buf = vec![0; n as usize + 2];
            r.read_exact(&mut buf).unwrap();
            buf.truncate(n as usize);
            Frame::Bulk(Some(buf))
        }
        b'*' | b'%' | b'~' | b'>' => {
            let n = num(&rest);
            if n < 0 {
                return Frame::Array(None);
            }
            let n = if kind == b'%' { n * 2 } else { n };
            Frame::Array(Some((0..n).map(|_| read_frame(r)).collect()))
        }
        b'_' => Frame::Bulk(None),
        other => Frame::Other(other, rest),
    }
}

/// One connection speaking raw RESP.
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
    fn call(&mut self, args: &[Vec<u8>]) -> Frame {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out).unwrap();
        read_frame(&mut self.r)
    }
}

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

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn key(rng: &mut Rng) -> Vec<u8> {
    format!("k{}", rng.below(16)).into_bytes()
}

fn value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 => rng.below(1000).to_string().into_bytes(),
        1 => format!("-{}", rng.below(100)).into_bytes(),
        2 => b(""),
        3 => vec![0, 255, b'\r', b'\n', rng.below(256) as u8],
        4 => b(rng.pick(&[
            "9223372036854775807",
            "-9223372036854775808",
            " 1",
            "1.5",
            "abc",
        ])),
        _ => format!("v{}", rng.below(50)).into_bytes(),
    }
}

fn int_arg(rng: &mut Rng) -> Vec<u8> {
    match rng.below(8) {
        0 => b(rng.pick(&["x", "1.5", "", "9223372036854775808", "+1", "01"])),
        1 => b(rng.pick(&["9223372036854775807", "-9223372036854775808"])),
        _ => (rng.below(200) as i64 - 50).to_string().into_bytes(),
    }
}

/// A long expiry (seconds), so timing never decides a reply; sometimes one
/// already in the past, zero, negative or not a number.
fn secs_arg(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => b("0"),
        1 => b("-5"),
        2 => b("abc"),
        _ => (1000 + rng.below(100_000)).to_string().into_bytes(),
    }
}

/// How two replies are compared.
#[derive(Clone, Copy, PartialEq)]
enum Cmp {
    Exact,
    /// Array order unspecified (KEYS, HGETALL as pairs).
    Unordered,
    /// Pairs (field, value) in unspecified order.
    UnorderedPairs,
    /// A TTL that may differ by `tolerance` between two sends.
    Ttl(i64),
}

fn gen_command(rng: &mut Rng) -> (Vec<Vec<u8>>, Cmp) {
    let k = key(rng);
    let cmd: (Vec<Vec<u8>>, Cmp) = match rng.below(30) {
        0..=2 => (vec![b("GET"), k], Cmp::Exact),
        3..=5 => {
            let mut a = vec![b("SET"), k, value(rng)];
            for _ in 0..rng.below(3) {
                match rng.below(9) {
                    0 => a.push(b("NX")),
                    1 => a.push(b("XX")),
                    2 => a.push(b("GET")),
                    3 => a.push(b("KEEPTTL")),
                    4 => a.extend([b("EX"), secs_arg(rng)]),
                    5 => a.extend([b("PX"), secs_arg(rng)]),
                    6 => a.push(b(rng.pick(&["nx", "Ex", "BOGUS"]))),
                    _ => a.extend([b("EX"), (1000 + rng.below(1000)).to_string().into_bytes()]),
                }
            }
            (a, Cmp::Exact)
        }
        6 => (vec![b("DEL"), k, key(rng)], Cmp::Exact),
        7 => (vec![b("EXISTS"), k, key(rng), key(rng)], Cmp::Exact),
        8 => (vec![b(rng.pick(&["INCR", "DECR"])), k], Cmp::Exact),
        9 => (
            vec![b(rng.pick(&["INCRBY", "DECRBY"])), k, int_arg(rng)],
            Cmp::Exact,
        ),
        10 => (vec![b("APPEND"), k, value(rng)], Cmp::Exact),
        11 => (vec![b("STRLEN"), k], Cmp::Exact),
        12 => (vec![b("MGET"), k, key(rng), key(rng)], Cmp::Exact),
        13 => {
            let mut a = vec![b("MSET")];
            for _ in 0..1 + rng.below(3) {
                a.extend([key(rng), value(rng)]);
            }
            if rng.chance(10) {
                a.pop();
            }
            (a, Cmp::Exact)
        }
        14 => (vec![b("GETDEL"), k], Cmp::Exact),
        15 => (
            vec![b(rng.pick(&["EXPIRE", "PEXPIRE"])), k, secs_arg(rng)],
            Cmp::Exact,
        ),
        16 => (vec![b("TTL"), k], Cmp::Ttl(1)),
        17 => (vec![b("PERSIST"), k], Cmp::Exact),
        18..=20 => {
            let mut a = vec![b("HSET"), k];
            for _ in 0..1 + rng.below(3) {
                a.extend([format!("f{}", rng.below(6)).into_bytes(), value(rng)]);
            }
            (a, Cmp::Exact)
        }
        21 => (
            vec![b("HGET"), k, format!("f{}", rng.below(6)).into_bytes()],
            Cmp::Exact,
        ),
        22 => (
            vec![b("HDEL"), k, format!("f{}", rng.below(6)).into_bytes()],
            Cmp::Exact,
        ),
        23 => (vec![b("HGETALL"), k], Cmp::UnorderedPairs),
        24 => (vec![b("HLEN"), k], Cmp::Exact),
        25 => (
            vec![
                b("HINCRBY"),
                k,
                format!("f{}", rng.below(6)).into_bytes(),
                int_arg(rng),
            ],
            Cmp::Exact,
        ),
        26 => (
            vec![b("KEYS"), b(rng.pick(&["*", "k1*", "k?", "h*"]))],
            Cmp::Unordered,
        ),
        27 => (vec![b("DBSIZE")], Cmp::Exact),
        28 => (vec![b("PTTL"), k], Cmp::Ttl(1000)),
        _ => (vec![b("ECHO"), value(rng)], Cmp::Exact),
    };
    // now and then a wrong arity
    if rng.chance(2) && cmd.0.len() > 1 {
        let mut a = cmd.0;
        a.truncate(1);
        return (a, Cmp::Exact);
    }
    cmd
}

fn normalize(f: Frame, cmp: Cmp) -> Frame {
    match (cmp, f) {
        (Cmp::Unordered, Frame::Array(Some(mut xs))) => {
            xs.sort();
            Frame::Array(Some(xs))
        }
        (Cmp::UnorderedPairs, Frame::Array(Some(xs))) => {
            let mut pairs: Vec<Vec<Frame>> = xs.chunks(2).map(|c| c.to_vec()).collect();
            pairs.sort();
            Frame::Array(Some(pairs.concat()))
        }
        (_, f) => f,
    }
}

fn same(cmp: Cmp, e: &Frame, r: &Frame) -> bool {
    match (cmp, e, r) {
        (Cmp::Ttl(tol), Frame::Int(a), Frame::Int(b)) if *a >= 0 && *b >= 0 => (a - b).abs() <= tol,
        _ => e == r,
    }
}

/// A reply as text, for failure messages.
fn fmt_frame(f: &Frame) -> String {
    let t = |b: &[u8]| format!("{:?}", String::from_utf8_lossy(b));
    match f {
        Frame::Simple(s) => format!("+{}", t(s)),
        Frame::Error(s) => format!("-{}", t(s)),
        Frame::Int(i) => format!(":{i}"),
        Frame::Bulk(None) | Frame::Array(None) => "(nil)".into(),
        Frame::Bulk(Some(v)) => t(v),
        Frame::Array(Some(xs)) => format!(
            "[{}]",
            xs.iter().map(fmt_frame).collect::<Vec<_>>().join(", ")
        ),
        Frame::Other(k, v) => format!("{}{}", *k as char, t(v)),
    }
}

fn show(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| format!("{:?}", String::from_utf8_lossy(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn random_commands_reply_like_redis_server() {
    let ops: usize = std::env::var("TIERED_DIFF_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("TIERED_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("differential: seed {seed} ({ops} ops; TIERED_DIFF_SEED={seed} replays it)");

    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let redis = Redis::start();
    let mut e = Conn::open(engine.port);
    let mut r = Conn::open(redis.port);

    let mut rng = Rng(seed);
    let mut mismatches = Vec::new();
    for i in 0..ops {
        let (args, cmp) = gen_command(&mut rng);
        let fe = normalize(e.call(&args), cmp);
        let fr = normalize(r.call(&args), cmp);
        if !same(cmp, &fe, &fr) {
            mismatches.push(format!(
                "op {i}: {}\n  engine: {}\n  redis:  {}",
                show(&args),
                fmt_frame(&fe),
                fmt_frame(&fr)
            ));
        }
    }
    // the whole keyspace agrees at the end
    let state = |c: &mut Conn| {
        let mut keys = match c.call(&[b("KEYS"), b("*")]) {
            Frame::Array(Some(k)) => k,
            other => panic!("KEYS: {other:?}"),
        };
        keys.sort();
        keys
    };
    let (ke, kr) = (state(&mut e), state(&mut r));
    if ke != kr {
        mismatches.push(format!("final keys\n  engine: {ke:?}\n  redis:  {kr:?}"));
    }
    assert!(
        mismatches.is_empty(),
        "seed {seed}: {} of {ops} replies differ from redis-server; first ones:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
