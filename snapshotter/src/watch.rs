//! Wakes the daemon when a command log is completed: inotify on the
//! persistence dir (through nix), read without blocking a thread via tokio's
//! `AsyncFd`. The daemon also rescans periodically, so a lost event (queue
//! overflow, a file system without inotify such as some network mounts) only
//! delays a pass.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{watch, Notify};

use crate::http::stopped;

/// The watch could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("inotify on {}: {source}", path.display())]
pub struct WatchError {
    /// The watched dir.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Watches one directory; call [`DirWatcher::run`] in a task.
pub struct DirWatcher {
    fd: AsyncFd<InotifyFd>,
    dir: PathBuf,
}

/// True for names whose arrival should trigger a pass: completed logs and
/// snapshots (not the open segment, not temp files).
pub fn is_interesting(name: &str) -> bool {
    use tiered_engine::layout::{classify, FileKind};
    matches!(
        classify(name),
        FileKind::SealedSegment { .. } | FileKind::Snapshot { .. }
    )
}

impl DirWatcher {
    /// Starts watching `dir` for files renamed into it or closed after
    /// writing. Must be called inside a tokio runtime.
    pub fn new(dir: &Path) -> Result<DirWatcher, WatchError> {
        let err = |e: nix::Error| WatchError {
            path: dir.to_path_buf(),
            source: io::Error::from(e),
        };
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(err)?;
        inotify
            .add_watch(
                dir,
                AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_CLOSE_WRITE
                    | AddWatchFlags::IN_ONLYDIR,
            )
            .map_err(err)?;
        // The crate denies unsafe code; this registration is the exception.
        // SAFETY: `InotifyFd` owns the inotify descriptor (an `OwnedFd` inside
        // `Inotify`), which stays open and unchanged until the `AsyncFd` that
        // owns the `InotifyFd` is dropped; `as_raw_fd` always returns it.
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register_with_interest(InotifyFd(inotify), Interest::READABLE) }
            .map_err(|e| WatchError {
                path: dir.to_path_buf(),
                source: e.into_parts().1,
            })?;
        Ok(DirWatcher {
            fd,
            dir: dir.to_path_buf(),
        })
    }

    /// Calls `wake.notify_one()` for every interesting event until `shutdown`
    /// turns true. A read error is logged and ends the watch (the periodic
    /// rescan keeps the daemon working).
    pub async fn run(self, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let mut guard = tokio::select! {
                _ = stopped(&mut shutdown) => return,
                g = self.fd.readable() => match g {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::warn!(dir = %self.dir.display(), "inotify wait failed, relying on rescans: {e}");
                        return;
                    }
                },
            };
            let events = match guard
                .try_io(|fd| fd.get_ref().0.read_events().map_err(io::Error::from))
            {
                Ok(Ok(events)) => events,
                Ok(Err(e)) => {
                    tracing::warn!(dir = %self.dir.display(), "inotify read failed, relying on rescans: {e}");
                    return;
                }
                Err(_would_block) => continue,
            };
            let mut wake_up = false;
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    tracing::debug!("inotify queue overflow; rescanning");
                    wake_up = true;
                    continue;
                }
                if let Some(name) = ev.name.as_ref().and_then(|n| n.to_str()) {
                    if is_interesting(name) {
                        tracing::debug!(name, "completed file noticed");
                        wake_up = true;
                    }
                }
            }
            if wake_up {
                wake.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiered_engine::layout;

    #[test]
    fn only_completed_files_wake_the_daemon() {
        assert!(is_interesting(&layout::sealed_segment_name(1, 9)));
        assert!(is_interesting(&layout::snapshot_name(9)));
        assert!(!is_interesting(&layout::open_segment_name(10)));
        assert!(!is_interesting("snapshot-00000000000000000009.snap.12.tmp"));
        assert!(!is_interesting("engine.lock"));
    }

    #[tokio::test]
    async fn a_sealed_log_renamed_in_wakes_the_waiter() {
        let d = tempfile::tempdir().unwrap();
        let w = DirWatcher::new(d.path()).unwrap();
        let wake = Arc::new(Notify::new());
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(w.run(wake.clone(), rx));
        std::fs::write(d.path().join("x.tmp"), b"").unwrap();
        std::fs::rename(
            d.path().join("x.tmp"),
            d.path().join(layout::sealed_segment_name(1, 2)),
        )
        .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), wake.notified())
            .await
            .expect("no wake-up");
        tx.send(true).unwrap();
        task.await.unwrap();
        assert!(DirWatcher::new(&d.path().join("missing")).is_err());
    }
}
