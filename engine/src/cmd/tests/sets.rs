//! The set commands: semantics and type errors against one state, the
//! payload bytes of their effects, and replay (SPOP's random choice is
//! logged, so a replayed log gives the same state and the same replies).

use std::collections::BTreeSet;

use super::{a, b, bulks, payload, run};
use crate::cmd::sets::MAX_RANDOM_REPLY_BYTES;
use crate::cmd::*;
use crate::db::{Db, Members, Value};
use crate::reply::{Reply, SYNTAX, WRONGTYPE};

fn members(r: &Reply) -> BTreeSet<Vec<u8>> {
    let (Reply::Set(v) | Reply::Array(v)) = r else {
        panic!("not a set reply: {r:?}")
    };
    v.iter()
        .map(|x| match x {
            Reply::Bulk(m) => m.clone(),
            other => panic!("not a bulk: {other:?}"),
        })
        .collect()
}

fn set_of(v: &[&str]) -> BTreeSet<Vec<u8>> {
    v.iter().map(|s| b(s)).collect()
}

fn rset(v: &[&str]) -> Reply {
    Reply::Set(v.iter().map(|s| Reply::Bulk(b(s))).collect())
}

fn err(msg: &str) -> Reply {
    Reply::error(msg)
}

#[test]
fn basics_and_reply_order() {
    let mut db = Db::new();
    assert_eq!(run(&mut db, &["sadd", "s", "b", "a", "b"]), Reply::Int(2));
    assert_eq!(run(&mut db, &["sadd", "s", "a", "c"]), Reply::Int(1));
    assert_eq!(run(&mut db, &["scard", "s"]), Reply::Int(3));
    assert_eq!(run(&mut db, &["scard", "nope"]), Reply::Int(0));
    assert_eq!(run(&mut db, &["sismember", "s", "a"]), Reply::Int(1));
    assert_eq!(run(&mut db, &["sismember", "nope", "a"]), Reply::Int(0));
    assert_eq!(
        run(&mut db, &["smismember", "s", "z", "c", "a"]),
        Reply::Array(vec![Reply::Int(0), Reply::Int(1), Reply::Int(1)])
    );
    assert_eq!(
        run(&mut db, &["smismember", "nope", "a"]),
        Reply::Array(vec![Reply::Int(0)])
    );
    assert_eq!(run(&mut db, &["smembers", "s"]), rset(&["a", "b", "c"]));
    assert_eq!(run(&mut db, &["smembers", "nope"]), Reply::Set(vec![]));
    // an intset lists its members in numeric order, a hashtable in byte order
    run(&mut db, &["sadd", "i", "10", "-3", "2"]);
    assert_eq!(run(&mut db, &["smembers", "i"]), rset(&["-3", "2", "10"]));
    assert_eq!(
        run(&mut db, &["object", "encoding", "i"]),
        Reply::Bulk(b("intset"))
    );
    run(&mut db, &["sadd", "i", "x"]);
    assert_eq!(
        run(&mut db, &["smembers", "i"]),
        rset(&["-3", "10", "2", "x"])
    );
    assert_eq!(
        run(&mut db, &["object", "encoding", "i"]),
        Reply::Bulk(b("hashtable"))
    );
    // sticky, as in Redis: removing the non-integer keeps a hashtable
    // (byte order); a store (or a snapshot load) builds an intset again
    run(&mut db, &["srem", "i", "x"]);
    assert_eq!(
        run(&mut db, &["object", "encoding", "i"]),
        Reply::Bulk(b("hashtable"))
    );
    assert_eq!(run(&mut db, &["smembers", "i"]), rset(&["-3", "10", "2"]));
    run(&mut db, &["sunionstore", "i2", "i"]);
    assert_eq!(
        run(&mut db, &["object", "encoding", "i2"]),
        Reply::Bulk(b("intset"))
    );
    // 513 integers: a hashtable, and it stays one
    for n in 0..513 {
        run(&mut db, &["sadd", "many", &n.to_string()]);
        let want = if n < 512 { "intset" } else { "hashtable" };
        assert_eq!(
            run(&mut db, &["object", "encoding", "many"]),
            Reply::Bulk(b(want)),
            "{n}"
        );
    }
    run(&mut db, &["srem", "many", "0", "1", "2"]);
    assert_eq!(
        run(&mut db, &["object", "encoding", "many"]),
        Reply::Bulk(b("hashtable"))
    );
    // an integer past i64 or not canonical makes a hashtable
    run(&mut db, &["sadd", "big", "1", "9223372036854775808"]);
    assert_eq!(
        run(&mut db, &["object", "encoding", "big"]),
        Reply::Bulk(b("hashtable"))
    );
    assert_eq!(run(&mut db, &["type", "s"]), Reply::Status("set".into()));
    // SREM; an emptied set is removed
    assert_eq!(run(&mut db, &["srem", "s", "a", "zz", "a"]), Reply::Int(1));
    assert_eq!(run(&mut db, &["srem", "nope", "a"]), Reply::Int(0));
    assert_eq!(run(&mut db, &["srem", "s", "b", "c", "d"]), Reply::Int(2));
    assert_eq!(db.get(b"s", 0), None);
    assert_eq!(run(&mut db, &["smembers", "s"]), Reply::Set(vec![]));
}

