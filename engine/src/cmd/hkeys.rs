//! HKEYS key, HVALS key

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct HKeysRead {
    key: Vec<u8>,
    values: bool,
}

impl Read for HKeysRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get_hash(&self.key, ctx.now_ms) {
            Err(e) => e.into(),
            Ok(None) => Reply::Array(vec![]),
            Ok(Some(h)) => Reply::Array(
                h.iter()
                    .map(|(f, v)| Reply::Bulk(if self.values { v } else { f }.to_vec()))
                    .collect(),
            ),
        }
    }
}

/// HKEYS key
pub struct HKeys;

impl Command for HKeys {
    const NAME: &'static str = "hkeys";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(HKeysRead {
            key: args.swap_remove(1),
            values: false,
        }))
    }
}

/// HVALS key
pub struct HVals;

impl Command for HVals {
    const NAME: &'static str = "hvals";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(HKeysRead {
            key: args.swap_remove(1),
            values: true,
        }))
    }
}
