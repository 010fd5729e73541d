//! The execution core: commands run in the order they are read, against the
//! state as it is (execute-then-log), and every reply is held until what it
//! may show is durable.
//!
//! A connection hands [`Core::execute`] the requests it has read (a
//! pipeline). Under the state's write lock each one is executed in turn:
//! a write is applied and the payload of its effect is queued for the log
//! ([`LogQueue`], which gives it its log position); a read runs against
//! the state. Each reply is tagged with the log position it needs
//! ([`Held::need`]): its own record for a write, the last executed record
//! (of any connection) for a read or a state-dependent error. The
//! connection releases replies in order once [`Health::subscribe`] reports
//! that position durable, so a pipeline of interleaved SET/GET costs one
//! group commit, and no client ever sees a value that is not durable.
//!
//! What is refused logs nothing: arity and syntax errors (parse), type and
//! integer errors ([`cmd::Write::precheck`], against the state the command
//! executes on), writes while the volume is below the free-space reserve.
//! Once the log is poisoned the state in memory may hold effects that never
//! became durable: every command is refused from then on, and every held
//! reply whose position never became durable gets the poison error.
//!
//! Transactions (MULTI/EXEC/DISCARD/WATCH/UNWATCH) live here because they
//! are connection state: queued commands are resolved (name, arity) when
//! queued and parsed and run when EXEC runs; the writes of one EXEC are
//! logged as one [`Transaction`] record. SAVE and SHUTDOWN
//! ([`Flags::NO_MULTI`]) are refused while queueing and abort the EXEC;
//! RESET runs at once and ends the transaction and the watches. WATCH
//! remembers per key who watches it; a write that changes a watched key
//! (compared before and after applying; keyless and movable-key writes like
//! FLUSHALL and SORT … STORE against every watched key), or that Redis
//! signals although nothing changed ([`cmd::Effect::signal`]: a SET of the
//! same value), marks its watchers dirty, and EXEC also fails when a key
//! that was alive at WATCH time is gone (expired or purged).
//!
//! Blocking commands (BLPOP…) are served here too, by the hooks of
//! [`crate::blocking`]: a write notes the keys it may fill, and after each
//! top-level command the waiters of those keys are served in the same
//! execution (their pops logged like any write).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::blocking::{Attempt, Pending, Ready, Registry};
use crate::cmd::{self, Action, ConnState, Flags, ReadCtx, ServerInfo, Spec, Transaction, Txn};
use crate::db::{Db, Entry};
use crate::record::MAX_RECORD_BYTES;
use crate::reply::Reply;
use crate::resp::Protocol;
use crate::writer::{Health, LogQueue, SharedDb};

pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// A reply waiting until the log position it may show is durable.
#[derive(Debug)]
pub struct Held {
    /// The log position that must be durable first (0: none).
    pub need: u64,
    /// The command's name (metrics).
    pub name: &'static str,
    pub reply: Reply,
    /// The protocol the reply is encoded in: the connection's when its
    /// command ran (HELLO's own reply is in the protocol it switched to).
    pub proto: Protocol,
}

/// Watched keys of every connection.
#[derive(Default)]
struct Watches {
    by_key: HashMap<Vec<u8>, Vec<(u64, Arc<AtomicBool>)>>,
}

impl Watches {
    /// Marks every watcher of `key` dirty.
    fn touch(&self, key: &[u8]) {
        if let Some(ws) = self.by_key.get(key) {
            for (_, dirty) in ws {
                dirty.store(true, Ordering::SeqCst);
            }
        }
    }

    /// The watched keys a write of `spec` with `args` may change (all of
    /// them for a write without key arguments, like FLUSHALL); None when
    /// nobody watches.
    fn affected(&self, spec: &Spec, args: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
        if self.by_key.is_empty() || !spec.flags.contains(Flags::WRITE) {
            return None;
        }
        if spec.keys.first == 0 || spec.flags.contains(Flags::MOVABLE_KEYS) {
            return Some(self.by_key.keys().cloned().collect());
        }
        Some(
            spec.keys
                .of(args)
                .filter(|k| self.by_key.contains_key(*k))
                .map(<[u8]>::to_vec)
                .collect(),
        )
    }

