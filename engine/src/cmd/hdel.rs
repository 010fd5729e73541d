//! HDEL key field [field ...]
//!
//! ```text
//!  op 10 | key:bytes | n u32 | n × field:bytes
//! ```

use super::codec::{describe_words, put_bytes, put_list, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HDel {
    pub key: Vec<u8>,
    pub fields: Vec<Vec<u8>>,
}

impl Command for HDel {
    const NAME: &'static str = "hdel";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<HDel>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let mut it = args.into_iter().skip(1);
        let key = it.next().expect("arity checked");
        Ok(Action::write(HDel {
            key,
            fields: it.collect(),
        }))
    }
}

impl Effect for HDel {
    const OP: u8 = 10;
    const NAME: &'static str = "HDEL";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_list(out, &self.fields);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<HDel, DecodeError> {
        Ok(HDel {
            key: d.bytes()?,
            fields: d.list()?,
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
            _ => None,
        }
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let (removed, now_empty) = match db.live_mut(&self.key, now_ms) {
            None => return Reply::Int(0),
            Some(Entry {
                value: Value::Hash(h),
                ..
            }) => {
                let n = self.fields.iter().filter(|f| h.remove(f)).count();
                (n as i64, h.is_empty())
            }
            Some(_) => return Reply::error(reply::WRONGTYPE),
        };
        if removed > 0 {
            db.notify(class::HASH, "hdel", &self.key);
        }
        if now_empty {
            db.remove(&self.key);
            db.notify(class::GENERIC, "del", &self.key);
        }
        Reply::Int(removed)
    }

    fn describe(&self) -> String {
        describe_words(
            &format!("HDEL {}", super::quote(&self.key)),
            self.fields.iter().map(Vec::as_slice),
        )
    }
}
