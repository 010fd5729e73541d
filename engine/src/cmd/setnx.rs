//! SETNX key value: 1 when set, 0 when the key exists.
//!
//! ```text
//!  op 13 | key:bytes | value:bytes
//! ```

use super::codec::{put_bytes, quote, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Value};
use crate::pubsub::class;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetNx {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Command for SetNx {
    const NAME: &'static str = "setnx";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<SetNx>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let value = args.swap_remove(2);
        Ok(Action::write(SetNx {
            key: args.swap_remove(1),
            value,
        }))
    }
}

impl Effect for SetNx {
    const OP: u8 = 13;
    const NAME: &'static str = "SETNX";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_bytes(out, &self.value);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<SetNx, DecodeError> {
        Ok(SetNx {
            key: d.bytes()?,
            value: d.bytes()?,
        })
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        if db.live_mut(&self.key, now_ms).is_some() {
            return Reply::Int(0);
        }
        db.notify(class::STRING, "set", &self.key);
        db.insert_entry(self.key, Entry::new(Value::Str(self.value)));
        Reply::Int(1)
    }

    fn describe(&self) -> String {
        format!("SETNX {} {}", quote(&self.key), quote(&self.value))
    }
}
