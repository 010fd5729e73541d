//! BITCOUNT key [start end [BYTE | BIT]]
//!
//! As Redis 7.0 orders its checks: the key first (absent: 0 whatever the
//! range; another type: WRONGTYPE), then the range.

use super::arg::parse_i64;
use super::bits::{bit_range, count_bits, parse_unit};
use super::{not_integer, syntax_error, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct BitCount;

struct BitCountRead {
    args: Vec<Vec<u8>>,
}

impl Command for BitCount {
    const NAME: &'static str = "bitcount";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(BitCountRead { args }))
    }
}

impl Read for BitCountRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let s = match ctx.db.get_str(&self.args[1], ctx.now_ms) {
            Err(e) => return e.into(),
            Ok(None) => return Reply::Int(0),
            Ok(Some(s)) => s,
        };
        let a = &self.args;
        let range = match a.len() {
            2 => bit_range(s.len(), 0, -1, false),
            4 | 5 => {
                let Some(start) = parse_i64(&a[2]) else {
                    return not_integer();
                };
                let Some(end) = parse_i64(&a[3]) else {
                    return not_integer();
                };
                if start < 0 && end < 0 && start > end {
                    return Reply::Int(0);
                }
                let in_bits = match a.get(4).map(|u| parse_unit(u)) {
                    None => false,
                    Some(Ok(b)) => b,
                    Some(Err(e)) => return e,
                };
                bit_range(s.len(), start, end, in_bits)
            }
            _ => return syntax_error(),
        };
        Reply::Int(range.map_or(0, |(f, l)| count_bits(s, f, l) as i64))
    }
}
