//! Pub/sub, keyspace notifications, MONITOR and CLIENT REPLY: what a
//! connection receives besides the replies to its own commands.
//!
//! - [`PubSub`] is the registry, shared by every connection (one per
//!   [`crate::exec::Core`]): channel, pattern and shard channel ->
//!   subscribers, and the MONITOR clients. Each subscriber is reached
//!   through its connection's unbounded queue ([`Local`] owns the receiving
//!   end; the connection task moves what arrives into its held replies).
//!   The bytes waiting in a queue are counted: a subscriber that falls more
//!   than the `client-output-buffer-limit pubsub` hard limit behind (32 MB by
//!   default; read at each SUBSCRIBE) is disconnected, as Redis does.
//! - Nothing here is logged (Redis does not persist pub/sub either).
//! - Every message carries the log position it needs, like a held reply
//!   ([`crate::exec::Held`]): PUBLISH needs none (a message shows no state,
//!   so publishing never waits for an fsync), while a keyspace notification
//!   describes a write and needs that write's record: the subscriber's
//!   connection releases it only once the record is durable, so no client
//!   observes a write that a crash could undo. A subscriber's messages and
//!   replies are released in the order they were produced (a message queued
//!   behind a held notification waits for it).
//! - Keyspace notifications: a write calls [`Db::notify`] (`class`,
//!   `event`, key) where Redis calls `notifyKeyspaceEvent`; the events are
//!   collected in the state only while `notify-keyspace-events` enables
//!   their class and someone is subscribed (never during replay), and the
//!   execution core publishes them after each command. `new` events are
//!   found generically (a key argument that did not exist before the
//!   write and does after). Expired keys produce `expired` when a write
//!   finds them or when they are purged from memory (every 100 ms while
//!   `x` is enabled).
//! - MONITOR lines are fed with the log position of the last executed
//!   record, so they too show nothing that is not durable.
//! - CLIENT REPLY OFF | SKIP silences replies but not pub/sub messages and
//!   subscription confirmations (Redis's `CLIENT_PUSHING`).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cmd::{glob_match, ServerInfo, Spec};
use crate::db::Db;
use crate::exec::{Held, Session};
use crate::reply::Reply;
use crate::resp::Protocol;
use crate::writer::{LogQueue, SharedDb};

/// Keyspace notification classes, Redis's `NOTIFY_*` bits.
pub mod class {
    /// `K`: publish on `__keyspace@0__:<key>`.
    pub const KEYSPACE: u32 = 1;
    /// `E`: publish on `__keyevent@0__:<event>`.
    pub const KEYEVENT: u32 = 2;
    /// `g`: DEL, EXPIRE, RENAME… (type-independent).
    pub const GENERIC: u32 = 4;
    /// `$`
    pub const STRING: u32 = 8;
    /// `l`
    pub const LIST: u32 = 16;
    /// `s`
    pub const SET: u32 = 32;
    /// `h`
    pub const HASH: u32 = 64;
    /// `z`
    pub const ZSET: u32 = 128;
    /// `x`
    pub const EXPIRED: u32 = 256;
    /// `e`
    pub const EVICTED: u32 = 512;
    /// `t`
    pub const STREAM: u32 = 1024;
    /// `m`
    pub const KEY_MISS: u32 = 2048;
    /// `d`
    pub const MODULE: u32 = 8192;
    /// `n`
    pub const NEW: u32 = 16384;
}

