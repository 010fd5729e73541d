//! TYPE key

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct Type {
    key: Vec<u8>,
}

impl Command for Type {
    const NAME: &'static str = "type";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(Type {
            key: args.swap_remove(1),
        }))
    }
}

impl Read for Type {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let name = ctx
            .db
            .get(&self.key, ctx.now_ms)
            .map_or("none", |v| v.type_name());
        Reply::Status(name.to_string())
    }
}
