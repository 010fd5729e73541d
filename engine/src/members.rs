//! The set value ([`Members`]): distinct byte strings, always iterated in
//! byte order (SMEMBERS of a hashtable, SSCAN's steps, the members SPOP
//! and SRANDMEMBER pick by index and snapshots rely on it).
//!
//! Two representations, as Redis has two:
//! - small (Redis's intset, or the listpack Redis 7.2 added for sets): one
//!   buffer of `len u8 | bytes` per member, in byte order, searched by a
//!   walk; kept inside the value itself up to 16 bytes (no allocation: a
//!   set of one short member costs the 24 bytes of the value), else on the
//!   heap, exactly sized. A set is small while it has at most
//!   [`SMALL_MAX_MEMBERS`] members of at most [`SMALL_MAX_MEMBER`] bytes,
//!   or, while every member it was ever given is an integer, at most
//!   [`SMALL_MAX_INTS`] members (Redis's default `set-max-intset-entries`).
//! - big: a boxed `BTreeSet` (O(log n) everything).
//!
//! A set grows from small to big when an insert crosses the bounds and
//! never goes back (Redis does not convert back either; COPY keeps the
//! form); a snapshot load or a STORE command builds a set member by
//! member, so it may come back small, as Redis's RDB load makes an intset
//! again.
//!
//! OBJECT ENCODING speaks Redis 7.0 (the version whose replies the engine
//! follows): `intset` for a small set whose members were all integers and
//! that never held more than `set-max-intset-entries`, else `hashtable`
//! ([`Members::is_intset`]); as in Redis, adding a non-integer or growing
//! past the bound is sticky. Equality ignores the representation: two sets
//! are equal when they hold the same members.

use std::collections::{btree_set, BTreeSet};
use std::fmt;

/// Most members of a small set that holds a non-integer (Redis 7.2's
/// `set-max-listpack-entries`).
pub const SMALL_MAX_MEMBERS: usize = 128;
/// Longest member a small set holds (Redis 7.2's `set-max-listpack-value`).
pub const SMALL_MAX_MEMBER: usize = 64;
/// Most members of a small set of integers (Redis's default
/// `set-max-intset-entries`).
pub const SMALL_MAX_INTS: usize = 512;

/// A set: never empty in the state (a command that empties one removes
/// the key).
#[derive(Clone)]
pub struct Members(Repr);

#[derive(Clone)]
enum Repr {
    /// The packed form, its buffer inside the value (up to [`INLINE`]
    /// bytes: no allocation at all).
    Inline(Meta, u8, [u8; INLINE]),
    /// The packed form, its buffer on the heap, exactly sized.
    Heap(Meta, Box<[u8]>),
    // boxed so that the value stays three words (a BTreeSet is three)
    #[allow(clippy::box_collection)]
    Big(Box<BTreeSet<Vec<u8>>>),
}

/// Bytes of packed members kept inside the value.
const INLINE: usize = 16;

/// What the packed form knows beside its members.
#[derive(Clone, Copy, Debug)]
struct Meta {
    len: u16,
    /// Most members it held at once (`set-max-intset-entries` is judged
    /// against it: an intset that grew past the bound stays a hashtable).
    peak: u16,
    /// Every member it was ever given is an integer (Redis's intset).
    ints: bool,
}

