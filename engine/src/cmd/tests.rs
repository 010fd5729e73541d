//! Tests of the command layer as a whole: the table, the dispatcher, the
//! payload registry, byte compatibility of logged payloads, and the
//! semantics of applying effects (live and replayed alike).

use super::*;
use crate::db::{Value, MAX_STRING_BYTES};
use crate::reply::{HASH_NOT_INTEGER, NOT_INTEGER, OVERFLOW, STRING_TOO_LONG, WRONGTYPE};

// per family, in tests/<family>.rs
mod sets;

fn a(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn reply_of(action: Action) -> Reply {
    match action {
        Action::Reply(r) => r,
        _ => panic!("expected an immediate reply"),
    }
}

fn write_of(action: Action) -> Box<dyn Write> {
    match action {
        Action::Write(w) => w,
        _ => panic!("expected a write"),
    }
}

/// The payload a client request is logged as.
fn logged(args: &[&str], now_ms: u64) -> Vec<u8> {
    let mut out = Vec::new();
    write_of(parse(a(args), now_ms).1).encode_into(&mut out);
    out
}

fn apply<E: Effect>(db: &mut Db, e: E, now_ms: u64) -> Reply {
    e.apply(db, now_ms)
}

fn setx(
    k: &str,
    v: &str,
    exp: Option<u64>,
    keep_ttl: bool,
    condition: SetCondition,
    get: bool,
) -> Set {
    Set {
        key: b(k),
        value: b(v),
        expire_at_ms: exp,
        keep_ttl,
        condition,
        get,
    }
}

fn all_effects() -> Vec<Box<dyn Write>> {
    vec![
        Box::new(Set::new("a", "1")),
        Box::new(setx("t", "x", Some(5_000), false, SetCondition::Nx, true)),
        Box::new(setx("a", "2", None, true, SetCondition::Xx, false)),
        Box::new(GetDel { key: b("t") }),
        Box::new(MSet {
            pairs: vec![(b("m1"), b("v1")), (b("m2"), b(""))],
        }),
        Box::new(Del {
            keys: vec![b("m1"), b("nope")],
        }),
        Box::new(IncrBy {
            key: b("n"),
            delta: -7,
        }),
        Box::new(Append {
            key: b("a"),
            value: b("zz"),
        }),
        Box::new(PExpireAt {
            key: b("m2"),
            at_ms: 9_000,
        }),
        Box::new(Persist { key: b("m2") }),
        Box::new(HSet {
            key: b("h"),
            pairs: vec![(b("f"), b("1")), (b("g"), b("2"))],
        }),
        Box::new(HDel {
            key: b("h"),
            fields: vec![b("g")],
        }),
        Box::new(HIncrBy {
            key: b("h"),
            field: b("f"),
            delta: i64::MIN,
        }),
        Box::new(Push {
            key: b("l"),
            head: false,
            only_existing: false,
            elements: vec![b("a"), b("b"), b("c"), b("b")],
        }),
        Box::new(Push {
            key: b("l"),
            head: true,
            only_existing: true,
            elements: vec![b("z")],
        }),
        Box::new(LSet {
            key: b("l"),
            index: -1,
            element: b("e"),
        }),
        Box::new(LInsert {
            key: b("l"),
            after: true,
            pivot: b("a"),
            element: b("b"),
        }),
        Box::new(LRem {
            key: b("l"),
            count: -1,
            element: b("b"),
        }),
        Box::new(LMove {
            source: b("l"),
            destination: b("l2"),
            from_head: true,
            to_head: false,
        }),
        Box::new(Pop {
            key: b("l"),
            head: false,
            count: Some(2),
        }),
        Box::new(LTrim {
            key: b("l"),
            start: 0,
            stop: 0,
        }),
        Box::new(LMPop {
            keys: vec![b("nope"), b("l2"), b("l")],
            head: true,
            count: 5,
        }),
        Box::new(setnx::SetNx {
            key: b("sn"),
            value: b("1"),
        }),
        Box::new(getex::GetEx {
            key: b("sn"),
            at_ms: Some(90_000),
        }),
        Box::new(getex::GetEx {
            key: b("sn"),
            at_ms: None,
        }),
        Box::new(setrange::SetRange {
            key: b("sr"),
            offset: 3,
            value: b("xy"),
        }),
        Box::new(msetnx::MSetNx {
            pairs: vec![(b("x1"), b("1")), (b("sn"), b("2"))],
        }),
        Box::new(expire::PExpireAtIf {
            key: b("sr"),
            at_ms: 80_000,
            cond: 1,
        }),
        Box::new(expire::PExpireAtIf {
            key: b("sr"),
            at_ms: 70_000,
            cond: 2 | 8,
        }),
        Box::new(rename::Rename {
            key: b("sr"),
            new_key: b("sr2"),
            nx: false,
        }),
        Box::new(rename::Rename {
            key: b("sr2"),
            new_key: b("sn"),
            nx: true,
        }),
        Box::new(copy::Copy {
            source: b("sr2"),
            destination: b("sn"),
            replace: true,
        }),
        Box::new(hsetnx::HSetNx {
            key: b("h"),
            field: b("n"),
            value: b("1.5"),
        }),
        Box::new(hmset::HMSet(HSet {
            key: b("h2"),
            pairs: vec![(b("a"), b("1"))],
        })),
        Box::new(incrbyfloat::IncrByFloat {
            key: b("fl"),
            increment: b("10.5"),
        }),
        Box::new(incrbyfloat::IncrByFloat {
            key: b("fl"),
            increment: b("0.1"),
        }),
        Box::new(hincrbyfloat::HIncrByFloat {
            key: b("h"),
            field: b("n"),
            increment: b("-0.25"),
        }),
        Box::new(FlushAll),
    ]
}

fn payload(w: &dyn Write) -> Vec<u8> {
    let mut out = Vec::new();
    w.encode_into(&mut out);
    out
}

// ---------------------------------------------------------------- table

#[test]
fn the_table_is_consistent() {
    // names unique and lower case, effects' ops unique (panics otherwise)
    assert!(lookup(b"SeT").is_some());
    assert!(lookup(b"nosuch").is_none());
    assert!(lookup(&[b'a'; 100]).is_none());
    let ops: std::collections::BTreeSet<u8> = TABLE
        .iter()
        .filter_map(|s| s.effect.map(|e| e.op))
        .collect();
    for op in &ops {
        assert!(effects()[*op as usize].is_some());
    }
    for s in TABLE.iter().filter(|s| s.name != "exec") {
        assert_eq!(
            s.effect.is_some(),
            s.flags.contains(Flags::WRITE),
            "{}: a write command logs an effect, nothing else does",
            s.name
        );
    }
    // EXEC logs the writes it runs as one transaction record
    let exec = lookup(b"exec").unwrap();
    assert!(!exec.flags.contains(Flags::WRITE));
    assert_eq!(exec.effect.map(|e| e.op), Some(128));
    assert_eq!(command_names().count(), TABLE.len());
}

#[test]
fn key_positions() {
    let keys = |name: &str, args: &[&str]| -> Vec<String> {
        let args = a(args);
        lookup(name.as_bytes())
            .unwrap()
            .keys
            .of(&args)
            .map(|k| String::from_utf8(k.to_vec()).unwrap())
            .collect()
    };
    assert_eq!(keys("set", &["set", "k", "v", "EX", "1"]), ["k"]);
    assert_eq!(keys("mset", &["mset", "a", "1", "b", "2"]), ["a", "b"]);
    assert_eq!(keys("del", &["del", "a", "b", "c"]), ["a", "b", "c"]);
    assert!(keys("ping", &["ping"]).is_empty());
    assert!(keys("get", &["get"]).is_empty(), "short input: no panic");
}

#[test]
fn arity_unknown_and_case() {
    let (name, act) = parse(a(&["get"]), 0);
    assert_eq!(name, "get");
    assert_eq!(
        reply_of(act),
        Reply::Error("ERR wrong number of arguments for 'get' command".into())
    );
    let (name, act) = parse(a(&["nosuch", "x"]), 0);
    assert_eq!(name, "unknown");
    assert!(
        matches!(reply_of(act), Reply::Error(e) if e.starts_with("ERR unknown command 'nosuch'"))
    );
    assert!(matches!(parse(a(&["GeT", "k"]), 0).1, Action::Read(_)));
    assert!(matches!(
        parse(a(&["SET", "k", "v"]), 0).1,
        Action::Write(_)
    ));
    assert!(matches!(
        parse(a(&["ping"]), 0).1,
        Action::Reply(Reply::Status(_))
    ));
    assert!(matches!(parse(vec![], 0).1, Action::Reply(Reply::Error(_))));
}

#[test]
fn validation_failures_are_replies_not_writes() {
    for bad in [
        &["set", "k", "v", "EX", "0"][..],
        &["set", "k", "v", "EX", "abc"],
        &["set", "k", "v", "NX", "XX"],
        &["set", "k", "v", "EX", "1", "PX", "1"],
        &["set", "k", "v", "EX", "9223372036854775807"],
        &["set", "k", "v", "bogus"],
        &["incrby", "k", "1.5"],
        &["decrby", "k", "-9223372036854775808"],
        &["mset", "a", "1", "b"],
        &["hset", "h", "f"],
        &["hincrby", "h", "f", "x"],
        &["expire", "k", "x"],
        &["expire", "k", "9223372036854775807"],
        &["select", "1"],
    ] {
        let (_, act) = parse(a(bad), 1_000);
        assert!(matches!(act, Action::Reply(Reply::Error(_))), "{bad:?}");
    }
}

#[test]
fn expiry_is_logged_as_absolute_time() {
    assert_eq!(
        Set::decode(&logged(&["set", "k", "v", "ex", "10"], 5_000))
            .unwrap()
            .expire_at_ms,
        Some(15_000)
    );
    assert_eq!(
        PExpireAt::decode(&logged(&["pexpire", "k", "250"], 5_000)).unwrap(),
        PExpireAt {
            key: b("k"),
            at_ms: 5_250
        }
    );
    assert_eq!(
        PExpireAt::decode(&logged(&["expire", "k", "-1"], 5_000))
            .unwrap()
            .at_ms,
        4_000
    );
    assert_eq!(
        IncrBy::decode(&logged(&["decr", "k"], 0)).unwrap().delta,
        -1
    );
}

// ---------------------------------------------------------------- payloads

/// The exact bytes of every existing payload: old logs must keep loading.
#[test]
fn payload_bytes_are_unchanged() {
    let cases: Vec<(&[&str], Vec<u8>)> = vec![
        (
            &["set", "k", "v"],
            [&[1u8, 0][..], &[1, 0, 0, 0, b'k'], &[1, 0, 0, 0, b'v']].concat(),
        ),
        (
            &["set", "k", "v", "PXAT", "258", "NX", "GET"],
            [
                &[1u8, 1 | 4 | 8][..],
                &258u64.to_le_bytes(),
                &[1, 0, 0, 0, b'k'],
                &[1, 0, 0, 0, b'v'],
            ]
            .concat(),
        ),
        (
            &["set", "k", "v", "XX", "KEEPTTL"],
            [&[1u8, 2 | 16][..], &[1, 0, 0, 0, b'k'], &[1, 0, 0, 0, b'v']].concat(),
        ),
        (&["getdel", "k"], vec![2, 1, 0, 0, 0, b'k']),
        (
            &["mset", "a", "1"],
            vec![3, 1, 0, 0, 0, 1, 0, 0, 0, b'a', 1, 0, 0, 0, b'1'],
        ),
        (
            &["del", "a", "b"],
            vec![4, 2, 0, 0, 0, 1, 0, 0, 0, b'a', 1, 0, 0, 0, b'b'],
        ),
        (
            &["incr", "k"],
            [&[5u8, 1, 0, 0, 0, b'k'][..], &1i64.to_le_bytes()].concat(),
        ),
        (
            &["decrby", "k", "3"],
            [&[5u8, 1, 0, 0, 0, b'k'][..], &(-3i64).to_le_bytes()].concat(),
        ),
        (
            &["append", "k", "v"],
            vec![6, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v'],
        ),
        (
            &["pexpire", "k", "5"],
            [&[7u8, 1, 0, 0, 0, b'k'][..], &105u64.to_le_bytes()].concat(),
        ),
        (&["persist", "k"], vec![8, 1, 0, 0, 0, b'k']),
        (
            &["hset", "h", "f", "v"],
            vec![
                9, 1, 0, 0, 0, b'h', 1, 0, 0, 0, 1, 0, 0, 0, b'f', 1, 0, 0, 0, b'v',
            ],
        ),
        (
            &["hdel", "h", "f"],
            vec![10, 1, 0, 0, 0, b'h', 1, 0, 0, 0, 1, 0, 0, 0, b'f'],
        ),
        (
            &["hincrby", "h", "f", "2"],
            [
                &[11u8, 1, 0, 0, 0, b'h', 1, 0, 0, 0, b'f'][..],
                &2i64.to_le_bytes(),
            ]
            .concat(),
        ),
        (&["flushall"], vec![12]),
        (&["flushdb"], vec![12]),
        (&["unlink", "a"], vec![4, 1, 0, 0, 0, 1, 0, 0, 0, b'a']),
        (
            &["setex", "k", "1", "v"],
            [
                &[1u8, 8][..],
                &1_100u64.to_le_bytes(),
                &[1, 0, 0, 0, b'k'],
                &[1, 0, 0, 0, b'v'],
            ]
            .concat(),
        ),
        (
            &["getset", "k", "v"],
            [&[1u8, 4][..], &[1, 0, 0, 0, b'k'], &[1, 0, 0, 0, b'v']].concat(),
        ),
        (
            &["setnx", "k", "v"],
            vec![13, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v'],
        ),
        (
            &["getex", "k", "pxat", "7"],
            [&[14u8, 1, 0, 0, 0, b'k', 1][..], &7u64.to_le_bytes()].concat(),
        ),
        (&["getex", "k", "persist"], vec![14, 1, 0, 0, 0, b'k', 0]),
        (
            &["setrange", "k", "2", "v"],
            [
                &[15u8, 1, 0, 0, 0, b'k'][..],
                &2u64.to_le_bytes(),
                &[1, 0, 0, 0, b'v'],
            ]
            .concat(),
        ),
        (
            &["msetnx", "a", "1"],
            vec![16, 1, 0, 0, 0, 1, 0, 0, 0, b'a', 1, 0, 0, 0, b'1'],
        ),
        (
            &["expireat", "k", "3"],
            [&[7u8, 1, 0, 0, 0, b'k'][..], &3_000u64.to_le_bytes()].concat(),
        ),
        (
            &["pexpire", "k", "5", "xx", "gt"],
            [
                &[17u8, 1, 0, 0, 0, b'k'][..],
                &105u64.to_le_bytes(),
                &[2 | 4],
            ]
            .concat(),
        ),
        (
            &["renamenx", "a", "b"],
            vec![18, 1, 1, 0, 0, 0, b'a', 1, 0, 0, 0, b'b'],
        ),
        (
            &["copy", "a", "b", "replace"],
            vec![19, 1, 1, 0, 0, 0, b'a', 1, 0, 0, 0, b'b'],
        ),
        (
            &["hsetnx", "h", "f", "v"],
            vec![20, 1, 0, 0, 0, b'h', 1, 0, 0, 0, b'f', 1, 0, 0, 0, b'v'],
        ),
        (
            &["hmset", "h", "f", "v"],
            vec![
                21, 1, 0, 0, 0, b'h', 1, 0, 0, 0, 1, 0, 0, 0, b'f', 1, 0, 0, 0, b'v',
            ],
        ),
        (
            &["incrbyfloat", "k", "1"],
            vec![22, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'1'],
        ),
        (
            &["hincrbyfloat", "h", "f", "1"],
            vec![23, 1, 0, 0, 0, b'h', 1, 0, 0, 0, b'f', 1, 0, 0, 0, b'1'],
        ),
        (
            &["lpushx", "k", "v"],
            vec![24, 1, 0, 0, 0, b'k', 3, 1, 0, 0, 0, 1, 0, 0, 0, b'v'],
        ),
        (
            &["rpush", "k", "v"],
            vec![24, 1, 0, 0, 0, b'k', 0, 1, 0, 0, 0, 1, 0, 0, 0, b'v'],
        ),
        (&["rpop", "k"], vec![25, 1, 0, 0, 0, b'k', 0, 0]),
        (
            &["lpop", "k", "3"],
            [&[25u8, 1, 0, 0, 0, b'k', 1, 1][..], &3u64.to_le_bytes()].concat(),
        ),
        (
            &["lset", "k", "-2", "v"],
            [
                &[26u8, 1, 0, 0, 0, b'k'][..],
                &(-2i64).to_le_bytes(),
                &[1, 0, 0, 0, b'v'],
            ]
            .concat(),
        ),
        (
            &["ltrim", "k", "1", "-1"],
            [
                &[27u8, 1, 0, 0, 0, b'k'][..],
                &1i64.to_le_bytes(),
                &(-1i64).to_le_bytes(),
            ]
            .concat(),
        ),
        (
            &["lrem", "k", "0", "v"],
            [
                &[28u8, 1, 0, 0, 0, b'k'][..],
                &0i64.to_le_bytes(),
                &[1, 0, 0, 0, b'v'],
            ]
            .concat(),
        ),
        (
            &["linsert", "k", "after", "p", "v"],
            vec![29, 1, 0, 0, 0, b'k', 1, 1, 0, 0, 0, b'p', 1, 0, 0, 0, b'v'],
        ),
        (
            &["rpoplpush", "s", "d"],
            vec![30, 1, 0, 0, 0, b's', 1, 0, 0, 0, b'd', 0, 1],
        ),
        (
            &["lmpop", "1", "k", "left", "count", "2"],
            [
                &[31u8, 1, 0, 0, 0, 1, 0, 0, 0, b'k', 1][..],
                &2u64.to_le_bytes(),
            ]
            .concat(),
        ),
    ];
    for (args, bytes) in cases {
        assert_eq!(logged(args, 100), bytes, "{args:?}");
        // and the registry reads them back to the same payload
        assert_eq!(payload(&*decode_payload(&bytes).unwrap()), bytes);
    }
}

#[test]
fn every_effect_round_trips_and_truncation_is_refused() {
    for w in all_effects() {
        let p = payload(&*w);
        assert_eq!(payload(&*decode_payload(&p).unwrap()), p);
        assert_eq!(describe_payload(&p).unwrap(), w.describe());
        for cut in 0..p.len() {
            assert!(decode_payload(&p[..cut]).is_err(), "{w:?} cut {cut}");
        }
        let mut longer = p.clone();
        longer.push(0);
        assert!(matches!(
            decode_payload(&longer),
            Err(DecodeError::Trailing(1))
        ));
    }
    assert!(matches!(
        decode_payload(&[99]),
        Err(DecodeError::UnknownOp(99))
    ));
    assert!(matches!(decode_payload(&[]), Err(DecodeError::Empty)));
    assert!(matches!(
        Set::decode(&[1, 3, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::Invalid { .. })
    ));
    assert!(matches!(
        Set::decode(&[2, 0]),
        Err(DecodeError::WrongOp {
            expected: 1,
            found: 2
        })
    ));
    // a huge count is refused before allocating
    let mut p = vec![4u8];
    p.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode_payload(&p), Err(DecodeError::Count { .. })));
}

#[test]
fn random_payloads_never_panic_and_damaged_ones_are_refused_or_valid() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let len = (rnd() % 48) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| (rnd() % 7) as u8).collect();
        if let Some(first) = p.first_mut() {
            *first = 1 + (rnd() % 12) as u8;
        }
        if let Ok(w) = decode_payload(&p) {
            // anything that decodes is canonical
            assert_eq!(payload(&*w), p);
            let _ = apply_payload(&mut Db::new(), &p, 0).unwrap();
        }
    }
}

