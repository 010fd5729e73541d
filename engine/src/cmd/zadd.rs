//! ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...],
//! ZINCRBY key increment member
//!
//! ZADD without INCR is logged as sent (its outcome is a function of the
//! state), unless it changes nothing: then, as Redis writes nothing to its
//! AOF, nothing is logged. ZADD INCR and ZINCRBY are logged as the score they set
//! (`ZSETSCORE`), so that float arithmetic is never redone on replay; an
//! increment that changes nothing (NX on a member, GT/LT refusing) is
//! answered without logging.
//!
//! ```text
//!  ZADD       op 40 | key:bytes | flags u8 | n u32 | n × (member:bytes score f64)
//!             flags: 1 NX, 2 XX, 4 GT, 8 LT, 16 CH
//!  ZSETSCORE  op 41 | key:bytes | member:bytes | score f64
//! ```

use super::codec::{put_bytes, put_u8, quote, DecodeError, Decoder};
use super::zset::{
    check_zset, drop_if_empty, get_score, get_scored, get_zset, put_score, put_scored, score_text,
    zset_or_new, NAN_SCORE, NOT_FLOAT,
};
use super::{
    effect, syntax_error, Action, Command, Effect, EffectSpec, Flags, Keys, Request, Resolved,
};
use crate::db::Db;
use crate::reply::{self, Reply};
use crate::zset::parse_score;

const NX: u8 = 1;
const XX: u8 = 2;
const GT: u8 = 4;
const LT: u8 = 8;
const CH: u8 = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct ZAdd {
    pub key: Vec<u8>,
    pub flags: u8,
    pub items: Vec<(Vec<u8>, f64)>,
}

impl Command for ZAdd {
    const NAME: &'static str = "zadd";
    const ARITY: i64 = -4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<ZAdd>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let mut flags = 0u8;
        let mut incr = false;
        let mut i = 2;
        while i < args.len() {
            match args[i].to_ascii_lowercase().as_slice() {
                b"nx" => flags |= NX,
                b"xx" => flags |= XX,
                b"ch" => flags |= CH,
                b"gt" => flags |= GT,
                b"lt" => flags |= LT,
                b"incr" => incr = true,
                _ => break,
            }
            i += 1;
        }
        let n = args.len() - i;
        if n == 0 || n % 2 == 1 {
            return Err(syntax_error());
        }
        let has = |f| flags & f != 0;
        if has(NX) && has(XX) {
            return Err(Reply::error(
                "ERR XX and NX options at the same time are not compatible",
            ));
        }
        if (has(GT) && has(NX)) || (has(LT) && has(NX)) || (has(GT) && has(LT)) {
            return Err(Reply::error(
                "ERR GT, LT, and/or NX options at the same time are not compatible",
            ));
        }
        if incr && n > 2 {
            return Err(Reply::error(
                "ERR INCR option supports a single increment-element pair",
            ));
        }
        let mut items = Vec::with_capacity(n / 2);
        let rest = args.split_off(i);
        let mut it = rest.into_iter();
        while let (Some(s), Some(m)) = (it.next(), it.next()) {
            let score = parse_score(&s).ok_or_else(|| Reply::error(NOT_FLOAT))?;
            items.push((m, score));
        }
        let key = args.swap_remove(1);
        if incr {
            let (member, incr) = items.pop().expect("one pair");
            return Ok(Action::request(ZIncr {
                key,
                member,
                incr,
                flags: flags & !CH,
            }));
        }
        Ok(Action::request(ZAdd { key, flags, items }))
    }
}

impl ZAdd {
    /// True when applying changes the set (Redis writes nothing to its AOF
    /// otherwise: neither does the engine to its log).
    fn changes(&self, z: Option<&crate::db::ZSet>) -> bool {
        let has = |f| self.flags & f != 0;
        let Some(z) = z else {
            return !has(XX);
        };
        self.items
            .iter()
            .any(|(member, score)| match z.score(member) {
                Some(_) if has(NX) => false,
                Some(cur) if (has(LT) && *score >= cur) || (has(GT) && *score <= cur) => false,
                Some(cur) => *score != cur,
                None => !has(XX),
            })
    }
}

/// A ZADD that changes nothing is answered without logging.
impl Request for ZAdd {
    fn resolve(self, db: &Db, now_ms: u64) -> Resolved {
        match get_zset(db, &self.key, now_ms) {
            Err(e) => Resolved::Reply(e),
            Ok(z) if !self.changes(z) => Resolved::Reply(Reply::Int(0)),
            Ok(_) => Resolved::Write(Box::new(self)),
        }
    }
}

