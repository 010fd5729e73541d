//! The sorted set value ([`ZSet`]): members with a score, ordered by
//! (score, member) as Redis orders them, and the score and lex ranges its
//! commands take.
//!
//! Two representations, as Redis has two (its listpack and skip list):
//! - small: one buffer of entries `len u8 | member | score f64 LE | len
//!   u8` in (score, member) order (the length at both ends lets a walk go
//!   either way), searched by a walk, while the set has at most
//!   [`SMALL_MAX_ENTRIES`] members of at most [`SMALL_MAX_MEMBER`] bytes
//!   (Redis's `zset-max-listpack-entries` and `-value` defaults); kept
//!   inside the value itself up to 19 bytes (no allocation: one entry with
//!   a member of up to 9 bytes costs the 24 bytes of the value), else on
//!   the heap, exactly sized.
//! - big: a hash map gives a member's score in O(1); the order is a list
//!   of sorted blocks of at most [`BLOCK`] entries, so inserting and
//!   removing cost O(log n + B), and a rank (ZRANK, ZRANGE by index,
//!   ZCOUNT) costs a binary search over the blocks plus a sum of the block
//!   lengths before (O(n / B) additions over lengths stored inline, no
//!   pointer chasing), without Redis's skip list.
//!
//! A set goes from small to big when an insert crosses a bound and never
//! back (nor does Redis's). OBJECT ENCODING answers `listpack` for a small
//! set that never held more entries, nor a longer member, than the
//! configured bounds, else `skiplist` ([`ZSet::is_listpack`]): Redis's
//! rule, sticky as in Redis. Equality ignores the representation.
//! Scores are never NaN; -0 is stored as 0 (Redis's listpack does the
//! same).

use std::cmp::Ordering;
use std::collections::{hash_map, HashMap};
use std::fmt;

/// Most entries of a small set (Redis's `zset-max-listpack-entries`).
pub const SMALL_MAX_ENTRIES: usize = 128;
/// Longest member of a small set (Redis's `zset-max-listpack-value`).
pub const SMALL_MAX_MEMBER: usize = 64;

/// Largest block of the big form's order; a block is split in two past it.
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
#[derive(Clone)]
pub struct ZSet(Repr);

#[derive(Clone)]
enum Repr {
    /// The packed form, its buffer inside the value (up to [`INLINE`]
    /// bytes: no allocation at all).
    Inline(Meta, u8, [u8; INLINE]),
    /// The packed form, its buffer on the heap, exactly sized.
    Heap(Meta, Box<[u8]>),
    Big(Box<Big>),
}

// The value enum keeps a sorted set inline: at most three words.
const _: () = assert!(std::mem::size_of::<ZSet>() <= 24);

// ---------------------------------------------------------------- packed

/// Bytes of packed entries kept inside the value.
const INLINE: usize = 19;

/// What the packed form knows beside its entries.
#[derive(Clone, Copy, Debug, Default)]
struct Meta {
    len: u8,
    /// Most entries it held at once and its longest member ever: OBJECT
    /// ENCODING judges them against the configured bounds (a listpack
    /// that grew past them stays a skip list).
    peak_len: u8,
    peak_member: u8,
}

/// A read of the set: the packed form (`len u8 | member | score f64 LE |
/// len u8` per entry, in order) or the big one.
enum View<'a> {
    Packed(Meta, &'a [u8]),
    Big(&'a Big),
}

impl Repr {
    /// The packed form of `buf`: inside the value when it fits.
    fn packed(meta: Meta, buf: Vec<u8>) -> Repr {
        if buf.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..buf.len()].copy_from_slice(&buf);
            Repr::Inline(meta, buf.len() as u8, bytes)
        } else {
            Repr::Heap(meta, buf.into_boxed_slice())
        }
    }

    fn view(&self) -> View<'_> {
        match self {
            Repr::Inline(meta, n, bytes) => View::Packed(*meta, &bytes[..usize::from(*n)]),
            Repr::Heap(meta, buf) => View::Packed(*meta, buf),
            Repr::Big(b) => View::Big(b),
        }
    }
}

/// Bytes of an entry beside its member.
const ENTRY_EXTRA: usize = 10;

