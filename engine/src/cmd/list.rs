//! What the list commands share: Redis's index rules and errors.

use crate::db::{Db, Value};
use crate::reply::{self, Reply};

/// `ERR index out of range` (LSET).
pub const INDEX_RANGE: &str = "ERR index out of range";
/// The count of LPOP/RPOP/LMPOP below zero.
pub const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";

/// WRONGTYPE when `key` holds a live value that is not a list.
pub fn check_list(db: &Db, key: &[u8], now_ms: u64) -> Option<Reply> {
    match db.get(key, now_ms) {
        Some(Value::List(_)) | None => None,
        Some(_) => Some(Reply::error(reply::WRONGTYPE)),
    }
}

/// A Redis index (negative: from the tail) into a list of `len`, or None
/// when out of range.
pub fn index(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { i.checked_add(len as i64)? } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// LRANGE's and LTRIM's range `[start, stop]` (negative: from the tail)
/// clamped to a list of `len`; None when empty.
pub fn range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 {
        start.saturating_add(len)
    } else {
        start
    };
    let mut stop = if stop < 0 {
        stop.saturating_add(len)
    } else {
        stop
    };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return None;
    }
    if stop >= len {
        stop = len - 1;
    }
    Some((start as usize, stop as usize))
}

/// A count parsed as Redis's `getPositiveLongFromObjectOrReply`: a
/// non-integer and a negative number get the same error.
pub fn positive_count(b: &[u8]) -> Result<u64, Reply> {
    match super::arg::parse_i64(b) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(Reply::error(MUST_BE_POSITIVE)),
    }
}

/// An integer >= 1 or the error `msg` (LMPOP's numkeys and COUNT).
pub fn at_least_one(b: &[u8], msg: &str) -> Result<u64, Reply> {
    match super::arg::parse_i64(b) {
        Some(n) if n >= 1 => Ok(n as u64),
        _ => Err(Reply::error(msg)),
    }
}

/// LEFT or RIGHT (any case): true for LEFT; None otherwise.
pub fn side(b: &[u8]) -> Option<bool> {
    match super::arg::upper(b).as_slice() {
        b"LEFT" => Some(true),
        b"RIGHT" => Some(false),
        _ => None,
    }
}

/// A read answering an error decided after the type check (Redis looks the
/// key up before it parses some arguments): `missing` when the key is
/// absent, WRONGTYPE when it is not a list, else `err`.
pub struct ErrAfterLookup {
    pub key: Vec<u8>,
    pub missing: Reply,
    pub err: Reply,
}

impl super::Read for ErrAfterLookup {
    fn read(self: Box<Self>, ctx: &mut super::ReadCtx<'_>) -> Reply {
        match ctx.db.get(&self.key, ctx.now_ms) {
            None => self.missing,
            Some(Value::List(_)) => self.err,
            Some(_) => Reply::error(reply::WRONGTYPE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_and_ranges_follow_redis() {
        assert_eq!(index(3, -1), Some(2));
        assert_eq!(index(3, -4), None);
        assert_eq!(index(3, 3), None);
        assert_eq!(index(0, 0), None);
        assert_eq!(range(5, 0, -1), Some((0, 4)));
        assert_eq!(range(5, -100, 100), Some((0, 4)));
        assert_eq!(range(5, 3, 1), None);
        assert_eq!(range(5, 5, 10), None);
        assert_eq!(range(5, i64::MIN, i64::MAX), Some((0, 4)));
        assert!(positive_count(b"-1").is_err());
        assert!(positive_count(b"x").is_err());
        assert_eq!(positive_count(b"9223372036854775807"), Ok(i64::MAX as u64));
        assert!(at_least_one(b"0", "m").is_err());
        assert_eq!(positive_count(b"0"), Ok(0));
    }
}
