//! The keyspace table: key -> [`Entry`], kept in [`scan_hash`] order so that
//! SCAN can continue from a number.
//!
//! An open-addressing table with linear probing whose slots stay sorted by
//! hash (an "ordered" Robin-Hood table). A slot is a 12-byte `Cell` (the
//! key's hash and the index of its item: one cache line holds both); the
//! keys and entries live in a dense array:
//!
//! ```text
//!  slot:     0     1     2     3     4     5     6     7  | 8     9   (overflow)
//!  hash   [ h_a | h_b | 0   | h_c | h_d | h_e | 0   | h_f ][ h_g | 0 ]   u64, 0 = empty
//!  index  [ 2   | 0   | -   | 5   | 1   | 6   | -   | 3   ][ 4   | - ]   u32
//!             home(h_a) = home(h_b) = 0: b sits one past its home
//!  items  [ b, d, a, f, g, c, e ]        Item { key: Key, entry: Entry }, no holes
//! ```
//!
//! - `homes` home slots (any number: growth multiplies them by 3/2) plus
//!   overflow slots at the end, added one at a time when a cluster runs past
//!   the last home: probing never wraps around.
//! - A key's home slot is `hash * homes / 2^64` (the top bits of the hash):
//!   monotone, so a smaller hash never has a later home.
//! - Hash 0 marks an empty slot ([`scan_hash`] is never 0).
//! - Invariants: (1) the occupied slots, read left to right, have
//!   non-decreasing hashes; (2) every key sits at or after its home, and
//!   (3) no empty slot lies between a key's home and the key.
//!
//! A lookup starts at the home of the hash and walks the slots while the
//! hashes are smaller, comparing the key (in `items`) only on an equal
//! hash; it stops at an empty slot or a larger hash. Insertion
//! puts the key at its sorted place and shifts the run after it right by one
//! slot, into the next empty one (the keys moved are the ones with larger
//! hashes, which are "richer": Robin Hood); the item is pushed onto `items`.
//! Removal shifts the following displaced slots left by one (backward-shift
//! deletion: no tombstones) and moves the last item into the removed one's
//! place (its slot, found by its hash, is repointed). "The first key with
//! hash >= h" (SCAN's cursor) is found from the home of `h`: keys before that
//! slot have smaller homes, hence smaller hashes.
//!
//! The table grows by half again past a load of 7/8 and halves below 1/8,
//! by one ordered pass over the slots that re-places them (the hashes are
//! stored; the items do not move). A key costs its 64-byte [`Item`] (the key
//! inline up to [`INLINE_KEY`] bytes ([`Key`]) and the 40-byte [`Entry`])
//! plus 12 bytes per slot at a load between 7/12 and 7/8 while growing.

use crate::db::{scan_hash, Entry};

/// Longest key stored inline in its item (no allocation of its own).
pub const INLINE_KEY: usize = 22;

/// A key's bytes: inline when short (most keys), else on the heap.
#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl Key {
    /// The key's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

impl From<Vec<u8>> for Key {
    fn from(v: Vec<u8>) -> Key {
        if v.len() <= INLINE_KEY {
            Key::from(v.as_slice())
        } else {
            Key::Heap(v.into_boxed_slice())
        }
    }
}

impl From<&[u8]> for Key {
    fn from(v: &[u8]) -> Key {
        if v.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..v.len()].copy_from_slice(v);
            Key::Inline {
                len: v.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(v.into())
        }
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

/// A key and its entry (the dense array of the table).
#[derive(Clone, Debug)]
pub struct Item {
    pub key: Key,
    pub entry: Entry,
}

/// Keys [`Keyspace::warm`] works on at a time.
pub const WARM_KEYS: usize = 64;

/// Grow past `len * MAX_LOAD_DEN > homes * MAX_LOAD_NUM` (7/8), by half
/// again: the load after growth is 7/12, and a key costs 1.14-1.71 slots
/// (doubling: 1.14-2.29, 12 bytes each; growth is one pass over 12-byte
/// slots, the items do not move).
const MAX_LOAD_NUM: usize = 7;
const MAX_LOAD_DEN: usize = 8;
/// Fewest home slots of a non-empty table.
const MIN_HOMES: usize = 8;

/// A slot: a key's hash (0: empty) and where its item is, packed in 12
/// bytes (three u32, so that no padding is added).
#[derive(Clone, Copy, Default)]
struct Cell {
    hash_hi: u32,
    hash_lo: u32,
    index: u32,
}

impl Cell {
    const EMPTY: Cell = Cell {
        hash_hi: 0,
        hash_lo: 0,
        index: 0,
    };

