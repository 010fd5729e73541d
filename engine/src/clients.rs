//! The connected clients, for CLIENT LIST / INFO / KILL: one entry per
//! connection, registered when it is accepted and removed when it ends.
//! A connection refreshes its entry before each command that may read it
//! (cheap: a few small locks), and watches its kill token.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::cmd::{ClientFilter, ConnState};

/// One connection as CLIENT LIST shows it.
#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub fd: i32,
    created: Instant,
    name: Mutex<Option<Vec<u8>>>,
    last_cmd: Mutex<&'static str>,
    last_active: Mutex<Instant>,
    proto: AtomicU8,
    no_evict: AtomicBool,
    /// Channels, patterns, shard channels subscribed; MONITOR.
    subs: [std::sync::atomic::AtomicUsize; 3],
    monitor: AtomicBool,
    /// Waiting in a blocking command (flag `b`).
    blocked: AtomicBool,
    /// Cancelled by CLIENT KILL: the connection closes after its replies.
    pub kill: CancellationToken,
}

impl Client {
    /// Copies what CLIENT LIST shows from the connection's state.
    pub fn refresh(&self, conn: &ConnState, last_cmd: &'static str) {
        *self.name.lock().unwrap_or_else(|p| p.into_inner()) = conn.name.clone();
        *self.last_cmd.lock().unwrap_or_else(|p| p.into_inner()) = last_cmd;
        *self.last_active.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.proto
            .store(conn.proto.version() as u8, Ordering::Relaxed);
        self.no_evict.store(conn.no_evict, Ordering::Relaxed);
    }

    /// Copies the subscription counts and MONITOR state CLIENT LIST shows.
    pub fn refresh_pubsub(&self, subs: [usize; 3], monitor: bool) {
        for (a, n) in self.subs.iter().zip(subs) {
            a.store(n, Ordering::Relaxed);
        }
        self.monitor.store(monitor, Ordering::Relaxed);
    }

    /// Marks the connection waiting in a blocking command (or not).
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::Relaxed);
    }

    /// Redis's CLIENT LIST line (without the newline). `cmd` overrides the
    /// last command (the calling client's own `client|list`).
    pub fn line(&self, cmd: Option<&str>) -> String {
        let name = self
            .name
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        let last_cmd = *self.last_cmd.lock().unwrap_or_else(|p| p.into_inner());
        let idle = self
            .last_active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            .as_secs();
        let subs: Vec<usize> = self
            .subs
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        let mut flags = String::new();
        if self.monitor.load(Ordering::Relaxed) {
            flags.push('O');
        }
        if subs.iter().any(|&n| n > 0) {
            flags.push('P');
        }
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        if self.no_evict.load(Ordering::Relaxed) {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd={} name={name} age={} idle={idle} flags={flags} db=0 sub={} psub={} ssub={} multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.created.elapsed().as_secs(),
            subs[0],
            subs[1],
            subs[2],
            cmd.unwrap_or(if last_cmd.is_empty() { "NULL" } else { last_cmd }),
            self.proto.load(Ordering::Relaxed),
        )
    }
}

/// Every connected client, by id.
#[derive(Debug, Default)]
pub struct Clients {
    map: Mutex<BTreeMap<u64, Arc<Client>>>,
}

impl Clients {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Client>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection; remove it with [`Clients::remove`].
    pub fn add(&self, id: u64, addr: SocketAddr, laddr: SocketAddr, fd: i32) -> Arc<Client> {
        let c = Arc::new(Client {
            id,
            addr,
            laddr,
            fd,
            created: Instant::now(),
            name: Mutex::new(None),
            last_cmd: Mutex::new(""),
            last_active: Mutex::new(Instant::now()),
            proto: AtomicU8::new(2),
            no_evict: AtomicBool::new(false),
            subs: Default::default(),
            monitor: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            kill: CancellationToken::new(),
        });
        self.map().insert(id, c.clone());
        c
    }

    pub fn remove(&self, id: u64) {
        self.map().remove(&id);
    }

    /// CLIENT LIST lines (each ending in a newline) of `ids` (all: `None`);
    /// `me` is shown running `me_cmd`.
    pub fn list(&self, ids: Option<&[u64]>, me: u64, me_cmd: &str) -> String {
        let map = self.map();
        let mut out = String::new();
        let mut push = |c: &Client| {
            out.push_str(&c.line((c.id == me).then_some(me_cmd)));
            out.push('\n');
        };
        match ids {
            None => map.values().for_each(|c| push(c)),
            Some(ids) => ids.iter().filter_map(|i| map.get(i)).for_each(|c| push(c)),
        }
        out
    }

    /// CLIENT KILL: cancels every client matching `f` (not `me` when
    /// `f.skip_me`); returns how many.
    pub fn kill(&self, f: &ClientFilter, me: u64) -> usize {
        let map = self.map();
        let mut n = 0;
        for c in map.values() {
            let matches = f.id.is_none_or(|id| id == c.id)
                && f.addr.as_deref().is_none_or(|a| a == c.addr.to_string())
                && f.laddr.as_deref().is_none_or(|a| a == c.laddr.to_string())
                && f.normal_only
                && !(f.skip_me && c.id == me);
            if matches {
                c.kill.cancel();
                n += 1;
            }
        }
        n
    }
}
