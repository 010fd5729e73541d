//! INCRBYFLOAT key increment
//!
//! Computed in software with Redis's x87 `long double` precision
//! ([`super::ldouble`]), so the result is the same on any machine. Logged,
//! as Redis propagates a SET, as the value it stores ([`StoreFloat`], what
//! [`Effect::resolve`] turns the increment into once the state is known):
//! a replay stores those bytes and does not compute again. Logs written
//! before hold the increment (op 22), which replays by computing.
//!
//! ```text
//!  op 22 | key:bytes | increment:bytes      (older logs)
//!  op 65 | key:bytes | value:bytes          (the stored value; the expiry stays)
//! ```

use super::codec::{put_bytes, quote, DecodeError, Decoder};
use super::ldouble::LDouble;
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrByFloat {
    pub key: Vec<u8>,
    pub increment: Vec<u8>,
}

impl Command for IncrByFloat {
    const NAME: &'static str = "incrbyfloat";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<IncrByFloat>());
    const ALSO_LOGS: &'static [EffectSpec] = &[effect::<StoreFloat>()];

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let increment = args.swap_remove(2);
        Ok(Action::write(IncrByFloat {
            key: args.swap_remove(1),
            increment,
        }))
    }
}

impl IncrByFloat {
    /// The new value's text, or the error (Redis's order: type, value,
    /// increment, NaN/Infinity).
    fn result(&self, current: Option<&Value>) -> Result<Vec<u8>, Reply> {
        let value = match current {
            None => LDouble::ZERO,
            Some(Value::Str(s)) => LDouble::parse(s).ok_or_else(not_float)?,
            Some(_) => return Err(Reply::error(reply::WRONGTYPE)),
        };
        let incr = LDouble::parse(&self.increment).ok_or_else(not_float)?;
        value
            .plus(incr)
            .to_human()
            .map(String::into_bytes)
            .ok_or_else(|| Reply::error(reply::NAN_OR_INFINITY))
    }
}

fn not_float() -> Reply {
    Reply::error(reply::NOT_FLOAT)
}

impl Effect for IncrByFloat {
    const OP: u8 = 22;
    const NAME: &'static str = "INCRBYFLOAT";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_bytes(out, &self.increment);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<IncrByFloat, DecodeError> {
        Ok(IncrByFloat {
            key: d.bytes()?,
            increment: d.bytes()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        self.result(db.get(&self.key, now_ms)).err()
    }

    /// The value's text is at most Redis's `MAX_LONG_DOUBLE_CHARS`.
    const RESOLVE_GROWTH: usize = 5 * 1024;

    fn resolve(self, db: &Db, now_ms: u64) -> Box<dyn super::Write> {
        match self.result(db.get(&self.key, now_ms)) {
            Ok(value) => Box::new(StoreFloat {
                key: self.key,
                value,
            }),
            Err(_) => Box::new(self),
        }
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let new = match self.result(db.get(&self.key, now_ms)) {
            Ok(v) => v,
            Err(e) => return e,
        };
        match db.live_mut(&self.key, now_ms) {
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => s.clone_from(&new),
            _ => db.insert_entry(self.key.clone(), Entry::new(Value::Str(new.clone()))),
        }
        db.notify(class::STRING, "incrbyfloat", &self.key);
        Reply::Bulk(new)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.key])
    }

    fn describe(&self) -> String {
        format!(
            "INCRBYFLOAT {} {}",
            quote(&self.key),
            quote(&self.increment)
        )
    }
}

/// What INCRBYFLOAT stores: the value's text, the expiry kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFloat {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Effect for StoreFloat {
    const OP: u8 = 65;
    const NAME: &'static str = "INCRBYFLOAT=";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_bytes(out, &self.value);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<StoreFloat, DecodeError> {
        Ok(StoreFloat {
            key: d.bytes()?,
            value: d.bytes()?,
        })
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        match db.live_mut(&self.key, now_ms) {
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => s.clone_from(&self.value),
            Some(_) => return Reply::error(reply::WRONGTYPE),
            None => db.insert_entry(self.key, Entry::new(Value::Str(self.value.clone()))),
        }
        Reply::Bulk(self.value)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.key])
    }

    fn describe(&self) -> String {
        format!("INCRBYFLOAT {} = {}", quote(&self.key), quote(&self.value))
    }
}
