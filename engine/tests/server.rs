//! Integration tests of the `tiered-engine` binary: RESP commands over TCP,
//! malformed input, pipelining, kill -9 under write load, rotation, the lock,
//! metrics, verify/dump, redis-cli.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{metric, run_bin, Engine};
use redis::AsyncCommands;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn q<T: redis::FromRedisValue>(
    con: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(con).await
}

fn err_text<T: std::fmt::Debug>(r: redis::RedisResult<T>) -> String {
    let e = r.expect_err("expected an error reply");
    format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
}

#[test]
fn every_command_works_over_tcp_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p");
    let e = Engine::start(&data, &[]);
    let rt = rt();
    rt.block_on(async {
        let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
        assert_eq!(q::<String>(&mut c, &["PING"]).await.unwrap(), "PONG");
        assert_eq!(q::<String>(&mut c, &["ECHO", "hi"]).await.unwrap(), "hi");
        assert_eq!(q::<String>(&mut c, &["SELECT", "0"]).await.unwrap(), "OK");
        assert!(err_text(q::<String>(&mut c, &["SELECT", "1"]).await).contains("out of range"));
        assert_eq!(q::<String>(&mut c, &["SET", "s", "v"]).await.unwrap(), "OK");
        assert_eq!(q::<Option<String>>(&mut c, &["SET", "s", "w", "NX"]).await.unwrap(), None);
        assert_eq!(q::<Option<String>>(&mut c, &["SET", "s", "w", "XX", "GET"]).await.unwrap(), Some("v".into()));
        assert_eq!(q::<Option<String>>(&mut c, &["SET", "nx", "1", "XX"]).await.unwrap(), None);
        assert_eq!(q::<String>(&mut c, &["SET", "e", "1", "EX", "100"]).await.unwrap(), "OK");
        let ttl: i64 = q(&mut c, &["TTL", "e"]).await.unwrap();
        assert!((99..=100).contains(&ttl), "{ttl}");
        let pttl: i64 = q(&mut c, &["PTTL", "e"]).await.unwrap();
        assert!(pttl > 98_000 && pttl <= 100_000, "{pttl}");
        assert_eq!(q::<i64>(&mut c, &["PERSIST", "e"]).await.unwrap(), 1);
        assert_eq!(q::<i64>(&mut c, &["TTL", "e"]).await.unwrap(), -1);
        assert_eq!(q::<i64>(&mut c, &["TTL", "missing"]).await.unwrap(), -2);
        assert_eq!(q::<String>(&mut c, &["SET", "px", "1", "PX", "50"]).await.unwrap(), "OK");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(q::<Option<String>>(&mut c, &["GET", "px"]).await.unwrap(), None);
        assert_eq!(q::<i64>(&mut c, &["INCR", "n"]).await.unwrap(), 1);
        assert_eq!(q::<i64>(&mut c, &["INCRBY", "n", "10"]).await.unwrap(), 11);
        assert_eq!(q::<i64>(&mut c, &["DECR", "n"]).await.unwrap(), 10);
        assert_eq!(q::<i64>(&mut c, &["DECRBY", "n", "3"]).await.unwrap(), 7);
        assert!(err_text(q::<i64>(&mut c, &["INCR", "s"]).await).contains("not an integer"));
        assert_eq!(q::<i64>(&mut c, &["APPEND", "s", "xyz"]).await.unwrap(), 4);
        assert_eq!(q::<i64>(&mut c, &["STRLEN", "s"]).await.unwrap(), 4);
        assert_eq!(q::<String>(&mut c, &["MSET", "a", "1", "b", "2"]).await.unwrap(), "OK");
        let got: Vec<Option<String>> = q(&mut c, &["MGET", "a", "zz", "b"]).await.unwrap();
        assert_eq!(got, vec![Some("1".into()), None, Some("2".into())]);
        assert_eq!(q::<i64>(&mut c, &["EXISTS", "a", "b", "zz"]).await.unwrap(), 2);
        assert_eq!(q::<Option<String>>(&mut c, &["GETDEL", "a"]).await.unwrap(), Some("1".into()));
        assert_eq!(q::<i64>(&mut c, &["DEL", "a", "b"]).await.unwrap(), 1);
        assert_eq!(q::<i64>(&mut c, &["EXPIRE", "n", "1000"]).await.unwrap(), 1);
        assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "zz", "1000"]).await.unwrap(), 0);
        assert_eq!(q::<i64>(&mut c, &["HSET", "h", "f", "1", "g", "2"]).await.unwrap(), 2);
        assert_eq!(q::<String>(&mut c, &["HGET", "h", "g"]).await.unwrap(), "2");
        assert_eq!(q::<i64>(&mut c, &["HINCRBY", "h", "f", "5"]).await.unwrap(), 6);
        assert_eq!(q::<i64>(&mut c, &["HLEN", "h"]).await.unwrap(), 2);
        assert_eq!(q::<i64>(&mut c, &["HDEL", "h", "g", "nope"]).await.unwrap(), 1);
        let all: HashMap<String, String> = q(&mut c, &["HGETALL", "h"]).await.unwrap();
        assert_eq!(all, HashMap::from([("f".to_string(), "6".to_string())]));
        assert!(err_text(q::<i64>(&mut c, &["HSET", "s", "f", "1"]).await).contains("WRONGTYPE"));
        assert!(err_text(q::<String>(&mut c, &["GET", "h"]).await).contains("WRONGTYPE"));
        assert!(err_text(q::<String>(&mut c, &["GET"]).await).contains("wrong number of arguments"));
        assert!(err_text(q::<String>(&mut c, &["NOSUCH", "x"]).await).contains("unknown command"));
        let mut keys: Vec<String> = q(&mut c, &["KEYS", "*"]).await.unwrap();
        keys.sort();
        assert_eq!(keys, vec!["e", "h", "n", "s"]);
        for i in 0..30 {
            let _: () = c.set(format!("scan:{i:02}"), i).await.unwrap();
        }
        let mut scanned = Vec::new();
        let mut cursor = "0".to_string();
        loop {
            let (next, batch): (String, Vec<String>) =
                q(&mut c, &["SCAN", &cursor, "MATCH", "scan:*", "COUNT", "7"]).await.unwrap();
            scanned.extend(batch);
            if next == "0" {
                break;
            }
            cursor = next;
        }
        scanned.sort();
        assert_eq!(scanned, (0..30).map(|i| format!("scan:{i:02}")).collect::<Vec<_>>());
        assert_eq!(q::<i64>(&mut c, &["DBSIZE"]).await.unwrap(), 34);
        let info: String = q(&mut c, &["INFO", "persistence"]).await.unwrap();
        assert!(info.contains("last_seq:") && info.contains("open_segment:cmdlog-"), "{info}");
        let cfg: Vec<String> = q(&mut c, &["CONFIG", "GET", "appendfsync"]).await.unwrap();
        assert_eq!(cfg, vec!["appendfsync", "always"]);
        assert!(q::<i64>(&mut c, &["COMMAND", "COUNT"]).await.unwrap() > 30);
        assert_eq!(q::<String>(&mut c, &["CLIENT", "SETNAME", "t"]).await.unwrap(), "OK");
        assert_eq!(q::<String>(&mut c, &["CLIENT", "GETNAME"]).await.unwrap(), "t");
    });
    // a clean stop seals the open segment; a restart has the same state
    assert!(e.terminate().success());
    let names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".open") || n.ends_with(".tmp")),
        "{names:?}"
    );
    let e = Engine::start(&data, &[]);
    rt.block_on(async {
        let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
        assert_eq!(q::<String>(&mut c, &["GET", "s"]).await.unwrap(), "wxyz");
        let ttl: i64 = q(&mut c, &["TTL", "n"]).await.unwrap();
        assert!(ttl > 990, "expiry is absolute and survives: {ttl}");
        assert_eq!(q::<i64>(&mut c, &["DBSIZE"]).await.unwrap(), 34);
        assert_eq!(
            q::<i64>(&mut c, &["HINCRBY", "h", "f", "1"]).await.unwrap(),
            7
        );
        assert_eq!(q::<String>(&mut c, &["FLUSHALL"]).await.unwrap(), "OK");
        assert_eq!(q::<i64>(&mut c, &["DBSIZE"]).await.unwrap(), 0);
    });
    assert!(e.terminate().success());

    // verify and dump read the files
    let d = data.to_str().unwrap();
    let out = run_bin(&["verify", "--dir", d]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("0 problems"), "{text}");
    let out = run_bin(&["dump", "--dir", d]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("SET \"s\" \"v\"") && text.contains("FLUSHALL"),
        "{text}"
    );
    // a failed validation (INCR on "s", a non-integer) was never logged
    assert!(!text.contains("INCRBY \"s\""), "{text}");
}

