//! SSCAN key cursor [MATCH pattern] [COUNT count]
//!
//! Stateless like SCAN and HSCAN ([`KeyScan`]): members are visited in
//! `scan_hash` order and the cursor is the hash of the next member. A set
//! Redis would keep as an intset is returned whole in one call with cursor
//! 0 (in numeric order), as Redis does.

use super::scan::{scan_reply, KeyScan};
use super::sets::{max_intset_entries, reply_order};
use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct SScan(KeyScan);

impl Command for SScan {
    const NAME: &'static str = "sscan";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(SScan(KeyScan::parse(args)?)))
    }
}

impl Read for SScan {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let set = match ctx.db.get_set(&self.0.key, ctx.now_ms) {
            Err(e) => return e.into(),
            Ok(None) => return scan_reply(0, vec![]),
            Ok(Some(s)) => s,
        };
        let o = match self.0.options() {
            Err(e) => return e,
            Ok(o) => o,
        };
        let members = set.iter().map(|m| (m, m));
        let (found, next) = if set.is_intset(max_intset_entries(ctx.server)) {
            (reply_order(KeyScan::whole(o, members), true), 0)
        } else {
            self.0.step(o, members)
        };
        let bulks = found.into_iter().map(|m| Reply::Bulk(m.to_vec())).collect();
        scan_reply(next, bulks)
    }
}
