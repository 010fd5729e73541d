//! ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count]
//! [WITHSCORES], ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX,
//! ZREVRANGEBYLEX (reads), ZRANGESTORE dst src min max [BYSCORE|BYLEX]
//! [REV] [LIMIT offset count] (logged as the [`ZStore`] of its result).
//!
//! Options are read as Redis's `zrangeGenericCommand` reads them: the
//! older commands fix the range type and direction and refuse the words
//! that would change them.

use super::arg::parse_i64;
use super::zrem::rank_range;
use super::zset::{get_zset, members_reply, LEX_NOT_VALID, RANGE_NOT_FLOAT};
use super::zstore::ZStore;
use super::{
    effect, not_integer, syntax_error, Action, Command, EffectSpec, Flags, Keys, Read, ReadCtx,
    Request, Resolved,
};
use crate::db::{Db, ZSet};
use crate::reply::Reply;
use crate::zset::{LexRange, ScoreRange};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Debug)]
enum Bounds {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// A parsed range request.
#[derive(Debug)]
pub struct RangeSpec {
    key: Vec<u8>,
    bounds: Bounds,
    rev: bool,
    offset: i64,
    /// Negative: no limit.
    limit: i64,
    withscores: bool,
}

/// Parses `key min max options…` from `args[at]` on, with the range type
/// `by` and direction `rev` fixed by the command (`By::Auto`, `None`:
/// chosen by the options).
fn parse_spec(
    args: &[Vec<u8>],
    at: usize,
    store: bool,
    mut by: By,
    rev: Option<bool>,
) -> Result<RangeSpec, Reply> {
    let mut rev_opt = rev;
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = at + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let w = args[j].to_ascii_lowercase();
        match w.as_slice() {
            b"withscores" if !store => withscores = true,
            b"limit" if left >= 2 => {
                offset = parse_i64(&args[j + 1]).ok_or_else(not_integer)?;
                limit = parse_i64(&args[j + 2]).ok_or_else(not_integer)?;
                j += 2;
            }
            b"rev" if rev_opt.is_none() => rev_opt = Some(true),
            b"bylex" if by == By::Auto => by = By::Lex,
            b"byscore" if by == By::Auto => by = By::Score,
            _ => return Err(syntax_error()),
        }
        j += 1;
    }
    let rev = rev_opt.unwrap_or(false);
    if by == By::Auto {
        by = By::Rank;
    }
    if limit != -1 && by == By::Rank {
        return Err(Reply::error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && by == By::Lex {
        return Err(Reply::error(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut lo, mut hi) = (&args[at + 1], &args[at + 2]);
    if rev && by != By::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    let bounds = match by {
        By::Score => {
            Bounds::Score(ScoreRange::parse(lo, hi).ok_or_else(|| Reply::error(RANGE_NOT_FLOAT))?)
        }
        By::Lex => Bounds::Lex(LexRange::parse(lo, hi).ok_or_else(|| Reply::error(LEX_NOT_VALID))?),
        _ => Bounds::Rank(
            parse_i64(lo).ok_or_else(not_integer)?,
            parse_i64(hi).ok_or_else(not_integer)?,
        ),
    };
    Ok(RangeSpec {
        key: args[at].clone(),
        bounds,
        rev,
        offset,
        limit,
        withscores,
    })
}

impl RangeSpec {
    /// The entries selected from `z`, in reply order.
    fn select<'a>(&self, z: &'a ZSet) -> Vec<(&'a [u8], f64)> {
        let (first, end, by_rank) = match &self.bounds {
            Bounds::Rank(a, b) => {
                let (f, e) = rank_range(z.len(), *a, *b);
                if self.rev {
                    // ranks counted from the highest
                    (z.len() - e, z.len() - f, true)
                } else {
                    (f, e, true)
                }
            }
            Bounds::Score(r) => {
                let (f, e) = r.ranks(z);
                (f, e, false)
            }
            Bounds::Lex(r) => {
                let (f, e) = if self.rev { r.ranks_rev(z) } else { r.ranks(z) };
                (f, e, false)
            }
        };
        if first >= end {
            return vec![];
        }
        let (skip, take) = if by_rank {
            (0, usize::MAX)
        } else {
            if self.offset < 0 || (self.offset > 0 && self.offset as u64 >= z.len() as u64) {
                return vec![];
            }
            (
                self.offset as usize,
                if self.limit < 0 {
                    usize::MAX
                } else {
                    self.limit as usize
                },
            )
        };
        let n = (end - first).saturating_sub(skip).min(take);
        if self.rev {
            z.iter_down_from(end - 1).skip(skip).take(n).collect()
        } else {
            z.iter_from(first + skip).take(n).collect()
        }
    }
}

/// A range read: ZRANGE and the older forms.
pub struct ZRangeRead(RangeSpec);

impl Read for ZRangeRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let spec = self.0;
        match get_zset(ctx.db, &spec.key, ctx.now_ms) {
            Err(e) => e,
            Ok(None) => Reply::Array(vec![]),
            Ok(Some(z)) => members_reply(spec.select(z).into_iter(), spec.withscores),
        }
    }
}

macro_rules! zrange_command {
    ($ty:ident, $name:literal, $by:expr, $rev:expr) => {
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = -4;
            const FLAGS: Flags = Flags::READONLY;
            const KEYS: Keys = Keys::ONE;

            fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
                Ok(Action::read(ZRangeRead(parse_spec(
                    &args, 1, false, $by, $rev,
                )?)))
            }
        }
    };
}

zrange_command!(ZRange, "zrange", By::Auto, None);
zrange_command!(ZRevRange, "zrevrange", By::Rank, Some(true));
zrange_command!(ZRangeByScore, "zrangebyscore", By::Score, Some(false));
zrange_command!(ZRevRangeByScore, "zrevrangebyscore", By::Score, Some(true));
zrange_command!(ZRangeByLex, "zrangebylex", By::Lex, Some(false));
zrange_command!(ZRevRangeByLex, "zrevrangebylex", By::Lex, Some(true));

// ---------------------------------------------------------------- store

pub struct ZRangeStore;

#[derive(Debug)]
struct ZRangeStoreReq {
    destination: Vec<u8>,
    spec: RangeSpec,
}

impl Command for ZRangeStore {
    const NAME: &'static str = "zrangestore";
    const ARITY: i64 = -5;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, 2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<ZStore>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let spec = parse_spec(&args, 2, true, By::Auto, None)?;
        Ok(Action::request(ZRangeStoreReq {
            destination: args[1].clone(),
            spec,
        }))
    }
}

impl Request for ZRangeStoreReq {
    fn resolve(self, db: &Db, now_ms: u64) -> Resolved {
        let items = match get_zset(db, &self.spec.key, now_ms) {
            Err(e) => return Resolved::Reply(e),
            Ok(None) => vec![],
            Ok(Some(z)) => self
                .spec
                .select(z)
                .into_iter()
                .map(|(m, s)| (m.to_vec(), s))
                .collect(),
        };
        ZStore::resolve(self.destination, items, db, now_ms)
    }
}