fn raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn malformed_and_oversized_input_gets_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &[]);
    // pipelining: many commands in one write, answered in order
    let mut req = Vec::new();
    for i in 0..200 {
        req.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n$4\r\nk{i:03}\r\n$1\r\n{}\r\n", i % 10).as_bytes(),
        );
        req.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$4\r\nk{i:03}\r\n").as_bytes());
    }
    let out = raw(e.port, &req);
    let mut expected = Vec::new();
    for i in 0..200 {
        expected.extend_from_slice(format!("+OK\r\n$1\r\n{}\r\n", i % 10).as_bytes());
    }
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&expected)
    );
    // inline commands
    assert_eq!(
        raw(e.port, b"PING\r\nGET k001\r\n"),
        b"+PONG\r\n$1\r\n1\r\n"
    );
    // protocol errors: an error reply, then the connection is closed
    for bad in [
        &b"*1\r\n:12\r\n"[..],
        b"*abc\r\n",
        b"*1\r\n$99999999999\r\n",
        b"*1\r\n$-7\r\n",
    ] {
        let out = raw(e.port, bad);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("-ERR Protocol error"), "{text}");
    }
    // a command announcing more than the bound is refused before reading it
    let out = raw(e.port, b"*2\r\n$3\r\nSET\r\n$1000000000\r\n");
    assert!(String::from_utf8_lossy(&out).starts_with("-ERR Protocol error"));
    let out = raw(e.port, &vec![b'x'; 70 * 1024]);
    assert!(String::from_utf8_lossy(&out).contains("too big inline request"));
    // garbage bytes (without a NUL: as in Redis, a NUL before the newline
    // hides it, and the line waits for more)
    let out = raw(e.port, &[0xff, 0x13, b'\n']);
    assert!(
        out.starts_with(b"-ERR unknown command"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // refused writes of the compat commands: errors, nothing logged
    let out = raw(
        e.port,
        b"SETBIT k001 4294967296 1\r\nBITOP NOT d k001 k002\r\nRESTORE k001 0 junk\r\n\
          RESTORE new 0 junk\r\nSORT k001 STORE d\r\nBITFIELD k001 SET u64 0 1\r\n\
          MULTI\r\nSET x 1\r\nSAVE\r\nEXEC\r\n",
    );
    let text = String::from_utf8_lossy(&out);
    assert_eq!(
        text.matches("-ERR").count()
            + text.matches("-BUSYKEY").count()
            + text.matches("-WRONGTYPE").count()
            + text.matches("-EXECABORT").count(),
        8,
        "{text}"
    );
    // the engine still serves, and only the 200 SETs were logged
    assert_eq!(raw(e.port, b"DBSIZE\r\n"), b":200\r\n");
    let scrape = e.http_get("/metrics").1;
    assert_eq!(
        metric(&scrape, "tiered_engine_logged_records_total", &[]),
        Some(200.0)
    );
    assert!(e.terminate().success());
    let out = run_bin(&["verify", "--dir", dir.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("200 records"));
}

/// Several connections write as fast as they can; the engine is killed -9
/// at some point; every acknowledged write must be there after a restart.
fn kill9_under_load(extra: &[&str], run_ms: u64) -> (u64, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p");
    let e = Engine::start(&data, extra);
    let rt = rt();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Vec<Vec<u64>> = rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..6u64 {
            let client = e.client();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = client.get_multiplexed_async_connection().await.unwrap();
                let mut acked = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r: redis::RedisResult<String> = redis::cmd("SET")
                        .arg(format!("w{w}:{i}"))
                        .arg(format!("value-{w}-{i}-{}", "x".repeat((i % 50) as usize)))
                        .query_async(&mut c)
                        .await;
                    match r {
                        Ok(_) => acked.push(i),
                        Err(_) => break, // the engine died
                    }
                    i += 1;
                }
                acked
            }));
        }
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        let engine = e;
        engine.kill9();
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        all
    });
    let total: u64 = acked.iter().map(|a| a.len() as u64).sum();
    assert!(total > 100, "load too small to mean anything: {total}");
    let e = Engine::start(&data, extra);
    rt.block_on(async {
        let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
        for (w, list) in acked.iter().enumerate() {
            for chunk in list.chunks(500) {
                let keys: Vec<String> = chunk.iter().map(|i| format!("w{w}:{i}")).collect();
                let vals: Vec<Option<String>> = c.mget(&keys).await.unwrap();
                for (i, v) in chunk.iter().zip(vals) {
                    assert_eq!(
                        v,
                        Some(format!("value-{w}-{i}-{}", "x".repeat((i % 50) as usize))),
                        "acknowledged write w{w}:{i} lost"
                    );
                }
            }
        }
    });
    assert!(e.terminate().success());
    (total, data, dir)
}

