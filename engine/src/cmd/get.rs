//! GET key

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::Value;
use crate::reply::{self, Reply};

pub struct Get {
    key: Vec<u8>,
}

impl Command for Get {
    const NAME: &'static str = "get";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(Get {
            key: args.swap_remove(1),
        }))
    }
}

impl Read for Get {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get(&self.key, ctx.now_ms) {
            None => Reply::Nil,
            Some(Value::Str(s)) => Reply::Bulk(s.clone()),
            Some(Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)) => {
                Reply::error(reply::WRONGTYPE)
            }
        }
    }
}
