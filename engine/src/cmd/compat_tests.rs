//! Tests of the compat commands (bit commands, SORT, DUMP/RESTORE, SAVE,
//! SHUTDOWN): payload bytes pinned, round trips, replay giving the served
//! replies, and the state-dependent branches without a server (the
//! differential test compares them with redis-server).

use super::Resolved;
use super::*;
use crate::db::Value;
use crate::record::Record;
use crate::reply::{STRING_TOO_LONG, WRONGTYPE};

fn a(v: &[&[u8]]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.to_vec()).collect()
}

struct NoServer(config::ConfigStore);

impl ServerInfo for NoServer {
    fn info(&self, _: &[String], _: &Db, _: u64) -> String {
        String::new()
    }
    fn config(&self) -> &config::ConfigStore {
        &self.0
    }
    fn reset_stats(&self) {}
    fn client_list(&self, _: Option<&[u64]>, _: u64, _: &str) -> String {
        String::new()
    }
    fn client_kill(&self, _: &ClientFilter, _: u64) -> usize {
        0
    }
}

/// What a request answers against `db` at `now`: a write is prechecked,
/// applied and its payload returned; a read is run.
fn exec(db: &mut Db, args: &[&[u8]], now: u64) -> (Reply, Option<Vec<u8>>) {
    match parse(a(args), now).1 {
        Action::Reply(r) => (r, None),
        Action::Write(w) => {
            if let Some(e) = w.precheck(db, now) {
                return (e, None);
            }
            let mut p = Vec::new();
            w.encode_into(&mut p);
            (w.apply_boxed(db, now), Some(p))
        }
        Action::Read(r) => {
            let mut conn = ConnState::new(1);
            let server = NoServer(config::ConfigStore::new(&[]));
            let mut ctx = ReadCtx {
                db,
                now_ms: now,
                conn: &mut conn,
                server: &server,
            };
            (r.read(&mut ctx), None)
        }
        _ => panic!("unexpected action"),
    }
}

fn run(db: &mut Db, args: &[&[u8]]) -> Reply {
    exec(db, args, 0).0
}

fn int(n: i64) -> Reply {
    Reply::Int(n)
}

fn err(s: &str) -> Reply {
    Reply::error(s)
}