#[test]
fn kill9_under_write_load_loses_no_acknowledged_write() {
    kill9_under_load(&[], 1500);
}

#[test]
fn kill9_under_write_load_across_rotations() {
    let (_, data, _dir) = kill9_under_load(&["--rotate-bytes", "4096"], 2000);
    let sealed = std::fs::read_dir(&data)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count();
    assert!(
        sealed > 5,
        "expected many rotations, found {sealed} sealed segments"
    );
    let out = run_bin(&["verify", "--dir", data.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn rotation_by_age_only_when_non_empty() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &["--rotate-interval", "1"]);
    let count = |suffix: &str| {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(suffix)
            })
            .count()
    };
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(count(".log"), 0, "an empty segment is not rotated");
    assert_eq!(raw(e.port, b"SET a 1\r\n"), b"+OK\r\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    // sealing renames the open segment before the next one is in place
    while count(".log") == 0 || count(".open") == 0 {
        assert!(std::time::Instant::now() < deadline, "no rotation by age");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((count(".log"), count(".open")), (1, 1));
    // the counter is bumped once the rotation returns, just after the renames
    let rotations = || {
        metric(
            &e.http_get("/metrics").1,
            "tiered_engine_rotations_total",
            &[],
        )
    };
    while rotations() != Some(1.0) {
        assert!(std::time::Instant::now() < deadline, "{:?}", rotations());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(e.terminate().success());
}

#[test]
fn a_second_engine_on_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &[]);
    let out = run_bin(&[
        "--dir",
        dir.path().to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{}", common::free_port()),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already running") && err.contains("engine.lock"),
        "{err}"
    );
    assert!(e.healthy());
    assert!(e.terminate().success());
}