/// The class bits of a `notify-keyspace-events` value (as CONFIG SET
/// normalizes it).
pub fn parse_classes(v: &str) -> u32 {
    v.chars()
        .map(|c| match c {
            'A' => {
                class::GENERIC
                    | class::STRING
                    | class::LIST
                    | class::SET
                    | class::HASH
                    | class::ZSET
                    | class::EXPIRED
                    | class::EVICTED
                    | class::STREAM
                    | class::MODULE
            }
            'g' => class::GENERIC,
            '$' => class::STRING,
            'l' => class::LIST,
            's' => class::SET,
            'h' => class::HASH,
            'z' => class::ZSET,
            'x' => class::EXPIRED,
            'e' => class::EVICTED,
            't' => class::STREAM,
            'm' => class::KEY_MISS,
            'd' => class::MODULE,
            'n' => class::NEW,
            'K' => class::KEYSPACE,
            'E' => class::KEYEVENT,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

/// Keyspace events of the writes being executed, kept in the state
/// ([`Db`]'s `events`) while a command runs.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// Classes collected (0: none, as during replay).
    mask: u32,
    pending: Vec<(&'static str, Vec<u8>)>,
}

impl Db {
    /// True when events of `class` are collected (to skip preparing them).
    pub fn notifies(&self, class: u32) -> bool {
        self.events.mask & class != 0
    }

    /// A keyspace event (Redis's `notifyKeyspaceEvent`): `class` is one of
    /// [`class`], `event` the event name (`set`, `lpush`, `del`…). Free
    /// unless `notify-keyspace-events` enables the class and a client is
    /// subscribed; never collected while replaying the log.
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        if self.events.mask & class != 0 {
            self.events.pending.push((event, key.to_vec()));
        }
    }
}

/// One message on its way to a subscriber.
#[derive(Debug)]
enum Msg {
    Push {
        need: u64,
        reply: Reply,
        bytes: usize,
    },
    /// The subscriber fell too far behind: close it.
    Overflow,
}

/// The state a subscriber's queue shares with its senders.
#[derive(Debug, Default)]
struct OutState {
    bytes: AtomicUsize,
    /// Cancelled when the subscriber fell too far behind.
    closed: CancellationToken,
}

/// The sending end of a connection's queue.
#[derive(Debug, Clone)]
struct Outbox {
    id: u64,
    tx: mpsc::UnboundedSender<Msg>,
    state: Arc<OutState>,
}

impl Outbox {
    fn send(&self, need: u64, reply: Reply, limit: u64) {
        if self.state.closed.is_cancelled() {
            return;
        }
        let bytes = approx_bytes(&reply);
        let total = self.state.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if limit > 0 && total as u64 > limit {
            self.state.closed.cancel();
            tracing::info!(
                client = self.id,
                queued = total,
                limit,
                "subscriber over the pubsub output buffer limit: closing it"
            );
            let _ = self.tx.send(Msg::Overflow);
            return;
        }
        let _ = self.tx.send(Msg::Push { need, reply, bytes });
    }
}

fn approx_bytes(r: &Reply) -> usize {
    match r {
        Reply::Bulk(b) => b.len() + 16,
        Reply::Status(s) => s.len() + 3,
        Reply::Array(v) | Reply::Push(v) => 8 + v.iter().map(approx_bytes).sum::<usize>(),
        _ => 16,
    }
}

/// CLIENT REPLY state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// The next `n` replies are dropped (SKIP: its own and the next one).
    Skip(u8),
}

/// Which namespace a subscription is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Channel => ("subscribe", "unsubscribe"),
            Kind::Pattern => ("psubscribe", "punsubscribe"),
            Kind::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }
}

/// What a pub/sub or connection-mode command asks the core to do (it needs
/// the connection's subscriptions and the registry).
#[derive(Debug)]
pub enum Op {
    Subscribe(Kind, Vec<Vec<u8>>),
    /// No names: every subscription of the kind.
    Unsubscribe(Kind, Vec<Vec<u8>>),
    /// Shard or not, channel, message.
    Publish(bool, Vec<u8>, Vec<u8>),
    /// PUBSUB CHANNELS / SHARDCHANNELS [pattern].
    Channels(bool, Option<Vec<u8>>),
    /// PUBSUB NUMSUB / SHARDNUMSUB channel…
    NumSub(bool, Vec<Vec<u8>>),
    NumPat,
    Monitor,
    ClientReply(ReplyMode),
    Reset,
}

