//! HMSET key field value [field value ...]: HSET answering OK.
//!
//! ```text
//!  op 21 | key:bytes | n u32 | n × (field:bytes value:bytes)   (HSET's body)
//! ```

use super::codec::{DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, HSet, Keys};
use crate::db::Db;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HMSet(pub HSet);

impl Command for HMSet {
    const NAME: &'static str = "hmset";
    const ARITY: i64 = -4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<HMSet>());

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
        Ok(Action::write(HMSet(HSet { key, pairs })))
    }
}

impl Effect for HMSet {
    const OP: u8 = 21;
    const NAME: &'static str = "HMSET";

    fn encode_body(&self, out: &mut Vec<u8>) {
        self.0.encode_body(out);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<HMSet, DecodeError> {
        Ok(HMSet(HSet::decode_body(d)?))
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        self.0.precheck(db, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        match self.0.apply(db, now_ms) {
            Reply::Int(_) => Reply::Ok,
            other => other,
        }
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.0.key])
    }

    fn describe(&self) -> String {
        format!("HM{}", self.0.describe())
    }
}
