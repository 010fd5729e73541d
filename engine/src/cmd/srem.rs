//! SREM key member [member ...]
//!
//! ```text
//!  op 33 | key:bytes | n u32 | n × member:bytes
//! ```

use super::codec::{describe_words, put_bytes, put_list, quote, DecodeError, Decoder};
use super::sets::check_set;
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::Db;
use crate::pubsub::class;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SRem {
    pub key: Vec<u8>,
    pub members: Vec<Vec<u8>>,
}

impl Command for SRem {
    const NAME: &'static str = "srem";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<SRem>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let members = args.split_off(2);
        Ok(Action::write(SRem {
            key: args.swap_remove(1),
            members,
        }))
    }
}

/// Removes `members` from the set at `key` (the key goes when emptied);
/// how many were there. None: no set at `key`.
pub fn remove_members<'m>(
    db: &mut Db,
    key: &[u8],
    members: impl IntoIterator<Item = &'m Vec<u8>>,
    now_ms: u64,
    event: &'static str,
) -> Option<usize> {
    let s = db.set_mut(key, now_ms).ok()??;
    let removed = members.into_iter().filter(|m| s.remove(m)).count();
    let emptied = s.is_empty();
    if emptied {
        db.remove(key);
    }
    if removed > 0 {
        db.notify(class::SET, event, key);
        if emptied {
            db.notify(class::GENERIC, "del", key);
        }
    }
    Some(removed)
}

impl Effect for SRem {
    const OP: u8 = 33;
    const NAME: &'static str = "SREM";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_list(out, &self.members);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<SRem, DecodeError> {
        Ok(SRem {
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
        if let Some(e) = check_set(db, &self.key, now_ms) {
            return e;
        }
        let removed = remove_members(db, &self.key, &self.members, now_ms, "srem").unwrap_or(0);
        Reply::Int(removed as i64)
    }

    fn describe(&self) -> String {
        describe_words(
            &format!("SREM {}", quote(&self.key)),
            self.members.iter().map(Vec::as_slice),
        )
    }
}