/// A connection's side: its queue, its subscriptions, MONITOR and CLIENT
/// REPLY state. Part of [`Session`].
#[derive(Debug)]
pub struct Local {
    rx: mpsc::UnboundedReceiver<Msg>,
    out: Outbox,
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
    shard: BTreeSet<Vec<u8>>,
    monitor: bool,
    reply: ReplyMode,
    /// The client's address as MONITOR shows it.
    pub peer: String,
}

impl Local {
    pub fn new(id: u64) -> Local {
        let (tx, rx) = mpsc::unbounded_channel();
        Local {
            rx,
            out: Outbox {
                id,
                tx,
                state: Arc::default(),
            },
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            shard: BTreeSet::new(),
            monitor: false,
            reply: ReplyMode::On,
            peer: String::new(),
        }
    }

    /// Channels and patterns (Redis's `clientSubscriptionsCount`).
    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// True while the connection has any subscription (RESP2: subscribed
    /// mode).
    pub fn subscribed(&self) -> bool {
        self.count() + self.shard.len() > 0
    }

    /// (channels, patterns, shard channels) subscribed, and MONITOR (CLIENT
    /// LIST).
    pub fn state(&self) -> ([usize; 3], bool) {
        (
            [self.channels.len(), self.patterns.len(), self.shard.len()],
            self.monitor,
        )
    }

    /// Whether the next reply is dropped (CLIENT REPLY), advancing SKIP.
    pub fn silenced(&mut self) -> bool {
        match self.reply {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::Skip(n) => {
                self.reply = if n <= 1 {
                    ReplyMode::On
                } else {
                    ReplyMode::Skip(n - 1)
                };
                true
            }
        }
    }

    /// True once the subscriber fell too far behind: close it.
    pub fn overflowed(&self) -> bool {
        self.out.state.closed.is_cancelled()
    }

    /// Resolves once the subscriber fell too far behind (a connection
    /// blocked writing to a client that does not read selects on it).
    pub async fn overflow(&self) {
        self.out.state.closed.cancelled().await
    }

    /// Waits for the next message (the connection task selects on it).
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await.map(Delivery)
    }

    /// Moves every message already queued to `held` (before executing, so
    /// that what was published before a command precedes its reply).
    pub fn drain_into(&mut self, held: &mut VecDeque<Held>, proto: Protocol) -> bool {
        let mut open = true;
        while let Ok(m) = self.rx.try_recv() {
            open &= self.take(Delivery(m), held, proto);
        }
        open
    }

    /// Adds a message to the held replies; false when the subscriber is to
    /// be closed (it fell too far behind).
    pub fn take(&mut self, d: Delivery, held: &mut VecDeque<Held>, proto: Protocol) -> bool {
        match d.0 {
            Msg::Overflow => false,
            Msg::Push { need, reply, bytes } => {
                self.out.state.bytes.fetch_sub(bytes, Ordering::Relaxed);
                held.push_back(Held {
                    need,
                    name: "",
                    reply,
                    proto,
                });
                true
            }
        }
    }
}

/// A message received by a connection (see [`Local::take`]).
#[derive(Debug)]
pub struct Delivery(Msg);

type Subs = Vec<Outbox>;

#[derive(Debug, Default)]
struct Registry {
    channels: HashMap<Vec<u8>, Subs>,
    patterns: BTreeMap<Vec<u8>, Subs>,
    shard: HashMap<Vec<u8>, Subs>,
    monitors: Subs,
}

impl Registry {
    fn map(&mut self, kind: Kind) -> &mut dyn MapLike {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }
}

/// The two map types of [`Registry`], used alike.
trait MapLike {
    fn add(&mut self, name: Vec<u8>, o: Outbox);
    fn remove(&mut self, name: &[u8], id: u64);
}

impl MapLike for HashMap<Vec<u8>, Subs> {
    fn add(&mut self, name: Vec<u8>, o: Outbox) {
        self.entry(name).or_default().push(o);
    }
    fn remove(&mut self, name: &[u8], id: u64) {
        if let Some(v) = self.get_mut(name) {
            v.retain(|o| o.id != id);
            if v.is_empty() {
                self.remove(name);
            }
        }
    }
}