    /// The watched keys among `keys` (None when nobody watches).
    fn among(&self, keys: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
        if self.by_key.is_empty() {
            return None;
        }
        Some(
            keys.iter()
                .filter(|k| self.by_key.contains_key(*k))
                .cloned()
                .collect(),
        )
    }

    fn unwatch(&mut self, s: &mut Session) {
        for (k, _) in s.watched.drain(..) {
            if let Some(ws) = self.by_key.get_mut(&k) {
                ws.retain(|(id, _)| *id != s.conn.id);
                if ws.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
        s.dirty.store(false, Ordering::SeqCst);
    }
}

/// A connection's execution state: its [`ConnState`], its open transaction
/// and its watched keys.
pub struct Session {
    pub conn: ConnState,
    multi: Option<TxQueue>,
    /// Watched keys and whether each was alive when watched.
    watched: Vec<(Vec<u8>, bool)>,
    dirty: Arc<AtomicBool>,
    /// Subscriptions, MONITOR, CLIENT REPLY and the queue of messages.
    pub pubsub: crate::pubsub::Local,
    /// Waiting in a blocking command ([`crate::blocking`]).
    blocked: Option<Pending>,
}

/// Commands queued after MULTI.
#[derive(Default)]
struct TxQueue {
    cmds: Vec<Vec<Vec<u8>>>,
    /// A command failed to queue: EXEC aborts.
    failed: bool,
}

impl Session {
    pub fn new(conn: ConnState) -> Session {
        Session {
            pubsub: crate::pubsub::Local::new(conn.id),
            conn,
            multi: None,
            watched: Vec::new(),
            dirty: Arc::new(AtomicBool::new(false)),
            blocked: None,
        }
    }

    /// Waiting in a blocking command: nothing more is executed until
    /// [`Core::unblocked`] answers it.
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }

    /// The blocking command it waits in.
    pub fn blocked_on(&self) -> Option<&'static str> {
        self.blocked.as_ref().map(Pending::name)
    }

    /// What a connection waits on between requests, borrowed apart so that
    /// both can be awaited at once: its blocking command
    /// ([`Core::unblocked`]) and its subscriptions' messages.
    pub fn waiting(&mut self) -> (Waiting<'_>, &mut crate::pubsub::Local) {
        (
            Waiting {
                id: self.conn.id,
                blocked: &mut self.blocked,
            },
            &mut self.pubsub,
        )
    }

    /// A command refused while a script is busy (no state lock taken), as
    /// Redis's `rejectCommand`: MULTI opens a transaction, anything else
    /// is refused with `err`; in a transaction the refusal fails it, and
    /// EXEC discards it (`EXECABORT … because of: err`).
    pub fn refuse_busy(&mut self, name: &[u8], err: &str) -> Reply {
        let name = name.to_ascii_lowercase();
        match (name.as_slice(), self.multi.as_mut()) {
            (b"multi", None) => {
                self.multi = Some(TxQueue::default());
                Reply::Ok
            }
            (b"multi", Some(_)) => Reply::error("ERR MULTI calls can not be nested"),
            (b"exec", Some(_)) => {
                // discarded with its watches; the script's batch holds the
                // watch registry, so this session's entries there are left
                // stale, pointing at a flag it no longer reads
                self.multi = None;
                self.watched.clear();
                self.dirty = Arc::new(AtomicBool::new(false));
                Reply::Error(format!("EXECABORT Transaction discarded because of: {err}"))
            }
            (_, Some(m)) => {
                m.failed = true;
                Reply::error(err)
            }
            (_, None) => Reply::error(err),
        }
    }
}

/// A session's blocking command, as [`Core::unblocked`] waits on it.
pub struct Waiting<'a> {
    id: u64,
    blocked: &'a mut Option<Pending>,
}

