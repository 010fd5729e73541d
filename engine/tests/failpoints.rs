//! Failure injection in the write path (built with `--features failpoints`):
//! a failed write, a failed fdatasync, a short write and ENOSPC poison the
//! log (clients get the error, nothing unacknowledged is served, the engine
//! stops with an error), and the free-space reserve refuses writes cleanly.
//! A panic in the log writer poisons the engine the same way.

use std::net::SocketAddr;
use std::time::Duration;

use tiered_engine::db::Value;
use tiered_engine::recovery::{recover, RecoveryMode};
use tiered_engine::writer::WriterError;
use tiered_engine::{Config, EngineError};
use tokio_util::sync::CancellationToken;

async fn start(
    dir: &std::path::Path,
) -> (tiered_engine::Running, redis::aio::MultiplexedConnection) {
    let mut cfg = Config::new(dir, "127.0.0.1:0".parse::<SocketAddr>().unwrap());
    cfg.reserve_bytes = 1 << 20;
    cfg.rotate_bytes = 1 << 20;
    let running = tiered_engine::start(cfg, CancellationToken::new())
        .await
        .unwrap();
    let client = redis::Client::open(format!("redis://{}/", running.addr)).unwrap();
    let con = client.get_multiplexed_async_connection().await.unwrap();
    (running, con)
}

async fn set(
    con: &mut redis::aio::MultiplexedConnection,
    k: &str,
    v: &str,
) -> redis::RedisResult<String> {
    redis::cmd("SET").arg(k).arg(v).query_async(con).await
}

/// Sends `SET bad 2` and `GET bad` in one pipeline on a new connection and
/// returns both reply lines. The GET runs after the SET was applied, so its
/// reply is held until the SET's record is durable; when that fails, both
/// get the error: the failed write is shown to no client.
async fn set_then_get_bad(addr: SocketAddr) -> (String, String) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(b"*3\r\n$3\r\nSET\r\n$3\r\nbad\r\n$1\r\n2\r\n*2\r\n$3\r\nGET\r\n$3\r\nbad\r\n")
        .await
        .unwrap();
    let mut r = BufReader::new(r);
    let mut lines = [String::new(), String::new()];
    for l in lines.iter_mut() {
        tokio::time::timeout(Duration::from_secs(10), r.read_line(l))
            .await
            .expect("reply in time")
            .unwrap();
    }
    let [set, get] = lines;
    (set, get)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs one poisoning scenario: `ok` before the failpoint is armed, `bad`
/// after; returns the client's error text, why the engine stopped, and the
/// recovered state.
fn poison_scenario(failpoint: &str) -> (String, WriterError, tiered_engine::recovery::Recovered) {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let (err, running_err) = rt().block_on(async {
        let (running, mut con) = start(dir.path()).await;
        assert_eq!(set(&mut con, "ok", "1").await.unwrap(), "OK");
        fail::cfg(failpoint, "return").unwrap();
        // the failed command was executed but never became durable: the
        // read after it is held behind it and gets the error too
        let (set_reply, get_reply) = set_then_get_bad(running.addr).await;
        assert!(set_reply.starts_with('-'), "{set_reply}");
        assert_eq!(get_reply, set_reply, "the held read gets the same error");
        let err = set_reply[1..].trim_end().to_string();
        assert_eq!(running.shared.metrics.writes_failed.get(), 1);
        assert!(!running.shared.metrics.is_healthy());
        // the engine stops by itself, with the error
        let result = tokio::time::timeout(Duration::from_secs(10), running.wait())
            .await
            .expect("a poisoned engine stops");
        (err, result)
    });
    let cause = match running_err {
        Err(EngineError::Poisoned(e)) => e,
        other => panic!("expected a poisoned stop, got {other:?}"),
    };
    fail::cfg(failpoint, "off").unwrap();
    let recovered = recover(dir.path(), "archived", RecoveryMode::Strict).unwrap();
    assert_eq!(recovered.db.get(b"ok", 0), Some(&Value::Str(b"1".to_vec())));
    scenario.teardown();
    (err, cause, recovered)
}