    fn new(hash: u64, index: u32) -> Cell {
        Cell {
            hash_hi: (hash >> 32) as u32,
            hash_lo: hash as u32,
            index,
        }
    }

    fn hash(self) -> u64 {
        (u64::from(self.hash_hi) << 32) | u64::from(self.hash_lo)
    }
}

/// The table (see the module doc).
#[derive(Clone)]
pub struct Keyspace {
    /// The slots, home then overflow.
    cells: Vec<Cell>,
    /// The keys and entries, dense, in no particular order.
    items: Vec<Item>,
    /// Number of home slots (`cells.len()` minus the overflow slots).
    homes: usize,
    /// The key order ([`scan_hash`]; another one in tests).
    hash: fn(&[u8]) -> u64,
}

impl Default for Keyspace {
    fn default() -> Keyspace {
        Keyspace::with_hasher(scan_hash)
    }
}

impl Keyspace {
    pub fn new() -> Keyspace {
        Keyspace::default()
    }

    /// A table ordered by `hash` (never 0) instead of [`scan_hash`].
    fn with_hasher(hash: fn(&[u8]) -> u64) -> Keyspace {
        Keyspace {
            cells: Vec::new(),
            items: Vec::new(),
            homes: 0,
            hash,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of slots (home and overflow).
    pub fn slots(&self) -> usize {
        self.cells.len()
    }

    /// Removes every key and frees the table.
    pub fn clear(&mut self) {
        *self = Keyspace::with_hasher(self.hash);
    }

    /// The home slot of `hash`: `hash * homes / 2^64`, monotone in `hash`.
    fn home(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.homes as u128) >> 64) as usize
    }

    fn item_at(&self, slot: usize) -> &Item {
        &self.items[self.cells[slot].index as usize]
    }

    fn item_at_mut(&mut self, slot: usize) -> &mut Item {
        &mut self.items[self.cells[slot].index as usize]
    }

    /// The slot of `key` (whose hash is `hash`), or where it would go: the
    /// first slot from the home on that is empty or holds a larger hash
    /// (possibly one past the end).
    fn search(&self, hash: u64, key: &[u8]) -> Result<usize, usize> {
        let mut i = self.home(hash);
        while let Some(c) = self.cells.get(i) {
            let h = c.hash();
            if h == 0 || h > hash {
                return Err(i);
            }
            if h == hash && self.items[c.index as usize].key.as_slice() == key {
                return Ok(i);
            }
            i += 1;
        }
        Err(i)
    }

    /// The entry of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        let i = self.search((self.hash)(key), key).ok()?;
        Some(&self.item_at(i).entry)
    }

