//! GET, SET, GETDEL, MGET, MSET, INCR, INCRBY, DECR, DECRBY, APPEND, STRLEN.

use super::{arity_error, err, not_integer, syntax_error, Action};
use crate::db::{parse_i64, Command, Reply, SetCondition, Value, WRONGTYPE};

fn string_reply(v: Option<&Value>) -> Reply {
    match v {
        None => Reply::Nil,
        Some(Value::Str(s)) => Reply::Bulk(s.clone()),
        Some(Value::Hash(_)) => Reply::Error(WRONGTYPE.into()),
    }
}

pub fn get(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    let key = args.swap_remove(1);
    Action::Read(Box::new(move |ctx| {
        string_reply(ctx.db.get(&key, ctx.now_ms))
    }))
}

/// Absolute expiry from a relative amount, `None` when invalid (<= 0 or
/// overflowing).
pub(super) fn expire_at(amount: &[u8], unit_ms: i64, now_ms: u64, allow_past: bool) -> Option<u64> {
    let n = parse_i64(amount)?;
    if n <= 0 && !allow_past {
        return None;
    }
    let delta = n.checked_mul(unit_ms)?;
    let at = i64::try_from(now_ms).ok()?.checked_add(delta)?;
    Some(at.max(0) as u64)
}

pub fn set(args: Vec<Vec<u8>>, now: u64) -> Action {
    let mut it = args.into_iter().skip(1);
    let key = it.next().expect("arity checked");
    let value = it.next().expect("arity checked");
    let mut condition = SetCondition::Always;
    let mut get = false;
    let mut keep_ttl = false;
    let mut expire_at_ms = None;
    let rest: Vec<Vec<u8>> = it.collect();
    let mut i = 0;
    while i < rest.len() {
        let opt = rest[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"NX" if condition == SetCondition::Always => condition = SetCondition::Nx,
            b"XX" if condition == SetCondition::Always => condition = SetCondition::Xx,
            b"GET" => get = true,
            b"KEEPTTL" if expire_at_ms.is_none() => keep_ttl = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if expire_at_ms.is_none() && !keep_ttl => {
                let Some(amount) = rest.get(i + 1) else {
                    return syntax_error();
                };
                if parse_i64(amount).is_none() {
                    return not_integer();
                }
                let at = match opt.as_slice() {
                    b"EX" => expire_at(amount, 1000, now, false),
                    b"PX" => expire_at(amount, 1, now, false),
                    b"EXAT" => expire_at(amount, 1000, 0, false),
                    _ => expire_at(amount, 1, 0, false),
                };
                let Some(at) = at else {
                    return err("ERR invalid expire time in 'set' command");
                };
                expire_at_ms = Some(at);
                i += 1;
            }
            _ => return syntax_error(),
        }
        i += 1;
    }
    Action::Write(Command::Set {
        key,
        value,
        expire_at_ms,
        keep_ttl,
        condition,
        get,
    })
}

pub fn getdel(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    Action::Write(Command::GetDel {
        key: args.swap_remove(1),
    })
}

/// Most value bytes one MGET may return: the same key named many times
/// would otherwise build a reply of (arguments x 16 MiB) in memory, under
/// the state's read lock.
pub const MAX_MGET_REPLY_BYTES: usize = 256 * 1024 * 1024;

pub fn mget(args: Vec<Vec<u8>>, _now: u64) -> Action {
    Action::Read(Box::new(move |ctx| {
        let total: usize = args[1..]
            .iter()
            .map(|k| match ctx.db.get(k, ctx.now_ms) {
                Some(Value::Str(s)) => s.len(),
                _ => 0,
            })
            .sum();
        if total > MAX_MGET_REPLY_BYTES {
            return Reply::Error(format!(
                "ERR reply too large: MGET would return {total} bytes, more than {MAX_MGET_REPLY_BYTES}"
            ));
        }
        Reply::Array(
            args[1..]
                .iter()
                .map(|k| match ctx.db.get(k, ctx.now_ms) {
                    Some(Value::Str(s)) => Reply::Bulk(s.clone()),
                    _ => Reply::Nil,
                })
                .collect(),
        )
    }))
}

pub fn mset(args: Vec<Vec<u8>>, _now: u64) -> Action {
    if args.len().is_multiple_of(2) {
        return arity_error("mset");
    }
    let mut it = args.into_iter().skip(1);
    let mut pairs = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        pairs.push((k, v));
    }
    Action::Write(Command::MSet { pairs })
}

fn incr_by(key: Vec<u8>, delta: i64) -> Action {
    Action::Write(Command::IncrBy { key, delta })
}

pub fn incr(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    incr_by(args.swap_remove(1), 1)
}

pub fn decr(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    incr_by(args.swap_remove(1), -1)
}

pub fn incrby(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    let Some(delta) = parse_i64(&args[2]) else {
        return not_integer();
    };
    incr_by(args.swap_remove(1), delta)
}

pub fn decrby(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    let Some(delta) = parse_i64(&args[2]) else {
        return not_integer();
    };
    let Some(neg) = delta.checked_neg() else {
        return err("ERR decrement would overflow");
    };
    incr_by(args.swap_remove(1), neg)
}

pub fn append(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    let value = args.pop().expect("arity checked");
    let key = args.pop().expect("arity checked");
    Action::Write(Command::Append { key, value })
}

pub fn strlen(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    let key = args.swap_remove(1);
    Action::Read(Box::new(move |ctx| match ctx.db.get(&key, ctx.now_ms) {
        None => Reply::Int(0),
        Some(Value::Str(s)) => Reply::Int(s.len() as i64),
        Some(Value::Hash(_)) => Reply::Error(WRONGTYPE.into()),
    }))
}
