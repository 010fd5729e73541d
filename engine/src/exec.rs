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
//! logged as one [`Transaction`] record. WATCH remembers per key who
//! watches it; a write that changes a watched key (compared before and
//! after applying, keyless writes like FLUSHALL against every watched key)
//! marks its watchers dirty, and EXEC also fails when a key that was alive
//! at WATCH time is gone (expired or purged).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::cmd::{self, Action, ConnState, Flags, ReadCtx, ServerInfo, Spec, Transaction, Txn};
use crate::db::{Db, Entry};
use crate::record::MAX_RECORD_BYTES;
use crate::reply::Reply;
use crate::resp::Protocol;
use crate::sys;
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
        if spec.keys.first == 0 {
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
            conn,
            multi: None,
            watched: Vec::new(),
            dirty: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The state, the log queue and what is shared between connections to
/// execute commands.
pub struct Core {
    pub db: SharedDb,
    pub queue: Arc<LogQueue>,
    pub health: Arc<Health>,
    watches: Mutex<Watches>,
    dir: PathBuf,
    reserve_bytes: u64,
}

impl Core {
    pub fn new(
        db: SharedDb,
        queue: Arc<LogQueue>,
        health: Arc<Health>,
        dir: PathBuf,
        reserve_bytes: u64,
    ) -> Core {
        Core {
            db,
            queue,
            health,
            watches: Mutex::new(Watches::default()),
            dir,
            reserve_bytes,
        }
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets a closed connection's watches.
    pub fn end_session(&self, s: &mut Session) {
        self.watches().unwatch(s);
    }

    /// The error writes get while the volume is below the free-space
    /// reserve (checked once per batch of requests holding a write).
    fn refusal(&self, reqs: &[Vec<Vec<u8>>]) -> Option<String> {
        if self.reserve_bytes == 0 {
            return None;
        }
        let writes = reqs.iter().any(|a| {
            a.first()
                .and_then(|n| cmd::lookup(n))
                .is_some_and(|s| s.flags.contains(Flags::WRITE) || s.name == "exec")
        });
        if !writes {
            return None;
        }
        match sys::free_bytes(&self.dir) {
            Ok(free) if free < self.reserve_bytes => {
                tracing::warn!(
                    free,
                    reserve = self.reserve_bytes,
                    "write refused: free space below the reserve"
                );
                Some(format!(
                    "ERR disk almost full: {free} bytes free on the persistence volume, below the reserve of {} bytes; write refused, nothing logged (reads still work)",
                    self.reserve_bytes
                ))
            }
            Ok(_) => None,
            Err(e) => Some(format!(
                "ERR cannot read the free space of {}: {e}; write refused, nothing logged",
                self.dir.display()
            )),
        }
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
        for args in reqs {
            let spec = match cmd::resolve(&args) {
                Ok(spec) => spec,
                Err((name, reply)) => {
                    if let Some(m) = s.multi.as_mut() {
                        m.failed = true;
                    }
                    Held::now(name, reply).push(out, s.conn.proto);
                    continue;
                }
            };
            if self.health.is_poisoned() {
                if spec.name == "quit" {
                    Held::now(spec.name, Reply::Ok).push(out, s.conn.proto);
                    quit = true;
                    break;
                }
                let msg = self.health.poison_message();
                Held::now(spec.name, Reply::Error(msg)).push(out, s.conn.proto);
                continue;
            }
            if let Some(m) = s.multi.as_mut() {
                if !matches!(spec.name, "exec" | "discard" | "multi" | "watch" | "quit") {
                    m.cmds.push(args);
                    Held::now(spec.name, Reply::Status("QUEUED".into())).push(out, s.conn.proto);
                    continue;
                }
            }
            let affected = watches.affected(spec, &args);
            let mut ctx = Ctx {
                db: &mut db,
                now,
                watches: &mut watches,
                refused: refused.as_deref(),
                log_room: MAX_RECORD_BYTES as usize,
            };
            let held = match spec.parse(args, now) {
                Action::Reply(r) => Held::now(spec.name, r),
                Action::Quit => {
                    Held::now(spec.name, Reply::Ok).push(out, s.conn.proto);
                    quit = true;
                    break;
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
                        let (reply, payload) = ctx.apply(affected, w);
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
            };
            held.push(out, s.conn.proto);
        }
        let queued = q.last_seq() > queued_before;
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
}

/// What one execution works on.
struct Ctx<'a> {
    db: &'a mut Db,
    now: u64,
    watches: &'a mut Watches,
    refused: Option<&'a str>,
    /// Payload bytes the record being built can still take (a resolved
    /// write's size is known only once it meets the state).
    log_room: usize,
}

impl Ctx<'_> {
    /// Applies a write (unless it fails its precheck against the state it
    /// runs on: then nothing is applied or logged); returns its reply and
    /// the payload to log. Watchers of keys it changes become dirty.
    fn apply(
        &mut self,
        affected: Option<Vec<Vec<u8>>>,
        w: Box<dyn cmd::Write>,
    ) -> (Reply, Option<Vec<u8>>) {
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
        if payload.len() > self.log_room {
            let msg = format!(
                "ERR result too large to log ({} bytes, {} left in the record); nothing applied",
                payload.len(),
                self.log_room
            );
            return (Reply::Error(msg), None);
        }
        let before: Vec<(Vec<u8>, Option<Entry>)> = affected
            .into_iter()
            .flatten()
            .map(|k| {
                let e = self.db.entry(&k, self.now).cloned();
                (k, e)
            })
            .collect();
        let reply = w.apply_boxed(self.db, self.now);
        for (k, b) in before {
            if self.db.entry(&k, self.now) != b.as_ref() {
                self.watches.touch(&k);
            }
        }
        (reply, Some(payload))
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
        for args in m.cmds {
            let spec = match cmd::resolve(&args) {
                Ok(spec) => spec,
                Err((_, reply)) => {
                    actions.push((None, Action::Reply(reply)));
                    continue;
                }
            };
            let affected = self.watches.affected(spec, &args);
            let action = spec.parse(args, self.now);
            if let Action::Write(w) = &action {
                if let Some(msg) = self.refused {
                    return Reply::error(msg);
                }
                let mut p = Vec::new();
                w.encode_into(&mut p);
                bytes += p.len() + 4;
            }
            actions.push((affected, action));
        }
        if bytes + 16 > MAX_RECORD_BYTES as usize {
            return Reply::Error(format!(
                "ERR transaction too large to log as one record ({bytes} bytes, at most {MAX_RECORD_BYTES}); nothing applied"
            ));
        }
        let mut replies = Vec::with_capacity(actions.len());
        let mut payloads = Vec::new();
        let mut used = 8;
        for (affected, action) in actions {
            let reply = match action {
                Action::Reply(r) => r,
                Action::Read(r) => r.read(&mut ReadCtx {
                    db: self.db,
                    now_ms: self.now,
                    conn: &mut s.conn,
                    server,
                }),
                Action::Write(w) => {
                    // the record: op, count, then each payload with its length
                    self.log_room = (MAX_RECORD_BYTES as usize).saturating_sub(used);
                    let (reply, payload) = self.apply(affected, w);
                    used += payload.as_ref().map_or(0, |p| p.len() + 4);
                    payloads.extend(payload);
                    reply
                }
                // UNWATCH is queued (the keys are unwatched already);
                // the other transaction commands and QUIT never are.
                Action::Txn(Txn::Unwatch) | Action::Quit => Reply::Ok,
                Action::Txn(_) => Reply::error("ERR command not allowed inside a transaction"),
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
        Reply::Array(replies)
    }
}
