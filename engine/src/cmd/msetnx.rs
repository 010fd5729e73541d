//! MSETNX key value [key value ...]: all or nothing, 1 when set.
//!
//! ```text
//!  op 16 | n u32 | n × (key:bytes value:bytes)
//! ```

use super::codec::{put_pairs, quote, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Pairs, Value};
use crate::pubsub::class;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MSetNx {
    pub pairs: Pairs,
}

impl Command for MSetNx {
    const NAME: &'static str = "msetnx";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, -1, 2);
    const EFFECT: Option<EffectSpec> = Some(effect::<MSetNx>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        if args.len().is_multiple_of(2) {
            return Err(Reply::arity(<Self as Command>::NAME));
        }
        let mut it = args.into_iter().skip(1);
        let mut pairs = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(Action::write(MSetNx { pairs }))
    }
}

impl Effect for MSetNx {
    const OP: u8 = 16;
    const NAME: &'static str = "MSETNX";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_pairs(out, &self.pairs);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<MSetNx, DecodeError> {
        Ok(MSetNx { pairs: d.pairs()? })
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        if self.pairs.iter().any(|(k, _)| db.get(k, now_ms).is_some()) {
            return Reply::Int(0);
        }
        for (k, v) in self.pairs {
            db.notify(class::STRING, "set", &k);
            db.insert_entry(k, Entry::new(Value::Str(v)));
        }
        Reply::Int(1)
    }

    fn describe(&self) -> String {
        let mut s = "MSETNX".to_string();
        for (k, v) in &self.pairs {
            s.push_str(&format!(" {} {}", quote(k), quote(v)));
        }
        s
    }
}
