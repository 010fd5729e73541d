//! HEXISTS key field, HSTRLEN key field

use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct HFieldRead {
    key: Vec<u8>,
    field: Vec<u8>,
    strlen: bool,
}

impl Read for HFieldRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get_hash(&self.key, ctx.now_ms) {
            Err(e) => e.into(),
            Ok(h) => {
                let v = h.and_then(|h| h.get(&self.field));
                Reply::Int(match (v, self.strlen) {
                    (None, _) => 0,
                    (Some(_), false) => 1,
                    (Some(v), true) => v.len() as i64,
                })
            }
        }
    }
}

fn parse_field(mut args: Vec<Vec<u8>>, strlen: bool) -> Result<super::Action, Reply> {
    let field = args.swap_remove(2);
    Ok(Action::read(HFieldRead {
        key: args.swap_remove(1),
        field,
        strlen,
    }))
}

/// HEXISTS key field
pub struct HExists;

impl Command for HExists {
    const NAME: &'static str = "hexists";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_field(args, false)
    }
}

/// HSTRLEN key field
pub struct HStrlen;

impl Command for HStrlen {
    const NAME: &'static str = "hstrlen";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_field(args, true)
    }
}
