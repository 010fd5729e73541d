//! HSCAN key cursor [MATCH pattern] [COUNT count]
//!
//! Stateless like SCAN ([`KeyScan`]): fields are visited in `scan_hash`
//! order and the cursor is the hash of the next field. A packed hash (as
//! Redis's listpack, [`crate::hash`]) is returned whole in one call with
//! cursor 0, as Redis does.

use super::scan::{scan_reply, KeyScan};
use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct HScan(KeyScan);

impl Command for HScan {
    const NAME: &'static str = "hscan";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(HScan(KeyScan::parse(args)?)))
    }
}

impl Read for HScan {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let h = match ctx.db.get_hash(&self.0.key, ctx.now_ms) {
            Err(e) => return e.into(),
            Ok(None) => return scan_reply(0, vec![]),
            Ok(Some(h)) => h,
        };
        let o = match self.0.options() {
            Err(e) => return e,
            Ok(o) => o,
        };
        let fields = h.iter().map(|(f, v)| (f, (f, v)));
        let (found, next) = if h.is_packed() {
            (KeyScan::whole(o, fields), 0)
        } else {
            self.0.step(o, fields)
        };
        let pairs = found
            .into_iter()
            .flat_map(|(f, v)| [Reply::Bulk(f.to_vec()), Reply::Bulk(v.to_vec())])
            .collect();
        scan_reply(next, pairs)
    }
}
