//! BLPOP key [key ...] timeout, BRPOP key [key ...] timeout,
//! BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout,
//! BRPOPLPUSH source destination timeout,
//! BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
//!
//! Blocking list pops (see [`crate::blocking`]). Nothing of their own is
//! logged: a served pop is logged as the effect it is, `POP` (op 25),
//! `LMOVE` (op 30) or `LMPOP` (op 31) of the one key it popped from.

use super::list::side;
use super::{effect, syntax_error, Action, Command, EffectSpec, Flags, Keys, LMPop, LMove, Pop};
use crate::blocking::{parse_timeout, Attempt, Block, Blocking, Served};
use crate::db::Db;
use crate::reply::{self, Reply};

/// The keys to try: the ready one, or every key in order.
fn candidates<'a>(keys: &'a [Vec<u8>], ready: Option<&'a [u8]>) -> Vec<&'a [u8]> {
    match ready {
        Some(k) => vec![k],
        None => keys.iter().map(Vec::as_slice).collect(),
    }
}

/// The first candidate holding a list with elements. At the command's own
/// execution a key of another type met first is WRONGTYPE; a ready key of
/// another type keeps the client waiting (Redis 7.0).
fn first_list<'a>(
    db: &Db,
    now_ms: u64,
    keys: &'a [Vec<u8>],
    ready: Option<&'a [u8]>,
) -> Result<Option<&'a [u8]>, Reply> {
    for k in candidates(keys, ready) {
        match db.get_list(k, now_ms) {
            Err(_) if ready.is_none() => return Err(Reply::error(reply::WRONGTYPE)),
            Ok(Some(l)) if !l.is_empty() => return Ok(Some(k)),
            _ => {}
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------- BLPOP, BRPOP

/// BLPOP/BRPOP waiting on `keys`.
#[derive(Debug)]
pub struct BPop {
    keys: Vec<Vec<u8>>,
    head: bool,
}

impl Blocking for BPop {
    fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    fn attempt(&self, db: &Db, now_ms: u64, ready: Option<&[u8]>) -> Attempt {
        match first_list(db, now_ms, &self.keys, ready) {
            Err(e) => Attempt::Fail(e),
            Ok(None) => Attempt::Wait,
            Ok(Some(k)) => Attempt::Serve(Served {
                effect: Box::new(Pop {
                    key: k.to_vec(),
                    head: self.head,
                    count: None,
                }),
                keys: vec![k.to_vec()],
                prefix: Some(k.to_vec()),
            }),
        }
    }
}

fn parse_bpop(mut args: Vec<Vec<u8>>, head: bool) -> Result<Action, Reply> {
    let timeout = parse_timeout(args.last().expect("arity"))?;
    args.pop();
    args.remove(0);
    Ok(Action::Block(Block::new(
        BPop { keys: args, head },
        timeout,
    )))
}

pub struct BLPop;

impl Command for BLPop {
    const NAME: &'static str = "blpop";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, -2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<Pop>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_bpop(args, true)
    }
}

pub struct BRPop;

impl Command for BRPop {
    const NAME: &'static str = "brpop";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, -2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<Pop>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_bpop(args, false)
    }
}

// ---------------------------------------------------------------- BLMOVE, BRPOPLPUSH

/// BLMOVE/BRPOPLPUSH waiting on its source.
#[derive(Debug)]
pub struct BMove {
    /// The source, the only key waited on.
    source: [Vec<u8>; 1],
    destination: Vec<u8>,
    from_head: bool,
    to_head: bool,
}

impl Blocking for BMove {
    fn keys(&self) -> &[Vec<u8>] {
        &self.source
    }

    fn attempt(&self, db: &Db, now_ms: u64, ready: Option<&[u8]>) -> Attempt {
        match first_list(db, now_ms, &self.source, ready) {
            Err(e) => Attempt::Fail(e),
            Ok(None) => Attempt::Wait,
            Ok(Some(_)) => {
                // the destination is checked once there is something to
                // move: WRONGTYPE then, even to a client that waited
                if let Some(e) = super::list::check_list(db, &self.destination, now_ms) {
                    return Attempt::Fail(e);
                }
                let [source] = self.source.clone();
                Attempt::Serve(Served {
                    keys: vec![source.clone(), self.destination.clone()],
                    effect: Box::new(LMove {
                        source,
                        destination: self.destination.clone(),
                        from_head: self.from_head,
                        to_head: self.to_head,
                    }),
                    prefix: None,
                })
            }
        }
    }

