//! HSET, HGET, HDEL, HGETALL, HLEN, HINCRBY.

use super::{arity_error, err, Action};
use crate::db::{parse_i64, Command, Reply, Value, WRONGTYPE};

pub fn hset(args: Vec<Vec<u8>>, _now: u64) -> Action {
    if !args.len().is_multiple_of(2) {
        return arity_error("hset");
    }
    let mut it = args.into_iter().skip(1);
    let key = it.next().expect("arity checked");
    let mut pairs = Vec::new();
    while let (Some(f), Some(v)) = (it.next(), it.next()) {
        pairs.push((f, v));
    }
    Action::Write(Command::HSet { key, pairs })
}

pub fn hget(args: Vec<Vec<u8>>, _now: u64) -> Action {
    Action::Read(Box::new(move |ctx| {
        match ctx.db.get(&args[1], ctx.now_ms) {
            None => Reply::Nil,
            Some(Value::Hash(h)) => h
                .get(&args[2])
                .map_or(Reply::Nil, |v| Reply::Bulk(v.clone())),
            Some(Value::Str(_)) => Reply::Error(WRONGTYPE.into()),
        }
    }))
}

pub fn hdel(args: Vec<Vec<u8>>, _now: u64) -> Action {
    let mut it = args.into_iter().skip(1);
    let key = it.next().expect("arity checked");
    Action::Write(Command::HDel {
        key,
        fields: it.collect(),
    })
}

pub fn hgetall(args: Vec<Vec<u8>>, _now: u64) -> Action {
    Action::Read(Box::new(move |ctx| {
        match ctx.db.get(&args[1], ctx.now_ms) {
            None => Reply::Array(vec![]),
            Some(Value::Hash(h)) => Reply::Array(
                h.iter()
                    .flat_map(|(f, v)| [Reply::Bulk(f.clone()), Reply::Bulk(v.clone())])
                    .collect(),
            ),
            Some(Value::Str(_)) => Reply::Error(WRONGTYPE.into()),
        }
    }))
}

pub fn hlen(args: Vec<Vec<u8>>, _now: u64) -> Action {
    Action::Read(Box::new(move |ctx| {
        match ctx.db.get(&args[1], ctx.now_ms) {
            None => Reply::Int(0),
            Some(Value::Hash(h)) => Reply::Int(h.len() as i64),
            Some(Value::Str(_)) => Reply::Error(WRONGTYPE.into()),
        }
    }))
}

pub fn hincrby(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    let Some(delta) = parse_i64(&args[3]) else {
        return err(crate::db::NOT_INTEGER);
    };
    args.truncate(3);
    let field = args.pop().expect("arity checked");
    let key = args.pop().expect("arity checked");
    Action::Write(Command::HIncrBy { key, field, delta })
}