#[test]
fn replay_is_deterministic_and_gives_the_served_replies() {
    let mut live = Db::new();
    let mut replies = Vec::new();
    let mut records = Vec::new();
    for (i, w) in all_effects().into_iter().enumerate() {
        let ts = 1_000 + i as u64 * 1_000;
        let p = payload(&*w);
        replies.push(w.apply_boxed(&mut live, ts));
        records.push(Record {
            seq: i as u64 + 1,
            timestamp_ms: ts,
            payload: p,
        });
        // replay the prefix into a fresh db: same state
        let mut replayed = Db::new();
        for r in &records {
            replayed.apply_logged(r).unwrap();
        }
        assert_eq!(replayed, live);
    }
    let mut again = Db::new();
    let replayed: Vec<Reply> = records
        .iter()
        .map(|r| again.apply_record(r).unwrap())
        .collect();
    assert_eq!(replayed, replies);
    let bad = Record {
        seq: 9,
        timestamp_ms: 0,
        payload: vec![200],
    };
    assert!(matches!(
        again.apply_logged(&bad),
        Err(ApplyError::Decode {
            seq: 9,
            source: DecodeError::UnknownOp(200)
        })
    ));
}

// ---------------------------------------------------------------- semantics

/// The commands of the client issue, applied to one state (the
/// differential test compares them with redis-server; this pins the
/// state-dependent branches without a server).
#[test]
fn key_and_string_commands_of_redis_7() {
    let mut db = Db::new();
    let run = |db: &mut Db, args: &[&str], now: u64| -> Reply {
        match parse(a(args), now).1 {
            Action::Write(w) => w.apply_boxed(db, now),
            Action::Reply(r) => r,
            Action::Read(_)
            | Action::Quit
            | Action::Txn(_)
            | Action::PubSub(_)
            | Action::Block(_)
            | Action::Script(_) => {
                panic!("{args:?} is not a write")
            }
        }
    };
    assert_eq!(run(&mut db, &["setnx", "k", "1"], 0), Reply::Int(1));
    assert_eq!(run(&mut db, &["setnx", "k", "2"], 0), Reply::Int(0));
    assert_eq!(
        run(&mut db, &["set", "k", "9", "nx", "get"], 0),
        Reply::Bulk(b("1"))
    );
    assert_eq!(
        run(&mut db, &["set", "k", "v", "ex", "10", "ex", "20"], 0),
        Reply::Ok,
        "a repeated EX: the last wins"
    );
    assert_eq!(db.entry(b"k", 0).unwrap().expire_at_ms(), Some(20_000));
    assert_eq!(
        run(&mut db, &["set", "k", "v", "px", "1", "ex", "2"], 0),
        Reply::error(reply::SYNTAX)
    );
    assert_eq!(
        run(&mut db, &["set", "k", "v", "ex", "x", "ex"], 0),
        Reply::error(reply::SYNTAX)
    );
    assert_eq!(run(&mut db, &["expire", "k", "30", "gt"], 0), Reply::Int(1));
    assert_eq!(run(&mut db, &["expire", "k", "5", "gt"], 0), Reply::Int(0));
    assert_eq!(run(&mut db, &["expire", "k", "40", "nx"], 0), Reply::Int(0));
    assert!(run(&mut db, &["expire", "k", "40", "nx", "xx"], 0).is_error());
    assert_eq!(run(&mut db, &["rename", "k", "k2"], 0), Reply::Ok);
    assert_eq!(
        db.entry(b"k2", 0).unwrap().expire_at_ms(),
        Some(30_000),
        "the TTL moves along"
    );
    assert_eq!(
        run(&mut db, &["rename", "k", "k2"], 0),
        Reply::error(reply::NO_SUCH_KEY)
    );
    assert_eq!(run(&mut db, &["copy", "k2", "k3"], 0), Reply::Int(1));
    assert_eq!(run(&mut db, &["copy", "k2", "k3"], 0), Reply::Int(0));
    assert_eq!(
        run(&mut db, &["setrange", "k3", "5", "ab"], 0),
        Reply::Int(7)
    );
    assert_eq!(db.get(b"k3", 0), Some(&Value::Str(b"v\0\0\0\0ab".to_vec())));
    assert_eq!(
        run(&mut db, &["incrbyfloat", "f", "10.5"], 0),
        Reply::Bulk(b("10.5"))
    );
    assert_eq!(
        run(&mut db, &["incrbyfloat", "f", "0.1"], 0),
        Reply::Bulk(b("10.6"))
    );
    assert_eq!(
        run(&mut db, &["incrbyfloat", "f", "+inf"], 0),
        Reply::error(reply::NAN_OR_INFINITY)
    );
    assert_eq!(
        run(&mut db, &["getex", "k3", "pxat", "1"], 0),
        Reply::Bulk(b"v\0\0\0\0ab".to_vec())
    );
    assert_eq!(db.get(b"k3", 5), None, "deleted by a past PXAT");
}

