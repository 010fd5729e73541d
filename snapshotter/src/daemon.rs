//! The long-running mode: take the lock, serve metrics, then run a pass at
//! start, whenever the watcher sees a completed log, and at least every
//! `--rescan-interval-secs`, until the shutdown future resolves.
//!
//! Passes run on the blocking pool (`spawn_blocking`): they read, fsync and
//! copy files. On shutdown the daemon asks the running pass to stop at its
//! next safe point (between files: every step of a move is crash-safe
//! anyway) and waits for it before returning, so the lock is released only
//! once nothing is in flight.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::config::{Config, ConfigError};
use crate::lock::{InstanceLock, LockError};
use crate::metrics::Metrics;
use crate::pass::{self, PassState};
use crate::watch::DirWatcher;
use crate::{http, lock};

/// Why the daemon could not start (once started, failed passes are reported
/// and retried, never fatal).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Another snapshotter holds the lock, or the lock file is unusable.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The metrics address could not be bound.
    #[error(transparent)]
    Bind(#[from] http::BindError),
    /// A pass task panicked (a bug).
    #[error("snapshot pass panicked: {0}")]
    Panicked(String),
}

/// After a wake-up, wait this long for more files before the pass (the
/// engine may seal several logs in a burst).
const SETTLE: Duration = Duration::from_millis(50);

/// Runs the daemon until `shutdown` resolves. `metrics` is shared so that
/// tests (and the HTTP listener) can read it.
pub async fn run(
    config: Config,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    config.validate()?;
    let lock = InstanceLock::acquire(&config.dir)?;
    tracing::info!(dir = %config.dir.display(), lock = %lock.path().display(), "snapshotter started");

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = config.metrics_listen {
        let listener = http::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics listening");
        tasks.spawn(http::serve(listener, metrics.clone(), stop_rx.clone()));
    }
    let wake = Arc::new(Notify::new());
    match DirWatcher::new(&config.dir) {
        Ok(w) => {
            tasks.spawn(w.run(wake.clone(), stop_rx.clone()));
        }
        Err(e) => tracing::warn!(
            "{e}; relying on rescans every {}s",
            config.rescan_interval_secs
        ),
    }

    let stop_pass = Arc::new(AtomicBool::new(false));
    let state = Arc::new(Mutex::new(PassState::default()));
    let config = Arc::new(config);
    tokio::pin!(shutdown);
    let result = loop {
        let handle = {
            let (config, metrics, stop_pass, state) = (
                config.clone(),
                metrics.clone(),
                stop_pass.clone(),
                state.clone(),
            );
            tokio::task::spawn_blocking(move || {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                pass::run_pass_reporting(&config, &metrics, &stop_pass, &mut state)
            })
        };
        tokio::pin!(handle);
        let mut stopping = false;
        let joined = tokio::select! {
            r = &mut handle => r,
            _ = &mut shutdown => {
                tracing::info!("stopping: letting the current step finish");
                stopping = true;
                stop_pass.store(true, Ordering::SeqCst);
                (&mut handle).await
            }
        };
        if let Err(e) = joined {
            break Err(RunError::Panicked(e.to_string()));
        }
        if stopping {
            break Ok(());
        }
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            _ = wake.notified() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(config.rescan_interval()) => {}
        }
    };
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    tracing::info!("snapshotter stopped");
    drop(lock);
    result
}

/// `once`: one pass under the lock, then return its outcome.
pub fn run_once(config: &Config, metrics: &Metrics) -> Result<pass::PassReport, OnceError> {
    config.validate()?;
    let _lock = lock::InstanceLock::acquire(&config.dir)?;
    let stop = AtomicBool::new(false);
    let mut state = PassState::default();
    Ok(pass::run_pass(config, metrics, &stop, &mut state)?)
}

/// Why `once` failed.
#[derive(Debug, thiserror::Error)]
pub enum OnceError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Another snapshotter holds the lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The pass reported a problem (nothing unsafe was done).
    #[error(transparent)]
    Pass(#[from] pass::PassError),
}
