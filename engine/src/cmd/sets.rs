//! What the set commands share: the type check, Redis's encoding rule and
//! the reply order it implies, random picks, and the set algebra of
//! SINTER, SUNION, SDIFF (and their STORE forms, and SINTERCARD).
//!
//! A set is `db::Value::Set` ([`Members`], members in byte order), never
//! empty in the state. Redis 7.0 keeps a set as an `intset` (sorted
//! integers) while every member is an integer that fits an i64 and there
//! are at most `set-max-intset-entries` of them, else as a `hashtable`,
//! and does not convert back; [`Members::is_intset`] follows that rule.
//! Replies list an intset's members in numeric order, as Redis does, and
//! a hashtable's in byte order. The result of SINTER, SUNION or SDIFF is
//! ordered as the set Redis would build from it.

use std::collections::BTreeSet;

use super::arg::parse_i64;
use super::ServerInfo;
use crate::db::{Db, Members, Value, WrongType};
use crate::reply::{self, Reply};

/// Redis's default `set-max-intset-entries`.
pub const DEFAULT_MAX_INTSET_ENTRIES: u64 = 512;

/// Most bytes of members one random reply (SRANDMEMBER with a negative
/// count) may hold, counting 16 bytes of framing per member: the count is
/// the client's, the reply is built in memory under the state's lock.
pub const MAX_RANDOM_REPLY_BYTES: usize = 256 * 1024 * 1024;

/// WRONGTYPE when `key` holds a live value that is not a set.
pub fn check_set(db: &Db, key: &[u8], now_ms: u64) -> Option<Reply> {
    match db.get(key, now_ms) {
        Some(Value::Set(_)) | None => None,
        Some(_) => Some(Reply::error(reply::WRONGTYPE)),
    }
}

/// `set-max-intset-entries` as configured now.
pub fn max_intset_entries(server: &dyn ServerInfo) -> u64 {
    server
        .config()
        .get("set-max-intset-entries")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_INTSET_ENTRIES)
}

/// True when Redis 7.0 would make an intset of `members` as a new set
/// (SINTER, SUNION and SDIFF results).
pub fn ints_only(members: &[&[u8]], max: u64) -> bool {
    members.len() as u64 <= max && members.iter().all(|m| parse_i64(m).is_some())
}

/// `members` (in byte order) in the order Redis lists them: numeric for
/// an intset, else as they are.
pub fn reply_order(mut members: Vec<&[u8]>, intset: bool) -> Vec<&[u8]> {
    if intset {
        members.sort_by_key(|m| parse_i64(m));
    }
    members
}

/// A RESP3 set of `members` (an array in RESP2), in Redis's order.
pub fn set_reply(members: Vec<&[u8]>, intset: bool) -> Reply {
    Reply::Set(
        reply_order(members, intset)
            .into_iter()
            .map(|m| Reply::Bulk(m.to_vec()))
            .collect(),
    )
}

/// A set's members in Redis's order as a RESP3 set.
pub fn members_reply(set: &Members, max_intset: u64) -> Reply {
    set_reply(set.iter().collect(), set.is_intset(max_intset))
}

/// A random number (std's randomly keyed hasher, as HRANDFIELD): only
/// reads and the live choice of SPOP use it, never a replay.
pub fn random(i: u64) -> u64 {
    super::hrandfield::random(i)
}

/// `k` distinct indexes below `n`, in increasing order (Floyd's sampling),
/// `k <= n`.
pub fn distinct_indexes(n: usize, k: usize) -> Vec<usize> {
    debug_assert!(k <= n);
    let mut picked = BTreeSet::new();
    for (i, j) in (n - k..n).enumerate() {
        let r = (random(i as u64) % (j as u64 + 1)) as usize;
        if !picked.insert(r) {
            picked.insert(j);
        }
    }
    picked.into_iter().collect()
}

/// The members of `set` at the increasing `indexes`, in one pass.
pub fn at_indexes<'a>(set: &'a Members, indexes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(indexes.len());
    let mut want = indexes.iter().peekable();
    for (i, m) in set.iter().enumerate() {
        match want.peek() {
            None => break,
            Some(&&w) if w == i => {
                out.push(m);
                want.next();
            }
            Some(_) => {}
        }
    }
    out
}