/// APPEND cannot grow a string past what a snapshot entry holds (a
/// snapshot written of such a state could not be read back).
#[test]
fn append_is_refused_past_the_string_bound_and_snapshots_stay_readable() {
    let mut db = Db::new();
    let append = Append {
        key: b("big"),
        value: vec![b'x'; 16 * 1024 * 1024],
    };
    let mut replies = Vec::new();
    for _ in 0..6 {
        if let Some(e) = Effect::precheck(&append, &db, 0) {
            replies.push(e);
        }
        replies.push(append.clone().apply(&mut db, 0));
    }
    let len = |db: &Db| match db.get(b"big", 0) {
        Some(Value::Str(s)) => s.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(len(&db), MAX_STRING_BYTES);
    assert_eq!(
        replies.last(),
        Some(&Reply::Error(STRING_TOO_LONG.into())),
        "refused, unchanged"
    );
    assert_eq!(
        Effect::precheck(&append, &db, 0),
        Some(Reply::Error(STRING_TOO_LONG.into()))
    );
    let dir = tempfile::tempdir().unwrap();
    let p = crate::snapshot::write_snapshot(dir.path(), 1, &db).unwrap();
    let (_, back) = crate::snapshot::read_snapshot(&p).unwrap();
    assert_eq!(back, db);
}

#[test]
fn string_semantics() {
    let mut db = Db::new();
    assert_eq!(apply(&mut db, Set::new("k", "v"), 0), Reply::Ok);
    let nx = setx("k", "w", None, false, SetCondition::Nx, false);
    assert_eq!(apply(&mut db, nx, 0), Reply::Nil);
    let get = setx("k", "w", Some(100), false, SetCondition::Always, true);
    assert_eq!(apply(&mut db, get, 0), Reply::Bulk(b("v")));
    assert_eq!(db.get(b"k", 99), Some(&Value::Str(b("w"))));
    assert_eq!(db.get(b"k", 100), None, "expired at its absolute time");
    // an expired key is absent for writes too
    let append = Append {
        key: b("k"),
        value: b("x"),
    };
    assert_eq!(apply(&mut db, append, 100), Reply::Int(1));
    let incr = |k: &str, delta| IncrBy { key: b(k), delta };
    assert_eq!(
        apply(&mut db, incr("k", 1), 100),
        Reply::Error(NOT_INTEGER.into())
    );
    apply(&mut db, Set::new("n", "9223372036854775807"), 0);
    assert_eq!(
        apply(&mut db, incr("n", 1), 0),
        Reply::Error(OVERFLOW.into())
    );
    assert_eq!(
        apply(&mut db, incr("n", -7), 0),
        Reply::Int(9223372036854775800)
    );
    let expire = PExpireAt {
        key: b("n"),
        at_ms: 0,
    };
    assert_eq!(apply(&mut db, expire, 5), Reply::Int(1));
    assert_eq!(db.get(b"n", 5), None);
}

#[test]
fn set_variants_follow_redis() {
    use SetCondition::*;
    let mut db = Db::new();
    // XX on an expired key: absent, nothing set, the stale entry is gone
    apply(&mut db, setx("e", "1", Some(10), false, Always, false), 0);
    assert_eq!(
        apply(&mut db, setx("e", "2", None, false, Xx, true), 10),
        Reply::Nil
    );
    assert_eq!(db.len(), 0);
    // NX on an expired key sets it, without the old TTL even with KEEPTTL
    apply(&mut db, setx("e", "1", Some(10), false, Always, false), 0);
    assert_eq!(
        apply(&mut db, setx("e", "2", None, true, Nx, true), 10),
        Reply::Nil
    );
    assert_eq!(db.entry(b"e", 10).unwrap().expire_at_ms(), None);
    // KEEPTTL keeps a live TTL; plain SET clears it
    apply(&mut db, setx("t", "1", Some(100), false, Always, false), 0);
    assert_eq!(
        apply(&mut db, setx("t", "2", None, true, Xx, false), 0),
        Reply::Ok
    );
    assert_eq!(db.entry(b"t", 0).unwrap().expire_at_ms(), Some(100));
    assert_eq!(
        apply(&mut db, setx("t", "3", None, false, Always, true), 0),
        Reply::Bulk(b("2"))
    );
    assert_eq!(db.entry(b"t", 0).unwrap().expire_at_ms(), None);
    // NX on a live key: unchanged, GET shows the old value
    assert_eq!(
        apply(&mut db, setx("t", "4", None, false, Nx, true), 0),
        Reply::Bulk(b("3"))
    );
    assert_eq!(db.get(b"t", 0), Some(&Value::Str(b("3"))));
    // a hash: SET GET is a type error and changes nothing; SET overwrites
    let hs = HSet {
        key: b("h"),
        pairs: vec![(b("f"), b("v"))],
    };
    apply(&mut db, hs, 0);
    assert_eq!(
        apply(&mut db, setx("h", "s", None, false, Always, true), 0),
        Reply::Error(WRONGTYPE.into())
    );
    assert!(matches!(db.get(b"h", 0), Some(Value::Hash(_))));
    assert_eq!(
        apply(&mut db, setx("h", "s", None, false, Always, false), 0),
        Reply::Ok
    );
    assert_eq!(db.get(b"h", 0), Some(&Value::Str(b("s"))));
    // an expiring SET is tracked for purging
    apply(&mut db, setx("x", "1", Some(50), false, Always, false), 0);
    assert_eq!(db.purge_expired(50, 10), 1);
}

#[test]
fn hash_semantics_and_type_errors() {
    let mut db = Db::new();
    let hs = HSet {
        key: b("h"),
        pairs: vec![(b("a"), b("1")), (b("b"), b("x"))],
    };
    assert_eq!(apply(&mut db, hs.clone(), 0), Reply::Int(2));
    assert_eq!(apply(&mut db, hs.clone(), 0), Reply::Int(0));
    let hincr = |f: &str, delta| HIncrBy {
        key: b("h"),
        field: b(f),
        delta,
    };
    assert_eq!(
        apply(&mut db, hincr("b", 1), 0),
        Reply::Error(HASH_NOT_INTEGER.into())
    );
    assert_eq!(apply(&mut db, hincr("c", 5), 0), Reply::Int(5));
    let incr = IncrBy {
        key: b("h"),
        delta: 1,
    };
    assert_eq!(
        Effect::precheck(&incr, &db, 0),
        Some(Reply::Error(WRONGTYPE.into()))
    );
    assert_eq!(apply(&mut db, incr, 0), Reply::Error(WRONGTYPE.into()));
    assert_eq!(
        apply(&mut db, GetDel { key: b("h") }, 0),
        Reply::Error(WRONGTYPE.into())
    );
    apply(&mut db, Set::new("s", "v"), 0);
    assert_eq!(apply(&mut db, hs, 0), Reply::Int(0));
    let hs_s = HSet {
        key: b("s"),
        pairs: vec![(b("a"), b("1"))],
    };
    assert_eq!(
        Effect::precheck(&hs_s, &db, 0),
        Some(Reply::Error(WRONGTYPE.into()))
    );
    assert_eq!(apply(&mut db, hs_s, 0), Reply::Error(WRONGTYPE.into()));
    let hdel = HDel {
        key: b("h"),
        fields: vec![b("a"), b("b"), b("c"), b("zz")],
    };
    assert_eq!(apply(&mut db, hdel, 0), Reply::Int(3));
    assert_eq!(db.get(b"h", 0), None, "an emptied hash is removed");
    let del = Del {
        keys: vec![b("s"), b("s")],
    };
    assert_eq!(apply(&mut db, del, 0), Reply::Int(1));
    assert!(db.is_empty());
}

// ---------------------------------------------------------------- lists

/// A server without clients or statistics (reads of the list tests).
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

/// What a request answers against `db` at time 0: a write is applied, a
/// read is run.
fn run(db: &mut Db, args: &[&str]) -> Reply {
    match parse(a(args), 0).1 {
        Action::Reply(r) => r,
        Action::Write(mut w) => {
            if let Some(e) = w.precheck(db, 0) {
                return e;
            }
            w.settle(db, 0);
            w.apply_boxed(db, 0)
        }
        Action::Read(r) => {
            let mut conn = ConnState::new(1);
            let server = NoServer(config::ConfigStore::new(&[]));
            let mut ctx = ReadCtx {
                db,
                now_ms: 0,
                conn: &mut conn,
                server: &server,
            };
            r.read(&mut ctx)
        }
        _ => panic!("unexpected action for {args:?}"),
    }
}

fn bulks(v: &[&str]) -> Reply {
    Reply::Array(v.iter().map(|s| Reply::Bulk(b(s))).collect())
}

#[test]
fn list_semantics_and_type_errors() {
    let mut db = Db::new();
    assert_eq!(run(&mut db, &["rpushx", "l", "a"]), Reply::Int(0));
    assert!(db.is_empty());
    assert_eq!(run(&mut db, &["rpush", "l", "a", "b", "c"]), Reply::Int(3));
    assert_eq!(run(&mut db, &["lpush", "l", "x", "y"]), Reply::Int(5));
    assert_eq!(
        run(&mut db, &["lrange", "l", "0", "-1"]),
        bulks(&["y", "x", "a", "b", "c"])
    );
    assert_eq!(
        run(&mut db, &["lrange", "l", "-2", "100"]),
        bulks(&["b", "c"])
    );
    assert_eq!(run(&mut db, &["lindex", "l", "-1"]), Reply::Bulk(b("c")));
    assert_eq!(run(&mut db, &["lindex", "l", "5"]), Reply::Nil);
    assert_eq!(run(&mut db, &["lindex", "nope", "x"]), Reply::Nil);
    assert_eq!(
        run(&mut db, &["lindex", "l", "x"]),
        Reply::error(NOT_INTEGER)
    );
    assert_eq!(
        run(&mut db, &["lset", "nope", "x", "v"]),
        Reply::error(reply::NO_SUCH_KEY)
    );
    assert_eq!(
        run(&mut db, &["lset", "l", "9", "v"]),
        Reply::error(super::list::INDEX_RANGE)
    );
    assert_eq!(run(&mut db, &["lset", "l", "1", "X"]), Reply::Ok);
    assert_eq!(
        run(&mut db, &["linsert", "l", "before", "a", "b"]),
        Reply::Int(6)
    );
    assert_eq!(
        run(&mut db, &["linsert", "l", "after", "zz", "b"]),
        Reply::Int(-1)
    );
    assert_eq!(
        run(&mut db, &["lpos", "l", "b", "rank", "-1", "count", "0"]),
        Reply::Array(vec![Reply::Int(4), Reply::Int(2)])
    );
    assert_eq!(run(&mut db, &["lrem", "l", "-1", "b"]), Reply::Int(1));
    assert_eq!(
        run(&mut db, &["lrange", "l", "0", "-1"]),
        bulks(&["y", "X", "b", "a", "c"])
    );
    assert_eq!(run(&mut db, &["rpoplpush", "l", "l"]), Reply::Bulk(b("c")));
    assert_eq!(
        run(&mut db, &["lmove", "l", "m", "left", "right"]),
        Reply::Bulk(b("c"))
    );
    assert_eq!(run(&mut db, &["lpop", "l", "2"]), bulks(&["y", "X"]));
    assert_eq!(run(&mut db, &["rpop", "l"]), Reply::Bulk(b("a")));
    assert_eq!(run(&mut db, &["lpop", "nope", "2"]), Reply::NilArray);
    assert_eq!(
        run(&mut db, &["lpop", "l", "-1"]),
        Reply::error(super::list::MUST_BE_POSITIVE)
    );
    assert_eq!(
        run(
            &mut db,
            &["lmpop", "3", "nope", "l", "m", "right", "count", "9"]
        ),
        Reply::Array(vec![Reply::Bulk(b("l")), bulks(&["b"])])
    );
    assert_eq!(run(&mut db, &["ltrim", "m", "1", "0"]), Reply::Ok);
    assert!(db.is_empty(), "emptied lists are removed");
    assert_eq!(run(&mut db, &["lmpop", "1", "m", "left"]), Reply::NilArray);
    run(&mut db, &["set", "s", "v"]);
    run(&mut db, &["hset", "h", "f", "v"]);
    run(&mut db, &["rpush", "l", "v"]);
    for cmd in [
        &["lpush", "s", "v"][..],
        &["lpop", "h"],
        &["llen", "s"],
        &["lrange", "h", "0", "1"],
        &["lset", "s", "x", "v"],
        &["rpoplpush", "l", "s"],
        &["lmpop", "2", "nope", "h", "left"],
        &["get", "l"],
        &["append", "l", "x"],
        &["hget", "l", "f"],
        &["hset", "l", "f", "v"],
        &["incr", "l"],
    ] {
        assert_eq!(run(&mut db, cmd), Reply::error(WRONGTYPE), "{cmd:?}");
    }
    assert_eq!(run(&mut db, &["type", "l"]), Reply::Status("list".into()));
    assert_eq!(
        run(&mut db, &["object", "encoding", "l"]),
        Reply::Bulk(b("quicklist"))
    );
}
