//! The hash value: field -> value, in insertion order, in one of two forms
//! as Redis keeps it.
//!
//! - **Packed** (Redis's listpack): while the hash has at most
//!   [`MAX_PACKED_ENTRIES`] fields, each field and value at most
//!   [`MAX_PACKED_VALUE`] bytes, every pair lives in one exactly sized byte
//!   buffer, one after the other in insertion order:
//!
//!   ```text
//!    pair × len:  field-len varint | field | value-len varint | value
//!   ```
//!
//!   (varint: LEB128, 7 bits a byte, low first; one byte for every length
//!   the packed form holds). Up to 21 bytes of pairs (a field of a few
//!   bytes and a value of 16) are kept in the `Hash` itself and allocate
//!   nothing; longer ones in one boxed buffer. A lookup walks the pairs, as
//!   Redis walks its listpack; an insert appends, a removal closes the gap,
//!   each with one reallocation.
//! - **Table**: a boxed [`IndexMap`] (hashed lookup, insertion order). A
//!   packed hash that outgrows either bound is converted once and stays a
//!   table, even if it shrinks again (as Redis never converts a hashtable
//!   back): OBJECT ENCODING reports the form (`listpack` / `hashtable`),
//!   HSCAN returns a packed hash whole.
//!
//! The bounds are Redis's defaults of `hash-max-listpack-entries` and
//! `hash-max-listpack-value`, fixed: a hash changes in
//! [`crate::cmd::Effect::apply`], which sees the state and the time but not
//! the server's configuration (the same code replays the log in the
//! snapshotter, which has none), so CONFIG SET of those two parameters is
//! accepted but does not move the bounds. A hash loaded from a snapshot or
//! RESTORE is packed when its contents fit, as Redis loads an RDB.
//!
//! The field order does not depend on the form: a packed hash removes by
//! closing the gap, and so does a table of at most [`ORDERED_MAX`] fields;
//! past that a table removes in O(1), its last field taking the removed
//! one's place (Redis's order is then arbitrary anyway). So the order after
//! any history is the same live, after replay of the log and after a
//! snapshot, which writes the fields in this order.

use std::fmt;

use indexmap::IndexMap;

/// Most fields of a packed hash (Redis's `hash-max-listpack-entries`
/// default).
pub const MAX_PACKED_ENTRIES: usize = 128;

/// Longest field or value of a packed hash (Redis's
/// `hash-max-listpack-value` default).
pub const MAX_PACKED_VALUE: usize = 64;

/// Past this many fields a table removes in O(1) (the last field takes the
/// removed one's place) instead of shifting the fields after it.
pub const ORDERED_MAX: usize = 512;

type Table = IndexMap<Vec<u8>, Vec<u8>>;

/// A hash value (see the module doc). Never empty in the state: a command
/// that empties a hash removes the key.
#[derive(Clone)]
pub struct Hash(Repr);

#[derive(Clone)]
enum Repr {
    /// `len` pairs packed in `bytes[..used]`, in place (no allocation).
    Inline {
        len: u8,
        used: u8,
        bytes: [u8; INLINE_BYTES],
    },
    /// `len` pairs packed in `buf` (exactly sized: no spare capacity).
    Packed {
        len: u32,
        buf: Box<[u8]>,
    },
    Table(Box<Table>),
}

/// Packed pairs of at most this many bytes are kept in the [`Hash`] itself
/// (what is left of its 24 bytes beside the form and the two counts).
const INLINE_BYTES: usize = 21;

impl Default for Hash {
    fn default() -> Hash {
        Hash::new()
    }
}

impl Hash {
    /// An empty (packed) hash; allocates nothing.
    pub fn new() -> Hash {
        Hash(Repr::Inline {
            len: 0,
            used: 0,
            bytes: [0; INLINE_BYTES],
        })
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => usize::from(*len),
            Repr::Packed { len, .. } => *len as usize,
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True while the hash is in its packed form (in place or not).
    pub fn is_packed(&self) -> bool {
        !matches!(self.0, Repr::Table(_))
    }

    /// The form as OBJECT ENCODING names it.
    pub fn encoding(&self) -> &'static str {
        if self.is_packed() {
            "listpack"
        } else {
            "hashtable"
        }
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.0 {
            Repr::Table(t) => t.get(field).map(Vec::as_slice),
            _ => {
                let buf = self.packed()?;
                find(buf, field).map(|p| &buf[p.value_start..p.end])
            }
        }
    }

