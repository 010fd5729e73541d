//! The free-space reserve: writes are refused, before anything is executed
//! or logged, while the persistence volume has less than `reserve_bytes`
//! free (see [`crate::exec`]).
//!
//! Reading the free space is a `statvfs` call. Made for every batch of
//! requests it was one syscall per command at 50 connections (as many as
//! the `recvfrom` and `sendto` of the requests themselves), so a reading
//! is reused for [`FRESH`] while it is far from the edge: at least
//! [`MARGIN`] above the reserve. Near the reserve, every batch reads again,
//! as before. The margin covers what the engine and its neighbours on the
//! volume (the snapshotter writing a snapshot) can write in [`FRESH`] at
//! several GB/s; should they outrun it, the reserve is a courtesy and not
//! the safety: a write that meets ENOSPC poisons the log
//! ([`crate::writer`]) and nothing unacknowledged is lost.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sys;

/// How long a reading far from the reserve is reused.
pub const FRESH: Duration = Duration::from_millis(50);

/// How far above the reserve a reading must be to be reused.
pub const MARGIN: u64 = 512 << 20;

/// The reserve of one persistence dir, and the last reading of its free space.
pub struct Reserve {
    dir: PathBuf,
    reserve_bytes: u64,
    last: Mutex<Option<(Instant, u64)>>,
}

/// Why a write is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Fewer bytes than the reserve are free.
    #[error("disk almost full: {free} bytes free on the persistence volume, below the reserve of {reserve} bytes; write refused, nothing logged (reads still work)")]
    Low { free: u64, reserve: u64 },
    /// The free space cannot be read.
    #[error("cannot read the free space of {}: {source}; write refused, nothing logged", dir.display())]
    Unreadable { dir: PathBuf, source: io::Error },
}

impl Reserve {
    /// `reserve_bytes` 0 disables the check.
    pub fn new(dir: PathBuf, reserve_bytes: u64) -> Reserve {
        Reserve {
            dir,
            reserve_bytes,
            last: Mutex::new(None),
        }
    }

    pub fn reserve_bytes(&self) -> u64 {
        self.reserve_bytes
    }

    /// Ok when a write may go ahead now.
    pub fn check(&self) -> Result<(), Refusal> {
        self.check_with(Instant::now(), sys::free_bytes)
    }

    /// [`Reserve::check`] at `now`, reading the free space with `read`.
    fn check_with(
        &self,
        now: Instant,
        read: impl FnOnce(&Path) -> io::Result<u64>,
    ) -> Result<(), Refusal> {
        if self.reserve_bytes == 0 {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, free)) = *last {
            if now.saturating_duration_since(at) < FRESH
                && free >= self.reserve_bytes.saturating_add(MARGIN)
            {
                return Ok(());
            }
        }
        let free = match read(&self.dir) {
            Ok(free) => free,
            Err(source) => {
                *last = None;
                return Err(Refusal::Unreadable {
                    dir: self.dir.clone(),
                    source,
                });
            }
        };
        *last = Some((now, free));
        if free < self.reserve_bytes {
            return Err(Refusal::Low {
                free,
                reserve: self.reserve_bytes,
            });
        }
        Ok(())
    }
}

impl Refusal {
    /// The error a client gets (nothing was executed or logged).
    pub fn client_message(&self) -> String {
        format!("ERR {self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const GIB: u64 = 1 << 30;

    /// Runs `check_with` at `t0 + ms`, the disk answering `free`; returns
    /// the outcome and whether the disk was read.
    fn at(r: &Reserve, t0: Instant, ms: u64, free: io::Result<u64>) -> (bool, bool) {
        let read = Cell::new(false);
        let mut free = Some(free);
        let ok = r
            .check_with(t0 + Duration::from_millis(ms), |_| {
                read.set(true);
                free.take().unwrap()
            })
            .is_ok();
        (ok, read.get())
    }

    #[test]
    fn far_from_the_reserve_one_reading_serves_for_fresh() {
        let r = Reserve::new("/x".into(), 16 << 20);
        let t0 = Instant::now();
        assert_eq!(at(&r, t0, 0, Ok(10 * GIB)), (true, true));
        // the disk filled meanwhile: not seen until the reading is stale
        assert_eq!(at(&r, t0, 10, Ok(1000)), (true, false));
        assert_eq!(at(&r, t0, 49, Ok(1000)), (true, false));
        assert_eq!(at(&r, t0, 50, Ok(1000)), (false, true));
        // refused readings are never reused: the next batch reads again
        assert_eq!(at(&r, t0, 51, Ok(10 * GIB)), (true, true));
    }

    #[test]
    fn near_the_reserve_every_check_reads() {
        let r = Reserve::new("/x".into(), 16 << 20);
        let t0 = Instant::now();
        let near = (16 << 20) + MARGIN - 1;
        assert_eq!(at(&r, t0, 0, Ok(near)), (true, true));
        assert_eq!(at(&r, t0, 1, Ok(near)), (true, true));
        assert_eq!(at(&r, t0, 2, Ok((16 << 20) - 1)), (false, true));
        assert_eq!(at(&r, t0, 3, Ok(16 << 20)), (true, true));
    }

    #[test]
    fn an_unreadable_volume_refuses_and_is_read_again() {
        let r = Reserve::new("/x".into(), 1);
        let t0 = Instant::now();
        assert_eq!(at(&r, t0, 0, Ok(10 * GIB)), (true, true));
        assert_eq!(
            at(&r, t0, 60, Err(io::Error::from_raw_os_error(libc::EIO))),
            (false, true)
        );
        assert_eq!(at(&r, t0, 61, Ok(10 * GIB)), (true, true));
        match r.check_with(t0 + Duration::from_secs(1), |_| {
            Err(io::Error::from_raw_os_error(libc::EIO))
        }) {
            Err(Refusal::Unreadable { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::EIO))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zero_disables_the_check() {
        let r = Reserve::new("/x".into(), 0);
        assert_eq!(at(&r, Instant::now(), 0, Ok(0)), (true, false));
    }
}
