//! What the sorted set commands share: the type check, the encoding rule
//! OBJECT ENCODING and ZSCAN follow, replies, and scores in payloads
//! (`score f64` = the IEEE bits, u64 LE, never NaN).

use super::codec::{put_u64, DecodeError, Decoder};
use super::config::ConfigStore;
use crate::db::{Db, Entry, Value, ZSet};
use crate::reply::{self, Reply};

pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const RANGE_NOT_FLOAT: &str = "ERR min or max is not a float";
pub const LEX_NOT_VALID: &str = "ERR min or max not valid string range item";
pub const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";

/// The live sorted set at `key` (None when absent), or WRONGTYPE.
pub fn get_zset<'a>(db: &'a Db, key: &[u8], now_ms: u64) -> Result<Option<&'a ZSet>, Reply> {
    match db.get(key, now_ms) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(Reply::error(reply::WRONGTYPE)),
    }
}

/// WRONGTYPE when `key` holds something else than a sorted set.
pub fn check_zset(db: &Db, key: &[u8], now_ms: u64) -> Option<Reply> {
    get_zset(db, key, now_ms).err()
}

/// The live sorted set at `key` for changing it (None when absent or of
/// another type).
pub fn zset_mut<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Option<&'a mut ZSet> {
    match db.live_mut(key, now_ms) {
        Some(Entry {
            value: Value::ZSet(z),
            ..
        }) => Some(z),
        _ => None,
    }
}

/// The sorted set at `key`, created empty when absent (None when the key
/// holds another type). The caller adds to it or calls
/// [`drop_if_empty`].
pub fn zset_or_new<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Option<&'a mut ZSet> {
    if db.live_mut(key, now_ms).is_none() {
        db.insert_entry(key.to_vec(), Entry::new(Value::ZSet(ZSet::new())));
    }
    zset_mut(db, key, now_ms)
}

/// Removes `key` when it holds an empty sorted set.
pub fn drop_if_empty(db: &mut Db, key: &[u8], now_ms: u64) {
    if zset_mut(db, key, now_ms).is_some_and(|z| z.is_empty()) {
        db.remove(key);
        db.notify(crate::pubsub::class::GENERIC, "del", key);
    }
}

fn config_usize(config: &ConfigStore, name: &str, default: usize) -> usize {
    config
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// True when Redis would keep `z` as a listpack with the configured
/// `zset-max-listpack-entries` and `zset-max-listpack-value`
/// ([`ZSet::is_listpack`]: decided as the set grew, never converted back).
pub fn is_listpack(z: &ZSet, config: &ConfigStore) -> bool {
    z.is_listpack(
        config_usize(config, "zset-max-listpack-entries", 128),
        config_usize(config, "zset-max-listpack-value", 64),
    )
}

/// Members (with their scores as doubles when `withscores`: pairs, flat
/// in RESP2 and `[member, score]` arrays in RESP3).
pub fn members_reply<'a>(items: impl Iterator<Item = (&'a [u8], f64)>, withscores: bool) -> Reply {
    if withscores {
        Reply::Pairs(
            items
                .map(|(m, s)| (Reply::Bulk(m.to_vec()), Reply::Double(s)))
                .collect(),
        )
    } else {
        Reply::Array(items.map(|(m, _)| Reply::Bulk(m.to_vec())).collect())
    }
}

pub fn put_score(out: &mut Vec<u8>, score: f64) {
    put_u64(out, score.to_bits());
}

pub fn get_score(d: &mut Decoder<'_>) -> Result<f64, DecodeError> {
    let bits = d.u64()?;
    let s = f64::from_bits(bits);
    if s.is_nan() {
        return Err(DecodeError::Invalid {
            what: "NaN score",
            value: bits,
        });
    }
    Ok(s)
}

/// `n u32 | n × (member:bytes score f64)`.
pub fn put_scored(out: &mut Vec<u8>, items: &[(Vec<u8>, f64)]) {
    super::codec::put_u32(out, items.len() as u32);
    for (m, s) in items {
        super::codec::put_bytes(out, m);
        put_score(out, *s);
    }
}

pub fn get_scored(d: &mut Decoder<'_>) -> Result<Vec<(Vec<u8>, f64)>, DecodeError> {
    let n = d.count(12)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let m = d.bytes()?;
        v.push((m, get_score(d)?));
    }
    Ok(v)
}

/// The text of a score in dumps and ZSCAN (Redis's `%.17g`).
pub fn score_text(s: f64) -> String {
    crate::resp::format_double(s)
}

/// `"m1" "m2" …` for dumps.
pub fn describe_scored(items: &[(Vec<u8>, f64)]) -> String {
    let mut s = String::new();
    for (m, score) in items {
        s.push_str(&format!(
            " {} {}",
            score_text(*score),
            super::codec::quote(m)
        ));
    }
    s
}
