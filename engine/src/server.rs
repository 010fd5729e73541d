//! The engine process: start-up (lock, recovery, fresh segment), the RESP
//! listener and its connections, and shutdown.
//!
//! Shape of mini-redis: a listener accepting under a semaphore cap, one task
//! per connection, shutdown by a cancellation token and waiting for every
//! connection to finish; then the log writer drains what is queued and seals
//! the open segment.
//!
//! A connection parses every complete request in its buffer (pipelining)
//! and has the execution core ([`crate::exec`]) execute them in order
//! against the state; their replies are held, in order, until the log
//! position each may show is durable, while the connection goes on reading
//! and executing (a bounded number of replies may be held).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alloc;
use crate::cmd::{self, ConnState, ServerInfo};
use crate::config::{Config, ConfigError};
use crate::db::Db;
use crate::exec::{Core, Held, Session};
use crate::layout;
use crate::metrics::Metrics;
use crate::recovery::{self, RecoveryError};
use crate::reply::Reply;
use crate::resp;
use crate::segment::{self, SegmentError, SegmentWriter, PREPARED_SEGMENT_NAME};
use crate::sys::{self, LockError};
use crate::writer::{self, Health, Log, LogQueue, SharedDb, Writer, WriterError};

/// Requests executed at once (under the state's lock) from one buffer.
const MAX_PIPELINE: usize = 1024;
/// Replies a connection holds (waiting for durability) before it stops
/// reading more requests.
const MAX_HELD: usize = 16 * MAX_PIPELINE;
/// Bytes a connection blocked in BLPOP & co reads ahead (executed once it
/// is answered) before it stops reading.
const MAX_BLOCKED_INPUT: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create persistence dir {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another tiered-engine is already running on {dir} ({lock} is locked); refusing to start a second writer")]
    Locked { dir: PathBuf, lock: PathBuf },
    #[error(transparent)]
    Lock(LockError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("recovery failed: {0}")]
    Recovery(#[from] RecoveryError),
    #[error("cannot prepare the command log: {0}")]
    Segment(#[from] SegmentError),
    #[error("the command log is poisoned, writes stopped: {0}")]
    Poisoned(WriterError),
    #[error("internal task failed: {0}")]
    Task(String),
}

/// Recovery facts shown by INFO.
#[derive(Debug, Default, Clone)]
struct Recovered {
    snapshot_loaded: Option<PathBuf>,
    replayed: u64,
    recovery_ms: u64,
}

/// State shared by the connections, the writer and INFO.
pub struct Shared {
    /// The state; the log writer changes it, connections read it.
    pub db: SharedDb,
    pub metrics: Arc<Metrics>,
    /// What the log writer reports (durable position, segments, poison).
    pub health: Arc<Health>,
    /// Executes commands and queues their effects for the log writer.
    pub core: Core,
    recovered: Recovered,
    next_client: AtomicU64,
    started: Instant,
    dir: PathBuf,
    listen: SocketAddr,
    reserve_bytes: u64,
    /// CONFIG GET/SET's parameters.
    config: cmd::config::ConfigStore,
    /// The connected clients (CLIENT LIST/KILL).
    clients: crate::clients::Clients,
    stats_base: std::sync::Mutex<StatsBase>,
    /// The highest `used_memory` INFO has shown (INFO used_memory_peak).
    memory_peak: AtomicU64,
    /// 40 hex digits, new at every start (INFO run_id, master_replid).
    run_id: String,
    started_unix: u64,
    /// Cancelled by SHUTDOWN: the engine stops as on SIGTERM.
    shutdown: CancellationToken,
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// INFO's default sections (no argument, or `default`); `all` and
/// `everything` add commandstats.
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "module_list",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Bytes as Redis's `bytesToHuman` writes them.
fn human_bytes(n: u64) -> String {
    let f = n as f64;
    const K: f64 = 1024.0;
    if f < K {
        format!("{n}B")
    } else if f < K * K {
        format!("{:.2}K", f / K)
    } else if f < K * K * K {
        format!("{:.2}M", f / (K * K))
    } else if f < K * K * K * K {
        format!("{:.2}G", f / (K * K * K))
    } else {
        format!("{:.2}T", f / (K * K * K * K))
    }
}

/// (resident bytes, user CPU seconds, system CPU seconds) of this process,
/// from /proc (zeros where it is not available).
fn process_usage() -> (u64, f64, f64) {
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096);
    let (user, sys) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // fields after the command name in parentheses; utime and stime
            // are the 14th and 15th, in clock ticks (100 per second)
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((
                f.get(11)?.parse::<f64>().ok()? / 100.0,
                f.get(12)?.parse::<f64>().ok()? / 100.0,
            ))
        })
        .unwrap_or((0.0, 0.0));
    (rss, user, sys)
}

