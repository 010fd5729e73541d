//! Pacing of large background writes, so that they do not stall the command
//! log's fdatasync on the same disk.
//!
//! A snapshot of a large state is written as fast as the page cache takes
//! it, then pushed to the disk by its final fsync (or by the kernel's
//! writeback) in one burst of tens or hundreds of megabytes. Every
//! fdatasync of the command log on that disk then queues behind the burst
//! and flushes the device cache it filled: measured on ext4 over virtio
//! (docs/engine.md), a 150 MB write + fsync loop beside the engine cut its
//! SET throughput at 50 connections to 0.2× of idle, the same bytes written
//! in 1 MiB chunks at full speed to 0.5×, and at 50 MB/s to ~1.0× (with
//! a p99 twice idle's in 1 MiB chunks, 1.4× in 256 KiB ones).
//!
//! [`PacedWriter`] is a `std::io::Write` over an [`FsFile`] that, every
//! `chunk_bytes`, starts writeback of the chunk just written and waits for
//! the one before it (sync_file_range: dirty pages stay bounded to two
//! chunks, nothing is made durable by it), and sleeps as needed so that the
//! average rate stays at or below `bytes_per_sec`. Durability is still the
//! caller's final fsync. A `stop` flag abandons the write between chunks
//! with ECANCELED (not EINTR: `write_all` would retry it).
//!
//! ```text
//!  write ... write | writeback(chunk k, start) | writeback(chunk k-1, wait) | sleep to rate
//!  ^ chunk k      ^ pos reaches k * chunk_bytes
//! ```

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::seam::FsFile;

/// Bytes between two writeback calls, unless told otherwise.
pub const DEFAULT_CHUNK_BYTES: u64 = 256 << 10;

/// How a [`PacedWriter`] paces.
#[derive(Debug, Clone, Copy)]
pub struct WritePace<'a> {
    /// Writeback every this many bytes; 0 leaves writeback to the kernel
    /// (no calls, no rate).
    pub chunk_bytes: u64,
    /// Average rate cap; `None` writes as fast as the disk takes it (still
    /// in bounded chunks).
    pub bytes_per_sec: Option<u64>,
    /// Checked between chunks: once true, the next write fails with
    /// ECANCELED.
    pub stop: Option<&'a AtomicBool>,
}

impl WritePace<'static> {
    /// No pacing: plain writes, writeback left to the kernel.
    pub const NONE: WritePace<'static> = WritePace {
        chunk_bytes: 0,
        bytes_per_sec: None,
        stop: None,
    };

    /// [`DEFAULT_CHUNK_BYTES`] chunks at most `bytes_per_sec` (`None`: no
    /// cap).
    pub fn rate(bytes_per_sec: Option<u64>) -> WritePace<'static> {
        WritePace {
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            bytes_per_sec,
            stop: None,
        }
    }
}

impl<'a> WritePace<'a> {
    /// The same pace, abandoned once `stop` turns true.
    pub fn with_stop(self, stop: &'a AtomicBool) -> WritePace<'a> {
        WritePace {
            stop: Some(stop),
            ..self
        }
    }
}

/// A `std::io::Write` at the end of an [`FsFile`] that paces (see the
/// module doc). Put a `BufWriter` in front of it: each `write` is a pwrite.
#[derive(Debug)]
pub struct PacedWriter<'a> {
    file: Box<dyn FsFile>,
    /// Where the writing began (the rate counts from it).
    origin: u64,
    pos: u64,
    pace: WritePace<'a>,
    /// Start of the bytes not yet handed to writeback.
    chunk_start: u64,
    /// The chunk handed to writeback last, to wait for at the next one.
    in_flight: Option<(u64, u64)>,
    started: Instant,
    paused: Duration,
}

impl<'a> PacedWriter<'a> {
    /// Writes into `file` from offset `pos`.
    pub fn new(file: Box<dyn FsFile>, pos: u64, pace: WritePace<'a>) -> PacedWriter<'a> {
        PacedWriter {
            file,
            origin: pos,
            pos,
            pace,
            chunk_start: pos,
            in_flight: None,
            started: Instant::now(),
            paused: Duration::ZERO,
        }
    }

    /// The offset of the next write.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// How long it slept to keep the rate.
    pub fn paused(&self) -> Duration {
        self.paused
    }

    /// The file back, for its fsync.
    pub fn into_file(self) -> Box<dyn FsFile> {
        self.file
    }

    fn after_write(&mut self) -> io::Result<()> {
        let chunk = self.pace.chunk_bytes;
        if chunk == 0 || self.pos - self.chunk_start < chunk {
            return Ok(());
        }
        if self.pace.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Err(io::Error::from_raw_os_error(libc::ECANCELED));
        }
        let len = self.pos - self.chunk_start;
        self.file.writeback(self.chunk_start, len, false)?;
        if let Some((off, len)) = self.in_flight.take() {
            self.file.writeback(off, len, true)?;
        }
        self.in_flight = Some((self.chunk_start, len));
        self.chunk_start = self.pos;
        if let Some(rate) = self.pace.bytes_per_sec.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64((self.pos - self.origin) as f64 / rate as f64);
            let elapsed = self.started.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
                self.paused += due - elapsed;
            }
        }
        Ok(())
    }
}

