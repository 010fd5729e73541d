//! GETBIT key offset

use super::bits::{get_bit, parse_bit_offset};
use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct GetBit;

struct GetBitRead {
    key: Vec<u8>,
    offset: u64,
}

impl Command for GetBit {
    const NAME: &'static str = "getbit";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let offset = parse_bit_offset(&args[2], 0)?;
        Ok(Action::read(GetBitRead {
            key: args.swap_remove(1),
            offset,
        }))
    }
}

impl Read for GetBitRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get_str(&self.key, ctx.now_ms) {
            Err(e) => e.into(),
            Ok(None) => Reply::Int(0),
            Ok(Some(s)) => Reply::Int(i64::from(get_bit(s, self.offset))),
        }
    }
}
