//! SRANDMEMBER key [count]: a read (nothing is logged, so the random
//! choice never has to be replayed).
//!
//! count > 0: that many distinct members (the whole set when it is
//! smaller); count < 0: |count| members, repeats allowed; 0: none. The
//! reply is an array (Redis 7.0 sends no RESP3 set here).

use super::arg::parse_i64;
use super::sets::{
    at_indexes, distinct_indexes, max_intset_entries, random, reply_order, MAX_RANDOM_REPLY_BYTES,
};
use super::{not_integer, syntax_error, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

const COUNT_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";

pub struct SRandMember {
    key: Vec<u8>,
    /// None: one member as a bulk reply.
    count: Option<i64>,
}

impl Command for SRandMember {
    const NAME: &'static str = "srandmember";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        if args.len() > 3 {
            return Err(syntax_error());
        }
        let count = match args.get(2) {
            None => None,
            Some(c) => match parse_i64(c) {
                None => return Err(not_integer()),
                Some(i64::MIN) => return Err(Reply::error(COUNT_RANGE)),
                Some(n) => Some(n),
            },
        };
        Ok(Action::read(SRandMember {
            key: args.swap_remove(1),
            count,
        }))
    }
}

impl Read for SRandMember {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let set = match ctx.db.get_set(&self.key, ctx.now_ms) {
            Err(e) => return e.into(),
            Ok(None) if self.count.is_none() => return Reply::Nil,
            Ok(None) => return Reply::Array(vec![]),
            Ok(Some(s)) => s,
        };
        let len = set.len();
        let bulks =
            |v: Vec<&[u8]>| Reply::Array(v.into_iter().map(|m| Reply::Bulk(m.to_vec())).collect());
        match self.count {
            None => {
                let i = (random(0) % len as u64) as usize;
                set.iter()
                    .nth(i)
                    .map_or(Reply::Nil, |m| Reply::Bulk(m.to_vec()))
            }
            Some(n) if n >= 0 && n as u64 >= len as u64 => bulks(reply_order(
                set.iter().collect(),
                set.is_intset(max_intset_entries(ctx.server)),
            )),
            Some(n) if n >= 0 => {
                // distinct members, in a random order (Fisher-Yates)
                let mut picked = at_indexes(set, &distinct_indexes(len, n as usize));
                for i in (1..picked.len()).rev() {
                    picked.swap(i, (random(i as u64) % (i as u64 + 1)) as usize);
                }
                bulks(picked)
            }
            Some(n) => {
                // repeats allowed: |n| independent picks
                let want = n.unsigned_abs();
                let members: Vec<&[u8]> = set.iter().collect();
                let mut bytes = 0usize;
                let mut out = Vec::with_capacity(want.min(1 << 20) as usize);
                for i in 0..want {
                    let m = members[(random(i) % len as u64) as usize];
                    bytes += m.len() + 16;
                    if bytes > MAX_RANDOM_REPLY_BYTES {
                        return Reply::Error(format!(
                            "ERR reply too large: SRANDMEMBER would return more than {MAX_RANDOM_REPLY_BYTES} bytes"
                        ));
                    }
                    out.push(Reply::Bulk(m.to_vec()));
                }
                Reply::Array(out)
            }
        }
    }
}