    /// The slot of `key`: valid until the table changes (for a lookup that
    /// then reads, changes or removes without searching again).
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        self.search((self.hash)(key), key).ok()
    }

    /// The entry at slot `i` (from [`Keyspace::find`]).
    pub fn at_mut(&mut self, i: usize) -> &mut Entry {
        &mut self.item_at_mut(i).entry
    }

    /// Removes the key at slot `i` (from [`Keyspace::find`]).
    pub fn remove_slot(&mut self, i: usize) -> Entry {
        self.remove_at(i).entry
    }

    /// The slot of `key` if present (no growth, unlike [`Keyspace::entry`]).
    pub fn occupied(&mut self, key: &[u8]) -> Option<OccupiedSlot<'_>> {
        let slot = self.find(key)?;
        Some(OccupiedSlot { table: self, slot })
    }

    /// The entry of `key`, to change it.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let i = self.find(key)?;
        Some(self.at_mut(i))
    }

    /// Reads, without changing anything, what lookups of `keys` will read:
    /// their home slots, then the items their hashes point to, then those
    /// items' string values (what a replayed SET overwrites). Each pass
    /// issues its loads for every key before any is needed, and does no
    /// more work per key than finding the next address (no key is compared:
    /// a touch by hash alone), so that many cache misses are in flight at
    /// once instead of following one another; the lookups that follow then
    /// hit the cache. A hint only (replay warms a group of records before
    /// applying them): any key, present or not, may be given.
    pub fn warm(&self, keys: &[&[u8]]) {
        if self.cells.is_empty() {
            return;
        }
        let mut hashes = [0u64; WARM_KEYS];
        let mut items = [usize::MAX; WARM_KEYS];
        for chunk in keys.chunks(WARM_KEYS) {
            let n = chunk.len();
            for (h, key) in hashes.iter_mut().zip(chunk) {
                *h = (self.hash)(key);
            }
            // the home slots (the hashes first: then the loads go out back
            // to back)
            let mut sum = 0u64;
            for h in &hashes[..n] {
                if let Some(c) = self.cells.get(self.home(*h)) {
                    sum = sum.wrapping_add(u64::from(c.hash_lo));
                }
            }
            std::hint::black_box(sum);
            // the items of the first slot with each hash
            for (h, ix) in hashes[..n].iter().zip(items.iter_mut()) {
                *ix = usize::MAX;
                let mut i = self.home(*h);
                while let Some(c) = self.cells.get(i) {
                    let ch = c.hash();
                    if ch == *h {
                        *ix = c.index as usize;
                    }
                    if ch == 0 || ch >= *h {
                        break;
                    }
                    i += 1;
                }
                if let Some(item) = self.items.get(*ix) {
                    // (an item, and a key in it, may straddle two cache
                    // lines: both ends of the key and the entry are read)
                    let key = item.key.as_slice();
                    let first =
                        key.first().copied().unwrap_or(0) ^ key.last().copied().unwrap_or(0);
                    let is_str = matches!(item.entry.value, crate::db::Value::Str(_));
                    let at = item.entry.expire_at_ms().unwrap_or(0);
                    sum = sum
                        .wrapping_add(at)
                        .wrapping_add(u64::from(is_str))
                        .wrapping_add(u64::from(first));
                }
            }
            std::hint::black_box(sum);
            // their string values
            for ix in &items[..n] {
                if let Some(Item {
                    entry:
                        Entry {
                            value: crate::db::Value::Str(v),
                            ..
                        },
                    ..
                }) = self.items.get(*ix)
                {
                    // (both ends: a value may straddle two cache lines)
                    let ends = v.first().copied().unwrap_or(0) ^ v.last().copied().unwrap_or(0);
                    sum = sum.wrapping_add(u64::from(ends));
                }
            }
            std::hint::black_box(sum);
        }
    }

    /// Inserts or replaces; returns the entry replaced.
    pub fn insert(&mut self, key: Vec<u8>, entry: Entry) -> Option<Entry> {
        match self.entry(key) {
            Slot::Occupied(mut o) => Some(std::mem::replace(o.get_mut(), entry)),
            Slot::Vacant(v) => {
                v.insert(entry);
                None
            }
        }
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let i = self.find(key)?;
        Some(self.remove_slot(i))
    }

    /// The slot of `key`, occupied or vacant, for one lookup that checks and
    /// then inserts, replaces or removes. The key is owned (`Vec<u8>`) or
    /// borrowed (`&[u8]`: copied into the table only if inserted).
    pub fn entry<K: AsRef<[u8]> + Into<Key>>(&mut self, key: K) -> Slot<'_, K> {
        let hash = (self.hash)(key.as_ref());
        debug_assert_ne!(hash, 0, "hash 0 marks an empty slot");
        match self.search(hash, key.as_ref()) {
            Ok(slot) => Slot::Occupied(OccupiedSlot { table: self, slot }),
            Err(mut at) => {
                // room first, so that the vacant slot's insert cannot move
                // anything else
                if (self.len() + 1) * MAX_LOAD_DEN > self.homes * MAX_LOAD_NUM {
                    self.rebuild((self.homes + self.homes / 2).max(MIN_HOMES));
                    at = self.search(hash, key.as_ref()).expect_err("absent");
                }
                Slot::Vacant(VacantSlot {
                    table: self,
                    hash,
                    key,
                    at,
                })
            }
        }
    }

    /// Puts a new key (absent, room made) at its sorted place `at` (from
    /// [`Keyspace::search`]); returns its item's position.
    fn place(&mut self, hash: u64, key: Key, at: usize, entry: Entry) -> usize {
        // the first empty slot from `at` on (a new overflow slot if none)
        let free = match self.cells[at.min(self.cells.len())..]
            .iter()
            .position(|c| c.hash() == 0)
        {
            Some(n) => at + n,
            None => {
                self.push_overflow();
                self.cells.len() - 1
            }
        };
        // shift at..free right by one (keys with larger hashes)
        self.cells.copy_within(at..free, at + 1);
        let n = self.items.len();
        self.cells[at] = Cell::new(hash, u32::try_from(n).expect("at most 2^32 - 1 keys"));
        self.items.push(Item { key, entry });
        n
    }

    /// One more slot at the end (a cluster ran past the last home).
    fn push_overflow(&mut self) {
        if self.cells.len() == self.cells.capacity() {
            self.cells.reserve_exact(8);
        }
        self.cells.push(Cell::EMPTY);
    }

    /// Removes the key at slot `i` (backward-shift deletion; the last item
    /// takes the removed one's place in `items`); may shrink.
    fn remove_at(&mut self, i: usize) -> Item {
        let at = self.cells[i].index as usize;
        // the run after `i` of keys not at their home moves left by one
        let mut end = i + 1;
        while let Some(c) = self.cells.get(end) {
            let h = c.hash();
            if h == 0 || self.home(h) == end {
                break;
            }
            end += 1;
        }
        self.cells.copy_within(i + 1..end, i);
        self.cells[end - 1] = Cell::EMPTY;
        let item = self.items.swap_remove(at);
        if let Some(moved) = self.items.get(at) {
            // repoint the slot of the item moved from the end
            let last = self.items.len() as u32;
            let hash = (self.hash)(&moved.key);
            let mut s = self.home(hash);
            while self.cells[s].hash() != hash || self.cells[s].index != last {
                s += 1;
            }
            self.cells[s].index = at as u32;
        }
        if self.len() * MAX_LOAD_DEN < self.homes && self.homes > MIN_HOMES {
            self.rebuild((self.homes / 2).max(MIN_HOMES));
            if self.items.capacity() > 4 * self.items.len() {
                self.items.shrink_to(2 * self.items.len());
            }
        }
        item
    }

    /// Re-places every slot into `homes` home slots, in one ordered pass
    /// (the slots are already sorted by hash; the items do not move).
    fn rebuild(&mut self, homes: usize) {
        let old = std::mem::take(&mut self.cells);
        self.homes = homes;
        // room for a few overflow slots without reallocating
        self.cells = Vec::with_capacity(homes + homes / 256 + 8);
        self.cells.resize(homes, Cell::EMPTY);
        let mut next = 0;
        for c in old {
            let h = c.hash();
            if h == 0 {
                continue;
            }
            let at = self.home(h).max(next);
            if at == self.cells.len() {
                self.push_overflow();
            }
            self.cells[at] = c;
            next = at + 1;
        }
    }

    /// Every key with its hash and entry, in hash order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8], &Entry)> {
        self.iter_from(0)
    }

    /// Keys with hash >= `from`, in hash order (keys of equal hash are
    /// adjacent, in no particular order).
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = (u64, &[u8], &Entry)> {
        let start = self.home(from).min(self.cells.len());
        self.cells[start..]
            .iter()
            .map(|c| (c.hash(), c.index))
            .filter(move |&(h, _)| h != 0 && h >= from)
            .map(|(h, ix)| {
                let item = &self.items[ix as usize];
                (h, item.key.as_slice(), &item.entry)
            })
    }

    /// Every key and entry in no particular order (the dense array: faster
    /// than [`Keyspace::iter`]).
    pub fn iter_unordered(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.items.iter().map(|i| (i.key.as_slice(), &i.entry))
    }

    /// Checks the invariants of the module doc (tests).
    #[cfg(test)]
    fn check(&self) {
        let mut prev = 0;
        let mut count = 0;
        let mut seen = vec![false; self.items.len()];
        for (i, c) in self.cells.iter().enumerate() {
            let h = c.hash();
            if h == 0 {
                continue;
            }
            count += 1;
            let ix = c.index as usize;
            assert!(!std::mem::replace(&mut seen[ix], true), "item {ix} twice");
            assert_eq!((self.hash)(&self.items[ix].key), h, "slot {i}: hash");
            assert!(h >= prev, "slot {i}: hashes out of order");
            prev = h;
            let home = self.home(h);
            assert!(home <= i, "slot {i} before its home {home}");
            assert!(
                self.cells[home..i].iter().all(|x| x.hash() != 0),
                "slot {i}: a gap after its home {home}"
            );
        }
        assert_eq!(count, self.len());
        assert!(self.len() * MAX_LOAD_DEN <= self.homes * MAX_LOAD_NUM || self.is_empty());
    }
}