#[test]
fn bad_flags_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (args, needle) in [
        (
            vec!["--dir", d, "--rotate-bytes", "12"],
            "--rotate-bytes 12",
        ),
        (
            vec!["--dir", d, "--rotate-interval", "0"],
            "--rotate-interval",
        ),
        (
            vec!["--dir", d, "--archive-dir-name", "../x"],
            "--archive-dir-name",
        ),
        (vec!["--dir", d, "--listen", "nope"], "invalid"),
        (vec!["--listen", "127.0.0.1:1"], "--dir"),
    ] {
        let out = run_bin(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // a damaged log stops the start, naming the file; --accept-data-loss starts
    let seg = dir
        .path()
        .join("cmdlog-00000000000000000001-00000000000000000002.log");
    std::fs::write(
        &seg,
        b"garbage that is not a segment header, long enough....",
    )
    .unwrap();
    let out = run_bin(&[
        "--dir",
        d,
        "--listen",
        &format!("127.0.0.1:{}", common::free_port()),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(seg.to_str().unwrap()) && err.contains("--accept-data-loss"),
        "{err}"
    );
    let e = Engine::start(dir.path(), &["--accept-data-loss"]);
    assert!(e.terminate().success());
}

#[test]
fn metrics_move_as_the_engine_works() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &[]);
    let (status, body) = e.http_get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    let before = e.http_get("/metrics").1;
    let set_ok = [("command", "set"), ("outcome", "ok")];
    assert_eq!(
        metric(&before, "tiered_engine_commands_total", &set_ok),
        Some(0.0)
    );
    assert_eq!(metric(&before, "tiered_engine_ready", &[]), Some(1.0));
    let out = raw(e.port, b"SET a 1\r\nSET b 2\r\nGET a\r\nINCR a x\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "+OK\r\n+OK\r\n$1\r\n1\r\n-ERR wrong number of arguments for 'incr' command\r\n"
    );
    let after = e.http_get("/metrics").1;
    assert_eq!(
        metric(&after, "tiered_engine_commands_total", &set_ok),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &after,
            "tiered_engine_commands_total",
            &[("command", "incr"), ("outcome", "error")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&after, "tiered_engine_sequence_number", &[]),
        Some(2.0)
    );
    assert_eq!(
        metric(&after, "tiered_engine_logged_records_total", &[]),
        Some(2.0)
    );
    assert!(metric(&after, "tiered_engine_logged_bytes_total", &[]).unwrap() > 40.0);
    assert!(metric(&after, "tiered_engine_fsync_duration_seconds_count", &[]).unwrap() >= 1.0);
    assert!(metric(&after, "tiered_engine_open_segment_bytes", &[]).unwrap() > 40.0);
    assert_eq!(
        metric(&after, "tiered_engine_writes_failed", &[]),
        Some(0.0)
    );
    assert!(metric(&after, "tiered_engine_recovery_duration_seconds", &[]).is_some());
    assert_eq!(
        metric(&after, "tiered_engine_recovery_replayed_commands", &[]),
        Some(0.0)
    );
    assert_eq!(e.http_get("/nope").0, 404);
    assert!(e.terminate().success());
    // after a restart, the replayed count is reported
    let e = Engine::start(dir.path(), &[]);
    let m = e.http_get("/metrics").1;
    assert_eq!(
        metric(&m, "tiered_engine_recovery_replayed_commands", &[]),
        Some(2.0)
    );
    assert_eq!(metric(&m, "tiered_engine_sequence_number", &[]), Some(2.0));
    assert!(e.terminate().success());
}