#[test]
fn failed_write_poisons_the_log() {
    let (err, cause, rec) = poison_scenario("segment::write");
    assert!(err.contains("writes disabled"), "{err}");
    assert!(
        matches!(cause, WriterError::Io { op: "write", .. }),
        "{cause:?}"
    );
    assert_eq!(rec.db.get(b"bad", 0), None);
    assert_eq!(rec.last_seq, 1);
}

#[test]
fn failed_fsync_poisons_the_log() {
    let (err, cause, _rec) = poison_scenario("segment::fsync");
    // the record may or may not have reached the disk: it was never
    // acknowledged, and recovery stays consistent either way
    assert!(err.contains("writes disabled"), "{err}");
    assert!(
        matches!(
            cause,
            WriterError::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{cause:?}"
    );
}

#[test]
fn short_write_poisons_the_log_and_the_torn_tail_is_cut() {
    let (err, cause, rec) = poison_scenario("segment::short-write");
    assert!(err.contains("writes disabled"), "{err}");
    assert!(
        matches!(&cause, WriterError::Io { op: "write", source, .. } if source.raw_os_error() == Some(libc::EIO)),
        "{cause:?}"
    );
    assert_eq!(rec.db.get(b"bad", 0), None);
    assert_eq!(rec.last_seq, 1);
    let cut = rec
        .cut_tail
        .expect("half a record was on disk and must be cut");
    assert!(cut.reason.contains("torn tail"), "{cut:?}");
}

#[test]
fn enospc_poisons_the_log_with_a_disk_full_message() {
    let (err, cause, rec) = poison_scenario("segment::enospc");
    assert!(err.contains("no space left"), "{err}");
    assert!(cause.is_disk_full(), "{cause:?}");
    assert_eq!(rec.db.get(b"bad", 0), None);
}

#[test]
fn free_space_reserve_refuses_writes_without_poisoning() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (running, mut con) = start(dir.path()).await;
        assert_eq!(set(&mut con, "a", "1").await.unwrap(), "OK");
        fail::cfg("sys::free_bytes", "return(1000)").unwrap();
        // a reading far above the reserve is reused that long
        tokio::time::sleep(tiered_engine::reserve::FRESH).await;
        let err = set(&mut con, "b", "2").await.unwrap_err();
        assert!(err.to_string().contains("disk almost full"), "{err}");
        // reads go on, nothing was logged, the engine stays up
        let a: String = redis::cmd("GET")
            .arg("a")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(a, "1");
        assert_eq!(running.shared.metrics.logged_records.get(), 1);
        assert!(running.shared.metrics.is_healthy());
        fail::cfg("sys::free_bytes", "off").unwrap();
        assert_eq!(set(&mut con, "b", "3").await.unwrap(), "OK");
        assert_eq!(running.shared.metrics.sequence_number.get(), 2);
    });
    let rec = recover(dir.path(), "archived", RecoveryMode::Strict).unwrap();
    assert_eq!(rec.db.get(b"b", 0), Some(&Value::Str(b"3".to_vec())));
    assert_eq!(rec.last_seq, 2);
    scenario.teardown();
}

#[test]
fn healthz_answers_503_until_recovery_is_done() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let healthz = move || -> Option<u16> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut r = String::new();
        s.read_to_string(&mut r).ok()?;
        r.get(9..12)?.parse().ok()
    };
    fail::cfg("recovery::scan", "sleep(1500)").unwrap();
    rt().block_on(async {
        let mut cfg = Config::new(dir.path(), "127.0.0.1:0".parse::<SocketAddr>().unwrap());
        cfg.metrics_listen = Some(format!("127.0.0.1:{metrics_port}").parse().unwrap());
        cfg.reserve_bytes = 0;
        let shutdown = CancellationToken::new();
        let starting = tokio::spawn(tiered_engine::start(cfg, shutdown.clone()));
        let mut seen = Vec::new();
        for _ in 0..100 {
            let code = tokio::task::spawn_blocking(healthz).await.unwrap();
            if let Some(c) = code {
                if seen.last() != Some(&c) {
                    seen.push(c);
                }
                if c == 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen, vec![503, 200], "503 while recovering, then 200");
        let running = starting.await.unwrap().unwrap();
        shutdown.cancel();
        running.wait().await.unwrap();
    });
    scenario.teardown();
}

