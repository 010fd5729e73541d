//! The state machine: a keyspace of typed values with absolute-ms expiry
//! and an expiry index. It knows nothing of files, sockets or the log; the
//! commands in [`crate::cmd`] change it, and the live server, recovery and
//! the snapshotter's replay all drive it through the same command code
//! ([`crate::cmd::apply_payload`]).
//!
//! Expired keys are invisible at once (every read and write checks the
//! expiry against its time) and removed from memory by
//! [`Db::purge_expired`]. Whoever gives a key an expiry records it with
//! [`Db::track_expiry`] ([`Db::insert_entry`] does it for whole entries).

use crate::keyspace::Keyspace;
pub use crate::keyspace::{Key, Slot};

/// Key/value (or field/value) pairs of MSET and HSET.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

pub use crate::hash::Hash;

/// A list value: elements from head (left) to tail (right). Never empty
/// in the state: a command that empties a list removes the key.
pub type List = std::collections::VecDeque<Vec<u8>>;

/// A set value: its members in byte order. Never empty in the state: a
/// command that empties a set removes the key.
pub use crate::members::Members;
pub use crate::zset::ZSet;

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(Vec<u8>),
    Hash(Hash),
    List(List),
    Set(Members),
    ZSet(ZSet),
}

impl Value {
    /// The type name TYPE and SCAN TYPE use.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }
}

/// A key holds another type than the command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

impl From<WrongType> for crate::reply::Reply {
    fn from(_: WrongType) -> crate::reply::Reply {
        crate::reply::Reply::error(crate::reply::WRONGTYPE)
    }
}

/// A key's value and its absolute expiry (8 bytes: `u64::MAX` when
/// none; read and set through [`Entry::expire_at_ms`] and
/// [`Entry::set_expire_at_ms`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Value,
    /// Wall-clock ms since the Unix epoch; the key is gone at or after it.
    expire_at: u64,
}

/// The stored expiry of a key without one. An expiry of `u64::MAX` ms (never
/// produced: expiries are at most `i64::MAX`) is stored as `u64::MAX - 1`,
/// which no clock reaches either.
const NO_EXPIRY: u64 = u64::MAX;

impl Entry {
    /// An entry without expiry.
    pub fn new(value: Value) -> Entry {
        Entry {
            value,
            expire_at: NO_EXPIRY,
        }
    }

    /// An entry with the expiry `expire_at_ms` (None: none).
    pub fn with_expiry(value: Value, expire_at_ms: Option<u64>) -> Entry {
        let mut e = Entry::new(value);
        e.set_expire_at_ms(expire_at_ms);
        e
    }

    /// Wall-clock ms since the Unix epoch at which the key is gone, if any.
    pub fn expire_at_ms(&self) -> Option<u64> {
        (self.expire_at != NO_EXPIRY).then_some(self.expire_at)
    }

    /// Sets or removes the expiry (whoever sets one also calls
    /// [`Db::track_expiry`]).
    pub fn set_expire_at_ms(&mut self, at_ms: Option<u64>) {
        self.expire_at = match at_ms {
            Some(t) => t.min(NO_EXPIRY - 1),
            None => NO_EXPIRY,
        };
    }

    /// Removes the expiry; returns it.
    pub fn take_expire_at_ms(&mut self) -> Option<u64> {
        let t = self.expire_at_ms();
        self.expire_at = NO_EXPIRY;
        t
    }

    /// True when the key is expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at <= now_ms && self.expire_at != NO_EXPIRY
    }
}

/// Longest string value. SET takes at most one RESP argument; only APPEND
/// grows a string, and it is refused past this bound, so that every value
/// fits a snapshot entry (lengths there are bounded by
/// [`crate::record::MAX_RECORD_BYTES`]).
pub const MAX_STRING_BYTES: usize = 64 * 1024 * 1024;

/// The keyspace order of SCAN (and HSCAN's order of fields): FNV-1a with a
/// final mix, fixed forever (cursors handed out must stay valid), never 0
/// (cursor 0 means "start" and "done").
pub fn scan_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h.max(1)
}