#[test]
fn redis_cli_talks_to_the_engine() {
    if std::process::Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("redis-cli not installed (scripts/deps.sh installs redis-tools); skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &[]);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &e.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(&["GET", "greeting"]), "hello world");
    assert_eq!(cli(&["HSET", "h", "a", "1"]), "1");
    assert_eq!(cli(&["--scan"]).lines().count(), 2);
    assert!(cli(&["INFO", "persistence"]).contains("last_seq:2"));
    assert!(cli(&["NOSUCH"]).contains("unknown command"));
    assert!(e.terminate().success());
}

/// A small tmpfs as the persistence volume, unmounted on drop.
struct Tmpfs {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vol");
        std::fs::create_dir(&p).unwrap();
        let r = nix::mount::mount(
            Some("tmpfs"),
            &p,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size}").as_str()),
        );
        match r {
            Ok(()) => Some(Tmpfs { path: p, _dir: dir }),
            Err(nix::errno::Errno::EPERM) => None,
            Err(e) => panic!("mount tmpfs: {e}"),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_full_volume_refuses_writes_before_it_is_full_and_keeps_serving_reads() {
    let Some(vol) = Tmpfs::mount("6m") else {
        eprintln!("not root: cannot mount a tmpfs; skipping");
        return;
    };
    // segments of 1 MiB cannot all be preallocated: the engine goes sparse
    let e = Engine::start(
        &vol.path,
        &["--rotate-bytes", "1048576", "--reserve-bytes", "2097152"],
    );
    let rt = rt();
    rt.block_on(async {
        let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
        let value = "v".repeat(64 * 1024);
        let mut acked = 0;
        let refused = loop {
            match c.set::<_, _, String>(format!("k{acked}"), &value).await {
                Ok(_) => acked += 1,
                Err(e) => break e.to_string(),
            }
            assert!(acked < 200, "a 6 MiB volume cannot hold 200 x 64 KiB");
        };
        assert!(refused.contains("disk almost full"), "{refused}");
        assert!(acked > 10, "{acked}");
        // reads go on, the engine is not poisoned
        let v: String = c.get("k0").await.unwrap();
        assert_eq!(v.len(), value.len());
        assert!(e.healthy());
        let err = c.set::<_, _, String>("again", "x").await.unwrap_err();
        assert!(err.to_string().contains("disk almost full"));
    });
    let acked_keys = {
        let m = e.http_get("/metrics").1;
        metric(&m, "tiered_engine_sequence_number", &[]).unwrap()
    };
    assert!(e.terminate().success());
    let e = Engine::start(
        &vol.path,
        &["--reserve-bytes", "0", "--rotate-bytes", "1048576"],
    );
    let m = e.http_get("/metrics").1;
    assert_eq!(
        metric(&m, "tiered_engine_sequence_number", &[]),
        Some(acked_keys)
    );
    drop(e);
}

#[test]
fn the_connection_cap_holds_further_clients_until_one_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &["--max-clients", "2"]);
    let ping = |s: &mut std::net::TcpStream| -> std::io::Result<Vec<u8>> {
        s.write_all(b"PING\r\n")?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf)?;
        Ok(buf.to_vec())
    };
    let connect = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", e.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        s
    };
    // Engine::start's readiness probe may still hold a slot for a moment
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metric(
        &e.http_get("/metrics").1,
        "tiered_engine_connected_clients",
        &[],
    ) != Some(0.0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "probe connection never closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut a = connect();
    let mut b = connect();
    assert_eq!(ping(&mut a).unwrap(), b"+PONG\r\n");
    assert_eq!(ping(&mut b).unwrap(), b"+PONG\r\n");
    let mut c = connect();
    assert!(
        ping(&mut c).is_err(),
        "a third client is not served while two are connected"
    );
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 7];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n", "served once a slot is free");
    assert_eq!(ping(&mut b).unwrap(), b"+PONG\r\n");
    drop((b, c));
    assert!(e.terminate().success());
}

#[test]
fn starts_from_a_snapshot_plus_later_logs_and_inspects_them() {
    use tiered_engine::{layout, recovery, snapshot};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p");
    let e = Engine::start(&data, &[]);
    assert_eq!(
        raw(e.port, b"SET a 1\r\nSET b 2\r\nHSET h f v\r\n"),
        b"+OK\r\n+OK\r\n:1\r\n"
    );
    assert!(e.terminate().success());
    // what the snapshotter does: snapshot at the last sealed seq, then move
    // the covered log to the archive
    let r = recovery::recover(&data, "archived", recovery::RecoveryMode::Strict).unwrap();
    assert_eq!(r.last_seq, 3);
    let snap = snapshot::write_snapshot(&data, 3, &r.db).unwrap();
    let logs = data.join("archived").join(layout::ARCHIVE_LOGS_DIR);
    std::fs::create_dir_all(&logs).unwrap();
    let sealed = data.join(layout::sealed_segment_name(1, 3));
    std::fs::rename(&sealed, logs.join(sealed.file_name().unwrap())).unwrap();

    let e = Engine::start(&data, &[]);
    assert_eq!(raw(e.port, b"SET c 3\r\n"), b"+OK\r\n");
    let info = String::from_utf8(raw(e.port, b"INFO persistence\r\n")).unwrap();
    assert!(
        info.contains(&format!("last_snapshot_loaded:{}", snap.display())),
        "{info}"
    );
    assert!(info.contains("recovery_replayed_commands:0"), "{info}");
    assert!(info.contains("last_seq:4"), "{info}");
    assert_eq!(
        raw(e.port, b"MGET a b c\r\n"),
        b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"
    );
    assert!(e.terminate().success());

    let d = data.to_str().unwrap();
    let out = run_bin(&["verify", "--dir", d]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 snapshots, 2 segments, 4 records"),
        "{text}"
    );
    let out = run_bin(&["dump", "--file", snap.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SET \"a\" \"1\"") && text.contains("HSET \"h\" \"f\" \"v\""),
        "{text}"
    );
    // damage is reported with a non-zero exit
    let newest = data.join(layout::sealed_segment_name(4, 4));
    let mut b = std::fs::read(&newest).unwrap();
    let n = b.len();
    b[n - 1] ^= 0x20;
    std::fs::write(&newest, b).unwrap();
    let out = run_bin(&["verify", "--dir", d]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("PROBLEM") && text.contains(newest.to_str().unwrap()),
        "{text}"
    );
    let out = run_bin(&["dump", "--file", "/nonexistent/x"]);
    assert!(!out.status.success());
}

