//! ZREM key member [member ...], ZREMRANGEBYSCORE key min max,
//! ZREMRANGEBYRANK key start stop, ZREMRANGEBYLEX key min max
//!
//! The range forms are logged as the ZREM of the members they remove (a
//! range that removes nothing logs nothing).
//!
//! ```text
//!  ZREM  op 42 | key:bytes | n u32 | n × member:bytes
//! ```

use super::arg::parse_i64;
use super::codec::{describe_words, put_bytes, put_list, DecodeError, Decoder};
use super::zset::{check_zset, drop_if_empty, get_zset, zset_mut, LEX_NOT_VALID, RANGE_NOT_FLOAT};
use super::{
    effect, not_integer, Action, Command, Effect, EffectSpec, Flags, Keys, Request, Resolved,
};
use crate::db::{Db, ZSet};
use crate::reply::Reply;
use crate::zset::{LexRange, ScoreRange};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZRem {
    pub key: Vec<u8>,
    pub members: Vec<Vec<u8>>,
}

impl Command for ZRem {
    const NAME: &'static str = "zrem";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<ZRem>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let members = args.split_off(2);
        Ok(Action::write(ZRem {
            key: args.swap_remove(1),
            members,
        }))
    }
}

impl Effect for ZRem {
    const OP: u8 = 42;
    const NAME: &'static str = "ZREM";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_list(out, &self.members);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<ZRem, DecodeError> {
        Ok(ZRem {
            key: d.bytes()?,
            members: d.list()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        check_zset(db, &self.key, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        if let Some(e) = check_zset(db, &self.key, now_ms) {
            return e;
        }
        let Some(z) = zset_mut(db, &self.key, now_ms) else {
            return Reply::Int(0);
        };
        let removed = self
            .members
            .iter()
            .filter(|m| z.remove(m).is_some())
            .count();
        if removed > 0 {
            db.notify(crate::pubsub::class::ZSET, "zrem", &self.key);
        }
        drop_if_empty(db, &self.key, now_ms);
        Reply::Int(removed as i64)
    }

    fn describe(&self) -> String {
        describe_words(
            &format!("ZREM {}", super::codec::quote(&self.key)),
            self.members.iter().map(Vec::as_slice),
        )
    }
}

// ---------------------------------------------------------------- ranges

/// Which entries a ZREMRANGEBY* removes.
#[derive(Debug)]
enum Range {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// Ascending ranks `[start, end)` of Redis's rank range `start stop`
/// (negative from the end, clamped); empty when out of range.
pub fn rank_range(len: usize, start: i64, stop: i64) -> (usize, usize) {
    let n = len as i64;
    let start = if start < 0 { n + start } else { start }.max(0);
    let stop = if stop < 0 { n + stop } else { stop };
    if start > stop || start >= n {
        return (0, 0);
    }
    (start as usize, (stop.min(n - 1) + 1) as usize)
}

impl Range {
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        match self {
            Range::Rank(a, b) => rank_range(z.len(), *a, *b),
            Range::Score(r) => r.ranks(z),
            Range::Lex(r) => r.ranks(z),
        }
    }
}

#[derive(Debug)]
struct ZRemRange {
    key: Vec<u8>,
    range: Range,
}

impl Request for ZRemRange {
    fn resolve(self, db: &Db, now_ms: u64) -> Resolved {
        let z = match get_zset(db, &self.key, now_ms) {
            Err(e) => return Resolved::Reply(e),
            Ok(None) => return Resolved::Reply(Reply::Int(0)),
            Ok(Some(z)) => z,
        };
        let (from, to) = self.range.ranks(z);
        if from >= to {
            return Resolved::Reply(Reply::Int(0));
        }
        let members = z
            .iter_from(from)
            .take(to - from)
            .map(|(m, _)| m.to_vec())
            .collect();
        Resolved::Write(Box::new(ZRem {
            key: self.key,
            members,
        }))
    }
}

macro_rules! zremrange_command {
    ($ty:ident, $name:literal, $parse:expr) => {
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = 4;
            const FLAGS: Flags = Flags::WRITE;
            const KEYS: Keys = Keys::ONE;
            const EFFECT: Option<EffectSpec> = Some(effect::<ZRem>());

            fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
                let range = $parse(&args[2], &args[3])?;
                Ok(Action::request(ZRemRange {
                    key: args.swap_remove(1),
                    range,
                }))
            }
        }
    };
}

fn by_rank(a: &[u8], b: &[u8]) -> Result<Range, Reply> {
    Ok(Range::Rank(
        parse_i64(a).ok_or_else(not_integer)?,
        parse_i64(b).ok_or_else(not_integer)?,
    ))
}

fn by_score(a: &[u8], b: &[u8]) -> Result<Range, Reply> {
    ScoreRange::parse(a, b)
        .map(Range::Score)
        .ok_or_else(|| Reply::error(RANGE_NOT_FLOAT))
}

fn by_lex(a: &[u8], b: &[u8]) -> Result<Range, Reply> {
    LexRange::parse(a, b)
        .map(Range::Lex)
        .ok_or_else(|| Reply::error(LEX_NOT_VALID))
}

zremrange_command!(ZRemRangeByRank, "zremrangebyrank", by_rank);
zremrange_command!(ZRemRangeByScore, "zremrangebyscore", by_score);
zremrange_command!(ZRemRangeByLex, "zremrangebylex", by_lex);
