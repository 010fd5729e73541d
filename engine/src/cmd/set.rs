//! SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]
//!
//! Logged with the expiry already absolute.
//!
//! ```text
//!  op 1 | flags u8 | [expire_at_ms u64 if flag 8] | key:bytes | value:bytes
//!  flags: 1 NX, 2 XX (never both), 4 GET, 8 has expiry, 16 KEEPTTL
//! ```

use super::arg::{expire_at, parse_i64, upper};
use super::codec::{put_bytes, put_u64, put_u8, quote, DecodeError, Decoder};
use super::{
    body_decoder, effect, not_integer, syntax_error, Action, Command, Effect, EffectSpec, Flags,
    Keys,
};
use crate::db::{Db, Entry, Slot, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

/// SET's NX / XX condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetCondition {
    #[default]
    Always,
    /// Only if the key does not exist.
    Nx,
    /// Only if the key exists.
    Xx,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub expire_at_ms: Option<u64>,
    pub keep_ttl: bool,
    pub condition: SetCondition,
    pub get: bool,
}

impl Set {
    /// Plain `SET key value`.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Set {
        Set {
            key: key.into(),
            value: value.into(),
            expire_at_ms: None,
            keep_ttl: false,
            condition: SetCondition::Always,
            get: false,
        }
    }
}

impl Command for Set {
    const NAME: &'static str = "set";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<Set>());

    fn parse(args: Vec<Vec<u8>>, now: u64) -> Result<Action, Reply> {
        let mut it = args.into_iter().skip(1);
        let key = it.next().expect("arity checked");
        let value = it.next().expect("arity checked");
        let rest: Vec<Vec<u8>> = it.collect();
        let opts = parse_options(&rest, OptionsOf::Set)?;
        let mut set = Set::new(key, value);
        set.condition = opts.condition;
        set.get = opts.get;
        set.keep_ttl = opts.keep_ttl;
        if let Some((unit, amount)) = opts.expire {
            set.expire_at_ms = Some(expire_ms(unit, amount, now, "set")?);
        }
        Ok(Action::write(set))
    }
}

/// Which command's options [`parse_options`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OptionsOf {
    Set,
    GetEx,
}

/// The unit of an expiry option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpireUnit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// SET's and GETEX's options as Redis 7 reads them
/// (`parseExtendedStringArgumentsOrReply`).
#[derive(Debug, Default)]
pub(crate) struct Options<'a> {
    pub condition: SetCondition,
    pub get: bool,
    pub keep_ttl: bool,
    pub persist: bool,
    pub expire: Option<(ExpireUnit, &'a [u8])>,
}

/// Reads the options; syntax errors only (the expiry value is checked by
/// [`expire_ms`] afterwards, as Redis does). A repeated EX/PX/EXAT/PXAT
/// of the same unit is allowed: the last wins.
pub(crate) fn parse_options(rest: &[Vec<u8>], of: OptionsOf) -> Result<Options<'_>, Reply> {
    let set = of == OptionsOf::Set;
    let mut o = Options::default();
    let mut i = 0;
    while i < rest.len() {
        let opt = upper(&rest[i]);
        let next = rest.get(i + 1);
        let unit = o.expire.map(|(u, _)| u);
        let other_unit = |u: ExpireUnit| unit.is_some_and(|x| x != u);
        match opt.as_slice() {
            b"NX" if set && o.condition != SetCondition::Xx => o.condition = SetCondition::Nx,
            b"XX" if set && o.condition != SetCondition::Nx => o.condition = SetCondition::Xx,
            b"GET" if set => o.get = true,
            b"KEEPTTL" if set && !o.persist && unit.is_none() => o.keep_ttl = true,
            b"PERSIST" if !set && unit.is_none() && !o.keep_ttl => o.persist = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if next.is_some() && !o.keep_ttl && !o.persist => {
                let u = match opt.as_slice() {
                    b"EX" => ExpireUnit::Ex,
                    b"PX" => ExpireUnit::Px,
                    b"EXAT" => ExpireUnit::ExAt,
                    _ => ExpireUnit::PxAt,
                };
                if other_unit(u) {
                    return Err(syntax_error());
                }
                o.expire = Some((u, next.expect("checked").as_slice()));
                i += 1;
            }
            _ => return Err(syntax_error()),
        }
        i += 1;
    }
    Ok(o)
}

