//! The state machine: strings and hashes with absolute-ms expiry, changed
//! only by logged [`Command`]s.
//!
//! Every state-changing command is logged in a canonical encoding (below),
//! with relative expiry (`EX 10`) already turned into absolute time. Applying
//! a command is a total, deterministic function of the state, the command and
//! the record's `timestamp_ms` (used as "now" for expiry): replaying a log
//! gives exactly the state, and the replies, that were served. A command that
//! fails at apply time (`WRONGTYPE`, not an integer, overflow) changes nothing,
//! and fails the same way on replay.
//!
//! # Payload encoding (all integers little endian, `bytes` = u32 len + data)
//!
//! ```text
//!  op u8 | fields
//!  1 SET      flags u8 (1 NX, 2 XX, 4 GET, 8 has expiry, 16 KEEPTTL)
//!             [expire_at_ms u64 if flag 8] key:bytes value:bytes
//!  2 GETDEL   key:bytes
//!  3 MSET     n u32, n × (key:bytes value:bytes)
//!  4 DEL      n u32, n × key:bytes
//!  5 INCRBY   key:bytes delta i64
//!  6 APPEND   key:bytes value:bytes
//!  7 PEXPIREAT key:bytes at_ms u64
//!  8 PERSIST  key:bytes
//!  9 HSET     key:bytes n u32, n × (field:bytes value:bytes)
//! 10 HDEL     key:bytes n u32, n × field:bytes
//! 11 HINCRBY  key:bytes field:bytes delta i64
//! 12 FLUSHALL
//! ```

use std::collections::{BTreeMap, HashMap};

use crate::record::Record;

/// Key/value (or field/value) pairs of MSET and HSET.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A hash value: field -> value.
pub type Hash = BTreeMap<Vec<u8>, Vec<u8>>;

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(Vec<u8>),
    Hash(Hash),
}

/// A key's value and its absolute expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Value,
    /// Wall-clock ms since the Unix epoch; the key is gone at or after it.
    pub expire_at_ms: Option<u64>,
}

impl Entry {
    /// True when the key is expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expire_at_ms, Some(t) if t <= now_ms)
    }
}

/// SET's NX / XX condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCondition {
    Always,
    /// Only if the key does not exist.
    Nx,
    /// Only if the key exists.
    Xx,
}

/// A state-changing command, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        expire_at_ms: Option<u64>,
        keep_ttl: bool,
        condition: SetCondition,
        get: bool,
    },
    GetDel {
        key: Vec<u8>,
    },
    MSet {
        pairs: Pairs,
    },
    Del {
        keys: Vec<Vec<u8>>,
    },
    IncrBy {
        key: Vec<u8>,
        delta: i64,
    },
    Append {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// EXPIRE / PEXPIRE converted to absolute time (0 = already expired).
    PExpireAt {
        key: Vec<u8>,
        at_ms: u64,
    },
    Persist {
        key: Vec<u8>,
    },
    HSet {
        key: Vec<u8>,
        pairs: Pairs,
    },
    HDel {
        key: Vec<u8>,
        fields: Vec<Vec<u8>>,
    },
    HIncrBy {
        key: Vec<u8>,
        field: Vec<u8>,
        delta: i64,
    },
    FlushAll,
}

/// The reply to a command (converted to RESP by the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok,
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
    /// A simple status string (`+PONG`).
    Status(String),
    /// An error, with its Redis prefix (`ERR …`, `WRONGTYPE …`).
    Error(String),
}

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size";

/// Longest string value. SET takes at most one RESP argument; only APPEND
/// grows a string, and it is refused past this bound, so that every value
/// fits a snapshot entry (lengths there are bounded by
/// [`crate::record::MAX_RECORD_BYTES`]).
pub const MAX_STRING_BYTES: usize = 64 * 1024 * 1024;

/// Why a logged payload cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("record {seq}: undecodable command payload: {reason}")]
    Decode { seq: u64, reason: String },
}

// ---------------------------------------------------------------- encoding

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_list(out: &mut Vec<u8>, items: &[Vec<u8>]) {
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for item in items {
        put_bytes(out, item);
    }
}

fn put_pairs(out: &mut Vec<u8>, pairs: &[(Vec<u8>, Vec<u8>)]) {
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        put_bytes(out, k);
        put_bytes(out, v);
    }
}

struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!("needs {n} more bytes, {} left", self.buf.len()));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    /// A count whose items take at least `min_item` bytes each: bounded by
    /// what is left before anything is allocated.
    fn count(&mut self, min_item: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.buf.len() {
            return Err(format!("count {n} larger than the payload"));
        }
        Ok(n)
    }
    fn pairs(&mut self) -> Result<Pairs, String> {
        let n = self.count(8)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.bytes()?;
            v.push((k, self.bytes()?));
        }
        Ok(v)
    }
    fn list(&mut self) -> Result<Vec<Vec<u8>>, String> {
        let n = self.count(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.bytes()?);
        }
        Ok(v)
    }
}