/// The state, the log queue and what is shared between connections to
/// execute commands.
pub struct Core {
    pub db: SharedDb,
    pub queue: Arc<LogQueue>,
    pub health: Arc<Health>,
    /// Clients waiting in blocking commands.
    pub blocking: Registry,
    watches: Mutex<Watches>,
    /// Pub/sub subscriptions, keyspace notifications, MONITOR.
    pub pubsub: Arc<crate::pubsub::PubSub>,
    reserve: crate::reserve::Reserve,
    scripts: crate::script::Scripts,
}

impl Core {
    pub fn new(
        db: SharedDb,
        queue: Arc<LogQueue>,
        health: Arc<Health>,
        dir: PathBuf,
        reserve_bytes: u64,
    ) -> Core {
        let pubsub = Arc::new(crate::pubsub::PubSub::default());
        pubsub.start_purger(&db, &queue);
        Core {
            db,
            queue,
            health,
            blocking: Registry::default(),
            watches: Mutex::new(Watches::default()),
            pubsub,
            reserve: crate::reserve::Reserve::new(dir, reserve_bytes),
            scripts: Default::default(),
        }
    }

    /// The scripting engine (EVAL, FUNCTION).
    pub fn scripts(&self) -> &crate::script::Scripts {
        &self.scripts
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets a closed connection's watches and stops its waiting.
    pub fn end_session(&self, s: &mut Session) {
        self.stop_waiting(s);
        self.watches().unwatch(s);
        self.pubsub.disconnect(&mut s.pubsub);
    }

    /// The reply of a blocked session: served, unblocked (CLIENT UNBLOCK)
    /// or its timeout (never ready when the session is not blocked).
    /// `waiting` is the session's [`Session::waiting`].
    pub async fn unblocked(&self, waiting: Waiting<'_>) -> Held {
        match waiting.blocked.as_mut() {
            Some(p) => self.blocking.wait(waiting.id, p).await,
            None => std::future::pending().await,
        }
    }

    /// Resumes a blocked session answered `h`: `h` goes to `out`, then
    /// the requests read after the blocking one are executed (as
    /// [`Core::execute`]; true: the connection is to close).
    pub fn resume(
        &self,
        s: &mut Session,
        h: Held,
        server: &dyn ServerInfo,
        out: &mut VecDeque<Held>,
    ) -> bool {
        let rest = s.blocked.take().map(|p| p.rest).unwrap_or_default();
        out.push_back(h);
        !rest.is_empty() && self.execute(s, rest, server, out)
    }

    /// A closing session stops waiting; the reply it was served in the
    /// meantime, if any.
    pub fn stop_waiting(&self, s: &mut Session) -> Option<Held> {
        let mut p = s.blocked.take()?;
        self.blocking.cancel(s.conn.id, &mut p)
    }

    /// Serves the waiters of the keys in `ready` (after a command), each
    /// serve applied and queued for the log like a write.
    fn serve_blocked(
        &self,
        db: &mut Db,
        q: &mut crate::writer::Queued,
        watches: &mut Watches,
        now: u64,
        ready: &mut Ready,
    ) {
        self.blocking.serve(db, now, ready, |db, served| {
            let Some(served) = served else {
                return (Reply::Nil, q.last_seq());
            };
            let affected = watches.among(&served.keys);
            let mut nested = Ready::default();
            let mut ctx = Ctx {
                db,
                now,
                watches,
                refused: None,
                pubsub: &self.pubsub,
                ready: &mut nested,
                scripts: &self.scripts,
            };
            let (reply, payload) = ctx.apply(affected, Box::new(served), MAX_RECORD_BYTES as usize);
            if let Some(p) = payload {
                q.push(now, p);
            }
            (reply, q.last_seq())
        });
    }

    /// The error writes get while the volume is below the free-space
    /// reserve (checked once per batch of requests holding a write).
    fn refusal(&self, reqs: &[Vec<Vec<u8>>]) -> Option<String> {
        if self.reserve.reserve_bytes() == 0 {
            return None;
        }
        let writes = reqs.iter().any(|a| {
            a.first().and_then(|n| cmd::lookup(n)).is_some_and(|s| {
                s.flags.contains(Flags::WRITE)
                    || matches!(s.name, "exec" | "eval" | "evalsha" | "fcall")
            })
        });
        if !writes {
            return None;
        }
        let refusal = self.reserve.check().err()?;
        if let crate::reserve::Refusal::Low { free, reserve } = refusal {
            tracing::warn!(free, reserve, "write refused: free space below the reserve");
        }
        Some(refusal.client_message())
    }

    /// Executes `reqs` in order for session `s`, appending one held reply
    /// per request to `out`. Returns true when the connection is to close
    /// (QUIT: the requests after it are not executed).
    pub fn execute(
        &self,
        s: &mut Session,
        reqs: Vec<Vec<Vec<u8>>>,
        server: &dyn ServerInfo,
        out: &mut VecDeque<Held>,
    ) -> bool {
        let refused = self.refusal(&reqs);
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        let mut q = self.queue.lock();
        let mut watches = self.watches();
        let now = q.now();
        let queued_before = q.last_seq();
        let mut quit = false;
        self.pubsub.prepare(&mut db, server);
        s.pubsub.drain_into(out, s.conn.proto);
        // keys written while someone waits in a blocking command
        let mut ready = Ready::new(self.blocking.count() > 0);
        let mut reqs = reqs.into_iter();
        while let Some(args) = reqs.next() {
            let spec = match cmd::resolve(&args) {
                Ok(spec) => spec,
                Err((name, reply)) => {
                    if let Some(m) = s.multi.as_mut() {
                        m.failed = true;
                    }
                    Held::now(name, reply).emit(out, s);
                    continue;
                }
            };
            if self.health.is_poisoned() {
                if spec.name == "quit" {
                    Held::now(spec.name, Reply::Ok).emit(out, s);
                    quit = true;
                    break;
                }
                let msg = self.health.poison_message();
                Held::now(spec.name, Reply::Error(msg)).emit(out, s);
                continue;
            }
            if let Some(r) = self.pubsub.gate(s, spec, &args) {
                if let (true, Some(m)) = (r.is_error(), s.multi.as_mut()) {
                    m.failed = true;
                }
                Held::now(spec.name, r).emit(out, s);
                continue;
            }

            if let Some(m) = s.multi.as_mut() {
                if spec.flags.contains(Flags::NO_MULTI) {
                    m.failed = true;
                    let e = Reply::error("ERR Command not allowed inside a transaction");
                    Held::now(spec.name, e).push(out, s.conn.proto);
                    continue;
                }
                if !matches!(
                    spec.name,
                    "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
                ) {
                    m.cmds.push(args);
                    Held::now(spec.name, Reply::Status("QUEUED".into())).emit(out, s);
                    continue;
                }
            }
            if spec.name == "reset" {
                // RESET also ends the connection's transaction and watches
                s.multi = None;
                watches.unwatch(s);
            }
            let mut monitor = self.pubsub.monitor_line(s, spec, &args);
            let affected = watches.affected(spec, &args);
            let fresh = crate::pubsub::NewKeys::probe(&db, spec, &args, now);
            ready.note(spec, &args);
            let logged_before = q.last_seq();
            let mut ctx = Ctx {
                db: &mut db,
                now,
                watches: &mut watches,
                refused: refused.as_deref(),
                pubsub: &self.pubsub,
                ready: &mut ready,
                scripts: &self.scripts,
            };
            let action = match spec.parse(args, now) {
                // a blocking command: served now, an error, or the
                // connection waits and executes nothing more
                Action::Block(b) => match b.op.attempt(ctx.db, now, None) {
                    Attempt::Serve(served) => Action::Write(Box::new(served)),
                    Attempt::Fail(e) => {
                        Held::at(q.last_seq(), spec.name, e).emit(out, s);
                        continue;
                    }
                    Attempt::Wait => {
                        let rest = reqs.by_ref().collect();
                        s.blocked = Some(self.blocking.register(
                            s.conn.id,
                            b,
                            spec.name,
                            s.conn.proto,
                            rest,
                        ));
                        break;
                    }
                },
                a => a,
            };
            let held = match action {
                Action::Reply(r) => Held::now(spec.name, r),
                Action::Quit => {
                    Held::now(spec.name, Reply::Ok).emit(out, s);
                    quit = true;
                    break;
                }
                Action::PubSub(op) => {
                    // subscription confirmations are pushes: never silenced;
                    // the last reply is counted as the command (metrics)
                    let replies = self.pubsub.run(op, s, server);
                    let last = replies.len().saturating_sub(1);
                    for (i, (r, push)) in replies.into_iter().enumerate() {
                        let h = Held::now(if i == last { spec.name } else { "" }, r);
                        if push {
                            h.push(out, s.conn.proto);
                        } else {
                            h.emit(out, s);
                        }
                    }
                    if let Some(line) = monitor.take() {
                        self.pubsub.feed_monitors(line, q.last_seq());
                    }
                    continue;
                }
                Action::Read(r) => {
                    let reply = r.read(&mut ReadCtx {
                        db: ctx.db,
                        now_ms: now,
                        conn: &mut s.conn,
                        server,
                    });
                    Held::at(q.last_seq(), spec.name, reply)
                }
                Action::Write(w) => {
                    if let Some(msg) = ctx.refused {
                        Held::now(spec.name, Reply::error(msg))
                    } else {
                        let (reply, payload) = ctx.apply(affected, w, MAX_RECORD_BYTES as usize);
                        if let Some(p) = payload {
                            q.push(now, p);
                        }
                        Held::at(q.last_seq(), spec.name, reply)
                    }
                }
                Action::Txn(t) => {
                    let reply = ctx.txn(s, t, server, &mut q);
                    Held::at(q.last_seq(), spec.name, reply)
                }
                // (resolved above)
                Action::Block(b) => Held::now(spec.name, b.op.timeout_reply()),
                Action::Script(r) => {
                    // a script may run long: the log writer must not wait
                    // for the queue meanwhile (the state stays locked)
                    drop(q);
                    let (reply, payloads) = ctx.script(s, r, server);
                    q = self.queue.lock();
                    match payloads.len() {
                        0 => {}
                        1 => {
                            q.push(now, payloads.into_iter().next().expect("one"));
                        }
                        _ => {
                            q.push(now, Transaction::payload(&payloads));
                        }
                    }
                    Held::at(q.last_seq(), spec.name, reply)
                }
            };
            held.emit(out, s);
            self.pubsub.flush(&mut db, fresh, q.last_seq());
            if let Some(line) = monitor {
                self.pubsub.feed_monitors(line, q.last_seq());
            }
            // only a command that logged something changed the state
            if !ready.is_empty() && q.last_seq() > logged_before {
                self.serve_blocked(&mut db, &mut q, &mut watches, now, &mut ready);
                // the served pops' keyspace events
                self.pubsub.flush(&mut db, None, q.last_seq());
            }
            ready.clear();
        }
        let queued = q.last_seq() > queued_before;
        if queued {
            q.end_burst();
        }
        drop(watches);
        drop(q);
        drop(db);
        if queued {
            self.queue.notify();
        }
        quit
    }
}

impl Held {
    /// A reply that shows no state.
    fn now(name: &'static str, reply: Reply) -> Held {
        Held {
            need: 0,
            name,
            reply,
            proto: Protocol::Resp2,
        }
    }

