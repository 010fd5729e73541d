//! Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP; later
//! BZPOPMIN/BZPOPMAX/BZMPOP): a client that finds nothing to pop waits
//! until a write of another client gives it something, or its timeout.
//!
//! # Model
//! A blocking command parses into [`Action::Block`](crate::cmd::Action)
//! holding a [`Block`]: a [`Blocking`] request and its timeout. The
//! execution core ([`crate::exec`]) first tries it against the state like
//! its non-blocking variant ([`Blocking::attempt`]): served now, it is an
//! ordinary write ([`Served`], logged as the effect of the pop it is: `Pop`,
//! `LMove`, `LMPop`); an error is an error; when there is nothing to pop the
//! connection registers a waiter here (key -> FIFO of connection ids) and
//! stops executing the requests after it (they wait in the session, like
//! Redis's query buffer of a blocked client).
//!
//! Every write executed while someone waits notes the keys it may have
//! filled ([`Ready::note`], under the state's lock, the same pass that
//! computes watched keys); after each top-level command (an EXEC as a
//! whole, as Redis does) the core serves the waiters of those keys
//! ([`Registry::serve`]): key by key in the order they were noted, each
//! key's waiters first-come first-served while the key has something for
//! them. A serve is applied and logged as one more effect in that same
//! execution (the push and the pops it feeds are one group commit), and its
//! reply goes to the waiting connection through a oneshot as a [`Held`]
//! reply tagged with its record's position: the waiting client is answered
//! only once its pop is durable, like any write. A serve that writes (BLMOVE
//! pushing into its destination) notes that key in turn, so chains of
//! BLMOVEs are served in the same execution. A log replay never waits: it
//! applies the recorded pops; nothing is logged for a timeout.
//!
//! Inside MULTI/EXEC (and scripts) a blocking command is its non-blocking
//! variant: [`Block::now`] gives the write, the error, or its empty reply
//! when there is nothing to pop.
//!
//! The connection task waits for its reply, its deadline (a tokio timer;
//! at the deadline it takes its waiter out, or the reply served in the
//! meantime), CLIENT UNBLOCK (which answers through the same oneshot), or
//! its socket closing (the waiter is removed). A blocked connection keeps
//! reading its socket (to see it close) but executes nothing.
//!
//! Semantics follow Redis 7.0: a waiter is served from the key that became
//! ready; a key that becomes another type keeps its waiters blocked; a
//! BLMOVE whose destination holds another type when it is served gets
//! WRONGTYPE (unblocked, nothing popped) and the next waiter is served.
//!
//! # Adding a blocking command (BZPOPMIN, BZPOPMAX, BZMPOP)
//! One file in `cmd/` (like `cmd/blist.rs`): the [`Command`] parses the
//! timeout with [`parse_timeout`] and returns
//! `Action::Block(Block::new(op, timeout))`, where `op` implements
//! [`Blocking`]: its keys; `attempt` looks at the state (`ready: None` at
//! the command's own execution: every key in order, WRONGTYPE on the first
//! key of another type; `Some(key)`: the key that just became ready, served
//! only when it holds the right type with elements) and returns
//! [`Attempt::Serve`] with the pop's effect (e.g. the zset pop effect for
//! that key), the keys it changes and `prefix: Some(key)` to answer
//! `[key, member, score]`; the default `timeout_reply` (a null array) fits. Nothing in
//! the core changes: ZADD and friends already note their keys.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::cmd::{Action, Flags, Spec, Write};
use crate::db::Db;
use crate::exec::Held;
use crate::reply::Reply;
use crate::resp::Protocol;

/// `CLIENT UNBLOCK id ERROR`'s reply to the unblocked client.
pub const UNBLOCKED: &str = "UNBLOCKED client unblocked via CLIENT UNBLOCK";