#[test]
fn bit_commands_follow_redis() {
    let mut db = Db::new();
    assert_eq!(run(&mut db, &[b"setbit", b"k", b"7", b"1"]), int(0));
    assert_eq!(run(&mut db, &[b"setbit", b"k", b"7", b"0"]), int(1));
    assert_eq!(run(&mut db, &[b"setbit", b"k", b"9", b"1"]), int(0));
    assert_eq!(db.get(b"k", 0), Some(&Value::Str(vec![0, 0x40])));
    assert_eq!(run(&mut db, &[b"getbit", b"k", b"9"]), int(1));
    assert_eq!(run(&mut db, &[b"getbit", b"k", b"4294967295"]), int(0));
    let bad_offset = err("ERR bit offset is not an integer or out of range");
    assert_eq!(
        run(&mut db, &[b"setbit", b"k", b"4294967296", b"1"]),
        bad_offset
    );
    assert_eq!(run(&mut db, &[b"setbit", b"k", b"-1", b"1"]), bad_offset);
    let bad_bit = err("ERR bit is not an integer or out of range");
    assert_eq!(run(&mut db, &[b"setbit", b"k", b"1", b"2"]), bad_bit);
    // past the engine's longest string: refused like SETRANGE
    assert_eq!(
        run(&mut db, &[b"setbit", b"k", b"4294967295", b"1"]),
        err(STRING_TOO_LONG)
    );
    run(&mut db, &[b"rpush", b"l", b"a"]);
    assert_eq!(run(&mut db, &[b"setbit", b"l", b"1", b"1"]), err(WRONGTYPE));
    assert_eq!(run(&mut db, &[b"getbit", b"l", b"1"]), err(WRONGTYPE));
    assert_eq!(
        run(&mut db, &[b"bitcount", b"l", b"x", b"y"]),
        err(WRONGTYPE)
    );

    run(&mut db, &[b"set", b"s", b"foobar"]);
    assert_eq!(run(&mut db, &[b"bitcount", b"s"]), int(26));
    assert_eq!(run(&mut db, &[b"bitcount", b"s", b"1", b"1"]), int(6));
    assert_eq!(
        run(&mut db, &[b"bitcount", b"s", b"5", b"30", b"BIT"]),
        int(17)
    );
    assert_eq!(
        run(&mut db, &[b"bitcount", b"s", b"-1", b"-2", b"bogus"]),
        int(0)
    );
    assert_eq!(run(&mut db, &[b"bitcount", b"s", b"0"]), err(reply::SYNTAX));
    assert_eq!(run(&mut db, &[b"bitcount", b"nokey", b"0"]), int(0));
    assert_eq!(run(&mut db, &[b"bitpos", b"s", b"1"]), int(1));
    assert_eq!(
        run(&mut db, &[b"bitpos", b"s", b"0", b"7", b"15", b"bit"]),
        int(7)
    );
    assert_eq!(run(&mut db, &[b"bitpos", b"nokey", b"0", b"x"]), int(0));
    assert_eq!(
        run(&mut db, &[b"bitpos", b"s", b"2"]),
        err("ERR The bit argument must be 1 or 0.")
    );
    run(&mut db, &[b"set", b"ff", b"\xff\xff"]);
    assert_eq!(run(&mut db, &[b"bitpos", b"ff", b"0"]), int(16));
    assert_eq!(
        run(&mut db, &[b"bitpos", b"ff", b"0", b"0", b"-1"]),
        int(-1)
    );

    assert_eq!(run(&mut db, &[b"bitop", b"and", b"d", b"s", b"ff"]), int(6));
    assert_eq!(db.get(b"d", 0), Some(&Value::Str(b"fo\0\0\0\0".to_vec())));
    assert_eq!(run(&mut db, &[b"bitop", b"not", b"d", b"ff"]), int(2));
    assert_eq!(db.get(b"d", 0), Some(&Value::Str(vec![0, 0])));
    assert_eq!(run(&mut db, &[b"bitop", b"or", b"d", b"nokey"]), int(0));
    assert_eq!(db.get(b"d", 0), None, "an empty result deletes the key");
    assert_eq!(
        run(&mut db, &[b"bitop", b"not", b"d", b"s", b"ff"]),
        err("ERR BITOP NOT must be called with a single source key.")
    );
    assert_eq!(
        run(&mut db, &[b"bitop", b"xor", b"d", b"s", b"l"]),
        err(WRONGTYPE)
    );

    let r = run(
        &mut db,
        &[
            b"bitfield",
            b"bf",
            b"set",
            b"i8",
            b"0",
            b"100",
            b"incrby",
            b"i8",
            b"0",
            b"100",
        ],
    );
    assert_eq!(r, Reply::Array(vec![int(0), int(-56)]));
    let r = run(
        &mut db,
        &[
            b"bitfield",
            b"bf",
            b"overflow",
            b"fail",
            b"incrby",
            b"i8",
            b"0",
            b"-100",
            b"get",
            b"u8",
            b"#0",
        ],
    );
    assert_eq!(r, Reply::Array(vec![Reply::Nil, int(200)]));
    // GETs only: a read, the key is not created
    let r = run(&mut db, &[b"bitfield", b"new", b"get", b"u4", b"0"]);
    assert_eq!((r, db.get(b"new", 0)), (Reply::Array(vec![int(0)]), None));
    assert_eq!(
        run(&mut db, &[b"bitfield_ro", b"bf", b"set", b"u8", b"0", b"1"]),
        err("ERR BITFIELD_RO only supports the GET subcommand")
    );
    assert_eq!(
        run(&mut db, &[b"bitfield", b"bf", b"get", b"u64", b"0"]),
        err("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.")
    );
}