/// The absolute expiry of an EX/PX/EXAT/PXAT value, or Redis's error
/// (`getExpireMillisecondsOrReply`): not an integer, <= 0, or overflowing.
pub(crate) fn expire_ms(
    unit: ExpireUnit,
    amount: &[u8],
    now: u64,
    name: &str,
) -> Result<u64, Reply> {
    if parse_i64(amount).is_none() {
        return Err(not_integer());
    }
    let at = match unit {
        ExpireUnit::Ex => expire_at(amount, 1000, now, false),
        ExpireUnit::Px => expire_at(amount, 1, now, false),
        ExpireUnit::ExAt => expire_at(amount, 1000, 0, false),
        ExpireUnit::PxAt => expire_at(amount, 1, 0, false),
    };
    at.ok_or_else(|| reply::invalid_expire(name))
}

/// The payload's flags and expiry.
struct Head {
    expire_at_ms: Option<u64>,
    keep_ttl: bool,
    condition: SetCondition,
    get: bool,
}

impl Head {
    fn decode(d: &mut Decoder<'_>) -> Result<Head, DecodeError> {
        let flags = d.u8()?;
        if flags & !31 != 0 || flags & 3 == 3 {
            return Err(DecodeError::Invalid {
                what: "SET flags",
                value: u64::from(flags),
            });
        }
        let expire_at_ms = if flags & 8 != 0 { Some(d.u64()?) } else { None };
        Ok(Head {
            expire_at_ms,
            keep_ttl: flags & 16 != 0,
            condition: match flags & 3 {
                1 => SetCondition::Nx,
                2 => SetCondition::Xx,
                _ => SetCondition::Always,
            },
            get: flags & 4 != 0,
        })
    }
}

/// Makes `entry` the string `value` with `expire_at_ms`, as a fresh entry
/// would be, reusing its string buffer when `value` fits it and fills at
/// least half of it (so a replayed value never holds more than twice its
/// bytes).
fn store(entry: &mut Entry, value: &[u8], expire_at_ms: Option<u64>) {
    match &mut entry.value {
        Value::Str(s) if value.len() <= s.capacity() && s.capacity() / 2 <= value.len() => {
            s.clear();
            s.extend_from_slice(value);
        }
        v => *v = Value::Str(value.to_vec()),
    }
    entry.set_expire_at_ms(expire_at_ms);
}

impl Effect for Set {
    const OP: u8 = 1;
    const NAME: &'static str = "SET";

    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut flags = match self.condition {
            SetCondition::Always => 0u8,
            SetCondition::Nx => 1,
            SetCondition::Xx => 2,
        };
        if self.get {
            flags |= 4;
        }
        if self.expire_at_ms.is_some() {
            flags |= 8;
        }
        if self.keep_ttl {
            flags |= 16;
        }
        put_u8(out, flags);
        if let Some(t) = self.expire_at_ms {
            put_u64(out, t);
        }
        put_bytes(out, &self.key);
        put_bytes(out, &self.value);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<Set, DecodeError> {
        let h = Head::decode(d)?;
        Ok(Set {
            expire_at_ms: h.expire_at_ms,
            key: d.bytes()?,
            value: d.bytes()?,
            keep_ttl: h.keep_ttl,
            condition: h.condition,
            get: h.get,
        })
    }

    fn replay_key(payload: &[u8]) -> Option<&[u8]> {
        let mut d = body_decoder::<Set>(payload).ok()?;
        Head::decode(&mut d).ok()?;
        d.bytes_ref().ok()
    }

