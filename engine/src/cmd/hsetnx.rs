//! HSETNX key field value: 1 when set, 0 when the field exists.
//!
//! ```text
//!  op 20 | key:bytes | field:bytes | value:bytes
//! ```

use super::codec::{put_bytes, quote, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Hash, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HSetNx {
    pub key: Vec<u8>,
    pub field: Vec<u8>,
    pub value: Vec<u8>,
}

impl Command for HSetNx {
    const NAME: &'static str = "hsetnx";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<HSetNx>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let value = args.swap_remove(3);
        let field = args.swap_remove(2);
        Ok(Action::write(HSetNx {
            key: args.swap_remove(1),
            field,
            value,
        }))
    }
}

impl Effect for HSetNx {
    const OP: u8 = 20;
    const NAME: &'static str = "HSETNX";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_bytes(out, &self.field);
        put_bytes(out, &self.value);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<HSetNx, DecodeError> {
        Ok(HSetNx {
            key: d.bytes()?,
            field: d.bytes()?,
            value: d.bytes()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        db.get_hash(&self.key, now_ms).err().map(Reply::from)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        match db.live_mut(&self.key, now_ms) {
            None => {
                let mut h = Hash::new();
                h.insert(self.field, self.value);
                db.notify(class::HASH, "hset", &self.key);
                db.insert_entry(self.key, Entry::new(Value::Hash(h)));
                Reply::Int(1)
            }
            Some(Entry {
                value: Value::Hash(h),
                ..
            }) => {
                if h.contains_key(&self.field) {
                    return Reply::Int(0);
                }
                h.insert(self.field, self.value);
                db.notify(class::HASH, "hset", &self.key);
                Reply::Int(1)
            }
            Some(_) => Reply::error(reply::WRONGTYPE),
        }
    }

    fn describe(&self) -> String {
        format!(
            "HSETNX {} {} {}",
            quote(&self.key),
            quote(&self.field),
            quote(&self.value)
        )
    }
}