#[test]
fn every_set_command_refuses_other_types_and_others_refuse_sets() {
    let mut db = Db::new();
    run(&mut db, &["set", "str", "v"]);
    run(&mut db, &["sadd", "s", "a"]);
    for cmd in [
        &["sadd", "str", "a"][..],
        &["srem", "str", "a"],
        &["scard", "str"],
        &["sismember", "str", "a"],
        &["smismember", "str", "a"],
        &["smembers", "str"],
        &["spop", "str"],
        &["spop", "str", "0"],
        &["srandmember", "str"],
        &["srandmember", "str", "0"],
        &["smove", "str", "s", "a"],
        &["smove", "s", "str", "a"],
        &["sinter", "nope", "str"],
        &["sunion", "s", "str"],
        &["sdiff", "nope", "str"],
        &["sintercard", "2", "nope", "str"],
        &["sinterstore", "d", "nope", "str"],
        &["sunionstore", "d", "str"],
        &["sdiffstore", "d", "s", "str"],
        &["sscan", "str", "0"],
        &["sscan", "str", "0", "count", "0"],
        &["get", "s"],
        &["append", "s", "x"],
        &["incr", "s"],
        &["hset", "s", "f", "v"],
        &["hget", "s", "f"],
        &["lpush", "s", "x"],
        &["llen", "s"],
    ] {
        assert_eq!(run(&mut db, cmd), err(WRONGTYPE), "{cmd:?}");
    }
    assert!(db.get(b"d", 0).is_none(), "a refused store stores nothing");
    // every refused write was refused before it was logged
    for cmd in [
        &["sadd", "str", "a"][..],
        &["spop", "str"],
        &["smove", "s", "str", "a"],
        &["sdiffstore", "d", "s", "str"],
        &["hset", "s", "f", "v"],
    ] {
        let Action::Write(w) = parse(a(cmd), 0).1 else {
            panic!("{cmd:?} is a write")
        };
        assert!(w.may_fail());
        assert_eq!(w.precheck(&db, 0), Some(err(WRONGTYPE)), "{cmd:?}");
    }
    // a missing source answers 0 whatever the destination holds
    assert_eq!(run(&mut db, &["smove", "nope", "str", "a"]), Reply::Int(0));
    // and SET over a set replaces it
    assert_eq!(run(&mut db, &["set", "s", "v", "get"]), err(WRONGTYPE));
    assert_eq!(run(&mut db, &["set", "s", "v"]), Reply::Ok);
    assert_eq!(db.get(b"s", 0), Some(&Value::Str(b("v"))));
}

