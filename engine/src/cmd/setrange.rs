//! SETRANGE key offset value
//!
//! ```text
//!  op 15 | key:bytes | offset u64 | value:bytes
//! ```

use super::arg::parse_i64;
use super::codec::{put_bytes, put_u64, quote, DecodeError, Decoder};
use super::{effect, not_integer, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Value, MAX_STRING_BYTES};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetRange {
    pub key: Vec<u8>,
    pub offset: u64,
    pub value: Vec<u8>,
}

impl Command for SetRange {
    const NAME: &'static str = "setrange";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<SetRange>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let offset = parse_i64(&args[2]).ok_or_else(not_integer)?;
        if offset < 0 {
            return Err(Reply::error(reply::OFFSET_RANGE));
        }
        let value = args.swap_remove(3);
        Ok(Action::write(SetRange {
            key: args.swap_remove(1),
            offset: offset as u64,
            value,
        }))
    }
}

impl SetRange {
    fn too_long(&self) -> bool {
        self.offset.saturating_add(self.value.len() as u64) > MAX_STRING_BYTES as u64
    }
}

impl Effect for SetRange {
    const OP: u8 = 15;
    const NAME: &'static str = "SETRANGE";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_u64(out, self.offset);
        put_bytes(out, &self.value);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<SetRange, DecodeError> {
        Ok(SetRange {
            key: d.bytes()?,
            offset: d.u64()?,
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
            _ if !self.value.is_empty() && self.too_long() => {
                Some(Reply::error(reply::STRING_TOO_LONG))
            }
            _ => None,
        }
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let too_long = !self.value.is_empty() && self.too_long();
        match db.live_mut(&self.key, now_ms) {
            None if self.value.is_empty() => Reply::Int(0),
            None if too_long => Reply::error(reply::STRING_TOO_LONG),
            None => {
                let mut s = vec![0; self.offset as usize];
                s.extend_from_slice(&self.value);
                let n = s.len() as i64;
                db.notify(class::STRING, "setrange", &self.key);
                db.insert_entry(self.key, Entry::new(Value::Str(s)));
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
                if self.value.is_empty() {
                    return Reply::Int(s.len() as i64);
                }
                if too_long {
                    return Reply::error(reply::STRING_TOO_LONG);
                }
                let off = self.offset as usize;
                let end = off + self.value.len();
                if s.len() < end {
                    s.resize(end, 0);
                }
                s[off..end].copy_from_slice(&self.value);
                let n = s.len() as i64;
                db.notify(class::STRING, "setrange", &self.key);
                Reply::Int(n)
            }
        }
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        match self.value.is_empty() {
            true => (super::Signal::Never, Vec::new()),
            false => (super::Signal::Success, vec![&self.key]),
        }
    }

    fn describe(&self) -> String {
        format!(
            "SETRANGE {} {} {}",
            quote(&self.key),
            self.offset,
            quote(&self.value)
        )
    }
}
