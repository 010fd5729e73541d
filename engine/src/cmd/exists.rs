//! EXISTS key [key ...]

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct Exists {
    keys: Vec<Vec<u8>>,
}

impl Command for Exists {
    const NAME: &'static str = "exists";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::range(1, -1, 1);

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(Exists {
            keys: args.into_iter().skip(1).collect(),
        }))
    }
}

impl Read for Exists {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        Reply::Int(
            self.keys
                .iter()
                .filter(|k| ctx.db.entry(k, ctx.now_ms).is_some())
                .count() as i64,
        )
    }
}