#[test]
fn argument_errors_are_redis_7s() {
    let mut db = Db::new();
    run(&mut db, &["sadd", "s", "a", "b"]);
    let numkeys = "ERR numkeys should be greater than 0";
    let too_many = "ERR Number of keys can't be greater than number of args";
    let limit = "ERR LIMIT can't be negative";
    for (cmd, e) in [
        (&["sintercard", "0", "s"][..], numkeys),
        (&["sintercard", "a", "s"], numkeys),
        (&["sintercard", "-1", "s"], numkeys),
        (&["sintercard", "2", "s"], too_many),
        (&["sintercard", "1", "s", "t"], SYNTAX),
        (&["sintercard", "1", "s", "LIMIT"], SYNTAX),
        (&["sintercard", "1", "s", "LIMIT", "-1"], limit),
        (&["sintercard", "1", "s", "limit", "a"], limit),
        (&["spop", "s", "-1"], "ERR value is out of range, must be positive"),
        (&["spop", "s", "a"], "ERR value is out of range, must be positive"),
        (&["spop", "s", "1", "2"], SYNTAX),
        (&["srandmember", "s", "1", "2"], SYNTAX),
        (&["srandmember", "s", "a"], "ERR value is not an integer or out of range"),
        (
            &["srandmember", "s", "-9223372036854775808"],
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ),
        (&["sscan", "s", "x"], "ERR invalid cursor"),
        (&["sscan", "s", "0", "count", "0"], SYNTAX),
        (&["sscan", "s", "0", "match"], SYNTAX),
        (&["smismember", "s"], "ERR wrong number of arguments for 'smismember' command"),
        (&["sintercard", "1"], "ERR wrong number of arguments for 'sintercard' command"),
        (&["smove", "a", "b"], "ERR wrong number of arguments for 'smove' command"),
        (&["sinterstore", "d"], "ERR wrong number of arguments for 'sinterstore' command"),
    ] {
        assert_eq!(run(&mut db, cmd), err(e), "{cmd:?}");
    }
    // options are read after the type check, as Redis does
    assert_eq!(
        run(&mut db, &["sscan", "nope", "0", "count", "0"]),
        Reply::Array(vec![Reply::Bulk(b("0")), Reply::Array(vec![])])
    );
    // the last LIMIT wins
    assert_eq!(
        run(
            &mut db,
            &["sintercard", "1", "s", "limit", "5", "limit", "1"]
        ),
        Reply::Int(1)
    );
}

#[test]
fn algebra_and_stores() {
    let mut db = Db::new();
    run(&mut db, &["sadd", "a", "1", "2", "3", "x"]);
    run(&mut db, &["sadd", "b", "2", "3", "4", "x"]);
    run(&mut db, &["sadd", "c", "3", "x", "y"]);
    assert_eq!(run(&mut db, &["sinter", "a", "b", "c"]), rset(&["3", "x"]));
    assert_eq!(run(&mut db, &["sinter", "a", "nope"]), Reply::Set(vec![]));
    assert_eq!(
        members(&run(&mut db, &["sunion", "a", "nope", "c"])),
        set_of(&["1", "2", "3", "x", "y"])
    );
    assert_eq!(run(&mut db, &["sdiff", "a", "b", "nope"]), rset(&["1"]));
    assert_eq!(run(&mut db, &["sdiff", "a", "a"]), Reply::Set(vec![]));
    assert_eq!(run(&mut db, &["sdiff", "nope", "a"]), Reply::Set(vec![]));
    for (limit, n) in [("0", 2), ("1", 1), ("2", 2), ("10", 2)] {
        assert_eq!(
            run(&mut db, &["sintercard", "3", "a", "b", "c", "limit", limit]),
            Reply::Int(n)
        );
    }
    assert_eq!(run(&mut db, &["sintercard", "1", "nope"]), Reply::Int(0));
    // an intset result lists numerically
    run(&mut db, &["sadd", "n", "10", "9", "x"]);
    run(&mut db, &["sadd", "m", "10", "9", "8"]);
    assert_eq!(run(&mut db, &["sinter", "n", "m"]), rset(&["9", "10"]));

    // stores replace the destination whatever it held, and drop its TTL
    run(&mut db, &["set", "d", "str"]);
    run(&mut db, &["expire", "d", "100"]);
    assert_eq!(run(&mut db, &["sinterstore", "d", "a", "b"]), Reply::Int(3));
    assert_eq!(
        members(&run(&mut db, &["smembers", "d"])),
        set_of(&["2", "3", "x"])
    );
    assert_eq!(db.entry(b"d", 0).unwrap().expire_at_ms(), None);
    // the destination may be a source
    assert_eq!(run(&mut db, &["sunionstore", "d", "d", "c"]), Reply::Int(4));
    assert_eq!(
        members(&run(&mut db, &["smembers", "d"])),
        set_of(&["2", "3", "x", "y"])
    );
    assert_eq!(run(&mut db, &["sdiffstore", "d", "d", "a"]), Reply::Int(1));
    assert_eq!(run(&mut db, &["smembers", "d"]), rset(&["y"]));
    // an empty result deletes the destination
    assert_eq!(run(&mut db, &["sdiffstore", "d", "a", "a"]), Reply::Int(0));
    assert_eq!(db.get(b"d", 0), None);
    run(&mut db, &["set", "d", "str"]);
    assert_eq!(
        run(&mut db, &["sinterstore", "d", "nope", "a"]),
        Reply::Int(0)
    );
    assert_eq!(db.get(b"d", 0), None);
}