impl Command {
    /// The canonical payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        match self {
            Command::Set {
                key,
                value,
                expire_at_ms,
                keep_ttl,
                condition,
                get,
            } => {
                out.push(1);
                let mut flags = 0u8;
                match condition {
                    SetCondition::Always => {}
                    SetCondition::Nx => flags |= 1,
                    SetCondition::Xx => flags |= 2,
                }
                if *get {
                    flags |= 4;
                }
                if expire_at_ms.is_some() {
                    flags |= 8;
                }
                if *keep_ttl {
                    flags |= 16;
                }
                out.push(flags);
                if let Some(t) = expire_at_ms {
                    out.extend_from_slice(&t.to_le_bytes());
                }
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
            }
            Command::GetDel { key } => {
                out.push(2);
                put_bytes(&mut out, key);
            }
            Command::MSet { pairs } => {
                out.push(3);
                put_pairs(&mut out, pairs);
            }
            Command::Del { keys } => {
                out.push(4);
                put_list(&mut out, keys);
            }
            Command::IncrBy { key, delta } => {
                out.push(5);
                put_bytes(&mut out, key);
                out.extend_from_slice(&delta.to_le_bytes());
            }
            Command::Append { key, value } => {
                out.push(6);
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
            }
            Command::PExpireAt { key, at_ms } => {
                out.push(7);
                put_bytes(&mut out, key);
                out.extend_from_slice(&at_ms.to_le_bytes());
            }
            Command::Persist { key } => {
                out.push(8);
                put_bytes(&mut out, key);
            }
            Command::HSet { key, pairs } => {
                out.push(9);
                put_bytes(&mut out, key);
                put_pairs(&mut out, pairs);
            }
            Command::HDel { key, fields } => {
                out.push(10);
                put_bytes(&mut out, key);
                put_list(&mut out, fields);
            }
            Command::HIncrBy { key, field, delta } => {
                out.push(11);
                put_bytes(&mut out, key);
                put_bytes(&mut out, field);
                out.extend_from_slice(&delta.to_le_bytes());
            }
            Command::FlushAll => out.push(12),
        }
        out
    }

    /// Parses a canonical payload; every length is checked against what is
    /// left, and trailing bytes are refused.
    pub fn decode(payload: &[u8]) -> Result<Command, String> {
        let mut d = Decoder { buf: payload };
        let op = d.u8()?;
        let cmd = match op {
            1 => {
                let flags = d.u8()?;
                if flags & !31 != 0 || flags & 3 == 3 {
                    return Err(format!("bad SET flags {flags:#x}"));
                }
                let expire_at_ms = if flags & 8 != 0 { Some(d.u64()?) } else { None };
                let key = d.bytes()?;
                let value = d.bytes()?;
                Command::Set {
                    key,
                    value,
                    expire_at_ms,
                    keep_ttl: flags & 16 != 0,
                    condition: match flags & 3 {
                        1 => SetCondition::Nx,
                        2 => SetCondition::Xx,
                        _ => SetCondition::Always,
                    },
                    get: flags & 4 != 0,
                }
            }
            2 => Command::GetDel { key: d.bytes()? },
            3 => Command::MSet { pairs: d.pairs()? },
            4 => Command::Del { keys: d.list()? },
            5 => Command::IncrBy {
                key: d.bytes()?,
                delta: d.u64()? as i64,
            },
            6 => Command::Append {
                key: d.bytes()?,
                value: d.bytes()?,
            },
            7 => Command::PExpireAt {
                key: d.bytes()?,
                at_ms: d.u64()?,
            },
            8 => Command::Persist { key: d.bytes()? },
            9 => Command::HSet {
                key: d.bytes()?,
                pairs: d.pairs()?,
            },
            10 => Command::HDel {
                key: d.bytes()?,
                fields: d.list()?,
            },
            11 => Command::HIncrBy {
                key: d.bytes()?,
                field: d.bytes()?,
                delta: d.u64()? as i64,
            },
            12 => Command::FlushAll,
            other => return Err(format!("unknown op {other}")),
        };
        if !d.buf.is_empty() {
            return Err(format!("{} trailing bytes", d.buf.len()));
        }
        Ok(cmd)
    }

    /// True when applying may fail (type or integer errors): worth a
    /// [`Db::precheck`].
    pub fn may_fail(&self) -> bool {
        matches!(
            self,
            Command::Set { get: true, .. }
                | Command::GetDel { .. }
                | Command::Append { .. }
                | Command::IncrBy { .. }
                | Command::HSet { .. }
                | Command::HDel { .. }
                | Command::HIncrBy { .. }
        )
    }

    /// Lower-case command name (for metrics and logs).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Set { .. } => "set",
            Command::GetDel { .. } => "getdel",
            Command::MSet { .. } => "mset",
            Command::Del { .. } => "del",
            Command::IncrBy { .. } => "incrby",
            Command::Append { .. } => "append",
            Command::PExpireAt { .. } => "pexpireat",
            Command::Persist { .. } => "persist",
            Command::HSet { .. } => "hset",
            Command::HDel { .. } => "hdel",
            Command::HIncrBy { .. } => "hincrby",
            Command::FlushAll => "flushall",
        }
    }
}

