//! SSCAN key cursor [MATCH pattern] [COUNT count]
//!
//! Stateless like SCAN and HSCAN: members are visited in [`scan_hash`]
//! order and the cursor is the hash of the next member. A set Redis would
//! keep as an intset is returned whole in one call with cursor 0 (in
//! numeric order), as Redis does.

use super::scan::{parse_cursor, parse_options, scan_reply, step, ScanOptions};
use super::sets::{is_intset, max_intset_entries, reply_order};
use super::{glob_match, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::scan_hash;
use crate::reply::Reply;

pub struct SScan {
    key: Vec<u8>,
    cursor: u64,
    /// Option errors are answered after the key's type is checked.
    opts: Result<ScanOptions, Reply>,
}

impl Command for SScan {
    const NAME: &'static str = "sscan";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let cursor = parse_cursor(&args[2])?;
        let opts = parse_options(&args[3..], false);
        Ok(Action::read(SScan {
            key: args.swap_remove(1),
            cursor,
            opts,
        }))
    }
}

impl Read for SScan {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let set = match ctx.db.get_set(&self.key, ctx.now_ms) {
            Err(e) => return e.into(),
            Ok(None) => return scan_reply(0, vec![]),
            Ok(Some(s)) => s,
        };
        let o = match self.opts {
            Err(e) => return e,
            Ok(o) => o,
        };
        let matches = |m: &[u8]| o.pattern.as_ref().is_none_or(|p| glob_match(p, m));
        let bulks = |found: Vec<&Vec<u8>>| -> Vec<Reply> {
            found.into_iter().map(|m| Reply::Bulk(m.clone())).collect()
        };
        let max_intset = max_intset_entries(ctx.server);
        if is_intset(set.iter(), max_intset) {
            let found = reply_order(set.iter().filter(|m| matches(m)).collect(), max_intset);
            return scan_reply(0, bulks(found));
        }
        let mut items: Vec<(u64, &Vec<u8>)> = set
            .iter()
            .map(|m| (scan_hash(m), m))
            .filter(|(hash, _)| *hash >= self.cursor)
            .collect();
        items.sort_unstable();
        let (found, next) = step(items.into_iter(), o.count, |m| matches(m));
        scan_reply(next, bulks(found))
    }
}
