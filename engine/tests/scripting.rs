//! Lua scripting end to end, against the binary:
//! - EVAL/EVALSHA/SCRIPT and FUNCTION/FCALL replies and errors as Redis 7
//!   words them;
//! - a script's writes are ONE logged record: they survive a restart, the
//!   log holds one record per writing script, and a kill -9 while scripts
//!   run leaves each script's writes whole or absent;
//! - writes made before a script's error are kept (and logged);
//! - SCRIPT KILL from another connection stops a looping script that has
//!   not written; one that has written is UNKILLABLE;
//! - redis-py's `Lock` (EVALSHA scripts) acquires, extends and releases.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{run_bin, Engine};

fn conn(e: &Engine) -> redis::Connection {
    let c = e.client().get_connection().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

fn err_text(e: redis::RedisError) -> String {
    let code = e.code().unwrap_or("").to_string();
    let detail = e.detail().unwrap_or("").to_string();
    format!("{code} {detail}")
}

/// `logged_records` from INFO persistence.
fn logged(c: &mut redis::Connection) -> u64 {
    let info: String = q(c, &["INFO", "persistence"]).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("logged_records:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn eval_evalsha_script_and_errors_as_redis_words_them() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(&dir.path().join("p"), &[]);
    let mut c = conn(&e);
    let v: String = q(&mut c, &["EVAL", "return 'hello'", "0"]).unwrap();
    assert_eq!(v, "hello");
    let v: Vec<String> = q(
        &mut c,
        &[
            "EVAL",
            "return {KEYS[1],KEYS[2],ARGV[1],ARGV[2]}",
            "2",
            "a",
            "b",
            "c",
            "d",
        ],
    )
    .unwrap();
    assert_eq!(v, ["a", "b", "c", "d"]);
    let v: i64 = q(&mut c, &["EVAL", "return 100.5", "0"]).unwrap();
    assert_eq!(v, 100);
    let v: Option<String> = q(&mut c, &["EVAL", "return false", "0"]).unwrap();
    assert_eq!(v, None);
    let v: Vec<i64> = q(&mut c, &["EVAL", "return {1,2,nil,4}", "0"]).unwrap();
    assert_eq!(v, [1, 2], "arrays stop at the first nil");
    let v: String = q(&mut c, &["EVAL", "return {ok='fine'}", "0"]).unwrap();
    assert_eq!(v, "fine");

    // the script cache
    let sha: String = q(&mut c, &["SCRIPT", "LOAD", "return 'loaded'"]).unwrap();
    assert_eq!(sha, "b534286061d4b9e4026607613b95c06c06015ae8");
    let v: String = q(&mut c, &["EVALSHA", &sha.to_uppercase(), "0"]).unwrap();
    assert_eq!(v, "loaded");
    let v: Vec<i64> = q(&mut c, &["SCRIPT", "EXISTS", &sha, "ffff"]).unwrap();
    assert_eq!(v, [1, 0]);
    let _: () = q(&mut c, &["SCRIPT", "FLUSH"]).unwrap();
    let e1 = q::<String>(&mut c, &["EVALSHA", &sha, "0"]).unwrap_err();
    assert_eq!(
        err_text(e1),
        "NOSCRIPT No matching script. Please use EVAL."
    );

    // errors, byte for byte as redis-server 7.0 words them
    let _: () = q(&mut c, &["SET", "s", "abc"]).unwrap();
    let e1 = q::<i64>(&mut c, &["EVAL", "return redis.call('incr','s')", "0"]).unwrap_err();
    assert_eq!(
        err_text(e1),
        "ERR value is not an integer or out of range script: c243b9f46db13ba8f69da41b45a77708832babed, on @user_script:1."
    );
    let e1 = q::<i64>(&mut c, &["EVAL", "return a", "0"]).unwrap_err();
    assert_eq!(
        err_text(e1),
        "ERR user_script:1: Script attempted to access nonexistent global variable 'a' script: bbfcd1ececc90deec823f7fb730e4bfb2a4ba625, on @user_script:1."
    );
    let e1 = q::<i64>(&mut c, &["EVAL", "a=1", "0"]).unwrap_err();
    assert!(err_text(e1).contains("Attempt to modify a readonly table"));
    let e1 = q::<i64>(&mut c, &["EVAL", "syntax error here", "0"]).unwrap_err();
    assert_eq!(
        err_text(e1),
        "ERR Error compiling script (new function): user_script:1: '=' expected near 'error'"
    );
    let e1 = q::<i64>(&mut c, &["EVAL", "return 1", "-1"]).unwrap_err();
    assert_eq!(err_text(e1), "ERR Number of keys can't be negative");
    let e1 = q::<i64>(&mut c, &["EVAL_RO", "return redis.call('set','x',1)", "0"]).unwrap_err();
    assert!(err_text(e1).starts_with("ERR Write commands are not allowed from read-only scripts."));

    // pcall returns the error as a table; the script goes on
    let v: Vec<String> = q(
        &mut c,
        &[
            "EVAL",
            "local r = redis.pcall('incr','s'); return {type(r), r['err']}",
            "0",
        ],
    )
    .unwrap();
    assert_eq!(v, ["table", "ERR value is not an integer or out of range"]);

    // a Lua table from a Redis reply and back
    let _: () = q(&mut c, &["RPUSH", "l", "a", "b", "c"]).unwrap();
    let v: Vec<String> = q(
        &mut c,
        &["EVAL", "return redis.call('lrange',KEYS[1],0,-1)", "1", "l"],
    )
    .unwrap();
    assert_eq!(v, ["a", "b", "c"]);
    let v: String = q(
        &mut c,
        &["EVAL", "return redis.sha1hex('Pizza & Mandolino')", "0"],
    )
    .unwrap();
    assert_eq!(v, "74822d82031af7493c20eefa13bd07ec4fada82f");
    let v: String = q(&mut c, &["EVAL", "return cjson.encode({1,2,'x'})", "0"]).unwrap();
    assert_eq!(v, "[1,2,\"x\"]");

    // functions
    let lib = "#!lua name=mylib\nredis.register_function('incr_by_two', function(keys, args) redis.call('incr', keys[1]); return redis.call('incr', keys[1]) end)";
    let v: String = q(&mut c, &["FUNCTION", "LOAD", lib]).unwrap();
    assert_eq!(v, "mylib");
    let e1 = q::<String>(&mut c, &["FUNCTION", "LOAD", lib]).unwrap_err();
    assert_eq!(err_text(e1), "ERR Library 'mylib' already exists");
    let v: i64 = q(&mut c, &["FCALL", "incr_by_two", "1", "n"]).unwrap();
    assert_eq!(v, 2);
    let e1 = q::<i64>(&mut c, &["FCALL_RO", "incr_by_two", "1", "n"]).unwrap_err();
    assert_eq!(
        err_text(e1),
        "ERR Can not execute a script with write flag using *_ro command."
    );
    let _: () = q(&mut c, &["FUNCTION", "DELETE", "mylib"]).unwrap();
    let e1 = q::<i64>(&mut c, &["FCALL", "incr_by_two", "1", "n"]).unwrap_err();
    assert_eq!(err_text(e1), "ERR Function not found");
}

#[test]
fn a_scripts_writes_are_one_record_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p");
    let e = Engine::start(&data, &[]);
    let mut c = conn(&e);
    let before = logged(&mut c);
    let v: i64 = q(
        &mut c,
        &[
            "EVAL",
            "redis.call('set', KEYS[1], ARGV[1]); redis.call('hset', KEYS[2], 'f', ARGV[1]); redis.call('rpush', KEYS[3], 'x', 'y'); return redis.call('incr', KEYS[4])",
            "4",
            "a",
            "h",
            "l",
            "n",
            "v1",
        ],
    )
    .unwrap();
    assert_eq!(v, 1);
    // a read-only script and a script whose only write fails log nothing
    let _: Option<String> = q(&mut c, &["EVAL", "return redis.call('get','a')", "0"]).unwrap();
    let _: redis::Value =
        q(&mut c, &["EVAL", "return redis.pcall('incr','a')", "0"]).unwrap_or(redis::Value::Nil);
    // writes made before an error are kept
    let e1 = q::<i64>(
        &mut c,
        &["EVAL", "redis.call('set','kept','1'); error('boom')", "0"],
    )
    .unwrap_err();
    assert!(
        err_text(e1).contains("boom"),
        "the script's error is returned"
    );
    let after = logged(&mut c);
    assert_eq!(after - before, 2, "one record per writing script");
    drop(c);
    assert!(e.terminate().success());

    let out = run_bin(&["dump", "--dir", data.to_str().unwrap()]);
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        dump.lines()
            .any(|l| l.contains("MULTI; SET") && l.contains("INCRBY")),
        "the script is one transaction record: {dump}"
    );

    let e = Engine::start(&data, &[]);
    let mut c = conn(&e);
    let a: String = q(&mut c, &["GET", "a"]).unwrap();
    let h: String = q(&mut c, &["HGET", "h", "f"]).unwrap();
    let l: Vec<String> = q(&mut c, &["LRANGE", "l", "0", "-1"]).unwrap();
    let n: i64 = q(&mut c, &["GET", "n"]).unwrap();
    let kept: String = q(&mut c, &["GET", "kept"]).unwrap();
    assert_eq!(
        (a.as_str(), h.as_str(), n, kept.as_str()),
        ("v1", "v1", 1, "1")
    );
    assert_eq!(l, ["x", "y"]);
    // scripts and libraries are not persisted: clients load them again
    let e1 = q::<String>(
        &mut c,
        &["EVALSHA", "b534286061d4b9e4026607613b95c06c06015ae8", "0"],
    )
    .unwrap_err();
    assert!(err_text(e1).starts_with("NOSCRIPT"));
}