impl std::fmt::Debug for Keyspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(_, k, e)| (String::from_utf8_lossy(k), e)))
            .finish()
    }
}

/// Two tables are equal when they hold the same keys with equal entries
/// (wherever they sit).
impl PartialEq for Keyspace {
    fn eq(&self, other: &Keyspace) -> bool {
        self.len() == other.len() && self.iter_unordered().all(|(k, e)| other.get(k) == Some(e))
    }
}

impl Eq for Keyspace {}

/// A key's slot ([`Keyspace::entry`]); `K` is how the key was given.
pub enum Slot<'a, K = Vec<u8>> {
    Occupied(OccupiedSlot<'a>),
    Vacant(VacantSlot<'a, K>),
}

/// A slot holding the key.
pub struct OccupiedSlot<'a> {
    table: &'a mut Keyspace,
    slot: usize,
}

impl<'a> OccupiedSlot<'a> {
    pub fn get(&self) -> &Entry {
        &self.table.item_at(self.slot).entry
    }

    pub fn get_mut(&mut self) -> &mut Entry {
        &mut self.table.item_at_mut(self.slot).entry
    }

    pub fn into_mut(self) -> &'a mut Entry {
        &mut self.table.item_at_mut(self.slot).entry
    }

    pub fn key(&self) -> &[u8] {
        self.table.item_at(self.slot).key.as_slice()
    }

    /// Removes the key; returns its entry.
    pub fn remove(self) -> Entry {
        self.table.remove_at(self.slot).entry
    }
}