/// The entry at `p`: (member, score, offset of the next).
fn entry_at(buf: &[u8], p: usize) -> (&[u8], f64, usize) {
    let n = usize::from(buf[p]);
    let member = &buf[p + 1..p + 1 + n];
    let mut bits = [0u8; 8];
    bits.copy_from_slice(&buf[p + 1 + n..p + 9 + n]);
    (member, f64::from_le_bytes(bits), p + n + ENTRY_EXTRA)
}

/// The entry ending at `end`: (member, score, its offset).
fn entry_before(buf: &[u8], end: usize) -> (&[u8], f64, usize) {
    let start = end - usize::from(buf[end - 1]) - ENTRY_EXTRA;
    let (m, s, _) = entry_at(buf, start);
    (m, s, start)
}

fn put_entry(out: &mut Vec<u8>, member: &[u8], score: f64) {
    let n = member.len() as u8; // <= SMALL_MAX_MEMBER
    out.push(n);
    out.extend_from_slice(member);
    out.extend_from_slice(&score.to_le_bytes());
    out.push(n);
}

/// Offset, rank and score of `member` in a packed buffer.
fn find(buf: &[u8], member: &[u8]) -> Option<(usize, usize, f64)> {
    let mut p = 0;
    let mut r = 0;
    while p < buf.len() {
        let (m, s, next) = entry_at(buf, p);
        if m == member {
            return Some((p, r, s));
        }
        p = next;
        r += 1;
    }
    None
}

/// Offset of rank `r` in a packed buffer (its end when past the last).
fn offset_of(buf: &[u8], r: usize) -> usize {
    let mut p = 0;
    for _ in 0..r {
        if p >= buf.len() {
            break;
        }
        p += usize::from(buf[p]) + ENTRY_EXTRA;
    }
    p
}

/// A packed buffer with the entry at `old` left out and `(member, score)`
/// (if any) put in its place in the order.
fn rebuilt(buf: &[u8], old: Option<usize>, new: Option<(&[u8], f64)>) -> Vec<u8> {
    let removed = old.map_or(0, |p| usize::from(buf[p]) + ENTRY_EXTRA);
    let added = new.map_or(0, |(m, _)| m.len() + ENTRY_EXTRA);
    let mut v = Vec::with_capacity(buf.len() - removed + added);
    let mut pending = new;
    let mut p = 0;
    while p < buf.len() {
        let (m, s, next) = entry_at(buf, p);
        if let Some((nm, ns)) = pending {
            if cmp(s, m, ns, nm) == Ordering::Greater {
                put_entry(&mut v, nm, ns);
                pending = None;
            }
        }
        if old != Some(p) {
            v.extend_from_slice(&buf[p..next]);
        }
        p = next;
    }
    if let Some((nm, ns)) = pending {
        put_entry(&mut v, nm, ns);
    }
    v
}

// ---------------------------------------------------------------- big

/// The big form: scores by member, and the order in blocks.
#[derive(Clone, Default)]
struct Big {
    scores: HashMap<Vec<u8>, f64>,
    blocks: Vec<Vec<Item>>,
}

impl Big {
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

    /// `score` is not NaN and not -0.
    fn insert(&mut self, member: Vec<u8>, score: f64) -> Option<f64> {
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

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.scores.remove(member)?;
        self.order_remove(score, member);
        Some(score)
    }

    fn count_while(&self, below: impl Fn(f64, &[u8]) -> bool) -> usize {
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

    /// (block, offset) of rank `r` (`(blocks, 0)` when past the end).
    fn locate(&self, mut r: usize) -> (usize, usize) {
        for (i, b) in self.blocks.iter().enumerate() {
            if r < b.len() {
                return (i, r);
            }
            r -= b.len();
        }
        (self.blocks.len(), 0)
    }
}

// ---------------------------------------------------------------- ZSet

impl PartialEq for ZSet {
    fn eq(&self, other: &ZSet) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ZSet {}

impl fmt::Debug for ZSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for ZSet {
    fn default() -> ZSet {
        ZSet::new()
    }
}

impl ZSet {
    /// An empty sorted set (packed).
    pub const fn new() -> ZSet {
        let meta = Meta {
            len: 0,
            peak_len: 0,
            peak_member: 0,
        };
        ZSet(Repr::Inline(meta, 0, [0; INLINE]))
    }