/// A blocking request as a command parses it: what it waits for and how it
/// is served (generic over lists, sorted sets, …).
pub trait Blocking: Send + std::fmt::Debug + 'static {
    /// The keys waited on, in the command's order (duplicates allowed).
    fn keys(&self) -> &[Vec<u8>];
    /// Tries to serve against `db`. `ready`: the key that just became
    /// ready (`None`: the command's own execution, any of its keys).
    fn attempt(&self, db: &Db, now_ms: u64, ready: Option<&[u8]>) -> Attempt;
    /// The reply to a blocked client that was not served (its timeout,
    /// CLIENT UNBLOCK): Redis 7.0 answers a null array to every blocked
    /// list or sorted-set pop.
    fn timeout_reply(&self) -> Reply {
        Reply::NilArray
    }
    /// The reply when there is nothing to pop and blocking is not allowed
    /// (inside MULTI/EXEC or a script): the non-blocking variant's (BLMOVE:
    /// a null bulk).
    fn empty_reply(&self) -> Reply {
        self.timeout_reply()
    }
}

/// What [`Blocking::attempt`] found.
#[derive(Debug)]
pub enum Attempt {
    /// Nothing to serve: (keep) waiting.
    Wait,
    /// Answered with this reply (an error such as WRONGTYPE), nothing
    /// applied or logged.
    Fail(Reply),
    /// Served by this write.
    Serve(Served),
}

/// A served blocking pop: the effect logged and applied (the plain pop's
/// effect, so a replay applies the pop and never waits) and how its reply
/// is shaped for the blocking command.
#[derive(Debug)]
pub struct Served {
    pub effect: Box<dyn Write>,
    /// The keys the effect changes (WATCH; keys it may fill are served in
    /// turn).
    pub keys: Vec<Vec<u8>>,
    /// Prepended to the effect's reply (BLPOP: `[key, element]` from the
    /// pop's `element`).
    pub prefix: Option<Vec<u8>>,
}

impl Write for Served {
    fn encode_into(&self, out: &mut Vec<u8>) {
        self.effect.encode_into(out);
    }
    fn may_fail(&self) -> bool {
        self.effect.may_fail()
    }
    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        self.effect.precheck(db, now_ms)
    }
    fn settle(&mut self, db: &Db, now_ms: u64) {
        self.effect.settle(db, now_ms)
    }
    fn signal(&self) -> (crate::cmd::Signal, Vec<&[u8]>) {
        self.effect.signal()
    }
    fn resolve(self: Box<Self>, db: &Db, now_ms: u64) -> crate::cmd::Resolved {
        let Served {
            effect,
            keys,
            prefix,
        } = *self;
        match effect.resolve(db, now_ms) {
            crate::cmd::Resolved::Write(effect) => crate::cmd::Resolved::Write(Box::new(Served {
                effect,
                keys,
                prefix,
            })),
            r @ crate::cmd::Resolved::Reply(_) => r,
        }
    }
    fn resolve_growth(&self) -> usize {
        self.effect.resolve_growth()
    }
    fn apply_boxed(self: Box<Self>, db: &mut Db, now_ms: u64) -> Reply {
        let reply = self.effect.apply_boxed(db, now_ms);
        match (self.prefix, reply) {
            (None, r) => r,
            (Some(_), e @ (Reply::Error(_) | Reply::ErrorBytes(_))) => e,
            (Some(k), Reply::Array(mut v)) => {
                v.insert(0, Reply::Bulk(k));
                Reply::Array(v)
            }
            (Some(k), r) => Reply::Array(vec![Reply::Bulk(k), r]),
        }
    }
    fn describe(&self) -> String {
        self.effect.describe()
    }
}

/// A blocking command as parsed: the request and its timeout.
#[derive(Debug)]
pub struct Block {
    pub op: Box<dyn Blocking>,
    /// None: wait forever (a timeout of 0).
    pub timeout: Option<Duration>,
}

impl Block {
    pub fn new(op: impl Blocking, timeout: Option<Duration>) -> Block {
        Block {
            op: Box::new(op),
            timeout,
        }
    }

    /// The non-blocking variant (inside MULTI/EXEC, scripts): served now,
    /// an error, or the timeout reply when there is nothing to pop.
    pub fn now(&self, db: &Db, now_ms: u64) -> Action {
        match self.op.attempt(db, now_ms, None) {
            Attempt::Serve(s) => Action::Write(Box::new(s)),
            Attempt::Fail(r) => Action::Reply(r),
            Attempt::Wait => Action::Reply(self.op.empty_reply()),
        }
    }