#[test]
fn kill9_during_scripts_keeps_each_whole_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p");
    let extra = ["--rotate-bytes", "65536"];
    let e = Engine::start(&data, &extra);
    let stop = Arc::new(AtomicBool::new(false));
    let script = "local i = redis.call('incr', KEYS[1]); redis.call('set', KEYS[2] .. i .. ':a', 'a'); redis.call('hset', KEYS[3], 'f' .. i, i); redis.call('set', KEYS[2] .. i .. ':b', string.rep('b', i % 300)); return i";
    let writers = 4;
    let mut threads = Vec::new();
    for w in 0..writers {
        let client = e.client();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut c = client.get_connection().unwrap();
            let mut acked = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let r: redis::RedisResult<i64> = redis::cmd("EVAL")
                    .arg(script)
                    .arg(3)
                    .arg(format!("count{w}"))
                    .arg(format!("w{w}:"))
                    .arg(format!("w{w}:h"))
                    .query(&mut c);
                match r {
                    Ok(i) => acked = i,
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    e.kill9();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<i64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        acked.iter().sum::<i64>() > 20,
        "load too small to mean anything: {acked:?}"
    );
    let e = Engine::start(&data, &extra);
    let mut c = conn(&e);
    for (w, &n) in acked.iter().enumerate() {
        let count: Option<i64> = q(&mut c, &["GET", &format!("count{w}")]).unwrap();
        let count = count.unwrap_or(0);
        assert!(
            count == n || count == n + 1,
            "w{w}: {n} acknowledged, {count} recovered"
        );
        let fields: i64 = q(&mut c, &["HLEN", &format!("w{w}:h")]).unwrap();
        assert_eq!(
            fields, count,
            "w{w}: the HSETs of exactly the recovered scripts"
        );
        for i in 1..=count + 1 {
            let a: Option<String> = q(&mut c, &["GET", &format!("w{w}:{i}:a")]).unwrap();
            let b: Option<String> = q(&mut c, &["GET", &format!("w{w}:{i}:b")]).unwrap();
            assert_eq!(a.is_some(), i <= count, "w{w}:{i}:a");
            assert_eq!(b.is_some(), i <= count, "w{w}:{i}:b");
        }
    }
}

