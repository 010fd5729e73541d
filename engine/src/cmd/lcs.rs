//! LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
//!
//! Redis 7.0's dynamic programme and its walk back, so that the ranges
//! IDX reports are the ones Redis reports. IDX answers
//! `["matches", [...], "len", n]` (a map in RESP3).

use super::arg::{parse_i64, upper};
use super::{not_integer, syntax_error, Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::Value;
use crate::reply::Reply;

/// Largest table (bytes of u32 cells) one LCS may allocate.
const MAX_TABLE_BYTES: u64 = 512 * 1024 * 1024;

pub struct Lcs {
    a: Vec<u8>,
    b: Vec<u8>,
    /// Options after the type check (Redis checks types first).
    opts: Result<LcsOptions, Reply>,
}

#[derive(Default)]
struct LcsOptions {
    idx: bool,
    len: bool,
    with_match_len: bool,
    min_match_len: u64,
}

fn parse_opts(args: &[Vec<u8>]) -> Result<LcsOptions, Reply> {
    let mut o = LcsOptions::default();
    let mut j = 0;
    while j < args.len() {
        match upper(&args[j]).as_slice() {
            b"IDX" => o.idx = true,
            b"LEN" => o.len = true,
            b"WITHMATCHLEN" => o.with_match_len = true,
            b"MINMATCHLEN" if j + 1 < args.len() => {
                let n = parse_i64(&args[j + 1]).ok_or_else(not_integer)?;
                o.min_match_len = n.max(0) as u64;
                j += 1;
            }
            _ => return Err(syntax_error()),
        }
        j += 1;
    }
    if o.idx && o.len {
        return Err(Reply::error(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    Ok(o)
}

impl Command for Lcs {
    const NAME: &'static str = "lcs";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::range(1, 2, 1);

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let opts = parse_opts(&args[3..]);
        args.truncate(3);
        let b = args.swap_remove(2);
        Ok(Action::read(Lcs {
            a: args.swap_remove(1),
            b,
            opts,
        }))
    }
}

impl Read for Lcs {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let get = |k: &[u8]| match ctx.db.get(k, ctx.now_ms) {
            None => Ok(&[][..]),
            Some(Value::Str(s)) => Ok(s.as_slice()),
            Some(_) => Err(Reply::error(
                "ERR The specified keys must contain string values",
            )),
        };
        let (a, b) = match (get(&self.a), get(&self.b)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return e,
        };
        let o = match self.opts {
            Ok(o) => o,
            Err(e) => return e,
        };
        lcs(a, b, &o)
    }
}

fn lcs(a: &[u8], b: &[u8], o: &LcsOptions) -> Reply {
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells.saturating_mul(4) > MAX_TABLE_BYTES {
        return Reply::error("ERR Insufficient memory, failed allocating transient memory for LCS");
    }
    let w = blen + 1;
    let mut t = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[alen * w + blen];
    let mut idx = total as usize;
    let mut result = vec![0u8; idx];
    let mut matches = Vec::new();
    let compute = o.idx || !o.len;
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0, 0, 0);
    let (mut i, mut j) = (alen, blen);
    while compute && i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == alen {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        let match_len = (a_end as u64 + 1).wrapping_sub(a_start as u64);
        if emit {
            if o.min_match_len == 0 || match_len >= o.min_match_len {
                let mut m = vec![
                    Reply::Array(vec![Reply::Int(a_start as i64), Reply::Int(a_end as i64)]),
                    Reply::Array(vec![Reply::Int(b_start as i64), Reply::Int(b_end as i64)]),
                ];
                if o.with_match_len {
                    m.push(Reply::Int(match_len as i64));
                }
                matches.push(Reply::Array(m));
            }
            a_start = alen;
        }
    }
    if o.idx {
        Reply::Map(vec![
            (Reply::Bulk(b"matches".to_vec()), Reply::Array(matches)),
            (Reply::Bulk(b"len".to_vec()), Reply::Int(i64::from(total))),
        ])
    } else if o.len {
        Reply::Int(i64::from(total))
    } else {
        Reply::Bulk(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_of_the_redis_docs() {
        let (a, b) = (b"ohmytext".as_slice(), b"mynewtext".as_slice());
        assert_eq!(
            lcs(a, b, &LcsOptions::default()),
            Reply::Bulk(b"mytext".to_vec())
        );
        let len = LcsOptions {
            len: true,
            ..Default::default()
        };
        assert_eq!(lcs(a, b, &len), Reply::Int(6));
        let idx = LcsOptions {
            idx: true,
            min_match_len: 4,
            with_match_len: true,
            ..Default::default()
        };
        let range = |x: i64, y: i64| Reply::Array(vec![Reply::Int(x), Reply::Int(y)]);
        assert_eq!(
            lcs(a, b, &idx),
            Reply::Map(vec![
                (
                    Reply::Bulk(b"matches".to_vec()),
                    Reply::Array(vec![Reply::Array(vec![
                        range(4, 7),
                        range(5, 8),
                        Reply::Int(4)
                    ])])
                ),
                (Reply::Bulk(b"len".to_vec()), Reply::Int(6)),
            ])
        );
    }
}
