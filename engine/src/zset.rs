//! The sorted set value ([`ZSet`]): members with a score, ordered by
//! (score, member) as Redis orders them, and the score and lex ranges its
//! commands take.
//!
//! A hash map gives a member's score in O(1); the order is a list of
//! sorted blocks of at most [`BLOCK`] entries, so inserting and removing
//! cost O(log n + B), and a rank (ZRANK, ZRANGE by index, ZCOUNT) costs a
//! binary search over the blocks plus a sum of the block lengths before
//! (O(n / B) additions over lengths stored inline, no pointer chasing),
//! without Redis's skip list.
//! Scores are never NaN; -0 is stored as 0 (Redis's listpack does the
//! same).

use std::cmp::Ordering;
use std::collections::HashMap;

/// Largest block of the order; a block is split in two past it.
const BLOCK: usize = 256;

/// One member with its score, in the order.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    score: f64,
    member: Vec<u8>,
}

/// Redis's order: by score, then member bytes (scores are never NaN).
fn cmp(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score
        .partial_cmp(&b_score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a_member.cmp(b_member))
}

/// A sorted set. Never empty in the state: a command that empties one
/// removes the key.
#[derive(Debug, Clone, Default)]
pub struct ZSet {
    scores: HashMap<Vec<u8>, f64>,
    blocks: Vec<Vec<Item>>,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &ZSet) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ZSet {}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::default()
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// The block holding (or that would hold) `(score, member)`: the first
    /// whose last entry is not below it (the last block when past all).
    fn block_of(&self, score: f64, member: &[u8]) -> usize {
        let i = self.blocks.partition_point(|b| {
            let last = b.last().expect("blocks are never empty");
            cmp(last.score, &last.member, score, member) == Ordering::Less
        });
        i.min(self.blocks.len().saturating_sub(1))
    }

    fn order_insert(&mut self, score: f64, member: Vec<u8>) {
        if self.blocks.is_empty() {
            self.blocks.push(vec![Item { score, member }]);
            return;
        }
        let b = self.block_of(score, &member);
        let block = &mut self.blocks[b];
        let at =
            block.partition_point(|it| cmp(it.score, &it.member, score, &member) == Ordering::Less);
        block.insert(at, Item { score, member });
        if block.len() > BLOCK {
            let tail = block.split_off(BLOCK / 2);
            self.blocks.insert(b + 1, tail);
        }
    }

    fn order_remove(&mut self, score: f64, member: &[u8]) {
        let b = self.block_of(score, member);
        let block = &mut self.blocks[b];
        let at = block
            .binary_search_by(|it| cmp(it.score, &it.member, score, member))
            .expect("the order holds every member");
        block.remove(at);
        if block.is_empty() {
            self.blocks.remove(b);
        } else if block.len() < BLOCK / 4 && b + 1 < self.blocks.len() {
            // merge small neighbours so the block count stays ~ n / B
            if self.blocks[b].len() + self.blocks[b + 1].len() <= BLOCK {
                let next = self.blocks.remove(b + 1);
                self.blocks[b].extend(next);
            }
        }
    }

    /// Sets the score of `member` (added when new); returns the old score.
    /// `score` must not be NaN.
    pub fn insert(&mut self, member: Vec<u8>, score: f64) -> Option<f64> {
        debug_assert!(!score.is_nan());
        let score = if score == 0.0 { 0.0 } else { score };
        match self.scores.get_mut(&member) {
            Some(s) => {
                let old = *s;
                if old.to_bits() != score.to_bits() {
                    *s = score;
                    self.order_remove(old, &member);
                    self.order_insert(score, member);
                }
                Some(old)
            }
            None => {
                self.scores.insert(member.clone(), score);
                self.order_insert(score, member);
                None
            }
        }
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.scores.remove(member)?;
        self.order_remove(score, member);
        Some(score)
    }

    /// How many entries satisfy `below`, which holds for a prefix of the
    /// order (the rank of the first entry it does not hold for).
    pub fn count_while(&self, below: impl Fn(f64, &[u8]) -> bool) -> usize {
        // binary search over the blocks' last entries (one pointer chase
        // per step), then sum the lengths before (stored inline)
        let k = self.blocks.partition_point(|b| {
            let last = b.last().expect("blocks are never empty");
            below(last.score, &last.member)
        });
        let before: usize = self.blocks[..k].iter().map(Vec::len).sum();
        match self.blocks.get(k) {
            Some(b) => before + b.partition_point(|it| below(it.score, &it.member)),
            None => before,
        }
    }

    /// The 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.count_while(|s, m| cmp(s, m, score, member) == Ordering::Less))
    }

    /// (block, offset) of rank `r` (< len).
    fn locate(&self, mut r: usize) -> (usize, usize) {
        for (i, b) in self.blocks.iter().enumerate() {
            if r < b.len() {
                return (i, r);
            }
            r -= b.len();
        }
        (self.blocks.len(), 0)
    }

    /// The entry at ascending rank `r`.
    pub fn at(&self, r: usize) -> Option<(&[u8], f64)> {
        let (b, o) = self.locate(r);
        let it = self.blocks.get(b)?.get(o)?;
        Some((&it.member, it.score))
    }

    /// Entries in ascending order from rank `from`.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let (b, o) = self.locate(from);
        self.blocks
            .iter()
            .skip(b)
            .enumerate()
            .flat_map(move |(i, blk)| blk[if i == 0 { o } else { 0 }..].iter())
            .map(|it| (it.member.as_slice(), it.score))
    }

    /// Entries in descending order from ascending rank `from` down to 0
    /// (nothing when `from` is past the end).
    pub fn iter_down_from(&self, from: usize) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let n = if from < self.len() { from + 1 } else { 0 };
        let (b, o) = self.locate(from.min(self.len().saturating_sub(1)));
        let head: &[Vec<Item>] = if n == 0 { &[] } else { &self.blocks[..=b] };
        let last = head.len().saturating_sub(1);
        head.iter()
            .enumerate()
            .rev()
            .flat_map(move |(i, blk)| {
                blk[..if i == last { o + 1 } else { blk.len() }]
                    .iter()
                    .rev()
            })
            .map(|it| (it.member.as_slice(), it.score))
    }

    /// Every entry in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        self.blocks
            .iter()
            .flatten()
            .map(|it| (it.member.as_slice(), it.score))
    }

    /// Every member with its score, in no particular order.
    pub fn members(&self) -> impl Iterator<Item = (&Vec<u8>, f64)> + '_ {
        self.scores.iter().map(|(m, s)| (m, *s))
    }

    /// Length of the longest member.
    pub fn max_member_len(&self) -> usize {
        self.scores.keys().map(Vec::len).max().unwrap_or(0)
    }
}