impl Shared {
    /// `# Keyspace`: keys, keys with an expiry, and their mean remaining
    /// time to live in ms (exact, where Redis estimates it).
    fn keyspace_info(&self, db: &Db, now_ms: u64, out: &mut String) {
        out.push_str("# Keyspace\r\n");
        // keys held in memory, expired ones not yet purged included
        out.push_str(&format!("stored_keys:{}\r\n", db.len()));
        let (mut keys, mut expires, mut ttl_sum) = (0u64, 0u64, 0u128);
        for (_, e) in db.iter_unordered() {
            if e.is_expired(now_ms) {
                continue;
            }
            keys += 1;
            if let Some(at) = e.expire_at_ms() {
                expires += 1;
                ttl_sum += u128::from(at.saturating_sub(now_ms));
            }
        }
        if keys > 0 {
            let avg = if expires > 0 {
                ttl_sum / u128::from(expires)
            } else {
                0
            };
            out.push_str(&format!(
                "db0:keys={keys},expires={expires},avg_ttl={avg}\r\n"
            ));
        }
    }
}

impl ServerInfo for Shared {
    fn shutdown(&self) -> bool {
        tracing::info!("SHUTDOWN: shutting down");
        self.shutdown.cancel();
        true
    }

    fn info(&self, sections: &[String], db: &Db, now_ms: u64) -> String {
        let mut wanted: Vec<&str> = Vec::new();
        let mut all = false;
        if sections.is_empty() {
            wanted.extend(DEFAULT_SECTIONS);
        }
        for s in sections {
            match s.as_str() {
                "default" => wanted.extend(DEFAULT_SECTIONS),
                "all" | "everything" => all = true,
                other => wanted.push(other),
            }
        }
        let want = |name: &str| all || wanted.contains(&name);
        let st = &self.recovered;
        let (open_segment, last_sealed) = self.health.segments();
        let uptime = self.started.elapsed().as_secs();
        let (rss, cpu_user, cpu_sys) = process_usage();
        let cfg = |name: &str| self.config.get(name).unwrap_or_default();
        let mut out = String::new();
        let section = |out: &mut String, name: &str, body: String| {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            out.push_str(name);
            out.push_str("\r\n");
            out.push_str(&body);
        };
        if want("server") {
            section(&mut out, "# Server", format!(
                "redis_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:{}\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nexecutable:{}\r\nconfig_file:\r\nio_threads_active:0\r\ntiered_engine_version:{}\r\n",
                cmd::REDIS_VERSION,
                std::env::consts::OS,
                std::env::consts::ARCH,
                usize::BITS,
                std::process::id(),
                self.run_id,
                self.listen.port(),
                now_ms * 1000,
                uptime,
                uptime / 86_400,
                cfg("hz"),
                cfg("hz"),
                std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
                env!("CARGO_PKG_VERSION"),
            ));
        }
        if want("clients") {
            section(&mut out, "# Clients", format!(
                "connected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n",
                self.metrics.connected_clients.get(),
                cfg("maxclients"),
                self.core.blocking.count(),
            ));
        }
        if want("memory") {
            let maxmemory: u64 = cfg("maxmemory").parse().unwrap_or(0);
            // As Redis: used_memory is the allocator's live bytes, the
            // fragmentation ratio RSS over them.
            let used = alloc::usage().map_or(rss, |u| u.allocated);
            let peak = self
                .memory_peak
                .fetch_max(used, Ordering::Relaxed)
                .max(used);
            section(&mut out, "# Memory", format!(
                "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_dataset:{used}\r\nmaxmemory:{maxmemory}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_allocator:{}\r\nlazyfree_pending_objects:0\r\nused_memory_lua:{}\r\nnumber_of_cached_scripts:{}\r\n",
                human_bytes(used),
                human_bytes(rss),
                human_bytes(peak),
                human_bytes(maxmemory),
                cfg("maxmemory-policy"),
                rss as f64 / used.max(1) as f64,
                alloc::name(),
                self.core.scripts().memory(),
                self.core.scripts().cached(),
            ));
        }
        if want("persistence") {
            let free = sys::free_bytes(&self.dir)
                .map(|f| f.to_string())
                .unwrap_or_default();
            let poisoned = self.health.is_poisoned();
            section(&mut out, "# Persistence", format!(
                "loading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\naof_enabled:1\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_write_status:{}\r\nappendfsync:always\r\npersistence_dir:{}\r\nlast_seq:{}\r\nopen_segment:{}\r\nlast_sealed_segment:{}\r\nlast_snapshot_loaded:{}\r\nrecovery_replayed_commands:{}\r\nrecovery_duration_ms:{}\r\nrotations:{}\r\nlogged_records:{}\r\nwrites_failed:{}\r\nwrites_failed_reason:{}\r\ndisk_free_bytes:{}\r\ndisk_reserve_bytes:{}\r\n",
                self.started_unix,
                if poisoned { "err" } else { "ok" },
                self.dir.display(),
                self.health.last_seq(),
                file_name(&open_segment),
                last_sealed.as_deref().map(file_name).unwrap_or_default(),
                st.snapshot_loaded.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into()),
                st.replayed,
                st.recovery_ms,
                self.metrics.rotations.get(),
                self.metrics.logged_records.get(),
                poisoned as u8,
                self.health.poison_cause().unwrap_or_default(),
                free,
                self.reserve_bytes,
            ));
        }
        let counts = self.command_counts();
        if want("stats") {
            let pubsub = self.core.pubsub.counts();
            let (calls, errors) = counts
                .iter()
                .fold((0, 0), |(c, e), (_, o, x)| (c + o + x, e + x));
            let conns = self.next_client.load(Ordering::Relaxed)
                - 1
                - self
                    .stats_base
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .connections;
            section(&mut out, "# Stats", format!(
                "total_connections_received:{conns}\r\ntotal_commands_processed:{calls}\r\ninstantaneous_ops_per_sec:0\r\nrejected_connections:0\r\nexpired_keys:0\r\nevicted_keys:0\r\nkeyspace_hits:0\r\nkeyspace_misses:0\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\ntotal_error_replies:{errors}\r\ntotal_reads_processed:{calls}\r\ntotal_writes_processed:{calls}\r\n",
                pubsub.0,
                pubsub.1,
            ));
        }
        if want("replication") {
            section(&mut out, "# Replication", format!(
                "role:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
                self.run_id,
            ));
        }
        if want("cpu") {
            section(&mut out, "# CPU", format!(
                "used_cpu_sys:{cpu_sys:.6}\r\nused_cpu_user:{cpu_user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n",
            ));
        }
        if want("module_list") || want("modules") {
            section(&mut out, "# Modules", String::new());
        }
        if want("commandstats") {
            let mut body = String::new();
            for (name, ok, err) in &counts {
                if ok + err > 0 {
                    body.push_str(&format!(
                        "cmdstat_{name}:calls={},usec=0,usec_per_call=0.00,rejected_calls=0,failed_calls={err}\r\n",
                        ok + err
                    ));
                }
            }
            section(&mut out, "# Commandstats", body);
        }
        if want("errorstats") {
            section(&mut out, "# Errorstats", String::new());
        }
        if want("cluster") {
            section(&mut out, "# Cluster", "cluster_enabled:0\r\n".into());
        }
        if want("keyspace") {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            self.keyspace_info(db, now_ms, &mut out);
        }
        out
    }

    fn config(&self) -> &cmd::config::ConfigStore {
        &self.config
    }

    fn client_list(&self, ids: Option<&[u64]>, me: u64, me_cmd: &str) -> String {
        self.clients.list(ids, me, me_cmd)
    }

    fn client_kill(&self, filter: &cmd::ClientFilter, me: u64) -> usize {
        self.clients.kill(filter, me)
    }

    fn client_unblock(&self, id: u64, error: bool) -> bool {
        self.core.blocking.unblock(id, error)
    }

    fn reset_stats(&self) {
        let mut base = self.stats_base.lock().unwrap_or_else(|p| p.into_inner());
        base.connections = self.next_client.load(Ordering::Relaxed) - 1;
        base.commands = self
            .metrics
            .command_counts()
            .into_iter()
            .map(|(n, o, e)| (n, (o, e)))
            .collect();
    }
}

