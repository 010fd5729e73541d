//! DEL key [key ...]
//!
//! ```text
//!  op 4 | n u32 | n × key:bytes
//! ```

use super::codec::{describe_words, put_list, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::Db;
use crate::pubsub::class;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Del {
    pub keys: Vec<Vec<u8>>,
}

impl Command for Del {
    const NAME: &'static str = "del";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, -1, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<Del>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::write(Del {
            keys: args.into_iter().skip(1).collect(),
        }))
    }
}

impl Effect for Del {
    const OP: u8 = 4;
    const NAME: &'static str = "DEL";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_list(out, &self.keys);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<Del, DecodeError> {
        Ok(Del { keys: d.list()? })
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let mut n = 0;
        for k in &self.keys {
            if db.live_mut(k, now_ms).is_some() {
                db.remove(k);
                db.notify(class::GENERIC, "del", k);
                n += 1;
            }
        }
        Reply::Int(n)
    }

    fn describe(&self) -> String {
        describe_words("DEL", self.keys.iter().map(Vec::as_slice))
    }
}