/// Parses a Redis integer the way Redis does: optional '-', digits, no '+',
/// no spaces, no leading zeros (except "0").
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || s == "-0"
    {
        return None;
    }
    s.parse().ok()
}

// ---------------------------------------------------------------- state

/// The key-value state: a hash map (one hash and one compare per lookup on
/// the hot paths); ordered views are built on demand.
///
/// Expired keys are invisible at once (every read and write checks the
/// expiry against its time) and removed from memory by
/// [`Db::purge_expired`], which pops a heap of (expiry, key). Entries of the
/// heap whose key got another expiry meanwhile are skipped when popped.
#[derive(Debug, Clone, Default)]
pub struct Db {
    map: HashMap<Vec<u8>, Entry>,
    expiries: std::collections::BinaryHeap<std::cmp::Reverse<(u64, Vec<u8>)>>,
}

/// Two states are equal when they hold the same entries (the expiry heap is
/// bookkeeping).
impl PartialEq for Db {
    fn eq(&self, other: &Db) -> bool {
        self.map == other.map
    }
}

impl Eq for Db {}

impl Db {
    pub fn new() -> Db {
        Db::default()
    }

    /// Number of stored keys (including expired keys not yet removed).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of keys alive at `now_ms`.
    pub fn live_len(&self, now_ms: u64) -> usize {
        self.map.values().filter(|e| !e.is_expired(now_ms)).count()
    }

    /// The live entry of `key` at `now_ms`.
    pub fn entry(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.map.get(key).filter(|e| !e.is_expired(now_ms))
    }

