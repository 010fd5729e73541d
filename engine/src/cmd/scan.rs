//! SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
//!
//! Stateless: the keyspace is ordered by [`scan_hash`] and the cursor is
//! the hash of the next key to look at (0: start, and done). Any
//! connection, and a restarted engine, continues a scan from its cursor.
//! A call returns whole groups of keys sharing a hash, so every key
//! present for the whole scan is returned at least once (exactly once when
//! no two keys share a hash), whatever is added or deleted meanwhile.

use super::arg::{parse_i64, upper};
use super::{glob_match, not_integer, syntax_error, Action, Command, Flags, Read, ReadCtx};

use crate::reply::{self, Reply};

/// Most keys one SCAN call examines.
pub const MAX_SCAN_COUNT: usize = 100_000;

/// A cursor as Redis reads it (`strtoul`, base 10): optional sign ("-1" is
/// the largest cursor), digits, nothing else; out of range is invalid.
pub fn parse_cursor(b: &[u8]) -> Result<u64, Reply> {
    let invalid = || Reply::error(reply::INVALID_CURSOR);
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if b.is_empty() {
        return Ok(0);
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let mut n: u64 = 0;
    for &d in digits {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if neg { n.wrapping_neg() } else { n })
}

/// MATCH and COUNT (and TYPE for SCAN) after the cursor, as Redis reads
/// them.
pub struct ScanOptions {
    pub pattern: Option<Vec<u8>>,
    pub count: usize,
    pub kind: Option<Vec<u8>>,
}

pub fn parse_options(args: &[Vec<u8>], allow_type: bool) -> Result<ScanOptions, Reply> {
    let mut o = ScanOptions {
        pattern: None,
        count: 10,
        kind: None,
    };
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1);
        match (upper(&args[i]).as_slice(), v) {
            (b"MATCH", Some(v)) => o.pattern = Some(v.clone()),
            (b"COUNT", Some(v)) => match parse_i64(v) {
                Some(n) if n >= 1 => o.count = (n as usize).min(MAX_SCAN_COUNT),
                Some(_) => return Err(syntax_error()),
                None => return Err(not_integer()),
            },
            (b"TYPE", Some(v)) if allow_type => o.kind = Some(v.to_ascii_lowercase()),
            _ => return Err(syntax_error()),
        }
        i += 2;
    }
    Ok(o)
}

/// One step over items ordered by `(hash, item)`: looks at `count` items
/// from `cursor` on (then at the rest of the last hash's group), keeps
/// those `keep` accepts; returns them and the next cursor (0: done).
pub fn step<'a, T: 'a>(
    items: impl Iterator<Item = (u64, T)>,
    count: usize,
    mut keep: impl FnMut(&T) -> bool,
) -> (Vec<T>, u64) {
    let mut out = Vec::new();
    let mut last = None;
    for (seen, (h, item)) in items.into_iter().enumerate() {
        if seen >= count && last != Some(h) {
            return (out, h);
        }
        last = Some(h);
        if keep(&item) {
            out.push(item);
        }
    }
    (out, 0)
}

/// HSCAN, SSCAN and ZSCAN: `key cursor [MATCH pattern] [COUNT count]`
/// over one collection, stateless like SCAN: its elements are visited in
/// ([`crate::db::scan_hash`] of the name, name) order and the cursor is the
/// hash of the next one.
pub struct KeyScan {
    pub key: Vec<u8>,
    cursor: u64,
    /// Option errors are answered after the key's type is checked.
    opts: Result<ScanOptions, Reply>,
}

impl KeyScan {
    /// `args`: the command name, key, cursor, options.
    pub fn parse(mut args: Vec<Vec<u8>>) -> Result<KeyScan, Reply> {
        let cursor = parse_cursor(&args[2])?;
        let opts = parse_options(&args[3..], false);
        Ok(KeyScan {
            key: args.swap_remove(1),
            cursor,
            opts,
        })
    }

    /// The options, or their error (answered once the key's type is
    /// checked).
    pub fn options(&self) -> Result<&ScanOptions, Reply> {
        self.opts.as_ref().map_err(Reply::clone)
    }

