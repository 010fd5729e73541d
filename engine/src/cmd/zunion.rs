//! ZUNION, ZINTER, ZDIFF numkeys key [key ...] [WEIGHTS w ...]
//! [AGGREGATE SUM|MIN|MAX] [WITHSCORES], ZINTERCARD numkeys key [key ...]
//! [LIMIT limit] (reads), ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE destination
//! numkeys key [key ...] [WEIGHTS …] [AGGREGATE …] (logged as the
//! [`ZStore`] of their result).
//!
//! Computed as Redis's `zunionInterDiffGenericCommand` computes it: inputs
//! by ascending size (union, intersection), a weighted score that is NaN
//! counts as 0, a SUM that gives NaN (inf + -inf) is 0. The options are
//! checked after the inputs' types, as Redis checks them.

use std::collections::HashMap;

use super::arg::parse_i64;
use super::zset::members_reply;
use super::zstore::ZStore;
use super::{
    effect, not_integer, syntax_error, Action, Command, EffectSpec, Flags, Keys, Read, ReadCtx,
    Request, Resolved,
};
use crate::db::{Db, Value, ZSet};
use crate::reply::{self, Reply};
use crate::zset::parse_score;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

#[derive(Debug, Clone)]
struct Opts {
    weights: Vec<f64>,
    aggregate: Aggregate,
    withscores: bool,
    /// ZINTERCARD's LIMIT (0: none).
    limit: u64,
}

/// A parsed request: its inputs, and its options or the error they give
/// (answered once the inputs' types are checked).
#[derive(Debug)]
struct Spec {
    keys: Vec<Vec<u8>>,
    opts: Result<Opts, Reply>,
}

/// Parses from `numkeys` at `args[at]` on. `name`: the command's name in
/// the numkeys error; `store`: the STORE form (no WITHSCORES); `card`:
/// ZINTERCARD (LIMIT only).
fn parse_spec(
    args: &[Vec<u8>],
    at: usize,
    op: Op,
    name: &str,
    store: bool,
    card: bool,
) -> Result<Spec, Reply> {
    let n = parse_i64(&args[at]).ok_or_else(not_integer)?;
    if n < 1 {
        return Err(Reply::Error(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    let first = at + 1;
    if n as u64 > (args.len() - first) as u64 {
        return Err(syntax_error());
    }
    let n = n as usize;
    let keys = args[first..first + n].to_vec();
    let opts = (|| {
        let mut o = Opts {
            weights: vec![1.0; n],
            aggregate: Aggregate::Sum,
            withscores: false,
            limit: 0,
        };
        let mut j = first + n;
        while j < args.len() {
            let left = args.len() - j;
            let w = args[j].to_ascii_lowercase();
            if op != Op::Diff && !card && left > n && w == b"weights" {
                for i in 0..n {
                    o.weights[i] = parse_score(&args[j + 1 + i])
                        .ok_or_else(|| Reply::error("ERR weight value is not a float"))?;
                }
                j += 1 + n;
            } else if op != Op::Diff && !card && left >= 2 && w == b"aggregate" {
                o.aggregate = match args[j + 1].to_ascii_lowercase().as_slice() {
                    b"sum" => Aggregate::Sum,
                    b"min" => Aggregate::Min,
                    b"max" => Aggregate::Max,
                    _ => return Err(syntax_error()),
                };
                j += 2;
            } else if !store && !card && w == b"withscores" {
                o.withscores = true;
                j += 1;
            } else if card && left >= 2 && w == b"limit" {
                o.limit = match parse_i64(&args[j + 1]) {
                    Some(l) if l >= 0 => l as u64,
                    _ => return Err(Reply::error("ERR LIMIT can't be negative")),
                };
                j += 2;
            } else {
                return Err(syntax_error());
            }
        }
        Ok(o)
    })();
    Ok(Spec { keys, opts })
}

/// One input: a sorted set, or a plain set (its members with score 1, as
/// Redis reads one).
#[derive(Clone, Copy)]
enum Src<'a> {
    Z(&'a ZSet),
    /// A plain set: every member with score 1, as Redis reads one.
    S(&'a crate::db::Members),
}

impl<'a> Src<'a> {
    fn len(self) -> usize {
        match self {
            Src::Z(z) => z.len(),
            Src::S(m) => m.len(),
        }
    }

    fn members(self) -> Box<dyn Iterator<Item = (&'a [u8], f64)> + 'a> {
        match self {
            Src::Z(z) => Box::new(z.members()),
            Src::S(set) => Box::new(set.iter().map(|m| (m, 1.0))),
        }
    }

    fn score(self, m: &[u8]) -> Option<f64> {
        match self {
            Src::Z(z) => z.score(m),
            Src::S(set) => set.contains(m).then_some(1.0),
        }
    }

    /// The same input twice (Redis compares the objects).
    fn same(self, other: Src<'_>) -> bool {
        match (self, other) {
            (Src::Z(a), Src::Z(b)) => std::ptr::eq(a, b),
            (Src::S(a), Src::S(b)) => std::ptr::eq(a, b),
            _ => false,
        }
    }
}

/// The inputs of `keys` (None: absent), or WRONGTYPE.
fn inputs<'a>(db: &'a Db, keys: &[Vec<u8>], now_ms: u64) -> Result<Vec<Option<Src<'a>>>, Reply> {
    keys.iter()
        .map(|k| match db.get(k, now_ms) {
            None => Ok(None),
            Some(Value::ZSet(z)) => Ok(Some(Src::Z(z))),
            Some(Value::Set(m)) => Ok(Some(Src::S(m))),
            Some(_) => Err(Reply::error(reply::WRONGTYPE)),
        })
        .collect()
}

fn aggregate(target: &mut f64, val: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

fn weighted(score: f64, w: f64) -> f64 {
    let s = w * score;
    if s.is_nan() {
        0.0
    } else {
        s
    }
}

/// The result of `op` over `srcs`; for ZINTERCARD (`card`) only its size.
fn compute(op: Op, srcs: Vec<Option<Src<'_>>>, o: &Opts, card: bool) -> (Vec<(Vec<u8>, f64)>, u64) {
    let mut srcs: Vec<(Option<Src<'_>>, f64)> =
        srcs.into_iter().zip(o.weights.iter().copied()).collect();
    let len = |s: &Option<Src<'_>>| s.map_or(0, |z| z.len());
    let mut out = Vec::new();
    let mut count = 0u64;
    match op {
        Op::Union => {
            srcs.sort_by_key(|(s, _)| len(s));
            let mut acc: HashMap<&[u8], f64> = HashMap::new();
            let mut order: Vec<&[u8]> = Vec::new();
            for (s, w) in &srcs {
                let Some(z) = s else { continue };
                for (m, sc) in z.members() {
                    let v = weighted(sc, *w);
                    match acc.get_mut(m) {
                        Some(t) => aggregate(t, v, o.aggregate),
                        None => {
                            acc.insert(m, v);
                            order.push(m);
                        }
                    }
                }
            }
            out = order.into_iter().map(|m| (m.to_vec(), acc[m])).collect();
        }
        Op::Inter => {
            srcs.sort_by_key(|(s, _)| len(s));
            if let (Some(z0), w0) = srcs[0] {
                'members: for (m, sc) in z0.members() {
                    let mut score = weighted(sc, w0);
                    for (s, w) in &srcs[1..] {
                        let value = match s {
                            Some(z) if z.same(z0) => sc * w,
                            Some(z) => match z.score(m) {
                                Some(v) => v * w,
                                None => continue 'members,
                            },
                            None => continue 'members,
                        };
                        aggregate(&mut score, value, o.aggregate);
                    }
                    if card {
                        count += 1;
                        if o.limit > 0 && count >= o.limit {
                            break;
                        }
                    } else {
                        out.push((m.to_vec(), score));
                    }
                }
            }
        }
        Op::Diff => {
            if let (Some(z0), _) = srcs[0] {
                let others = &srcs[1..];
                if !others.iter().any(|(s, _)| s.is_some_and(|z| z.same(z0))) {
                    for (m, sc) in z0.members() {
                        if others
                            .iter()
                            .all(|(s, _)| s.is_none_or(|z| z.score(m).is_none()))
                        {
                            out.push((m.to_vec(), sc));
                        }
                    }
                }
            }
        }
    }
    (out, count)
}

/// The result in (score, member) order.
fn sorted(items: Vec<(Vec<u8>, f64)>) -> ZSet {
    items.into_iter().collect()
}

// ---------------------------------------------------------------- reads

struct ZSetOpRead {
    op: Op,
    card: bool,
    spec: Spec,
}

impl Read for ZSetOpRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let srcs = match inputs(ctx.db, &self.spec.keys, ctx.now_ms) {
            Err(e) => return e,
            Ok(s) => s,
        };
        let o = match self.spec.opts {
            Err(e) => return e,
            Ok(o) => o,
        };
        let (items, count) = compute(self.op, srcs, &o, self.card);
        if self.card {
            return Reply::Int(count as i64);
        }
        let z = sorted(items);
        members_reply(z.iter(), o.withscores)
    }
}

macro_rules! zsetop_read {
    ($ty:ident, $name:literal, $op:expr, $card:expr) => {
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = -3;
            const FLAGS: Flags = Flags::READONLY;
            // movable keys
            const KEYS: Keys = Keys::NONE;

            fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
                Ok(Action::read(ZSetOpRead {
                    op: $op,
                    card: $card,
                    spec: parse_spec(&args, 1, $op, $name, false, $card)?,
                }))
            }
        }
    };
}

