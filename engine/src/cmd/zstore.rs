//! The logged outcome of ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE and
//! ZRANGESTORE: the resulting sorted set replaces the destination (without
//! expiry), or an empty result deletes it. Computing the result (weights,
//! aggregates) is never redone on replay.
//!
//! ```text
//!  ZSTORE  op 44 | destination:bytes | n u32 | n × (member:bytes score f64)
//!          (n = 0: the destination is deleted)
//! ```

use super::codec::{put_bytes, quote, DecodeError, Decoder};
use super::zset::{describe_scored, get_scored, put_scored};
use super::{Effect, Resolved};
use crate::db::{Db, Entry, Value, ZSet};
use crate::record::MAX_RECORD_BYTES;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq)]
pub struct ZStore {
    pub destination: Vec<u8>,
    pub items: Vec<(Vec<u8>, f64)>,
}

/// A payload this large is refused before anything is applied (it must fit
/// one log record, with room for a transaction around it).
const MAX_STORE_BYTES: usize = MAX_RECORD_BYTES as usize / 2;

impl ZStore {
    /// The store of `items` into `destination`, as a write to log, or the
    /// reply when nothing changes (an empty result and no destination) or
    /// the result is too large to log.
    pub fn resolve(
        destination: Vec<u8>,
        items: Vec<(Vec<u8>, f64)>,
        db: &Db,
        now_ms: u64,
    ) -> Resolved {
        if items.is_empty() && db.get(&destination, now_ms).is_none() {
            return Resolved::Reply(Reply::Int(0));
        }
        let bytes: usize =
            items.iter().map(|(m, _)| m.len() + 12).sum::<usize>() + destination.len();
        if bytes > MAX_STORE_BYTES {
            return Resolved::Reply(Reply::Error(format!(
                "ERR result too large to log as one record ({bytes} bytes, at most {MAX_STORE_BYTES})"
            )));
        }
        Resolved::Write(Box::new(ZStore { destination, items }))
    }
}

impl Effect for ZStore {
    const OP: u8 = 44;
    const NAME: &'static str = "ZSTORE";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.destination);
        put_scored(out, &self.items);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<ZStore, DecodeError> {
        Ok(ZStore {
            destination: d.bytes()?,
            items: get_scored(d)?,
        })
    }

    fn apply(self, db: &mut Db, _now_ms: u64) -> Reply {
        if self.items.is_empty() {
            db.remove(&self.destination);
            return Reply::Int(0);
        }
        let z: ZSet = self.items.into_iter().collect();
        let n = z.len() as i64;
        db.insert_entry(self.destination, Entry::new(Value::ZSet(z)));
        Reply::Int(n)
    }

    fn describe(&self) -> String {
        format!(
            "ZSTORE {}{}",
            quote(&self.destination),
            describe_scored(&self.items)
        )
    }
}
