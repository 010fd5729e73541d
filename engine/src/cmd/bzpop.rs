//! BZPOPMIN key [key ...] timeout, BZPOPMAX key [key ...] timeout,
//! BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
//!
//! Blocking sorted-set pops (see [`crate::blocking`]). Nothing of their
//! own is logged: a served pop is the `ZPOPPED` effect (op 43, resolved by
//! [`super::zpop::pop`]) of the one key it popped from.

use super::zpop::{parse_mpop, pop, Shape};
use super::zset::get_zset;
use super::{effect, Action, Command, EffectSpec, Flags, Keys, Resolved, ZPopped};
use crate::blocking::{parse_timeout, Attempt, Block, Blocking, Served};
use crate::db::Db;
use crate::reply::Reply;

/// A sorted-set pop waiting on `keys`.
#[derive(Debug)]
pub struct BZPop {
    keys: Vec<Vec<u8>>,
    max: bool,
    /// BZMPOP's count (its reply is `[key, [[member, score] …]]`); None:
    /// BZPOPMIN/BZPOPMAX (`[key, member, score]`).
    count: Option<u64>,
}

impl Blocking for BZPop {
    fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    fn attempt(&self, db: &Db, now_ms: u64, ready: Option<&[u8]>) -> Attempt {
        let candidates: Vec<&[u8]> = match ready {
            Some(k) => vec![k],
            None => self.keys.iter().map(Vec::as_slice).collect(),
        };
        for k in candidates {
            match get_zset(db, k, now_ms) {
                // at the command's own execution a key of another type met
                // first is WRONGTYPE; a ready key of another type keeps the
                // client waiting (Redis 7.0)
                Err(e) if ready.is_none() => return Attempt::Fail(e),
                Ok(Some(z)) if !z.is_empty() => {
                    let (shape, n) = match self.count {
                        Some(n) => (Shape::Keyed, n),
                        None => (Shape::One, 1),
                    };
                    let keys = [k.to_vec()];
                    return match pop(db, &keys, self.max, n, shape, Reply::NilArray, now_ms) {
                        Resolved::Write(effect) => Attempt::Serve(Served {
                            effect,
                            keys: keys.to_vec(),
                            // ZPOPMIN's `[member, score]` behind the key
                            prefix: self.count.is_none().then(|| k.to_vec()),
                        }),
                        Resolved::Reply(e) => Attempt::Fail(e),
                    };
                }
                _ => {}
            }
        }
        Attempt::Wait
    }
}

fn parse_bzpop(mut args: Vec<Vec<u8>>, max: bool) -> Result<Action, Reply> {
    let timeout = parse_timeout(args.last().expect("arity"))?;
    args.pop();
    args.remove(0);
    Ok(Action::Block(Block::new(
        BZPop {
            keys: args,
            max,
            count: None,
        },
        timeout,
    )))
}

pub struct BZPopMin;

impl Command for BZPopMin {
    const NAME: &'static str = "bzpopmin";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, -2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<ZPopped>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_bzpop(args, false)
    }
}

pub struct BZPopMax;

impl Command for BZPopMax {
    const NAME: &'static str = "bzpopmax";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, -2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<ZPopped>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_bzpop(args, true)
    }
}

pub struct BZMPop;

impl Command for BZMPop {
    const NAME: &'static str = "bzmpop";
    const ARITY: i64 = -5;
    const FLAGS: Flags = Flags::WRITE;
    // movable keys: a write of BZMPOP counts as touching every watched key
    const KEYS: Keys = Keys::NONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<ZPopped>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        // as Redis's zmpopGenericCommand: the timeout first
        let timeout = parse_timeout(&args[1])?;
        let (keys, max, count) = parse_mpop(&args, 2)?;
        Ok(Action::Block(Block::new(
            BZPop {
                keys,
                max,
                count: Some(count),
            },
            timeout,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::Write;
    use crate::db::ZSet;
    use crate::db::{Entry, Value};

    fn db_with(key: &[u8], members: &[(&str, f64)]) -> Db {
        let mut z = ZSet::default();
        for (m, s) in members {
            z.insert(m.as_bytes().to_vec(), *s);
        }
        let mut db = Db::new();
        db.insert_entry(key.to_vec(), Entry::new(Value::ZSet(z)));
        db
    }

    fn served(a: Attempt) -> Served {
        match a {
            Attempt::Serve(s) => s,
            other => panic!("not served: {other:?}"),
        }
    }

    #[test]
    fn bzpopmin_serves_the_lowest_behind_its_key() {
        let mut db = db_with(b"z", &[("a", 1.0), ("b", 2.0)]);
        let op = BZPop {
            keys: vec![b"missing".to_vec(), b"z".to_vec()],
            max: false,
            count: None,
        };
        let s = served(op.attempt(&db, 0, None));
        assert_eq!(s.keys, vec![b"z".to_vec()]);
        let reply = Box::new(s).apply_boxed(&mut db, 0);
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::Bulk(b"z".to_vec()),
                Reply::Bulk(b"a".to_vec()),
                Reply::Double(1.0)
            ])
        );
    }

    #[test]
    fn bzmpop_pops_count_highest_keyed() {
        let mut db = db_with(b"z", &[("a", 1.0), ("b", 2.0), ("c", 3.0)]);
        let op = BZPop {
            keys: vec![b"z".to_vec()],
            max: true,
            count: Some(2),
        };
        let reply = Box::new(served(op.attempt(&db, 0, None))).apply_boxed(&mut db, 0);
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::Bulk(b"z".to_vec()),
                Reply::Array(vec![
                    Reply::Array(vec![Reply::Bulk(b"c".to_vec()), Reply::Double(3.0)]),
                    Reply::Array(vec![Reply::Bulk(b"b".to_vec()), Reply::Double(2.0)]),
                ]),
            ])
        );
    }

    #[test]
    fn wrong_type_fails_at_once_but_waits_when_ready() {
        let mut db = Db::new();
        db.insert_entry(b"s".to_vec(), Entry::new(Value::Str(b"x".to_vec())));
        let op = BZPop {
            keys: vec![b"s".to_vec()],
            max: false,
            count: None,
        };
        assert!(matches!(op.attempt(&db, 0, None), Attempt::Fail(_)));
        assert!(matches!(op.attempt(&db, 0, Some(b"s")), Attempt::Wait));
        let empty = BZPop {
            keys: vec![b"none".to_vec()],
            max: false,
            count: None,
        };
        assert!(matches!(empty.attempt(&db, 0, None), Attempt::Wait));
    }
}