    /// Rough size of what serving it logs (a transaction's record size
    /// check, before anything runs).
    pub fn log_bytes_estimate(&self) -> usize {
        32 + self.op.keys().iter().map(|k| k.len() + 4).sum::<usize>()
    }
}

/// Redis's blocking timeout (seconds as a float; 0 is forever):
/// `getTimeoutFromObjectOrReply` in seconds. Milliseconds are truncated,
/// so a timeout under 1 ms is 0, forever, as in Redis.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, Reply> {
    const NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
    // strtold on the whole string (a long double's range), not NaN
    let ld = crate::cmd::ldouble::LDouble::parse(arg).ok_or_else(|| Reply::error(NOT_FLOAT))?;
    let v: f64 = if ld.is_finite() {
        std::str::from_utf8(arg)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Reply::error(NOT_FLOAT))?
    } else {
        f64::INFINITY
    };
    // (long long)(ftval * 1000.0): x86 turns what does not fit, infinities
    // included, into LLONG_MIN ("negative")
    let ms = v * 1000.0;
    if !(ms > -9.223_372_036_854_776e18 && ms < 9.223_372_036_854_776e18) {
        return Err(Reply::error("ERR timeout is negative"));
    }
    let ms = ms as i64;
    if ms < 0 {
        return Err(Reply::error("ERR timeout is negative"));
    }
    if ms == 0 {
        return Ok(None);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    if ms > i64::MAX - now {
        return Err(Reply::error("ERR timeout is out of range"));
    }
    Ok(Some(Duration::from_millis(ms as u64)))
}

/// Writes whose key positions do not name every key they may fill (SORT
/// … STORE destination): after them every waited key is looked at. (A
/// `MOVABLE_KEYS` flag in the table, where there is one, says the same.)
pub const WRITES_OUTSIDE_KEYS: &[&str] = &["sort"];

/// Keys a command's writes may have filled, to serve their waiters after
/// it (when it logged something: a command that logged nothing changed
/// nothing). Collects nothing while nobody waits.
#[derive(Debug, Default)]
pub struct Ready {
    on: bool,
    /// Every waited key (a write whose keys are not known, like FLUSHALL
    /// or a script's).
    all: bool,
    keys: VecDeque<Vec<u8>>,
    /// The keys in `keys`.
    queued: HashSet<Vec<u8>>,
}

impl Ready {
    /// Collecting when `on` (someone waits).
    pub fn new(on: bool) -> Ready {
        Ready {
            on,
            ..Default::default()
        }
    }

    /// Notes the keys of a command of `spec` with `args` that may write:
    /// its key positions; every waited key for a command without key
    /// positions that is not read-only (FLUSHALL, LMPOP, EXEC, EVAL…) or
    /// one that writes keys outside its key positions
    /// ([`WRITES_OUTSIDE_KEYS`]).
    pub fn note(&mut self, spec: &Spec, args: &[Vec<u8>]) {
        if !self.on || spec.flags.contains(Flags::READONLY) {
            return;
        }
        if spec.keys.first == 0 || WRITES_OUTSIDE_KEYS.contains(&spec.name) {
            self.all = true;
        } else if spec.flags.contains(Flags::WRITE) {
            for k in spec.keys.of(args) {
                self.push(k);
            }
        }
    }

    /// Notes one key.
    pub fn push(&mut self, key: &[u8]) {
        if self.on && !self.queued.contains(key) {
            self.queued.insert(key.to_vec());
            self.keys.push_back(key.to_vec());
        }
    }

    fn pop(&mut self) -> Option<Vec<u8>> {
        let k = self.keys.pop_front()?;
        self.queued.remove(&k);
        Some(k)
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.keys.is_empty()
    }

    /// Forgets what was noted (a command that changed nothing).
    pub fn clear(&mut self) {
        self.all = false;
        self.keys.clear();
        self.queued.clear();
    }
}