    /// True when `field` is in the hash.
    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets `field` to `value`: a new field goes last, an existing one
    /// keeps its place. True when the field is new. Converts a packed hash
    /// to a table when the pair is too long or the hash outgrows
    /// [`MAX_PACKED_ENTRIES`].
    pub fn insert(&mut self, field: Vec<u8>, value: Vec<u8>) -> bool {
        let Some(buf) = self.packed() else {
            return self.table().insert(field, value).is_none();
        };
        if field.len() > MAX_PACKED_VALUE || value.len() > MAX_PACKED_VALUE {
            return self.table().insert(field, value).is_none();
        }
        match find(buf, &field) {
            Some(p) if p.end - p.value_start == value.len() => {
                self.packed_mut()[p.value_start..p.end].copy_from_slice(&value);
                false
            }
            Some(p) => {
                let mut b = Vec::with_capacity(
                    buf.len() - (p.end - p.value_len_at) + len_size(value.len()) + value.len(),
                );
                b.extend_from_slice(&buf[..p.value_len_at]);
                put_len(&mut b, value.len());
                b.extend_from_slice(&value);
                b.extend_from_slice(&buf[p.end..]);
                self.set_packed(self.len(), b);
                false
            }
            None if self.len() >= MAX_PACKED_ENTRIES => {
                self.table().insert(field, value);
                true
            }
            None => {
                let len = self.len() + 1;
                let mut b = self.take_packed();
                b.reserve_exact(
                    len_size(field.len()) + field.len() + len_size(value.len()) + value.len(),
                );
                put_len(&mut b, field.len());
                b.extend_from_slice(&field);
                put_len(&mut b, value.len());
                b.extend_from_slice(&value);
                self.set_packed(len, b);
                true
            }
        }
    }

    /// Removes `field`, keeping the order of the others (but in a table of
    /// more than [`ORDERED_MAX`] fields, where the last field takes its
    /// place). True when it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.0 {
            Repr::Table(t) if t.len() > ORDERED_MAX => t.swap_remove(field).is_some(),
            Repr::Table(t) => t.shift_remove(field).is_some(),
            _ => {
                let Some(p) = self.packed().and_then(|buf| find(buf, field)) else {
                    return false;
                };
                let len = self.len() - 1;
                let mut b = self.take_packed();
                b.drain(p.start..p.end);
                self.set_packed(len, b);
                true
            }
        }
    }

    /// The (field, value) pairs in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(match &self.0 {
            Repr::Table(t) => IterRepr::Table(t.iter()),
            _ => IterRepr::Packed {
                buf: self.packed().unwrap_or_default(),
                pos: 0,
                left: self.len(),
            },
        })
    }

    /// The fields in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.iter().map(|(f, _)| f)
    }

    /// The packed pairs (None for a table).
    fn packed(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Inline { used, bytes, .. } => Some(&bytes[..usize::from(*used)]),
            Repr::Packed { buf, .. } => Some(buf),
            Repr::Table(_) => None,
        }
    }

    /// The packed pairs, to change in place (same length).
    fn packed_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Repr::Inline { used, bytes, .. } => &mut bytes[..usize::from(*used)],
            Repr::Packed { buf, .. } => buf,
            Repr::Table(_) => unreachable!("only called on a packed hash"),
        }
    }

    /// The packed pairs as a vector, to be given back by [`Hash::set_packed`]
    /// (a boxed buffer is moved, not copied).
    fn take_packed(&mut self) -> Vec<u8> {
        match &mut self.0 {
            Repr::Inline { used, bytes, .. } => bytes[..usize::from(*used)].to_vec(),
            Repr::Packed { buf, .. } => std::mem::take(buf).into_vec(),
            Repr::Table(_) => unreachable!("only called on a packed hash"),
        }
    }

    /// Makes the hash `len` pairs packed in `b`: in place when they fit.
    fn set_packed(&mut self, len: usize, b: Vec<u8>) {
        self.0 = if b.len() <= INLINE_BYTES {
            let mut bytes = [0; INLINE_BYTES];
            bytes[..b.len()].copy_from_slice(&b);
            Repr::Inline {
                len: len as u8,
                used: b.len() as u8,
                bytes,
            }
        } else {
            Repr::Packed {
                len: len as u32,
                buf: b.into_boxed_slice(),
            }
        };
    }

    /// The table form, converting a packed hash first (once: it stays a
    /// table).
    fn table(&mut self) -> &mut Table {
        if let Some(buf) = self.packed() {
            let mut t = Table::with_capacity(self.len() + 1);
            t.extend(pairs(buf).map(|(f, v)| (f.to_vec(), v.to_vec())));
            self.0 = Repr::Table(Box::new(t));
        }
        match &mut self.0 {
            Repr::Table(t) => t,
            _ => unreachable!("converted above"),
        }
    }
}

