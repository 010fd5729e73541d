//! SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC | DESC]
//! [ALPHA] [STORE destination], SORT_RO (the same without STORE)
//!
//! As Redis 7.0 sorts: numerically by default (scores read like `strtod`;
//! equal scores ordered by the elements' bytes), ALPHA by bytes; BY a
//! pattern sorts by the keys (`*` replaced by the element, `->field` for a
//! hash field) it names, and BY a pattern without `*` keeps the list's own
//! order; GET `#` is the element itself. The sort is a function of the
//! state, so SORT … STORE is logged as its options: replaying them against
//! the same state stores the same list.
//!
//! ```text
//!  op 63 | key:bytes | destination:bytes
//!        | flags u8 (bit 0 DESC, bit 1 ALPHA, bit 2 BY, bit 3 a BY without `*`: no sorting)
//!        | by:bytes (empty without BY) | limit offset i64 | limit count i64 (-1: all)
//!        | n u32 | n × get pattern:bytes
//! ```

use std::cmp::Ordering;

use super::arg::{parse_i64, upper};
use super::codec::{put_bytes, put_i64, put_list, put_u8, quote, DecodeError, Decoder};
use super::{
    c_str, effect, not_integer, syntax_error, Action, Command, Effect, EffectSpec, Flags, Keys,
    Read, ReadCtx,
};
use crate::db::{Db, Entry, List, Value};
use crate::reply::{self, Reply};

/// What to sort and how.
#[derive(Debug, Clone, PartialEq)]
pub struct SortOpts {
    pub key: Vec<u8>,
    pub by: Option<Vec<u8>>,
    pub limit_start: i64,
    pub limit_count: i64,
    pub gets: Vec<Vec<u8>>,
    pub desc: bool,
    pub alpha: bool,
    /// A BY pattern without `*` was given (even if a later BY has one, as
    /// Redis reads them): the list's own order.
    pub dontsort: bool,
}

/// SORT … STORE destination.
#[derive(Debug, Clone, PartialEq)]
pub struct SortStore {
    pub opts: SortOpts,
    pub dest: Vec<u8>,
}

pub struct Sort;
pub struct SortRo;

struct SortRead(SortOpts);

fn parse_sort(mut args: Vec<Vec<u8>>, ro: bool) -> Result<Action, Reply> {
    let mut opts = SortOpts {
        key: Vec::new(),
        by: None,
        limit_start: 0,
        limit_count: -1,
        gets: Vec::new(),
        desc: false,
        alpha: false,
        dontsort: false,
    };
    let mut store = None;
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        match upper(&args[j]).as_slice() {
            b"ASC" => opts.desc = false,
            b"DESC" => opts.desc = true,
            b"ALPHA" => opts.alpha = true,
            b"LIMIT" if left >= 2 => {
                opts.limit_start = parse_i64(&args[j + 1]).ok_or_else(not_integer)?;
                opts.limit_count = parse_i64(&args[j + 2]).ok_or_else(not_integer)?;
                j += 2;
            }
            b"STORE" if !ro && left >= 1 => {
                store = Some(std::mem::take(&mut args[j + 1]));
                j += 1;
            }
            b"BY" if left >= 1 => {
                opts.dontsort |= !c_str(&args[j + 1], usize::MAX).contains(&b'*');
                opts.by = Some(args[j + 1].clone());
                j += 1;
            }
            b"GET" if left >= 1 => {
                opts.gets.push(args[j + 1].clone());
                j += 1;
            }
            _ => return Err(syntax_error()),
        }
        j += 1;
    }
    opts.key = args.swap_remove(1);
    Ok(match store {
        Some(dest) => Action::write(SortStore { opts, dest }),
        None => Action::read(SortRead(opts)),
    })
}

impl Command for Sort {
    const NAME: &'static str = "sort";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::WRITE.with(Flags::MOVABLE_KEYS);
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<SortStore>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_sort(args, false)
    }
}

impl Command for SortRo {
    const NAME: &'static str = "sort_ro";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_sort(args, true)
    }
}

/// Redis's `lookupKeyByPattern`: the string (or hash field, `->field`)
/// `pattern` names for `elem`; `#` is `elem` itself.
fn lookup_by_pattern(db: &Db, now_ms: u64, pattern: &[u8], elem: &[u8]) -> Option<Vec<u8>> {
    let pat = c_str(pattern, usize::MAX);
    if pat == b"#" {
        return Some(elem.to_vec());
    }
    let star = pat.iter().position(|&c| c == b'*')?;
    let after = &pat[star + 1..];
    let (rest, field) = match after.windows(2).position(|w| w == b"->") {
        Some(i) if i + 2 < after.len() => (&after[..i], Some(&after[i + 2..])),
        _ => (after, None),
    };
    let mut key = pat[..star].to_vec();
    key.extend_from_slice(elem);
    key.extend_from_slice(rest);
    match (db.get(&key, now_ms)?, field) {
        (Value::Str(s), None) => Some(s.clone()),
        (Value::Hash(h), Some(f)) => h.get(f).map(<[u8]>::to_vec),
        _ => None,
    }
}

