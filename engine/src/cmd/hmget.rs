//! HMGET key field [field ...]

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct HMGet {
    key: Vec<u8>,
    fields: Vec<Vec<u8>>,
}

impl Command for HMGet {
    const NAME: &'static str = "hmget";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let fields = args.split_off(2);
        Ok(Action::read(HMGet {
            key: args.swap_remove(1),
            fields,
        }))
    }
}

impl Read for HMGet {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get_hash(&self.key, ctx.now_ms) {
            Err(e) => e.into(),
            Ok(h) => Reply::Array(
                self.fields
                    .iter()
                    .map(|f| {
                        h.and_then(|h| h.get(f))
                            .map_or(Reply::Nil, |v| Reply::Bulk(v.to_vec()))
                    })
                    .collect(),
            ),
        }
    }
}