    pub fn len(&self) -> usize {
        match self.0.view() {
            View::Packed(meta, _) => usize::from(meta.len),
            View::Big(b) => b.scores.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self.0.view() {
            View::Packed(_, buf) => find(buf, member).map(|(_, _, sc)| sc),
            View::Big(b) => b.scores.get(member).copied(),
        }
    }

    /// Sets the score of `member` (added when new); returns the old score.
    /// `score` must not be NaN.
    pub fn insert(&mut self, member: Vec<u8>, score: f64) -> Option<f64> {
        debug_assert!(!score.is_nan());
        let score = if score == 0.0 { 0.0 } else { score };
        let (meta, buf) = match &mut self.0 {
            Repr::Big(b) => return b.insert(member, score),
            small => match small.view() {
                View::Packed(meta, buf) => (meta, buf),
                View::Big(_) => unreachable!("matched above"),
            },
        };
        match find(buf, &member) {
            Some((_, _, old)) if old.to_bits() == score.to_bits() => Some(old),
            Some((p, _, old)) => {
                let v = rebuilt(buf, Some(p), Some((&member, score)));
                self.0 = Repr::packed(meta, v);
                Some(old)
            }
            None if member.len() <= SMALL_MAX_MEMBER
                && usize::from(meta.len) < SMALL_MAX_ENTRIES =>
            {
                let v = rebuilt(buf, None, Some((&member, score)));
                let len = meta.len + 1;
                let meta = Meta {
                    len,
                    peak_len: meta.peak_len.max(len),
                    peak_member: meta.peak_member.max(member.len() as u8),
                };
                self.0 = Repr::packed(meta, v);
                None
            }
            None => {
                let n = usize::from(meta.len);
                let mut big = Big::default();
                big.scores.reserve(n + 1);
                let mut block = Vec::with_capacity(n + 1);
                let mut p = 0;
                while p < buf.len() {
                    let (m, sc, next) = entry_at(buf, p);
                    big.scores.insert(m.to_vec(), sc);
                    block.push(Item {
                        score: sc,
                        member: m.to_vec(),
                    });
                    p = next;
                }
                if !block.is_empty() {
                    big.blocks.push(block);
                }
                big.insert(member, score);
                self.0 = Repr::Big(Box::new(big));
                None
            }
        }
    }

    /// Removes `member`; returns its score. The representation stays (a
    /// big set does not become small again).
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (meta, buf) = match &mut self.0 {
            Repr::Big(b) => return b.remove(member),
            small => match small.view() {
                View::Packed(meta, buf) => (meta, buf),
                View::Big(_) => unreachable!("matched above"),
            },
        };
        let (p, _, score) = find(buf, member)?;
        let v = rebuilt(buf, Some(p), None);
        let meta = Meta {
            len: meta.len - 1,
            ..meta
        };
        self.0 = Repr::packed(meta, v);
        Some(score)
    }

    /// How many entries satisfy `below`, which holds for a prefix of the
    /// order (the rank of the first entry it does not hold for).
    pub fn count_while(&self, below: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self.0.view() {
            View::Packed(..) => self.iter().take_while(|(m, s)| below(*s, m)).count(),
            View::Big(b) => b.count_while(below),
        }
    }

    /// The 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match self.0.view() {
            View::Packed(_, buf) => find(buf, member).map(|(_, r, _)| r),
            View::Big(b) => {
                let score = *b.scores.get(member)?;
                Some(b.count_while(|s, m| cmp(s, m, score, member) == Ordering::Less))
            }
        }
    }

    /// The entry at ascending rank `r`.
    pub fn at(&self, r: usize) -> Option<(&[u8], f64)> {
        self.iter_from(r).next()
    }