/// The key-value state: the keyspace table ([`crate::keyspace`]: hash
/// order, so SCAN can continue from a number; O(1) expected lookups) and the
/// expiry index, a heap of (expiry, key) whose items are skipped when popped
/// if the key got another expiry meanwhile.
#[derive(Debug, Clone, Default)]
pub struct Db {
    keys: Keyspace,
    expiries: std::collections::BinaryHeap<std::cmp::Reverse<(u64, Vec<u8>)>>,
    /// Keyspace events of the command executing ([`Db::notify`]).
    pub(crate) events: crate::pubsub::Events,
}

/// Two states are equal when they hold the same entries (the expiry heap is
/// bookkeeping).
impl PartialEq for Db {
    fn eq(&self, other: &Db) -> bool {
        self.keys == other.keys
    }
}

impl Eq for Db {}

impl Db {
    pub fn new() -> Db {
        Db::default()
    }

    /// Number of stored keys (including expired keys not yet removed).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of keys alive at `now_ms`.
    pub fn live_len(&self, now_ms: u64) -> usize {
        self.keys
            .iter_unordered()
            .filter(|(_, e)| !e.is_expired(now_ms))
            .count()
    }

    /// The live entry of `key` at `now_ms`.
    pub fn entry(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.keys.get(key).filter(|e| !e.is_expired(now_ms))
    }

