//! ZSCAN key cursor [MATCH pattern] [COUNT count]
//!
//! Stateless like SCAN and HSCAN: members are visited in [`scan_hash`]
//! order and the cursor is the hash of the next member. A set Redis would
//! keep as a listpack is returned whole in one call with cursor 0, as
//! Redis does. Scores are printed as Redis prints them (`%.17g`, an
//! integral score as an integer).

use super::scan::{parse_cursor, parse_options, scan_reply, step, ScanOptions};
use super::zset::{get_zset, is_listpack, score_text};
use super::{glob_match, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::scan_hash;
use crate::reply::Reply;

pub struct ZScan {
    key: Vec<u8>,
    cursor: u64,
    /// Option errors are answered after the key's type is checked.
    opts: Result<ScanOptions, Reply>,
}

impl Command for ZScan {
    const NAME: &'static str = "zscan";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let cursor = parse_cursor(&args[2])?;
        let opts = parse_options(&args[3..], false);
        Ok(Action::read(ZScan {
            key: args.swap_remove(1),
            cursor,
            opts,
        }))
    }
}

/// A score as ZSCAN prints it.
fn scan_score(s: f64) -> Vec<u8> {
    if s.fract() == 0.0 && s.abs() < 9.2e18 {
        format!("{}", s as i64).into_bytes()
    } else {
        score_text(s).into_bytes()
    }
}

impl Read for ZScan {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let z = match get_zset(ctx.db, &self.key, ctx.now_ms) {
            Err(e) => return e,
            Ok(None) => return scan_reply(0, vec![]),
            Ok(Some(z)) => z,
        };
        let o = match self.opts {
            Err(e) => return e,
            Ok(o) => o,
        };
        let matches = |m: &[u8]| o.pattern.as_ref().is_none_or(|p| glob_match(p, m));
        let pairs = |found: Vec<(&[u8], f64)>| -> Vec<Reply> {
            found
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m.to_vec()), Reply::Bulk(scan_score(s))])
                .collect()
        };
        if is_listpack(z, ctx.server.config()) {
            let found = z.iter().filter(|(m, _)| matches(m)).collect();
            return scan_reply(0, pairs(found));
        }
        let mut items: Vec<(u64, (&[u8], f64))> = z
            .members()
            .map(|(m, s)| (scan_hash(m), (m.as_slice(), s)))
            .filter(|(hash, _)| *hash >= self.cursor)
            .collect();
        items.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1 .0.cmp(b.1 .0)));
        let (found, next) = step(items.into_iter(), o.count, |(m, _)| matches(m));
        scan_reply(next, pairs(found))
    }
}