/// One blocked connection.
struct Waiter {
    op: Box<dyn Blocking>,
    /// The distinct keys waited on.
    keys: Vec<Vec<u8>>,
    name: &'static str,
    proto: Protocol,
    tx: oneshot::Sender<Held>,
}

#[derive(Default)]
struct Inner {
    /// Waited key -> connection ids, first blocked first.
    by_key: HashMap<Vec<u8>, VecDeque<u64>>,
    waiters: HashMap<u64, Waiter>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Waiter> {
        let w = self.waiters.remove(&id)?;
        for k in &w.keys {
            if let Some(q) = self.by_key.get_mut(k) {
                // (a served waiter is found at the front: O(1))
                if let Some(at) = q.iter().position(|i| *i == id) {
                    q.remove(at);
                }
                if q.is_empty() {
                    self.by_key.remove(k);
                }
            }
        }
        Some(w)
    }
}

/// The blocked connections, by key.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    /// How many wait (INFO blocked_clients; lock-free "anyone waiting?").
    count: AtomicUsize,
}

/// What a blocked connection keeps: where its reply comes from, its
/// deadline, and the requests it read after the blocking one.
#[derive(Debug)]
pub struct Pending {
    rx: oneshot::Receiver<Held>,
    deadline: Option<tokio::time::Instant>,
    name: &'static str,
    pub(crate) rest: Vec<Vec<Vec<u8>>>,
}

impl Pending {
    /// The blocking command's name (CLIENT LIST's `cmd`).
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections waiting.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Whether connection `id` waits.
    pub fn is_blocked(&self, id: u64) -> bool {
        self.count() > 0 && self.lock().waiters.contains_key(&id)
    }

    /// Registers connection `id` as waiting for `block`; its reply comes
    /// through the returned [`Pending`] (holding `rest`, the requests read
    /// after the blocking one).
    pub fn register(
        &self,
        id: u64,
        block: Block,
        name: &'static str,
        proto: Protocol,
        rest: Vec<Vec<Vec<u8>>>,
    ) -> Pending {
        let (tx, rx) = oneshot::channel();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for k in block.op.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        let mut inner = self.lock();
        if let Some(old) = inner.remove(id) {
            // never: a blocked connection executes nothing
            drop(old);
            self.count.fetch_sub(1, Ordering::SeqCst);
        }
        for k in &keys {
            inner.by_key.entry(k.clone()).or_default().push_back(id);
        }
        inner.waiters.insert(
            id,
            Waiter {
                op: block.op,
                keys,
                name,
                proto,
                tx,
            },
        );
        self.count.fetch_add(1, Ordering::SeqCst);
        drop(inner);
        let deadline = block
            .timeout
            .and_then(|t| tokio::time::Instant::now().checked_add(t));
        Pending {
            rx,
            deadline,
            name,
            rest,
        }
    }

    /// Takes connection `id`'s waiter out (timeout, disconnect); None when
    /// it is not waiting (served already, or unblocked).
    fn take(&self, id: u64) -> Option<Waiter> {
        let w = self.lock().remove(id)?;
        self.count.fetch_sub(1, Ordering::SeqCst);
        Some(w)
    }

    /// CLIENT UNBLOCK: answers the waiting connection `id` with its
    /// timeout reply or (`error`) the UNBLOCKED error; false when it does
    /// not wait.
    pub fn unblock(&self, id: u64, error: bool) -> bool {
        let mut inner = self.lock();
        let Some(w) = inner.remove(id) else {
            return false;
        };
        self.count.fetch_sub(1, Ordering::SeqCst);
        let reply = if error {
            Reply::error(UNBLOCKED)
        } else {
            w.op.timeout_reply()
        };
        let _ = w.tx.send(Held {
            need: 0,
            name: w.name,
            reply,
            proto: w.proto,
        });
        true
    }