    /// The live value of `key` at `now_ms`.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Value> {
        self.entry(key, now_ms).map(|e| &e.value)
    }

    /// The live hash at `key` (None when absent), or [`WrongType`].
    pub fn get_hash(&self, key: &[u8], now_ms: u64) -> Result<Option<&Hash>, WrongType> {
        match self.get(key, now_ms) {
            None => Ok(None),
            Some(Value::Hash(h)) => Ok(Some(h)),
            Some(_) => Err(WrongType),
        }
    }

    /// The live list at `key` (None when absent), or [`WrongType`].
    pub fn get_list(&self, key: &[u8], now_ms: u64) -> Result<Option<&List>, WrongType> {
        match self.get(key, now_ms) {
            None => Ok(None),
            Some(Value::List(l)) => Ok(Some(l)),
            Some(_) => Err(WrongType),
        }
    }

    /// The live list at `key` for changing it (None when absent), or
    /// [`WrongType`].
    pub fn list_mut(&mut self, key: &[u8], now_ms: u64) -> Result<Option<&mut List>, WrongType> {
        match self.live_mut(key, now_ms) {
            None => Ok(None),
            Some(Entry {
                value: Value::List(l),
                ..
            }) => Ok(Some(l)),
            Some(_) => Err(WrongType),
        }
    }

    /// The live set at `key` (None when absent), or [`WrongType`].
    pub fn get_set(&self, key: &[u8], now_ms: u64) -> Result<Option<&Members>, WrongType> {
        match self.get(key, now_ms) {
            None => Ok(None),
            Some(Value::Set(s)) => Ok(Some(s)),
            Some(_) => Err(WrongType),
        }
    }

    /// The live set at `key` for changing it (None when absent), or
    /// [`WrongType`]. Whoever empties it removes the key.
    pub fn set_mut(&mut self, key: &[u8], now_ms: u64) -> Result<Option<&mut Members>, WrongType> {
        match self.live_mut(key, now_ms) {
            None => Ok(None),
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => Ok(Some(s)),
            Some(_) => Err(WrongType),
        }
    }

    /// Removes `key` when it holds an empty list (a list command emptied it).
    pub fn drop_if_empty_list(&mut self, key: &[u8]) {
        if let Some(o) = self.keys.occupied(key) {
            if matches!(&o.get().value, Value::List(l) if l.is_empty()) {
                o.remove();
                self.notify(crate::pubsub::class::GENERIC, "del", key);
            }
        }
    }

    /// The live string at `key` (None when absent), or [`WrongType`].
    pub fn get_str(&self, key: &[u8], now_ms: u64) -> Result<Option<&Vec<u8>>, WrongType> {
        match self.get(key, now_ms) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(WrongType),
        }
    }

    /// Every stored entry in key order (expired ones included). Sorts
    /// references to the entries: O(n log n), 24 bytes per key.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        let mut v: Vec<(&[u8], &Entry)> = self.iter_unordered().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v.into_iter()
    }

    /// Every stored entry in no particular order (expired ones included).
    pub fn iter_unordered(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.keys.iter_unordered()
    }

    /// Stored entries (expired ones included) from SCAN position `hash` on,
    /// in SCAN order (keys of equal hash adjacent), each with its position.
    pub fn scan_from(&self, hash: u64) -> impl Iterator<Item = (u64, &[u8], &Entry)> {
        self.keys.iter_from(hash)
    }

    /// A live key picked by `seed` (the first live key from position
    /// `seed` on, wrapping around), or None.
    pub fn random_key(&self, now_ms: u64, seed: u64) -> Option<&[u8]> {
        self.scan_from(seed.max(1))
            .chain(self.scan_from(0))
            .find(|(_, _, e)| !e.is_expired(now_ms))
            .map(|(_, k, _)| k)
    }

    /// Live entries with keys strictly after `after` (all when None), in key
    /// order.
    pub fn iter_after<'a>(
        &'a self,
        after: Option<&[u8]>,
        now_ms: u64,
    ) -> impl Iterator<Item = (&'a [u8], &'a Entry)> + 'a {
        let mut v: Vec<(&[u8], &Entry)> = self
            .iter_unordered()
            .filter(|(k, e)| !e.is_expired(now_ms) && after.is_none_or(|a| *k > a))
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v.into_iter()
    }

    /// Inserts an entry as read from a snapshot.
    pub fn insert_entry(&mut self, key: Vec<u8>, entry: Entry) {
        if let Some(t) = entry.expire_at_ms() {
            self.track_expiry(&key, t);
        }
        self.keys.insert(key, entry);
    }

    /// Records that `key` expires at `at_ms` (for [`Db::purge_expired`]).
    pub fn track_expiry(&mut self, key: &[u8], at_ms: u64) {
        self.expiries.push(std::cmp::Reverse((at_ms, key.to_vec())));
    }

    /// Drops keys expired at `now_ms` from memory (they are already
    /// invisible: this changes no observable state, provided no command is
    /// applied later with an earlier time). Returns how many.
    /// At most `max` keys are removed per call (bounded pause).
    pub fn purge_expired(&mut self, now_ms: u64, max: usize) -> usize {
        let mut removed = 0;
        while removed < max {
            match self.expiries.peek() {
                Some(std::cmp::Reverse((t, _))) if *t <= now_ms => {}
                _ => break,
            }
            let Some(std::cmp::Reverse((t, key))) = self.expiries.pop() else {
                break;
            };
            // only if the key still carries this very expiry
            if let Some(o) = self.keys.occupied(&key) {
                if o.get().expire_at_ms() == Some(t) {
                    o.remove();
                    self.notify(crate::pubsub::class::EXPIRED, "expired", &key);
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Removes `key` if it is expired at `now_ms`; returns the live entry.
    pub fn live_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        let i = self.keys.find(key)?;
        if self.keys.at_mut(i).is_expired(now_ms) {
            self.keys.remove_slot(i);
            self.notify(crate::pubsub::class::EXPIRED, "expired", key);
            return None;
        }
        Some(self.keys.at_mut(i))
    }

    /// The stored slot of `key`, expired or not (one lookup for commands
    /// that check and replace, like SET). Whoever stores an expiry through
    /// it calls [`Db::track_expiry`].
    /// The key is owned or borrowed (replay decodes keys borrowed from the
    /// log's buffer: copied only when inserted).
    pub fn slot<K: AsRef<[u8]> + Into<Key>>(&mut self, key: K) -> Slot<'_, K> {
        self.keys.entry(key)
    }

    /// Loads what lookups of `keys` will read, so that their cache misses
    /// overlap ([`Keyspace::warm`]); changes nothing.
    pub fn warm(&self, keys: &[&[u8]]) {
        self.keys.warm(keys);
    }

    /// Removes `key` (live or expired); returns what it held.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.keys.remove(key)
    }

    /// Gives the stored `key` the expiry `at_ms`; false when it is absent.
    pub fn set_expire_at(&mut self, key: &[u8], at_ms: u64) -> bool {
        match self.keys.get_mut(key) {
            Some(e) => {
                e.set_expire_at_ms(Some(at_ms));
                self.track_expiry(key, at_ms);
                true
            }
            None => false,
        }
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.expiries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's entry is its value plus 8 bytes of expiry; a list needs no
    /// box (the enum's tag goes in the niche of its capacity), so `Value`
    /// is 32 bytes once every other type is at most 32 bytes.
    #[test]
    fn entry_and_value_sizes() {
        use std::mem::size_of;
        assert_eq!(size_of::<Entry>(), size_of::<Value>() + 8);
        assert_eq!(size_of::<List>(), 32);
        let largest = [
            size_of::<Vec<u8>>(),
            size_of::<Hash>(),
            size_of::<List>(),
            size_of::<Members>(),
            size_of::<ZSet>(),
        ]
        .into_iter()
        .max()
        .unwrap();
        if largest <= 32 {
            assert_eq!(size_of::<Value>(), 32);
        } else {
            assert!(size_of::<Value>() <= largest + 8);
        }
    }

    #[test]
    fn an_expiry_is_8_bytes_with_none_out_of_band() {
        let mut e = Entry::new(Value::Str(vec![]));
        assert_eq!((e.expire_at_ms(), e.is_expired(u64::MAX)), (None, false));
        for t in [0, 1, 5_000, i64::MAX as u64] {
            e.set_expire_at_ms(Some(t));
            assert_eq!(e.expire_at_ms(), Some(t));
            assert!(e.is_expired(t) && (t == 0 || !e.is_expired(t - 1)));
        }
        e.set_expire_at_ms(Some(u64::MAX));
        assert_eq!(
            e.expire_at_ms(),
            Some(u64::MAX - 1),
            "clamped, never reached"
        );
        assert_eq!(e.take_expire_at_ms(), Some(u64::MAX - 1));
        assert_eq!(e, Entry::new(Value::Str(vec![])));
        assert_eq!(
            Entry::with_expiry(Value::Str(vec![]), Some(7)).expire_at_ms(),
            Some(7)
        );
    }

    fn s(v: &str) -> Entry {
        Entry::new(Value::Str(v.as_bytes().to_vec()))
    }

    #[test]
    fn expired_keys_are_invisible_then_purged_without_changing_what_is_seen() {
        let mut db = Db::new();
        for i in 0..100u64 {
            let mut e = s("v");
            e.set_expire_at_ms(Some(1_000 + i));
            db.insert_entry(format!("k{i}").into_bytes(), e);
        }
        // k5 got a later expiry, k6 lost its expiry: both must survive
        assert!(db.set_expire_at(b"k5", 9_000));
        db.live_mut(b"k6", 0).unwrap().set_expire_at_ms(None);
        db.insert_entry(b"plain".to_vec(), s("x"));
        assert_eq!(db.get(b"k0", 999), Some(&Value::Str(b"v".to_vec())));
        assert_eq!(db.get(b"k0", 1_000), None, "expired at its absolute time");
        let before = db.clone();
        assert_eq!(db.purge_expired(1_049, 10), 10, "bounded per call");
        assert_eq!(db.purge_expired(1_049, 1_000), 38);
        assert_eq!(db.len(), 101 - 48);
        assert_eq!(db.purge_expired(10_000, 1_000), 51);
        let keys: Vec<_> = db
            .iter()
            .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
            .collect();
        assert_eq!(keys, vec!["k6", "plain"]);
        // nothing visible changed for a reader at 10 000
        assert_eq!(db.live_len(10_000), before.live_len(10_000));
        assert_eq!(db.get(b"k6", 10_000), before.get(b"k6", 10_000));
        assert_eq!(before.get(b"k5", 10_000), None);
        // an expired key is absent for writers too
        let mut db = Db::new();
        let mut e = s("v");
        e.set_expire_at_ms(Some(10));
        db.insert_entry(b"e".to_vec(), e);
        assert!(db.live_mut(b"e", 10).is_none());
        assert!(db.is_empty(), "removed on the way");
        db.insert_entry(b"a".to_vec(), s("1"));
        db.clear();
        assert_eq!((db.len(), db.purge_expired(u64::MAX, 10)), (0, 0));
    }
}