/// Where one pair sits in a packed buffer.
struct Found {
    /// The field's length prefix.
    start: usize,
    /// The value's length prefix.
    value_len_at: usize,
    value_start: usize,
    /// Just past the value.
    end: usize,
}

/// Reads the length prefix at `*pos` and moves past it.
fn read_len(buf: &[u8], pos: &mut usize) -> usize {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return n;
        }
        shift += 7;
    }
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Bytes of the length prefix of `n`.
fn len_size(n: usize) -> usize {
    (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
}

/// The pair at `pos` of a packed buffer.
fn pair_at(buf: &[u8], start: usize) -> (Found, usize) {
    let mut pos = start;
    let flen = read_len(buf, &mut pos);
    let field_start = pos;
    pos += flen;
    let value_len_at = pos;
    let vlen = read_len(buf, &mut pos);
    let found = Found {
        start,
        value_len_at,
        value_start: pos,
        end: pos + vlen,
    };
    (found, field_start)
}

fn find(buf: &[u8], field: &[u8]) -> Option<Found> {
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let flen = read_len(buf, &mut pos);
        let candidate = &buf[pos..pos + flen];
        // the last byte first: fields of one hash often share a prefix
        if flen == field.len() && candidate.last() == field.last() && candidate == field {
            return Some(pair_at(buf, start).0);
        }
        pos += flen;
        pos += read_len(buf, &mut pos);
    }
    None
}

/// Every pair of a packed buffer, in order.
fn pairs(buf: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= buf.len() {
            return None;
        }
        let (p, field_start) = pair_at(buf, pos);
        pos = p.end;
        Some((
            &buf[field_start..p.value_len_at],
            &buf[p.value_start..p.end],
        ))
    })
}