/// A set read: the packed form (`len u8 | member` per member, in byte
/// order) or the big one.
enum View<'a> {
    Packed(Meta, &'a [u8]),
    Big(&'a BTreeSet<Vec<u8>>),
}

// The value enum keeps a set inline: at most three words.
const _: () = assert!(std::mem::size_of::<Members>() <= 24);

/// True when Redis would store `m` in an intset (a canonical i64).
fn is_int(m: &[u8]) -> bool {
    m.len() <= 20 && crate::cmd::arg::parse_i64(m).is_some()
}

/// `Ok(offset)` of `m` in a packed buffer, or `Err(offset)` where it
/// would go.
fn find(buf: &[u8], m: &[u8]) -> Result<usize, usize> {
    let mut p = 0;
    while p < buf.len() {
        let n = usize::from(buf[p]);
        match buf[p + 1..p + 1 + n].cmp(m) {
            std::cmp::Ordering::Less => p += 1 + n,
            std::cmp::Ordering::Equal => return Ok(p),
            std::cmp::Ordering::Greater => return Err(p),
        }
    }
    Err(p)
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

impl Default for Members {
    fn default() -> Members {
        Members::new()
    }
}

impl Members {
    /// An empty set (packed, an intset until a non-integer joins).
    pub const fn new() -> Members {
        let meta = Meta {
            len: 0,
            peak: 0,
            ints: true,
        };
        Members(Repr::Inline(meta, 0, [0; INLINE]))
    }

    pub fn len(&self) -> usize {
        match self.0.view() {
            View::Packed(meta, _) => usize::from(meta.len),
            View::Big(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self.0.view() {
            View::Packed(_, buf) => find(buf, m).is_ok(),
            View::Big(b) => b.contains(m),
        }
    }

    /// Adds `m`; false when it was a member already.
    pub fn insert(&mut self, m: Vec<u8>) -> bool {
        let (meta, buf) = match &mut self.0 {
            Repr::Big(b) => return b.insert(m),
            small => match small.view() {
                View::Packed(meta, buf) => (meta, buf),
                View::Big(_) => unreachable!("matched above"),
            },
        };
        let Err(at) = find(buf, &m) else {
            return false;
        };
        let ints = meta.ints && is_int(&m);
        let len = meta.len + 1;
        let fits = m.len() <= SMALL_MAX_MEMBER
            && (usize::from(len) <= SMALL_MAX_MEMBERS
                || (ints && usize::from(len) <= SMALL_MAX_INTS));
        if !fits {
            let mut big: BTreeSet<Vec<u8>> = self.iter().map(<[u8]>::to_vec).collect();
            big.insert(m);
            self.0 = Repr::Big(Box::new(big));
            return true;
        }
        let mut v = Vec::with_capacity(buf.len() + 1 + m.len());
        v.extend_from_slice(&buf[..at]);
        v.push(m.len() as u8); // <= SMALL_MAX_MEMBER
        v.extend_from_slice(&m);
        v.extend_from_slice(&buf[at..]);
        let meta = Meta {
            len,
            peak: meta.peak.max(len),
            ints,
        };
        self.0 = Repr::packed(meta, v);
        true
    }

    /// Removes `m`; false when it was not a member. The representation
    /// stays (a big set does not become small again).
    pub fn remove(&mut self, m: &[u8]) -> bool {
        let (meta, buf) = match &mut self.0 {
            Repr::Big(b) => return b.remove(m),
            small => match small.view() {
                View::Packed(meta, buf) => (meta, buf),
                View::Big(_) => unreachable!("matched above"),
            },
        };
        let Ok(at) = find(buf, m) else {
            return false;
        };
        let end = at + 1 + usize::from(buf[at]);
        let mut v = Vec::with_capacity(buf.len() - (end - at));
        v.extend_from_slice(&buf[..at]);
        v.extend_from_slice(&buf[end..]);
        let meta = Meta {
            len: meta.len - 1,
            ..meta
        };
        self.0 = Repr::packed(meta, v);
        true
    }

    /// The members in byte order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(match self.0.view() {
            View::Packed(meta, buf) => IterRepr::Packed {
                rest: buf,
                left: usize::from(meta.len),
            },
            View::Big(b) => IterRepr::Big(b.iter()),
        })
    }

    /// The greatest member.
    pub fn last(&self) -> Option<&[u8]> {
        match self.0.view() {
            View::Packed(..) => self.iter().last(),
            View::Big(b) => b.last().map(Vec::as_slice),
        }
    }

    /// True when Redis 7.0 would hold this set as an intset with
    /// `set-max-intset-entries` at `max_entries`: the packed form, only
    /// integers ever given, never more than `max_entries` members.
    pub fn is_intset(&self, max_entries: u64) -> bool {
        match self.0.view() {
            View::Packed(meta, _) => meta.ints && u64::from(meta.peak) <= max_entries,
            View::Big(_) => false,
        }
    }

    /// True in the packed form (tests, MEMORY USAGE).
    pub fn is_small(&self) -> bool {
        !matches!(self.0, Repr::Big(_))
    }

    /// Bytes the members take on the heap, bookkeeping included (an
    /// estimate for the big form: a B-tree slot and a vector per member).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Inline(..) => 0,
            Repr::Heap(_, buf) => buf.len(),
            Repr::Big(b) => {
                std::mem::size_of::<BTreeSet<Vec<u8>>>()
                    + b.iter().map(|m| m.len() + 40).sum::<usize>()
            }
        }
    }
}