    /// Entries in ascending order from rank `from`.
    pub fn iter_from(&self, from: usize) -> Iter<'_> {
        Iter(match self.0.view() {
            View::Packed(_, buf) => IterRepr::Up {
                buf,
                pos: offset_of(buf, from),
            },
            View::Big(b) => IterRepr::BigUp {
                blocks: &b.blocks,
                at: b.locate(from),
            },
        })
    }

    /// Entries in descending order from ascending rank `from` down to 0
    /// (nothing when `from` is past the end).
    pub fn iter_down_from(&self, from: usize) -> Iter<'_> {
        let past = from >= self.len();
        Iter(match self.0.view() {
            View::Packed(_, buf) => IterRepr::Down {
                buf,
                end: if past { 0 } else { offset_of(buf, from + 1) },
            },
            View::Big(b) => IterRepr::BigDown {
                blocks: &b.blocks,
                at: (!past).then(|| b.locate(from)),
            },
        })
    }

    /// Every entry in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Every member with its score, in no particular order (the order for
    /// a packed set, the hash map's for a big one).
    pub fn members(&self) -> Iter<'_> {
        match self.0.view() {
            View::Packed(..) => self.iter(),
            View::Big(b) => Iter(IterRepr::Hash(b.scores.iter())),
        }
    }

    /// True when Redis would keep this set as a listpack with
    /// `zset-max-listpack-entries` at `max_entries` and `-value` at
    /// `max_value`: the packed form, never more entries nor a longer
    /// member than those.
    pub fn is_listpack(&self, max_entries: usize, max_value: usize) -> bool {
        match self.0.view() {
            View::Packed(meta, _) => {
                usize::from(meta.peak_len) <= max_entries
                    && usize::from(meta.peak_member) <= max_value
            }
            View::Big(_) => false,
        }
    }

    /// True in the packed form.
    pub fn is_small(&self) -> bool {
        !matches!(self.0, Repr::Big(_))
    }

    /// Bytes the entries take on the heap, bookkeeping included (an
    /// estimate for the big form: the member twice, the score twice, map
    /// and block slots).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Inline(..) => 0,
            Repr::Heap(_, buf) => buf.len(),
            Repr::Big(b) => b
                .scores
                .keys()
                .map(|m| 2 * m.len() + 16 + 64)
                .sum::<usize>(),
        }
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

/// Entries of a [`ZSet`]: `(member, score)`.
#[derive(Clone)]
pub struct Iter<'a>(IterRepr<'a>);

