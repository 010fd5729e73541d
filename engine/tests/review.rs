//! Regression tests from the engine review: replies to pipelined writes
//! follow the order of the connection's own commands, and the state that
//! replay rebuilds equals the state that was served.

use std::net::SocketAddr;
use std::time::Duration;

use tiered_engine::db::Value;
use tiered_engine::recovery::{recover, RecoveryMode};
use tiered_engine::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Sends `cmds` in one write (a pipeline) and reads until `expected_len`
/// bytes of replies arrived.
async fn pipeline(addr: SocketAddr, cmds: &[&[&str]], expected_len: usize) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = Vec::new();
    for c in cmds {
        req.extend_from_slice(&resp(c));
    }
    s.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < expected_len {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("replies in time")
            .unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A pipelined write must be checked against the state that includes the
/// connection's earlier writes of the same pipeline: `SET k 5; INCR k` on a
/// key holding "abc" answers 6 (as Redis does), not "not an integer".
#[test]
fn pipelined_writes_are_validated_after_the_earlier_writes_of_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let mut cfg = Config::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        cfg.reserve_bytes = 0;
        let shutdown = CancellationToken::new();
        let running = tiered_engine::start(cfg, shutdown.clone()).await.unwrap();
        let addr = running.addr;
        let setup = pipeline(
            addr,
            &[&["SET", "n", "abc"], &["SET", "s", "x"], &["SET", "m", "7"]],
            15,
        )
        .await;
        assert_eq!(setup, "+OK\r\n+OK\r\n+OK\r\n");
        const EXPECTED: &str =
            "+OK\r\n:6\r\n:1\r\n:1\r\n+OK\r\n-ERR value is not an integer or out of range\r\n";
        let got = pipeline(
            addr,
            &[
                &["SET", "n", "5"],
                &["INCR", "n"],
                &["DEL", "s"],
                &["HSET", "s", "f", "v"],
                &["SET", "m", "x"],
                &["INCR", "m"],
            ],
            EXPECTED.len(),
        )
        .await;
        assert_eq!(got, EXPECTED);
        let served = running.shared.db.read().unwrap().clone();
        shutdown.cancel();
        running.wait().await.unwrap();
        // replay gives exactly the served state (the failed INCR included)
        let rec = recover(dir.path(), "archived", RecoveryMode::Strict).unwrap();
        assert_eq!(rec.db, served);
        assert_eq!(rec.db.get(b"n", 0), Some(&Value::Str(b"6".to_vec())));
        assert_eq!(rec.db.get(b"m", 0), Some(&Value::Str(b"x".to_vec())));
        assert!(matches!(rec.db.get(b"s", 0), Some(Value::Hash(_))));
    });
}
