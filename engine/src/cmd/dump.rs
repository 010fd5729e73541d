//! DUMP key: the value in Redis's serialization ([`super::rdb`]), which
//! RESTORE (here or in Redis) turns back into the value.

use super::rdb;
use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct Dump;

struct DumpRead {
    key: Vec<u8>,
}

impl Command for Dump {
    const NAME: &'static str = "dump";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(DumpRead {
            key: args.swap_remove(1),
        }))
    }
}

impl Read for DumpRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get(&self.key, ctx.now_ms) {
            None => Reply::Nil,
            Some(v) => match rdb::dump(v) {
                Some(p) => Reply::Bulk(p),
                None => Reply::Error(format!(
                    "ERR DUMP of a {} is not supported by this engine",
                    v.type_name()
                )),
            },
        }
    }
}
