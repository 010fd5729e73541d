//! HLEN key

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::Value;
use crate::reply::{self, Reply};

pub struct HLen {
    key: Vec<u8>,
}

impl Command for HLen {
    const NAME: &'static str = "hlen";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(HLen {
            key: args.swap_remove(1),
        }))
    }
}

impl Read for HLen {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get(&self.key, ctx.now_ms) {
            None => Reply::Int(0),
            Some(Value::Hash(h)) => Reply::Int(h.len() as i64),
            Some(Value::Str(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)) => {
                Reply::error(reply::WRONGTYPE)
            }
        }
    }
}