    fn at(need: u64, name: &'static str, reply: Reply) -> Held {
        Held {
            need,
            name,
            reply,
            proto: Protocol::Resp2,
        }
    }

    /// Appends `self` to `out`, encoded in `proto`.
    fn push(mut self, out: &mut VecDeque<Held>, proto: Protocol) {
        self.proto = proto;
        out.push_back(self);
    }

    /// Appends the reply of a command of `s` to `out`, unless CLIENT REPLY
    /// silences it.
    fn emit(self, out: &mut VecDeque<Held>, s: &mut Session) {
        if !s.pubsub.silenced() {
            self.push(out, s.conn.proto);
        }
    }
}

/// What one execution works on.
struct Ctx<'a> {
    db: &'a mut Db,
    now: u64,
    watches: &'a mut Watches,
    refused: Option<&'a str>,
    pubsub: &'a crate::pubsub::PubSub,
    /// Keys written, for the waiters of blocking commands.
    ready: &'a mut Ready,
    scripts: &'a crate::script::Scripts,
}

/// A script's view of the execution core: each `redis.call` runs here.
struct ScriptHost<'a, 'b> {
    ctx: &'a mut Ctx<'b>,
    conn: &'a mut ConnState,
    server: &'a dyn ServerInfo,
    /// Bytes of the record already taken by other writes.
    reserved: usize,
}

