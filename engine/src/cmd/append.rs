//! APPEND key value
//!
//! ```text
//!  op 6 | key:bytes | value:bytes
//! ```

use super::codec::{put_bytes, quote, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Value, MAX_STRING_BYTES};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Command for Append {
    const NAME: &'static str = "append";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<Append>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let value = args.pop().expect("arity checked");
        let key = args.pop().expect("arity checked");
        Ok(Action::write(Append { key, value }))
    }
}

impl Effect for Append {
    const OP: u8 = 6;
    const NAME: &'static str = "APPEND";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_bytes(out, &self.value);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<Append, DecodeError> {
        Ok(Append {
            key: d.bytes()?,
            value: d.bytes()?,
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
            Some(Value::Str(s)) if s.len() + self.value.len() > MAX_STRING_BYTES => {
                Some(Reply::error(reply::STRING_TOO_LONG))
            }
            _ => None,
        }
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        match db.live_mut(&self.key, now_ms) {
            None => {
                let n = self.value.len() as i64;
                db.notify(class::STRING, "append", &self.key);
                db.insert_entry(self.key, Entry::new(Value::Str(self.value)));
                Reply::Int(n)
            }
            Some(Entry {
                value: Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_),
                ..
            }) => Reply::error(reply::WRONGTYPE),
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => {
                if s.len() + self.value.len() > MAX_STRING_BYTES {
                    return Reply::error(reply::STRING_TOO_LONG);
                }
                s.extend_from_slice(&self.value);
                let n = s.len() as i64;
                db.notify(class::STRING, "append", &self.key);
                Reply::Int(n)
            }
        }
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.key])
    }

    fn describe(&self) -> String {
        format!("APPEND {} {}", quote(&self.key), quote(&self.value))
    }
}