#[derive(Clone)]
enum IterRepr<'a> {
    /// Packed, ascending from the entry at `pos`.
    Up { buf: &'a [u8], pos: usize },
    /// Packed, descending from the entry ending at `end`.
    Down { buf: &'a [u8], end: usize },
    /// Big, ascending from (block, offset).
    BigUp {
        blocks: &'a [Vec<Item>],
        at: (usize, usize),
    },
    /// Big, descending from (block, offset).
    BigDown {
        blocks: &'a [Vec<Item>],
        at: Option<(usize, usize)>,
    },
    /// Big, in the hash map's order.
    Hash(hash_map::Iter<'a, Vec<u8>, f64>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        match &mut self.0 {
            IterRepr::Up { buf, pos } => {
                if *pos >= buf.len() {
                    return None;
                }
                let (m, s, next) = entry_at(buf, *pos);
                *pos = next;
                Some((m, s))
            }
            IterRepr::Down { buf, end } => {
                if *end == 0 {
                    return None;
                }
                let (m, s, start) = entry_before(buf, *end);
                *end = start;
                Some((m, s))
            }
            IterRepr::BigUp { blocks, at } => {
                let (b, o) = *at;
                let block = blocks.get(b)?;
                let it = &block[o];
                *at = if o + 1 < block.len() {
                    (b, o + 1)
                } else {
                    (b + 1, 0)
                };
                Some((&it.member, it.score))
            }
            IterRepr::BigDown { blocks, at } => {
                let (b, o) = (*at)?;
                let it = &blocks[b][o];
                *at = if o > 0 {
                    Some((b, o - 1))
                } else if b > 0 {
                    Some((b - 1, blocks[b - 1].len() - 1))
                } else {
                    None
                };
                Some((&it.member, it.score))
            }
            IterRepr::Hash(it) => it.next().map(|(m, s)| (m.as_slice(), *s)),
        }
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

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// The model: entries sorted by (score, member).
    type Model = Vec<(f64, Vec<u8>)>;

    fn model_insert(model: &mut Model, m: &[u8], s: f64) -> Option<f64> {
        let s = if s == 0.0 { 0.0 } else { s };
        let old = model_remove(model, m);
        let at = model.partition_point(|(ms, mm)| cmp(*ms, mm, s, m) == Ordering::Less);
        model.insert(at, (s, m.to_vec()));
        old
    }

    fn model_remove(model: &mut Model, m: &[u8]) -> Option<f64> {
        let i = model.iter().position(|(_, mm)| mm == m)?;
        Some(model.remove(i).0)
    }

    /// Every read of `zs` against the model: order, scores, ranks, entries
    /// by rank both ways, score ranges, lex ranges (on one score, where
    /// they are defined), the unordered walk, equality across forms.
    fn check(zs: &ZSet, model: &Model, rng: &mut Rng, universe: &[Vec<u8>], one_score: bool) {
        let n = model.len();
        assert_eq!(zs.len(), n);
        assert_eq!(zs.is_empty(), n == 0);
        if let View::Packed(meta, buf) = zs.0.view() {
            assert_eq!(matches!(zs.0, Repr::Inline(..)), buf.len() <= INLINE);
            assert!(meta.len <= meta.peak_len);
        }
        let got: Vec<(f64, Vec<u8>)> = zs.iter().map(|(m, s)| (s, m.to_vec())).collect();
        assert_eq!(&got, model);
        let mut unordered: Vec<(f64, Vec<u8>)> =
            zs.members().map(|(m, s)| (s, m.to_vec())).collect();
        unordered.sort_by(|a, b| cmp(a.0, &a.1, b.0, &b.1));
        assert_eq!(&unordered, model);
        for m in universe {
            let i = model.iter().position(|(_, mm)| mm == m);
            assert_eq!(zs.score(m), i.map(|i| model[i].0));
            assert_eq!(zs.rank(m), i);
        }
        for r in [0, n / 2, n.saturating_sub(1), n, n + 3] {
            assert_eq!(
                zs.at(r).map(|(m, s)| (s, m.to_vec())),
                model.get(r).cloned()
            );
            let up: Vec<(f64, Vec<u8>)> = zs.iter_from(r).map(|(m, s)| (s, m.to_vec())).collect();
            assert_eq!(up, model[r.min(n)..].to_vec());
            let down: Vec<(f64, Vec<u8>)> =
                zs.iter_down_from(r).map(|(m, s)| (s, m.to_vec())).collect();
            let want: Vec<(f64, Vec<u8>)> = if r < n {
                model[..=r].iter().rev().cloned().collect()
            } else {
                Vec::new()
            };
            assert_eq!(down, want);
        }
        let bounds = [
            "-inf", "+inf", "0", "(0", "1.5", "(1.5", "3", "(3", "-2", "(7",
        ];
        for _ in 0..6 {
            let lo = bounds[rng.below(bounds.len() as u64) as usize].as_bytes();
            let hi = bounds[rng.below(bounds.len() as u64) as usize].as_bytes();
            let r = ScoreRange::parse(lo, hi).unwrap();
            let inside: Vec<usize> = (0..n)
                .filter(|&i| r.above_min(model[i].0) && r.below_max(model[i].0))
                .collect();
            let (first, end) = r.ranks(zs);
            if inside.is_empty() {
                assert_eq!(first, end, "{r:?}");
            } else {
                assert_eq!((first, end), (inside[0], inside[inside.len() - 1] + 1));
            }
        }
        if one_score && n > 0 {
            let lex = |rng: &mut Rng| -> Vec<u8> {
                let m = &universe[rng.below(universe.len() as u64) as usize];
                match rng.below(4) {
                    0 => b"-".to_vec(),
                    1 => b"+".to_vec(),
                    2 => [&b"("[..], m].concat(),
                    _ => [&b"["[..], m].concat(),
                }
            };
            for _ in 0..6 {
                let r = LexRange::parse(&lex(rng), &lex(rng)).unwrap();
                let inside: Vec<usize> = (0..n)
                    .filter(|&i| r.above_min(&model[i].1) && r.below_max(&model[i].1))
                    .collect();
                let want = match (inside.first(), inside.last()) {
                    (Some(a), Some(b)) => (*a, b + 1),
                    _ => (0, 0),
                };
                let norm = |(a, b): (usize, usize)| if a == b { (0, 0) } else { (a, b) };
                assert_eq!(norm(r.ranks(zs)), want, "{r:?}");
                assert_eq!(norm(r.ranks_rev(zs)), want, "{r:?}");
            }
        }
        let rebuilt: ZSet = model.iter().map(|(s, m)| (m.clone(), *s)).collect();
        assert_eq!(&rebuilt, zs);
    }

    /// Random inserts, score changes and removes against a sorted model,
    /// in runs that stay small, cross the bounds by count and by member
    /// length, and grow big.
    #[test]
    fn agrees_with_a_sorted_model_across_the_bounds() {
        let mut bigs = 0;
        for seed in 0..48u64 {
            let mut rng = Rng(seed);
            let size = [12usize, 130, 400][(seed % 3) as usize];
            let one_score = seed % 4 == 1;
            let long_members = seed % 5 == 2;
            let universe: Vec<Vec<u8>> = (0..size)
                .map(|i| {
                    if long_members && i % 40 == 7 {
                        vec![b'l'; SMALL_MAX_MEMBER + 1 + i % 3]
                    } else if i % 50 == 3 {
                        vec![b'k'; SMALL_MAX_MEMBER]
                    } else if i == 0 {
                        Vec::new()
                    } else {
                        format!("m{i:03}").into_bytes()
                    }
                })
                .collect();
            let scores = [
                -0.0,
                0.0,
                1.5,
                -2.0,
                3.0,
                7.25,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ];
            let mut zs = ZSet::new();
            let mut model = Model::new();
            let mut must_be_big = false;
            let removes = [4, 10][(seed / 3 % 2) as usize];
            for step in 0..1_200 {
                let m = &universe[rng.below(size as u64) as usize];
                let s = if one_score {
                    0.0
                } else {
                    scores[rng.below(scores.len() as u64) as usize]
                };
                if rng.below(removes) == 0 {
                    assert_eq!(zs.remove(m), model_remove(&mut model, m), "{seed} {step}");
                } else {
                    let old = zs.insert(m.clone(), s);
                    assert_eq!(old, model_insert(&mut model, m, s), "{seed} {step}");
                    // big past a bound, and from then on
                    must_be_big |= model.len() > SMALL_MAX_ENTRIES || m.len() > SMALL_MAX_MEMBER;
                }
                assert_eq!(zs.is_small(), !must_be_big, "{seed} {step}");
                if step % 89 == 0 {
                    check(&zs, &model, &mut rng, &universe, one_score);
                }
            }
            check(&zs, &model, &mut rng, &universe, one_score);
            bigs += usize::from(must_be_big);
        }
        assert!((10..40).contains(&bigs), "both forms are exercised: {bigs}");
    }

    #[test]
    fn the_small_form_and_listpack_encoding_follow_redis_bounds() {
        let n = |k: usize| -> ZSet {
            (0..k)
                .map(|i| (format!("m{i}").into_bytes(), i as f64))
                .collect()
        };
        let full = n(SMALL_MAX_ENTRIES);
        assert!(full.is_small() && full.is_listpack(128, 64));
        assert!(!full.is_listpack(127, 64), "config below the peak");
        let mut more = full.clone();
        more.insert(b"x".to_vec(), 1.0);
        assert!(!more.is_small() && !more.is_listpack(usize::MAX, usize::MAX));
        // updating an existing member never converts
        let mut upd = full.clone();
        assert_eq!(upd.insert(b"m0".to_vec(), 500.0), Some(0.0));
        assert!(upd.is_small());
        assert_eq!(upd.rank(b"m0"), Some(127));
        // a long member: big; 64 bytes: small but past a lower config
        let mut long = n(1);
        long.insert(vec![b'z'; SMALL_MAX_MEMBER], 1.0);
        assert!(long.is_small() && long.is_listpack(128, 64) && !long.is_listpack(128, 10));
        long.remove(&[b'z'; SMALL_MAX_MEMBER]);
        assert!(!long.is_listpack(128, 10), "sticky");
        long.insert(vec![b'z'; SMALL_MAX_MEMBER + 1], 1.0);
        assert!(!long.is_small());
        // shrinking does not convert back, equality ignores the form
        for i in 1..SMALL_MAX_ENTRIES {
            more.remove(format!("m{i}").as_bytes());
        }
        assert!(!more.is_small());
        let small: ZSet = more.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert!(small.is_small());
        assert_eq!(small, more);
        // -0 is stored as 0 in both forms
        let mut neg = ZSet::new();
        neg.insert(b"a".to_vec(), -0.0);
        assert_eq!(neg.score(b"a").map(f64::to_bits), Some(0f64.to_bits()));
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
        let View::Big(big) = zs.0.view() else {
            panic!("1000 members make a big set")
        };
        assert!(big.blocks.iter().all(|b| !b.is_empty() && b.len() <= BLOCK));
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
