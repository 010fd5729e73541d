//! GETRANGE key start end, SUBSTR key start end

use super::arg::parse_i64;
use super::{not_integer, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::Value;
use crate::reply::{self, Reply};

pub struct GetRangeRead {
    key: Vec<u8>,
    start: i64,
    end: i64,
}

fn parse_range(mut args: Vec<Vec<u8>>) -> Result<Action, Reply> {
    let start = parse_i64(&args[2]).ok_or_else(not_integer)?;
    let end = parse_i64(&args[3]).ok_or_else(not_integer)?;
    Ok(Action::read(GetRangeRead {
        key: args.swap_remove(1),
        start,
        end,
    }))
}

/// Redis's GETRANGE index arithmetic: the byte range, or None for "".
pub fn byte_range(len: usize, mut start: i64, mut end: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    if start < 0 && end < 0 && start > end {
        return None;
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return None;
    }
    Some((start as usize, end as usize + 1))
}

impl Read for GetRangeRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get(&self.key, ctx.now_ms) {
            None => Reply::Bulk(Vec::new()),
            Some(Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)) => {
                Reply::error(reply::WRONGTYPE)
            }
            Some(Value::Str(s)) => Reply::Bulk(
                byte_range(s.len(), self.start, self.end)
                    .map(|(a, b)| s[a..b].to_vec())
                    .unwrap_or_default(),
            ),
        }
    }
}

/// GETRANGE key start end
pub struct GetRange;

impl Command for GetRange {
    const NAME: &'static str = "getrange";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_range(args)
    }
}

/// SUBSTR key start end
pub struct Substr;

impl Command for Substr {
    const NAME: &'static str = "substr";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_range(args)
    }
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges_like_redis() {
        assert_eq!(byte_range(5, 0, -1), Some((0, 5)));
        assert_eq!(byte_range(5, -1, -2), None);
        assert_eq!(byte_range(5, -100, 2), Some((0, 3)));
        assert_eq!(byte_range(5, 3, 100), Some((3, 5)));
        assert_eq!(byte_range(0, 0, -1), None);
        assert_eq!(byte_range(5, 4, 2), None);
    }
}