/// The place of an absent key (room for it already made).
pub struct VacantSlot<'a, K = Vec<u8>> {
    table: &'a mut Keyspace,
    hash: u64,
    key: K,
    /// Where the key goes (valid: nothing changes the table meanwhile).
    at: usize,
}

impl<'a, K: AsRef<[u8]> + Into<Key>> VacantSlot<'a, K> {
    pub fn key(&self) -> &[u8] {
        self.key.as_ref()
    }

    /// Inserts the key with `entry`.
    pub fn insert(self, entry: Entry) -> &'a mut Entry {
        let at = self.table.place(self.hash, self.key.into(), self.at, entry);
        &mut self.table.items[at].entry
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::db::Value;
    use std::collections::BTreeMap;

    fn e(v: u64) -> Entry {
        Entry::new(Value::Str(v.to_le_bytes().to_vec()))
    }

    /// xorshift64*: deterministic cases without a dependency.
    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Warming reads only: any keys, present or not, more than a chunk of
    /// them, change nothing (the invariants hold, the same entries).
    #[test]
    fn warming_changes_nothing() {
        let mut rng = Rng(7);
        let mut t = Keyspace::new();
        t.warm(&[b"on an empty table"]);
        for i in 0..1_000u64 {
            t.insert(format!("k{}", rng.below(2_000)).into_bytes(), e(i));
        }
        let before = t.clone();
        let keys: Vec<Vec<u8>> = (0..3 * WARM_KEYS + 5)
            .map(|_| format!("k{}", rng.below(4_000)).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        t.warm(&refs);
        t.warm(&[]);
        t.check();
        assert_eq!(t, before);
        assert_eq!(t.slots(), before.slots());
    }

    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        assert_eq!(std::mem::size_of::<Cell>(), 12);
        assert_eq!(
            std::mem::size_of::<Item>(),
            24 + std::mem::size_of::<Entry>()
        );
        assert_eq!(std::mem::size_of::<Item>(), 64);
    }

