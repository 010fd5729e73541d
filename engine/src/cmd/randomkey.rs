//! RANDOMKEY: a live key chosen at random, nil when there is none. A read:
//! nothing is logged, so replay does not depend on the choice.

use std::hash::BuildHasher;

use super::{Action, Command, Flags, Read, ReadCtx};
use crate::reply::Reply;

pub struct RandomKey;

impl Command for RandomKey {
    const NAME: &'static str = "randomkey";
    const ARITY: i64 = 1;
    const FLAGS: Flags = Flags::READONLY;

    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(RandomKey))
    }
}

impl Read for RandomKey {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.random_key(
            ctx.now_ms,
            std::collections::hash_map::RandomState::new().hash_one(0u8),
        ) {
            Some(k) => Reply::Bulk(k.to_vec()),
            None => Reply::Nil,
        }
    }
}
