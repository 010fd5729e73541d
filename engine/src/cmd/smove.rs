//! SMOVE source destination member
//!
//! ```text
//!  op 35 | source:bytes | destination:bytes | member:bytes
//! ```

use super::codec::{put_bytes, quote, DecodeError, Decoder};
use super::sets::check_set;
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Members, Value};
use crate::pubsub::class;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SMove {
    pub source: Vec<u8>,
    pub destination: Vec<u8>,
    pub member: Vec<u8>,
}

impl Command for SMove {
    const NAME: &'static str = "smove";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, 2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<SMove>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::write(SMove {
            member: args.pop().expect("arity"),
            destination: args.pop().expect("arity"),
            source: args.pop().expect("arity"),
        }))
    }
}

impl SMove {
    /// Redis's order: a missing source answers 0 whatever the destination
    /// holds; then both types are checked.
    fn check(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        db.get(&self.source, now_ms)?;
        check_set(db, &self.source, now_ms).or_else(|| check_set(db, &self.destination, now_ms))
    }
}

impl Effect for SMove {
    const OP: u8 = 35;
    const NAME: &'static str = "SMOVE";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.source);
        put_bytes(out, &self.destination);
        put_bytes(out, &self.member);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<SMove, DecodeError> {
        Ok(SMove {
            source: d.bytes()?,
            destination: d.bytes()?,
            member: d.bytes()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        self.check(db, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        if let Some(e) = self.check(db, now_ms) {
            return e;
        }
        let Ok(Some(src)) = db.set_mut(&self.source, now_ms) else {
            return Reply::Int(0);
        };
        if self.source == self.destination {
            return Reply::Int(i64::from(src.contains(&self.member)));
        }
        if !src.remove(&self.member) {
            return Reply::Int(0);
        }
        if src.is_empty() {
            db.remove(&self.source);
            db.notify(class::SET, "srem", &self.source);
            db.notify(class::GENERIC, "del", &self.source);
        } else {
            db.notify(class::SET, "srem", &self.source);
        }
        let added = match db.set_mut(&self.destination, now_ms) {
            Ok(Some(dst)) => dst.insert(self.member),
            Ok(None) => {
                db.insert_entry(
                    self.destination.clone(),
                    Entry::new(Value::Set(Members::from([self.member]))),
                );
                true
            }
            // checked above: the source's removal changed no type
            Err(e) => return e.into(),
        };
        if added {
            db.notify(class::SET, "sadd", &self.destination);
        }
        Reply::Int(1)
    }

    fn describe(&self) -> String {
        format!(
            "SMOVE {} {} {}",
            quote(&self.source),
            quote(&self.destination),
            quote(&self.member)
        )
    }
}