impl Write for PacedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Never past the end of the current chunk: a `BufWriter` in front
        // hands over its whole buffer at once, and a chunk is what is handed
        // to writeback (a short count makes the caller write the rest).
        let chunk = self.pace.chunk_bytes;
        let buf = if chunk == 0 {
            buf
        } else {
            let room = chunk - (self.pos - self.chunk_start);
            &buf[..buf.len().min(usize::try_from(room).unwrap_or(usize::MAX))]
        };
        let n = self.file.write_at(buf, self.pos)?;
        self.pos += n as u64;
        self.after_write()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Fault, FaultFs, Op};
    use crate::seam::{real, Fs, OpenMode};

    fn open(fs: &dyn Fs, dir: &std::path::Path) -> Box<dyn FsFile> {
        fs.open(&dir.join("f"), OpenMode::CreateTruncate).unwrap()
    }

    /// Chunks of `chunk_bytes`, no rate cap, no stop.
    fn chunks_of(chunk_bytes: u64) -> WritePace<'static> {
        WritePace {
            chunk_bytes,
            ..WritePace::NONE
        }
    }

    fn writebacks(fs: &FaultFs) -> usize {
        fs.take_calls()
            .iter()
            .filter(|(op, _)| *op == Op::Writeback)
            .count()
    }

    #[test]
    fn every_chunk_is_handed_to_writeback_and_the_bytes_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new(real());
        let pace = chunks_of(1000);
        let mut w = PacedWriter::new(open(&fs, dir.path()), 0, pace);
        let data: Vec<u8> = (0..10_500u32).map(|i| i as u8).collect();
        for part in data.chunks(250) {
            w.write_all(part).unwrap();
        }
        assert_eq!(w.position(), 10_500);
        // 10 chunks: each started, and each but the first waits for the one
        // before it.
        assert_eq!(writebacks(&fs), 10 + 9);
        let f = w.into_file();
        f.fsync().unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), data);
    }

    #[test]
    fn a_large_write_is_cut_at_chunk_ends() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new(real());
        let pace = chunks_of(4096);
        let mut w = PacedWriter::new(open(&fs, dir.path()), 0, pace);
        // One write of ten chunks, as a BufWriter hands over its buffer.
        assert_eq!(w.write(&[3u8; 40_960]).unwrap(), 4096);
        w.write_all(&[3u8; 36_864]).unwrap();
        assert_eq!(writebacks(&fs), 10 + 9);
        assert_eq!(w.position(), 40_960);
    }

    #[test]
    fn no_pace_makes_no_writeback_calls() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new(real());
        let mut w = PacedWriter::new(open(&fs, dir.path()), 5, WritePace::NONE);
        w.write_all(&[1u8; 5 << 20]).unwrap();
        assert_eq!(w.position(), 5 + (5 << 20));
        assert_eq!(writebacks(&fs), 0);
    }

    #[test]
    fn the_rate_is_a_ceiling() {
        let dir = tempfile::tempdir().unwrap();
        // 2 MiB at 16 MiB/s in 256 KiB chunks: at least 125 ms, however
        // fast the disk is.
        let pace = WritePace {
            chunk_bytes: 256 << 10,
            bytes_per_sec: Some(16 << 20),
            stop: None,
        };
        let t = Instant::now();
        let mut w = PacedWriter::new(open(&*real(), dir.path()), 0, pace);
        w.write_all(&vec![9u8; 2 << 20]).unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(120),
            "{:?}",
            t.elapsed()
        );
        assert!(w.paused() > Duration::ZERO);
    }

    #[test]
    fn a_failed_writeback_fails_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new(real());
        let mut w = PacedWriter::new(open(&fs, dir.path()), 0, WritePace::rate(None));
        fs.inject(Op::Writeback, Fault::Errno(libc::EIO));
        let e = w
            .write_all(&vec![0u8; 2 * DEFAULT_CHUNK_BYTES as usize])
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
    }

    #[test]
    fn stop_abandons_between_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let pace = chunks_of(4096).with_stop(&stop);
        let mut w = PacedWriter::new(open(&*real(), dir.path()), 0, pace);
        w.write_all(&[0u8; 8192]).unwrap();
        stop.store(true, Ordering::SeqCst);
        let e = w.write_all(&[0u8; 8192]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECANCELED));
    }
}