    /// [`Set::apply`] without its reply, the key and value read in place:
    /// the key is copied only when inserted, and a string value replaced by
    /// one that fits its buffer (and fills at least half of it) reuses the
    /// buffer instead of a new allocation.
    fn replay(payload: &[u8], db: &mut Db, now_ms: u64) -> Result<(), DecodeError> {
        let mut d = body_decoder::<Set>(payload)?;
        let Head {
            expire_at_ms,
            keep_ttl,
            condition,
            get,
        } = Head::decode(&mut d)?;
        let key = d.bytes_ref()?;
        let value = d.bytes_ref()?;
        d.finish()?;
        if let Some(t) = expire_at_ms {
            db.track_expiry(key, t);
        }
        match db.slot(key) {
            Slot::Vacant(v) => {
                if condition != SetCondition::Xx {
                    v.insert(Entry::with_expiry(Value::Str(value.to_vec()), expire_at_ms));
                }
            }
            Slot::Occupied(mut o) if o.get().is_expired(now_ms) => {
                if condition == SetCondition::Xx {
                    o.remove();
                } else {
                    store(o.get_mut(), value, expire_at_ms);
                }
            }
            Slot::Occupied(mut o) => {
                let is_str = matches!(o.get().value, Value::Str(_));
                if (get && !is_str) || condition == SetCondition::Nx {
                    return Ok(());
                }
                let expire_at_ms = match (expire_at_ms, keep_ttl) {
                    (Some(t), _) => Some(t),
                    (None, true) => o.get().expire_at_ms(),
                    (None, false) => None,
                };
                store(o.get_mut(), value, expire_at_ms);
            }
        }
        Ok(())
    }

