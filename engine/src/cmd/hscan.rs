//! HSCAN key cursor [MATCH pattern] [COUNT count]
//!
//! Stateless like SCAN: fields are visited in [`scan_hash`] order and the
//! cursor is the hash of the next field. A hash Redis would keep as a
//! listpack is returned whole in one call with cursor 0, as Redis does.

use super::scan::{parse_cursor, parse_options, scan_reply, step, ScanOptions};
use super::{glob_match, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::scan_hash;
use crate::reply::Reply;

/// A field and its value, borrowed from the hash.
type Field<'a> = (&'a Vec<u8>, &'a Vec<u8>);

pub struct HScan {
    key: Vec<u8>,
    cursor: u64,
    /// Option errors are answered after the key's type is checked.
    opts: Result<ScanOptions, Reply>,
}

impl Command for HScan {
    const NAME: &'static str = "hscan";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let cursor = parse_cursor(&args[2])?;
        let opts = parse_options(&args[3..], false);
        Ok(Action::read(HScan {
            key: args.swap_remove(1),
            cursor,
            opts,
        }))
    }
}

impl Read for HScan {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let h = match ctx.db.get_hash(&self.key, ctx.now_ms) {
            Err(e) => return e.into(),
            Ok(None) => return scan_reply(0, vec![]),
            Ok(Some(h)) => h,
        };
        let o = match self.opts {
            Err(e) => return e,
            Ok(o) => o,
        };
        let matches = |f: &[u8]| o.pattern.as_ref().is_none_or(|p| glob_match(p, f));
        let pairs = |found: Vec<(&Vec<u8>, &Vec<u8>)>| -> Vec<Reply> {
            found
                .into_iter()
                .flat_map(|(f, v)| [Reply::Bulk(f.clone()), Reply::Bulk(v.clone())])
                .collect()
        };
        if super::object::is_listpack(h) {
            let found = h.iter().filter(|(f, _)| matches(f)).collect();
            return scan_reply(0, pairs(found));
        }
        let mut items: Vec<(u64, Field<'_>)> = h
            .iter()
            .map(|(f, v)| (scan_hash(f), (f, v)))
            .filter(|(hash, _)| *hash >= self.cursor)
            .collect();
        items.sort_unstable();
        let (found, next) = step(items.into_iter(), o.count, |(f, _)| matches(f));
        scan_reply(next, pairs(found))
    }
}