/// SINTER, SUNION or SDIFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    Inter,
    Union,
    Diff,
}

impl SetOp {
    /// The byte logged for it.
    pub fn code(self) -> u8 {
        match self {
            SetOp::Inter => 0,
            SetOp::Union => 1,
            SetOp::Diff => 2,
        }
    }

    pub fn from_code(c: u8) -> Option<SetOp> {
        match c {
            0 => Some(SetOp::Inter),
            1 => Some(SetOp::Union),
            2 => Some(SetOp::Diff),
            _ => None,
        }
    }

    /// Upper-case command name (dumps).
    pub fn name(self) -> &'static str {
        match self {
            SetOp::Inter => "SINTER",
            SetOp::Union => "SUNION",
            SetOp::Diff => "SDIFF",
        }
    }
}

/// The sets at `keys` (None for a missing key), WRONGTYPE if any key
/// holds another type (Redis checks every key before it looks at what is
/// missing).
pub fn sets_at<'a>(
    db: &'a Db,
    keys: &[Vec<u8>],
    now_ms: u64,
) -> Result<Vec<Option<&'a Members>>, WrongType> {
    keys.iter().map(|k| db.get_set(k, now_ms)).collect()
}

/// `op` over the sets at `keys` (a missing key is an empty set), members
/// in byte order; an intersection stops after `limit` members (0: no
/// limit).
pub fn combine<'a>(
    db: &'a Db,
    op: SetOp,
    keys: &[Vec<u8>],
    now_ms: u64,
    limit: usize,
) -> Result<Vec<&'a [u8]>, WrongType> {
    let sets = sets_at(db, keys, now_ms)?;
    Ok(match op {
        SetOp::Inter => {
            let Some(mut sets) = sets.into_iter().collect::<Option<Vec<&Members>>>() else {
                return Ok(Vec::new());
            };
            sets.sort_by_key(|s| s.len());
            let (smallest, others) = sets.split_first().expect("at least one key");
            let mut out = Vec::new();
            for m in smallest.iter() {
                if others.iter().all(|s| s.contains(m)) {
                    out.push(m);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            out
        }
        SetOp::Union => {
            let mut all: BTreeSet<&[u8]> = BTreeSet::new();
            for s in sets.into_iter().flatten() {
                all.extend(s.iter());
            }
            all.into_iter().collect()
        }
        SetOp::Diff => {
            let Some((Some(first), others)) = sets.split_first() else {
                return Ok(Vec::new());
            };
            first
                .iter()
                .filter(|m| !others.iter().flatten().any(|s| s.contains(m)))
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floyd_picks_distinct_sorted_indexes_covering_the_range() {
        let mut seen = [0u32; 10];
        for _ in 0..2_000 {
            let v = distinct_indexes(10, 3);
            assert_eq!(v.len(), 3);
            assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
            for i in v {
                seen[i] += 1;
            }
        }
        // 600 expected per index; far from it means a broken sampler
        assert!(seen.iter().all(|&n| (450..=750).contains(&n)), "{seen:?}");
        assert_eq!(distinct_indexes(4, 4), vec![0, 1, 2, 3]);
        assert!(distinct_indexes(0, 0).is_empty());
    }

    #[test]
    fn intsets_reply_in_numeric_order() {
        let m: Members = ["10", "-3", "2"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let order = |max| -> Vec<&[u8]> { reply_order(m.iter().collect(), m.is_intset(max)) };
        assert_eq!(order(512), vec![&b"-3"[..], b"2", b"10"]);
        // past the entry limit: a hashtable, byte order
        assert_eq!(order(2), vec![&b"-3"[..], b"10", b"2"]);
        assert!(!ints_only(&[b"01"], 512), "not canonical");
        assert!(!ints_only(&[b"9223372036854775808"], 512));
        assert!(ints_only(&[b"1", b"-2"], 512));
        assert!(!ints_only(&[b"1", b"-2"], 1));
    }
}
