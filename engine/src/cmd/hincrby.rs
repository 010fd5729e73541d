//! HINCRBY key field delta
//!
//! ```text
//!  op 11 | key:bytes | field:bytes | delta i64
//! ```

use super::arg::parse_i64;
use super::codec::{put_bytes, put_i64, quote, DecodeError, Decoder};
use super::{effect, not_integer, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Hash, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HIncrBy {
    pub key: Vec<u8>,
    pub field: Vec<u8>,
    pub delta: i64,
}

impl Command for HIncrBy {
    const NAME: &'static str = "hincrby";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<HIncrBy>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let delta = parse_i64(&args[3]).ok_or_else(not_integer)?;
        args.truncate(3);
        let field = args.pop().expect("arity checked");
        let key = args.pop().expect("arity checked");
        Ok(Action::write(HIncrBy { key, field, delta }))
    }
}

impl Effect for HIncrBy {
    const OP: u8 = 11;
    const NAME: &'static str = "HINCRBY";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_bytes(out, &self.field);
        put_i64(out, self.delta);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<HIncrBy, DecodeError> {
        Ok(HIncrBy {
            key: d.bytes()?,
            field: d.bytes()?,
            delta: d.i64()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        match db.get(&self.key, now_ms) {
            Some(Value::Str(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)) => {
                Some(Reply::error(reply::WRONGTYPE))
            }
            Some(Value::Hash(h)) => match h.get(&self.field).map(parse_i64) {
                Some(None) => Some(Reply::error(reply::HASH_NOT_INTEGER)),
                Some(Some(n)) if n.checked_add(self.delta).is_none() => {
                    Some(Reply::error(reply::OVERFLOW))
                }
                _ => None,
            },
            None => None,
        }
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let cur = match db.live_mut(&self.key, now_ms) {
            None => None,
            Some(Entry {
                value: Value::Hash(h),
                ..
            }) => h.get(&self.field).map(<[u8]>::to_vec),
            Some(_) => return Reply::error(reply::WRONGTYPE),
        };
        let cur = match cur {
            None => 0,
            Some(v) => match parse_i64(&v) {
                Some(n) => n,
                None => return Reply::error(reply::HASH_NOT_INTEGER),
            },
        };
        let Some(new) = cur.checked_add(self.delta) else {
            return Reply::error(reply::OVERFLOW);
        };
        if db.live_mut(&self.key, now_ms).is_none() {
            db.insert_entry(self.key.clone(), Entry::new(Value::Hash(Hash::new())));
        }
        if let Some(Entry {
            value: Value::Hash(h),
            ..
        }) = db.live_mut(&self.key, now_ms)
        {
            h.insert(self.field, new.to_string().into_bytes());
        }
        db.notify(class::HASH, "hincrby", &self.key);
        Reply::Int(new)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.key])
    }

    fn describe(&self) -> String {
        format!(
            "HINCRBY {} {} {}",
            quote(&self.key),
            quote(&self.field),
            self.delta
        )
    }
}