/// The pairs of a [`Hash`] in order: `(field, value)`.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Packed {
        buf: &'a [u8],
        pos: usize,
        left: usize,
    },
    Table(indexmap::map::Iter<'a, Vec<u8>, Vec<u8>>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        match &mut self.0 {
            IterRepr::Packed { left: 0, .. } => None,
            IterRepr::Packed { buf, pos, left } => {
                let (p, field_start) = pair_at(buf, *pos);
                *pos = p.end;
                *left -= 1;
                Some((
                    &buf[field_start..p.value_len_at],
                    &buf[p.value_start..p.end],
                ))
            }
            IterRepr::Table(it) => it.next().map(|(f, v)| (f.as_slice(), v.as_slice())),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IterRepr::Packed { left, .. } => *left,
            IterRepr::Table(it) => it.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Hash {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl Extend<(Vec<u8>, Vec<u8>)> for Hash {
    fn extend<I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>>(&mut self, pairs: I) {
        for (f, v) in pairs {
            self.insert(f, v);
        }
    }
}

impl FromIterator<(Vec<u8>, Vec<u8>)> for Hash {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>>(pairs: I) -> Hash {
        let mut h = Hash::new();
        h.extend(pairs);
        h
    }
}

/// Equal when both hold the same fields with the same values, whatever
/// their order and form (as two maps are equal).
impl PartialEq for Hash {
    fn eq(&self, other: &Hash) -> bool {
        if let (Some(a), Some(b)) = (self.packed(), other.packed()) {
            if a == b {
                return true;
            }
        }
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl Eq for Hash {}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Bytes<'a>(&'a [u8]);
        impl fmt::Debug for Bytes<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "b\"{}\"", self.0.escape_ascii())
            }
        }
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (Bytes(k), Bytes(v))))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn pairs_of(h: &Hash) -> Vec<(Vec<u8>, Vec<u8>)> {
        h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn fits_in_24_bytes() {
        assert!(
            std::mem::size_of::<Hash>() <= 24,
            "{}",
            std::mem::size_of::<Hash>()
        );
    }

    #[test]
    fn packed_layout_is_length_prefixed_pairs_in_insertion_order() {
        let mut h = Hash::new();
        assert!(h.is_empty() && h.is_packed());
        assert!(h.insert(b("b"), b("1")));
        assert!(h.insert(b("a"), vec![7; 200 / 4]));
        assert!(!h.insert(b("b"), b("22")));
        let Repr::Packed { len, buf } = &h.0 else {
            panic!("not packed")
        };
        assert_eq!(*len, 2);
        let mut want = vec![1, b'b', 2, b'2', b'2', 1, b'a', 50];
        want.extend_from_slice(&[7; 50]);
        assert_eq!(&buf[..], &want[..]);
        assert_eq!(h.get(b"b"), Some(&b"22"[..]));
        assert_eq!(h.get(b"c"), None);
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert_eq!(pairs_of(&h), vec![(b("a"), vec![7; 50])]);
        assert_eq!(h.encoding(), "listpack");
    }

    /// Pairs of at most INLINE_BYTES packed bytes live in the Hash itself;
    /// growing past that moves them to a buffer, shrinking moves them back.
    #[test]
    fn small_pairs_are_kept_in_place() {
        let inline = |h: &Hash| matches!(h.0, Repr::Inline { .. });
        let mut h = Hash::new();
        assert!(inline(&h));
        // the memory benchmark's hash: one field "f", a 16-byte value
        assert!(h.insert(b("f"), vec![b'v'; 16]));
        assert!(inline(&h));
        assert_eq!(h.get(b"f"), Some(&[b'v'; 16][..]));
        assert!(!h.insert(b("f"), vec![b'v'; 15]));
        // 3 + 15 + 3 bytes: 21, still in place
        assert!(h.insert(b("g"), vec![]));
        assert!(inline(&h) && h.len() == 2);
        assert!(!h.insert(b("g"), b("1")));
        assert!(!inline(&h) && h.is_packed());
        assert_eq!(
            pairs_of(&h),
            vec![(b("f"), vec![b'v'; 15]), (b("g"), b("1"))]
        );
        assert!(h.remove(b"f"));
        assert!(inline(&h));
        assert_eq!(pairs_of(&h), vec![(b("g"), b("1"))]);
        assert!(!h.insert(b("g"), b("2")));
        assert_eq!(h.get(b"g"), Some(&b"2"[..]));
        assert!(h.remove(b"g") && h.is_empty() && inline(&h));
        assert_eq!(h, Hash::new());
    }

    #[test]
    fn length_prefixes_round_trip() {
        for n in [0, 1, 63, 64, 127, 128, 300, 16_383, 16_384, 1 << 30] {
            let mut out = Vec::new();
            put_len(&mut out, n);
            assert_eq!(out.len(), len_size(n), "{n}");
            let mut pos = 0;
            assert_eq!(read_len(&out, &mut pos), n);
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn converts_once_past_the_bounds_and_stays_a_table() {
        // by count: the 129th field
        let mut h: Hash = (0..MAX_PACKED_ENTRIES)
            .map(|i| (format!("f{i}").into_bytes(), b("v")))
            .collect();
        assert!(h.is_packed());
        assert!(
            !h.insert(b("f0"), b("w")),
            "an existing field does not convert"
        );
        assert!(h.is_packed());
        assert!(h.insert(b("new"), b("v")));
        assert_eq!(h.encoding(), "hashtable");
        assert!(h.remove(b"new"));
        assert!(!h.is_packed(), "never converted back");
        assert_eq!(h.keys().next(), Some(&b"f0"[..]));
        assert_eq!(h.get(b"f0"), Some(&b"w"[..]));
        // by length of a value or a field: 64 bytes fit, 65 do not
        for long_field in [false, true] {
            let mut h = Hash::new();
            h.insert(b("a"), vec![b'x'; MAX_PACKED_VALUE]);
            h.insert(vec![b'y'; MAX_PACKED_VALUE], b("1"));
            assert!(h.is_packed());
            if long_field {
                h.insert(vec![b'z'; MAX_PACKED_VALUE + 1], b("2"));
            } else {
                h.insert(b("a"), vec![b'x'; MAX_PACKED_VALUE + 1]);
            }
            assert!(!h.is_packed());
            assert_eq!(h.keys().next(), Some(&b"a"[..]), "order kept");
        }
    }

    #[test]
    fn equality_ignores_order_and_form() {
        let a: Hash = [(b("x"), b("1")), (b("y"), b("2"))].into_iter().collect();
        let b2: Hash = [(b("y"), b("2")), (b("x"), b("1"))].into_iter().collect();
        assert_eq!(a, b2);
        let mut t = a.clone();
        t.insert(b("z"), vec![0; 100]);
        t.remove(b"z");
        assert!(!t.is_packed());
        assert_eq!(a, t);
        t.insert(b("x"), b("9"));
        assert_ne!(a, t);
        assert_ne!(a, Hash::new());
        assert_eq!(format!("{:?}", a), r#"{b"x": b"1", b"y": b"2"}"#);
    }

    /// splitmix64: a seeded generator for the model test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Random inserts and removes against an IndexMap with the old rules
    /// (shift removal up to ORDERED_MAX fields, swap past it): the same
    /// contents and order after every step, and the form as Redis would
    /// have it (packed until a bound is crossed, then a table for good).
    #[test]
    fn behaves_as_an_index_map_model() {
        let (mut inline_seen, mut boxed_seen) = (false, false);
        for seed in 0..60u64 {
            let mut r = Rng(seed);
            let mut h = Hash::new();
            let mut model: IndexMap<Vec<u8>, Vec<u8>> = IndexMap::new();
            let mut crossed = false;
            // some seeds stay tiny (in place) or small, some grow past 128
            // and 512 fields
            let fields = [3, 20, 150, 700][seed as usize % 4];
            let long_every = [0, 400, 40][(seed / 4) as usize % 3];
            for step in 0..3000 {
                let f = format!("f{}", r.below(fields)).into_bytes();
                match r.below(10) {
                    0..=5 => {
                        let vlen = if long_every > 0 && r.below(long_every) == 0 {
                            MAX_PACKED_VALUE + 1 + r.below(100) as usize
                        } else {
                            // short values half the time
                            r.below([8, MAX_PACKED_VALUE as u64 + 1][step % 2]) as usize
                        };
                        let v = vec![b'a' + (step % 26) as u8; vlen];
                        crossed |= vlen > MAX_PACKED_VALUE;
                        let new = h.insert(f.clone(), v.clone());
                        assert_eq!(new, model.insert(f, v).is_none(), "seed {seed} step {step}");
                        crossed |= model.len() > MAX_PACKED_ENTRIES;
                    }
                    6..=8 => {
                        let had = if model.len() > ORDERED_MAX {
                            model.swap_remove(&f)
                        } else {
                            model.shift_remove(&f)
                        };
                        assert_eq!(h.remove(&f), had.is_some(), "seed {seed} step {step}");
                    }
                    _ => {
                        assert_eq!(h.get(&f), model.get(&f).map(Vec::as_slice));
                        assert_eq!(h.contains_key(&f), model.contains_key(&f));
                    }
                }
                assert_eq!(h.len(), model.len());
                inline_seen |= matches!(h.0, Repr::Inline { len: 1.., .. });
                boxed_seen |= matches!(h.0, Repr::Packed { .. });
                assert_eq!(h.is_packed(), !crossed, "seed {seed} step {step}");
                assert_eq!(h.iter().len(), model.len());
                if step % 97 == 0 || model.len() < 8 {
                    let got = pairs_of(&h);
                    let want: Vec<_> = model.iter().map(|(f, v)| (f.clone(), v.clone())).collect();
                    assert_eq!(got, want, "seed {seed} step {step}");
                }
            }
            let want: Vec<_> = model.into_iter().collect();
            assert_eq!(pairs_of(&h), want, "seed {seed}");
            // rebuilt from its pairs (a snapshot or RESTORE): the same hash
            let rebuilt: Hash = want.into_iter().collect();
            assert_eq!(rebuilt, h);
            assert_eq!(pairs_of(&rebuilt), pairs_of(&h));
        }
        assert!(inline_seen && boxed_seen, "both packed forms met");
    }
}