impl FromIterator<(Vec<u8>, f64)> for ZSet {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, f64)>>(iter: I) -> ZSet {
        let mut z = ZSet::new();
        for (m, s) in iter {
            z.insert(m, s);
        }
        z
    }
}

// ---------------------------------------------------------------- ranges

/// A score range `min max` (`(` exclusive, `-inf`/`+inf`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    pub min: f64,
    pub min_ex: bool,
    pub max: f64,
    pub max_ex: bool,
}

impl ScoreRange {
    /// Redis's `zslParseRange`: `(` then `strtod` over the rest (leading
    /// spaces allowed, an empty rest is 0), NaN refused.
    pub fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        let bound = |b: &[u8]| -> Option<(f64, bool)> {
            let (ex, rest) = match b.first() {
                Some(b'(') => (true, &b[1..]),
                _ => (false, b),
            };
            let v = strtod(rest.trim_ascii_start(), true)?;
            (!v.is_nan()).then_some((v, ex))
        };
        let (min, min_ex) = bound(min)?;
        let (max, max_ex) = bound(max)?;
        Some(ScoreRange {
            min,
            min_ex,
            max,
            max_ex,
        })
    }

    pub fn above_min(&self, v: f64) -> bool {
        if self.min_ex {
            v > self.min
        } else {
            v >= self.min
        }
    }

    pub fn below_max(&self, v: f64) -> bool {
        if self.max_ex {
            v < self.max
        } else {
            v <= self.max
        }
    }

    /// Ascending ranks `[first, end)` of the entries of `z` in range.
    pub fn ranks(&self, z: &ZSet) -> (usize, usize) {
        if self.min > self.max || (self.min == self.max && (self.min_ex || self.max_ex)) {
            return (0, 0);
        }
        let first = z.count_while(|s, _| !self.above_min(s));
        let end = z.count_while(|s, _| self.below_max(s));
        (first, end.max(first))
    }
}