/// `GET /healthz` on `port`: the status code, None when nothing answers.
fn healthz_status(port: u16) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    r.get(9..12)?.parse().ok()
}

#[test]
fn a_writer_panic_poisons_the_engine() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let result = rt().block_on(async {
        let mut cfg = Config::new(dir.path(), "127.0.0.1:0".parse::<SocketAddr>().unwrap());
        cfg.metrics_listen = Some(format!("127.0.0.1:{metrics_port}").parse().unwrap());
        cfg.reserve_bytes = 0;
        let running = tiered_engine::start(cfg, CancellationToken::new())
            .await
            .unwrap();
        let client = redis::Client::open(format!("redis://{}/", running.addr)).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        assert_eq!(set(&mut con, "ok", "1").await.unwrap(), "OK");
        let code = tokio::task::spawn_blocking(move || healthz_status(metrics_port))
            .await
            .unwrap();
        assert_eq!(code, Some(200));

        fail::cfg("writer::commit", "panic(injected writer panic)").unwrap();
        // the write never became durable: the read after it is shown an
        // error, not its value
        let (set_reply, get_reply) = set_then_get_bad(running.addr).await;
        assert!(set_reply.starts_with("-ERR"), "{set_reply}");
        assert_eq!(get_reply, set_reply);
        // poisoned: the cause is kept for INFO and clients, /healthz fails
        let health = running.shared.health.clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !health.is_poisoned() {
            assert!(std::time::Instant::now() < deadline, "never poisoned");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(health.poison_cause().is_some());
        assert_eq!(running.shared.metrics.writes_failed.get(), 1);
        assert!(!running.shared.metrics.is_healthy());
        let code = tokio::task::spawn_blocking(move || healthz_status(metrics_port))
            .await
            .unwrap();
        assert_eq!(code, Some(503));
        // the engine stops by itself, with the panic as its error
        tokio::time::timeout(Duration::from_secs(15), running.wait())
            .await
            .expect("a poisoned engine stops")
    });
    assert!(
        matches!(
            &result,
            Err(EngineError::Poisoned(WriterError::Panicked { message }))
                if message == "injected writer panic"
        ),
        "{result:?}"
    );
    fail::cfg("writer::commit", "off").unwrap();
    let rec = recover(dir.path(), "archived", RecoveryMode::Strict).unwrap();
    assert_eq!(rec.db.get(b"ok", 0), Some(&Value::Str(b"1".to_vec())));
    assert_eq!(rec.db.get(b"bad", 0), None);
    assert_eq!(rec.last_seq, 1);
    scenario.teardown();
}

/// A read on another connection that sees a write not yet durable is held
/// until that write's fsync is done: while the fsync is paused, the GET of
/// the written key gets no reply; once it completes, the GET answers.
#[test]
fn a_read_of_a_write_not_yet_durable_waits_for_its_fsync_on_any_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (running, mut con) = start(dir.path()).await;
        assert_eq!(set(&mut con, "x", "0").await.unwrap(), "OK");
        fail::cfg("segment::fsync", "pause").unwrap();
        let mut writer = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        writer
            .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n1\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut reader = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        reader
            .write_all(b"*2\r\n$3\r\nGET\r\n$1\r\nx\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let early = tokio::time::timeout(Duration::from_millis(500), reader.read(&mut buf)).await;
        // resume the fsync before asserting, so a failure does not hang
        fail::cfg("segment::fsync", "off").unwrap();
        assert!(
            early.is_err(),
            "a reply before the write is durable: {early:?}"
        );
        let n = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf))
            .await
            .expect("the read is released once the write is durable")
            .unwrap();
        assert_eq!(&buf[..n], b"$1\r\n1\r\n");
        let n = tokio::time::timeout(Duration::from_secs(10), writer.read(&mut buf))
            .await
            .expect("the write is acknowledged")
            .unwrap();
        assert_eq!(&buf[..n], b"+OK\r\n");
    });
    scenario.teardown();
}
