//! MGET key [key ...]

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::Value;
use crate::reply::Reply;

/// Most value bytes one MGET may return: the same key named many times
/// would otherwise build a reply of (arguments x 16 MiB) in memory, under
/// the state's read lock.
pub const MAX_MGET_REPLY_BYTES: usize = 256 * 1024 * 1024;

pub struct MGet {
    keys: Vec<Vec<u8>>,
}

impl Command for MGet {
    const NAME: &'static str = "mget";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::range(1, -1, 1);

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(MGet {
            keys: args.into_iter().skip(1).collect(),
        }))
    }
}

impl Read for MGet {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let total: usize = self
            .keys
            .iter()
            .map(|k| match ctx.db.get(k, ctx.now_ms) {
                Some(Value::Str(s)) => s.len(),
                _ => 0,
            })
            .sum();
        if total > MAX_MGET_REPLY_BYTES {
            return Reply::Error(format!(
                "ERR reply too large: MGET would return {total} bytes, more than {MAX_MGET_REPLY_BYTES}"
            ));
        }
        Reply::Array(
            self.keys
                .iter()
                .map(|k| match ctx.db.get(k, ctx.now_ms) {
                    Some(Value::Str(s)) => Reply::Bulk(s.clone()),
                    _ => Reply::Nil,
                })
                .collect(),
        )
    }
}
