//! TOUCH key [key ...]: how many exist (access times are not kept).

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct Touch {
    keys: Vec<Vec<u8>>,
}

impl Command for Touch {
    const NAME: &'static str = "touch";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::range(1, -1, 1);

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(Touch {
            keys: args.into_iter().skip(1).collect(),
        }))
    }
}

impl Read for Touch {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let n = self
            .keys
            .iter()
            .filter(|k| ctx.db.entry(k, ctx.now_ms).is_some())
            .count();
        Reply::Int(n as i64)
    }
}