/// One end of a lex range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    /// `-`
    Min,
    /// `+`
    Max,
    /// `[x` (inclusive) or `(x` (exclusive).
    Value(Vec<u8>, bool),
}

/// A lex range `min max` (`[a`, `(a`, `-`, `+`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

impl LexBound {
    fn parse(b: &[u8]) -> Option<LexBound> {
        match b.first()? {
            b'+' if b.len() == 1 => Some(LexBound::Max),
            b'-' if b.len() == 1 => Some(LexBound::Min),
            b'(' => Some(LexBound::Value(b[1..].to_vec(), true)),
            b'[' => Some(LexBound::Value(b[1..].to_vec(), false)),
            _ => None,
        }
    }

    /// `m` compared with the bound (Redis's `sdscmplex`).
    fn cmp_member(&self, m: &[u8]) -> Ordering {
        match self {
            LexBound::Min => Ordering::Greater,
            LexBound::Max => Ordering::Less,
            LexBound::Value(v, _) => m.cmp(v),
        }
    }

    fn exclusive(&self) -> bool {
        match self {
            LexBound::Value(_, ex) => *ex,
            _ => true,
        }
    }
}

impl LexRange {
    /// Redis's `zslParseLexRange`.
    pub fn parse(min: &[u8], max: &[u8]) -> Option<LexRange> {
        Some(LexRange {
            min: LexBound::parse(min)?,
            max: LexBound::parse(max)?,
        })
    }

    pub fn above_min(&self, m: &[u8]) -> bool {
        match self.min.cmp_member(m) {
            Ordering::Greater => true,
            Ordering::Equal => !self.min.exclusive(),
            Ordering::Less => false,
        }
    }

    pub fn below_max(&self, m: &[u8]) -> bool {
        match self.max.cmp_member(m) {
            Ordering::Less => true,
            Ordering::Equal => !self.max.exclusive(),
            Ordering::Greater => false,
        }
    }

    /// False when no member can be in the range (min above max).
    fn possible(&self) -> bool {
        use LexBound::*;
        let c = match (&self.min, &self.max) {
            (Min, Min) | (Max, Max) => Ordering::Equal,
            (Min, _) | (_, Max) => Ordering::Less,
            (Max, _) | (_, Min) => Ordering::Greater,
            (Value(a, _), Value(b, _)) => a.cmp(b),
        };
        c == Ordering::Less
            || (c == Ordering::Equal && !self.min.exclusive() && !self.max.exclusive())
    }

    /// False when no entry of `z` can be in range: Redis first checks that
    /// the highest member is not below min and the lowest not above max.
    fn touches(&self, z: &ZSet) -> bool {
        match (z.at(0), z.len().checked_sub(1).and_then(|i| z.at(i))) {
            (Some((lo, _)), Some((hi, _))) => {
                self.possible() && self.above_min(hi) && self.below_max(lo)
            }
            _ => false,
        }
    }