zsetop_read!(ZUnion, "zunion", Op::Union, false);
zsetop_read!(ZInter, "zinter", Op::Inter, false);
zsetop_read!(ZDiff, "zdiff", Op::Diff, false);
zsetop_read!(ZInterCard, "zintercard", Op::Inter, true);

// ---------------------------------------------------------------- stores

#[derive(Debug)]
struct ZSetOpStore {
    op: Op,
    destination: Vec<u8>,
    spec: Spec,
}

impl Request for ZSetOpStore {
    fn resolve(self, db: &Db, now_ms: u64) -> Resolved {
        let srcs = match inputs(db, &self.spec.keys, now_ms) {
            Err(e) => return Resolved::Reply(e),
            Ok(s) => s,
        };
        let o = match self.spec.opts {
            Err(e) => return Resolved::Reply(e),
            Ok(o) => o,
        };
        let (items, _) = compute(self.op, srcs, &o, false);
        let items = sorted(items).iter().map(|(m, s)| (m.to_vec(), s)).collect();
        ZStore::resolve(self.destination, items, db, now_ms)
    }
}

macro_rules! zsetop_store {
    ($ty:ident, $name:literal, $op:expr) => {
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = -4;
            const FLAGS: Flags = Flags::WRITE;
            // the destination (the inputs are movable keys)
            const KEYS: Keys = Keys::ONE;
            const EFFECT: Option<EffectSpec> = Some(effect::<ZStore>());

            fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
                let spec = parse_spec(&args, 2, $op, $name, true, false)?;
                Ok(Action::request(ZSetOpStore {
                    op: $op,
                    destination: args[1].clone(),
                    spec,
                }))
            }
        }
    };
}

zsetop_store!(ZUnionStore, "zunionstore", Op::Union);
zsetop_store!(ZInterStore, "zinterstore", Op::Inter);
zsetop_store!(ZDiffStore, "zdiffstore", Op::Diff);
