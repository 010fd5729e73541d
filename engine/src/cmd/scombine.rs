//! SINTER, SUNION, SDIFF key [key ...], SINTERCARD numkeys key [key ...]
//! [LIMIT limit]: reads over several sets (a missing key is an empty set;
//! every key's type is checked first). The STORE forms are in `sstore.rs`.

use super::arg::{parse_i64, upper};
use super::sets::{combine, ints_only, max_intset_entries, set_reply, SetOp};
use super::{syntax_error, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct SCombine {
    op: SetOp,
    keys: Vec<Vec<u8>>,
}

macro_rules! combine_command {
    ($ty:ident, $name:literal, $op:expr) => {
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = -2;
            const FLAGS: Flags = Flags::READONLY;
            const KEYS: Keys = Keys::range(1, -1, 1);

            fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
                Ok(Action::read(SCombine {
                    op: $op,
                    keys: args.split_off(1),
                }))
            }
        }
    };
}

combine_command!(SInter, "sinter", SetOp::Inter);
combine_command!(SUnion, "sunion", SetOp::Union);
combine_command!(SDiff, "sdiff", SetOp::Diff);

impl Read for SCombine {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match combine(ctx.db, self.op, &self.keys, ctx.now_ms, 0) {
            Err(e) => e.into(),
            Ok(members) => {
                let intset = ints_only(&members, max_intset_entries(ctx.server));
                set_reply(members, intset)
            }
        }
    }
}

pub struct SInterCard {
    keys: Vec<Vec<u8>>,
    /// 0: no limit.
    limit: usize,
}

const NUMKEYS: &str = "ERR numkeys should be greater than 0";
const TOO_MANY_KEYS: &str = "ERR Number of keys can't be greater than number of args";
const NEGATIVE_LIMIT: &str = "ERR LIMIT can't be negative";

impl Command for SInterCard {
    const NAME: &'static str = "sintercard";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    // numkeys says which arguments are keys (Redis: movable keys)
    const KEYS: Keys = Keys::NONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let numkeys = match parse_i64(&args[1]) {
            Some(n) if n > 0 => n as u64,
            _ => return Err(Reply::error(NUMKEYS)),
        };
        if numkeys > (args.len() - 2) as u64 {
            return Err(Reply::error(TOO_MANY_KEYS));
        }
        let opts = args.split_off(2 + numkeys as usize);
        let mut limit = 0;
        let mut i = 0;
        while i < opts.len() {
            match (upper(&opts[i]).as_slice(), opts.get(i + 1)) {
                (b"LIMIT", Some(v)) => match parse_i64(v) {
                    Some(n) if n >= 0 => limit = usize::try_from(n).unwrap_or(usize::MAX),
                    _ => return Err(Reply::error(NEGATIVE_LIMIT)),
                },
                _ => return Err(syntax_error()),
            }
            i += 2;
        }
        Ok(Action::read(SInterCard {
            keys: args.split_off(2),
            limit,
        }))
    }
}

impl Read for SInterCard {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match combine(ctx.db, SetOp::Inter, &self.keys, ctx.now_ms, self.limit) {
            Err(e) => e.into(),
            Ok(members) => Reply::Int(members.len() as i64),
        }
    }
}