#[test]
fn expired_keys_leave_memory_and_stay_gone_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &[]);
    let mut req = Vec::new();
    for i in 0..50 {
        req.extend_from_slice(format!("SET t{i} v PX 100\r\n").as_bytes());
    }
    req.extend_from_slice(b"SET keep v\r\n");
    assert_eq!(raw(e.port, &req).len(), 51 * 5);
    let stored = |e: &Engine| {
        let info = String::from_utf8(raw(e.port, b"INFO keyspace\r\n")).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("stored_keys:"))
            .map(|n| n.trim().parse::<u64>().unwrap())
            .unwrap()
    };
    assert_eq!(stored(&e), 51);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while stored(&e) != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "expired keys never purged"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(raw(e.port, b"DBSIZE\r\n"), b":1\r\n");
    // a command after the purge: replay must agree with what was served
    assert_eq!(raw(e.port, b"INCR t3\r\n"), b":1\r\n");
    e.kill9();
    let e = Engine::start(dir.path(), &[]);
    assert_eq!(raw(e.port, b"GET t3\r\nDBSIZE\r\n"), b"$1\r\n1\r\n:2\r\n");
    assert!(e.terminate().success());
}

#[test]
fn repeated_kill9_cycles_with_rotation_keep_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p");
    let extra = ["--rotate-bytes", "8192"];
    let rt = rt();
    let mut acked_all: Vec<(String, String)> = Vec::new();
    for cycle in 0..3u64 {
        let e = Engine::start(&data, &extra);
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Vec<(String, String)> = rt.block_on(async {
            let mut tasks = Vec::new();
            for w in 0..4u64 {
                let client = e.client();
                let stop = stop.clone();
                tasks.push(tokio::spawn(async move {
                    let mut c = client.get_multiplexed_async_connection().await.unwrap();
                    let mut acked = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // a pipeline of 8 writes: a kill may land mid-batch
                        let mut p = redis::pipe();
                        let kvs: Vec<(String, String)> = (0..8)
                            .map(|j| (format!("c{cycle}w{w}:{i}:{j}"), format!("{i}-{j}")))
                            .collect();
                        for (k, v) in &kvs {
                            p.cmd("SET").arg(k).arg(v);
                        }
                        match p.query_async::<Vec<String>>(&mut c).await {
                            Ok(_) => acked.extend(kvs),
                            Err(_) => break,
                        }
                        i += 1;
                    }
                    acked
                }));
            }
            tokio::time::sleep(Duration::from_millis(300 + cycle * 170)).await;
            e.kill9();
            stop.store(true, Ordering::Relaxed);
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        });
        assert!(!acked.is_empty(), "cycle {cycle} wrote nothing");
        acked_all.extend(acked);
        // every write acknowledged in this and the earlier cycles is there
        let e = Engine::start(&data, &extra);
        rt.block_on(async {
            let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
            for chunk in acked_all.chunks(500) {
                let keys: Vec<&String> = chunk.iter().map(|(k, _)| k).collect();
                let vals: Vec<Option<String>> = c.mget(&keys).await.unwrap();
                for ((k, v), got) in chunk.iter().zip(vals) {
                    assert_eq!(
                        got.as_ref(),
                        Some(v),
                        "cycle {cycle}: acknowledged {k} lost"
                    );
                }
            }
        });
        e.kill9();
    }
    let out = run_bin(&["verify", "--dir", data.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
}

#[test]
fn the_health_subcommand_tells_a_ready_engine_from_none() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &[]);
    let addr = format!("127.0.0.1:{}", e.metrics_port);
    let ok = run_bin(&["health", "--addr", &addr]);
    assert!(
        ok.status.success(),
        "health of a ready engine failed: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // the env var is read like the flag
    let by_env = std::process::Command::new(common::BIN)
        .arg("health")
        .env("TIERED_HEALTH_ADDR", &addr)
        .output()
        .unwrap();
    assert!(by_env.status.success());
    assert!(e.terminate().success());

    // nobody listening any more: unhealthy, exit 1, one line saying why
    let down = run_bin(&["health", "--addr", &addr, "--timeout-secs", "1"]);
    assert_eq!(down.status.code(), Some(1));
    let why = String::from_utf8_lossy(&down.stderr);
    assert!(why.contains("unhealthy"), "{why}");

    // something that is not the engine's /healthz (it answers 404) is not healthy
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
    });
    let wrong = run_bin(&["health", "--addr", &other, "--timeout-secs", "2"]);
    assert_eq!(wrong.status.code(), Some(1));
    server.join().unwrap();

    // a bad address is a usage error, not a health verdict
    let bad = run_bin(&["health", "--addr", "not-an-address"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Every list write is logged as its effect: a restart replays the log into
/// the same lists (issue 13).
#[test]
fn lists_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p");
    let e = Engine::start(&data, &[]);
    let rt = rt();
    let script: &[&[&str]] = &[
        &["RPUSH", "l", "a", "b", "c", "d", "b"],
        &["LPUSH", "l", "z"],
        &["LPUSHX", "none", "z"],
        &["LSET", "l", "-1", "e"],
        &["LINSERT", "l", "AFTER", "a", "x"],
        &["LREM", "l", "1", "b"],
        &["LMOVE", "l", "m", "LEFT", "RIGHT"],
        &["RPOPLPUSH", "l", "m"],
        &["LPOP", "l", "1"],
        &["LTRIM", "l", "0", "1"],
        &["RPUSH", "gone", "1"],
        &["LMPOP", "2", "nope", "gone", "LEFT", "COUNT", "5"],
    ];
    let snapshot = |c: &mut redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        async move {
            let mut out = Vec::new();
            for k in ["l", "m", "gone", "none"] {
                let v: Vec<String> = q(&mut c, &["LRANGE", k, "0", "-1"]).await.unwrap();
                out.push(v);
            }
            out
        }
    };
    let before = rt.block_on(async {
        let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
        for cmd in script {
            let _: redis::Value = q(&mut c, cmd).await.unwrap();
        }
        assert_eq!(q::<String>(&mut c, &["TYPE", "l"]).await.unwrap(), "list");
        snapshot(&mut c).await
    });
    assert_eq!(
        before,
        vec![
            vec!["x".to_string(), "c".to_string()],
            vec!["e".to_string(), "z".to_string()],
            vec![],
            vec![]
        ]
    );
    assert!(e.terminate().success());
    let e = Engine::start(&data, &[]);
    let after = rt.block_on(async {
        let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
        snapshot(&mut c).await
    });
    assert_eq!(after, before);
    assert!(e.terminate().success());
}

