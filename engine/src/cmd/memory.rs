//! MEMORY USAGE key [SAMPLES count]: an estimate of the bytes the key
//! takes (key, value, entry and map overhead); nil for a missing key.

use super::arg::{parse_i64, upper};
use super::{not_integer, syntax_error, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::Value;
use crate::reply::Reply;

/// Bytes of bookkeeping per key (entry, tree slot, expiry) and per hash
/// field, beside the bytes of keys and values.
const KEY_OVERHEAD: usize = 72;
const FIELD_OVERHEAD: usize = 64;

pub struct Memory {
    key: Vec<u8>,
}

impl Command for Memory {
    const NAME: &'static str = "memory";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::range(2, 2, 1);

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        if upper(&args[1]) != b"USAGE" {
            return Err(Reply::Error(format!(
                "ERR unknown subcommand '{}'. Try MEMORY HELP.",
                String::from_utf8_lossy(&args[1])
            )));
        }
        if args.len() < 3 {
            return Err(Reply::arity("memory|usage"));
        }
        let mut i = 3;
        while i < args.len() {
            match (upper(&args[i]).as_slice(), args.get(i + 1)) {
                (b"SAMPLES", Some(n)) => {
                    parse_i64(n).ok_or_else(not_integer)?;
                }
                _ => return Err(syntax_error()),
            }
            i += 2;
        }
        Ok(Action::read(Memory {
            key: args.swap_remove(2),
        }))
    }
}

impl Read for Memory {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let Some(v) = ctx.db.get(&self.key, ctx.now_ms) else {
            return Reply::Nil;
        };
        let value = match v {
            Value::Str(s) => s.len(),
            Value::Hash(h) => h
                .iter()
                .map(|(f, v)| f.len() + v.len() + FIELD_OVERHEAD)
                .sum(),
            Value::List(l) => l.iter().map(|e| e.len() + FIELD_OVERHEAD).sum(),
            Value::Set(m) => m.heap_bytes(),
            Value::ZSet(z) => z.heap_bytes(),
        };
        Reply::Int((KEY_OVERHEAD + self.key.len() + value) as i64)
    }
}