    /// Blocked, its timeout is a null array (Redis 7.0); not allowed to
    /// block (MULTI), a null bulk like LMOVE's.
    fn empty_reply(&self) -> Reply {
        Reply::Nil
    }
}

pub struct BLMove;

impl Command for BLMove {
    const NAME: &'static str = "blmove";
    const ARITY: i64 = 6;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, 2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<LMove>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let (Some(from_head), Some(to_head)) = (side(&args[3]), side(&args[4])) else {
            return Err(syntax_error());
        };
        let timeout = parse_timeout(&args[5])?;
        args.truncate(3);
        let destination = args.pop().expect("arity");
        let source = args.pop().expect("arity");
        Ok(Action::Block(Block::new(
            BMove {
                source: [source],
                destination,
                from_head,
                to_head,
            },
            timeout,
        )))
    }
}

pub struct BRPopLPush;

impl Command for BRPopLPush {
    const NAME: &'static str = "brpoplpush";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, 2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<LMove>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let timeout = parse_timeout(&args[3])?;
        args.truncate(3);
        let destination = args.pop().expect("arity");
        let source = args.pop().expect("arity");
        Ok(Action::Block(Block::new(
            BMove {
                source: [source],
                destination,
                from_head: false,
                to_head: true,
            },
            timeout,
        )))
    }
}

// ---------------------------------------------------------------- BLMPOP

/// BLMPOP waiting on its keys.
#[derive(Debug)]
pub struct BMPop(LMPop);

impl Blocking for BMPop {
    fn keys(&self) -> &[Vec<u8>] {
        &self.0.keys
    }

    fn attempt(&self, db: &Db, now_ms: u64, ready: Option<&[u8]>) -> Attempt {
        match first_list(db, now_ms, &self.0.keys, ready) {
            Err(e) => Attempt::Fail(e),
            Ok(None) => Attempt::Wait,
            Ok(Some(k)) => Attempt::Serve(Served {
                effect: Box::new(LMPop {
                    keys: vec![k.to_vec()],
                    head: self.0.head,
                    count: self.0.count,
                }),
                keys: vec![k.to_vec()],
                prefix: None,
            }),
        }
    }
}

pub struct BLMPop;