#[test]
fn smove_follows_redis() {
    let mut db = Db::new();
    run(&mut db, &["sadd", "a", "1", "x"]);
    run(&mut db, &["sadd", "b", "2"]);
    assert_eq!(run(&mut db, &["smove", "a", "b", "zz"]), Reply::Int(0));
    assert_eq!(run(&mut db, &["smove", "a", "a", "x"]), Reply::Int(1));
    assert_eq!(run(&mut db, &["smove", "a", "a", "zz"]), Reply::Int(0));
    assert_eq!(run(&mut db, &["smove", "a", "b", "x"]), Reply::Int(1));
    assert_eq!(run(&mut db, &["smembers", "b"]), rset(&["2", "x"]));
    assert_eq!(run(&mut db, &["smove", "a", "c", "1"]), Reply::Int(1));
    assert_eq!(db.get(b"a", 0), None, "an emptied source is removed");
    assert_eq!(run(&mut db, &["smembers", "c"]), rset(&["1"]));
    // a member the destination already has
    run(&mut db, &["sadd", "a", "2"]);
    assert_eq!(run(&mut db, &["smove", "a", "b", "2"]), Reply::Int(1));
    assert_eq!(run(&mut db, &["scard", "b"]), Reply::Int(2));
    assert_eq!(db.get(b"a", 0), None);
}

#[test]
fn spop_and_srandmember() {
    let mut db = Db::new();
    let all = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let mut cmd = vec!["sadd", "s"];
    cmd.extend(all);
    run(&mut db, &cmd);
    assert_eq!(run(&mut db, &["spop", "nope"]), Reply::Nil);
    assert_eq!(run(&mut db, &["spop", "nope", "3"]), Reply::Set(vec![]));
    assert_eq!(run(&mut db, &["spop", "s", "0"]), Reply::Set(vec![]));
    let mut popped = BTreeSet::new();
    let Reply::Bulk(one) = run(&mut db, &["spop", "s"]) else {
        panic!()
    };
    popped.insert(one);
    let three = members(&run(&mut db, &["spop", "s", "3"]));
    assert_eq!(three.len(), 3);
    popped.extend(three);
    assert_eq!(run(&mut db, &["scard", "s"]), Reply::Int(6));
    let rest = members(&run(&mut db, &["smembers", "s"]));
    assert!(popped.is_disjoint(&rest));
    // SRANDMEMBER: distinct for a positive count, repeats for a negative one
    assert_eq!(members(&run(&mut db, &["srandmember", "s", "100"])), rest);
    let Reply::Array(four) = run(&mut db, &["srandmember", "s", "4"]) else {
        panic!()
    };
    let four = members(&Reply::Array(four));
    assert_eq!(four.len(), 4);
    assert!(four.is_subset(&rest));
    let Reply::Array(many) = run(&mut db, &["srandmember", "s", "-50"]) else {
        panic!()
    };
    assert_eq!(many.len(), 50);
    assert!(members(&Reply::Array(many)).is_subset(&rest));
    assert_eq!(
        run(&mut db, &["srandmember", "s", "0"]),
        Reply::Array(vec![])
    );
    assert_eq!(
        run(&mut db, &["srandmember", "nope", "-3"]),
        Reply::Array(vec![])
    );
    assert_eq!(run(&mut db, &["srandmember", "nope"]), Reply::Nil);
    let Reply::Bulk(m) = run(&mut db, &["srandmember", "s"]) else {
        panic!()
    };
    assert!(rest.contains(&m));
    // a count that takes everything removes the key
    assert_eq!(members(&run(&mut db, &["spop", "s", "6"])), rest);
    assert_eq!(db.get(b"s", 0), None);
    // a reply the count would make huge is refused, not built
    run(&mut db, &["sadd", "s", "a"]);
    let huge = format!("-{}", MAX_RANDOM_REPLY_BYTES / 17 + 1);
    assert!(run(&mut db, &["srandmember", "s", &huge]).is_error());
}

