//! MSET key value [key value ...]
//!
//! ```text
//!  op 3 | n u32 | n × (key:bytes value:bytes)
//! ```

use super::codec::{put_pairs, quote, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Pairs, Value};
use crate::pubsub::class;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MSet {
    pub pairs: Pairs,
}

impl Command for MSet {
    const NAME: &'static str = "mset";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, -1, 2);
    const EFFECT: Option<EffectSpec> = Some(effect::<MSet>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        if args.len().is_multiple_of(2) {
            return Err(Reply::arity(<Self as Command>::NAME));
        }
        let mut it = args.into_iter().skip(1);
        let mut pairs = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(Action::write(MSet { pairs }))
    }
}

impl Effect for MSet {
    const OP: u8 = 3;
    const NAME: &'static str = "MSET";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_pairs(out, &self.pairs);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<MSet, DecodeError> {
        Ok(MSet { pairs: d.pairs()? })
    }

    fn apply(self, db: &mut Db, _now_ms: u64) -> Reply {
        for (k, v) in self.pairs {
            db.notify(class::STRING, "set", &k);
            db.insert_entry(k, Entry::new(Value::Str(v)));
        }
        Reply::Ok
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        let keys = self.pairs.iter().map(|(k, _)| k.as_slice()).collect();
        (super::Signal::Success, keys)
    }

    fn describe(&self) -> String {
        let mut s = "MSET".to_string();
        for (k, v) in &self.pairs {
            s.push_str(&format!(" {} {}", quote(k), quote(v)));
        }
        s
    }
}