impl PartialEq for Members {
    fn eq(&self, other: &Members) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Members {}

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<Vec<u8>> for Members {
    fn from_iter<I: IntoIterator<Item = Vec<u8>>>(iter: I) -> Members {
        let mut s = Members::new();
        s.extend(iter);
        s
    }
}

impl Extend<Vec<u8>> for Members {
    fn extend<I: IntoIterator<Item = Vec<u8>>>(&mut self, iter: I) {
        for m in iter {
            self.insert(m);
        }
    }
}

impl<const N: usize> From<[Vec<u8>; N]> for Members {
    fn from(members: [Vec<u8>; N]) -> Members {
        members.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = &'a [u8];
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The members of a [`Members`] in byte order.
#[derive(Clone)]
pub struct Iter<'a>(IterRepr<'a>);

#[derive(Clone)]
enum IterRepr<'a> {
    Packed { rest: &'a [u8], left: usize },
    Big(btree_set::Iter<'a, Vec<u8>>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            IterRepr::Packed { rest, left } => {
                let (&n, tail) = rest.split_first()?;
                let (m, tail) = tail.split_at(usize::from(n));
                *rest = tail;
                *left -= 1;
                Some(m)
            }
            IterRepr::Big(it) => it.next().map(Vec::as_slice),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterRepr::Packed { left, .. } => (*left, Some(*left)),
            IterRepr::Big(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator (no test dependency).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A member: mostly short strings from a small alphabet, sometimes
    /// integers, sometimes past the small form's length bound.
    fn member(rng: &mut Rng, ints_only: bool, universe: u64) -> Vec<u8> {
        let k = rng.below(universe);
        if ints_only || rng.below(4) == 0 {
            return format!("{}", k as i64 - (universe / 2) as i64).into_bytes();
        }
        match rng.below(10) {
            0 => vec![b'x'; SMALL_MAX_MEMBER + 1 + (k % 3) as usize],
            1 => vec![b'y'; SMALL_MAX_MEMBER],
            2 => Vec::new(),
            _ => format!("m{k}").into_bytes(),
        }
    }

    fn check(s: &Members, model: &BTreeSet<Vec<u8>>) {
        assert_eq!(s.len(), model.len());
        assert_eq!(s.is_empty(), model.is_empty());
        assert_eq!(s.iter().len(), model.len());
        assert!(s.iter().eq(model.iter().map(Vec::as_slice)));
        assert_eq!(s.last(), model.last().map(Vec::as_slice));
        if let View::Packed(meta, buf) = s.0.view() {
            assert!(meta.len <= meta.peak);
            assert!(usize::from(meta.len) <= SMALL_MAX_MEMBERS || meta.ints);
            assert!(usize::from(meta.len) <= SMALL_MAX_INTS);
            assert_eq!(matches!(s.0, Repr::Inline(..)), buf.len() <= INLINE);
            if meta.ints {
                assert!(s.iter().all(is_int));
            }
        }
        let rebuilt: Members = model.iter().cloned().collect();
        assert_eq!(&rebuilt, s);
    }

    /// Random inserts and removes against a `BTreeSet`, in runs that stay
    /// small, cross the bounds by count and by member length, and grow
    /// integer sets to the intset bound.
    #[test]
    fn agrees_with_a_btreeset_across_the_bounds() {
        let mut bigs = 0;
        for seed in 0..60u64 {
            let mut rng = Rng(seed);
            let ints_only = seed % 3 == 0;
            let universe = [20, 140, 600, 2_000][(seed % 4) as usize];
            let mut s = Members::new();
            let mut model = BTreeSet::new();
            let (mut ints, mut must_be_big) = (true, false);
            let removes = [3, 12][(seed / 4 % 2) as usize];
            for step in 0..1_500 {
                let m = member(&mut rng, ints_only, universe);
                if rng.below(removes) == 0 {
                    assert_eq!(s.remove(&m), model.remove(&m), "seed {seed} step {step}");
                } else {
                    let added = model.insert(m.clone());
                    assert_eq!(s.insert(m.clone()), added, "seed {seed} step {step}");
                    // big past a bound, and from then on
                    ints &= !added || is_int(&m);
                    let n = model.len();
                    must_be_big |= added
                        && (m.len() > SMALL_MAX_MEMBER
                            || n > SMALL_MAX_INTS
                            || (n > SMALL_MAX_MEMBERS && !ints));
                }
                assert_eq!(s.is_small(), !must_be_big, "seed {seed} step {step}");
                let probe = member(&mut rng, ints_only, universe);
                assert_eq!(s.contains(&probe), model.contains(&probe));
                if step % 97 == 0 {
                    check(&s, &model);
                }
            }
            check(&s, &model);
            bigs += usize::from(must_be_big);
        }
        assert!((10..50).contains(&bigs), "both forms are exercised: {bigs}");
    }

    #[test]
    fn the_small_form_and_intsets_follow_redis_bounds() {
        let ints = |n: i64| -> Members { (0..n).map(|i| i.to_string().into_bytes()).collect() };
        let s = ints(512);
        assert!(s.is_small());
        assert!(s.is_intset(512));
        assert!(!s.is_intset(511), "config below the peak");
        let mut s2 = s.clone();
        assert!(s2.insert(b"512".to_vec()));
        assert!(!s2.is_small() && !s2.is_intset(10_000));
        // a non-integer: no intset, sticky after its removal
        let mut t = ints(3);
        assert!(t.is_intset(512));
        t.insert(b"a".to_vec());
        assert!(t.is_small() && !t.is_intset(512));
        t.remove(b"a");
        assert!(!t.is_intset(512));
        // a grown intset stays a hashtable for a config below its peak
        let mut u = ints(10);
        for i in 0..8 {
            u.remove(i.to_string().as_bytes());
        }
        assert!(!u.is_intset(5) && u.is_intset(10));
        // not canonical or past i64: no intset
        assert!(!Members::from([b"01".to_vec()]).is_intset(512));
        assert!(!Members::from([b"9223372036854775808".to_vec()]).is_intset(512));
        assert!(Members::from([b"-9223372036854775808".to_vec()]).is_intset(512));
        // strings: 128 stay small, the 129th or a long member make it big
        let strs: Members = (0..128).map(|i| format!("s{i}").into_bytes()).collect();
        assert!(strs.is_small());
        let mut more = strs.clone();
        more.insert(b"s128".to_vec());
        assert!(!more.is_small());
        let mut long = Members::from([b"a".to_vec()]);
        long.insert(vec![b'z'; SMALL_MAX_MEMBER]);
        assert!(long.is_small());
        long.insert(vec![b'z'; SMALL_MAX_MEMBER + 1]);
        assert!(!long.is_small());
        // an integer set past 128 members meeting a string goes big
        let mut mixed = ints(200);
        mixed.insert(b"x".to_vec());
        assert!(!mixed.is_small());
        assert_eq!(mixed.len(), 201);
        // an empty member, equality across forms
        let e = Members::from([Vec::new(), b"a".to_vec()]);
        assert!(e.contains(b""));
        assert_eq!(e.iter().collect::<Vec<_>>(), vec![&b""[..], b"a"]);
        assert_eq!(more.clone(), more);
        let small_again: Members = more.iter().map(<[u8]>::to_vec).collect();
        assert_eq!(small_again, more);
    }
}
