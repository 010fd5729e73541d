//! DEL, EXISTS, EXPIRE, PEXPIRE, TTL, PTTL, PERSIST, KEYS, SCAN.

use super::strings::expire_at;
use super::{err, glob_match, not_integer, syntax_error, Action, ScanState};
use crate::db::{parse_i64, Command, Reply, Value};

pub fn del(args: Vec<Vec<u8>>, _now: u64) -> Action {
    Action::Write(Command::Del {
        keys: args.into_iter().skip(1).collect(),
    })
}

pub fn exists(args: Vec<Vec<u8>>, _now: u64) -> Action {
    Action::Read(Box::new(move |ctx| {
        Reply::Int(
            args[1..]
                .iter()
                .filter(|k| ctx.db.entry(k, ctx.now_ms).is_some())
                .count() as i64,
        )
    }))
}

fn expire_generic(mut args: Vec<Vec<u8>>, now: u64, unit_ms: i64, name: &str) -> Action {
    if args.len() > 3 {
        // NX / XX / GT / LT are not supported
        return syntax_error();
    }
    if parse_i64(&args[2]).is_none() {
        return not_integer();
    }
    let Some(at_ms) = expire_at(&args[2], unit_ms, now, true) else {
        return err(format!("ERR invalid expire time in '{name}' command"));
    };
    Action::Write(Command::PExpireAt {
        key: args.swap_remove(1),
        at_ms,
    })
}

pub fn expire(args: Vec<Vec<u8>>, now: u64) -> Action {
    expire_generic(args, now, 1000, "expire")
}

pub fn pexpire(args: Vec<Vec<u8>>, now: u64) -> Action {
    expire_generic(args, now, 1, "pexpire")
}

fn ttl_generic(mut args: Vec<Vec<u8>>, ms: bool) -> Action {
    let key = args.swap_remove(1);
    Action::Read(Box::new(move |ctx| match ctx.db.entry(&key, ctx.now_ms) {
        None => Reply::Int(-2),
        Some(e) => match e.expire_at_ms {
            None => Reply::Int(-1),
            Some(at) => {
                let left = at.saturating_sub(ctx.now_ms);
                Reply::Int(if ms { left } else { (left + 500) / 1000 } as i64)
            }
        },
    }))
}

pub fn ttl(args: Vec<Vec<u8>>, _now: u64) -> Action {
    ttl_generic(args, false)
}

pub fn pttl(args: Vec<Vec<u8>>, _now: u64) -> Action {
    ttl_generic(args, true)
}

pub fn persist(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    Action::Write(Command::Persist {
        key: args.swap_remove(1),
    })
}

pub fn keys(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    let pattern = args.swap_remove(1);
    Action::Read(Box::new(move |ctx| {
        Reply::Array(
            ctx.db
                .iter_after(None, ctx.now_ms)
                .filter(|(k, _)| glob_match(&pattern, k))
                .map(|(k, _)| Reply::Bulk(k.clone()))
                .collect(),
        )
    }))
}

/// Most keys one SCAN call examines.
const MAX_SCAN_COUNT: usize = 100_000;

pub fn scan(args: Vec<Vec<u8>>, _now: u64) -> Action {
    let cursor = match std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(c) => c,
        None => return err("ERR invalid cursor"),
    };
    let mut pattern: Option<Vec<u8>> = None;
    let mut count = 10usize;
    let mut kind: Option<Vec<u8>> = None;
    let mut i = 2;
    while i < args.len() {
        let Some(v) = args.get(i + 1) else {
            return syntax_error();
        };
        match args[i].to_ascii_uppercase().as_slice() {
            b"MATCH" => pattern = Some(v.clone()),
            b"COUNT" => match parse_i64(v) {
                Some(n) if n >= 1 => count = (n as usize).min(MAX_SCAN_COUNT),
                Some(_) => return syntax_error(),
                None => return not_integer(),
            },
            b"TYPE" => kind = Some(v.to_ascii_lowercase()),
            _ => return syntax_error(),
        }
        i += 2;
    }
    Action::Read(Box::new(move |ctx| {
        let mut state = if cursor == 0 {
            let keys: Vec<Vec<u8>> = ctx
                .db
                .iter_after(None, ctx.now_ms)
                .map(|(k, _)| k.clone())
                .collect();
            ScanState::new(keys)
        } else {
            match ctx.conn.take_scan(cursor) {
                Some(s) => s,
                None => {
                    return Reply::Error(
                        "ERR invalid cursor (SCAN cursors belong to the connection that started the scan)"
                            .into(),
                    )
                }
            }
        };
        let mut found = Vec::new();
        for k in state.next_keys(count) {
            let Some(e) = ctx.db.entry(k, ctx.now_ms) else {
                continue; // deleted since the scan started
            };
            let type_ok = match (&kind, &e.value) {
                (None, _) => true,
                (Some(t), Value::Str(_)) => t == b"string",
                (Some(t), Value::Hash(_)) => t == b"hash",
            };
            if type_ok && pattern.as_ref().is_none_or(|p| glob_match(p, k)) {
                found.push(Reply::Bulk(k.clone()));
            }
        }
        let next = if state.is_done() {
            0
        } else {
            ctx.conn.save_scan(state)
        };
        Reply::Array(vec![
            Reply::Bulk(next.to_string().into_bytes()),
            Reply::Array(found),
        ])
    }))
}