    fn may_fail(&self) -> bool {
        self.get
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        match db.get(&self.key, now_ms) {
            Some(Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)) if self.get => {
                Some(Reply::error(reply::WRONGTYPE))
            }
            _ => None,
        }
    }

    /// One lookup of the key.
    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let Set {
            key,
            value,
            expire_at_ms,
            keep_ttl,
            condition,
            get,
        } = self;
        if let Some(t) = expire_at_ms {
            db.track_expiry(&key, t);
        }
        let fresh = |expire_at_ms| Entry::with_expiry(Value::Str(value), expire_at_ms);
        let set_reply = if get { Reply::Nil } else { Reply::Ok };
        let notify = db
            .notifies(class::STRING | class::GENERIC)
            .then(|| key.clone());
        let mut set = true;
        let reply = match db.slot(key) {
            // absent, or expired (which is absent)
            Slot::Vacant(v) => {
                if condition == SetCondition::Xx {
                    set = false;
                    Reply::Nil
                } else {
                    v.insert(fresh(expire_at_ms));
                    set_reply
                }
            }
            Slot::Occupied(mut o) if o.get().is_expired(now_ms) => {
                if condition == SetCondition::Xx {
                    o.remove();
                    set = false;
                    Reply::Nil
                } else {
                    *o.get_mut() = fresh(expire_at_ms);
                    set_reply
                }
            }
            Slot::Occupied(mut o) => {
                let is_hash = matches!(
                    o.get().value,
                    Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)
                );
                if get && is_hash {
                    return Reply::error(reply::WRONGTYPE);
                }
                if condition == SetCondition::Nx {
                    return match (&o.get().value, get) {
                        (Value::Str(s), true) => Reply::Bulk(s.clone()),
                        _ => Reply::Nil,
                    };
                }
                let expire_at_ms = match (expire_at_ms, keep_ttl) {
                    (Some(t), _) => Some(t),
                    (None, true) => o.get().expire_at_ms(),
                    (None, false) => None,
                };
                let old = std::mem::replace(o.get_mut(), fresh(expire_at_ms));
                match (get, old.value) {
                    (true, Value::Str(s)) => Reply::Bulk(s),
                    (true, Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)) => {
                        Reply::Nil
                    }
                    (false, _) => Reply::Ok,
                }
            }
        };
        if let (true, Some(k)) = (set, notify) {
            db.notify(class::STRING, "set", &k);
            if expire_at_ms.is_some() {
                db.notify(class::GENERIC, "expire", &k);
            }
        }
        reply
    }

    /// NX sets only when the key is absent (a change); otherwise OK, or
    /// GET's old value, means the value was written.
    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        match self.condition {
            SetCondition::Nx => (super::Signal::Ok, vec![&self.key]),
            _ => (super::Signal::OkOrBulk, vec![&self.key]),
        }
    }

    fn describe(&self) -> String {
        let mut s = format!("SET {} {}", quote(&self.key), quote(&self.value));
        if let Some(t) = self.expire_at_ms {
            s.push_str(&format!(" PXAT {t}"));
        }
        if self.keep_ttl {
            s.push_str(" KEEPTTL");
        }
        match self.condition {
            SetCondition::Nx => s.push_str(" NX"),
            SetCondition::Xx => s.push_str(" XX"),
            SetCondition::Always => {}
        }
        if self.get {
            s.push_str(" GET");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{apply_payload, replay_payload, ReplayQueue};
    use crate::db::{Hash, List, Members, ZSet};

    use crate::keyspace::tests::Rng;

    const NOW_MS: u64 = 10_000;

    fn key(i: u64) -> Vec<u8> {
        // short (inline) and long (heap) keys
        if i.is_multiple_of(3) {
            format!("a-long-key-that-is-not-stored-inline-{i}").into_bytes()
        } else {
            format!("k{i}").into_bytes()
        }
    }

    /// A value of any type, with no expiry, a future one or a past one.
    fn entry(rng: &mut Rng) -> Entry {
        let n = rng.below(4) as usize + 1;
        let items = || (0..n).map(|i| format!("m{i}").into_bytes());
        let value = match rng.below(6) {
            0 | 1 => Value::Str(vec![b'v'; rng.below(200) as usize]),
            2 => Value::Hash(items().map(|m| (m, b"x".to_vec())).collect::<Hash>()),
            3 => Value::List(items().collect::<List>()),
            4 => Value::Set(items().collect::<Members>()),
            _ => Value::ZSet(items().map(|m| (m, 1.5)).collect::<ZSet>()),
        };
        let expire_at_ms = match rng.below(3) {
            0 => None,
            1 => Some(NOW_MS + 1 + rng.below(1_000)),
            _ => Some(NOW_MS - rng.below(1_000)),
        };
        Entry::with_expiry(value, expire_at_ms)
    }

    /// A SET of any variant (the parser never logs NX with XX, nor an
    /// expiry with KEEPTTL, but the payload allows it: both paths must
    /// agree on whatever decodes).
    fn set(rng: &mut Rng, keys: u64) -> Set {
        let mut s = Set::new(key(rng.below(keys)), vec![b'n'; rng.below(300) as usize]);
        s.condition = match rng.below(3) {
            0 => SetCondition::Always,
            1 => SetCondition::Nx,
            _ => SetCondition::Xx,
        };
        s.get = rng.below(3) == 0;
        s.keep_ttl = rng.below(3) == 0;
        s.expire_at_ms = match rng.below(3) {
            0 => Some(NOW_MS - 500 + rng.below(1_000)),
            _ => None,
        };
        s
    }

    /// The replay fast path leaves the state `apply` leaves, over every SET
    /// variant against keys of every type, live or expired; the expiry
    /// index too (purging at several times removes the same keys).
    #[test]
    fn replay_leaves_the_state_apply_leaves() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..200 {
            let keys = 1 + rng.below(40);
            let mut applied = Db::new();
            for i in 0..keys {
                if rng.below(4) != 0 {
                    applied.insert_entry(key(i), entry(&mut rng));
                }
            }
            let mut replayed = applied.clone();
            // the same records through a replay queue (warmed groups)
            let mut queued = applied.clone();
            let mut queue = ReplayQueue::new();
            for step in 0..100 {
                let payload = set(&mut rng, keys + 2).encode();
                let now = NOW_MS + step;
                apply_payload(&mut applied, &payload, now).unwrap();
                replay_payload(&mut replayed, &payload, now).unwrap();
                assert_eq!(applied, replayed, "round {round} step {step}");
                if queue.push(now, &payload) || step.is_multiple_of(37) {
                    queue
                        .apply(&mut queued, |db, now, p| replay_payload(db, p, now))
                        .unwrap();
                    assert_eq!(applied, queued, "round {round} step {step}: queued");
                }
            }
            queue
                .apply(&mut queued, |db, now, p| replay_payload(db, p, now))
                .unwrap();
            assert_eq!(applied, queued, "round {round}: queued");
            for t in [NOW_MS, NOW_MS + 300, NOW_MS + 700, u64::MAX] {
                let purged = applied.purge_expired(t, usize::MAX);
                assert_eq!(
                    (
                        replayed.purge_expired(t, usize::MAX),
                        queued.purge_expired(t, usize::MAX)
                    ),
                    (purged, purged),
                    "round {round}: purge at {t}"
                );
                assert_eq!(applied, replayed, "round {round}: after purge at {t}");
                assert_eq!(applied, queued, "round {round}: after purge at {t}");
            }
        }
    }

    /// A queue applies its records in order and stops at the first error,
    /// dropping the rest; it is empty afterwards.
    #[test]
    fn a_replay_queue_stops_at_the_first_error() {
        let mut queue = ReplayQueue::new();
        for i in 0..5u8 {
            let p = if i == 2 {
                vec![0xff]
            } else {
                Set::new(vec![b'k', i], vec![i]).encode()
            };
            queue.push(i, &p);
        }
        let mut db = Db::new();
        let mut seen = Vec::new();
        let e = queue.apply(&mut db, |db, i, p| {
            seen.push(i);
            replay_payload(db, p, 0)
        });
        assert_eq!(e, Err(DecodeError::UnknownOp(0xff)));
        assert_eq!(seen, [0, 1, 2]);
        assert_eq!(db.len(), 2);
        assert!(queue.is_empty());
        assert_eq!(queue.apply(&mut db, |_, _, _| Err(())), Ok(()));
    }

    /// A reused buffer never holds more than twice its value; a value that
    /// does not fit gets a new one.
    #[test]
    fn replay_reuses_a_value_buffer_only_within_bounds() {
        let mut db = Db::new();
        let cap = |db: &Db| match db.get(b"k", 0) {
            Some(Value::Str(s)) => (s.len(), s.capacity()),
            other => panic!("{other:?}"),
        };
        for (n, want_cap) in [(100, 100), (60, 100), (40, 40), (41, 41), (300, 300)] {
            let p = Set::new(b"k".to_vec(), vec![b'v'; n]).encode();
            replay_payload(&mut db, &p, 0).unwrap();
            assert_eq!(cap(&db), (n, want_cap), "value of {n} bytes");
        }
    }

    /// Every payload the general decoder refuses, the replay path refuses
    /// with the same error (and changes nothing).
    #[test]
    fn replay_refuses_what_decode_refuses() {
        let mut s = Set::new(b"key".to_vec(), b"value".to_vec());
        s.expire_at_ms = Some(5);
        s.keep_ttl = true;
        let good = s.encode();
        let mut bad: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        bad.push([&good[..], b"x"].concat());
        for flags in [3u8, 32, 64, 128, 0xff] {
            let mut p = good.clone();
            p[1] = flags;
            bad.push(p);
        }
        for p in bad {
            let mut db = Db::new();
            let want = apply_payload(&mut Db::new(), &p, 0).unwrap_err();
            assert_eq!(replay_payload(&mut db, &p, 0), Err(want), "{p:?}");
            assert!(db.is_empty());
        }
        let mut db = Db::new();
        replay_payload(&mut db, &good, 0).unwrap();
        assert_eq!(db.entry(b"key", 0).unwrap().expire_at_ms(), Some(5));
    }
}
