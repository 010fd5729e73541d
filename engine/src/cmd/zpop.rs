//! ZPOPMIN, ZPOPMAX key [count], ZMPOP numkeys key [key ...] MIN|MAX
//! [COUNT count]
//!
//! Logged as the members popped ([`ZPopped`], resolved by [`pop`], which
//! the blocking forms can share); a pop that finds nothing logs nothing.
//!
//! ```text
//!  ZPOPPED  op 43 | key:bytes | shape u8 | n u32 | n × member:bytes
//!           shape: 0 one pair (ZPOPMIN key), 1 pairs (with a count),
//!                  2 [key, [[member, score] …]] (ZMPOP)
//! ```

use super::codec::{describe_words, put_bytes, put_list, put_u8, quote, DecodeError, Decoder};
use super::list::{at_least_one, positive_count};
use super::zset::{check_zset, drop_if_empty, get_zset, zset_mut};
use super::{
    effect, syntax_error, Action, Command, Effect, EffectSpec, Flags, Keys, Request, Resolved,
};
use crate::db::Db;
use crate::reply::Reply;

/// How the popped entries are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// ZPOPMIN key: `[member, score]` (flat in RESP3 too).
    One = 0,
    /// ZPOPMIN key count: pairs (flat in RESP2, nested in RESP3).
    Pairs = 1,
    /// ZMPOP: `[key, [[member, score], …]]` in both protocols.
    Keyed = 2,
}

impl Shape {
    fn from_u8(v: u8) -> Result<Shape, DecodeError> {
        match v {
            0 => Ok(Shape::One),
            1 => Ok(Shape::Pairs),
            2 => Ok(Shape::Keyed),
            _ => Err(DecodeError::Invalid {
                what: "ZPOPPED shape",
                value: u64::from(v),
            }),
        }
    }
}

/// The members popped from one key, lowest or highest first as popped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZPopped {
    pub key: Vec<u8>,
    pub shape: Shape,
    pub members: Vec<Vec<u8>>,
}

/// Resolves a pop of up to `count` entries (`max`: the highest first) from
/// the first of `keys` that exists: the [`ZPopped`] effect, or the reply
/// when nothing is popped (WRONGTYPE of a key met first, `empty` when no
/// key exists, an empty array for a count of 0).
pub fn pop(
    db: &Db,
    keys: &[Vec<u8>],
    max: bool,
    count: u64,
    shape: Shape,
    empty: Reply,
    now_ms: u64,
) -> Resolved {
    for key in keys {
        let z = match get_zset(db, key, now_ms) {
            Err(e) => return Resolved::Reply(e),
            Ok(None) => continue,
            Ok(Some(z)) => z,
        };
        if count == 0 {
            return Resolved::Reply(Reply::Array(vec![]));
        }
        let n = (count as usize).min(z.len());
        let members: Vec<Vec<u8>> = if max {
            z.iter_down_from(z.len() - 1)
                .take(n)
                .map(|(m, _)| m.to_vec())
                .collect()
        } else {
            z.iter().take(n).map(|(m, _)| m.to_vec()).collect()
        };
        return Resolved::Write(Box::new(ZPopped {
            key: key.clone(),
            shape,
            members,
        }));
    }
    Resolved::Reply(empty)
}

#[derive(Debug)]
struct ZPop {
    keys: Vec<Vec<u8>>,
    max: bool,
    count: u64,
    shape: Shape,
}

impl Request for ZPop {
    fn resolve(self, db: &Db, now_ms: u64) -> Resolved {
        let empty = match self.shape {
            Shape::Keyed => Reply::NilArray,
            _ => Reply::Array(vec![]),
        };
        pop(
            db, &self.keys, self.max, self.count, self.shape, empty, now_ms,
        )
    }
}

macro_rules! zpop_command {
    ($ty:ident, $name:literal, $max:expr) => {
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = -2;
            const FLAGS: Flags = Flags::WRITE;
            const KEYS: Keys = Keys::ONE;
            const EFFECT: Option<EffectSpec> = Some(effect::<ZPopped>());

            fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
                if args.len() > 3 {
                    return Err(syntax_error());
                }
                let (count, shape) = match args.get(2) {
                    Some(c) => (positive_count(c)?, Shape::Pairs),
                    None => (1, Shape::One),
                };
                args.truncate(2);
                Ok(Action::request(ZPop {
                    keys: vec![args.swap_remove(1)],
                    max: $max,
                    count,
                    shape,
                }))
            }
        }
    };
}

zpop_command!(ZPopMin, "zpopmin", false);
zpop_command!(ZPopMax, "zpopmax", true);

pub struct ZMPop;

impl Command for ZMPop {
    const NAME: &'static str = "zmpop";
    const ARITY: i64 = -4;
    const FLAGS: Flags = Flags::WRITE;
    // movable keys: a write of ZMPOP counts as touching every watched key
    const KEYS: Keys = Keys::NONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<ZPopped>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let (keys, max, count) = parse_mpop(&args, 1)?;
        Ok(Action::request(ZPop {
            keys,
            max,
            count,
            shape: Shape::Keyed,
        }))
    }
}

/// `numkeys key … MIN|MAX [COUNT count]` from `args[at]` on (ZMPOP,
/// BZMPOP): keys, max, count.
pub fn parse_mpop(args: &[Vec<u8>], at: usize) -> Result<(Vec<Vec<u8>>, bool, u64), Reply> {
    let numkeys = at_least_one(&args[at], "ERR numkeys should be greater than 0")?;
    let where_at = match usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(at + 1))
    {
        Some(i) if i < args.len() => i,
        _ => return Err(syntax_error()),
    };
    let max = match args[where_at].to_ascii_uppercase().as_slice() {
        b"MIN" => false,
        b"MAX" => true,
        _ => return Err(syntax_error()),
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && args[j].eq_ignore_ascii_case(b"COUNT") && j + 1 < args.len() {
            count = Some(at_least_one(
                &args[j + 1],
                "ERR count should be greater than 0",
            )?);
            j += 2;
        } else {
            return Err(syntax_error());
        }
    }
    Ok((args[at + 1..where_at].to_vec(), max, count.unwrap_or(1)))
}

impl Effect for ZPopped {
    const OP: u8 = 43;
    const NAME: &'static str = "ZPOPPED";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_u8(out, self.shape as u8);
        put_list(out, &self.members);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<ZPopped, DecodeError> {
        Ok(ZPopped {
            key: d.bytes()?,
            shape: Shape::from_u8(d.u8()?)?,
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
        let mut popped = Vec::with_capacity(self.members.len());
        if let Some(z) = zset_mut(db, &self.key, now_ms) {
            for m in self.members {
                if let Some(s) = z.remove(&m) {
                    popped.push((Reply::Bulk(m), Reply::Double(s)));
                }
            }
        }
        drop_if_empty(db, &self.key, now_ms);
        match self.shape {
            Shape::One => Reply::Array(popped.into_iter().flat_map(|(m, s)| [m, s]).collect()),
            Shape::Pairs => Reply::Pairs(popped),
            Shape::Keyed => Reply::Array(vec![
                Reply::Bulk(self.key),
                Reply::Array(
                    popped
                        .into_iter()
                        .map(|(m, s)| Reply::Array(vec![m, s]))
                        .collect(),
                ),
            ]),
        }
    }

    fn describe(&self) -> String {
        describe_words(
            &format!("ZPOPPED {}", quote(&self.key)),
            self.members.iter().map(Vec::as_slice),
        )
    }
}