/// Counter values at the last CONFIG RESETSTAT (INFO reports the
/// difference; the Prometheus counters keep counting).
#[derive(Debug, Default)]
struct StatsBase {
    connections: u64,
    commands: std::collections::HashMap<&'static str, (u64, u64)>,
}

impl Shared {
    /// (command, ok, errors) since the last CONFIG RESETSTAT.
    fn command_counts(&self) -> Vec<(&'static str, u64, u64)> {
        let base = self.stats_base.lock().unwrap_or_else(|p| p.into_inner());
        self.metrics
            .command_counts()
            .into_iter()
            .map(|(n, o, e)| {
                let (bo, be) = base.commands.get(n).copied().unwrap_or((0, 0));
                (n, o.saturating_sub(bo), e.saturating_sub(be))
            })
            .collect()
    }
}

/// A run id: 40 hex digits from the clock, the pid and a std hasher's
/// random keys.
fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(40);
    for i in 0..3u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(now_ms() ^ u64::from(std::process::id()) ^ i);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(40);
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A started engine: its addresses, and the task that runs until shutdown.
pub struct Running {
    /// The RESP listener's bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The metrics listener's bound address.
    pub metrics_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    task: tokio::task::JoinHandle<Result<(), EngineError>>,
}

impl Running {
    /// Waits until the engine stops (shutdown or poisoned log).
    pub async fn wait(self) -> Result<(), EngineError> {
        self.task
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
    }
}