impl crate::script::Host for ScriptHost<'_, '_> {
    fn call(
        &mut self,
        spec: &'static Spec,
        args: Vec<Vec<u8>>,
        budget: usize,
    ) -> (Reply, Option<Vec<u8>>) {
        let affected = self.ctx.watches.affected(spec, &args);
        match spec.parse(args, self.ctx.now) {
            Action::Reply(r) => (r, None),
            Action::Read(r) => (
                r.read(&mut ReadCtx {
                    db: self.ctx.db,
                    now_ms: self.ctx.now,
                    conn: self.conn,
                    server: self.server,
                }),
                None,
            ),
            Action::Write(w) => {
                if let Some(msg) = self.ctx.refused {
                    return (Reply::error(msg), None);
                }
                let room = budget.saturating_sub(self.reserved);
                let mut p = Vec::new();
                w.encode_into(&mut p);
                if p.len() + w.resolve_growth() > room {
                    return (
                        Reply::error("ERR the script's writes are too large to log as one record; this write was not applied"),
                        None,
                    );
                }
                self.ctx.apply(affected, w, room)
            }
            // a blocking command in a script does not block
            Action::Block(b) => match b.now(self.ctx.db, self.ctx.now) {
                Action::Write(w) => {
                    if let Some(msg) = self.ctx.refused {
                        return (Reply::error(msg), None);
                    }
                    let room = budget.saturating_sub(self.reserved);
                    self.ctx.apply(affected, w, room)
                }
                Action::Reply(r) => (r, None),
                _ => (
                    Reply::error("ERR This Redis command is not allowed from script"),
                    None,
                ),
            },
            _ => (
                Reply::error("ERR This Redis command is not allowed from script"),
                None,
            ),
        }
    }