/// C's `strtod` over the whole value (up to a NUL; decimal, hexadecimal,
/// `inf`): None when text is left over, the value is out of range or NaN.
/// (Redis 7.0 tests `errno` without clearing it, so once one score was out
/// of range every later non-integer score fails there too, until errno
/// changes; the engine judges each score on its own.)
fn score(v: &[u8]) -> Option<f64> {
    let v = c_str(v, usize::MAX);
    if v.is_empty() {
        return Some(0.0);
    }
    let t = std::str::from_utf8(v).ok()?;
    let t = t.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if lower.len() - body.len() > 1 || body.starts_with("nan") {
        return None;
    }
    let x: f64 = if matches!(body, "inf" | "infinity") {
        t.parse().ok()?
    } else if let Some(hex) = body.strip_prefix("0x") {
        let x = hex_float(hex)?;
        if x.is_infinite() || (x != 0.0 && !x.is_normal()) {
            return None;
        }
        if lower.starts_with('-') {
            -x
        } else {
            x
        }
    } else {
        if !body
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == b'.')
        {
            return None;
        }
        let x: f64 = t.parse().ok()?;
        let mantissa = body.split('e').next().unwrap_or("");
        let underflow = (x == 0.0 && mantissa.bytes().any(|c| (b'1'..=b'9').contains(&c)))
            || (x != 0.0 && !x.is_normal());
        if x.is_infinite() || underflow {
            return None;
        }
        x
    };
    Some(x)
}

/// C's hexadecimal floating point (after `0x`): hex digits with an
/// optional point, then an optional binary exponent `p[+-]n`.
fn hex_float(t: &str) -> Option<f64> {
    let (mant, exp) = match t.split_once('p') {
        Some((m, e)) => (m, Some(e)),
        None => (t, None),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut x = 0f64;
    let mut scale = 0i64;
    for c in int.chars() {
        x = x * 16.0 + f64::from(c.to_digit(16)?);
    }
    for c in frac.chars() {
        x = x * 16.0 + f64::from(c.to_digit(16)?);
        scale -= 4;
    }
    if let Some(e) = exp {
        let digits = e.trim_start_matches(['+', '-']);
        if digits.is_empty() || e.len() - digits.len() > 1 {
            return None;
        }
        let n: i64 = digits.parse().ok()?;
        scale += if e.starts_with('-') { -n } else { n };
    }
    Some(x * 2f64.powi(scale.clamp(-4000, 4000) as i32))
}

/// The elements SORT works on, in the value's own order.
fn elements<'a>(db: &'a Db, key: &[u8], now_ms: u64) -> Result<Vec<&'a [u8]>, Reply> {
    static EMPTY: List = List::new();
    let list = match db.get(key, now_ms) {
        None => &EMPTY,
        Some(Value::List(l)) => l,
        Some(Value::Set(m)) => return Ok(m.iter().collect()),
        // in the sorted set's order (what BY nosort keeps)
        Some(Value::ZSet(z)) => return Ok(z.iter().map(|(m, _)| m).collect()),
        Some(_) => return Err(Reply::error(reply::WRONGTYPE)),
    };
    Ok(list.iter().map(Vec::as_slice).collect())
}

/// An element with its numeric score and its BY value.
type Keyed<'a> = (&'a [u8], f64, Option<Vec<u8>>);

/// The sorted output: per element in the LIMIT range, the element itself
/// (no GET) or one value per GET pattern (None: missing).
fn run(db: &Db, now_ms: u64, o: &SortOpts) -> Result<Vec<Option<Vec<u8>>>, Reply> {
    let items = elements(db, &o.key, now_ms)?;
    let dontsort = o.dontsort;
    let n = items.len() as i64;
    let mut start = o.limit_start.max(0);
    let mut end = if o.limit_count < 0 {
        n - 1
    } else {
        start.saturating_add(o.limit_count) - 1
    };
    if start >= n {
        start = n - 1;
        end = n - 2;
    }
    if end >= n {
        end = n - 1;
    }
    let picked: Vec<&[u8]> = if dontsort {
        // the list's own order (reversed for DESC), the LIMIT range only
        let range: Vec<&[u8]> = if end >= start {
            let take = (end - start + 1) as usize;
            if o.desc {
                items
                    .iter()
                    .rev()
                    .skip(start as usize)
                    .take(take)
                    .copied()
                    .collect()
            } else {
                items
                    .iter()
                    .skip(start as usize)
                    .take(take)
                    .copied()
                    .collect()
            }
        } else {
            Vec::new()
        };
        end -= start;
        start = 0;
        range
    } else {
        let mut v: Vec<Keyed<'_>> = Vec::with_capacity(items.len());
        let mut bad_score = false;
        for e in items {
            let by = match &o.by {
                Some(p) => lookup_by_pattern(db, now_ms, p, e),
                None => None,
            };
            let mut s = 0.0;
            if !o.alpha {
                let val = if o.by.is_some() {
                    by.as_deref()
                } else {
                    Some(e)
                };
                if let Some(val) = val {
                    match score(val) {
                        Some(x) => s = x,
                        None => bad_score = true,
                    }
                }
            }
            v.push((e, s, by));
        }
        if bad_score {
            return Err(Reply::error(
                "ERR One or more scores can't be converted into double",
            ));
        }
        let by_pattern = o.by.is_some();
        v.sort_by(|a, b| {
            let c = if !o.alpha {
                a.1.partial_cmp(&b.1)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.0.cmp(b.0))
            } else if by_pattern {
                match (&a.2, &b.2) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (None, None) => Ordering::Equal,
                    (None, _) => Ordering::Less,
                    (_, None) => Ordering::Greater,
                }
            } else {
                a.0.cmp(b.0)
            };
            if o.desc {
                c.reverse()
            } else {
                c
            }
        });
        v.into_iter().map(|(e, _, _)| e).collect()
    };
    let mut out = Vec::new();
    if end < start {
        return Ok(out);
    }
    for e in &picked[start as usize..=end as usize] {
        if o.gets.is_empty() {
            out.push(Some(e.to_vec()));
        }
        for g in &o.gets {
            out.push(lookup_by_pattern(db, now_ms, g, e));
        }
    }
    Ok(out)
}