impl Effect for ZAdd {
    const OP: u8 = 40;
    const NAME: &'static str = "ZADD";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_u8(out, self.flags);
        put_scored(out, &self.items);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<ZAdd, DecodeError> {
        let key = d.bytes()?;
        let flags = d.u8()?;
        if flags & !(NX | XX | GT | LT | CH) != 0 {
            return Err(DecodeError::Invalid {
                what: "ZADD flags",
                value: u64::from(flags),
            });
        }
        Ok(ZAdd {
            key,
            flags,
            items: get_scored(d)?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        check_zset(db, &self.key, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let has = |f| self.flags & f != 0;
        match get_zset(db, &self.key, now_ms) {
            Err(e) => return e,
            Ok(None) if has(XX) => return Reply::Int(0),
            Ok(_) => {}
        }
        let z = zset_or_new(db, &self.key, now_ms).expect("checked");
        let (mut added, mut updated) = (0, 0);
        for (member, score) in self.items {
            match z.score(&member) {
                Some(_) if has(NX) => {}
                Some(cur) if (has(LT) && score >= cur) || (has(GT) && score <= cur) => {}
                Some(cur) => {
                    if score != cur {
                        z.insert(member, score);
                        updated += 1;
                    }
                }
                None if has(XX) => {}
                None => {
                    z.insert(member, score);
                    added += 1;
                }
            }
        }
        if added + updated > 0 {
            db.notify(crate::pubsub::class::ZSET, "zadd", &self.key);
        }
        drop_if_empty(db, &self.key, now_ms);
        Reply::Int(if has(CH) { added + updated } else { added })
    }

    fn describe(&self) -> String {
        let mut s = format!("ZADD {}", quote(&self.key));
        for (f, name) in [(NX, "NX"), (XX, "XX"), (GT, "GT"), (LT, "LT"), (CH, "CH")] {
            if self.flags & f != 0 {
                s.push(' ');
                s.push_str(name);
            }
        }
        s + &super::zset::describe_scored(&self.items)
    }
}

// ---------------------------------------------------------------- increments

pub struct ZIncrBy;

impl Command for ZIncrBy {
    const NAME: &'static str = "zincrby";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<ZSetScore>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        // ZADD's parser: an option word where the increment goes leaves
        // an odd number of arguments
        if matches!(
            args[2].to_ascii_lowercase().as_slice(),
            b"nx" | b"xx" | b"ch" | b"gt" | b"lt" | b"incr"
        ) {
            return Err(syntax_error());
        }
        let incr = parse_score(&args[2]).ok_or_else(|| Reply::error(NOT_FLOAT))?;
        let member = args.pop().expect("arity");
        Ok(Action::request(ZIncr {
            key: args.swap_remove(1),
            member,
            incr,
            flags: 0,
        }))
    }
}

/// ZADD INCR / ZINCRBY before it meets the state.
#[derive(Debug)]
struct ZIncr {
    key: Vec<u8>,
    member: Vec<u8>,
    incr: f64,
    flags: u8,
}

impl Request for ZIncr {
    fn resolve(self, db: &Db, now_ms: u64) -> Resolved {
        let has = |f| self.flags & f != 0;
        let z = match get_zset(db, &self.key, now_ms) {
            Err(e) => return Resolved::Reply(e),
            Ok(z) => z,
        };
        let score = match z.and_then(|z| z.score(&self.member)) {
            None if has(XX) => return Resolved::Reply(Reply::Nil),
            None => self.incr,
            Some(_) if has(NX) => return Resolved::Reply(Reply::Nil),
            Some(cur) => {
                let new = cur + self.incr;
                if new.is_nan() {
                    return Resolved::Reply(Reply::error(NAN_SCORE));
                }
                if (has(LT) && new >= cur) || (has(GT) && new <= cur) {
                    return Resolved::Reply(Reply::Nil);
                }
                if new == cur {
                    return Resolved::Reply(Reply::Double(new));
                }
                new
            }
        };
        Resolved::Write(Box::new(ZSetScore {
            key: self.key,
            member: self.member,
            score,
        }))
    }
}

/// Sets one member's score (the outcome of an increment).
#[derive(Debug, Clone, PartialEq)]
pub struct ZSetScore {
    pub key: Vec<u8>,
    pub member: Vec<u8>,
    pub score: f64,
}

impl Effect for ZSetScore {
    const OP: u8 = 41;
    const NAME: &'static str = "ZSETSCORE";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_bytes(out, &self.member);
        put_score(out, self.score);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<ZSetScore, DecodeError> {
        Ok(ZSetScore {
            key: d.bytes()?,
            member: d.bytes()?,
            score: get_score(d)?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        check_zset(db, &self.key, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        match zset_or_new(db, &self.key, now_ms) {
            Some(z) => {
                z.insert(self.member, self.score);
                db.notify(crate::pubsub::class::ZSET, "zincr", &self.key);
                Reply::Double(self.score)
            }
            None => Reply::error(reply::WRONGTYPE),
        }
    }

    fn describe(&self) -> String {
        format!(
            "ZADD {} {} {}",
            quote(&self.key),
            score_text(self.score),
            quote(&self.member)
        )
    }
}