    /// Every element of a collection Redis keeps compact (listpack,
    /// intset): whole, in one call, matched, with cursor 0.
    pub fn whole<'a, T>(o: &ScanOptions, elements: impl Iterator<Item = (&'a [u8], T)>) -> Vec<T> {
        elements
            .filter(|(name, _)| o.matches(name))
            .map(|(_, t)| t)
            .collect()
    }

    /// One step over `(name, element)`s: those from the cursor on, in
    /// (hash, name) order, as [`step`] visits them; the matching ones and
    /// the next cursor.
    pub fn step<'a, T>(
        &self,
        o: &ScanOptions,
        elements: impl Iterator<Item = (&'a [u8], T)>,
    ) -> (Vec<T>, u64) {
        let mut items: Vec<(u64, (&[u8], T))> = elements
            .map(|(name, t)| (crate::db::scan_hash(name), (name, t)))
            .filter(|(hash, _)| *hash >= self.cursor)
            .collect();
        items.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1 .0.cmp(b.1 .0)));
        let (found, next) = step(items.into_iter(), o.count, |(name, _)| o.matches(name));
        (found.into_iter().map(|(_, t)| t).collect(), next)
    }
}

impl ScanOptions {
    /// True when `name` matches the MATCH pattern (or there is none).
    pub fn matches(&self, name: &[u8]) -> bool {
        self.pattern.as_ref().is_none_or(|p| glob_match(p, name))
    }
}

/// The reply `[cursor, [items...]]`.
pub fn scan_reply(next: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(next.to_string().into_bytes()),
        Reply::Array(items),
    ])
}

pub struct Scan {
    cursor: u64,
    opts: ScanOptions,
}

impl Command for Scan {
    const NAME: &'static str = "scan";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let cursor = parse_cursor(&args[1])?;
        let opts = parse_options(&args[2..], true)?;
        Ok(Action::read(Scan { cursor, opts }))
    }
}

impl Read for Scan {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let now = ctx.now_ms;
        let o = &self.opts;
        let items = ctx.db.scan_from(self.cursor).map(|(h, k, e)| (h, (k, e)));
        let (found, next) = step(items, o.count, |(k, e)| {
            !e.is_expired(now)
                && o.kind
                    .as_ref()
                    .is_none_or(|t| t == e.value.type_name().as_bytes())
                && o.pattern.as_ref().is_none_or(|p| glob_match(p, k))
        });
        scan_reply(
            next,
            found
                .into_iter()
                .map(|(k, _)| Reply::Bulk(k.to_vec()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{scan_hash, Db, Entry, Value};

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Ok(0));
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"+7"), Ok(7));
        assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [
            &b"18446744073709551616"[..],
            b"x",
            b" 1",
            b"1 ",
            b"-",
            b"0x1",
        ] {
            assert_eq!(
                parse_cursor(bad),
                Err(Reply::error(reply::INVALID_CURSOR)),
                "{bad:?}"
            );
        }
    }

    /// Keys present the whole time are returned, with deletes and inserts
    /// between the calls; the cursor alone carries the position.
    #[test]
    fn a_scan_returns_every_key_present_throughout() {
        let mut db = Db::new();
        for i in 0..1000 {
            db.insert_entry(format!("k{i}").into_bytes(), Entry::new(Value::Str(vec![])));
        }
        let mut cursor = 0;
        let mut seen = std::collections::BTreeSet::new();
        let mut round = 0;
        loop {
            let items = db.scan_from(cursor).map(|(h, k, _)| (h, k.to_vec()));
            let (found, next) = step(items, 7, |_| true);
            seen.extend(found);
            // churn: delete one key of the first half, add a new one
            db.remove(format!("k{}", round % 500).as_bytes());
            db.insert_entry(
                format!("n{round}").into_bytes(),
                Entry::new(Value::Str(vec![])),
            );
            round += 1;
            if next == 0 {
                break;
            }
            assert!(next > cursor, "cursors only go forward");
            cursor = next;
        }
        for i in 500..1000 {
            assert!(seen.contains(format!("k{i}").as_bytes()), "k{i} missed");
        }
        assert_eq!(scan_hash(b"k1"), scan_hash(b"k1"));
    }
}
