//! GETDEL key
//!
//! ```text
//!  op 2 | key:bytes
//! ```

use super::codec::{put_bytes, quote, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetDel {
    pub key: Vec<u8>,
}

impl Command for GetDel {
    const NAME: &'static str = "getdel";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<GetDel>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::write(GetDel {
            key: args.swap_remove(1),
        }))
    }
}

impl Effect for GetDel {
    const OP: u8 = 2;
    const NAME: &'static str = "GETDEL";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<GetDel, DecodeError> {
        Ok(GetDel { key: d.bytes()? })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        match db.get(&self.key, now_ms) {
            Some(Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)) => {
                Some(Reply::error(reply::WRONGTYPE))
            }
            _ => None,
        }
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        match db.live_mut(&self.key, now_ms) {
            None => Reply::Nil,
            Some(Entry {
                value: Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_),
                ..
            }) => Reply::error(reply::WRONGTYPE),
            Some(_) => match db.remove(&self.key) {
                Some(e) if db.notifies(class::GENERIC) => {
                    db.notify(class::GENERIC, "del", &self.key);
                    match e.value {
                        Value::Str(s) => Reply::Bulk(s),
                        _ => Reply::Nil,
                    }
                }
                Some(Entry {
                    value: Value::Str(s),
                    ..
                }) => Reply::Bulk(s),
                _ => Reply::Nil,
            },
        }
    }

    fn describe(&self) -> String {
        format!("GETDEL {}", quote(&self.key))
    }
}