#[test]
fn sort_follows_redis() {
    let mut db = Db::new();
    run(&mut db, &[b"rpush", b"l", b"3", b"1", b"2", b"10"]);
    let bulks = |v: &[&str]| {
        Reply::Array(
            v.iter()
                .map(|s| Reply::Bulk(s.as_bytes().to_vec()))
                .collect(),
        )
    };
    assert_eq!(
        run(&mut db, &[b"sort", b"l"]),
        bulks(&["1", "2", "3", "10"])
    );
    assert_eq!(
        run(&mut db, &[b"sort", b"l", b"alpha", b"desc"]),
        bulks(&["3", "2", "10", "1"])
    );
    assert_eq!(
        run(&mut db, &[b"sort", b"l", b"limit", b"1", b"2"]),
        bulks(&["2", "3"])
    );
    assert_eq!(
        run(&mut db, &[b"sort", b"l", b"by", b"nosort", b"desc"]),
        bulks(&["10", "2", "1", "3"])
    );
    run(&mut db, &[b"mset", b"w_3", b"0", b"w_1", b"9"]);
    run(&mut db, &[b"hset", b"h_2", b"f", b"x"]);
    // missing weights are 0, ties by the element
    assert_eq!(
        run(&mut db, &[b"sort", b"l", b"by", b"w_*"]),
        bulks(&["10", "2", "3", "1"])
    );
    // a BY without `*` keeps the list's order even if a later BY has one
    assert_eq!(
        run(&mut db, &[b"sort", b"l", b"by", b"nosort", b"by", b"w_*"]),
        bulks(&["3", "1", "2", "10"])
    );
    let r = run(&mut db, &[b"sort", b"l", b"get", b"#", b"get", b"h_*->f"]);
    assert_eq!(
        r,
        Reply::Array(vec![
            Reply::Bulk(b"1".to_vec()),
            Reply::Nil,
            Reply::Bulk(b"2".to_vec()),
            Reply::Bulk(b"x".to_vec()),
            Reply::Bulk(b"3".to_vec()),
            Reply::Nil,
            Reply::Bulk(b"10".to_vec()),
            Reply::Nil,
        ])
    );
    assert_eq!(run(&mut db, &[b"sort", b"l", b"store", b"dst"]), int(4));
    assert_eq!(
        run(&mut db, &[b"lrange", b"dst", b"0", b"-1"]),
        bulks(&["1", "2", "3", "10"])
    );
    assert_eq!(run(&mut db, &[b"sort", b"nokey", b"store", b"dst"]), int(0));
    assert_eq!(db.get(b"dst", 0), None);
    run(&mut db, &[b"rpush", b"bad", b"a"]);
    assert_eq!(
        run(&mut db, &[b"sort", b"bad"]),
        err("ERR One or more scores can't be converted into double")
    );
    assert_eq!(run(&mut db, &[b"sort", b"w_1"]), err(WRONGTYPE));
    assert_eq!(
        run(&mut db, &[b"sort_ro", b"l", b"store", b"x"]),
        err(reply::SYNTAX)
    );
}

#[test]
fn dump_restore_and_its_errors_follow_redis() {
    let mut db = Db::new();
    run(&mut db, &[b"hset", b"h", b"a", b"1", b"b", b"two"]);
    let Reply::Bulk(p) = run(&mut db, &[b"dump", b"h"]) else {
        panic!("dump")
    };
    assert_eq!(run(&mut db, &[b"dump", b"nokey"]), Reply::Nil);
    assert_eq!(
        run(&mut db, &[b"restore", b"h", b"0", &p]),
        err(restore::BUSYKEY)
    );
    // BUSYKEY comes before TTL and payload errors, as in Redis
    assert_eq!(
        run(&mut db, &[b"restore", b"h", b"x", b"junk"]),
        err(restore::BUSYKEY)
    );
    assert_eq!(
        run(&mut db, &[b"restore", b"h2", b"-1", &p]),
        err("ERR Invalid TTL value, must be >= 0")
    );
    assert_eq!(
        run(&mut db, &[b"restore", b"h2", b"0", b"junk and more"]),
        err("ERR DUMP payload version or checksum are wrong")
    );
    assert_eq!(
        run(&mut db, &[b"restore", b"h2", b"0", &p, b"bogus"]),
        err(reply::SYNTAX)
    );
    let (r, logged) = exec(&mut db, &[b"restore", b"h2", b"5000", &p], 1_000);
    assert_eq!(r, Reply::Ok);
    assert_eq!(db.entry(b"h2", 1_000).unwrap().expire_at_ms(), Some(6_000));
    assert_eq!(db.get(b"h2", 1_000), db.get(b"h", 1_000));
    // replayed, the logged payload gives the same state and reply
    let mut other = Db::new();
    let rec = Record {
        seq: 1,
        timestamp_ms: 1_000,
        payload: logged.unwrap(),
    };
    assert_eq!(other.apply_record(&rec).unwrap(), Reply::Ok);
    assert_eq!(other.get(b"h2", 1_000), db.get(b"h2", 1_000));
    // an expiry already past stores nothing (REPLACE deletes)
    let (r, _) = exec(
        &mut db,
        &[b"restore", b"h2", b"10", &p, b"replace", b"absttl"],
        1_000,
    );
    assert_eq!((r, db.get(b"h2", 1_000)), (Reply::Ok, None));
}

