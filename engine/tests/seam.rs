//! The whole engine on the fault-injecting file seam (`Config::fs`): a
//! failed write or fdatasync of the command log poisons it (the failed
//! command is never applied or acknowledged, the engine stops with the
//! errno), a full volume is told by its errno, and start-up stops on a
//! failing directory fsync. No global failpoints: these run in parallel.

use std::net::SocketAddr;
use std::time::Duration;

use tiered_engine::db::Value;
use tiered_engine::recovery::{recover, RecoveryMode};
use tiered_engine::segment::SegmentError;
use tiered_engine::sys::{real, Fault, FaultFs, Op, Rule};
use tiered_engine::writer::WriterError;
use tiered_engine::{Config, EngineError};
use tokio_util::sync::CancellationToken;

fn config(dir: &std::path::Path, fault: &FaultFs) -> Config {
    let mut cfg = Config::new(dir, "127.0.0.1:0".parse::<SocketAddr>().unwrap());
    cfg.reserve_bytes = 1 << 20;
    cfg.rotate_bytes = 1 << 20;
    cfg.fs = fault.handle();
    cfg
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn set(
    con: &mut redis::aio::MultiplexedConnection,
    k: &str,
    v: &str,
) -> redis::RedisResult<String> {
    redis::cmd("SET").arg(k).arg(v).query_async(con).await
}

/// `SET ok 1` succeeds, then `rule` is armed and `SET bad 2` fails; returns
/// why the engine stopped and what recovery on the real file system finds
/// afterwards (always `ok`).
fn poisoned_by(rule: Rule) -> (WriterError, tiered_engine::recovery::Recovered) {
    let dir = tempfile::tempdir().unwrap();
    let fault = FaultFs::new(real());
    let stopped = rt().block_on(async {
        let running = tiered_engine::start(config(dir.path(), &fault), CancellationToken::new())
            .await
            .unwrap();
        let client = redis::Client::open(format!("redis://{}/", running.addr)).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        assert_eq!(set(&mut con, "ok", "1").await.unwrap(), "OK");
        fault.add_rule(rule);
        set(&mut con, "bad", "2").await.unwrap_err();
        // The failed write ran against the state (execute-then-log) but is
        // never shown: no connection reads it back.
        // (or the poisoned engine has already closed its listener)
        if let Ok(mut other) = client.get_multiplexed_async_connection().await {
            let got: redis::RedisResult<Option<String>> =
                redis::cmd("GET").arg("bad").query_async(&mut other).await;
            assert!(!matches!(got, Ok(Some(_))), "{got:?}");
        }
        assert!(!running.shared.metrics.is_healthy());
        tokio::time::timeout(Duration::from_secs(10), running.wait())
            .await
            .expect("a poisoned engine stops")
    });
    assert_eq!(fault.pending_rules(), 0);
    let recovered = recover(dir.path(), "archived", RecoveryMode::Strict).unwrap();
    assert_eq!(recovered.db.get(b"ok", 0), Some(&Value::Str(b"1".to_vec())));
    match stopped {
        Err(EngineError::Poisoned(e)) => (e, recovered),
        other => panic!("expected a poisoned stop, got {other:?}"),
    }
}

fn on_open_segment(op: Op, fault: Fault) -> Rule {
    Rule {
        op,
        name_suffix: Some(".open".into()),
        skip: 0,
        times: 1,
        fault,
    }
}

#[test]
fn a_failed_fdatasync_poisons_the_log_with_its_errno() {
    // the record reached the page cache: it may or may not be there after a
    // restart; it was never acknowledged, and recovery is consistent either way
    let (cause, _) = poisoned_by(on_open_segment(Op::Fdatasync, Fault::Errno(libc::EIO)));
    assert!(
        matches!(&cause, WriterError::Io { op: "fdatasync", source, .. } if source.raw_os_error() == Some(libc::EIO)),
        "{cause:?}"
    );
}

#[test]
fn a_full_volume_poisons_the_log_as_disk_full() {
    let (cause, recovered) = poisoned_by(on_open_segment(Op::Write, Fault::Errno(libc::ENOSPC)));
    assert!(cause.is_disk_full(), "{cause:?}");
    assert_eq!(recovered.db.get(b"bad", 0), None);
    assert_eq!(recovered.last_seq, 1);
}

#[test]
fn a_short_write_poisons_the_log_and_leaves_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let fault = FaultFs::new(real());
    rt().block_on(async {
        let running = tiered_engine::start(config(dir.path(), &fault), CancellationToken::new())
            .await
            .unwrap();
        let client = redis::Client::open(format!("redis://{}/", running.addr)).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        assert_eq!(set(&mut con, "ok", "1").await.unwrap(), "OK");
        fault.add_rule(on_open_segment(Op::Write, Fault::ShortWrite));
        fault.add_rule(on_open_segment(Op::Write, Fault::Errno(libc::EIO)));
        set(&mut con, "bad", &"x".repeat(1000)).await.unwrap_err();
        let stopped = tokio::time::timeout(Duration::from_secs(10), running.wait())
            .await
            .expect("a poisoned engine stops");
        assert!(
            matches!(
                &stopped,
                Err(EngineError::Poisoned(WriterError::Io { op: "write", .. }))
            ),
            "{stopped:?}"
        );
    });
    let recovered = recover(dir.path(), "archived", RecoveryMode::Strict).unwrap();
    assert_eq!(recovered.last_seq, 1);
    let cut = recovered.cut_tail.expect("half a record to cut");
    assert!(cut.cut_bytes > 0);
}

#[test]
fn start_up_stops_on_a_failing_directory_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let fault = FaultFs::new(real());
    fault.inject(Op::FsyncDir, Fault::Errno(libc::EIO));
    let r = rt().block_on(tiered_engine::start(
        config(dir.path(), &fault),
        CancellationToken::new(),
    ));
    match r {
        Err(EngineError::Segment(SegmentError::Io { op, source, .. })) => {
            assert_eq!((op, source.raw_os_error()), ("fsync dir", Some(libc::EIO)))
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("started on a failing fsync"),
    }
    // every file call of the start went through the seam
    let calls = fault.take_calls();
    assert!(calls.iter().any(|(op, _)| *op == Op::ReadDir));
    assert!(calls.iter().any(|(op, _)| *op == Op::Create));
}
