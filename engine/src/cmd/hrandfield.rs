//! HRANDFIELD key [count [WITHVALUES]]: a read (nothing is logged, so the
//! random choice never has to be replayed).
//!
//! count > 0: that many distinct fields (all when the hash is smaller);
//! count < 0: |count| fields, repeats allowed; 0: none.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::arg::{parse_i64, upper};
use super::{not_integer, syntax_error, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct HRandField {
    key: Vec<u8>,
    /// None: one field as a bulk reply.
    count: Option<i64>,
    with_values: bool,
}

/// A random number (no dependency: std's randomly keyed hasher).
pub(super) fn random(i: u64) -> u64 {
    RandomState::new().hash_one(i)
}

impl Command for HRandField {
    const NAME: &'static str = "hrandfield";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let mut count = None;
        let mut with_values = false;
        if args.len() >= 3 {
            let n = parse_i64(&args[2]).ok_or_else(not_integer)?;
            if n == i64::MIN {
                return Err(Reply::error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"));
            }
            if args.len() > 4 || (args.len() == 4 && upper(&args[3]) != b"WITHVALUES") {
                return Err(syntax_error());
            }
            if args.len() == 4 {
                with_values = true;
                if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
                    return Err(Reply::error("ERR value is out of range"));
                }
            }
            count = Some(n);
        }
        Ok(Action::read(HRandField {
            key: args.swap_remove(1),
            count,
            with_values,
        }))
    }
}

impl Read for HRandField {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let h = match ctx.db.get_hash(&self.key, ctx.now_ms) {
            Err(e) => return e.into(),
            Ok(None) if self.count.is_none() => return Reply::Nil,
            Ok(None) => return Reply::Array(vec![]),
            Ok(Some(h)) => h,
        };
        let fields: Vec<(&[u8], &[u8])> = h.iter().collect();
        let len = fields.len() as u64;
        let Some(count) = self.count else {
            let (f, _) = fields[(random(0) % len) as usize];
            return Reply::Bulk(f.to_vec());
        };
        let picks: Vec<usize> = if count < 0 {
            (0..count.unsigned_abs())
                .map(|i| (random(i) % len) as usize)
                .collect()
        } else if count as u64 >= len {
            (0..fields.len()).collect()
        } else {
            // a partial Fisher-Yates shuffle
            let mut idx: Vec<usize> = (0..fields.len()).collect();
            for i in 0..count as usize {
                let j = i + (random(i as u64) % (len - i as u64)) as usize;
                idx.swap(i, j);
            }
            idx.truncate(count as usize);
            idx
        };
        if self.with_values {
            let pairs = picks.into_iter().map(|i| {
                let (f, v) = fields[i];
                (Reply::Bulk(f.to_vec()), Reply::Bulk(v.to_vec()))
            });
            return Reply::Pairs(pairs.collect());
        }
        Reply::Array(
            picks
                .into_iter()
                .map(|i| Reply::Bulk(fields[i].0.to_vec()))
                .collect(),
        )
    }
}