#[test]
fn save_and_shutdown_are_refused_in_multi_only() {
    for name in ["save", "shutdown"] {
        let s = lookup(name.as_bytes()).unwrap();
        assert!(s.flags.contains(Flags::NO_MULTI) && !s.flags.contains(Flags::WRITE));
    }
    let mut db = Db::new();
    assert_eq!(run(&mut db, &[b"save"]), Reply::Ok);
    // NoServer cannot be stopped
    assert_eq!(
        run(&mut db, &[b"shutdown", b"nosave"]),
        err("ERR Errors trying to SHUTDOWN. Check logs.")
    );
    assert_eq!(
        run(&mut db, &[b"shutdown", b"abort"]),
        err("ERR No shutdown in progress.")
    );
    assert_eq!(
        run(&mut db, &[b"shutdown", b"save", b"nosave"]),
        err(reply::SYNTAX)
    );
}

/// Every compat effect: payload bytes pinned (old logs keep loading),
/// canonical round trip, truncation refused, replay gives the served
/// replies.
#[test]
fn compat_payloads_are_pinned_and_replay_like_live() {
    let reqs: Vec<Vec<&[u8]>> = vec![
        vec![b"setbit", b"k", b"9", b"1"],
        vec![b"bitop", b"or", b"d", b"k", b"nokey"],
        vec![
            b"bitfield",
            b"k",
            b"overflow",
            b"sat",
            b"incrby",
            b"u4",
            b"#1",
            b"99",
            b"get",
            b"i8",
            b"0",
        ],
        vec![b"rpush", b"l", b"b", b"a"],
        vec![
            b"sort", b"l", b"alpha", b"limit", b"0", b"1", b"get", b"#", b"store", b"s",
        ],
        vec![
            b"restore",
            b"r",
            b"0",
            b"\x00\xc0\x0c\x0a\x00\x3c\x2a\xf8\x51\x5c\x04\xbc\xd5",
        ],
    ];
    let golden: Vec<Vec<u8>> = vec![
        [&[60u8, 1, 0, 0, 0, b'k'][..], &9u64.to_le_bytes(), &[1]].concat(),
        [
            &[61u8, 1, 1, 0, 0, 0, b'd', 2, 0, 0, 0][..],
            &[1, 0, 0, 0, b'k'],
            &[5, 0, 0, 0],
            b"nokey",
        ]
        .concat(),
        [
            &[62u8, 1, 0, 0, 0, b'k', 2, 0, 0, 0][..],
            &[2, 4, 1],
            &4u64.to_le_bytes(),
            &99i64.to_le_bytes(),
            &[0, 0x88, 1],
            &0u64.to_le_bytes(),
            &0i64.to_le_bytes(),
        ]
        .concat(),
        Vec::new(),
        [
            &[63u8, 1, 0, 0, 0, b'l', 1, 0, 0, 0, b's', 2, 0, 0, 0, 0][..],
            &0i64.to_le_bytes(),
            &1i64.to_le_bytes(),
            &[1, 0, 0, 0, 1, 0, 0, 0, b'#'],
        ]
        .concat(),
        [
            &[64u8, 1, 0, 0, 0, b'r', 0][..],
            &0u64.to_le_bytes(),
            &[13, 0, 0, 0],
            b"\x00\xc0\x0c\x0a\x00\x3c\x2a\xf8\x51\x5c\x04\xbc\xd5",
        ]
        .concat(),
    ];
    let mut live = Db::new();
    let mut records = Vec::new();
    let mut replies = Vec::new();
    for (i, (req, gold)) in reqs.iter().zip(&golden).enumerate() {
        let ts = 1_000 + i as u64;
        let (reply, p) = exec(&mut live, req, ts);
        let p = p.expect("a logged write");
        if !gold.is_empty() {
            assert_eq!(&p, gold, "{:?}", String::from_utf8_lossy(req[0]));
            let w = decode_payload(&p).unwrap();
            let mut again = Vec::new();
            w.encode_into(&mut again);
            assert_eq!(again, p);
            assert!(!describe_payload(&p).unwrap().is_empty());
            for cut in 0..p.len() {
                assert!(decode_payload(&p[..cut]).is_err(), "cut {cut}");
            }
        }
        replies.push(reply);
        records.push(Record {
            seq: i as u64 + 1,
            timestamp_ms: ts,
            payload: p,
        });
    }
    let mut replayed = Db::new();
    let again: Vec<Reply> = records
        .iter()
        .map(|r| replayed.apply_record(r).unwrap())
        .collect();
    assert_eq!(again, replies);
    assert_eq!(replayed, live);
    assert_eq!(replies[2], Reply::Array(vec![int(15), int(15)]));
}

