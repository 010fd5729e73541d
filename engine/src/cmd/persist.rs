//! PERSIST key
//!
//! ```text
//!  op 8 | key:bytes
//! ```

use super::codec::{put_bytes, quote, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::Db;
use crate::pubsub::class;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persist {
    pub key: Vec<u8>,
}

impl Command for Persist {
    const NAME: &'static str = "persist";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<Persist>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::write(Persist {
            key: args.swap_remove(1),
        }))
    }
}

impl Effect for Persist {
    const OP: u8 = 8;
    const NAME: &'static str = "PERSIST";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<Persist, DecodeError> {
        Ok(Persist { key: d.bytes()? })
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        match db.live_mut(&self.key, now_ms) {
            Some(e) if e.expire_at_ms().is_some() => {
                e.set_expire_at_ms(None);
                db.notify(class::GENERIC, "persist", &self.key);
                Reply::Int(1)
            }
            _ => Reply::Int(0),
        }
    }

    fn describe(&self) -> String {
        format!("PERSIST {}", quote(&self.key))
    }
}