/// Runs the engine until `shutdown` is cancelled (clean: the open segment is
/// sealed) or the log is poisoned (an error).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), EngineError> {
    start(config, shutdown).await?.wait().await
}

/// Starts the engine: lock, listeners, recovery, a fresh segment; returns
/// once it accepts clients.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, EngineError> {
    config.validate()?;
    let dir = config.dir.clone();
    if !dir.is_dir() {
        // a dir the engine creates itself must survive a crash too
        let dir_err = |source| EngineError::Dir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(dir_err)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sys::fsync_dir(parent).map_err(dir_err)?;
        }
    }
    let lock_path = dir.join(layout::ENGINE_LOCK_FILE);
    let lock = match sys::lock_exclusive(&lock_path) {
        Ok(l) => l,
        Err(LockError::Held { .. }) => {
            return Err(EngineError::Locked {
                dir: dir.clone(),
                lock: lock_path,
            })
        }
        Err(e) => return Err(EngineError::Lock(e)),
    };

    let metrics = Arc::new(Metrics::new());
    let mut metrics_addr = None;
    if let Some(addr) = config.metrics_listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| EngineError::Bind { addr, source })?;
        metrics_addr = l.local_addr().ok();
        tokio::spawn(crate::metrics::serve(l, metrics.clone(), shutdown.clone()));
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| EngineError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| EngineError::Bind {
        addr: config.listen,
        source,
    })?;

    // Recovery, then seal what was open and open a fresh segment.
    let started = Instant::now();
    let (recovered, seg) = {
        let dir = dir.clone();
        let archive = config.archive_dir_name.clone();
        let mode = config.recovery_mode;
        let prealloc = if config.preallocate {
            config.rotate_bytes
        } else {
            0
        };
        let fs = config.fs.clone();
        let zero_fill = config.zero_fill;
        tokio::task::spawn_blocking(move || -> Result<_, EngineError> {
            let stale = dir.join(PREPARED_SEGMENT_NAME);
            if fs.stat(&stale).is_ok() {
                segment::remove_file_durably_on(&*fs, &dir, &stale)?;
            }
            let r = recovery::recover_on(fs.clone(), &dir, &archive, mode)?;
            for open in &r.open_segments {
                match open.last_seq {
                    Some(last) => {
                        let f =
                            fs.open(&open.path, sys::OpenMode::ReadWrite)
                                .map_err(|source| SegmentError::Io {
                                    path: open.path.clone(),
                                    op: "open",
                                    offset: 0,
                                    source,
                                })?;
                        segment::seal_file_on(
                            &*fs,
                            &dir,
                            &open.path,
                            &*f,
                            open.first_seq,
                            last,
                            open.valid_len,
                        )?;
                    }
                    None => segment::remove_file_durably_on(&*fs, &dir, &open.path)?,
                }
            }
            let prepared = writer::prepare(fs, dir.clone(), prealloc, zero_fill)?;
            let seg = SegmentWriter::from_prepared(&dir, prepared, r.last_seq + 1)?;
            Ok((r, seg))
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))??
    };
    let recovery_secs = started.elapsed().as_secs_f64();
    metrics.recovery_duration.set(recovery_secs);
    metrics.recovery_replayed.set(recovered.replayed as i64);
    metrics.healed_files.inc_by(recovered.healed.len() as u64);
    metrics.open_segment_bytes.set(seg.len() as i64);
    tracing::info!(
        last_seq = recovered.last_seq,
        replayed = recovered.replayed,
        recovery_secs,
        open_segment = %seg.path().display(),
        "recovered"
    );

    let health = Arc::new(Health::new(
        metrics.clone(),
        recovered.last_seq,
        seg.path().to_path_buf(),
    ));
    let db: SharedDb = Arc::new(RwLock::new(recovered.db));
    let queue = Arc::new(LogQueue::new(
        recovered.last_seq + 1,
        recovered.last_timestamp_ms,
    ));
    let shared = Arc::new(Shared {
        shutdown: shutdown.clone(),
        db: db.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
        core: Core::new(
            db,
            queue.clone(),
            health.clone(),
            dir.clone(),
            config.reserve_bytes,
        ),
        recovered: Recovered {
            snapshot_loaded: recovered.snapshot.clone(),
            replayed: recovered.replayed,
            recovery_ms: (recovery_secs * 1000.0) as u64,
        },
        next_client: AtomicU64::new(1),
        started: Instant::now(),
        dir: dir.clone(),
        listen: addr,
        reserve_bytes: config.reserve_bytes,
        config: cmd::config::ConfigStore::new(&[
            ("port", addr.port().to_string()),
            ("bind", addr.ip().to_string()),
            ("dir", dir.display().to_string()),
            ("maxclients", config.max_clients.to_string()),
        ]),
        stats_base: Default::default(),
        memory_peak: AtomicU64::new(0),
        clients: Default::default(),
        run_id: run_id(),
        started_unix: now_ms() / 1000,
    });

    let prealloc = if config.preallocate {
        config.rotate_bytes
    } else {
        0
    };
    let log = Log::new(
        seg,
        dir.clone(),
        prealloc,
        config.zero_fill,
        config.rotate_bytes,
        config.rotate_interval,
        recovered.last_timestamp_ms,
    );
    let writer_stop = CancellationToken::new();
    let writer = tokio::spawn(writer::run(
        Writer {
            db: shared.db.clone(),
            queue,
            health,
            stop: writer_stop.clone(),
        },
        log,
    ));
    metrics.ready.set(1);
    tracing::info!(%addr, dir = %dir.display(), "accepting clients");

    let task = tokio::spawn(serve(
        listener,
        shared.clone(),
        writer_stop,
        writer,
        shutdown,
        config.max_clients,
        lock,
    ));
    Ok(Running {
        addr,
        metrics_addr,
        shared,
        task,
    })
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    writer_stop: CancellationToken,
    mut writer: tokio::task::JoinHandle<Result<(), WriterError>>,
    shutdown: CancellationToken,
    max_clients: usize,
    lock: sys::FileLock,
) -> Result<(), EngineError> {
    let limit = Arc::new(Semaphore::new(max_clients));
    let conn_shutdown = CancellationToken::new();
    let mut conns = JoinSet::new();
    let mut writer_done = None;
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.cancelled() => break,
            r = &mut writer => { writer_done = Some(r); break; }
        };
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
            r = &mut writer => { writer_done = Some(r); break; }
        };
        while conns.try_join_next().is_some() {}
        let shared = shared.clone();
        let stop = conn_shutdown.clone();
        conns.spawn(async move {
            let id = shared.next_client.fetch_add(1, Ordering::Relaxed);
            shared.metrics.connected_clients.inc();
            tracing::debug!(%peer, id, "client connected");
            let laddr = socket.local_addr().unwrap_or(peer);
            let fd = {
                use std::os::fd::AsRawFd;
                socket.as_raw_fd()
            };
            let client = shared.clients.add(id, peer, laddr, fd);
            if let Err(e) = connection(&shared, socket, stop, &client).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            shared.clients.remove(id);
            shared.metrics.connected_clients.dec();
            drop(permit);
        });
    }
    drop(listener);
    // Connections finish what they have read; then the writer drains.
    conn_shutdown.cancel();
    let grace = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            r = conns.join_next() => if r.is_none() { break },
            _ = &mut grace => {
                tracing::warn!("connections still busy after 10 s; closing them");
                conns.abort_all();
            }
        }
    }
    writer_stop.cancel();
    let result = match writer_done {
        Some(r) => r,
        None => writer.await,
    };
    let result = match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(EngineError::Poisoned(e)),
        Err(e) => Err(EngineError::Task(e.to_string())),
    };
    shared.metrics.ready.set(0);
    drop(lock);
    match &result {
        Ok(()) => tracing::info!("engine stopped cleanly"),
        Err(e) => tracing::error!(error = %e, "engine stopped"),
    }
    result
}

