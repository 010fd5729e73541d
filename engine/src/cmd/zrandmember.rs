//! ZRANDMEMBER key [count [WITHSCORES]]: a read (nothing is logged, so the
//! random choice never has to be replayed).
//!
//! count > 0: that many distinct members (all when the set is smaller);
//! count < 0: |count| members, repeats allowed; 0: none.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::arg::{parse_i64, upper};
use super::zset::{get_zset, members_reply};
use super::{not_integer, syntax_error, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

/// Most members one ZRANDMEMBER with a negative count returns (Redis
/// streams such a reply until the client's output limit closes it; the
/// engine builds it in memory first).
pub const MAX_RANDOM_REPLY: u64 = 16 * 1024 * 1024;

pub struct ZRandMember {
    key: Vec<u8>,
    /// None: one member as a bulk reply.
    count: Option<i64>,
    withscores: bool,
}

/// A random number (std's randomly keyed hasher).
fn random(i: u64) -> u64 {
    RandomState::new().hash_one(i)
}

impl Command for ZRandMember {
    const NAME: &'static str = "zrandmember";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let mut count = None;
        let mut withscores = false;
        if args.len() >= 3 {
            let n = parse_i64(&args[2]).ok_or_else(not_integer)?;
            if n == i64::MIN {
                return Err(Reply::error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"));
            }
            if args.len() > 4 || (args.len() == 4 && upper(&args[3]) != b"WITHSCORES") {
                return Err(syntax_error());
            }
            if args.len() == 4 {
                withscores = true;
                if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
                    return Err(Reply::error("ERR value is out of range"));
                }
            }
            count = Some(n);
        }
        Ok(Action::read(ZRandMember {
            key: args.swap_remove(1),
            count,
            withscores,
        }))
    }
}

impl Read for ZRandMember {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let z = match get_zset(ctx.db, &self.key, ctx.now_ms) {
            Err(e) => return e,
            Ok(None) if self.count.is_none() => return Reply::Nil,
            Ok(None) => return Reply::Array(vec![]),
            Ok(Some(z)) => z,
        };
        let all: Vec<(&[u8], f64)> = z.members().collect();
        let len = all.len() as u64;
        let Some(count) = self.count else {
            let (m, _) = all[(random(0) % len) as usize];
            return Reply::Bulk(m.to_vec());
        };
        if count < -(MAX_RANDOM_REPLY as i64) {
            return Reply::Error(format!(
                "ERR reply too large: ZRANDMEMBER would return {} members, more than {MAX_RANDOM_REPLY}",
                count.unsigned_abs()
            ));
        }
        let picks: Vec<usize> = if count < 0 {
            (0..count.unsigned_abs())
                .map(|i| (random(i) % len) as usize)
                .collect()
        } else if count as u64 >= len {
            (0..all.len()).collect()
        } else {
            // a partial Fisher-Yates shuffle
            let mut idx: Vec<usize> = (0..all.len()).collect();
            for i in 0..count as usize {
                let j = i + (random(i as u64) % (len - i as u64)) as usize;
                idx.swap(i, j);
            }
            idx.truncate(count as usize);
            idx
        };
        members_reply(picks.into_iter().map(|i| all[i]), self.withscores)
    }
}