impl Read for SortRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match run(ctx.db, ctx.now_ms, &self.0) {
            Ok(v) => Reply::Array(
                v.into_iter()
                    .map(|x| x.map_or(Reply::Nil, Reply::Bulk))
                    .collect(),
            ),
            Err(e) => e,
        }
    }
}

impl Effect for SortStore {
    const OP: u8 = 63;
    const NAME: &'static str = "SORT";

    fn encode_body(&self, out: &mut Vec<u8>) {
        let o = &self.opts;
        put_bytes(out, &o.key);
        put_bytes(out, &self.dest);
        put_u8(
            out,
            u8::from(o.desc)
                | u8::from(o.alpha) << 1
                | u8::from(o.by.is_some()) << 2
                | u8::from(o.dontsort) << 3,
        );
        put_bytes(out, o.by.as_deref().unwrap_or_default());
        put_i64(out, o.limit_start);
        put_i64(out, o.limit_count);
        put_list(out, &o.gets);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<SortStore, DecodeError> {
        let key = d.bytes()?;
        let dest = d.bytes()?;
        let flags = d.u8()?;
        let by = d.bytes()?;
        if flags > 15 || (flags & 4 == 0 && (!by.is_empty() || flags & 8 != 0)) {
            return Err(DecodeError::Invalid {
                what: "SORT flags",
                value: u64::from(flags),
            });
        }
        Ok(SortStore {
            opts: SortOpts {
                key,
                by: (flags & 4 != 0).then_some(by),
                limit_start: d.i64()?,
                limit_count: d.i64()?,
                gets: d.list()?,
                desc: flags & 1 != 0,
                alpha: flags & 2 != 0,
                dontsort: flags & 8 != 0,
            },
            dest,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        run(db, now_ms, &self.opts).err()
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let out = match run(db, now_ms, &self.opts) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let n = out.len() as i64;
        if out.is_empty() {
            db.remove(&self.dest);
        } else {
            let list: List = out.into_iter().map(Option::unwrap_or_default).collect();
            db.insert_entry(self.dest, Entry::new(Value::List(list)));
        }
        Reply::Int(n)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Positive, vec![&self.dest])
    }

    fn describe(&self) -> String {
        let o = &self.opts;
        let mut s = format!("SORT {}", quote(&o.key));
        if let Some(by) = &o.by {
            s.push_str(&format!(" BY {}", quote(by)));
        }
        if (o.limit_start, o.limit_count) != (0, -1) {
            s.push_str(&format!(" LIMIT {} {}", o.limit_start, o.limit_count));
        }
        for g in &o.gets {
            s.push_str(&format!(" GET {}", quote(g)));
        }
        if o.desc {
            s.push_str(" DESC");
        }
        if o.alpha {
            s.push_str(" ALPHA");
        }
        s.push_str(&format!(" STORE {}", quote(&self.dest)));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::score;

    #[test]
    fn scores_are_read_like_strtod() {
        assert_eq!(score(b"1.5"), Some(1.5));
        assert_eq!(score(b" -2"), Some(-2.0));
        assert_eq!(score(b""), Some(0.0));
        assert_eq!(score(b"inf"), Some(f64::INFINITY));
        assert_eq!(score(b"1e400"), None);
        assert_eq!(score(b"1e-400"), None);
        assert_eq!(score(b"nan"), None);
        assert_eq!(score(b"1x"), None);
        assert_eq!(score(b" "), None);
        assert_eq!(score(b"1\0x"), Some(1.0));
        assert_eq!(score(b"0x10"), Some(16.0));
        assert_eq!(score(b"-0x1.8p1"), Some(-3.0));
        assert_eq!(score(b"0x"), None);
        assert_eq!(score(b"0x1p"), None);
    }
}
