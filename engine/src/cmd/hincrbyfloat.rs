//! HINCRBYFLOAT key field increment (Redis's `long double` arithmetic, as
//! INCRBYFLOAT). Logged, as Redis propagates an HSET, as the value it
//! stores ([`HStoreFloat`]); older logs hold the increment (op 23), which
//! replays by computing.
//!
//! ```text
//!  op 23 | key:bytes | field:bytes | increment:bytes    (older logs)
//!  op 66 | key:bytes | field:bytes | value:bytes        (the stored value)
//! ```

use super::codec::{put_bytes, quote, DecodeError, Decoder};
use super::ldouble::LDouble;
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Hash, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HIncrByFloat {
    pub key: Vec<u8>,
    pub field: Vec<u8>,
    pub increment: Vec<u8>,
}

impl Command for HIncrByFloat {
    const NAME: &'static str = "hincrbyfloat";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<HIncrByFloat>());
    const ALSO_LOGS: &'static [EffectSpec] = &[effect::<HStoreFloat>()];

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let increment = args.swap_remove(3);
        // the increment is checked first, before the key is looked at
        match LDouble::parse(&increment) {
            None => return Err(Reply::error(reply::NOT_FLOAT)),
            Some(v) if !v.is_finite() => return Err(Reply::error("ERR value is NaN or Infinity")),
            Some(_) => {}
        }
        let field = args.swap_remove(2);
        Ok(Action::write(HIncrByFloat {
            key: args.swap_remove(1),
            field,
            increment,
        }))
    }
}

impl HIncrByFloat {
    fn result(
        &self,
        current: Result<Option<&Hash>, crate::db::WrongType>,
    ) -> Result<Vec<u8>, Reply> {
        let value = match current?.and_then(|h| h.get(&self.field)) {
            None => LDouble::ZERO,
            Some(v) => {
                LDouble::parse(v).ok_or_else(|| Reply::error("ERR hash value is not a float"))?
            }
        };
        let incr = LDouble::parse(&self.increment).ok_or_else(|| Reply::error(reply::NOT_FLOAT))?;
        value
            .plus(incr)
            .to_human()
            .map(String::into_bytes)
            .ok_or_else(|| Reply::error(reply::NAN_OR_INFINITY))
    }
}

impl Effect for HIncrByFloat {
    const OP: u8 = 23;
    const NAME: &'static str = "HINCRBYFLOAT";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_bytes(out, &self.field);
        put_bytes(out, &self.increment);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<HIncrByFloat, DecodeError> {
        Ok(HIncrByFloat {
            key: d.bytes()?,
            field: d.bytes()?,
            increment: d.bytes()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        self.result(db.get_hash(&self.key, now_ms)).err()
    }

    /// The value's text is at most Redis's `MAX_LONG_DOUBLE_CHARS`.
    const RESOLVE_GROWTH: usize = 5 * 1024;

    fn resolve(self, db: &Db, now_ms: u64) -> Box<dyn super::Write> {
        match self.result(db.get_hash(&self.key, now_ms)) {
            Ok(value) => Box::new(HStoreFloat {
                key: self.key,
                field: self.field,
                value,
            }),
            Err(_) => Box::new(self),
        }
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let new = match self.result(db.get_hash(&self.key, now_ms)) {
            Ok(v) => v,
            Err(e) => return e,
        };
        if db.live_mut(&self.key, now_ms).is_none() {
            db.insert_entry(self.key.clone(), Entry::new(Value::Hash(Hash::new())));
        }
        if let Some(Entry {
            value: Value::Hash(h),
            ..
        }) = db.live_mut(&self.key, now_ms)
        {
            h.insert(self.field, new.clone());
        }
        db.notify(class::HASH, "hincrbyfloat", &self.key);
        Reply::Bulk(new)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.key])
    }

    fn describe(&self) -> String {
        format!(
            "HINCRBYFLOAT {} {} {}",
            quote(&self.key),
            quote(&self.field),
            quote(&self.increment)
        )
    }
}

/// What HINCRBYFLOAT stores: the field's new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HStoreFloat {
    pub key: Vec<u8>,
    pub field: Vec<u8>,
    pub value: Vec<u8>,
}

impl Effect for HStoreFloat {
    const OP: u8 = 66;
    const NAME: &'static str = "HINCRBYFLOAT=";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_bytes(out, &self.field);
        put_bytes(out, &self.value);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<HStoreFloat, DecodeError> {
        Ok(HStoreFloat {
            key: d.bytes()?,
            field: d.bytes()?,
            value: d.bytes()?,
        })
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        match db.live_mut(&self.key, now_ms) {
            Some(Entry {
                value: Value::Hash(h),
                ..
            }) => {
                h.insert(self.field, self.value.clone());
            }
            Some(_) => return Reply::error(reply::WRONGTYPE),
            None => {
                let mut h = Hash::new();
                h.insert(self.field, self.value.clone());
                db.insert_entry(self.key, Entry::new(Value::Hash(h)));
            }
        }
        Reply::Bulk(self.value)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.key])
    }

    fn describe(&self) -> String {
        format!(
            "HINCRBYFLOAT {} {} = {}",
            quote(&self.key),
            quote(&self.field),
            quote(&self.value)
        )
    }
}
