//! Sorted set commands as the execution core runs them (parse, resolve,
//! encode, apply) and as every replay applies their payloads: pinned
//! payload bytes, round trips, replay equality, and the state-dependent
//! edge cases the differential test cannot reach cheaply.

use super::*;
use crate::db::{Entry, Value};
use crate::reply::WRONGTYPE;

fn a(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(b(s))
}

/// Runs one request as the execution core does: returns the reply and the
/// payload logged (None: nothing logged).
fn run(db: &mut Db, args: &[&str], now: u64) -> (Reply, Option<Vec<u8>>) {
    match parse(a(args), now).1 {
        Action::Reply(r) => (r, None),
        Action::Write(mut w) => {
            if w.may_fail() {
                if let Some(e) = w.precheck(db, now) {
                    return (e, None);
                }
            }
            w.settle(db, now);
            let w = match w.resolve(db, now) {
                Resolved::Write(w) => w,
                Resolved::Reply(r) => return (r, None),
            };
            if w.may_fail() {
                if let Some(e) = w.precheck(db, now) {
                    return (e, None);
                }
            }
            let mut p = Vec::new();
            w.encode_into(&mut p);
            (w.apply_boxed(db, now), Some(p))
        }
        Action::Read(r) => {
            let server = NoServer(config::ConfigStore::new(&[]));
            let mut conn = ConnState::new(1);
            let reply = r.read(&mut ReadCtx {
                db,
                now_ms: now,
                conn: &mut conn,
                server: &server,
            });
            (reply, None)
        }
        Action::Quit
        | Action::Txn(_)
        | Action::PubSub(_)
        | Action::Block(_)
        | Action::Script(_) => panic!("{args:?}"),
    }
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

fn r(db: &mut Db, args: &[&str]) -> Reply {
    run(db, args, 0).0
}

fn members(db: &mut Db, key: &str) -> Vec<Reply> {
    match r(db, &["zrange", key, "0", "-1", "withscores"]) {
        Reply::Pairs(p) => p.into_iter().flat_map(|(m, s)| [m, s]).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn payloads_are_pinned_and_resolved_requests_log_their_outcome() {
    let mut db = Db::new();
    let one = 1f64.to_bits().to_le_bytes();
    let (_, p) = run(&mut db, &["zadd", "z", "ch", "1", "a"], 0);
    assert_eq!(
        p.unwrap(),
        [
            &[40u8, 1, 0, 0, 0, b'z', 16, 1, 0, 0, 0, 1, 0, 0, 0, b'a'][..],
            &one
        ]
        .concat()
    );
    // ZINCRBY logs the score it set, not the increment
    let (reply, p) = run(&mut db, &["zincrby", "z", "2", "a"], 0);
    assert_eq!(reply, Reply::Double(3.0));
    assert_eq!(
        p.unwrap(),
        [
            &[41u8, 1, 0, 0, 0, b'z', 1, 0, 0, 0, b'a'][..],
            &3f64.to_bits().to_le_bytes()
        ]
        .concat()
    );
    let (_, p) = run(&mut db, &["zrem", "z", "x"], 0);
    assert_eq!(
        p.unwrap(),
        vec![42, 1, 0, 0, 0, b'z', 1, 0, 0, 0, 1, 0, 0, 0, b'x']
    );
    // ZPOPMIN logs the members popped
    let (reply, p) = run(&mut db, &["zpopmin", "z", "5"], 0);
    assert_eq!(reply, Reply::Pairs(vec![(bulk("a"), Reply::Double(3.0))]));
    assert_eq!(
        p.unwrap(),
        vec![43, 1, 0, 0, 0, b'z', 1, 1, 0, 0, 0, 1, 0, 0, 0, b'a']
    );
    // a store logs the resulting set
    r(&mut db, &["zadd", "s", "1", "m"]);
    let (reply, p) = run(&mut db, &["zunionstore", "d", "2", "s", "s"], 0);
    assert_eq!(reply, Reply::Int(1));
    assert_eq!(
        p.unwrap(),
        [
            &[44u8, 1, 0, 0, 0, b'd', 1, 0, 0, 0, 1, 0, 0, 0, b'm'][..],
            &2f64.to_bits().to_le_bytes()
        ]
        .concat()
    );
    // nothing to do: nothing logged
    for req in [
        &["zpopmin", "nope"][..],
        &["zremrangebyscore", "s", "5", "6"],
        &["zunionstore", "d2", "1", "nope"],
        &["zadd", "s", "incr", "nx", "1", "m"],
        &["zincrby", "s", "0", "m"],
        &["zadd", "s", "1", "m"],
        &["zadd", "s", "nx", "ch", "5", "m"],
        &["zadd", "s", "gt", "0", "m"],
        &["zadd", "nope", "xx", "1", "m"],
    ] {
        assert_eq!(run(&mut db, req, 0).1, None, "{req:?}");
    }
    // the range removals log a ZREM of the members removed
    r(&mut db, &["zadd", "s", "2", "n", "3", "o"]);
    let (reply, p) = run(&mut db, &["zremrangebyrank", "s", "0", "1"], 0);
    assert_eq!(reply, Reply::Int(2));
    let e = decode_payload(&p.unwrap()).unwrap();
    assert_eq!(e.describe(), r#"ZREM "s" "m" "n""#);
}

#[test]
fn every_zset_effect_round_trips_and_truncation_is_refused() {
    let effects: Vec<Box<dyn Write>> = vec![
        Box::new(ZAdd {
            key: b("k"),
            flags: 1 | 16,
            items: vec![(b("a"), 1.5), (b(""), f64::NEG_INFINITY)],
        }),
        Box::new(ZSetScore {
            key: b("k"),
            member: b("a"),
            score: -2.25,
        }),
        Box::new(ZRem {
            key: b("k"),
            members: vec![b("a"), b("b")],
        }),
        Box::new(ZPopped {
            key: b("k"),
            shape: ZPopShape::Keyed,
            members: vec![b("a")],
        }),
        Box::new(ZStore {
            destination: b("d"),
            items: vec![(b("x"), 0.5)],
        }),
        Box::new(ZStore {
            destination: b("d"),
            items: vec![],
        }),
    ];
    for w in effects {
        let mut p = Vec::new();
        w.encode_into(&mut p);
        let back = decode_payload(&p).unwrap();
        let mut q = Vec::new();
        back.encode_into(&mut q);
        assert_eq!(p, q);
        assert_eq!(describe_payload(&p).unwrap(), w.describe());
        for cut in 0..p.len() {
            assert!(decode_payload(&p[..cut]).is_err(), "{w:?} cut {cut}");
        }
    }
    // a NaN score never decodes
    let mut p = vec![41u8, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'a'];
    p.extend_from_slice(&f64::NAN.to_bits().to_le_bytes());
    assert!(matches!(
        decode_payload(&p),
        Err(DecodeError::Invalid { .. })
    ));
}

#[test]
fn replay_of_the_logged_effects_gives_the_served_state_and_replies() {
    let script: &[&[&str]] = &[
        &["zadd", "z", "1", "a", "2", "b", "3", "c", "0.1", "d"],
        &["zincrby", "z", "0.2", "d"],
        &["zincrby", "z", "0.1", "d"],
        &["zadd", "z", "incr", "gt", "5", "a"],
        &["zadd", "z", "xx", "ch", "9", "b", "1", "new"],
        &["zpopmax", "z"],
        &["zadd", "y", "1", "b", "2", "q"],
        &["zunionstore", "u", "2", "z", "y", "weights", "0.3", "0.7"],
        &["zinterstore", "i", "2", "z", "y", "aggregate", "max"],
        &["zdiffstore", "df", "2", "z", "y"],
        &[
            "zrangestore",
            "rs",
            "u",
            "(0",
            "+inf",
            "byscore",
            "rev",
            "limit",
            "0",
            "2",
        ],
        &["zremrangebylex", "y", "-", "[b"],
        &["zmpop", "3", "nope", "i", "u", "max", "count", "1"],
        &["zrem", "u", "b", "zz"],
        &["zremrangebyscore", "z", "(0", "0.4"],
        &["zinterstore", "i", "2", "z", "nope"],
        &["zpopmin", "df", "10"],
    ];
    let mut live = Db::new();
    let mut logged = Vec::new();
    for (i, req) in script.iter().enumerate() {
        let ts = 1_000 + i as u64;
        let (reply, p) = run(&mut live, req, ts);
        assert!(!reply.is_error(), "{req:?}: {reply:?}");
        if let Some(p) = p {
            logged.push((ts, p, reply));
        }
    }
    let mut replayed = Db::new();
    for (ts, p, reply) in &logged {
        assert_eq!(&apply_payload(&mut replayed, p, *ts).unwrap(), reply);
    }
    assert_eq!(replayed, live);
    assert!(live.get(b"i", 0).is_none(), "an empty store deletes");
    assert!(logged.len() > 10);
}

#[test]
fn zadd_options_and_scores_like_redis() {
    let mut db = Db::new();
    assert_eq!(r(&mut db, &["zadd", "z", "xx", "1", "a"]), Reply::Int(0));
    assert!(db.get(b"z", 0).is_none(), "XX does not create the key");
    assert_eq!(
        r(&mut db, &["zadd", "z", "xx", "incr", "1", "a"]),
        Reply::Nil
    );
    assert_eq!(
        r(&mut db, &["zadd", "z", "1", "a", "2", "a"]),
        Reply::Int(1)
    );
    assert_eq!(r(&mut db, &["zscore", "z", "a"]), Reply::Double(2.0));
    assert_eq!(
        r(&mut db, &["zadd", "z", "gt", "ch", "1", "a", "3", "b"]),
        Reply::Int(1)
    );
    assert_eq!(
        r(&mut db, &["zadd", "z", "lt", "ch", "1", "a"]),
        Reply::Int(1)
    );
    assert_eq!(r(&mut db, &["zadd", "z", "nx", "5", "a"]), Reply::Int(0));
    assert_eq!(r(&mut db, &["zadd", "z", "-0", "c"]), Reply::Int(1));
    assert_eq!(members(&mut db, "z")[0..2], [bulk("c"), Reply::Double(0.0)]);
    assert_eq!(r(&mut db, &["zadd", "z", "+inf", "i"]), Reply::Int(1));
    assert_eq!(
        r(&mut db, &["zincrby", "z", "-inf", "i"]),
        Reply::error(super::zset::NAN_SCORE)
    );
    assert_eq!(
        r(&mut db, &["zscore", "z", "i"]),
        Reply::Double(f64::INFINITY)
    );
    assert_eq!(r(&mut db, &["zincrby", "z", "1", "nx"]), Reply::Double(1.0));
    match r(&mut db, &["zrandmember", "z", "-3"]) {
        Reply::Array(v) => assert_eq!(v.len(), 3),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r(&mut db, &["zrandmember", "z", "-9223372036854775807"]),
        Reply::Error(e) if e.contains("too large")
    ));
    for (req, err) in [
        (&["zadd", "z", "nan", "a"][..], super::zset::NOT_FLOAT),
        (&["zadd", "z", "", "a"], super::zset::NOT_FLOAT),
        (&["zadd", "z", "nx", "1"], reply::SYNTAX),
        (&["zincrby", "z", "nx", "1"], reply::SYNTAX),
        (
            &["zadd", "z", "nx", "xx", "1", "a"],
            "ERR XX and NX options at the same time are not compatible",
        ),
        (
            &["zadd", "z", "incr", "1", "a", "2", "b"],
            "ERR INCR option supports a single increment-element pair",
        ),
        (
            &["zrangebyscore", "z", "(x", "1"],
            super::zset::RANGE_NOT_FLOAT,
        ),
        (&["zrangebylex", "z", "a", "+"], super::zset::LEX_NOT_VALID),
    ] {
        assert_eq!(r(&mut db, req), Reply::error(err), "{req:?}");
    }
    db.insert_entry(b("s"), Entry::new(Value::Str(b("x"))));
    for req in [
        &["zadd", "s", "1", "a"][..],
        &["zincrby", "s", "1", "a"],
        &["zscore", "s", "a"],
        &["zpopmin", "s"],
        &["zunionstore", "d", "1", "s"],
        &["zrangestore", "d", "s", "0", "-1"],
        &["zremrangebyrank", "s", "0", "-1"],
    ] {
        assert_eq!(r(&mut db, req), Reply::error(WRONGTYPE), "{req:?}");
    }
}

#[test]
fn ranges_pops_and_stores_like_redis() {
    let mut db = Db::new();
    r(
        &mut db,
        &["zadd", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
    );
    let arr = |v: &[&str]| Reply::Array(v.iter().map(|s| bulk(s)).collect());
    assert_eq!(
        r(&mut db, &["zrange", "z", "1", "2", "rev"]),
        arr(&["c", "b"])
    );
    assert_eq!(
        r(&mut db, &["zrevrange", "z", "-2", "-1"]),
        arr(&["b", "a"])
    );
    assert_eq!(
        r(
            &mut db,
            &["zrange", "z", "(4", "2", "byscore", "rev", "limit", "1", "5"]
        ),
        arr(&["b"])
    );
    assert_eq!(
        r(
            &mut db,
            &["zrangebyscore", "z", "-inf", "+inf", "limit", "-1", "2"]
        ),
        arr(&[])
    );
    assert_eq!(
        r(
            &mut db,
            &["zrangebyscore", "z", "2", "+inf", "limit", "1", "-5"]
        ),
        arr(&["c", "d"])
    );
    assert_eq!(r(&mut db, &["zcount", "z", "(1", "(4"]), Reply::Int(2));
    assert_eq!(r(&mut db, &["zrevrank", "z", "a"]), Reply::Int(3));
    assert_eq!(r(&mut db, &["zrank", "z", "c"]), Reply::Int(2));
    assert_eq!(
        r(&mut db, &["zpopmin", "z"]),
        Reply::Array(vec![bulk("a"), Reply::Double(1.0)])
    );
    assert_eq!(
        r(&mut db, &["zmpop", "2", "none", "z", "max", "count", "9"]),
        Reply::Array(vec![
            bulk("z"),
            Reply::Array(
                [("d", 4.0), ("c", 3.0), ("b", 2.0)]
                    .iter()
                    .map(|(m, s)| Reply::Array(vec![bulk(m), Reply::Double(*s)]))
                    .collect()
            )
        ])
    );
    assert!(db.get(b"z", 0).is_none(), "emptied: removed");
    assert_eq!(r(&mut db, &["zmpop", "1", "z", "min"]), Reply::NilArray);
    // a store over an existing key replaces it (type and expiry too)
    r(&mut db, &["set", "d", "x", "ex", "100"]);
    r(&mut db, &["zadd", "s", "1", "a"]);
    assert_eq!(
        r(&mut db, &["zrangestore", "d", "s", "0", "-1"]),
        Reply::Int(1)
    );
    assert_eq!(db.entry(b"d", 0).unwrap().expire_at_ms(), None);
    assert_eq!(
        r(&mut db, &["zinterstore", "d", "2", "s", "none"]),
        Reply::Int(0)
    );
    assert!(db.get(b"d", 0).is_none());
    // weights: a NaN product counts as 0, inf + -inf sums to 0
    r(&mut db, &["zadd", "p", "+inf", "x"]);
    r(&mut db, &["zadd", "n", "-inf", "x"]);
    r(&mut db, &["zunionstore", "u", "1", "p", "weights", "0"]);
    assert_eq!(r(&mut db, &["zscore", "u", "x"]), Reply::Double(0.0));
    r(&mut db, &["zinterstore", "u", "2", "p", "n"]);
    assert_eq!(r(&mut db, &["zscore", "u", "x"]), Reply::Double(0.0));
    assert_eq!(
        r(&mut db, &["zunion", "2", "p", "n", "weights", "1"]),
        Reply::error(reply::SYNTAX)
    );
    assert_eq!(
        r(&mut db, &["zunion", "0", "p"]),
        Reply::error("ERR at least 1 input key is needed for 'zunion' command")
    );
}

/// OBJECT ENCODING follows Redis's bounds (128 entries, 64-byte members by
/// default) as the set grows, and stays `skiplist` once it was one.
#[test]
fn encoding_is_listpack_until_a_bound_is_crossed_and_stays_skiplist() {
    let mut db = Db::new();
    let enc = |db: &mut Db, k: &str| r(db, &["object", "encoding", k]);
    for i in 0..129 {
        r(&mut db, &["zadd", "z", &i.to_string(), &format!("m{i}")]);
        let want = if i < 128 { "listpack" } else { "skiplist" };
        assert_eq!(enc(&mut db, "z"), bulk(want), "{i}");
    }
    r(&mut db, &["zremrangebyrank", "z", "0", "-3"]);
    assert_eq!(r(&mut db, &["zcard", "z"]), Reply::Int(2));
    assert_eq!(enc(&mut db, "z"), bulk("skiplist"));
    assert_eq!(
        members(&mut db, "z"),
        vec![
            bulk("m127"),
            Reply::Double(127.0),
            bulk("m128"),
            Reply::Double(128.0)
        ]
    );
    // a store builds a new set: a listpack again
    r(&mut db, &["zunionstore", "z2", "1", "z"]);
    assert_eq!(enc(&mut db, "z2"), bulk("listpack"));
    // a long member converts, an update of a score does not
    let long = "x".repeat(65);
    r(&mut db, &["zadd", "l", "1", "a"]);
    r(&mut db, &["zadd", "l", "2", "a"]);
    assert_eq!(enc(&mut db, "l"), bulk("listpack"));
    r(&mut db, &["zadd", "l", "1", &long]);
    assert_eq!(enc(&mut db, "l"), bulk("skiplist"));
    r(&mut db, &["zrem", "l", &long]);
    assert_eq!(enc(&mut db, "l"), bulk("skiplist"));
    assert_eq!(members(&mut db, "l"), vec![bulk("a"), Reply::Double(2.0)]);
}