fn count(
    shared: &Shared,
    name: &'static str,
    reply: &Reply,
    proto: resp::Protocol,
    out: &mut Vec<u8>,
) {
    if !name.is_empty() {
        // (pub/sub messages have no command)
        shared.metrics.command(name, !reply.is_error());
    }
    resp::encode(reply, proto, out);
}

/// Moves the held replies whose log position is durable to `out`, in
/// order, each in the protocol in force when its command ran. Once the log
/// is poisoned, a reply whose position never became durable gets the poison
/// error instead.
fn release(
    shared: &Shared,
    held: &mut VecDeque<Held>,
    durable: writer::Durable,
    out: &mut Vec<u8>,
) {
    while let Some(h) = held.front() {
        if h.need > durable.seq && !durable.poisoned {
            break;
        }
        let h = held.pop_front().expect("front exists");
        if h.need > durable.seq && h.name.is_empty() {
            // a keyspace notification (or MONITOR line) of a write that
            // never became durable: dropped
            continue;
        }
        if h.need > durable.seq {
            let err = Reply::Error(shared.health.poison_message());
            count(shared, h.name, &err, h.proto, out);
        } else {
            count(shared, h.name, &h.reply, h.proto, out);
        }
    }
}

async fn connection(
    shared: &Arc<Shared>,
    mut socket: TcpStream,
    stop: CancellationToken,
    client: &crate::clients::Client,
) -> std::io::Result<()> {
    let mut session = Session::new(ConnState::new(client.id));
    session.pubsub.peer = client.addr.to_string();
    let r = serve_connection(shared, &mut socket, stop, &mut session, client).await;
    shared.core.end_session(&mut session);
    r
}