    /// Ascending ranks `[first, end)` of the entries in range, walked from
    /// the lowest as Redis walks a listpack: the first member not below
    /// min, then on while not above max. The members are meant to share
    /// one score (as ZRANGEBYLEX requires); a mixed set gives what Redis's
    /// listpack walk gives (for a large set the first member is found by a
    /// binary search, Redis's skip list descent being just as arbitrary).
    pub fn ranks(&self, z: &ZSet) -> (usize, usize) {
        if !self.touches(z) {
            return (0, 0);
        }
        let first = if z.len() <= LINEAR_WALK {
            z.iter()
                .position(|(m, _)| self.above_min(m))
                .unwrap_or(z.len())
        } else {
            z.count_while(|_, m| !self.above_min(m))
        };
        let n = z
            .iter_from(first)
            .take_while(|(m, _)| self.below_max(m))
            .count();
        (first, first + n)
    }

    /// The same walked from the highest (ZREVRANGEBYLEX): the last member
    /// not above max, then down while not below min.
    pub fn ranks_rev(&self, z: &ZSet) -> (usize, usize) {
        if !self.touches(z) {
            return (0, 0);
        }
        let len = z.len();
        let end = if len <= LINEAR_WALK {
            z.iter_down_from(len - 1)
                .position(|(m, _)| self.below_max(m))
                .map_or(0, |p| len - p)
        } else {
            z.count_while(|_, m| self.below_max(m))
        };
        if end == 0 {
            return (0, 0);
        }
        let n = z
            .iter_down_from(end - 1)
            .take_while(|(m, _)| self.above_min(m))
            .count();
        (end - n, end)
    }
}

/// Sets up to this size are searched for a lex bound by a walk, as Redis
/// walks a listpack (identical to a binary search when every member has
/// the same score).
const LINEAR_WALK: usize = 128;

// ---------------------------------------------------------------- floats