impl MapLike for BTreeMap<Vec<u8>, Subs> {
    fn add(&mut self, name: Vec<u8>, o: Outbox) {
        self.entry(name).or_default().push(o);
    }
    fn remove(&mut self, name: &[u8], id: u64) {
        if let Some(v) = self.get_mut(name) {
            v.retain(|o| o.id != id);
            if v.is_empty() {
                self.remove(name);
            }
        }
    }
}

/// The registry of subscriptions and monitors (see the module doc).
#[derive(Debug)]
pub struct PubSub {
    reg: Mutex<Registry>,
    /// Subscriptions of every kind, all connections (fast path).
    subscriptions: AtomicUsize,
    monitors: AtomicUsize,
    /// `client-output-buffer-limit pubsub` hard limit in bytes (0: none).
    limit: AtomicU64,
    /// The classes collected by the last execution.
    mask: AtomicU32,
    /// The expired-key purger runs.
    purging: AtomicBool,
}

impl Default for PubSub {
    fn default() -> PubSub {
        PubSub {
            reg: Mutex::default(),
            subscriptions: AtomicUsize::new(0),
            monitors: AtomicUsize::new(0),
            limit: AtomicU64::new(32 * 1024 * 1024),
            mask: AtomicU32::new(0),
            purging: AtomicBool::new(false),
        }
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

/// Redis's `sdscatrepr`: a quoted, escaped string.
pub fn repr(b: &[u8], out: &mut String) {
    out.push('"');
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            0x20..=0x7e => out.push(c as char),
            _ => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push('"');
}

/// The `pubsub` hard limit of a `client-output-buffer-limit` value.
fn pubsub_hard_limit(v: &str) -> Option<u64> {
    let words: Vec<&str> = v.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("pubsub"))?;
    let w = words.get(i + 1)?.to_ascii_lowercase();
    let digits = w.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = w[..digits].parse().ok()?;
    let mul = match &w[digits..] {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    Some(n.saturating_mul(mul))
}

impl PubSub {
    fn reg(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.reg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscriptions of every kind, all connections.
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// (channels, patterns) with subscribers (INFO).
    pub fn counts(&self) -> (usize, usize) {
        let r = self.reg();
        (r.channels.len(), r.patterns.len())
    }

    /// The keyspace classes to collect in this execution (0 unless someone
    /// is subscribed); stores them in the state.
    pub fn prepare(&self, db: &mut Db, server: &dyn ServerInfo) {
        let mask = if self.subscriptions() > 0 {
            let m = parse_classes(
                &server
                    .config()
                    .get("notify-keyspace-events")
                    .unwrap_or_default(),
            );
            if m & (class::KEYSPACE | class::KEYEVENT) != 0 {
                m
            } else {
                0
            }
        } else {
            0
        };
        db.events.mask = mask;
        if self.mask.load(Ordering::Relaxed) != mask {
            self.mask.store(mask, Ordering::Relaxed);
        }
    }

    /// Publishes the keyspace events collected in `db` (of writes up to log
    /// position `need`), after `fresh` (`new` events).
    pub fn flush(&self, db: &mut Db, fresh: Option<NewKeys>, need: u64) {
        if let Some(f) = fresh {
            let added: Vec<(&'static str, Vec<u8>)> = f
                .keys
                .into_iter()
                .filter(|k| db.entry(k, f.now).is_some())
                .map(|k| ("new", k))
                .collect();
            db.events.pending.splice(0..0, added);
        }
        if db.events.pending.is_empty() {
            return;
        }
        let mask = db.events.mask;
        let events = std::mem::take(&mut db.events.pending);
        for (event, key) in events {
            if mask & class::KEYSPACE != 0 {
                let mut ch = b"__keyspace@0__:".to_vec();
                ch.extend_from_slice(&key);
                self.publish_at(Kind::Channel, &ch, event.as_bytes(), need);
            }
            if mask & class::KEYEVENT != 0 {
                let mut ch = b"__keyevent@0__:".to_vec();
                ch.extend_from_slice(event.as_bytes());
                self.publish_at(Kind::Channel, &ch, &key, need);
            }
        }
    }

    /// Delivers `msg` on `channel` to its subscribers (and, unless shard,
    /// to matching patterns); how many receive it. The messages need log
    /// position `need` durable.
    fn publish_at(&self, kind: Kind, channel: &[u8], msg: &[u8], need: u64) -> usize {
        if self.subscriptions() == 0 {
            return 0;
        }
        let limit = self.limit.load(Ordering::Relaxed);
        let r = self.reg();
        let mut n = 0;
        let (map, word) = match kind {
            Kind::Shard => (&r.shard, "smessage"),
            _ => (&r.channels, "message"),
        };
        if let Some(subs) = map.get(channel) {
            let m = Reply::Push(vec![
                bulk(word),
                Reply::Bulk(channel.to_vec()),
                Reply::Bulk(msg.to_vec()),
            ]);
            for o in subs {
                o.send(need, m.clone(), limit);
                n += 1;
            }
        }
        if kind != Kind::Shard {
            for (pat, subs) in &r.patterns {
                if !glob_match(pat, channel) {
                    continue;
                }
                let m = Reply::Push(vec![
                    bulk("pmessage"),
                    Reply::Bulk(pat.clone()),
                    Reply::Bulk(channel.to_vec()),
                    Reply::Bulk(msg.to_vec()),
                ]);
                for o in subs {
                    o.send(need, m.clone(), limit);
                    n += 1;
                }
            }
        }
        n
    }

    /// Runs a pub/sub or connection-mode command for session `s`: its
    /// replies, each with whether it is a push (delivered even under CLIENT
    /// REPLY OFF).
    pub fn run(&self, op: Op, s: &mut Session, server: &dyn ServerInfo) -> Vec<(Reply, bool)> {
        match op {
            Op::Subscribe(kind, names) => {
                if let Some(l) = server
                    .config()
                    .get("client-output-buffer-limit")
                    .and_then(|v| pubsub_hard_limit(&v))
                {
                    self.limit.store(l, Ordering::Relaxed);
                }
                let l = &mut s.pubsub;
                let mut r = self.reg();
                names
                    .into_iter()
                    .map(|name| {
                        let set = match kind {
                            Kind::Channel => &mut l.channels,
                            Kind::Pattern => &mut l.patterns,
                            Kind::Shard => &mut l.shard,
                        };
                        if set.insert(name.clone()) {
                            r.map(kind).add(name.clone(), l.out.clone());
                            self.subscriptions.fetch_add(1, Ordering::Relaxed);
                        }
                        let count = if kind == Kind::Shard {
                            l.shard.len()
                        } else {
                            l.count()
                        };
                        (
                            Reply::Push(vec![
                                bulk(kind.names().0),
                                Reply::Bulk(name),
                                Reply::Int(count as i64),
                            ]),
                            true,
                        )
                    })
                    .collect()
            }
            Op::Unsubscribe(kind, names) => self.unsubscribe(&mut s.pubsub, kind, names),
            Op::Publish(shard, ch, msg) => {
                let kind = if shard { Kind::Shard } else { Kind::Channel };
                let n = self.publish_at(kind, &ch, &msg, 0);
                vec![(Reply::Int(n as i64), false)]
            }
            Op::Channels(shard, pat) => {
                let r = self.reg();
                let map = if shard { &r.shard } else { &r.channels };
                let mut names: Vec<&Vec<u8>> = map
                    .keys()
                    .filter(|c| pat.as_ref().is_none_or(|p| glob_match(p, c)))
                    .collect();
                names.sort();
                vec![(
                    Reply::Array(names.into_iter().map(|c| Reply::Bulk(c.clone())).collect()),
                    false,
                )]
            }
            Op::NumSub(shard, chans) => {
                let r = self.reg();
                let map = if shard { &r.shard } else { &r.channels };
                let mut out = Vec::with_capacity(chans.len() * 2);
                for c in chans {
                    let n = map.get(&c).map_or(0, Vec::len);
                    out.push(Reply::Bulk(c));
                    out.push(Reply::Int(n as i64));
                }
                vec![(Reply::Array(out), false)]
            }
            Op::NumPat => vec![(Reply::Int(self.reg().patterns.len() as i64), false)],
            Op::Monitor => {
                if !s.pubsub.monitor {
                    s.pubsub.monitor = true;
                    self.reg().monitors.push(s.pubsub.out.clone());
                    self.monitors.fetch_add(1, Ordering::Relaxed);
                }
                vec![(Reply::Ok, false)]
            }
            Op::ClientReply(mode) => {
                s.pubsub.reply = mode;
                vec![(Reply::Ok, false)]
            }
            Op::Reset => {
                self.disconnect(&mut s.pubsub);
                s.pubsub.reply = ReplyMode::On;
                s.conn.reset();
                vec![(Reply::Status("RESET".into()), false)]
            }
        }
    }

    fn unsubscribe(&self, l: &mut Local, kind: Kind, names: Vec<Vec<u8>>) -> Vec<(Reply, bool)> {
        let names = if names.is_empty() {
            let set = match kind {
                Kind::Channel => &l.channels,
                Kind::Pattern => &l.patterns,
                Kind::Shard => &l.shard,
            };
            set.iter().cloned().collect()
        } else {
            names
        };
        let word = kind.names().1;
        let mut r = self.reg();
        let mut out = Vec::with_capacity(names.len().max(1));
        for name in names {
            let set = match kind {
                Kind::Channel => &mut l.channels,
                Kind::Pattern => &mut l.patterns,
                Kind::Shard => &mut l.shard,
            };
            if set.remove(&name) {
                r.map(kind).remove(&name, l.out.id);
                self.subscriptions.fetch_sub(1, Ordering::Relaxed);
            }
            let count = if kind == Kind::Shard {
                l.shard.len()
            } else {
                l.count()
            };
            out.push((
                Reply::Push(vec![
                    bulk(word),
                    Reply::Bulk(name),
                    Reply::Int(count as i64),
                ]),
                true,
            ));
        }
        if out.is_empty() {
            let count = if kind == Kind::Shard {
                l.shard.len()
            } else {
                l.count()
            };
            out.push((
                Reply::Push(vec![bulk(word), Reply::Nil, Reply::Int(count as i64)]),
                true,
            ));
        }
        out
    }

    /// Forgets every subscription and the MONITOR of a connection (closed
    /// or RESET).
    pub fn disconnect(&self, l: &mut Local) {
        if !l.subscribed() && !l.monitor {
            return;
        }
        let mut r = self.reg();
        let id = l.out.id;
        for (kind, set) in [
            (Kind::Channel, &mut l.channels),
            (Kind::Pattern, &mut l.patterns),
            (Kind::Shard, &mut l.shard),
        ] {
            for name in std::mem::take(set) {
                r.map(kind).remove(&name, id);
                self.subscriptions.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if l.monitor {
            l.monitor = false;
            r.monitors.retain(|o| o.id != id);
            self.monitors.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// RESP2 subscribed mode: the error for a command not allowed there,
    /// or PING's `pong` array. None: run the command as usual.
    pub fn gate(&self, s: &Session, spec: &Spec, args: &[Vec<u8>]) -> Option<Reply> {
        if s.conn.proto != Protocol::Resp2 || !s.pubsub.subscribed() {
            return None;
        }
        match spec.name {
            "ping" if args.len() <= 2 => Some(Reply::Array(vec![
                bulk("pong"),
                Reply::Bulk(args.get(1).cloned().unwrap_or_default()),
            ])),
            "ping" | "subscribe" | "ssubscribe" | "unsubscribe" | "sunsubscribe" | "psubscribe"
            | "punsubscribe" | "quit" | "reset" => None,
            name => {
                // a container command is named with its subcommand
                let full = match (name, args.get(1)) {
                    (
                        "client" | "config" | "pubsub" | "object" | "memory" | "command",
                        Some(sub),
                    ) => {
                        format!(
                            "{name}|{}",
                            String::from_utf8_lossy(sub).to_ascii_lowercase()
                        )
                    }
                    _ => name.to_string(),
                };
                Some(Reply::Error(format!(
                    "ERR Can't execute '{full}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
                )))
            }
        }
    }

    /// The MONITOR line of a command about to run (None without monitors).
    pub fn monitor_line(&self, s: &Session, spec: &Spec, args: &[Vec<u8>]) -> Option<Reply> {
        if self.monitors.load(Ordering::Relaxed) == 0
            || matches!(spec.name, "monitor" | "config" | "debug")
        {
            return None;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = format!(
            "{}.{:06} [0 {}]",
            now.as_secs(),
            now.subsec_micros(),
            s.pubsub.peer
        );
        // Redis's redactClientCommandArgument: AUTH's arguments, HELLO's
        // AUTH username and password
        let hello_auth = (spec.name == "hello")
            .then(|| args.iter().position(|a| a.eq_ignore_ascii_case(b"auth")))
            .flatten();
        for (i, a) in args.iter().enumerate() {
            line.push(' ');
            let redact = match spec.name {
                "auth" => i > 0,
                _ => hello_auth.is_some_and(|at| at > 1 && (i == at + 1 || i == at + 2)),
            };
            if redact {
                line.push_str("\"(redacted)\"");
            } else {
                repr(a, &mut line);
            }
        }
        Some(Reply::Status(line))
    }

    /// Sends a MONITOR line to every monitor, released once log position
    /// `need` is durable.
    pub fn feed_monitors(&self, line: Reply, need: u64) {
        let limit = self.limit.load(Ordering::Relaxed);
        for o in &self.reg().monitors {
            o.send(need, line.clone(), limit);
        }
    }

    /// Starts (once) the task that purges expired keys every 100 ms while
    /// `expired` events are wanted, so that they are published without
    /// waiting for a command.
    pub fn start_purger(self: &Arc<PubSub>, db: &SharedDb, queue: &Arc<LogQueue>) {
        if self.purging.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me: Weak<PubSub> = Arc::downgrade(self);
        let (db, queue) = (db.clone(), queue.clone());
        rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(ps) = me.upgrade() else { return };
                if ps.mask.load(Ordering::Relaxed) & class::EXPIRED == 0 || ps.subscriptions() == 0
                {
                    continue;
                }
                let mut db = db.write().unwrap_or_else(|p| p.into_inner());
                let q = &mut queue.lock();
                let now = q.now();
                db.events.mask = ps.mask.load(Ordering::Relaxed);
                db.purge_expired(now, 10_000);
                ps.flush(&mut db, None, q.last_seq());
            }
        });
    }
}

/// Keys a write may create, for `new` events: its key arguments that do
/// not exist before it runs.
#[derive(Debug)]
pub struct NewKeys {
    keys: Vec<Vec<u8>>,
    now: u64,
}

impl NewKeys {
    /// None unless `new` events are collected and `spec` writes.
    pub fn probe(db: &Db, spec: &Spec, args: &[Vec<u8>], now: u64) -> Option<NewKeys> {
        if db.events.mask & class::NEW == 0 || !spec.flags.contains(crate::cmd::Flags::WRITE) {
            return None;
        }
        let keys: Vec<Vec<u8>> = spec
            .keys
            .of(args)
            .filter(|k| db.entry(k, now).is_none())
            .map(<[u8]>::to_vec)
            .collect();
        (!keys.is_empty()).then_some(NewKeys { keys, now })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_limits_parse_as_redis_reads_them() {
        assert_eq!(parse_classes("KA") & class::NEW, 0);
        assert_ne!(parse_classes("KA") & class::LIST, 0);
        assert_eq!(parse_classes("El"), class::KEYEVENT | class::LIST);
        assert_eq!(
            pubsub_hard_limit(
                "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
            ),
            Some(33554432)
        );
        assert_eq!(pubsub_hard_limit("pubsub 1mb 0 0"), Some(1 << 20));
        let mut s = String::new();
        repr(b"a\"b\\\n\x01", &mut s);
        assert_eq!(s, r#""a\"b\\\n\x01""#);
    }

    struct Server(crate::cmd::config::ConfigStore);

    impl ServerInfo for Server {
        fn info(&self, _: &[String], _: &Db, _: u64) -> String {
            String::new()
        }
        fn config(&self) -> &crate::cmd::config::ConfigStore {
            &self.0
        }
        fn reset_stats(&self) {}
        fn client_list(&self, _: Option<&[u64]>, _: u64, _: &str) -> String {
            String::new()
        }
        fn client_kill(&self, _: &crate::cmd::ClientFilter, _: u64) -> usize {
            0
        }
    }

    fn req(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    /// What a subscriber's connection holds: each message with the log
    /// position it waits for (the writer is not running here: nothing is
    /// durable beyond position 0).
    #[test]
    fn a_keyspace_notification_waits_for_its_write_and_a_message_for_nothing() {
        use crate::cmd::ConnState;
        use crate::exec::Core;
        let db: SharedDb = Arc::new(std::sync::RwLock::new(Db::new()));
        let queue = Arc::new(LogQueue::new(1, 0));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let health = Arc::new(crate::writer::Health::new(metrics, 0, "x".into()));
        let core = Core::new(db, queue, health, std::env::temp_dir(), 0);
        let server = Server(crate::cmd::config::ConfigStore::new(&[]));
        let (mut sub, mut w) = (
            Session::new(ConnState::new(1)),
            Session::new(ConnState::new(2)),
        );
        let mut out = VecDeque::new();
        let cfg = req("CONFIG SET notify-keyspace-events KE$");
        core.execute(&mut w, vec![cfg], &server, &mut out);
        let s = req("PSUBSCRIBE __key*");
        core.execute(&mut sub, vec![s, req("SUBSCRIBE plain")], &server, &mut out);
        out.clear();
        let reqs = vec![req("SET k v"), req("PUBLISH plain m"), req("SET k w")];
        core.execute(&mut w, reqs, &server, &mut out);
        let needs: Vec<u64> = out.iter().map(|h| h.need).collect();
        assert_eq!(needs, [1, 0, 2], "replies: SET, PUBLISH, SET");
        let mut held = VecDeque::new();
        sub.pubsub.drain_into(&mut held, Protocol::Resp2);
        let got: Vec<(u64, String)> = held
            .iter()
            .map(|h| {
                let Reply::Push(v) = &h.reply else {
                    panic!("{h:?}")
                };
                let Reply::Bulk(ch) = &v[v.len() - 2] else {
                    panic!()
                };
                (h.need, String::from_utf8_lossy(ch).into_owned())
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, "__keyspace@0__:k".to_string()),
                (1, "__keyevent@0__:set".to_string()),
                (0, "plain".to_string()),
                (2, "__keyspace@0__:k".to_string()),
                (2, "__keyevent@0__:set".to_string()),
            ]
        );
        assert!(
            held.iter().all(|h| h.name.is_empty()),
            "not counted as commands"
        );
    }

    #[test]
    fn events_are_collected_only_for_enabled_classes() {
        let mut db = Db::new();
        db.notify(class::STRING, "set", b"k");
        assert!(db.events.pending.is_empty(), "off by default (replay)");
        db.events.mask = class::KEYSPACE | class::LIST;
        db.notify(class::STRING, "set", b"k");
        db.notify(class::LIST, "lpush", b"l");
        assert_eq!(db.events.pending, vec![("lpush", b"l".to_vec())]);
    }
}
