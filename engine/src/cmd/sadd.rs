//! SADD key member [member ...]
//!
//! ```text
//!  op 32 | key:bytes | n u32 | n × member:bytes
//! ```

use super::codec::{describe_words, put_bytes, put_list, quote, DecodeError, Decoder};
use super::sets::check_set;
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Members, Value};
use crate::pubsub::class;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SAdd {
    pub key: Vec<u8>,
    pub members: Vec<Vec<u8>>,
}

impl Command for SAdd {
    const NAME: &'static str = "sadd";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<SAdd>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let members = args.split_off(2);
        Ok(Action::write(SAdd {
            key: args.swap_remove(1),
            members,
        }))
    }
}

impl Effect for SAdd {
    const OP: u8 = 32;
    const NAME: &'static str = "SADD";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_list(out, &self.members);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<SAdd, DecodeError> {
        Ok(SAdd {
            key: d.bytes()?,
            members: d.list()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        check_set(db, &self.key, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let added = match db.set_mut(&self.key, now_ms) {
            Err(e) => return e.into(),
            Ok(Some(s)) => {
                let mut n = 0;
                for m in self.members {
                    n += usize::from(s.insert(m));
                }
                n
            }
            Ok(None) => {
                let s: Members = self.members.into_iter().collect();
                let n = s.len();
                // an empty SADD is refused by its arity; a decoded one
                // leaves no empty set behind
                if n > 0 {
                    db.insert_entry(self.key.clone(), Entry::new(Value::Set(s)));
                }
                n
            }
        };
        if added > 0 {
            db.notify(class::SET, "sadd", &self.key);
        }
        Reply::Int(added as i64)
    }

    fn describe(&self) -> String {
        describe_words(
            &format!("SADD {}", quote(&self.key)),
            self.members.iter().map(Vec::as_slice),
        )
    }
}