    #[test]
    fn keys_inline_up_to_the_limit_then_on_the_heap() {
        for n in [0, 1, INLINE_KEY, INLINE_KEY + 1, 100] {
            let v: Vec<u8> = (0..n as u8).collect();
            let k = Key::from(v.clone());
            assert_eq!(k.as_slice(), v.as_slice());
            assert_eq!(matches!(k, Key::Inline { .. }), n <= INLINE_KEY);
            assert_eq!(Key::from(v.as_slice()).as_slice(), v.as_slice());
        }
    }

    #[test]
    fn insert_get_replace_remove_grow_and_shrink() {
        let mut t = Keyspace::new();
        assert_eq!(t.get(b"a"), None);
        assert_eq!(t.iter().count(), 0);
        for i in 0..10_000u64 {
            assert_eq!(t.insert(format!("k{i}").into_bytes(), e(i)), None);
        }
        t.check();
        assert_eq!(t.len(), 10_000);
        assert_eq!(t.insert(b"k7".to_vec(), e(70)), Some(e(7)));
        assert_eq!(t.get(b"k7"), Some(&e(70)));
        *t.get_mut(b"k8").unwrap() = e(80);
        assert_eq!(t.get(b"k8"), Some(&e(80)));
        let hashes: Vec<u64> = t.iter().map(|(h, _, _)| h).collect();
        assert!(hashes.windows(2).all(|w| w[0] <= w[1]), "hash order");
        let big = t.slots();
        for i in 0..10_000u64 {
            assert!(t.remove(format!("k{i}").as_bytes()).is_some());
            if i % 1000 == 0 {
                t.check();
            }
        }
        assert!(t.is_empty());
        assert!(t.slots() < big, "shrunk");
        assert_eq!(t.remove(b"k1"), None);
    }

    #[test]
    fn entry_api() {
        let mut t = Keyspace::new();
        match t.entry(b"a".to_vec()) {
            Slot::Vacant(v) => {
                assert_eq!(v.key(), b"a");
                *v.insert(e(1)) = e(2);
            }
            Slot::Occupied(_) => panic!("absent"),
        }
        match t.entry(b"a".to_vec()) {
            Slot::Occupied(mut o) => {
                assert_eq!((o.key(), o.get()), (&b"a"[..], &e(2)));
                *o.get_mut() = e(3);
                assert_eq!(o.remove(), e(3));
            }
            Slot::Vacant(_) => panic!("present"),
        }
        assert!(t.is_empty());
    }

    /// Operations checked against a `BTreeMap<(hash, key), entry>` model,
    /// with hashes that collide (few distinct values, all keys at one
    /// home, the largest hashes) and growth and shrinking on the way.
    #[test]
    fn behaves_like_an_ordered_map() {
        type Hasher = fn(&[u8]) -> u64;
        let hashers: [Hasher; 4] = [
            scan_hash,
            |k| scan_hash(k) % 5 + 1,
            |k| (scan_hash(k) | (u64::MAX - 15)).max(1),
            |k| if k.len() % 2 == 0 { scan_hash(k) } else { 42 },
        ];
        for seed in 1..=40u64 {
            let hash = hashers[(seed % 4) as usize];
            let mut t = Keyspace::with_hasher(hash);
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut model: BTreeMap<(u64, Vec<u8>), Entry> = BTreeMap::new();
            let keys = 1 + rng.below(600);
            for step in 0..4000u64 {
                let n = rng.below(keys);
                let key = if n.is_multiple_of(7) {
                    format!("a-long-key-past-the-inline-limit-{n}").into_bytes()
                } else {
                    format!("k{n}").into_bytes()
                };
                let h = hash(&key);
                match rng.below(10) {
                    0..=3 => assert_eq!(
                        t.insert(key.clone(), e(step)),
                        model.insert((h, key), e(step))
                    ),
                    4..=6 => assert_eq!(t.remove(&key), model.remove(&(h, key))),
                    7 => assert_eq!(t.get(&key), model.get(&(h, key))),
                    _ => {
                        let from = if rng.below(2) == 0 { rng.next() } else { h };
                        let mut got: Vec<(u64, Vec<u8>)> =
                            t.iter_from(from).map(|(h, k, _)| (h, k.to_vec())).collect();
                        got.sort();
                        let want: Vec<(u64, Vec<u8>)> = model
                            .range((from, vec![])..)
                            .map(|(p, _)| p.clone())
                            .collect();
                        assert_eq!(got, want, "seed {seed} step {step} from {from}");
                    }
                }
                if step % 97 == 0 {
                    t.check();
                }
            }
            t.check();
            let all: Vec<(u64, Vec<u8>, Entry)> = t
                .iter()
                .map(|(h, k, e)| (h, k.to_vec(), e.clone()))
                .collect();
            assert!(all.windows(2).all(|w| w[0].0 <= w[1].0));
            let mut all_sorted = all.clone();
            all_sorted.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            let want: Vec<(u64, Vec<u8>, Entry)> = model
                .iter()
                .map(|((h, k), e)| (*h, k.clone(), e.clone()))
                .collect();
            assert_eq!(all_sorted, want, "seed {seed}");
            assert_eq!(t.len(), model.len());
        }
    }

