//! EXPIRETIME key, PEXPIRETIME key: the absolute expiry (-1 none, -2 no
//! key).

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct ExpireTimeRead {
    key: Vec<u8>,
    ms: bool,
}

impl Read for ExpireTimeRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        Reply::Int(match ctx.db.entry(&self.key, ctx.now_ms) {
            None => -2,
            Some(e) => match e.expire_at_ms() {
                None => -1,
                Some(at) if self.ms => at as i64,
                Some(at) => (at as i64 + 500) / 1000,
            },
        })
    }
}

/// EXPIRETIME key
pub struct ExpireTime;

impl Command for ExpireTime {
    const NAME: &'static str = "expiretime";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(ExpireTimeRead {
            key: args.swap_remove(1),
            ms: false,
        }))
    }
}

/// PEXPIRETIME key
pub struct PExpireTime;

impl Command for PExpireTime {
    const NAME: &'static str = "pexpiretime";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(ExpireTimeRead {
            key: args.swap_remove(1),
            ms: true,
        }))
    }
}