/// Set writes are logged as their effects, SPOP as the members it took:
/// after kill -9 the log replays into the sets that were served, and
/// `dump` shows what each SPOP removed.
#[test]
fn sets_survive_kill9_with_spop_replayed_as_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p");
    let e = Engine::start(&data, &[]);
    let rt = rt();
    let script: &[&[&str]] = &[
        &["SADD", "s", "1", "2", "3", "4", "5", "a", "b", "c"],
        &["SPOP", "s"],
        &["SPOP", "s", "2"],
        &["SADD", "t", "x", "2", "3"],
        &["SMOVE", "s", "t", "a"],
        &["SREM", "t", "x"],
        &["SINTERSTORE", "i", "s", "t"],
        &["SUNIONSTORE", "u", "s", "t"],
        &["SDIFFSTORE", "d", "s", "t"],
        &["SPOP", "u", "1000"],
        &["SADD", "gone", "1"],
        &["SPOP", "gone"],
    ];
    let sets = |c: &mut redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        async move {
            let mut out = Vec::new();
            for k in ["s", "t", "i", "u", "d", "gone"] {
                let mut v: Vec<String> = q(&mut c, &["SMEMBERS", k]).await.unwrap();
                v.sort();
                out.push(v);
            }
            out
        }
    };
    let before = rt.block_on(async {
        let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
        for cmd in script {
            let _: redis::Value = q(&mut c, cmd).await.unwrap();
        }
        assert_eq!(q::<String>(&mut c, &["TYPE", "s"]).await.unwrap(), "set");
        sets(&mut c).await
    });
    // 8 members, 3 popped, "a" moved unless it was popped
    assert!((4..=5).contains(&before[0].len()), "{before:?}");
    assert!(before[3].is_empty() && before[5].is_empty(), "{before:?}");
    e.kill9();
    let e = Engine::start(&data, &[]);
    let after = rt.block_on(async {
        let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
        sets(&mut c).await
    });
    assert_eq!(after, before);
    assert!(e.terminate().success());
    let dump = run_bin(&["dump", "--dir", data.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("SPOP \"s\" 2 -> \""), "{text}");
    assert!(text.contains("SPOP \"u\" (every member)"), "{text}");
    assert!(text.contains("SINTERSTORE \"i\" \"s\" \"t\""), "{text}");
}

/// Everything a client can see of the keyspace: per key its type, value
/// and absolute expiry.
async fn visible_state(c: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = q(c, &["KEYS", "*"]).await.unwrap();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        let t: String = q(c, &["TYPE", &k]).await.unwrap();
        let v = if t == "hash" {
            let mut all: Vec<(String, String)> = q::<HashMap<String, String>>(c, &["HGETALL", &k])
                .await
                .unwrap()
                .into_iter()
                .collect();
            all.sort();
            format!("{all:?}")
        } else {
            q::<String>(c, &["GET", &k]).await.unwrap()
        };
        let at: i64 = q(c, &["PEXPIRETIME", &k]).await.unwrap();
        out.push(format!("{k} {t} {v} {at}"));
    }
    out
}