    /// The live value of `key` at `now_ms`.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Value> {
        self.entry(key, now_ms).map(|e| &e.value)
    }

    /// Every stored entry in key order (expired ones included). Sorts
    /// references to the entries: O(n log n), 16 bytes per key.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Entry)> {
        let mut v: Vec<(&Vec<u8>, &Entry)> = self.map.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v.into_iter()
    }

    /// Every stored entry in no particular order (expired ones included).
    pub fn iter_unordered(&self) -> impl Iterator<Item = (&Vec<u8>, &Entry)> {
        self.map.iter()
    }

    /// Live entries with keys strictly after `after` (all when None), in key
    /// order.
    pub fn iter_after<'a>(
        &'a self,
        after: Option<&[u8]>,
        now_ms: u64,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Entry)> + 'a {
        let mut v: Vec<(&Vec<u8>, &Entry)> = self
            .map
            .iter()
            .filter(|(k, e)| !e.is_expired(now_ms) && after.is_none_or(|a| k.as_slice() > a))
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v.into_iter()
    }

    /// Inserts an entry as read from a snapshot.
    pub fn insert_entry(&mut self, key: Vec<u8>, entry: Entry) {
        if let Some(t) = entry.expire_at_ms {
            self.track_expiry(&key, t);
        }
        self.map.insert(key, entry);
    }

    fn track_expiry(&mut self, key: &[u8], at_ms: u64) {
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
            if self
                .map
                .get(&key)
                .is_some_and(|e| e.expire_at_ms == Some(t))
            {
                self.map.remove(&key);
                removed += 1;
            }
        }
        removed
    }

    /// Applies one logged record deterministically.
    pub fn apply_logged(&mut self, record: &Record) -> Result<(), ApplyError> {
        self.apply_record(record).map(|_| ())
    }

    /// Applies one logged record and returns the reply it produces.
    pub fn apply_record(&mut self, record: &Record) -> Result<Reply, ApplyError> {
        let cmd = Command::decode(&record.payload).map_err(|reason| ApplyError::Decode {
            seq: record.seq,
            reason,
        })?;
        Ok(self.apply_owned(cmd, record.timestamp_ms))
    }

    /// Removes `key` if it is expired at `now_ms`; returns the live entry.
    fn live_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        if self.map.get(key).is_some_and(|e| e.is_expired(now_ms)) {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    /// The error `cmd` would fail with against the current state (a type
    /// or integer error), if any; used to refuse such commands before they
    /// are logged. Applying stays total: a command that passes here and fails
    /// later (the state changed meanwhile) fails identically on replay.
    pub fn precheck(&self, cmd: &Command, now_ms: u64) -> Option<Reply> {
        let wrongtype = || Some(Reply::Error(WRONGTYPE.into()));
        match cmd {
            Command::Set { key, get: true, .. } | Command::GetDel { key } => {
                match self.get(key, now_ms) {
                    Some(Value::Hash(_)) => wrongtype(),
                    _ => None,
                }
            }
            Command::Append { key, value } => match self.get(key, now_ms) {
                Some(Value::Hash(_)) => wrongtype(),
                Some(Value::Str(s)) if s.len() + value.len() > MAX_STRING_BYTES => {
                    Some(Reply::Error(STRING_TOO_LONG.into()))
                }
                _ => None,
            },
            Command::IncrBy { key, delta } => match self.get(key, now_ms) {
                Some(Value::Hash(_)) => wrongtype(),
                Some(Value::Str(s)) => match parse_i64(s) {
                    None => Some(Reply::Error(NOT_INTEGER.into())),
                    Some(n) if n.checked_add(*delta).is_none() => {
                        Some(Reply::Error(OVERFLOW.into()))
                    }
                    Some(_) => None,
                },
                None => None,
            },
            Command::HSet { key, .. } | Command::HDel { key, .. } => match self.get(key, now_ms) {
                Some(Value::Str(_)) => wrongtype(),
                _ => None,
            },
            Command::HIncrBy { key, field, delta } => match self.get(key, now_ms) {
                Some(Value::Str(_)) => wrongtype(),
                Some(Value::Hash(h)) => match h.get(field).map(|v| parse_i64(v)) {
                    Some(None) => Some(Reply::Error(HASH_NOT_INTEGER.into())),
                    Some(Some(n)) if n.checked_add(*delta).is_none() => {
                        Some(Reply::Error(OVERFLOW.into()))
                    }
                    _ => None,
                },
                None => None,
            },
            _ => None,
        }
    }

    /// [`Db::apply`] taking the command by value (no copy of keys and values
    /// on the hot paths).
    pub fn apply_owned(&mut self, cmd: Command, now_ms: u64) -> Reply {
        match cmd {
            Command::Set {
                key,
                value,
                expire_at_ms,
                keep_ttl,
                condition,
                get,
            } => self.set(key, value, expire_at_ms, keep_ttl, condition, get, now_ms),
            Command::MSet { pairs } => {
                for (k, v) in pairs {
                    self.map.insert(
                        k,
                        Entry {
                            value: Value::Str(v),
                            expire_at_ms: None,
                        },
                    );
                }
                Reply::Ok
            }
            other => self.apply(&other, now_ms),
        }
    }

    /// SET with one lookup of the key.
    #[allow(clippy::too_many_arguments)]
    fn set(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        expire_at_ms: Option<u64>,
        keep_ttl: bool,
        condition: SetCondition,
        get: bool,
        now_ms: u64,
    ) -> Reply {
        use std::collections::hash_map::Entry as Slot;
        if let Some(t) = expire_at_ms {
            self.track_expiry(&key, t);
        }
        let fresh = |expire_at_ms| Entry {
            value: Value::Str(value),
            expire_at_ms,
        };
        match self.map.entry(key) {
            // absent, or expired (which is absent)
            Slot::Vacant(v) => {
                if condition == SetCondition::Xx {
                    return Reply::Nil;
                }
                v.insert(fresh(expire_at_ms));
                if get {
                    Reply::Nil
                } else {
                    Reply::Ok
                }
            }
            Slot::Occupied(mut o) if o.get().is_expired(now_ms) => {
                if condition == SetCondition::Xx {
                    o.remove();
                    return Reply::Nil;
                }
                *o.get_mut() = fresh(expire_at_ms);
                if get {
                    Reply::Nil
                } else {
                    Reply::Ok
                }
            }
            Slot::Occupied(mut o) => {
                let is_hash = matches!(o.get().value, Value::Hash(_));
                if get && is_hash {
                    return Reply::Error(WRONGTYPE.into());
                }
                if condition == SetCondition::Nx {
                    return match (&o.get().value, get) {
                        (Value::Str(s), true) => Reply::Bulk(s.clone()),
                        _ => Reply::Nil,
                    };
                }
                let expire_at_ms = match (expire_at_ms, keep_ttl) {
                    (Some(t), _) => Some(t),
                    (None, true) => o.get().expire_at_ms,
                    (None, false) => None,
                };
                let old = std::mem::replace(o.get_mut(), fresh(expire_at_ms));
                match (get, old.value) {
                    (true, Value::Str(s)) => Reply::Bulk(s),
                    (true, Value::Hash(_)) => Reply::Nil,
                    (false, _) => Reply::Ok,
                }
            }
        }
    }

    /// Applies `cmd` with `now_ms` as the current time.
    pub fn apply(&mut self, cmd: &Command, now_ms: u64) -> Reply {
        match cmd {
            Command::Set {
                key,
                value,
                expire_at_ms,
                keep_ttl,
                condition,
                get,
            } => self.set(
                key.clone(),
                value.clone(),
                *expire_at_ms,
                *keep_ttl,
                *condition,
                *get,
                now_ms,
            ),
            Command::GetDel { key } => match self.live_mut(key, now_ms) {
                None => Reply::Nil,
                Some(Entry {
                    value: Value::Hash(_),
                    ..
                }) => Reply::Error(WRONGTYPE.into()),
                Some(_) => match self.map.remove(key.as_slice()) {
                    Some(Entry {
                        value: Value::Str(s),
                        ..
                    }) => Reply::Bulk(s),
                    _ => Reply::Nil,
                },
            },
            Command::MSet { pairs } => {
                for (k, v) in pairs {
                    self.map.insert(
                        k.clone(),
                        Entry {
                            value: Value::Str(v.clone()),
                            expire_at_ms: None,
                        },
                    );
                }
                Reply::Ok
            }
            Command::Del { keys } => {
                let mut n = 0;
                for k in keys {
                    if self.live_mut(k, now_ms).is_some() {
                        self.map.remove(k.as_slice());
                        n += 1;
                    }
                }
                Reply::Int(n)
            }
            Command::IncrBy { key, delta } => match self.live_mut(key, now_ms) {
                None => {
                    self.map.insert(
                        key.clone(),
                        Entry {
                            value: Value::Str(delta.to_string().into_bytes()),
                            expire_at_ms: None,
                        },
                    );
                    Reply::Int(*delta)
                }
                Some(Entry {
                    value: Value::Hash(_),
                    ..
                }) => Reply::Error(WRONGTYPE.into()),
                Some(Entry {
                    value: Value::Str(s),
                    ..
                }) => {
                    let Some(cur) = parse_i64(s) else {
                        return Reply::Error(NOT_INTEGER.into());
                    };
                    let Some(new) = cur.checked_add(*delta) else {
                        return Reply::Error(OVERFLOW.into());
                    };
                    *s = new.to_string().into_bytes();
                    Reply::Int(new)
                }
            },
            Command::Append { key, value } => match self.live_mut(key, now_ms) {
                None => {
                    self.map.insert(
                        key.clone(),
                        Entry {
                            value: Value::Str(value.clone()),
                            expire_at_ms: None,
                        },
                    );
                    Reply::Int(value.len() as i64)
                }
                Some(Entry {
                    value: Value::Hash(_),
                    ..
                }) => Reply::Error(WRONGTYPE.into()),
                Some(Entry {
                    value: Value::Str(s),
                    ..
                }) => {
                    if s.len() + value.len() > MAX_STRING_BYTES {
                        return Reply::Error(STRING_TOO_LONG.into());
                    }
                    s.extend_from_slice(value);
                    Reply::Int(s.len() as i64)
                }
            },
            Command::PExpireAt { key, at_ms } => {
                if self.live_mut(key, now_ms).is_none() {
                    return Reply::Int(0);
                }
                if *at_ms <= now_ms {
                    self.map.remove(key.as_slice());
                } else if let Some(e) = self.map.get_mut(key.as_slice()) {
                    e.expire_at_ms = Some(*at_ms);
                    self.track_expiry(key, *at_ms);
                }
                Reply::Int(1)
            }
            Command::Persist { key } => match self.live_mut(key, now_ms) {
                Some(e) if e.expire_at_ms.is_some() => {
                    e.expire_at_ms = None;
                    Reply::Int(1)
                }
                _ => Reply::Int(0),
            },
            Command::HSet { key, pairs } => {
                let h = match self.live_mut(key, now_ms) {
                    None => {
                        let e = self.map.entry(key.clone()).or_insert(Entry {
                            value: Value::Hash(Hash::new()),
                            expire_at_ms: None,
                        });
                        match &mut e.value {
                            Value::Hash(h) => h,
                            Value::Str(_) => unreachable!("just inserted a hash"),
                        }
                    }
                    Some(Entry {
                        value: Value::Hash(h),
                        ..
                    }) => h,
                    Some(_) => return Reply::Error(WRONGTYPE.into()),
                };
                let mut added = 0;
                for (f, v) in pairs {
                    if h.insert(f.clone(), v.clone()).is_none() {
                        added += 1;
                    }
                }
                Reply::Int(added)
            }
            Command::HDel { key, fields } => {
                let (removed, now_empty) = match self.live_mut(key, now_ms) {
                    None => return Reply::Int(0),
                    Some(Entry {
                        value: Value::Hash(h),
                        ..
                    }) => {
                        let n = fields.iter().filter(|f| h.remove(*f).is_some()).count();
                        (n as i64, h.is_empty())
                    }
                    Some(_) => return Reply::Error(WRONGTYPE.into()),
                };
                if now_empty {
                    self.map.remove(key.as_slice());
                }
                Reply::Int(removed)
            }
            Command::HIncrBy { key, field, delta } => {
                let cur = match self.live_mut(key, now_ms) {
                    None => None,
                    Some(Entry {
                        value: Value::Hash(h),
                        ..
                    }) => h.get(field).cloned(),
                    Some(_) => return Reply::Error(WRONGTYPE.into()),
                };
                let cur = match cur {
                    None => 0,
                    Some(v) => match parse_i64(&v) {
                        Some(n) => n,
                        None => return Reply::Error(HASH_NOT_INTEGER.into()),
                    },
                };
                let Some(new) = cur.checked_add(*delta) else {
                    return Reply::Error(OVERFLOW.into());
                };
                let e = self.map.entry(key.clone()).or_insert(Entry {
                    value: Value::Hash(Hash::new()),
                    expire_at_ms: None,
                });
                if let Value::Hash(h) = &mut e.value {
                    h.insert(field.clone(), new.to_string().into_bytes());
                }
                Reply::Int(new)
            }
            Command::FlushAll => {
                self.map.clear();
                Reply::Ok
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn set(k: &str, v: &str) -> Command {
        Command::Set {
            key: b(k),
            value: b(v),
            expire_at_ms: None,
            keep_ttl: false,
            condition: SetCondition::Always,
            get: false,
        }
    }

    fn all_commands() -> Vec<Command> {
        vec![
            set("a", "1"),
            Command::Set {
                key: b("t"),
                value: b("x"),
                expire_at_ms: Some(5_000),
                keep_ttl: false,
                condition: SetCondition::Nx,
                get: true,
            },
            Command::Set {
                key: b("a"),
                value: b("2"),
                expire_at_ms: None,
                keep_ttl: true,
                condition: SetCondition::Xx,
                get: false,
            },
            Command::GetDel { key: b("t") },
            Command::MSet {
                pairs: vec![(b("m1"), b("v1")), (b("m2"), b(""))],
            },
            Command::Del {
                keys: vec![b("m1"), b("nope")],
            },
            Command::IncrBy {
                key: b("n"),
                delta: -7,
            },
            Command::Append {
                key: b("a"),
                value: b("zz"),
            },
            Command::PExpireAt {
                key: b("m2"),
                at_ms: 9_000,
            },
            Command::Persist { key: b("m2") },
            Command::HSet {
                key: b("h"),
                pairs: vec![(b("f"), b("1")), (b("g"), b("2"))],
            },
            Command::HDel {
                key: b("h"),
                fields: vec![b("g")],
            },
            Command::HIncrBy {
                key: b("h"),
                field: b("f"),
                delta: i64::MIN,
            },
            Command::FlushAll,
        ]
    }

    #[test]
    fn every_command_round_trips_and_truncation_is_refused() {
        for c in all_commands() {
            let p = c.encode();
            assert_eq!(Command::decode(&p).unwrap(), c);
            for cut in 0..p.len() {
                assert!(Command::decode(&p[..cut]).is_err(), "{c:?} cut {cut}");
            }
            let mut longer = p.clone();
            longer.push(0);
            assert!(Command::decode(&longer).is_err());
        }
        assert!(Command::decode(&[99]).is_err());
        // a huge count is refused before allocating
        let mut p = vec![4u8];
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Command::decode(&p).is_err());
    }

    #[test]
    fn random_payloads_never_panic_and_damaged_ones_are_refused_or_valid() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (rnd() % 48) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| (rnd() % 7) as u8).collect();
            if let Some(first) = p.first_mut() {
                *first = 1 + (rnd() % 12) as u8;
            }
            if let Ok(c) = Command::decode(&p) {
                // anything that decodes is canonical
                assert_eq!(c.encode(), p);
                Db::new().apply(&c, 0);
            }
        }
    }

    #[test]
    fn replay_is_deterministic_and_gives_the_served_replies() {
        let mut live = Db::new();
        let mut replies = Vec::new();
        let mut records = Vec::new();
        for (i, c) in all_commands().into_iter().enumerate() {
            let ts = 1_000 + i as u64 * 1_000;
            replies.push(live.apply(&c, ts));
            records.push(Record {
                seq: i as u64 + 1,
                timestamp_ms: ts,
                payload: c.encode(),
            });
            // replay the prefix into a fresh db: same state
            let mut replayed = Db::new();
            for r in &records {
                replayed.apply_logged(r).unwrap();
            }
            assert_eq!(replayed, live);
        }
        let mut again = Db::new();
        let replayed: Vec<Reply> = records
            .iter()
            .map(|r| again.apply_record(r).unwrap())
            .collect();
        assert_eq!(replayed, replies);
        let bad = Record {
            seq: 9,
            timestamp_ms: 0,
            payload: vec![200],
        };
        assert!(matches!(
            again.apply_logged(&bad),
            Err(ApplyError::Decode { seq: 9, .. })
        ));
    }

    /// APPEND cannot grow a string past what a snapshot entry holds (a
    /// snapshot written of such a state could not be read back).
    #[test]
    fn append_is_refused_past_the_string_bound_and_snapshots_stay_readable() {
        let mut db = Db::new();
        let chunk = vec![b'x'; 16 * 1024 * 1024];
        let append = Command::Append {
            key: b("big"),
            value: chunk.clone(),
        };
        let mut replies = Vec::new();
        for _ in 0..6 {
            if let Some(e) = db.precheck(&append, 0) {
                replies.push(e);
            }
            replies.push(db.apply(&append, 0));
        }
        let len = |db: &Db| match db.get(b"big", 0) {
            Some(Value::Str(s)) => s.len(),
            other => panic!("{other:?}"),
        };
        assert_eq!(len(&db), MAX_STRING_BYTES);
        assert_eq!(
            replies.last(),
            Some(&Reply::Error(STRING_TOO_LONG.into())),
            "refused, unchanged"
        );
        assert_eq!(
            db.precheck(&append, 0),
            Some(Reply::Error(STRING_TOO_LONG.into()))
        );
        let dir = tempfile::tempdir().unwrap();
        let p = crate::snapshot::write_snapshot(dir.path(), 1, &db).unwrap();
        let (_, back) = crate::snapshot::read_snapshot(&p).unwrap();
        assert_eq!(back, db);
    }

    #[test]
    fn string_semantics() {
        let mut db = Db::new();
        assert_eq!(db.apply(&set("k", "v"), 0), Reply::Ok);
        let nx = Command::Set {
            key: b("k"),
            value: b("w"),
            expire_at_ms: None,
            keep_ttl: false,
            condition: SetCondition::Nx,
            get: false,
        };
        assert_eq!(db.apply(&nx, 0), Reply::Nil);
        let get = Command::Set {
            key: b("k"),
            value: b("w"),
            expire_at_ms: Some(100),
            keep_ttl: false,
            condition: SetCondition::Always,
            get: true,
        };
        assert_eq!(db.apply(&get, 0), Reply::Bulk(b("v")));
        assert_eq!(db.get(b"k", 99), Some(&Value::Str(b("w"))));
        assert_eq!(db.get(b"k", 100), None, "expired at its absolute time");
        // an expired key is absent for writes too
        assert_eq!(
            db.apply(
                &Command::Append {
                    key: b("k"),
                    value: b("x")
                },
                100
            ),
            Reply::Int(1)
        );
        assert_eq!(
            db.apply(
                &Command::IncrBy {
                    key: b("k"),
                    delta: 1
                },
                100
            ),
            Reply::Error(NOT_INTEGER.into())
        );
        db.apply(&set("n", "9223372036854775807"), 0);
        assert_eq!(
            db.apply(
                &Command::IncrBy {
                    key: b("n"),
                    delta: 1
                },
                0
            ),
            Reply::Error(OVERFLOW.into())
        );
        assert_eq!(
            db.apply(
                &Command::IncrBy {
                    key: b("n"),
                    delta: -7
                },
                0
            ),
            Reply::Int(9223372036854775800)
        );
        assert_eq!(
            db.apply(
                &Command::PExpireAt {
                    key: b("n"),
                    at_ms: 0
                },
                5
            ),
            Reply::Int(1)
        );
        assert_eq!(db.get(b"n", 5), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"-12"), Some(-12));
    }

    #[test]
    fn expired_keys_are_purged_from_memory_without_changing_what_is_seen() {
        let mut db = Db::new();
        for i in 0..100u64 {
            db.apply_owned(
                Command::Set {
                    key: format!("k{i}").into_bytes(),
                    value: b("v"),
                    expire_at_ms: Some(1_000 + i),
                    keep_ttl: false,
                    condition: SetCondition::Always,
                    get: false,
                },
                0,
            );
        }
        // k5 got a later expiry, k6 lost its expiry: both must survive
        db.apply(
            &Command::PExpireAt {
                key: b("k5"),
                at_ms: 9_000,
            },
            0,
        );
        db.apply(&Command::Persist { key: b("k6") }, 0);
        db.apply(&set("plain", "x"), 0);
        let before = db.clone();
        assert_eq!(db.purge_expired(1_049, 10), 10, "bounded per call");
        assert_eq!(db.purge_expired(1_049, 1_000), 38);
        assert_eq!(db.len(), 101 - 48);
        assert_eq!(db.purge_expired(10_000, 1_000), 51);
        let mut keys: Vec<_> = db
            .iter()
            .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
            .collect();
        keys.sort();
        assert_eq!(keys, vec!["k6", "plain"]);
        // nothing visible changed for a reader at 10 000
        assert_eq!(db.live_len(10_000), before.live_len(10_000));
        assert_eq!(db.get(b"k6", 10_000), before.get(b"k6", 10_000));
        // k5 expired at 9 000 and is gone from both views
        assert_eq!(before.get(b"k5", 10_000), None);
    }

    #[test]
    fn set_variants_follow_redis() {
        let setx = |k: &str, v: &str, exp: Option<u64>, keep_ttl, condition, get| Command::Set {
            key: b(k),
            value: b(v),
            expire_at_ms: exp,
            keep_ttl,
            condition,
            get,
        };
        let mut db = Db::new();
        use SetCondition::*;
        // XX on an expired key: absent, nothing set, the stale entry is gone
        db.apply_owned(setx("e", "1", Some(10), false, Always, false), 0);
        assert_eq!(
            db.apply_owned(setx("e", "2", None, false, Xx, true), 10),
            Reply::Nil
        );
        assert_eq!(db.len(), 0);
        // NX on an expired key sets it, without the old TTL even with KEEPTTL
        db.apply_owned(setx("e", "1", Some(10), false, Always, false), 0);
        assert_eq!(
            db.apply_owned(setx("e", "2", None, true, Nx, true), 10),
            Reply::Nil
        );
        assert_eq!(db.entry(b"e", 10).unwrap().expire_at_ms, None);
        // KEEPTTL keeps a live TTL; plain SET clears it
        db.apply_owned(setx("t", "1", Some(100), false, Always, false), 0);
        assert_eq!(
            db.apply_owned(setx("t", "2", None, true, Xx, false), 0),
            Reply::Ok
        );
        assert_eq!(db.entry(b"t", 0).unwrap().expire_at_ms, Some(100));
        assert_eq!(
            db.apply_owned(setx("t", "3", None, false, Always, true), 0),
            Reply::Bulk(b("2"))
        );
        assert_eq!(db.entry(b"t", 0).unwrap().expire_at_ms, None);
        // NX on a live key: unchanged, GET shows the old value
        assert_eq!(
            db.apply_owned(setx("t", "4", None, false, Nx, true), 0),
            Reply::Bulk(b("3"))
        );
        assert_eq!(db.get(b"t", 0), Some(&Value::Str(b("3"))));
        // a hash: SET GET is a type error and changes nothing; SET overwrites
        db.apply_owned(
            Command::HSet {
                key: b("h"),
                pairs: vec![(b("f"), b("v"))],
            },
            0,
        );
        assert_eq!(
            db.apply_owned(setx("h", "s", None, false, Always, true), 0),
            Reply::Error(WRONGTYPE.into())
        );
        assert!(matches!(db.get(b"h", 0), Some(Value::Hash(_))));
        assert_eq!(
            db.apply_owned(setx("h", "s", None, false, Always, false), 0),
            Reply::Ok
        );
        assert_eq!(db.get(b"h", 0), Some(&Value::Str(b("s"))));
        // apply (by reference) is the same function
        let mut other = Db::new();
        other.apply(&setx("x", "1", None, false, Always, false), 0);
        assert_eq!(other.get(b"x", 0), Some(&Value::Str(b("1"))));
    }

    #[test]
    fn hash_semantics_and_type_errors() {
        let mut db = Db::new();
        let hs = Command::HSet {
            key: b("h"),
            pairs: vec![(b("a"), b("1")), (b("b"), b("x"))],
        };
        assert_eq!(db.apply(&hs, 0), Reply::Int(2));
        assert_eq!(db.apply(&hs, 0), Reply::Int(0));
        assert_eq!(
            db.apply(
                &Command::HIncrBy {
                    key: b("h"),
                    field: b("b"),
                    delta: 1
                },
                0
            ),
            Reply::Error(HASH_NOT_INTEGER.into())
        );
        assert_eq!(
            db.apply(
                &Command::HIncrBy {
                    key: b("h"),
                    field: b("c"),
                    delta: 5
                },
                0
            ),
            Reply::Int(5)
        );
        assert_eq!(
            db.apply(
                &Command::IncrBy {
                    key: b("h"),
                    delta: 1
                },
                0
            ),
            Reply::Error(WRONGTYPE.into())
        );
        assert_eq!(
            db.apply(&Command::GetDel { key: b("h") }, 0),
            Reply::Error(WRONGTYPE.into())
        );
        db.apply(&set("s", "v"), 0);
        assert_eq!(db.apply(&hs.clone(), 0), Reply::Int(0));
        let hs_s = Command::HSet {
            key: b("s"),
            pairs: vec![(b("a"), b("1"))],
        };
        assert_eq!(db.apply(&hs_s, 0), Reply::Error(WRONGTYPE.into()));
        let hdel = Command::HDel {
            key: b("h"),
            fields: vec![b("a"), b("b"), b("c"), b("zz")],
        };
        assert_eq!(db.apply(&hdel, 0), Reply::Int(3));
        assert_eq!(db.get(b"h", 0), None, "an emptied hash is removed");
        assert_eq!(
            db.apply(
                &Command::Del {
                    keys: vec![b("s"), b("s")]
                },
                0
            ),
            Reply::Int(1)
        );
        assert!(db.is_empty());
    }
}
