//! TTL key, PTTL key

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

/// What TTL and PTTL read.
pub struct TtlRead {
    key: Vec<u8>,
    ms: bool,
}

impl Read for TtlRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.entry(&self.key, ctx.now_ms) {
            None => Reply::Int(-2),
            Some(e) => match e.expire_at_ms() {
                None => Reply::Int(-1),
                Some(at) => {
                    let left = at.saturating_sub(ctx.now_ms);
                    Reply::Int(if self.ms { left } else { (left + 500) / 1000 } as i64)
                }
            },
        }
    }
}

/// TTL key
pub struct Ttl;

impl Command for Ttl {
    const NAME: &'static str = "ttl";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(TtlRead {
            key: args.swap_remove(1),
            ms: false,
        }))
    }
}

/// PTTL key
pub struct PTtl;

impl Command for PTtl {
    const NAME: &'static str = "pttl";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(TtlRead {
            key: args.swap_remove(1),
            ms: true,
        }))
    }
}