#[test]
fn script_kill_from_another_connection_stops_a_looping_script() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(&dir.path().join("p"), &[]);
    let mut c = conn(&e);
    let _: () = q(&mut c, &["CONFIG", "SET", "lua-time-limit", "50"]).unwrap();
    let e1 = q::<String>(&mut c, &["SCRIPT", "KILL"]).unwrap_err();
    assert_eq!(err_text(e1), "NOTBUSY No scripts in execution right now.");

    // a read-only loop: killed
    let client = e.client();
    let looping = std::thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        q::<String>(&mut c, &["EVAL", "while true do end", "0"]).unwrap_err()
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Err(e) = q::<String>(&mut c, &["PING"]) {
            if err_text(e).starts_with("BUSY") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no BUSY while the script loops");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _: () = q(&mut c, &["SCRIPT", "KILL"]).unwrap();
    let err = err_text(looping.join().unwrap());
    assert!(
        err.contains("Script killed by user with SCRIPT KILL"),
        "{err}"
    );
    let pong: String = q(&mut c, &["PING"]).unwrap();
    assert_eq!(pong, "PONG");

    // a loop that wrote: unkillable (the client stops it by closing)
    let client = e.client();
    let looping = std::thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        q::<String>(
            &mut c,
            &["EVAL", "redis.call('set','x','y'); while true do end", "0"],
        )
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Err(e) = q::<String>(&mut c, &["PING"]) {
            if err_text(e).starts_with("BUSY") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no BUSY while the script loops");
        std::thread::sleep(Duration::from_millis(20));
    }
    let e1 = q::<String>(&mut c, &["SCRIPT", "KILL"]).unwrap_err();
    assert!(err_text(e1).starts_with("UNKILLABLE"));
    // it never ends by itself: the BUSY state holds until the engine is
    // killed
    let e1 = q::<String>(&mut c, &["GET", "x"]).unwrap_err();
    assert!(err_text(e1).starts_with("BUSY"));
    drop(looping);
    e.kill9();
}

#[test]
fn redis_py_lock_acquires_extends_and_releases() {
    let py = std::env::var("TIERED_TEST_PYTHON")
        .unwrap_or_else(|_| "/opt/tiered/test-venv/bin/python".to_string());
    assert!(
        std::path::Path::new(&py).exists(),
        "{py} missing: run scripts/test-deps.sh (it makes the venv with redis-py)"
    );
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(&dir.path().join("p"), &[]);
    let prog = r#"
import sys, time, redis
r = redis.Redis(port=int(sys.argv[1]))
lock = r.lock("resource", timeout=5)
assert lock.acquire(blocking=False)
assert r.get("resource") is not None
other = r.lock("resource", timeout=5)
assert not other.acquire(blocking=False), "a held lock is not acquired twice"
assert lock.extend(10)
assert r.pttl("resource") > 5000
assert lock.reacquire()
assert lock.owned()
lock.release()
assert r.get("resource") is None
assert other.acquire(blocking=False)
other.release()
r.script_flush()
with r.lock("again", timeout=2):
    assert r.exists("again")
print("ok")
"#;
    let out = Command::new("timeout")
        .arg("60")
        .arg(&py)
        .arg("-c")
        .arg(prog)
        .arg(e.port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "redis-py Lock: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