    /// SCAN's step (cmd/scan.rs): `count` keys from the cursor, then the
    /// rest of the last hash's group; the next cursor (0: done).
    fn step(items: impl Iterator<Item = (u64, Vec<u8>)>, count: usize) -> (Vec<Vec<u8>>, u64) {
        let mut out = Vec::new();
        let mut last = None;
        for (seen, (h, k)) in items.enumerate() {
            if seen >= count && last != Some(h) {
                return (out, h);
            }
            last = Some(h);
            out.push(k);
        }
        (out, 0)
    }

    /// SCAN's contract on the table: a walk by cursor (the hash of the next
    /// key, whole groups of equal hashes per step) interleaved with inserts
    /// and removes that grow and shrink the table returns every key present
    /// for the whole walk.
    #[test]
    fn a_cursor_walk_returns_every_key_present_throughout() {
        for seed in 1..=20u64 {
            let mut rng = Rng(seed);
            let hash: fn(&[u8]) -> u64 = if seed % 2 == 0 {
                |k| scan_hash(k) % 64 + 1
            } else {
                scan_hash
            };
            let mut t = Keyspace::with_hasher(hash);
            let n0 = 200 + rng.below(2000);
            for i in 0..n0 {
                let k = format!("k{i}").into_bytes();
                t.insert(k, e(i));
            }
            let mut present_throughout: std::collections::BTreeSet<Vec<u8>> =
                t.iter().map(|(_, k, _)| k.to_vec()).collect();
            let mut seen = std::collections::BTreeSet::new();
            let mut cursor = 0u64;
            let mut fresh = n0;
            loop {
                let count = 1 + rng.below(20) as usize;
                let items = t.iter_from(cursor).map(|(h, k, _)| (h, k.to_vec()));
                let (found, next) = step(items, count);
                seen.extend(found);
                // churn, enough to grow and to shrink the table
                for _ in 0..rng.below(40) {
                    if rng.below(3) == 0 {
                        let k = format!("k{}", rng.below(fresh)).into_bytes();
                        if t.remove(&k).is_some() {
                            present_throughout.remove(&k);
                        }
                    } else {
                        let k = format!("k{fresh}").into_bytes();
                        fresh += 1;
                        t.insert(k, e(fresh));
                    }
                }
                if next == 0 {
                    break;
                }
                assert!(next > cursor, "cursors only go forward");
                cursor = next;
            }
            t.check();
            for k in &present_throughout {
                assert!(seen.contains(k), "seed {seed}: {k:?} missed");
            }
        }
    }

    /// Growth of a big table is one ordered pass (printed with --nocapture).
    #[test]
    fn growth_of_a_million_keys_is_one_pass() {
        let mut t = Keyspace::new();
        let n = if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        };
        let mut worst = std::time::Duration::ZERO;
        for i in 0..n {
            let t0 = std::time::Instant::now();
            t.insert(format!("key:{i:07}").into_bytes(), e(i));
            worst = worst.max(t0.elapsed());
        }
        t.check();
        println!(
            "{n} keys: {} slots, slowest insert (a growth) {worst:?}",
            t.slots()
        );
        // growth by half again: at most 12/7 slots per key (doubling would
        // reach 16/7), plus overflow slots
        assert!(
            t.slots() * 7 <= n as usize * 12 + 7 * 1024,
            "{} slots",
            t.slots()
        );
    }
}
