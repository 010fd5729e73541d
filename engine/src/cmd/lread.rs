//! LLEN key, LRANGE key start stop, LINDEX key index,
//! LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]

use super::arg::{parse_i64, upper};
use super::list::{index, range, ErrAfterLookup};
use super::{not_integer, syntax_error, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::List;
use crate::reply::Reply;

/// The live list at `key` (None when absent) or the WRONGTYPE reply.
fn list<'a>(ctx: &'a ReadCtx<'_>, key: &[u8]) -> Result<Option<&'a List>, Reply> {
    ctx.db.get_list(key, ctx.now_ms).map_err(Reply::from)
}

pub struct LLen {
    key: Vec<u8>,
}

impl Command for LLen {
    const NAME: &'static str = "llen";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(LLen {
            key: args.swap_remove(1),
        }))
    }
}

impl Read for LLen {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match list(ctx, &self.key) {
            Ok(l) => Reply::Int(l.map_or(0, |l| l.len() as i64)),
            Err(e) => e,
        }
    }
}

pub struct LRange {
    key: Vec<u8>,
    start: i64,
    stop: i64,
}

impl Command for LRange {
    const NAME: &'static str = "lrange";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let (Some(start), Some(stop)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
            return Err(not_integer());
        };
        Ok(Action::read(LRange {
            key: args.swap_remove(1),
            start,
            stop,
        }))
    }
}

impl Read for LRange {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match list(ctx, &self.key) {
            Err(e) => e,
            Ok(None) => Reply::Array(vec![]),
            Ok(Some(l)) => match range(l.len(), self.start, self.stop) {
                None => Reply::Array(vec![]),
                Some((a, b)) => Reply::Array(l.range(a..=b).cloned().map(Reply::Bulk).collect()),
            },
        }
    }
}

pub struct LIndex {
    key: Vec<u8>,
    index: i64,
}

impl Command for LIndex {
    const NAME: &'static str = "lindex";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let i = parse_i64(&args[2]);
        let key = args.swap_remove(1);
        // Redis looks the key up before it reads the index
        Ok(match i {
            Some(index) => Action::read(LIndex { key, index }),
            None => Action::read(ErrAfterLookup {
                key,
                missing: Reply::Nil,
                err: not_integer(),
            }),
        })
    }
}

impl Read for LIndex {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match list(ctx, &self.key) {
            Err(e) => e,
            Ok(None) => Reply::Nil,
            Ok(Some(l)) => match index(l.len(), self.index) {
                Some(i) => Reply::Bulk(l[i].clone()),
                None => Reply::Nil,
            },
        }
    }
}

pub struct LPos {
    key: Vec<u8>,
    element: Vec<u8>,
    rank: i64,
    count: Option<i64>,
    maxlen: i64,
}

const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
const RANK_MIN: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";

impl Command for LPos {
    const NAME: &'static str = "lpos";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let (mut rank, mut count, mut maxlen) = (1, None, 0);
        let mut i = 3;
        while i < args.len() {
            let opt = upper(&args[i]);
            let Some(v) = args.get(i + 1) else {
                return Err(syntax_error());
            };
            match opt.as_slice() {
                b"RANK" => {
                    rank = parse_i64(v).ok_or_else(not_integer)?;
                    if rank == i64::MIN {
                        return Err(Reply::error(RANK_MIN));
                    }
                    if rank == 0 {
                        return Err(Reply::error(RANK_ZERO));
                    }
                }
                b"COUNT" => {
                    // Redis's getPositiveLong…: one error for both
                    match parse_i64(v) {
                        Some(c) if c >= 0 => count = Some(c),
                        _ => return Err(Reply::error("ERR COUNT can't be negative")),
                    }
                }
                b"MAXLEN" => match parse_i64(v) {
                    Some(m) if m >= 0 => maxlen = m,
                    _ => return Err(Reply::error("ERR MAXLEN can't be negative")),
                },
                _ => return Err(syntax_error()),
            }
            i += 2;
        }
        args.truncate(3);
        let element = args.swap_remove(2);
        Ok(Action::read(LPos {
            key: args.swap_remove(1),
            element,
            rank,
            count,
            maxlen,
        }))
    }
}

impl Read for LPos {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let l = match list(ctx, &self.key) {
            Err(e) => return e,
            Ok(None) => {
                return match self.count {
                    Some(_) => Reply::Array(vec![]),
                    None => Reply::Nil,
                }
            }
            Ok(Some(l)) => l,
        };
        let len = l.len();
        let positions: Box<dyn Iterator<Item = usize>> = if self.rank > 0 {
            Box::new(0..len)
        } else {
            Box::new((0..len).rev())
        };
        let limit = match self.count {
            Some(0) => usize::MAX,
            Some(c) => c as usize,
            None => 1,
        };
        let mut skip = self.rank.unsigned_abs() - 1;
        let mut found = Vec::new();
        for (n, i) in positions.enumerate() {
            if self.maxlen != 0 && n as i64 >= self.maxlen {
                break;
            }
            if l[i] == self.element {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                found.push(Reply::Int(i as i64));
                if found.len() >= limit {
                    break;
                }
            }
        }
        match self.count {
            Some(_) => Reply::Array(found),
            None => found.pop().unwrap_or(Reply::Nil),
        }
    }
}