    /// Waits for the reply of a blocked connection: served, unblocked, or
    /// its timeout reply at its deadline.
    pub async fn wait(&self, id: u64, p: &mut Pending) -> Held {
        let got = match p.deadline {
            Some(d) => tokio::time::timeout_at(d, &mut p.rx).await.ok(),
            None => Some((&mut p.rx).await),
        };
        if let Some(Ok(h)) = got {
            return h;
        }
        // the deadline: take the waiter out, unless it was answered in the
        // meantime (answers are sent under the registry's lock, before the
        // waiter is gone)
        match self.take(id) {
            Some(w) => Held {
                need: 0,
                name: w.name,
                reply: w.op.timeout_reply(),
                proto: w.proto,
            },
            // (never: a waiter is answered before it is removed)
            None => p.rx.try_recv().unwrap_or(Held {
                need: 0,
                name: p.name,
                reply: Reply::NilArray,
                proto: Protocol::Resp2,
            }),
        }
    }

    /// The connection stops waiting (it closes): its waiter is removed;
    /// the reply it was served in the meantime, if any.
    pub fn cancel(&self, id: u64, p: &mut Pending) -> Option<Held> {
        if self.take(id).is_some() {
            return None;
        }
        p.rx.try_recv().ok()
    }

    /// Serves the waiters of the keys in `ready` (in the order they were
    /// noted; each key's waiters first blocked first), against `db` at
    /// `now_ms`. `apply` applies and logs a served write, returning its
    /// reply and the log position the reply needs; with `None` it returns
    /// the position an error reply needs (the last queued).
    pub fn serve(
        &self,
        db: &mut Db,
        now_ms: u64,
        ready: &mut Ready,
        mut apply: impl FnMut(&mut Db, Option<Served>) -> (Reply, u64),
    ) {
        if ready.is_empty() {
            return;
        }
        let mut inner = self.lock();
        if std::mem::take(&mut ready.all) {
            let mut keys: Vec<Vec<u8>> = inner.by_key.keys().cloned().collect();
            keys.sort();
            for k in keys {
                ready.push(&k);
            }
        }
        while let Some(key) = ready.pop() {
            // the key's waiters in order; a served one leaves the queue, so
            // the next one is then at the same place
            let mut at = 0;
            loop {
                // nobody is served from a key that does not exist
                if db.entry(&key, now_ms).is_none() {
                    break;
                }
                let Some(&id) = inner.by_key.get(&key).and_then(|q| q.get(at)) else {
                    break;
                };
                let Some(w) = inner.waiters.get(&id) else {
                    at += 1;
                    continue;
                };
                let (reply, need) = match w.op.attempt(db, now_ms, Some(&key)) {
                    Attempt::Wait => {
                        at += 1;
                        continue;
                    }
                    Attempt::Fail(r) => (r, apply(db, None).1),
                    Attempt::Serve(s) => {
                        for k in &s.keys {
                            ready.push(k);
                        }
                        apply(db, Some(s))
                    }
                };
                let w = inner.remove(id).expect("present");
                self.count.fetch_sub(1, Ordering::SeqCst);
                // a closed connection's waiter is removed before its
                // receiver is dropped; a send can only fail in between
                let _ = w.tx.send(Held {
                    need,
                    name: w.name,
                    reply,
                    proto: w.proto,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{self, Effect};

    /// A waiter on list keys, popping from the head (a BLPOP).
    #[derive(Debug)]
    struct Lpop(Vec<Vec<u8>>);

    impl Blocking for Lpop {
        fn keys(&self) -> &[Vec<u8>] {
            &self.0
        }
        fn attempt(&self, db: &Db, now_ms: u64, ready: Option<&[u8]>) -> Attempt {
            let keys: Vec<&[u8]> = match ready {
                Some(k) => vec![k],
                None => self.0.iter().map(Vec::as_slice).collect(),
            };
            for k in keys {
                if let Ok(Some(l)) = db.get_list(k, now_ms) {
                    if !l.is_empty() {
                        return Attempt::Serve(Served {
                            effect: Box::new(cmd::Pop {
                                key: k.to_vec(),
                                head: true,
                                count: None,
                            }),
                            keys: vec![k.to_vec()],
                            prefix: Some(k.to_vec()),
                        });
                    }
                }
            }
            Attempt::Wait
        }
        fn timeout_reply(&self) -> Reply {
            Reply::NilArray
        }
    }

    fn block(keys: &[&str]) -> Block {
        Block::new(
            Lpop(keys.iter().map(|k| k.as_bytes().to_vec()).collect()),
            None,
        )
    }

    fn push(db: &mut Db, key: &str, vals: &[&str]) {
        cmd::Push {
            key: key.as_bytes().to_vec(),
            head: false,
            only_existing: false,
            elements: vals.iter().map(|v| v.as_bytes().to_vec()).collect(),
        }
        .apply(db, 0);
    }

    /// Serves `ready`, logging payloads into `log`.
    fn serve(r: &Registry, db: &mut Db, ready: &mut Ready, log: &mut Vec<Vec<u8>>) {
        r.serve(db, 0, ready, |db, s| match s {
            Some(s) => {
                let mut p = Vec::new();
                s.encode_into(&mut p);
                log.push(p);
                (Box::new(s).apply_boxed(db, 0), log.len() as u64)
            }
            None => (Reply::Nil, log.len() as u64),
        });
    }

    fn bulk(reply: &Reply) -> String {
        match reply {
            Reply::Array(v) => v
                .iter()
                .map(|r| match r {
                    Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join(" "),
            other => format!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn waiters_are_served_first_come_first_served() {
        let r = Registry::default();
        let mut db = Db::new();
        let mut pend: Vec<Pending> = (1..=3)
            .map(|id| r.register(id, block(&["q"]), "blpop", Protocol::Resp2, Vec::new()))
            .collect();
        assert_eq!(r.count(), 3);
        push(&mut db, "q", &["a", "b"]);
        let mut ready = Ready::new(true);
        ready.push(b"q");
        let mut log = Vec::new();
        serve(&r, &mut db, &mut ready, &mut log);
        // two elements: the first two waiters, in order; the third waits
        let h1 = pend[0].rx.try_recv().unwrap();
        let h2 = pend[1].rx.try_recv().unwrap();
        assert_eq!(bulk(&h1.reply), "q a");
        assert_eq!(bulk(&h2.reply), "q b");
        assert_eq!((h1.need, h2.need), (1, 2));
        assert!(pend[2].rx.try_recv().is_err());
        assert_eq!(r.count(), 1);
        assert!(r.is_blocked(3) && !r.is_blocked(1));
        // each serve logged as the plain pop
        assert_eq!(log.len(), 2);
        assert_eq!(
            cmd::describe_payload(&log[0]).unwrap(),
            Effect::describe(&cmd::Pop {
                key: b"q".to_vec(),
                head: true,
                count: None
            })
        );
        assert!(db.get(b"q", 0).is_none());
    }

    #[tokio::test]
    async fn multi_key_waiter_is_served_once_and_leaves_every_queue() {
        let r = Registry::default();
        let mut db = Db::new();
        let mut p1 = r.register(1, block(&["a", "b", "a"]), "blpop", Protocol::Resp2, vec![]);
        let mut p2 = r.register(2, block(&["b"]), "blpop", Protocol::Resp2, vec![]);
        push(&mut db, "b", &["x", "y"]);
        push(&mut db, "a", &["z"]);
        let mut ready = Ready::new(true);
        ready.push(b"b");
        ready.push(b"a");
        serve(&r, &mut db, &mut ready, &mut Vec::new());
        // key b first: waiter 1 (first on b) gets x, waiter 2 gets y; a
        // keeps z (nobody left)
        assert_eq!(bulk(&p1.rx.try_recv().unwrap().reply), "b x");
        assert_eq!(bulk(&p2.rx.try_recv().unwrap().reply), "b y");
        assert_eq!(r.count(), 0);
        assert!(r.lock().by_key.is_empty());
        assert_eq!(db.get_list(b"a", 0).unwrap().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn nothing_to_pop_keeps_waiting_and_all_expands() {
        let r = Registry::default();
        let mut db = Db::new();
        let mut p = r.register(7, block(&["k"]), "blpop", Protocol::Resp3, vec![]);
        let mut ready = Ready::new(true);
        ready.push(b"k");
        serve(&r, &mut db, &mut ready, &mut Vec::new());
        assert!(p.rx.try_recv().is_err());
        push(&mut db, "k", &["v"]);
        let mut ready = Ready::new(true);
        ready.all = true;
        serve(&r, &mut db, &mut ready, &mut Vec::new());
        let h = p.rx.try_recv().unwrap();
        assert_eq!(h.proto, Protocol::Resp3);
        assert_eq!(bulk(&h.reply), "k v");
    }

    #[tokio::test]
    async fn many_waiters_are_served_in_order_in_one_pass() {
        let r = Registry::default();
        let mut db = Db::new();
        let n = 5000;
        let mut pend: Vec<Pending> = (0..n)
            .map(|id| r.register(id, block(&["q"]), "blpop", Protocol::Resp2, vec![]))
            .collect();
        let vals: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
        push(&mut db, "q", &refs);
        let mut ready = Ready::new(true);
        ready.all = true;
        let t = std::time::Instant::now();
        serve(&r, &mut db, &mut ready, &mut Vec::new());
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        for (i, p) in pend.iter_mut().enumerate() {
            assert_eq!(bulk(&p.rx.try_recv().unwrap().reply), format!("q {i}"));
        }
        assert_eq!(r.count(), 0);
    }

    #[tokio::test]
    async fn unblock_cancel_and_timeout() {
        let r = Registry::default();
        let mut p = r.register(1, block(&["k"]), "blpop", Protocol::Resp2, vec![]);
        assert!(r.unblock(1, true));
        assert!(!r.unblock(1, true));
        let h = r.wait(1, &mut p).await;
        assert_eq!(h.reply, Reply::error(UNBLOCKED));

        let mut p = r.register(2, block(&["k"]), "blpop", Protocol::Resp2, vec![]);
        assert!(r.cancel(2, &mut p).is_none());
        assert_eq!(r.count(), 0);

        let mut b = block(&["k"]);
        b.timeout = Some(Duration::from_millis(20));
        let mut p = r.register(3, b, "blpop", Protocol::Resp2, vec![]);
        let h = r.wait(3, &mut p).await;
        assert_eq!(h.reply, Reply::NilArray);
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn ready_collects_only_while_someone_waits() {
        let spec = cmd::lookup(b"rpush").unwrap();
        let args: Vec<Vec<u8>> = vec![b"rpush".to_vec(), b"k".to_vec(), b"v".to_vec()];
        let mut off = Ready::new(false);
        off.note(spec, &args);
        assert!(off.is_empty());
        let mut on = Ready::new(true);
        on.note(spec, &args);
        on.note(spec, &args);
        assert_eq!(on.keys.len(), 1);
        let get = cmd::lookup(b"get").unwrap();
        let mut on = Ready::new(true);
        on.note(get, &[b"get".to_vec(), b"k".to_vec()]);
        assert!(on.is_empty());
        // no key positions and not read-only: every waited key
        let flush = cmd::lookup(b"flushall").unwrap();
        on.note(flush, &[b"flushall".to_vec()]);
        assert!(on.all);
    }

    #[test]
    fn timeouts_parse_like_redis() {
        assert_eq!(parse_timeout(b"0"), Ok(None));
        assert_eq!(parse_timeout(b"0.0001"), Ok(None));
        assert_eq!(parse_timeout(b"0.5"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(parse_timeout(b"1e1"), Ok(Some(Duration::from_secs(10))));
        let err = |s: &[u8]| match parse_timeout(s) {
            Err(Reply::Error(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(err(b"-1"), "ERR timeout is negative");
        assert_eq!(err(b"abc"), "ERR timeout is not a float or out of range");
        assert_eq!(err(b""), "ERR timeout is not a float or out of range");
        assert_eq!(err(b" 1"), "ERR timeout is not a float or out of range");
        assert_eq!(err(b"nan"), "ERR timeout is not a float or out of range");
        assert_eq!(err(b"9223371000000000"), "ERR timeout is out of range");
        assert_eq!(err(b"inf"), "ERR timeout is negative");
        assert_eq!(err(b"1e400"), "ERR timeout is negative");
        assert_eq!(err(b"1e5000"), "ERR timeout is not a float or out of range");
        assert_eq!(err(b"1 "), "ERR timeout is not a float or out of range");
    }
}
