//! KEYS pattern

use super::{glob_match, Action, Command, Flags, Read, ReadCtx};
use crate::reply::Reply;

/// KEYS (named so not to clash with [`super::Keys`]).
pub struct KeysCmd {
    pattern: Vec<u8>,
}

impl Command for KeysCmd {
    const NAME: &'static str = "keys";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(KeysCmd {
            pattern: args.swap_remove(1),
        }))
    }
}

impl Read for KeysCmd {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        Reply::Array(
            ctx.db
                .iter_after(None, ctx.now_ms)
                .filter(|(k, _)| glob_match(&self.pattern, k))
                .map(|(k, _)| Reply::Bulk(k.to_vec()))
                .collect(),
        )
    }
}
