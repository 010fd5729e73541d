//! BITPOS key bit [start [end [BYTE | BIT]]]
//!
//! As Redis 7.0 orders its checks: the bit argument, the key (absent: an
//! endless run of zeros), then the range. Looking for a 0 without an end
//! finds the first bit past the string when the range is all ones.

use super::arg::parse_i64;
use super::bits::{bit_range, find_bit, parse_unit};
use super::{not_integer, syntax_error, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct BitPos;

struct BitPosRead {
    args: Vec<Vec<u8>>,
    bit: bool,
}

impl Command for BitPos {
    const NAME: &'static str = "bitpos";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let bit = match parse_i64(&args[2]) {
            None => return Err(not_integer()),
            Some(0) => false,
            Some(1) => true,
            Some(_) => return Err(Reply::error("ERR The bit argument must be 1 or 0.")),
        };
        Ok(Action::read(BitPosRead { args, bit }))
    }
}

impl Read for BitPosRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let s = match ctx.db.get_str(&self.args[1], ctx.now_ms) {
            Err(e) => return e.into(),
            Ok(None) => return Reply::Int(if self.bit { -1 } else { 0 }),
            Ok(Some(s)) => s,
        };
        let a = &self.args;
        let (range, end_given) = match a.len() {
            3 => (bit_range(s.len(), 0, -1, false), false),
            4..=6 => {
                let Some(start) = parse_i64(&a[3]) else {
                    return not_integer();
                };
                let in_bits = match a.get(5).map(|u| parse_unit(u)) {
                    None => false,
                    Some(Ok(b)) => b,
                    Some(Err(e)) => return e,
                };
                let end = match a.get(4) {
                    None => -1,
                    Some(e) => match parse_i64(e) {
                        Some(e) => e,
                        None => return not_integer(),
                    },
                };
                (bit_range(s.len(), start, end, in_bits), a.len() >= 5)
            }
            _ => return syntax_error(),
        };
        let Some((first, last)) = range else {
            return Reply::Int(-1);
        };
        match find_bit(s, first, last, self.bit) {
            Some(p) => Reply::Int(p as i64),
            // zeros continue past the string's end unless an end was given
            None if !self.bit && !end_given => Reply::Int(((last >> 3) + 1) as i64 * 8),
            None => Reply::Int(-1),
        }
    }
}
