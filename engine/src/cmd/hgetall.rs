//! HGETALL key

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::Value;
use crate::reply::{self, Reply};

pub struct HGetAll {
    key: Vec<u8>,
}

impl Command for HGetAll {
    const NAME: &'static str = "hgetall";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(HGetAll {
            key: args.swap_remove(1),
        }))
    }
}

impl Read for HGetAll {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get(&self.key, ctx.now_ms) {
            None => Reply::Map(vec![]),
            Some(Value::Hash(h)) => Reply::Map(
                h.iter()
                    .map(|(f, v)| (Reply::Bulk(f.to_vec()), Reply::Bulk(v.to_vec())))
                    .collect(),
            ),
            Some(Value::Str(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)) => {
                Reply::error(reply::WRONGTYPE)
            }
        }
    }
}
