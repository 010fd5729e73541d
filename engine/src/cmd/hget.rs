//! HGET key field

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::Value;
use crate::reply::{self, Reply};

pub struct HGet {
    key: Vec<u8>,
    field: Vec<u8>,
}

impl Command for HGet {
    const NAME: &'static str = "hget";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let field = args.pop().expect("arity checked");
        let key = args.pop().expect("arity checked");
        Ok(Action::read(HGet { key, field }))
    }
}

impl Read for HGet {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get(&self.key, ctx.now_ms) {
            None => Reply::Nil,
            Some(Value::Hash(h)) => h
                .get(&self.field)
                .map_or(Reply::Nil, |v| Reply::Bulk(v.to_vec())),
            Some(Value::Str(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)) => {
                Reply::error(reply::WRONGTYPE)
            }
        }
    }
}