async fn serve_connection(
    shared: &Arc<Shared>,
    socket: &mut TcpStream,
    stop: CancellationToken,
    session: &mut Session,
    client: &crate::clients::Client,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let mut durable = shared.health.subscribe();
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut held: VecDeque<Held> = VecDeque::new();
    // progress through a command that is not complete yet
    let mut partial = resp::Partial::default();
    // QUIT, a protocol error or shutdown: no more requests are read
    let mut closing = false;
    // registered once, not on every turn of the loop
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let killed = client.kill.cancelled();
    tokio::pin!(killed);
    loop {
        // Execute what is buffered, a bounded batch at a time.
        // (a blocked connection executes nothing until it is answered)
        while !closing && held.len() < MAX_HELD && !session.is_blocked() {
            let mut reqs = Vec::new();
            let mut protocol_error = None;
            while reqs.len() < MAX_PIPELINE {
                match resp::parse_command_resumable(&inbuf, &mut partial) {
                    Ok(Some((args, used))) => {
                        inbuf.advance(used);
                        if !args.is_empty() {
                            reqs.push(args);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        protocol_error = Some(Reply::Error(format!("ERR {e}")));
                        break;
                    }
                }
            }
            if reqs.is_empty() && protocol_error.is_none() {
                break;
            }
            if !reqs.is_empty() {
                let before = held.len();
                // scripts: BUSY / SCRIPT KILL, and run off the event loop
                if crate::script::execute(shared, session, reqs, &mut held).await {
                    closing = true;
                }
                // what CLIENT LIST shows (name, protocol, last command)
                if held.len() > before || session.is_blocked() {
                    let last = session
                        .blocked_on()
                        .unwrap_or_else(|| held.back().map_or("", |h| h.name));
                    client.refresh(&session.conn, last);
                    let (subs, monitor) = session.pubsub.state();
                    client.refresh_pubsub(subs, monitor);
                }
                client.set_blocked(session.is_blocked());
            }
            if let Some(e) = protocol_error {
                if !closing {
                    held.push_back(Held {
                        need: 0,
                        name: "unknown",
                        reply: e,
                        proto: session.conn.proto,
                    });
                }
                closing = true;
            }
        }
        if closing {
            // a closing connection stops waiting in a blocking command
            held.extend(shared.core.stop_waiting(session));
        }
        let d = *durable.borrow_and_update();
        release(shared, &mut held, d, &mut out);
        if !out.is_empty() {
            tokio::select! {
                r = socket.write_all(&out) => r?,
                // a subscriber too far behind is closed even while blocked
                _ = session.pubsub.overflow() => return Ok(()),
            }
            out.clear();
        }
        if client.kill.is_cancelled() || session.pubsub.overflowed() {
            return Ok(());
        }
        if closing && held.is_empty() {
            return Ok(());
        }
        if inbuf.capacity() - inbuf.len() < 4096 {
            inbuf.reserve(inbuf.len().max(16 * 1024));
        }
        // (a blocked connection reads to see its socket close, up to a bound)
        let reading = !closing
            && held.len() < MAX_HELD
            && !(session.is_blocked() && inbuf.len() >= MAX_BLOCKED_INPUT);
        let blocked = session.is_blocked();
        let (waiting, subs) = session.waiting();
        tokio::select! {
            r = socket.read_buf(&mut inbuf), if reading => {
                if r? == 0 {
                    closing = true;
                }
            }
            r = durable.changed(), if !held.is_empty() => {
                if r.is_err() {
                    // the writer is gone: nothing more becomes durable
                    let d = writer::Durable { seq: d.seq, poisoned: true };
                    release(shared, &mut held, d, &mut out);
                }
            }
            Some(m) = subs.recv() => {
                session.pubsub.take(m, &mut held, session.conn.proto);
            }
            h = shared.core.unblocked(waiting), if blocked => {
                // served, unblocked or timed out: then what it read after
                closing |= shared.core.resume(session, h, shared.as_ref(), &mut held);
                client.set_blocked(session.is_blocked());
            }
            _ = &mut stopped, if reading || blocked => closing = true,
            _ = &mut killed => return Ok(()),
        }
    }
}