/// Each request executed as the execution core does (precheck, settle,
/// encode, apply), with the payload logged.
fn execute(db: &mut Db, args: &[&str], now_ms: u64, log: &mut Vec<Record>) -> Reply {
    match parse(a(args), now_ms).1 {
        Action::Write(mut w) => {
            if let Some(e) = w.precheck(db, now_ms) {
                return e;
            }
            w.settle(db, now_ms);
            let p = payload(&*w);
            log.push(Record {
                seq: log.len() as u64 + 1,
                timestamp_ms: now_ms,
                payload: p,
            });
            w.apply_boxed(db, now_ms)
        }
        _ => run(db, args),
    }
}

#[test]
fn a_replayed_log_gives_the_state_and_replies_served_spop_included() {
    let mut live = Db::new();
    let mut log = Vec::new();
    let mut replies = Vec::new();
    let script: &[&[&str]] = &[
        &[
            "sadd", "s", "1", "2", "3", "4", "5", "6", "7", "8", "a", "b",
        ],
        &["spop", "s"],
        &["spop", "s", "3"],
        &["sadd", "t", "2", "3", "x"],
        &["smove", "s", "t", "4"],
        &["smove", "s", "t", "a"],
        &["sinterstore", "u", "s", "t"],
        &["sunionstore", "v", "s", "t", "nope"],
        &["sdiffstore", "w", "t", "s"],
        &["srem", "t", "x", "y"],
        &["spop", "t", "0"],
        &["spop", "v", "1000"],
        &["pexpire", "w", "500"],
        &["spop", "w", "2"],
        &["spop", "nope"],
        &["sadd", "t", "z"],
        &["spop", "s", "2"],
    ];
    for (i, cmd) in script.iter().enumerate() {
        replies.push(execute(&mut live, cmd, 1_000 + i as u64, &mut log));
    }
    assert!(!replies.iter().any(Reply::is_error), "{replies:?}");
    assert_eq!(log.len(), script.len(), "every write is logged");
    // popping everything is logged as such, not as the members
    let every = SPop::decode(&log[11].payload).unwrap();
    assert!(every.every && every.members.is_empty(), "{every:?}");
    let mut replayed = Db::new();
    let again: Vec<Reply> = log
        .iter()
        .map(|r| replayed.apply_record(r).unwrap())
        .collect();
    assert_eq!(replayed, live);
    assert_eq!(again, replies);
    // and replaying once more, from the payloads alone, still agrees
    let mut third = Db::new();
    for r in &log {
        third.apply_logged(r).unwrap();
    }
    assert_eq!(third, live);
}