/// C's `strtod` over the whole input (`None` if anything is left):
/// decimal, `inf`/`infinity`/`nan` in any case, hex (`0x1p3`). `empty_ok`:
/// an empty input is 0, as `strtod` leaves it (Redis's ranges).
pub fn strtod(b: &[u8], empty_ok: bool) -> Option<f64> {
    if b.is_empty() {
        return empty_ok.then_some(0.0);
    }
    let s = std::str::from_utf8(b).ok()?;
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let v = if lower == "inf" || lower == "infinity" {
        f64::INFINITY
    } else if lower == "nan" || (lower.starts_with("nan(") && lower.ends_with(')')) {
        f64::NAN
    } else if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex(hex)?
    } else {
        if body.is_empty()
            || !body
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
            || !body.as_bytes()[0].is_ascii_digit() && body.as_bytes()[0] != b'.'
        {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// A hex float body after `0x`: digits, optional `.digits`, optional
/// `p[+-]digits`.
fn parse_hex(h: &str) -> Option<f64> {
    let (mant, exp) = match h.split_once('p') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (h, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

/// A score as ZADD and ZINCRBY read it (Redis's `getDoubleFromObject`):
/// the whole argument, no leading space, not NaN, no overflow to infinity
/// or underflow to zero from a finite number.
pub fn parse_score(b: &[u8]) -> Option<f64> {
    if b.first().is_none_or(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let v = strtod(b, false)?;
    if v.is_nan() {
        return None;
    }
    let lower = b.to_ascii_lowercase();
    let literal_inf = lower.ends_with(b"inf") || lower.ends_with(b"infinity");
    if v.is_infinite() && !literal_inf {
        return None; // ERANGE overflow
    }
    if v == 0.0
        && lower
            .iter()
            .take_while(|c| **c != b'e' && **c != b'p')
            .any(|c| (b'1'..=b'9').contains(c))
    {
        return None; // ERANGE underflow
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(items: &[(f64, &str)]) -> ZSet {
        items
            .iter()
            .map(|(s, m)| (m.as_bytes().to_vec(), *s))
            .collect()
    }

    #[test]
    fn order_rank_and_blocks_agree_with_a_sorted_model() {
        let mut zs = ZSet::new();
        let mut model: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut x: u64 = 7;
        for i in 0..5_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let m = format!("m{}", x % 1_500).into_bytes();
            let s = ((x >> 33) % 50) as i64;
            if i % 3 == 0 {
                let had = zs.remove(&m).is_some();
                let before = model.len();
                model.retain(|(_, mm)| *mm != m);
                assert_eq!(had, before != model.len());
            } else {
                zs.insert(m.clone(), s as f64);
                model.retain(|(_, mm)| *mm != m);
                model.push((s, m));
            }
        }
        model.sort();
        assert_eq!(zs.len(), model.len());
        let got: Vec<(i64, Vec<u8>)> = zs.iter().map(|(m, s)| (s as i64, m.to_vec())).collect();
        assert_eq!(got, model);
        for (r, (_, m)) in model.iter().enumerate().step_by(37) {
            assert_eq!(zs.rank(m), Some(r));
            assert_eq!(zs.at(r).unwrap().0, m.as_slice());
            assert_eq!(zs.iter_from(r).next().unwrap().0, m.as_slice());
            assert_eq!(zs.iter_down_from(r).next().unwrap().0, m.as_slice());
            assert_eq!(zs.iter_down_from(r).count(), r + 1);
        }
        assert_eq!(zs.iter_down_from(zs.len()).count(), 0);
        assert!(zs.blocks.iter().all(|b| !b.is_empty() && b.len() <= BLOCK));
    }

    #[test]
    fn ranges_and_floats_like_redis() {
        let zs = z(&[(1.0, "a"), (2.0, "b"), (2.0, "c"), (3.0, "d")]);
        let r = ScoreRange::parse(b"(1", b"2").unwrap();
        assert_eq!(r.ranks(&zs), (1, 3));
        assert_eq!(
            ScoreRange::parse(b"-inf", b"+inf").unwrap().ranks(&zs),
            (0, 4)
        );
        assert_eq!(ScoreRange::parse(b"3", b"1").unwrap().ranks(&zs), (0, 0));
        assert_eq!(ScoreRange::parse(b"(2", b"(2").unwrap().ranks(&zs), (0, 0));
        assert_eq!(ScoreRange::parse(b"", b" 1").unwrap().min, 0.0);
        assert!(ScoreRange::parse(b"nan", b"1").is_none());
        assert!(ScoreRange::parse(b"1x", b"1").is_none());
        let same = z(&[(0.0, "a"), (0.0, "b"), (0.0, "c")]);
        assert_eq!(LexRange::parse(b"(a", b"+").unwrap().ranks(&same), (1, 3));
        assert_eq!(LexRange::parse(b"-", b"[b").unwrap().ranks(&same), (0, 2));
        assert_eq!(LexRange::parse(b"+", b"-").unwrap().ranks(&same), (0, 0));
        assert!(LexRange::parse(b"a", b"+").is_none());
        // mixed scores: Redis's listpack walks (checked against
        // redis-server: ZRANGEBYLEX [a [b gives a, ZREVRANGEBYLEX b z a)
        let mixed = z(&[(1.0, "a"), (1.0, "z"), (2.0, "b")]);
        let r = LexRange::parse(b"[a", b"[b").unwrap();
        assert_eq!(r.ranks(&mixed), (0, 1));
        assert_eq!(r.ranks_rev(&mixed), (0, 3));
        assert!(LexRange::parse(b"++", b"+").is_none());
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b".5"), Some(0.5));
        assert_eq!(parse_score(b"1e-400"), None);
        assert_eq!(parse_score(b"1e400"), None);
        assert_eq!(parse_score(b"0e5"), Some(0.0));
        for bad in [&b""[..], b" 1", b"nan", b"1 ", b"abc", b"1e", b"--1"] {
            assert_eq!(parse_score(bad), None, "{bad:?}");
        }
    }
}
