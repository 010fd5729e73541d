//! ZSCAN key cursor [MATCH pattern] [COUNT count]
//!
//! Stateless like SCAN and HSCAN ([`KeyScan`]): members are visited in
//! `scan_hash` order and the cursor is the hash of the next member. A set Redis would
//! keep as a listpack is returned whole in one call with cursor 0, as
//! Redis does. Scores are printed as Redis prints them (`%.17g`, an
//! integral score as an integer).

use super::scan::{scan_reply, KeyScan};
use super::zset::{get_zset, is_listpack, score_text};
use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct ZScan(KeyScan);

impl Command for ZScan {
    const NAME: &'static str = "zscan";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(ZScan(KeyScan::parse(args)?)))
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
        let z = match get_zset(ctx.db, &self.0.key, ctx.now_ms) {
            Err(e) => return e,
            Ok(None) => return scan_reply(0, vec![]),
            Ok(Some(z)) => z,
        };
        let o = match self.0.options() {
            Err(e) => return e,
            Ok(o) => o,
        };
        let (found, next) = if is_listpack(z, ctx.server.config()) {
            (KeyScan::whole(o, z.iter().map(|(m, s)| (m, (m, s)))), 0)
        } else {
            let members = z.members().map(|(m, s)| (m, (m, s)));
            self.0.step(o, members)
        };
        let pairs = found
            .into_iter()
            .flat_map(|(m, s)| [Reply::Bulk(m.to_vec()), Reply::Bulk(scan_score(s))])
            .collect();
        scan_reply(next, pairs)
    }
}