    fn conn(&mut self) -> &mut ConnState {
        self.conn
    }
}

impl Ctx<'_> {
    /// Applies a write (unless it fails its precheck against the state it
    /// runs on, or its settled payload is longer than `budget` bytes: then
    /// nothing is applied or logged); returns its reply and the payload to
    /// log. Watchers of keys it changes become dirty.
    fn apply(
        &mut self,
        affected: Option<Vec<Vec<u8>>>,
        mut w: Box<dyn cmd::Write>,
        budget: usize,
    ) -> (Reply, Option<Vec<u8>>) {
        if w.may_fail() {
            if let Some(e) = w.precheck(self.db, self.now) {
                return (e, None);
            }
        }
        w.settle(self.db, self.now);
        // a request becomes the effect it has on this state (or a reply)
        let w = match w.resolve(self.db, self.now) {
            cmd::Resolved::Write(w) => w,
            cmd::Resolved::Reply(r) => return (r, None),
        };
        if w.may_fail() {
            if let Some(e) = w.precheck(self.db, self.now) {
                return (e, None);
            }
        }
        let mut payload = Vec::with_capacity(32);
        w.encode_into(&mut payload);
        if payload.len() > budget {
            return (
                Reply::Error(format!(
                    "ERR effect too large to log ({} bytes, at most {budget}); nothing applied",
                    payload.len()
                )),
                None,
            );
        }
        let before: Vec<(Vec<u8>, Option<Entry>)> = affected
            .into_iter()
            .flatten()
            .map(|k| {
                let e = self.db.entry(&k, self.now).cloned();
                (k, e)
            })
            .collect();
        // keys Redis signals even when unchanged (SET of the same value)
        let signaled: Option<(cmd::Signal, Vec<Vec<u8>>)> = match w.signal() {
            (cmd::Signal::Never, _) => None,
            _ if before.is_empty() => None,
            (when, keys) => Some((when, keys.into_iter().map(<[u8]>::to_vec).collect())),
        };
        let reply = w.apply_boxed(self.db, self.now);
        let fired = |k: &[u8]| {
            signaled
                .as_ref()
                .is_some_and(|(when, keys)| keys.iter().any(|x| x == k) && when.fires(&reply))
        };
        for (k, b) in before {
            if (b.is_some() && fired(&k)) || self.db.entry(&k, self.now) != b.as_ref() {
                self.watches.touch(&k);
            }
        }
        (reply, Some(payload))
    }

    /// EVAL, FCALL, SCRIPT, FUNCTION: the reply and the payloads of the
    /// writes a script made.
    fn script(
        &mut self,
        s: &mut Session,
        r: crate::script::Request,
        server: &dyn ServerInfo,
    ) -> (Reply, Vec<Vec<u8>>) {
        self.script_within(s, r, server, 0)
    }

    /// A script whose writes share one record with `reserved` bytes of
    /// other writes (a transaction's).
    fn script_within(
        &mut self,
        s: &mut Session,
        r: crate::script::Request,
        server: &dyn ServerInfo,
        reserved: usize,
    ) -> (Reply, Vec<Vec<u8>>) {
        let scripts = self.scripts;
        scripts.handle(
            r,
            &mut ScriptHost {
                ctx: self,
                conn: &mut s.conn,
                server,
                reserved,
            },
        )
    }

    fn txn(
        &mut self,
        s: &mut Session,
        t: Txn,
        server: &dyn ServerInfo,
        q: &mut crate::writer::Queued,
    ) -> Reply {
        match t {
            Txn::Multi if s.multi.is_some() => Reply::error("ERR MULTI calls can not be nested"),
            Txn::Multi => {
                s.multi = Some(TxQueue::default());
                Reply::Ok
            }
            Txn::Discard => match s.multi.take() {
                None => Reply::error("ERR DISCARD without MULTI"),
                Some(_) => {
                    self.watches.unwatch(s);
                    Reply::Ok
                }
            },
            Txn::Watch(_) if s.multi.is_some() => {
                Reply::error("ERR WATCH inside MULTI is not allowed")
            }
            Txn::Watch(keys) => {
                for k in keys {
                    if s.watched.iter().any(|(w, _)| *w == k) {
                        continue;
                    }
                    let alive = self.db.entry(&k, self.now).is_some();
                    self.watches
                        .by_key
                        .entry(k.clone())
                        .or_default()
                        .push((s.conn.id, s.dirty.clone()));
                    s.watched.push((k, alive));
                }
                Reply::Ok
            }
            Txn::Unwatch => {
                self.watches.unwatch(s);
                Reply::Ok
            }
            Txn::Exec => match s.multi.take() {
                None => Reply::error("ERR EXEC without MULTI"),
                Some(m) => self.exec(s, m, server, q),
            },
        }
    }

    /// EXEC: every queued command in order, their writes logged as one
    /// record.
    fn exec(
        &mut self,
        s: &mut Session,
        m: TxQueue,
        server: &dyn ServerInfo,
        q: &mut crate::writer::Queued,
    ) -> Reply {
        let dirty = s.dirty.load(Ordering::SeqCst)
            || s.watched
                .iter()
                .any(|(k, alive)| *alive && self.db.entry(k, self.now).is_none());
        self.watches.unwatch(s);
        if m.failed {
            return Reply::error(EXECABORT);
        }
        if dirty {
            return Reply::NilArray;
        }
        // Parse everything first: a transaction too large for one record
        // is refused before anything is applied.
        let mut actions = Vec::with_capacity(m.cmds.len());
        let mut bytes = 0usize;
        let mut monitor_lines = Vec::new();
        for args in m.cmds {
            let spec = match cmd::resolve(&args) {
                Ok(spec) => spec,
                Err((_, reply)) => {
                    actions.push((None, Action::Reply(reply), 0));
                    continue;
                }
            };
            let affected = self.watches.affected(spec, &args);
            monitor_lines.extend(self.pubsub.monitor_line(s, spec, &args));
            self.ready.note(spec, &args);
            let action = spec.parse(args, self.now);
            if matches!(action, Action::Write(_) | Action::Block(_)) {
                if let Some(msg) = self.refused {
                    return Reply::error(msg);
                }
            }
            let mut estimate = 0;
            match &action {
                Action::Write(w) => {
                    let mut p = Vec::new();
                    w.encode_into(&mut p);
                    estimate = p.len() + w.resolve_growth();
                    bytes += estimate + 4;
                }
                Action::Block(b) => {
                    estimate = b.log_bytes_estimate();
                    bytes += estimate;
                }
                _ => {}
            }
            actions.push((affected, action, estimate));
        }
        if bytes + 16 > MAX_RECORD_BYTES as usize {
            return Reply::Error(format!(
                "ERR transaction too large to log as one record ({bytes} bytes, at most {MAX_RECORD_BYTES}); nothing applied"
            ));
        }
        // what settling (SPOP's picks) may add to the estimated payloads
        let mut room = MAX_RECORD_BYTES as usize - 16 - bytes;
        let mut replies = Vec::with_capacity(actions.len());
        let mut payloads = Vec::new();
        for (affected, action, estimate) in actions {
            // a blocking command in a transaction does not block
            let action = match action {
                Action::Block(b) => b.now(self.db, self.now),
                a => a,
            };
            let reply = match action {
                Action::Reply(r) => r,
                Action::Read(r) => r.read(&mut ReadCtx {
                    db: self.db,
                    now_ms: self.now,
                    conn: &mut s.conn,
                    server,
                }),
                Action::Write(w) => {
                    let budget = estimate + room;
                    let (reply, payload) = self.apply(affected, w, budget);
                    if let Some(p) = &payload {
                        room = budget - p.len();
                    }
                    payloads.extend(payload);
                    reply
                }
                Action::PubSub(op) => {
                    let mut r: Vec<Reply> = self
                        .pubsub
                        .run(op, s, server)
                        .into_iter()
                        .map(|(r, _)| r)
                        .collect();
                    if r.len() == 1 {
                        r.pop().expect("one")
                    } else {
                        Reply::Array(r)
                    }
                }
                // UNWATCH is queued (the keys are unwatched already);
                // the other transaction commands and QUIT never are.
                Action::Txn(Txn::Unwatch) | Action::Quit => Reply::Ok,
                Action::Script(r) => {
                    let used: usize = payloads.iter().map(|p| p.len() + 4).sum();
                    let (reply, p) = self.script_within(s, r, server, bytes + used + 16);
                    payloads.extend(p);
                    reply
                }
                Action::Txn(_) => Reply::error("ERR command not allowed inside a transaction"),
                // (resolved above)
                Action::Block(b) => b.op.empty_reply(),
            };
            replies.push(reply);
        }
        match payloads.len() {
            0 => {}
            1 => {
                q.push(self.now, payloads.pop().expect("one"));
            }
            _ => {
                q.push(self.now, Transaction::payload(&payloads));
            }
        }
        for line in monitor_lines {
            self.pubsub.feed_monitors(line, q.last_seq());
        }
        Reply::Array(replies)
    }
}