impl Command for BLMPop {
    const NAME: &'static str = "blmpop";
    const ARITY: i64 = -5;
    const FLAGS: Flags = Flags::WRITE;
    // movable keys, like LMPOP
    const KEYS: Keys = Keys::NONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<LMPop>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        // Redis parses numkeys, the keys, LEFT|RIGHT and COUNT first
        let timeout = args.remove(1);
        let lmpop = LMPop::parse_args(&args)?;
        let timeout = parse_timeout(&timeout)?;
        Ok(Action::Block(Block::new(BMPop(lmpop), timeout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{self, Effect};

    fn args(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|a| a.as_bytes().to_vec()).collect()
    }

    fn block(s: &str) -> Block {
        let a = args(s);
        match cmd::resolve(&a).map(|spec| spec.parse(a, 0)) {
            Ok(Action::Block(b)) => b,
            Ok(Action::Reply(r)) => panic!("{s}: {r:?}"),
            _ => panic!("{s}: not a block"),
        }
    }

    fn reply(s: &str) -> Reply {
        let a = args(s);
        match cmd::resolve(&a).map(|spec| spec.parse(a, 0)) {
            Ok(Action::Reply(r)) => r,
            Err((_, r)) => r,
            _ => panic!("{s}: no reply"),
        }
    }

    fn db_with(key: &str, vals: &[&str]) -> Db {
        let mut db = Db::new();
        cmd::Push {
            key: key.as_bytes().to_vec(),
            head: false,
            only_existing: false,
            elements: vals.iter().map(|v| v.as_bytes().to_vec()).collect(),
        }
        .apply(&mut db, 0);
        db
    }

    /// Serves `b` now (MULTI semantics): the reply and the logged text.
    fn now(b: &Block, db: &mut Db) -> (Reply, Option<String>) {
        match b.now(db, 0) {
            Action::Write(w) => {
                let mut p = Vec::new();
                w.encode_into(&mut p);
                let text = cmd::describe_payload(&p).unwrap();
                (w.apply_boxed(db, 0), Some(text))
            }
            Action::Reply(r) => (r, None),
            _ => panic!("unexpected action"),
        }
    }

    fn b(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn served_now_replies_like_redis_and_logs_the_plain_pop() {
        let mut db = db_with("l", &["a", "b", "c"]);
        let (r, log) = now(&block("BLPOP none l 0"), &mut db);
        assert_eq!(r, Reply::Array(vec![b("l"), b("a")]));
        assert_eq!(log.as_deref(), Some("LPOP \"l\""));
        let (r, log) = now(&block("BRPOP l 1.5"), &mut db);
        assert_eq!(r, Reply::Array(vec![b("l"), b("c")]));
        assert_eq!(log.as_deref(), Some("RPOP \"l\""));
        let (r, log) = now(&block("BLMPOP 0 2 x l RIGHT COUNT 5"), &mut db);
        assert_eq!(r, Reply::Array(vec![b("l"), Reply::Array(vec![b("b")])]));
        assert_eq!(log.as_deref(), Some("LMPOP 1 \"l\" RIGHT COUNT 5"));
        // empty: the timeout replies
        assert_eq!(now(&block("BLPOP l 0"), &mut db), (Reply::NilArray, None));
        assert_eq!(
            now(&block("BLMOVE l d LEFT RIGHT 0"), &mut db),
            (Reply::Nil, None)
        );
        let mut db = db_with("s", &["x"]);
        let (r, log) = now(&block("BRPOPLPUSH s d 0"), &mut db);
        assert_eq!(
            (r, log.as_deref()),
            (b("x"), Some("LMOVE \"s\" \"d\" RIGHT LEFT"))
        );
    }

    #[test]
    fn wrong_types() {
        let mut db = db_with("l", &["a"]);
        cmd::Set::new(b"str".to_vec(), b"v".to_vec()).apply(&mut db, 0);
        // a key of another type before the first list: WRONGTYPE
        let (r, _) = now(&block("BLPOP str l 0"), &mut db);
        assert!(matches!(r, Reply::Error(e) if e.starts_with("WRONGTYPE")));
        // after it: served
        let (r, _) = now(&block("BLPOP l str 0"), &mut db);
        assert_eq!(r, Reply::Array(vec![b("l"), b("a")]));
        // a ready key of another type keeps the client waiting
        assert!(matches!(
            block("BLPOP str 0").op.attempt(&db, 0, Some(b"str")),
            Attempt::Wait
        ));
        // BLMOVE: destination checked only when the source has elements
        let mut db = db_with("l", &["a"]);
        cmd::Set::new(b"str".to_vec(), b"v".to_vec()).apply(&mut db, 0);
        assert!(matches!(
            block("BLMOVE e str LEFT LEFT 0").op.attempt(&db, 0, None),
            Attempt::Wait
        ));
        assert!(matches!(
            block("BLMOVE l str LEFT LEFT 0")
                .op
                .attempt(&db, 0, Some(b"l")),
            Attempt::Fail(_)
        ));
    }

    #[test]
    fn argument_errors() {
        let err = |s: &str| match reply(s) {
            Reply::Error(e) => e,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(err("BLPOP l -1"), "ERR timeout is negative");
        assert_eq!(
            err("BLPOP l x"),
            "ERR timeout is not a float or out of range"
        );
        assert_eq!(err("BLMOVE a b UP LEFT x"), "ERR syntax error");
        assert_eq!(err("BLMOVE a b LEFT LEFT -1"), "ERR timeout is negative");
        assert_eq!(err("BLMPOP -1 1 l LEFT"), "ERR timeout is negative");
        assert_eq!(
            err("BLMPOP 0 0 l LEFT"),
            "ERR numkeys should be greater than 0"
        );
        assert_eq!(err("BLMPOP 0 1 l UP"), "ERR syntax error");
        assert_eq!(
            err("BLMPOP 0 1 l LEFT COUNT 0"),
            "ERR count should be greater than 0"
        );
        assert!(err("BLPOP l").contains("wrong number of arguments"));
        assert_eq!(
            block("BLPOP a b 0.25").timeout,
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(block("BLPOP a b 0").timeout, None);
        assert_eq!(block("BLPOP a b a 0").op.keys().len(), 3);
    }
}
