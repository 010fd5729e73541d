//! INCRBY key delta, and INCR, DECR, DECRBY logged as INCRBY.
//!
//! ```text
//!  op 5 | key:bytes | delta i64
//! ```

use super::arg::parse_i64;
use super::codec::{put_bytes, put_i64, quote, DecodeError, Decoder};
use super::{effect, not_integer, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrBy {
    pub key: Vec<u8>,
    pub delta: i64,
}

fn incr_by(mut args: Vec<Vec<u8>>, delta: i64) -> Result<Action, Reply> {
    Ok(Action::write(IncrBy {
        key: args.swap_remove(1),
        delta,
    }))
}

impl Command for IncrBy {
    const NAME: &'static str = "incrby";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<IncrBy>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let delta = parse_i64(&args[2]).ok_or_else(not_integer)?;
        incr_by(args, delta)
    }
}

/// INCR key
pub struct Incr;

impl Command for Incr {
    const NAME: &'static str = "incr";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<IncrBy>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        incr_by(args, 1)
    }
}

/// DECR key
pub struct Decr;

impl Command for Decr {
    const NAME: &'static str = "decr";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<IncrBy>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        incr_by(args, -1)
    }
}

/// DECRBY key delta
pub struct DecrBy;

impl Command for DecrBy {
    const NAME: &'static str = "decrby";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<IncrBy>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let delta = parse_i64(&args[2]).ok_or_else(not_integer)?;
        let neg = delta
            .checked_neg()
            .ok_or_else(|| Reply::error(reply::DECR_OVERFLOW))?;
        incr_by(args, neg)
    }
}

impl Effect for IncrBy {
    const OP: u8 = 5;
    const NAME: &'static str = "INCRBY";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_i64(out, self.delta);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<IncrBy, DecodeError> {
        Ok(IncrBy {
            key: d.bytes()?,
            delta: d.i64()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        match db.get(&self.key, now_ms) {
            Some(Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)) => {
                Some(Reply::error(reply::WRONGTYPE))
            }
            Some(Value::Str(s)) => match parse_i64(s) {
                None => Some(not_integer()),
                Some(n) if n.checked_add(self.delta).is_none() => {
                    Some(Reply::error(reply::OVERFLOW))
                }
                Some(_) => None,
            },
            None => None,
        }
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        match db.live_mut(&self.key, now_ms) {
            None => {
                db.notify(class::STRING, "incrby", &self.key);
                db.insert_entry(
                    self.key,
                    Entry::new(Value::Str(self.delta.to_string().into_bytes())),
                );
                Reply::Int(self.delta)
            }
            Some(Entry {
                value: Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_),
                ..
            }) => Reply::error(reply::WRONGTYPE),
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => {
                let Some(cur) = parse_i64(s) else {
                    return not_integer();
                };
                let Some(new) = cur.checked_add(self.delta) else {
                    return Reply::error(reply::OVERFLOW);
                };
                *s = new.to_string().into_bytes();
                db.notify(class::STRING, "incrby", &self.key);
                Reply::Int(new)
            }
        }
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.key])
    }

    fn describe(&self) -> String {
        format!("INCRBY {} {}", quote(&self.key), self.delta)
    }
}