/// The effects added with the client issue are logged and replayed: the
/// state after kill -9 and a restart is the state served before. And a
/// SCAN started on one connection continues on another and across the
/// restart (the cursor is the position).
#[test]
fn new_effects_survive_kill9_and_scan_cursors_survive_connections_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p");
    let e = Engine::start(&data, &[]);
    let rt = rt();
    let (before, cursor, first_half) = rt.block_on(async {
        let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
        let cmds: &[&[&str]] = &[
            &["SETNX", "sn", "1"],
            &["SETEX", "se", "1000", "v"],
            &["PSETEX", "pse", "900000", "v"],
            &["GETSET", "sn", "2"],
            &["GETEX", "se", "PERSIST"],
            &["SET", "ge", "x"],
            &["GETEX", "ge", "EX", "500"],
            &["SETRANGE", "sr", "4", "ab"],
            &["MSETNX", "m1", "1", "m2", "2"],
            &["EXPIRE", "m1", "100", "NX"],
            &["PEXPIRE", "m1", "200000", "GT"],
            &["EXPIREAT", "m2", "4000000000"],
            &["PEXPIREAT", "m2", "4000000000000", "LT"],
            &["RENAME", "m2", "r2"],
            &["RENAMENX", "r2", "sn"],
            &["COPY", "r2", "c2"],
            &["COPY", "sn", "c2", "REPLACE"],
            &["UNLINK", "pse"],
            &["HSETNX", "h", "a", "1"],
            &["HMSET", "h", "b", "2", "c", "3"],
            &["INCRBYFLOAT", "f", "10.5"],
            &["INCRBYFLOAT", "f", "0.1"],
            &["HINCRBYFLOAT", "h", "a", "1.25"],
            &["SET", "gone", "1"],
            &["FLUSHDB"],
        ];
        // FLUSHDB last would leave nothing: run it first, then the rest
        let _: redis::Value = q(&mut c, cmds[cmds.len() - 1]).await.unwrap();
        for cmd in &cmds[..cmds.len() - 1] {
            let _: redis::Value = q(&mut c, cmd).await.unwrap();
        }
        assert_eq!(q::<String>(&mut c, &["GET", "f"]).await.unwrap(), "10.6");
        for i in 0..200 {
            let _: () = c.set(format!("scan:{i:03}"), i).await.unwrap();
        }
        let (cursor, batch): (String, Vec<String>) =
            q(&mut c, &["SCAN", "0", "MATCH", "scan:*", "COUNT", "50"])
                .await
                .unwrap();
        assert_ne!(cursor, "0");
        // continued on another connection
        let mut c2 = e.client().get_multiplexed_async_connection().await.unwrap();
        let (cursor, more): (String, Vec<String>) = q(
            &mut c2,
            &["SCAN", &cursor, "MATCH", "scan:*", "COUNT", "50"],
        )
        .await
        .unwrap();
        assert_ne!(cursor, "0");
        (visible_state(&mut c).await, cursor, [batch, more].concat())
    });
    e.kill9();
    let e = Engine::start(&data, &[]);
    rt.block_on(async {
        let mut c = e.client().get_multiplexed_async_connection().await.unwrap();
        assert_eq!(visible_state(&mut c).await, before);
        let mut seen = first_half;
        let mut cursor = cursor;
        loop {
            let (next, batch): (String, Vec<String>) =
                q(&mut c, &["SCAN", &cursor, "MATCH", "scan:*", "COUNT", "50"])
                    .await
                    .unwrap();
            seen.extend(batch);
            if next == "0" {
                break;
            }
            cursor = next;
        }
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen,
            (0..200).map(|i| format!("scan:{i:03}")).collect::<Vec<_>>()
        );
        let bad = q::<redis::Value>(&mut c, &["SCAN", "x"]).await;
        assert_eq!(err_text(bad), "ERR invalid cursor");
    });
}

#[test]
fn shutdown_stops_the_engine_cleanly_and_keeps_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::start(dir.path(), &[]);
    let out = raw(e.port, b"SET a 1\r\nMULTI\r\nSHUTDOWN\r\nEXEC\r\nSAVE\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "+OK\r\n+OK\r\n-ERR Command not allowed inside a transaction\r\n\
         -EXECABORT Transaction discarded because of previous errors.\r\n+OK\r\n"
    );
    assert!(e.child.try_wait().unwrap().is_none(), "refused in MULTI");
    let _ = raw(e.port, b"SHUTDOWN NOSAVE\r\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = e.child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "{}", e.log_text());
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status}: {}", e.log_text());
    let e = Engine::start(dir.path(), &[]);
    assert_eq!(raw(e.port, b"GET a\r\n"), b"$1\r\n1\r\n");
}

/// The open segment, at start and after a rotation, has zeros written over
/// its whole preallocation (no unwritten extent, which ext4 and XFS report
/// as a hole, is left for an fdatasync to convert); `--no-zero-fill` leaves
/// fallocate's unwritten space.
#[test]
fn segments_are_zero_filled_unless_told_not_to() {
    let open_segments = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "open"))
            .collect();
        v.sort();
        v
    };
    // the first hole (SEEK_HOLE): the size when there is none
    let first_hole = |p: &std::path::Path| -> (u64, u64) {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(p).unwrap();
        let hole = nix::unistd::lseek(f.as_raw_fd(), 0, nix::unistd::Whence::SeekHole).unwrap();
        (hole as u64, f.metadata().unwrap().len())
    };
    let size = 1u64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(
        dir.path(),
        &["--rotate-bytes", "1048576", "--rotate-interval", "1"],
    );
    let first = open_segments(dir.path());
    assert_eq!(first.len(), 1);
    assert_eq!(first_hole(&first[0]), (size, size), "{first:?}");
    // a rotation by age puts the prepared (filled in the background) file in place
    assert_eq!(raw(e.port, b"SET a 1\r\n"), b"+OK\r\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        let now = open_segments(dir.path());
        if now.len() == 1 && now != first {
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "no rotation: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(first_hole(&second[0]), (size, size), "{second:?}");
    assert!(e.terminate().success());

    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(dir.path(), &["--rotate-bytes", "1048576", "--no-zero-fill"]);
    let open = open_segments(dir.path());
    let (hole, len) = first_hole(&open[0]);
    assert_eq!(len, size);
    // ext4 and XFS: a hole right after the header's block
    assert!(hole < size, "fallocate left no unwritten space: {hole}");
    assert!(e.terminate().success());
}