/// INCRBYFLOAT and HINCRBYFLOAT log the value they store (resolved against
/// the state, as Redis propagates SET/HSET); increments logged by older
/// versions still replay.
#[test]
fn float_increments_log_the_stored_value() {
    let mut db = Db::new();
    run(&mut db, &[b"set", b"f", b"10.5", b"px", b"9000"]);
    let Action::Write(w) = parse(a(&[b"incrbyfloat", b"f", b"0.1"]), 0).1 else {
        panic!("a write")
    };
    assert!(w.precheck(&db, 0).is_none());
    let Resolved::Write(w) = w.resolve(&db, 0) else {
        panic!("resolves to a write")
    };
    let mut p = Vec::new();
    w.encode_into(&mut p);
    assert_eq!(
        p,
        [&[65u8, 1, 0, 0, 0, b'f', 4, 0, 0, 0][..], b"10.6"].concat()
    );
    let before = db.clone();
    assert_eq!(w.apply_boxed(&mut db, 0), Reply::Bulk(b"10.6".to_vec()));
    assert_eq!(db.entry(b"f", 0).unwrap().expire_at_ms(), Some(9000));
    // the increment (op 22, older logs) replays to the same state
    let mut old = before.clone();
    let legacy = [&[22u8, 1, 0, 0, 0, b'f', 3, 0, 0, 0][..], b"0.1"].concat();
    assert_eq!(
        apply_payload(&mut old, &legacy, 0).unwrap(),
        Reply::Bulk(b"10.6".to_vec())
    );
    assert_eq!(old, db);
    let mut replayed = before;
    assert_eq!(
        apply_payload(&mut replayed, &p, 0).unwrap(),
        Reply::Bulk(b"10.6".to_vec())
    );
    assert_eq!(replayed, db);

    let Action::Write(w) = parse(a(&[b"hincrbyfloat", b"h", b"x", b"1.25"]), 0).1 else {
        panic!("a write")
    };
    let Resolved::Write(w) = w.resolve(&db, 0) else {
        panic!("resolves to a write")
    };
    let mut p = Vec::new();
    w.encode_into(&mut p);
    assert_eq!(p[0], 66);
    assert!(describe_payload(&p).unwrap().contains("\"1.25\""));
    let mut replayed = db.clone();
    assert_eq!(w.apply_boxed(&mut db, 0), Reply::Bulk(b"1.25".to_vec()));
    apply_payload(&mut replayed, &p, 0).unwrap();
    assert_eq!(replayed, db);
    // a transaction's size check allows for the longest value
    let Action::Write(w) = parse(a(&[b"incrbyfloat", b"f", b"1"]), 0).1 else {
        panic!("a write")
    };
    assert_eq!(w.resolve_growth(), 5 * 1024);
}
