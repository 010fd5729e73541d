//! HSET key field value [field value ...]
//!
//! ```text
//!  op 9 | key:bytes | n u32 | n × (field:bytes value:bytes)
//! ```

use super::codec::{put_bytes, put_pairs, quote, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Hash, Pairs, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HSet {
    pub key: Vec<u8>,
    pub pairs: Pairs,
}

impl Command for HSet {
    const NAME: &'static str = "hset";
    const ARITY: i64 = -4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<HSet>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        if !args.len().is_multiple_of(2) {
            return Err(Reply::arity(<Self as Command>::NAME));
        }
        let mut it = args.into_iter().skip(1);
        let key = it.next().expect("arity checked");
        let mut pairs = Vec::new();
        while let (Some(f), Some(v)) = (it.next(), it.next()) {
            pairs.push((f, v));
        }
        Ok(Action::write(HSet { key, pairs }))
    }
}

impl Effect for HSet {
    const OP: u8 = 9;
    const NAME: &'static str = "HSET";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_pairs(out, &self.pairs);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<HSet, DecodeError> {
        Ok(HSet {
            key: d.bytes()?,
            pairs: d.pairs()?,
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
        if db.live_mut(&self.key, now_ms).is_none() {
            db.insert_entry(self.key.clone(), Entry::new(Value::Hash(Hash::new())));
        }
        let h = match db.live_mut(&self.key, now_ms) {
            Some(Entry {
                value: Value::Hash(h),
                ..
            }) => h,
            _ => return Reply::error(reply::WRONGTYPE),
        };
        let mut added = 0;
        for (f, v) in self.pairs {
            if h.insert(f, v) {
                added += 1;
            }
        }
        db.notify(class::HASH, "hset", &self.key);
        Reply::Int(added)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.key])
    }

    fn describe(&self) -> String {
        let mut s = format!("HSET {}", quote(&self.key));
        for (f, v) in &self.pairs {
            s.push_str(&format!(" {} {}", quote(f), quote(v)));
        }
        s
    }
}