#[test]
fn payload_bytes_are_pinned() {
    let k = |s: &str| [&(s.len() as u32).to_le_bytes()[..], s.as_bytes()].concat();
    let cases: Vec<(&[&str], Vec<u8>)> = vec![
        (
            &["sadd", "k", "a", "b"],
            [&[32u8][..], &k("k"), &2u32.to_le_bytes(), &k("a"), &k("b")].concat(),
        ),
        (
            &["srem", "k", "a"],
            [&[33u8][..], &k("k"), &1u32.to_le_bytes(), &k("a")].concat(),
        ),
        (
            &["smove", "k", "d", "a"],
            [&[35u8][..], &k("k"), &k("d"), &k("a")].concat(),
        ),
        (
            &["sdiffstore", "d", "k", "j"],
            [
                &[36u8, 2][..],
                &k("d"),
                &2u32.to_le_bytes(),
                &k("k"),
                &k("j"),
            ]
            .concat(),
        ),
        (
            &["sinterstore", "d", "k"],
            [&[36u8, 0][..], &k("d"), &1u32.to_le_bytes(), &k("k")].concat(),
        ),
    ];
    for (args, bytes) in cases {
        let mut out = Vec::new();
        let Action::Write(w) = parse(a(args), 0).1 else {
            panic!("{args:?}")
        };
        w.encode_into(&mut out);
        assert_eq!(out, bytes, "{args:?}");
        assert_eq!(payload(&*decode_payload(&bytes).unwrap()), bytes);
    }
    // SPOP as settled against a set: the members it removes
    let spop = SPop {
        key: b("k"),
        count: Some(1),
        members: vec![b("a")],
        every: false,
    };
    let bytes = [&[34u8][..], &k("k"), &[1], &1u32.to_le_bytes(), &k("a")].concat();
    assert_eq!(payload(&spop), bytes);
    let every = SPop {
        key: b("k"),
        count: Some(u64::MAX),
        members: vec![],
        every: true,
    };
    assert_eq!(
        payload(&every),
        [&[34u8][..], &k("k"), &[3], &0u32.to_le_bytes()].concat()
    );
    assert_eq!(SPop::decode(&payload(&every)).unwrap(), every);
    // unknown flags, "every" with members, several members without a count
    for bad in [
        [&[34u8][..], &k("k"), &[4], &0u32.to_le_bytes()].concat(),
        [&[34u8][..], &k("k"), &[3], &1u32.to_le_bytes(), &k("a")].concat(),
        [&[34u8][..], &k("k"), &[2], &0u32.to_le_bytes()].concat(),
        [
            &[34u8][..],
            &k("k"),
            &[0],
            &2u32.to_le_bytes(),
            &k("a"),
            &k("b"),
        ]
        .concat(),
        [&[36u8, 3][..], &k("d"), &1u32.to_le_bytes(), &k("k")].concat(),
        [&[36u8, 0][..], &k("d"), &0u32.to_le_bytes()].concat(),
    ] {
        assert!(
            matches!(decode_payload(&bad), Err(DecodeError::Invalid { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn set_effects_round_trip_and_truncation_is_refused() {
    let effects: Vec<Box<dyn Write>> = vec![
        Box::new(SAdd {
            key: b("s"),
            members: vec![b("a"), b(""), b("1")],
        }),
        Box::new(SRem {
            key: b("s"),
            members: vec![b("a")],
        }),
        Box::new(SPop {
            key: b("s"),
            count: None,
            members: vec![b("1")],
            every: false,
        }),
        Box::new(SMove {
            source: b("s"),
            destination: b("t"),
            member: b(""),
        }),
        Box::new(SStore {
            op: sets::SetOp::Union,
            destination: b("u"),
            keys: vec![b("s"), b("t")],
        }),
    ];
    let mut db = Db::new();
    for w in effects {
        let p = payload(&*w);
        assert_eq!(payload(&*decode_payload(&p).unwrap()), p);
        assert_eq!(describe_payload(&p).unwrap(), w.describe());
        for cut in 0..p.len() {
            assert!(decode_payload(&p[..cut]).is_err(), "{w:?} cut {cut}");
        }
        assert!(!w.apply_boxed(&mut db, 0).is_error());
    }
    assert_eq!(db.get(b"s", 0), None, "emptied by the move");
    assert_eq!(db.get(b"u", 0), Some(&Value::Set(Members::from([b("")]))));
}

#[test]
fn sscan_visits_every_member_and_intsets_come_whole() {
    let mut db = Db::new();
    let mut cmd: Vec<String> = vec!["sadd".into(), "i".into()];
    cmd.extend((0..100).map(|i| i.to_string()));
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    run(&mut db, &cmd);
    let Reply::Array(parts) = run(&mut db, &["sscan", "i", "0", "count", "5"]) else {
        panic!()
    };
    assert_eq!(parts[0], Reply::Bulk(b("0")), "an intset comes whole");
    let Reply::Array(items) = &parts[1] else {
        panic!()
    };
    assert_eq!(items.len(), 100);
    assert_eq!(items[..3], bulks(&["0", "1", "2"]).as_array()[..]);
    // a hashtable: cursors, every member exactly once, MATCH applied
    let mut cmd: Vec<String> = vec!["sadd".into(), "h".into()];
    cmd.extend((0..300).map(|i| format!("m{i}")));
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    run(&mut db, &cmd);
    let mut cursor = b("0");
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let c = String::from_utf8(cursor.clone()).unwrap();
        let Reply::Array(parts) = run(&mut db, &["sscan", "h", &c, "match", "m1*"]) else {
            panic!()
        };
        calls += 1;
        let (Reply::Bulk(next), Reply::Array(items)) = (&parts[0], &parts[1]) else {
            panic!()
        };
        seen.extend(items.iter().cloned());
        if next == b"0" {
            break;
        }
        cursor = next.clone();
    }
    assert!(calls > 10, "COUNT 10 per call: {calls} calls");
    let want: BTreeSet<Vec<u8>> = (0..300)
        .map(|i| format!("m{i}").into_bytes())
        .filter(|m| m.starts_with(b"m1"))
        .collect();
    assert_eq!(seen.len(), want.len(), "no member twice");
    assert_eq!(members(&Reply::Array(seen)), want);
}

trait AsArray {
    fn as_array(&self) -> &[Reply];
}

impl AsArray for Reply {
    fn as_array(&self) -> &[Reply] {
        match self {
            Reply::Array(v) | Reply::Set(v) => v,
            _ => &[],
        }
    }
}
