//! Segment files: a header followed by batches of records
//! ([`crate::batch`], [`crate::record`]).
//!
//! ```text
//!  0                8        12       16               24               32       36       40
//!  +----------------+--------+--------+----------------+----------------+--------+--------+
//!  | magic          | version| flags  | first_seq      | salt           | crc    | zero   |
//!  | "TIERLOG\0"    | u32 LE | u32 =0 | u64 LE         | u64 LE         | u32 LE | u32    |
//!  +----------------+--------+--------+----------------+----------------+--------+--------+
//!  crc = CRC32(bytes 0..32)
//!  version 3 (written): then batches, one per group commit, of compact
//!    records ([`crate::batch`], [`crate::record`]):
//!    [batch header | records first_seq..] [batch header | records …] …
//!  version 2 (still read): then batches of records with 24-byte headers
//!  version 1 (still read): then bare records (24-byte headers), no batches
//!  records: seq first_seq, first_seq + 1, … (contiguous across batches)
//! ```
//!
//! One reader ([`SegmentReader`]) reads every version, and every tool reads
//! through it (recovery, `verify` and `dump`, the snapshotter's replay and
//! restore, all by [`crate::history`]); a new segment is always written in
//! the newest version, so a history may hold versions 1, 2 and 3 in turn.
//!
//! An open segment (`cmdlog-F.open`) may be preallocated: after its last
//! batch the file holds zeros up to its size. A sealed segment
//! (`cmdlog-F-L.log`) ends exactly after record `L`.
//!
//! A batch is durable only whole: the reader checks a whole batch before it
//! yields its first record. Reading tells a torn tail from corruption: an
//! incomplete or damaged batch is a *torn tail* when no complete batch (with
//! this segment's salt) follows it anywhere in the file; otherwise valid data
//! lies beyond it and it is corruption in the middle. (Version 1: the same
//! rule by records.) With [`SegmentReader::resync`] a reader passes over
//! damage to the next complete batch.
//!
//! The reader reads ahead a megabyte at a time (pread into one buffer,
//! handed from segment to segment), checks a batch's checksum once over its
//! bytes in that buffer and decodes its records there: no copy and no
//! allocation per record; a record's payload is a slice of the buffer.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::batch::{self, BatchCrc, BatchEncoder, BatchHeader, Framing, MAX_BATCH_HEADER_BYTES};
use crate::layout::{self, FileKind};
use crate::record::{self, DecodeError, Record, RECORD_HEADER_BYTES};
use crate::sys::{self, Fs, FsFile, OpenMode};

/// Magic bytes at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"TIERLOG\0";
/// Segment format version written: 3, compact records framed in batches.
pub const SEGMENT_VERSION: u32 = 3;
/// Oldest segment format version read: 1, bare records.
pub const SEGMENT_VERSION_MIN: u32 = 1;
/// Size of the segment header.
pub const SEGMENT_HEADER_BYTES: u64 = 40;
/// Bytes read at a time when the reader scans the rest of a file (for zeros,
/// or for a valid record after damage): its memory bound, with one record.
const SCAN_CHUNK_BYTES: u64 = 1 << 20;
/// Bytes the reader asks for at a time (read-ahead).
const READ_AHEAD_BYTES: usize = 1 << 20;
/// A batch up to this size is read into memory once and its records are
/// checked and decoded there; a larger one is checked a chunk at a time
/// (pread) and its records read one by one, so memory stays bounded by
/// this, the read-ahead and one record.
const IN_MEMORY_BATCH_BYTES: u64 = 16 << 20;

/// The decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub first_seq: u64,
    pub salt: u64,
}

impl SegmentHeader {
    /// The 40 header bytes (of the version written).
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES as usize] {
        self.encode_version(SEGMENT_VERSION)
    }

    /// The 40 header bytes of a segment of format `version` (older ones:
    /// for tests that write what older builds wrote).
    pub fn encode_version(&self, version: u32) -> [u8; SEGMENT_HEADER_BYTES as usize] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES as usize];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&version.to_le_bytes());
        b[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32fast::hash(&b[0..32]);
        b[32..36].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks the 40 header bytes.
    pub fn decode(b: &[u8; SEGMENT_HEADER_BYTES as usize]) -> Result<Self, String> {
        Self::decode_versioned(b).map(|(h, _)| h)
    }

    /// [`SegmentHeader::decode`], with the format version.
    pub fn decode_versioned(
        b: &[u8; SEGMENT_HEADER_BYTES as usize],
    ) -> Result<(Self, u32), String> {
        if b[0..8] != SEGMENT_MAGIC {
            return Err(format!("bad magic {:02x?}", &b[0..8]));
        }
        let version = u32::from_le_bytes(b[8..12].try_into().expect("4"));
        if !(SEGMENT_VERSION_MIN..=SEGMENT_VERSION).contains(&version) {
            return Err(format!(
                "unsupported version {version} (this build reads {SEGMENT_VERSION_MIN} to {SEGMENT_VERSION})"
            ));
        }
        let stored = u32::from_le_bytes(b[32..36].try_into().expect("4"));
        let computed = crc32fast::hash(&b[0..32]);
        if stored != computed {
            return Err(format!(
                "header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ));
        }
        if b[12..16] != [0; 4] || b[36..40] != [0; 4] {
            return Err("reserved header bytes are not zero".into());
        }
        let h = SegmentHeader {
            first_seq: u64::from_le_bytes(b[16..24].try_into().expect("8")),
            salt: u64::from_le_bytes(b[24..32].try_into().expect("8")),
        };
        Ok((h, version))
    }
}

/// What went wrong reading or writing a segment; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("{path}: {op} at offset {offset}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        offset: u64,
        source: io::Error,
    },
    #[error("{path}: bad segment header: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error("{path}: bad {} at offset {offset}: {reason}{}", describe_damage(batch), if *.to_end { " (torn tail: nothing valid follows)" } else { " (valid data follows: corruption)" })]
    BadRecord {
        path: PathBuf,
        /// Where the damaged batch (version 1: record) starts: where the
        /// valid data ends.
        offset: u64,
        reason: DecodeError,
        /// The bad bytes run to the end of the file (no complete batch, or
        /// version 1 no valid record, follows).
        to_end: bool,
        /// The damaged batch (None in a version-1 segment).
        batch: Option<DamagedBatch>,
    },
    #[error("{path}: record at offset {offset} has seq {found}, expected {expected}")]
    SeqMismatch {
        path: PathBuf,
        offset: u64,
        expected: u64,
        found: u64,
    },
    #[error("{path}: sealed segment ends at offset {offset} after seq {found_last:?}, its name says {expected_last}")]
    Truncated {
        path: PathBuf,
        offset: u64,
        expected_last: u64,
        found_last: Option<u64>,
    },
    #[error(
        "{path}: {len} unexpected bytes after the last record (seq {last_seq}) at offset {offset}"
    )]
    TrailingBytes {
        path: PathBuf,
        offset: u64,
        len: u64,
        last_seq: u64,
    },
}

/// The batch at a damaged offset (format versions 2 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DamagedBatch {
    /// The seq its first record should carry (the next expected one).
    pub first_seq: u64,
    /// The records its header announces, when the header is intact.
    pub count: Option<u32>,
}

fn describe_damage(batch: &Option<DamagedBatch>) -> String {
    match batch {
        None => "record".into(),
        Some(DamagedBatch {
            first_seq,
            count: Some(n),
        }) => format!(
            "batch (seqs {first_seq}..={}, {n} records)",
            first_seq + u64::from(*n) - 1
        ),
        Some(DamagedBatch {
            first_seq,
            count: None,
        }) => format!("batch (from seq {first_seq}, header unreadable)"),
    }
}

impl SegmentError {
    /// True when the damage is a torn write at the end of the file: the bad
    /// bytes run to the end and nothing valid follows. Only acceptable at the
    /// end of the newest open segment.
    pub fn is_torn_tail(&self) -> bool {
        matches!(self, SegmentError::BadRecord { to_end: true, .. })
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            SegmentError::Io { path, .. }
            | SegmentError::BadHeader { path, .. }
            | SegmentError::BadRecord { path, .. }
            | SegmentError::SeqMismatch { path, .. }
            | SegmentError::Truncated { path, .. }
            | SegmentError::TrailingBytes { path, .. } => path,
        }
    }

    /// The byte offset of the problem (0 for header errors).
    pub fn offset(&self) -> u64 {
        match self {
            SegmentError::BadHeader { .. } => 0,
            SegmentError::Io { offset, .. }
            | SegmentError::BadRecord { offset, .. }
            | SegmentError::SeqMismatch { offset, .. }
            | SegmentError::Truncated { offset, .. }
            | SegmentError::TrailingBytes { offset, .. } => *offset,
        }
    }

    /// True when the file does not exist (moved away meanwhile).
    pub fn is_not_found(&self) -> bool {
        matches!(self, SegmentError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Sequential reader of one segment file.
#[derive(Debug)]
pub struct SegmentReader {
    path: PathBuf,
    reader: ReadAhead,
    /// The payload of the last record returned: (start, len) in the
    /// read-ahead buffer.
    payload: (usize, usize),
    header: SegmentHeader,
    version: u32,
    /// How batches are framed (`None`: version 1, bare records).
    framing: Option<Framing>,
    /// Last seq promised by a sealed segment's name.
    sealed_last: Option<u64>,
    file_len: u64,
    offset: u64,
    next_seq: u64,
    last_seq: Option<u64>,
    /// The checked batch being read (versions 2 and 3).
    batch: Option<OpenBatch>,
    failed: bool,
    done: bool,
}

/// A record's sequence number and timestamp; its payload is
/// [`SegmentReader::payload`] until the reader moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    pub seq: u64,
    pub timestamp_ms: u64,
}

/// What the reader's steps answer.
type Next = Result<Option<RecordMeta>, SegmentError>;

/// Read-ahead over a file by pread: `buf[start..end]` holds the file's
/// bytes from [`ReadAhead::offset`]. Records and batches are checked and
/// decoded in place, without a copy or an allocation per record; the buffer
/// grows only to hold one batch (up to [`IN_MEMORY_BATCH_BYTES`]) or one
/// record, and can be handed to the next reader
/// ([`SegmentReader::into_buffer`]).
#[derive(Debug)]
struct ReadAhead {
    file: Box<dyn FsFile>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[end]`.
    pos: u64,
    /// The file's size when opened: the read-ahead asks for no more.
    len_hint: u64,
}

impl ReadAhead {
    /// File offset of the next unconsumed byte.
    fn offset(&self) -> u64 {
        self.pos - (self.end - self.start) as u64
    }

    /// Makes the next `n` bytes available (reading ahead as far as the
    /// buffer allows) and returns them; `UnexpectedEof` if the file ends
    /// first.
    fn fill(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.end - self.start < n {
            self.read_more(n)?;
        }
        Ok(&self.buf[self.start..self.start + n])
    }

    #[cold]
    fn read_more(&mut self, n: usize) -> io::Result<()> {
        if self.buf.len() - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < n {
                let ahead = self.len_hint.saturating_sub(self.pos) as usize + self.end;
                let want = n.max(ahead.min(READ_AHEAD_BYTES));
                self.buf.resize(want, 0);
            }
        }
        // Read ahead at most READ_AHEAD_BYTES past what is asked (a buffer
        // grown for a big batch is not filled whole each time): what was read
        // ahead is what the next compaction copies.
        let limit = (self.start + n.max(READ_AHEAD_BYTES)).min(self.buf.len());
        while self.end - self.start < n {
            match self.file.read_at(&mut self.buf[self.end..limit], self.pos) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(k) => {
                    self.end += k;
                    self.pos += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Consumes `n` bytes made available by [`ReadAhead::fill`].
    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
    }

    /// Moves to file offset `at` (forgets what was read ahead).
    fn seek(&mut self, at: u64) {
        self.start = 0;
        self.end = 0;
        self.pos = at;
    }
}

/// A batch whose checksum held, being read record by record.
#[derive(Debug, Clone, Copy)]
struct OpenBatch {
    start: u64,
    end: u64,
    remaining: u32,
    /// Version 3: the timestamp of the record before the next one.
    prev_ts: u64,
}

impl SegmentReader {
    /// Opens `path` and validates its header (magic, version, checksum, and
    /// the first seq against the file name when the name carries one).
    pub fn open(path: &Path) -> Result<SegmentReader, SegmentError> {
        Self::open_on(&*sys::real(), path)
    }

    /// [`SegmentReader::open`] through the file seam `fs`.
    pub fn open_on(fs: &dyn Fs, path: &Path) -> Result<SegmentReader, SegmentError> {
        Self::open_with(fs, path, Vec::new())
    }

    /// [`SegmentReader::open_on`] reusing `buffer` (from
    /// [`SegmentReader::into_buffer`] of the previous reader) for its
    /// read-ahead.
    pub fn open_with(
        fs: &dyn Fs,
        path: &Path,
        buffer: Vec<u8>,
    ) -> Result<SegmentReader, SegmentError> {
        let io_err = |op, source| SegmentError::Io {
            path: path.to_path_buf(),
            op,
            offset: 0,
            source,
        };
        let file = fs
            .open(path, OpenMode::Read)
            .map_err(|e| io_err("open", e))?;
        let file_len = file.size().map_err(|e| io_err("stat", e))?;
        let mut reader = ReadAhead {
            file,
            buf: buffer,
            start: 0,
            end: 0,
            pos: 0,
            len_hint: file_len,
        };
        let mut hb = [0u8; SEGMENT_HEADER_BYTES as usize];
        if file_len < SEGMENT_HEADER_BYTES {
            return Err(SegmentError::BadHeader {
                path: path.to_path_buf(),
                reason: format!("file is {file_len} bytes, shorter than the header"),
            });
        }
        const HB: usize = SEGMENT_HEADER_BYTES as usize;
        hb.copy_from_slice(reader.fill(HB).map_err(|e| io_err("read header", e))?);
        reader.consume(HB);
        let (header, version) =
            SegmentHeader::decode_versioned(&hb).map_err(|reason| SegmentError::BadHeader {
                path: path.to_path_buf(),
                reason,
            })?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let (name_first, sealed_last) = match layout::classify(name) {
            FileKind::OpenSegment { first_seq } => (Some(first_seq), None),
            FileKind::SealedSegment {
                first_seq,
                last_seq,
            } => (Some(first_seq), Some(last_seq)),
            _ => (None, None),
        };
        if let Some(f) = name_first {
            if f != header.first_seq {
                return Err(SegmentError::BadHeader {
                    path: path.to_path_buf(),
                    reason: format!(
                        "header says first seq {}, the file name says {f}",
                        header.first_seq
                    ),
                });
            }
        }
        Ok(SegmentReader {
            path: path.to_path_buf(),
            reader,
            payload: (0, 0),
            header,
            version,
            framing: Framing::of_version(version),
            sealed_last,
            file_len,
            offset: SEGMENT_HEADER_BYTES,
            next_seq: header.first_seq,
            last_seq: None,
            batch: None,
            failed: false,
            done: false,
        })
    }

    /// The read-ahead buffer, for the next reader
    /// ([`SegmentReader::open_with`]); dropped when a big batch or record
    /// grew it past the usual bound.
    pub fn into_buffer(self) -> Vec<u8> {
        let buf = self.reader.buf;
        if buf.len() > READ_AHEAD_BYTES.max(IN_MEMORY_BATCH_BYTES as usize) {
            Vec::new()
        } else {
            buf
        }
    }

    /// The payload of the record last returned by
    /// [`SegmentReader::next_meta`] (empty before the first).
    pub fn payload(&self) -> &[u8] {
        let (start, len) = self.payload;
        &self.reader.buf[start..start + len]
    }

    /// The first sequence number of the segment (from its header).
    pub fn first_seq(&self) -> u64 {
        self.header.first_seq
    }

    /// The segment's checksum salt.
    pub fn salt(&self) -> u64 {
        self.header.salt
    }

    /// The segment's format version (1: bare records, 2: batches, 3:
    /// batches of compact records).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Byte offset after the last good record (inside a batch being read,
    /// the next record; between batches, the next batch).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Seq of the last record returned.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The seq the next record must carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file when it was opened.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    fn fail(&mut self, e: SegmentError) -> Next {
        self.failed = true;
        Err(e)
    }

    fn io(&self, op: &'static str, source: io::Error) -> SegmentError {
        SegmentError::Io {
            path: self.path.clone(),
            op,
            offset: self.offset,
            source,
        }
    }

    /// Reads bytes `from..file_len` (the rest of the file) with pread; only
    /// for a rest shorter than a record or batch header.
    fn read_rest(&self, from: u64) -> Result<Vec<u8>, SegmentError> {
        let len = self.file_len.saturating_sub(from);
        debug_assert!(len < MAX_BATCH_HEADER_BYTES.max(RECORD_HEADER_BYTES) as u64);
        let mut buf = vec![0u8; len as usize];
        self.file()
            .read_exact_at(&mut buf, from)
            .map_err(|e| self.io("read", e))?;
        Ok(buf)
    }

    fn file(&self) -> &dyn FsFile {
        &*self.reader.file
    }

    /// True when bytes `from..file_len` are all zeros (preallocated space),
    /// read a chunk at a time.
    fn rest_is_zero(&self, from: u64) -> Result<bool, SegmentError> {
        let mut buf = vec![0u8; SCAN_CHUNK_BYTES.min(self.file_len.saturating_sub(from)) as usize];
        let mut at = from;
        while at < self.file_len {
            let n = (self.file_len - at).min(buf.len() as u64) as usize;
            self.file()
                .read_exact_at(&mut buf[..n], at)
                .map_err(|e| self.io("read", e))?;
            if buf[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }

    /// The checksum over the records of the batch whose header `h` stands at
    /// `at`, computed a chunk at a time (pread: the sequential reader's
    /// position does not move).
    fn batch_crc(&self, at: u64, h: &BatchHeader) -> Result<u32, SegmentError> {
        let mut crc = BatchCrc::new(self.header.salt);
        let mut buf = vec![0u8; h.len.min(SCAN_CHUNK_BYTES) as usize];
        let mut pos = at + h.framing.header_bytes() as u64;
        let end = at + h.total_len();
        while pos < end {
            let n = (end - pos).min(buf.len() as u64) as usize;
            self.file()
                .read_exact_at(&mut buf[..n], pos)
                .map_err(|e| self.io("read", e))?;
            crc.update(&buf[..n]);
            pos += n as u64;
        }
        Ok(crc.finalize())
    }

    /// The first complete batch of this segment (header and records check,
    /// first seq at or after the next expected one) starting anywhere in
    /// `from..file_len`: its offset and header.
    ///
    /// Only positions holding the batch magic and a header whose salted
    /// checksum holds cost a checksum over the batch; the file is read a
    /// chunk at a time, so memory stays bounded whatever the segment's size.
    fn next_complete_batch(&self, from: u64) -> Result<Option<(u64, BatchHeader)>, SegmentError> {
        let Some(framing) = self.framing else {
            return Ok(None);
        };
        let end = self.file_len;
        let header_bytes = framing.header_bytes();
        let magic = framing.magic();
        let hb = header_bytes as u64;
        if end.saturating_sub(from) < hb {
            return Ok(None);
        }
        let salt = self.header.salt;
        let lo = self.next_seq;
        let mut buf = vec![0u8; (SCAN_CHUNK_BYTES + hb).min(end - from) as usize];
        let mut base = from;
        while end - base >= hb {
            let n = (end - base).min(buf.len() as u64) as usize;
            self.file()
                .read_exact_at(&mut buf[..n], base)
                .map_err(|e| self.io("read", e))?;
            let positions = (n - header_bytes + 1).min(SCAN_CHUNK_BYTES as usize);
            for i in 0..positions {
                if buf[i..i + 4] != magic {
                    continue;
                }
                let Ok(h) = BatchHeader::decode(framing, salt, &buf[i..i + header_bytes]) else {
                    continue;
                };
                let at = base + i as u64;
                if h.first_seq < lo || at.saturating_add(h.total_len()) > end {
                    continue;
                }
                if self.batch_crc(at, &h)? == h.crc {
                    return Ok(Some((at, h)));
                }
            }
            base += positions as u64;
        }
        Ok(None)
    }

    /// True when no valid record of this segment starts anywhere in
    /// `from..file_len` (version 1).
    ///
    /// A valid record there would carry a seq at or after the expected one,
    /// and at most one seq per `RECORD_HEADER_BYTES + 1` bytes: that is
    /// checked before the checksum, so the scan stays linear. (Otherwise
    /// every position whose bytes read as a plausible length, as in binary
    /// values, costs a checksum over up to `MAX_RECORD_BYTES`.) The file is
    /// read a chunk at a time; a candidate record that runs past the chunk
    /// is read on its own, so memory stays bounded by the chunk and one
    /// record, whatever the segment's size.
    fn nothing_valid_from(&self, from: u64) -> Result<bool, SegmentError> {
        let end = self.file_len;
        if end.saturating_sub(from) < RECORD_HEADER_BYTES as u64 {
            return Ok(true);
        }
        let salt = self.header.salt;
        let lo = self.next_seq;
        let hi = lo.saturating_add((end - from) / RECORD_HEADER_BYTES as u64 + 1);
        let header_bytes = RECORD_HEADER_BYTES as u64;
        // A chunk overlaps the next by a header, so every position is
        // examined once with its whole header in the buffer.
        let mut buf = vec![0u8; (SCAN_CHUNK_BYTES + header_bytes).min(end - from) as usize];
        let mut base = from;
        while end - base >= header_bytes {
            let n = (end - base).min(buf.len() as u64) as usize;
            self.file()
                .read_exact_at(&mut buf[..n], base)
                .map_err(|e| self.io("read", e))?;
            let positions = (n - RECORD_HEADER_BYTES + 1).min(SCAN_CHUNK_BYTES as usize);
            for i in 0..positions {
                let seq = u64::from_le_bytes(buf[i + 8..i + 16].try_into().expect("8 bytes"));
                if seq < lo || seq > hi {
                    continue;
                }
                let header: &[u8; RECORD_HEADER_BYTES] = buf[i..i + RECORD_HEADER_BYTES]
                    .try_into()
                    .expect("24 bytes");
                let Ok(len) = record::peek_len(header) else {
                    continue;
                };
                let total = record::encoded_len(len as usize);
                if base + i as u64 + total as u64 > end {
                    continue;
                }
                let valid = if i + total <= n {
                    record::check_parts(salt, header, &buf[i + RECORD_HEADER_BYTES..i + total])
                        .is_ok()
                } else {
                    let mut payload = vec![0u8; len as usize];
                    self.file()
                        .read_exact_at(&mut payload, base + (i + RECORD_HEADER_BYTES) as u64)
                        .map_err(|e| self.io("read", e))?;
                    record::check_parts(salt, header, &payload).is_ok()
                };
                if valid {
                    return Ok(false);
                }
            }
            base += positions as u64;
        }
        Ok(true)
    }

    /// Damage at `self.offset` (version 1: a record; versions 2 and 3: the batch
    /// starting there, `count` from its header when intact): a torn tail
    /// when nothing valid follows.
    fn damage(&mut self, reason: DecodeError, count: Option<u32>) -> Next {
        let to_end = if self.framing.is_some() {
            self.next_complete_batch(self.offset + 1)
                .map(|b| b.is_none())
        } else {
            self.nothing_valid_from(self.offset + 1)
        };
        let to_end = match to_end {
            Ok(t) => t,
            Err(e) => return self.fail(e),
        };
        let batch = self.framing.map(|_| DamagedBatch {
            first_seq: self.next_seq,
            count,
        });
        let e = SegmentError::BadRecord {
            path: self.path.clone(),
            offset: self.offset,
            reason,
            to_end,
            batch,
        };
        self.fail(e)
    }

    fn bad_record(&mut self, reason: DecodeError) -> Next {
        self.damage(reason, None)
    }

    /// A record inside a batch whose checksum held does not fit it: the
    /// batch was written wrong. Corruption, at the batch's start.
    fn bad_in_batch(&mut self, b: OpenBatch) -> Next {
        let e = SegmentError::BadRecord {
            path: self.path.clone(),
            offset: b.start,
            reason: DecodeError::BatchMismatch,
            to_end: false,
            batch: Some(DamagedBatch {
                first_seq: self.next_seq,
                count: None,
            }),
        };
        self.fail(e)
    }

    fn end(&mut self) -> Next {
        if let Some(expected_last) = self.sealed_last {
            if self.last_seq != Some(expected_last) {
                let e = SegmentError::Truncated {
                    path: self.path.clone(),
                    offset: self.offset,
                    expected_last,
                    found_last: self.last_seq,
                };
                return self.fail(e);
            }
        }
        self.done = true;
        Ok(None)
    }

    /// Before a record or a batch: the clean end of the file, trailing
    /// bytes after a sealed segment's last record, or a rest too short for
    /// a header. `Some` answers [`SegmentReader::next_record`].
    fn at_boundary(&mut self, header_bytes: usize) -> Option<Next> {
        let remaining = self.file_len - self.offset;
        if remaining == 0 {
            return Some(self.end());
        }
        if let Some(last) = self.sealed_last {
            if self.last_seq == Some(last) {
                let e = SegmentError::TrailingBytes {
                    path: self.path.clone(),
                    offset: self.offset,
                    len: remaining,
                    last_seq: last,
                };
                return Some(self.fail(e));
            }
        }
        if remaining < header_bytes as u64 {
            let rest = match self.read_rest(self.offset) {
                Ok(r) => r,
                Err(e) => return Some(self.fail(e)),
            };
            if self.sealed_last.is_none() && rest.iter().all(|&b| b == 0) {
                return Some(self.end());
            }
            return Some(self.bad_record(DecodeError::Incomplete {
                needed: header_bytes,
                available: rest.len(),
            }));
        }
        None
    }

    /// Versions 2 and 3, between batches: reads and checks the next batch
    /// whole. `None` when a checked batch is open and its records can be
    /// read.
    fn start_batch(&mut self, framing: Framing) -> Option<Next> {
        let header_bytes = framing.header_bytes();
        if let Some(r) = self.at_boundary(header_bytes) {
            return Some(r);
        }
        let decoded = match self.reader.fill(header_bytes) {
            Ok(b) => BatchHeader::decode(framing, self.header.salt, b),
            Err(e) => {
                let e = self.io("read batch header", e);
                return Some(self.fail(e));
            }
        };
        self.reader.consume(header_bytes);
        let h = match decoded {
            Ok(h) => h,
            Err(DecodeError::ZeroHeader) if self.sealed_last.is_none() => {
                return Some(match self.rest_is_zero(self.offset) {
                    Ok(true) => self.end(),
                    Ok(false) => self.bad_record(DecodeError::ZeroHeader),
                    Err(e) => self.fail(e),
                });
            }
            Err(reason) => return Some(self.bad_record(reason)),
        };
        let remaining = self.file_len - self.offset;
        if h.total_len() > remaining {
            return Some(self.damage(
                DecodeError::Incomplete {
                    needed: usize::try_from(h.total_len()).unwrap_or(usize::MAX),
                    available: remaining as usize,
                },
                Some(h.count),
            ));
        }
        // Version 3 records have no checksum of their own: before the first
        // is yielded, the records of a batch in memory must also fill it
        // exactly (so a batch is read whole or not at all even when a
        // checksum collides). A bigger batch is checked record by record.
        let mut fits = true;
        let computed = if h.len <= IN_MEMORY_BATCH_BYTES {
            // read once: the records are then checked and decoded in memory
            match self.reader.fill(h.len as usize) {
                Ok(records) => {
                    if framing == Framing::V3 {
                        fits = batch::compact_records_fit(h.count, records);
                    }
                    batch::records_crc(self.header.salt, records)
                }
                Err(e) => {
                    let e = self.io("read", e);
                    return Some(self.fail(e));
                }
            }
        } else {
            match self.batch_crc(self.offset, &h) {
                Ok(c) => c,
                Err(e) => return Some(self.fail(e)),
            }
        };
        if computed != h.crc {
            return Some(self.damage(
                DecodeError::BadBatchChecksum {
                    stored: h.crc,
                    computed,
                },
                Some(h.count),
            ));
        }
        if h.first_seq != self.next_seq {
            let e = SegmentError::SeqMismatch {
                path: self.path.clone(),
                offset: self.offset,
                expected: self.next_seq,
                found: h.first_seq,
            };
            return Some(self.fail(e));
        }
        let open = OpenBatch {
            start: self.offset,
            end: self.offset + h.total_len(),
            remaining: h.count,
            prev_ts: h.base_ts,
        };
        if !fits {
            return Some(self.bad_in_batch(open));
        }
        self.batch = Some(open);
        self.offset += header_bytes as u64;
        None
    }

    /// After damage (the reader failed): moves to the next complete batch
    /// of this segment, if any, and returns its offset and first seq; the
    /// seqs between [`SegmentReader::next_seq`] before the call and that
    /// first seq are lost. Version 1 segments have no batches: `None`.
    pub fn resync(&mut self) -> Result<Option<(u64, u64)>, SegmentError> {
        if self.framing.is_none() || self.done {
            return Ok(None);
        }
        // The sequential reader sits at `pos`, at or after the damage; it
        // only moves forward.
        let pos = self.reader.offset();
        let from = (self.batch.map_or(self.offset, |b| b.start) + 1).max(pos);
        let Some((at, h)) = self.next_complete_batch(from)? else {
            return Ok(None);
        };
        self.reader.seek(at);
        self.offset = at;
        self.next_seq = h.first_seq;
        self.batch = None;
        self.failed = false;
        Ok(Some((at, h.first_seq)))
    }

    /// The next record, `Ok(None)` at the clean end of the segment. After an
    /// error the reader stays failed: it never returns records past damage
    /// (unless [`SegmentReader::resync`] finds a complete batch after it).
    pub fn next_record(&mut self) -> Result<Option<Record>, SegmentError> {
        Ok(self.next_meta()?.map(|m| Record {
            seq: m.seq,
            timestamp_ms: m.timestamp_ms,
            payload: self.payload().to_vec(),
        }))
    }

    /// [`SegmentReader::next_record`] without copying the payload: it is
    /// [`SegmentReader::payload`] until the next call.
    pub fn next_meta(&mut self) -> Next {
        if self.done {
            return Ok(None);
        }
        if self.failed {
            return Err(SegmentError::BadRecord {
                path: self.path.clone(),
                offset: self.offset,
                reason: DecodeError::Incomplete {
                    needed: 0,
                    available: 0,
                },
                to_end: false,
                batch: None,
            });
        }
        if let Some(framing) = self.framing {
            if self.batch.is_none() {
                if let Some(r) = self.start_batch(framing) {
                    return r;
                }
            }
            return match framing {
                Framing::V3 => self.compact_record_in_batch(),
                Framing::V2 => self.record_in_batch(),
            };
        }
        if let Some(r) = self.at_boundary(RECORD_HEADER_BYTES) {
            return r;
        }
        let remaining = self.file_len - self.offset;
        let mut header = [0u8; RECORD_HEADER_BYTES];
        match self.reader.fill(RECORD_HEADER_BYTES) {
            Ok(b) => header.copy_from_slice(b),
            Err(e) => {
                let e = self.io("read record header", e);
                return self.fail(e);
            }
        }
        self.reader.consume(RECORD_HEADER_BYTES);
        let len = match record::peek_len(&header) {
            Ok(len) => len,
            Err(DecodeError::ZeroHeader) if self.sealed_last.is_none() => {
                match self.rest_is_zero(self.offset) {
                    Ok(true) => return self.end(),
                    Ok(false) => return self.bad_record(DecodeError::ZeroHeader),
                    Err(e) => return self.fail(e),
                }
            }
            Err(reason) => return self.bad_record(reason),
        };
        let total = record::encoded_len(len as usize) as u64;
        if total > remaining {
            // Announced length runs past the end: a torn write, unless a valid
            // record follows (then the length field itself is damaged).
            return self.bad_record(DecodeError::Incomplete {
                needed: total as usize,
                available: remaining as usize,
            });
        }
        let checked = match self.reader.fill(len as usize) {
            Ok(payload) => record::check_parts(self.header.salt, &header, payload),
            Err(e) => {
                let e = self.io("read record", e);
                return self.fail(e);
            }
        };
        self.payload = (self.reader.start, len as usize);
        self.reader.consume(len as usize);
        let record = match checked {
            Ok((seq, timestamp_ms)) => RecordMeta { seq, timestamp_ms },
            Err(reason) => return self.bad_record(reason),
        };
        if record.seq != self.next_seq {
            let e = SegmentError::SeqMismatch {
                path: self.path.clone(),
                offset: self.offset,
                expected: self.next_seq,
                found: record.seq,
            };
            return self.fail(e);
        }
        self.offset += total;
        self.next_seq += 1;
        self.last_seq = Some(record.seq);
        Ok(Some(record))
    }

    /// Version 3: the next compact record of the open, checked batch. (A
    /// batch up to [`IN_MEMORY_BATCH_BYTES`] is in the read-ahead buffer
    /// whole: nothing is read here.)
    #[inline]
    fn compact_record_in_batch(&mut self) -> Next {
        let b = self.batch.expect("a checked batch is open");
        let left = b.end - self.offset;
        let window = batch::framed_header_window(left);
        let h = match self.reader.fill(window) {
            Ok(bytes) => record::decode_framed_header(b.prev_ts, bytes),
            Err(e) => {
                let e = self.io("read record header", e);
                return self.fail(e);
            }
        };
        let remaining = b.remaining - 1;
        let h = match h {
            Ok(h)
                if h.total_len() as u64 <= left
                    && (remaining > 0 || h.total_len() as u64 == left) =>
            {
                h
            }
            _ => return self.bad_in_batch(b),
        };
        self.reader.consume(h.header_bytes);
        let len = h.len as usize;
        if let Err(e) = self.reader.fill(len) {
            let e = self.io("read record", e);
            return self.fail(e);
        }
        self.payload = (self.reader.start, len);
        self.reader.consume(len);
        let seq = self.next_seq;
        self.offset += h.total_len() as u64;
        self.next_seq += 1;
        self.last_seq = Some(seq);
        if remaining == 0 {
            self.batch = None;
        } else {
            self.batch = Some(OpenBatch {
                remaining,
                prev_ts: h.timestamp_ms,
                ..b
            });
        }
        Ok(Some(RecordMeta {
            seq,
            timestamp_ms: h.timestamp_ms,
        }))
    }

    /// Version 2: the next record of the open, checked batch.
    fn record_in_batch(&mut self) -> Next {
        let b = self.batch.expect("a checked batch is open");
        if self.offset + RECORD_HEADER_BYTES as u64 > b.end {
            return self.bad_in_batch(b);
        }
        let mut header = [0u8; RECORD_HEADER_BYTES];
        match self.reader.fill(RECORD_HEADER_BYTES) {
            Ok(h) => header.copy_from_slice(h),
            Err(e) => {
                let e = self.io("read record header", e);
                return self.fail(e);
            }
        }
        self.reader.consume(RECORD_HEADER_BYTES);
        let Ok(len) = record::peek_len(&header) else {
            return self.bad_in_batch(b);
        };
        let total = record::encoded_len(len as usize) as u64;
        if self.offset + total > b.end {
            return self.bad_in_batch(b);
        }
        let checked = match self.reader.fill(len as usize) {
            Ok(payload) => record::check_parts(self.header.salt, &header, payload),
            Err(e) => {
                let e = self.io("read record", e);
                return self.fail(e);
            }
        };
        self.payload = (self.reader.start, len as usize);
        self.reader.consume(len as usize);
        let Ok((seq, timestamp_ms)) = checked else {
            return self.bad_in_batch(b);
        };
        if seq != self.next_seq {
            return self.bad_in_batch(b);
        }
        self.offset += total;
        self.next_seq += 1;
        self.last_seq = Some(seq);
        let remaining = b.remaining - 1;
        if remaining == 0 {
            if self.offset != b.end {
                return self.bad_in_batch(b);
            }
            self.batch = None;
        } else {
            self.batch = Some(OpenBatch { remaining, ..b });
        }
        Ok(Some(RecordMeta { seq, timestamp_ms }))
    }
}

/// What [`verify_segment`] found in a whole, valid segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    pub first_seq: u64,
    /// None when the segment holds no record.
    pub last_seq: Option<u64>,
    pub records: u64,
    /// Bytes of header and records (the valid data, without preallocated zeros).
    pub bytes: u64,
    pub first_timestamp_ms: Option<u64>,
    pub last_timestamp_ms: Option<u64>,
}

/// Reads every record of `path`, checking each checksum and the contiguity of
/// sequence numbers.
pub fn verify_segment(path: &Path) -> Result<SegmentSummary, SegmentError> {
    verify_segment_on(&*sys::real(), path)
}

/// [`verify_segment`] through the file seam `fs`.
pub fn verify_segment_on(fs: &dyn Fs, path: &Path) -> Result<SegmentSummary, SegmentError> {
    let mut r = SegmentReader::open_on(fs, path)?;
    let mut s = SegmentSummary {
        first_seq: r.first_seq(),
        last_seq: None,
        records: 0,
        bytes: 0,
        first_timestamp_ms: None,
        last_timestamp_ms: None,
    };
    while let Some(rec) = r.next_meta()? {
        s.records += 1;
        s.last_seq = Some(rec.seq);
        s.first_timestamp_ms.get_or_insert(rec.timestamp_ms);
        s.last_timestamp_ms = Some(rec.timestamp_ms);
    }
    s.bytes = r.offset();
    Ok(s)
}

/// A fresh random salt (std's per-process random hash keys, mixed with the
/// clock and the first seq).
pub fn new_salt(first_seq: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(first_seq);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A zero-filled, preallocated file at `DIR/<name>.tmp`, waiting to become
/// the next open segment.
#[derive(Debug)]
pub struct PreparedFile {
    fs: Arc<dyn Fs>,
    file: Box<dyn FsFile>,
    path: PathBuf,
    /// Bytes fallocate reserved (0: sparse).
    allocated: u64,
}

/// Zeros are written (and made durable) this many bytes at a time, so that
/// filling a segment never queues more than this behind the open
/// segment's fdatasync.
pub const ZERO_FILL_CHUNK: usize = 4 << 20;

/// Name of the engine's preallocated next-segment file.
pub const PREPARED_SEGMENT_NAME: &str = "cmdlog-next.tmp";

impl PreparedFile {
    /// Creates (replacing a stale one) and preallocates `DIR/cmdlog-next.tmp`.
    pub fn create(dir: &Path, prealloc_bytes: u64) -> Result<PreparedFile, SegmentError> {
        Self::create_on(sys::real(), dir, prealloc_bytes)
    }

    /// [`PreparedFile::create`] through the file seam `fs`.
    pub fn create_on(
        fs: Arc<dyn Fs>,
        dir: &Path,
        prealloc_bytes: u64,
    ) -> Result<PreparedFile, SegmentError> {
        let path = dir.join(PREPARED_SEGMENT_NAME);
        let io_err = |op, source| SegmentError::Io {
            path: path.clone(),
            op,
            offset: 0,
            source,
        };
        let file = fs
            .open(&path, OpenMode::CreateTruncate)
            .map_err(|e| io_err("create", e))?;
        let mut allocated = 0;
        match file.fallocate(prealloc_bytes) {
            Ok(true) => allocated = prealloc_bytes,
            Ok(false) => {}
            Err(e) if sys::is_enospc(&e) => {
                // Not enough room to reserve a whole segment: go on without
                // preallocation (the free-space reserve refuses writes before
                // the volume is full).
                tracing::warn!(path = %path.display(), prealloc_bytes, "not enough space to preallocate the next segment; creating it sparse");
                file.set_len(0).map_err(|e| io_err("truncate", e))?;
            }
            Err(e) => return Err(io_err("fallocate", e)),
        }
        Ok(PreparedFile {
            fs,
            file,
            path,
            allocated,
        })
    }

    /// Writes zeros over the space fallocate reserved and makes them
    /// durable (nothing when it reserved none).
    ///
    /// fallocate leaves *unwritten* extents: the first write into one
    /// converts it, a metadata change, so every fdatasync of the open
    /// segment that lands in new extents commits the file system's journal
    /// (on ext4 and XFS). Over written zeros an fdatasync flushes only the
    /// data: measured on ext4, 4 KB writes, fdatasync p50 70-110 us against
    /// 180-260 us (`docs/engine.md`, Benchmark). PostgreSQL zero-fills its
    /// WAL files for the same reason. The cost: each segment is written
    /// twice (off the write path, [`ZERO_FILL_CHUNK`] at a time).
    pub fn zero_fill(&self) -> Result<(), SegmentError> {
        let zeros = vec![0u8; ZERO_FILL_CHUNK];
        let mut at = 0u64;
        while at < self.allocated {
            let n = (self.allocated - at).min(ZERO_FILL_CHUNK as u64) as usize;
            let io_err = |op, source| SegmentError::Io {
                path: self.path.clone(),
                op,
                offset: at,
                source,
            };
            self.file
                .write_all_at(&zeros[..n], at)
                .map_err(|e| io_err("write zeros", e))?;
            self.file.fdatasync().map_err(|e| io_err("fdatasync", e))?;
            at += n as u64;
        }
        Ok(())
    }
}

/// Appends records to the open segment. Durability is explicit: [`append`]
/// writes, [`sync`] makes it durable; nothing is durable before `sync` returns.
///
/// [`append`]: SegmentWriter::append
/// [`sync`]: SegmentWriter::sync
#[derive(Debug)]
pub struct SegmentWriter {
    fs: Arc<dyn Fs>,
    file: Box<dyn FsFile>,
    dir: PathBuf,
    path: PathBuf,
    header: SegmentHeader,
    /// Bytes of segment header, batch headers and records written.
    len: u64,
    next_seq: u64,
    records: u64,
    created: Instant,
}

impl SegmentWriter {
    /// Creates `DIR/cmdlog-{first_seq}.open`, preallocated to `prealloc_bytes`.
    pub fn create(
        dir: &Path,
        first_seq: u64,
        prealloc_bytes: u64,
    ) -> Result<SegmentWriter, SegmentError> {
        Self::create_on(sys::real(), dir, first_seq, prealloc_bytes)
    }

    /// [`SegmentWriter::create`] through the file seam `fs`.
    pub fn create_on(
        fs: Arc<dyn Fs>,
        dir: &Path,
        first_seq: u64,
        prealloc_bytes: u64,
    ) -> Result<SegmentWriter, SegmentError> {
        let prepared = PreparedFile::create_on(fs, dir, prealloc_bytes)?;
        Self::from_prepared(dir, prepared, first_seq)
    }

    /// Turns a prepared file into the open segment: writes the header,
    /// fdatasync, renames it to its open name, fsyncs the directory.
    pub fn from_prepared(
        dir: &Path,
        prepared: PreparedFile,
        first_seq: u64,
    ) -> Result<SegmentWriter, SegmentError> {
        let header = SegmentHeader {
            first_seq,
            salt: new_salt(first_seq),
        };
        let path = dir.join(layout::open_segment_name(first_seq));
        let io_err = |op, source| SegmentError::Io {
            path: prepared.path.clone(),
            op,
            offset: 0,
            source,
        };
        let fs = prepared.fs;
        prepared
            .file
            .write_all_at(&header.encode(), 0)
            .map_err(|e| io_err("write header", e))?;
        prepared
            .file
            .fdatasync()
            .map_err(|e| io_err("fdatasync", e))?;
        fs.rename(&prepared.path, &path)
            .map_err(|e| io_err("rename", e))?;
        fs.fsync_dir(dir).map_err(|e| io_err("fsync dir", e))?;
        tracing::debug!(path = %path.display(), "opened segment");
        Ok(SegmentWriter {
            fs,
            file: prepared.file,
            dir: dir.to_path_buf(),
            path,
            header,
            len: SEGMENT_HEADER_BYTES,
            next_seq: first_seq,
            records: 0,
            created: Instant::now(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The file seam the segment is written through.
    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.fs
    }
    pub fn salt(&self) -> u64 {
        self.header.salt
    }
    pub fn first_seq(&self) -> u64 {
        self.header.first_seq
    }
    /// Seq the next record must carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    /// Bytes of header and records written.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Records written.
    pub fn records(&self) -> u64 {
        self.records
    }
    /// True when the segment holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
    /// When the segment was opened.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Writes the records of `batch` (seqs `next_seq..next_seq + count`)
    /// after the last record, as one batch ([`crate::batch`]: its header is
    /// filled in the encoder's buffer, then header and records go out in one
    /// write). Not durable until [`SegmentWriter::sync`]; after a power cut
    /// the batch is read whole or not at all. On error the segment must not
    /// be used again: part of the batch may be on disk. An empty batch
    /// writes nothing.
    pub fn append(&mut self, batch: &mut BatchEncoder) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let count = u64::from(batch.count());
        let framed = batch.finish(self.header.salt, self.next_seq);
        Self::write_framed(&*self.file, &mut self.len, framed)?;
        self.next_seq += count;
        self.records += count;
        Ok(())
    }

    /// Frames `records` (timestamp, payload) as one batch and appends it
    /// ([`SegmentWriter::append`] with a fresh encoder).
    pub fn append_records<'a>(
        &mut self,
        records: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> io::Result<()> {
        let mut batch = BatchEncoder::new();
        for (ts, payload) in records {
            batch.push(ts, payload);
        }
        self.append(&mut batch)
    }

    fn write_framed(file: &dyn FsFile, len: &mut u64, buf: &[u8]) -> io::Result<()> {
        fail::fail_point!("segment::write", |_| Err(io::Error::from_raw_os_error(
            libc::EIO
        )));
        fail::fail_point!("segment::enospc", |_| Err(io::Error::from_raw_os_error(
            libc::ENOSPC
        )));
        fail::fail_point!("segment::short-write", |_| {
            file.write_all_at(&buf[..buf.len() / 2], *len)?;
            Err(io::Error::from_raw_os_error(libc::EIO))
        });
        file.write_all_at(buf, *len)?;
        *len += buf.len() as u64;
        Ok(())
    }

    /// fdatasync: everything appended so far is durable when this returns Ok.
    pub fn sync(&mut self) -> io::Result<()> {
        fail::fail_point!("segment::fsync", |_| Err(io::Error::from_raw_os_error(
            libc::EIO
        )));
        self.file.fdatasync()
    }

    /// Seals the segment: cuts the preallocated rest, fsync, renames it to its
    /// sealed name, fsyncs the directory. Returns the sealed path. The segment
    /// must hold at least one record.
    pub fn seal(self) -> Result<PathBuf, SegmentError> {
        assert!(self.records > 0, "sealing an empty segment");
        seal_file_on(
            &*self.fs,
            &self.dir,
            &self.path,
            &*self.file,
            self.header.first_seq,
            self.next_seq - 1,
            self.len,
        )
    }

    /// Removes an empty open segment (and fsyncs the directory).
    pub fn discard_empty(self) -> Result<(), SegmentError> {
        assert!(self.records == 0, "discarding a segment with records");
        remove_file_durably_on(&*self.fs, &self.dir, &self.path)
    }
}

/// Unlinks `path` and fsyncs `dir`.
pub fn remove_file_durably(dir: &Path, path: &Path) -> Result<(), SegmentError> {
    remove_file_durably_on(&*sys::real(), dir, path)
}

/// [`remove_file_durably`] through the file seam `fs`.
pub fn remove_file_durably_on(fs: &dyn Fs, dir: &Path, path: &Path) -> Result<(), SegmentError> {
    let io_err = |op, source| SegmentError::Io {
        path: path.to_path_buf(),
        op,
        offset: 0,
        source,
    };
    fs.unlink(path).map_err(|e| io_err("unlink", e))?;
    fs.fsync_dir(dir).map_err(|e| io_err("fsync dir", e))
}

/// Seals an open segment file whose valid data ends at `valid_len` with
/// record `last_seq`: truncate, fsync, rename to the sealed name, fsync dir.
pub fn seal_file(
    dir: &Path,
    path: &Path,
    file: &dyn FsFile,
    first_seq: u64,
    last_seq: u64,
    valid_len: u64,
) -> Result<PathBuf, SegmentError> {
    seal_file_on(
        &*sys::real(),
        dir,
        path,
        file,
        first_seq,
        last_seq,
        valid_len,
    )
}

/// [`seal_file`] through the file seam `fs`.
pub fn seal_file_on(
    fs: &dyn Fs,
    dir: &Path,
    path: &Path,
    file: &dyn FsFile,
    first_seq: u64,
    last_seq: u64,
    valid_len: u64,
) -> Result<PathBuf, SegmentError> {
    let io_err = |op, source| SegmentError::Io {
        path: path.to_path_buf(),
        op,
        offset: valid_len,
        source,
    };
    file.set_len(valid_len).map_err(|e| io_err("truncate", e))?;
    file.fsync().map_err(|e| io_err("fsync", e))?;
    let sealed = dir.join(layout::sealed_segment_name(first_seq, last_seq));
    fs.rename(path, &sealed).map_err(|e| io_err("rename", e))?;
    fs.fsync_dir(dir).map_err(|e| io_err("fsync dir", e))?;
    tracing::info!(path = %sealed.display(), "sealed segment");
    Ok(sealed)
}

/// The bytes of a version-2 segment (the format written before compact
/// records) from `first_seq` under `salt`, one batch per entry of
/// `batches` (timestamp, payload each), as the version-2 writer framed
/// them; `pad_to` zeros after the last batch stand for preallocation.
/// Kept so that tests write what older builds wrote (and check it against
/// files those builds wrote: `engine/tests/fixtures/v2`).
pub fn encode_v2_segment(
    first_seq: u64,
    salt: u64,
    batches: &[Vec<(u64, Vec<u8>)>],
    pad_to: usize,
) -> Vec<u8> {
    let mut out = SegmentHeader { first_seq, salt }.encode_version(2).to_vec();
    let mut seq = first_seq;
    for b in batches {
        let first = seq;
        let mut records = Vec::new();
        for (ts, payload) in b {
            record::encode_parts(salt, seq, *ts, payload, &mut records);
            seq += 1;
        }
        let h = batch::header_for_v2(salt, first, b.len() as u64, &records);
        out.extend_from_slice(&h.encode_v2(salt));
        out.extend_from_slice(&records);
    }
    if out.len() < pad_to {
        out.resize(pad_to, 0);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::batch::BATCH_HEADER_BYTES;

    /// Writes a *version 1* segment (bare records, the format before
    /// batches) with `n` records starting at `first` and returns its path:
    /// open (preallocated to 4096 bytes) or sealed when `seal`. The
    /// record-level tests below read the old format through it.
    pub(crate) fn write_segment(dir: &Path, first: u64, n: u64, seal: bool) -> PathBuf {
        let salt = new_salt(first);
        let mut b = SegmentHeader {
            first_seq: first,
            salt,
        }
        .encode()
        .to_vec();
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32fast::hash(&b[0..32]);
        b[32..36].copy_from_slice(&crc.to_le_bytes());
        for seq in first..first + n {
            record::encode_parts(
                salt,
                seq,
                1000 + seq,
                format!("cmd{seq}").as_bytes(),
                &mut b,
            );
        }
        let path = if seal {
            dir.join(layout::sealed_segment_name(first, first + n - 1))
        } else {
            b.resize(4096, 0);
            dir.join(layout::open_segment_name(first))
        };
        std::fs::write(&path, &b).unwrap();
        path
    }

    fn read_all(path: &Path) -> Result<Vec<u64>, SegmentError> {
        let mut r = SegmentReader::open(path)?;
        let mut seqs = Vec::new();
        while let Some(rec) = r.next_record()? {
            assert_eq!(rec.payload, format!("cmd{}", rec.seq).into_bytes());
            seqs.push(rec.seq);
        }
        Ok(seqs)
    }

    fn rec_offset(i: u64) -> u64 {
        // all test payloads "cmdN" with N of 1 digit when < 10
        SEGMENT_HEADER_BYTES + i * (RECORD_HEADER_BYTES as u64 + 4)
    }

    #[test]
    fn open_and_sealed_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let open = write_segment(dir.path(), 1, 5, false);
        assert_eq!(
            std::fs::metadata(&open).unwrap().len(),
            4096,
            "preallocated"
        );
        assert_eq!(read_all(&open).unwrap(), vec![1, 2, 3, 4, 5]);
        let sealed = write_segment(dir.path(), 6, 3, true);
        assert_eq!(
            sealed.file_name().unwrap().to_str().unwrap(),
            layout::sealed_segment_name(6, 8)
        );
        assert_eq!(read_all(&sealed).unwrap(), vec![6, 7, 8]);
        let s = verify_segment(&sealed).unwrap();
        assert_eq!((s.first_seq, s.last_seq, s.records), (6, Some(8), 3));
        assert_eq!(s.bytes, std::fs::metadata(&sealed).unwrap().len());
        assert_eq!(
            (s.first_timestamp_ms, s.last_timestamp_ms),
            (Some(1006), Some(1008))
        );
    }

    #[test]
    fn torn_tail_is_told_from_corruption_in_the_middle() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), 1, 5, false);
        let good = std::fs::read(&path).unwrap();

        // torn: last record half written
        let mut b = good.clone();
        let last = rec_offset(4) as usize;
        for x in &mut b[last + 10..last + 28] {
            *x = 0;
        }
        std::fs::write(&path, &b).unwrap();
        let e = read_all(&path).unwrap_err();
        assert!(e.is_torn_tail(), "{e}");
        assert_eq!(e.offset(), rec_offset(4));

        // garbage after the last record in the zero area: torn tail
        let mut b = good.clone();
        b[rec_offset(5) as usize + 100] = 0x5a;
        std::fs::write(&path, &b).unwrap();
        let e = read_all(&path).unwrap_err();
        assert!(e.is_torn_tail(), "{e}");
        assert_eq!(e.offset(), rec_offset(5));

        // flipped bit in the middle: corruption
        let mut b = good.clone();
        b[rec_offset(2) as usize + RECORD_HEADER_BYTES + 1] ^= 0x10;
        std::fs::write(&path, &b).unwrap();
        let e = read_all(&path).unwrap_err();
        assert!(!e.is_torn_tail(), "{e}");
        assert!(matches!(
            e,
            SegmentError::BadRecord {
                reason: DecodeError::BadChecksum { .. },
                ..
            }
        ));
        assert_eq!(e.offset(), rec_offset(2));
        assert!(e.to_string().contains(path.to_str().unwrap()));

        // oversized length in the middle: corruption, refused before allocating
        let mut b = good.clone();
        b[rec_offset(1) as usize..rec_offset(1) as usize + 4]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &b).unwrap();
        let e = read_all(&path).unwrap_err();
        assert!(matches!(
            e,
            SegmentError::BadRecord {
                reason: DecodeError::BadLength { .. },
                to_end: false,
                ..
            }
        ));

        // truncated mid-record without preallocation
        std::fs::write(&path, &good[..rec_offset(3) as usize + 7]).unwrap();
        let e = read_all(&path).unwrap_err();
        assert!(e.is_torn_tail());
        assert_eq!(e.offset(), rec_offset(3));
        // truncated on a record boundary: a clean (shorter) open segment
        std::fs::write(&path, &good[..rec_offset(3) as usize]).unwrap();
        assert_eq!(read_all(&path).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn stale_bytes_from_another_segment_never_validate() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_segment(dir.path(), 1, 5, true);
        let b = write_segment(dir.path(), 6, 5, false);
        // Build a file with b's header and a's records (same seq numbers as b
        // expects would still fail: the salt differs).
        let abytes = std::fs::read(&a).unwrap();
        let mut bbytes = std::fs::read(&b).unwrap();
        let n = abytes.len() - SEGMENT_HEADER_BYTES as usize;
        bbytes[SEGMENT_HEADER_BYTES as usize..SEGMENT_HEADER_BYTES as usize + n]
            .copy_from_slice(&abytes[SEGMENT_HEADER_BYTES as usize..]);
        std::fs::write(&b, &bbytes).unwrap();
        let e = read_all(&b).unwrap_err();
        assert!(matches!(
            e,
            SegmentError::BadRecord {
                reason: DecodeError::BadChecksum { .. },
                ..
            }
        ));
        // and behind the last good record, stale records are a torn tail,
        // never data
        let c = write_segment(dir.path(), 11, 2, false);
        let mut cbytes = std::fs::read(&c).unwrap();
        let at = rec_offset(2) as usize;
        cbytes[at..at + n].copy_from_slice(&abytes[SEGMENT_HEADER_BYTES as usize..]);
        std::fs::write(&c, &cbytes).unwrap();
        let e = read_all(&c).unwrap_err();
        assert!(e.is_torn_tail(), "{e}");
    }

    /// Random damage anywhere in a segment: the reader never panics and
    /// never returns a record that was not written.
    #[test]
    fn random_damage_never_yields_a_wrong_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), 1, 9, false);
        let good = std::fs::read(&path).unwrap();
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..400 {
            let mut b = good.clone();
            for _ in 0..1 + rnd() % 3 {
                let at = (rnd() as usize) % (rec_offset(9) as usize + 40);
                b[at] = rnd() as u8;
            }
            let cut = if rnd() % 4 == 0 {
                (rnd() as usize) % b.len()
            } else {
                b.len()
            };
            std::fs::write(&path, &b[..cut]).unwrap();
            let Ok(mut r) = SegmentReader::open(&path) else {
                continue;
            };
            let mut expect = 1;
            while let Ok(Some(rec)) = r.next_record() {
                assert_eq!(rec.seq, expect);
                assert_eq!(rec.payload, format!("cmd{expect}").into_bytes());
                assert_eq!(rec.timestamp_ms, 1000 + expect);
                expect += 1;
            }
        }
    }

    /// A torn record full of binary data whose bytes read as plausible
    /// record lengths: telling it from corruption must not cost a checksum
    /// over megabytes at every position (recovery after a crash would hang).
    #[test]
    fn a_torn_binary_record_is_classified_without_rechecking_every_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1, 8 << 20).unwrap();
        let cmds: Vec<String> = (1..=3).map(|seq| format!("cmd{seq}")).collect();
        w.append_records(cmds.iter().map(|c| (7, c.as_bytes())))
            .unwrap();
        w.sync().unwrap();
        let at = w.len();
        let salt = w.salt();
        let path = w.path().to_path_buf();
        drop(w);
        // every 4 bytes read as a length of 1 MiB, and batch magic
        // everywhere: a header candidate at every 8th byte
        let m = batch::BATCH_MAGIC;
        let payload: Vec<u8> = [0u8, 0, 0x10, 0, m[0], m[1], m[2], m[3]].repeat(1 << 19);
        let framed = framed_batch(salt, 4, &[(7, &payload)]);
        // torn: half of the batch reached the disk
        let mut b = std::fs::read(&path).unwrap();
        b[at as usize..at as usize + (2 << 20)].copy_from_slice(&framed[..2 << 20]);
        std::fs::write(&path, &b).unwrap();
        let e = read_all(&path).unwrap_err();
        assert!(e.is_torn_tail(), "{e}");
        assert_eq!(e.offset(), at);
        assert!(matches!(
            e,
            SegmentError::BadRecord {
                batch: Some(DamagedBatch {
                    first_seq: 4,
                    count: Some(1)
                }),
                ..
            }
        ));
        // a complete batch behind the damage is still found (corruption)
        let later = framed_batch(salt, 9, &[(7, b"cmd9")]);
        let end = at as usize + (2 << 20) + 100;
        b[end..end + later.len()].copy_from_slice(&later);
        std::fs::write(&path, &b).unwrap();
        let e = read_all(&path).unwrap_err();
        assert!(!e.is_torn_tail(), "{e}");
    }

    /// The bytes of one version-3 batch of `records` (timestamp, payload)
    /// from `first_seq` under `salt`.
    pub(crate) fn framed_batch(salt: u64, first_seq: u64, records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut b = BatchEncoder::new();
        for (ts, p) in records {
            b.push(*ts, p);
        }
        b.finish(salt, first_seq).to_vec()
    }

    /// Writes an open segment (the version written) from seq 1 with one
    /// batch per entry of `batches` (record counts, payload `cmd{seq}`,
    /// timestamp 1000 + seq); returns its path, its salt and the offset of
    /// each batch and of the end.
    fn write_batches(dir: &Path, batches: &[u64]) -> (PathBuf, u64, Vec<u64>) {
        let mut w = SegmentWriter::create(dir, 1, 1 << 16).unwrap();
        let mut offsets = vec![w.len()];
        let mut seq = 1;
        for &n in batches {
            let mut batch = BatchEncoder::new();
            for _ in 0..n {
                batch.push(1000 + seq, format!("cmd{seq}").as_bytes());
                seq += 1;
            }
            w.append(&mut batch).unwrap();
            offsets.push(w.len());
        }
        w.sync().unwrap();
        (w.path().to_path_buf(), w.salt(), offsets)
    }

    /// Issue 14: the page cache wrote a later page of the last, unsynced
    /// batch but not an earlier one. Whole records of that batch follow the
    /// hole, but no complete batch does: a torn tail, cut at the batch's
    /// start, none of its records read. A complete batch after damage is
    /// corruption.
    #[test]
    fn a_batch_torn_out_of_order_is_a_torn_tail_and_a_complete_batch_after_damage_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, at) = write_batches(dir.path(), &[3, 200]);
        let good = std::fs::read(&path).unwrap();
        assert!(at[2] - at[1] > 700);
        // a hole inside the second batch, its later records intact
        let mut b = good.clone();
        let hole = at[1] as usize + 400;
        b[hole..hole + 300].fill(0);
        std::fs::write(&path, &b).unwrap();
        let mut r = SegmentReader::open(&path).unwrap();
        let mut seqs = Vec::new();
        let e = loop {
            match r.next_record() {
                Ok(Some(rec)) => seqs.push(rec.seq),
                Ok(None) => panic!("damage not seen"),
                Err(e) => break e,
            }
        };
        assert_eq!(seqs, vec![1, 2, 3], "no record of the torn batch is read");
        assert!(e.is_torn_tail(), "{e}");
        assert_eq!(e.offset(), at[1]);
        assert!(matches!(
            e,
            SegmentError::BadRecord {
                reason: DecodeError::BadBatchChecksum { .. },
                batch: Some(DamagedBatch {
                    first_seq: 4,
                    count: Some(200)
                }),
                ..
            }
        ));
        // its header never reached the disk, the records did
        let mut b = good.clone();
        b[at[1] as usize..at[1] as usize + BATCH_HEADER_BYTES].fill(0);
        std::fs::write(&path, &b).unwrap();
        let e = read_all(&path).unwrap_err();
        assert!(e.is_torn_tail(), "{e}");
        assert_eq!(e.offset(), at[1]);

        // damage in the first batch, the second complete: corruption
        let (path, _, at) = write_batches(dir.path(), &[3, 4]);
        let mut b = std::fs::read(&path).unwrap();
        b[at[0] as usize + 40] ^= 1;
        std::fs::write(&path, &b).unwrap();
        let e = read_all(&path).unwrap_err();
        assert!(!e.is_torn_tail(), "{e}");
        assert_eq!(e.offset(), at[0]);
    }

    #[test]
    fn bad_headers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), 1, 2, true);
        let good = std::fs::read(&path).unwrap();
        let cases: Vec<(usize, u8)> = vec![(0, b'X'), (8, 2), (20, 1), (26, 1), (33, 1), (38, 1)];
        for (at, v) in cases {
            let mut b = good.clone();
            b[at] ^= v;
            std::fs::write(&path, &b).unwrap();
            assert!(
                matches!(
                    SegmentReader::open(&path),
                    Err(SegmentError::BadHeader { .. })
                ),
                "byte {at}"
            );
        }
        std::fs::write(&path, &good[..30]).unwrap();
        assert!(matches!(
            SegmentReader::open(&path),
            Err(SegmentError::BadHeader { .. })
        ));
        // header first_seq must match the name
        std::fs::write(&path, &good).unwrap();
        let renamed = dir.path().join(layout::sealed_segment_name(2, 3));
        std::fs::rename(&path, &renamed).unwrap();
        assert!(matches!(
            SegmentReader::open(&renamed),
            Err(SegmentError::BadHeader { .. })
        ));
        assert!(SegmentReader::open(&dir.path().join("missing"))
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn sealed_segment_must_end_where_its_name_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), 1, 5, true);
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, &good[..rec_offset(4) as usize]).unwrap();
        assert!(matches!(
            verify_segment(&path),
            Err(SegmentError::Truncated {
                expected_last: 5,
                found_last: Some(4),
                ..
            })
        ));
        let mut b = good.clone();
        b.extend_from_slice(&[0u8; 64]);
        std::fs::write(&path, &b).unwrap();
        assert!(matches!(
            verify_segment(&path),
            Err(SegmentError::TrailingBytes { .. })
        ));
    }

    /// The first hole at or after 0 (`SEEK_HOLE`): the file's size when
    /// it has none. ext4 and XFS report fallocate's unwritten extents as
    /// holes while nothing was written into them.
    fn first_hole(path: &Path) -> u64 {
        let f = std::fs::File::open(path).unwrap();
        nix::unistd::lseek(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
            nix::unistd::Whence::SeekHole,
        )
        .unwrap() as u64
    }

    #[test]
    fn zero_fill_writes_zeros_over_the_whole_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let len = (ZERO_FILL_CHUNK as u64) * 2 + 12_288; // not a whole chunk
        let p = PreparedFile::create(dir.path(), len).unwrap();
        let path = dir.path().join(PREPARED_SEGMENT_NAME);
        p.zero_fill().unwrap();
        assert_eq!(first_hole(&path), len, "zero fill left unwritten space");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, len);
        assert!(bytes.iter().all(|&b| b == 0));
        // and it becomes an ordinary segment
        let mut w = SegmentWriter::from_prepared(dir.path(), p, 7).unwrap();
        let mut buf = BatchEncoder::new();
        buf.push(1000, b"cmd7");
        w.append(&mut buf).unwrap();
        w.sync().unwrap();
        let mut r = SegmentReader::open(w.path()).unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().seq, 7);
        assert!(r.next_record().unwrap().is_none());
        // nothing reserved (no room, or no fallocate): nothing to fill
        let sparse = PreparedFile::create(dir.path(), 0).unwrap();
        sparse.zero_fill().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn zero_fill_failures_surface_with_their_errno() {
        use crate::sys::{Fault, FaultFs, Op};
        let dir = tempfile::tempdir().unwrap();
        let fault = FaultFs::new(sys::real());
        for (op, what) in [(Op::Write, "write zeros"), (Op::Fdatasync, "fdatasync")] {
            let p = PreparedFile::create_on(fault.handle(), dir.path(), 1 << 20).unwrap();
            fault.inject(op, Fault::Errno(libc::EIO));
            match p.zero_fill() {
                Err(SegmentError::Io { op: o, source, .. }) => {
                    assert_eq!((o, source.raw_os_error()), (what, Some(libc::EIO)))
                }
                other => panic!("{op:?}: {other:?}"),
            }
        }
    }

    /// Every call of the write path failing through the file seam: the
    /// error names the operation and carries the errno, and no half-made
    /// file is left under a segment name.
    #[test]
    fn write_path_failures_surface_with_their_errno() {
        use crate::sys::{Fault, FaultFs, Op};
        let errno = |e: &SegmentError| match e {
            SegmentError::Io { source, op, .. } => (*op, source.raw_os_error()),
            other => panic!("{other}"),
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let fault = FaultFs::new(sys::real());

        // creating the next segment
        for (op, what) in [
            (Op::Create, "create"),
            (Op::Write, "write header"),
            (Op::Fdatasync, "fdatasync"),
            (Op::Rename, "rename"),
            (Op::FsyncDir, "fsync dir"),
        ] {
            fault.inject(op, Fault::Errno(libc::EIO));
            let e = SegmentWriter::create_on(fault.handle(), d, 1, 4096).unwrap_err();
            assert_eq!(errno(&e), (what, Some(libc::EIO)), "{op:?}");
            if op != Op::FsyncDir {
                assert!(!d.join(layout::open_segment_name(1)).exists(), "{op:?}");
            }
            let _ = std::fs::remove_file(d.join(layout::open_segment_name(1)));
        }
        // no room to preallocate: created sparse, and it works
        fault.inject(Op::Fallocate, Fault::Errno(libc::ENOSPC));
        let mut w = SegmentWriter::create_on(fault.handle(), d, 1, 1 << 20).unwrap();
        assert_eq!(
            std::fs::metadata(w.path()).unwrap().len(),
            SEGMENT_HEADER_BYTES
        );

        // append and sync
        let mut buf = BatchEncoder::new();
        for seq in 1..=4 {
            buf.push(1000 + seq, format!("cmd{seq}").as_bytes());
        }
        fault.inject(Op::Fdatasync, Fault::Errno(libc::EIO));
        w.append(&mut buf).unwrap();
        assert_eq!(w.sync().unwrap_err().raw_os_error(), Some(libc::EIO));
        w.sync().unwrap();
        // a short write then EIO: part of the batch on disk, a torn tail
        let mut more = BatchEncoder::new();
        for seq in 5..=7 {
            more.push(1000 + seq, format!("cmd{seq}").as_bytes());
        }
        fault.inject(Op::Write, Fault::ShortWrite);
        fault.inject(Op::Write, Fault::Errno(libc::EIO));
        let before = w.len();
        assert_eq!(
            w.append(&mut more).unwrap_err().raw_os_error(),
            Some(libc::EIO)
        );
        let path = w.path().to_path_buf();
        // half of a batch of three records: none of them is read (a batch
        // is durable only whole), a torn tail where the batch starts
        let mut r = SegmentReader::open(&path).unwrap();
        while let Ok(Some(_)) = r.next_record() {}
        assert_eq!(r.last_seq(), Some(4));
        let e = read_all(&path).unwrap_err();
        assert!(e.is_torn_tail(), "{e}");
        assert_eq!(e.offset(), before);

        // sealing: the rename fails, the open segment stays where it was
        let dir2 = tempfile::tempdir().unwrap();
        let w = SegmentWriter::create_on(fault.handle(), dir2.path(), 1, 4096).unwrap();
        let mut w = w;
        w.append_records([(1001, &b"cmd1"[..])]).unwrap();
        let open = w.path().to_path_buf();
        fault.inject(Op::Rename, Fault::Errno(libc::EXDEV));
        let e = w.seal().unwrap_err();
        assert_eq!(errno(&e), ("rename", Some(libc::EXDEV)));
        assert_eq!(read_all(&open).unwrap(), vec![1]);
        assert_eq!(fault.pending_rules(), 0);
    }

    /// The scan after damage reads a chunk at a time: a valid record whose
    /// header straddles a chunk boundary, or that is longer than a chunk, is
    /// still found (corruption), and zeros up to the end are a torn tail.
    #[test]
    fn the_scan_after_damage_finds_records_across_chunks() {
        let chunk = SCAN_CHUNK_BYTES as usize;
        for (at_from_damage, payload_len) in [
            (chunk - 10, 4),
            (chunk - 1, 4),
            (chunk, 4),
            (100, chunk * 2),
            (chunk * 2 + 3, chunk + 5),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = write_segment(dir.path(), 1, 3, false);
            let salt = SegmentReader::open(&path).unwrap().salt();
            let damage = rec_offset(3) as usize;
            let mut b = std::fs::read(&path).unwrap();
            b.resize(damage + at_from_damage + payload_len + 4096, 0);
            b[damage] = 0x77; // a bad length: damage at record 4
            let mut later = Vec::new();
            record::encode_parts(salt, 9, 7, &vec![0xab; payload_len], &mut later);
            let start = damage + 1 + at_from_damage;
            b[start..start + later.len()].copy_from_slice(&later);
            std::fs::write(&path, &b).unwrap();
            let e = read_all(&path).unwrap_err();
            assert!(!e.is_torn_tail(), "{at_from_damage}/{payload_len}: {e}");
            assert_eq!(e.offset(), rec_offset(3));
            // without the later record: a torn tail
            b[start..start + later.len()].fill(0);
            std::fs::write(&path, &b).unwrap();
            let e = read_all(&path).unwrap_err();
            assert!(e.is_torn_tail(), "{at_from_damage}/{payload_len}: {e}");
        }
    }

    /// Batches read into memory whole and a batch bigger than that bound
    /// (checked a chunk at a time, its records read one by one) give the
    /// same records, payloads in place, with one buffer reused across
    /// readers; a flipped byte in the big batch is caught either way.
    #[test]
    fn small_and_big_batches_read_in_place_with_a_reused_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1, 0).unwrap();
        let big = IN_MEMORY_BATCH_BYTES as usize / 3 + 1;
        let payload = |seq: u64| -> Vec<u8> {
            let len = if (4..=6).contains(&seq) { big } else { 10 };
            (0..len).map(|i| (i as u64 * 31 + seq) as u8).collect()
        };
        for batch in [1..4u64, 4..7, 7..9] {
            let mut buf = BatchEncoder::new();
            for seq in batch.clone() {
                buf.push(seq * 10, &payload(seq));
            }
            w.append(&mut buf).unwrap();
        }
        w.sync().unwrap();
        let path = w.seal().unwrap();
        let mut buffer = Vec::new();
        for _ in 0..2 {
            let mut r = SegmentReader::open_with(&*sys::real(), &path, buffer).unwrap();
            for seq in 1..9 {
                let m = r.next_meta().unwrap().unwrap();
                assert_eq!((m.seq, m.timestamp_ms), (seq, seq * 10));
                assert!(r.payload() == payload(seq), "payload of {seq}");
            }
            assert!(r.next_meta().unwrap().is_none());
            buffer = r.into_buffer();
        }
        let mut b = std::fs::read(&path).unwrap();
        let at = b.len() - 2 * (2 + 10) - BATCH_HEADER_BYTES - big / 2;
        b[at] ^= 1;
        std::fs::write(&path, &b).unwrap();
        let mut r = SegmentReader::open(&path).unwrap();
        let e = loop {
            match r.next_meta() {
                Ok(Some(m)) => assert!(m.seq < 4, "record {} past the damage", m.seq),
                Ok(None) => panic!("damage not found"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(
                e,
                SegmentError::BadRecord {
                    reason: DecodeError::BadBatchChecksum { .. },
                    ..
                }
            ),
            "{e}"
        );
    }

    /// Seqs read from `path` until the end or the first error.
    fn read_until_error(path: &Path) -> (Vec<Record>, Option<SegmentError>) {
        let mut r = SegmentReader::open(path).unwrap();
        let mut got = Vec::new();
        loop {
            match r.next_record() {
                Ok(Some(rec)) => got.push(rec),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e)),
            }
        }
    }

    /// Every damaged byte of a version-3 segment's batches, and every cut:
    /// the reader yields exactly the records of the batches before the
    /// damage, then an error, a torn tail only when the damage is in the
    /// last batch. Never a wrong record, never one of a damaged batch.
    #[test]
    fn every_damaged_byte_or_cut_of_a_segment_yields_only_whole_batches_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, at) = write_batches(dir.path(), &[2, 3, 1, 4]);
        let good = std::fs::read(&path).unwrap();
        let (all, e) = read_until_error(&path);
        assert!(e.is_none());
        let first_seq_of = |batch: usize| -> u64 { 1 + [0, 2, 5, 6, 10][batch] };
        assert_eq!(all.len(), 10);
        let end = *at.last().unwrap() as usize;
        for pos in at[0] as usize..end {
            let batch = at.iter().rposition(|&o| o as usize <= pos).unwrap();
            for x in [0x01u8, 0x80, 0xff] {
                let mut b = good.clone();
                b[pos] ^= x;
                std::fs::write(&path, &b).unwrap();
                let (got, e) = read_until_error(&path);
                let want = (first_seq_of(batch) - 1) as usize;
                assert_eq!(got, all[..want], "byte {pos} ^ {x:#x}");
                let e = e.unwrap_or_else(|| panic!("byte {pos} ^ {x:#x}: no error"));
                assert_eq!(e.offset(), at[batch], "byte {pos} ^ {x:#x}: {e}");
                assert_eq!(e.is_torn_tail(), batch == 3, "byte {pos} ^ {x:#x}: {e}");
            }
        }
        for cut in at[0] as usize..=end {
            std::fs::write(&path, &good[..cut]).unwrap();
            let (got, e) = read_until_error(&path);
            let whole = at.iter().filter(|&&o| o as usize <= cut).count() - 1;
            assert_eq!(got, all[..(first_seq_of(whole) - 1) as usize], "cut {cut}");
            match e {
                None => assert!(at.contains(&(cut as u64)), "cut {cut}"),
                Some(e) => {
                    assert!(e.is_torn_tail(), "cut {cut}: {e}");
                    assert_eq!(e.offset(), at[whole]);
                }
            }
        }
    }

    /// Version-2 segments (the format before compact records) read as
    /// they did: records, torn tails, damage, resynchronisation.
    #[test]
    fn version_2_segments_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let batches: Vec<Vec<(u64, Vec<u8>)>> = [2u64, 3, 1, 4]
            .iter()
            .scan(1u64, |seq, &n| {
                let b = (*seq..*seq + n)
                    .map(|s| (1000 + s, format!("cmd{s}").into_bytes()))
                    .collect();
                *seq += n;
                Some(b)
            })
            .collect();
        let salt = 0x1234;
        let bytes = encode_v2_segment(1, salt, &batches, 4096);
        let path = dir.path().join(layout::open_segment_name(1));
        std::fs::write(&path, &bytes).unwrap();
        let r = SegmentReader::open(&path).unwrap();
        assert_eq!((r.version(), r.salt()), (2, salt));
        assert_eq!(read_all(&path).unwrap(), (1..=10).collect::<Vec<_>>());
        let (recs, _) = read_until_error(&path);
        assert!(recs.iter().all(|r| r.timestamp_ms == 1000 + r.seq));
        // the batch offsets: segment header, then 32 + 28 bytes a record
        let at: Vec<u64> = [0u64, 2, 5, 6, 10]
            .iter()
            .enumerate()
            .map(|(i, &n)| SEGMENT_HEADER_BYTES + i as u64 * 32 + n * 28)
            .collect();
        // a torn last batch
        let mut b = bytes.clone();
        b[at[3] as usize + 50] ^= 4;
        std::fs::write(&path, &b).unwrap();
        let (got, e) = read_until_error(&path);
        assert_eq!(got.len(), 6);
        let e = e.unwrap();
        assert!(e.is_torn_tail(), "{e}");
        assert_eq!(e.offset(), at[3]);
        // damage in the middle: corruption, and resync finds batch 3
        let mut b = bytes.clone();
        b[at[1] as usize + 40] ^= 4;
        std::fs::write(&path, &b).unwrap();
        let mut r = SegmentReader::open(&path).unwrap();
        let mut seqs = Vec::new();
        let e = loop {
            match r.next_meta() {
                Ok(Some(m)) => seqs.push(m.seq),
                Ok(None) => panic!("damage not seen"),
                Err(e) => break e,
            }
        };
        assert_eq!(seqs, [1, 2]);
        assert!(!e.is_torn_tail(), "{e}");
        assert!(matches!(
            e,
            SegmentError::BadRecord {
                reason: DecodeError::BadBatchChecksum { .. },
                batch: Some(DamagedBatch {
                    first_seq: 3,
                    count: Some(3)
                }),
                ..
            }
        ));
        assert_eq!(r.resync().unwrap(), Some((at[2], 6)));
        while let Some(m) = r.next_meta().unwrap() {
            seqs.push(m.seq);
            assert_eq!(r.payload(), format!("cmd{}", m.seq).as_bytes());
        }
        assert_eq!(seqs, [1, 2, 6, 7, 8, 9, 10]);
    }

    /// Resynchronisation in a version-3 segment passes over exactly the
    /// damaged batch.
    #[test]
    fn resync_passes_over_a_damaged_compact_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, at) = write_batches(dir.path(), &[2, 3, 1, 4]);
        let mut b = std::fs::read(&path).unwrap();
        b[at[1] as usize + BATCH_HEADER_BYTES + 2] ^= 0x40;
        std::fs::write(&path, &b).unwrap();
        let mut r = SegmentReader::open(&path).unwrap();
        let mut seqs = Vec::new();
        let e = loop {
            match r.next_meta() {
                Ok(Some(m)) => seqs.push(m.seq),
                Ok(None) => panic!("damage not seen"),
                Err(e) => break e,
            }
        };
        assert!(!e.is_torn_tail(), "{e}");
        assert_eq!(r.resync().unwrap(), Some((at[2], 6)));
        while let Some(m) = r.next_meta().unwrap() {
            assert_eq!(m.timestamp_ms, 1000 + m.seq);
            seqs.push(m.seq);
        }
        assert_eq!(seqs, [1, 2, 6, 7, 8, 9, 10]);
        assert_eq!(r.offset(), at[4]);
    }

    /// A batch whose checksum holds but whose records do not fill it (a
    /// writer bug, or a checksum collision): none of its records is read,
    /// and it is corruption at its start.
    #[test]
    fn a_batch_whose_records_do_not_fit_yields_none_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let (path, salt, at) = write_batches(dir.path(), &[2, 3]);
        let mut b = std::fs::read(&path).unwrap();
        let start = at[1] as usize;
        // announce 4 records where 3 stand, checksums made to hold
        let mut h = BatchHeader::decode(Framing::V3, salt, &b[start..]).unwrap();
        h.count = 4;
        b[start..start + BATCH_HEADER_BYTES].copy_from_slice(&h.encode(salt));
        std::fs::write(&path, &b).unwrap();
        let (got, e) = read_until_error(&path);
        assert_eq!(got.len(), 2);
        let e = e.unwrap();
        assert!(
            matches!(
                e,
                SegmentError::BadRecord {
                    reason: DecodeError::BatchMismatch,
                    to_end: false,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.offset(), at[1]);
    }

    /// Timestamps in any order, at both ends of u64, survive the delta
    /// framing of compact records.
    #[test]
    fn compact_records_carry_the_batch_base_timestamp_forward() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1, 0).unwrap();
        let stamps = [u64::MAX - 1, u64::MAX, 0, 5, 3, 1 << 63, 1_700_000_000_000];
        w.append_records(stamps.iter().map(|&t| (t, &b"x"[..])))
            .unwrap();
        let path = w.seal().unwrap();
        let (got, e) = read_until_error(&path);
        assert!(e.is_none());
        assert_eq!(
            got.iter().map(|r| r.timestamp_ms).collect::<Vec<_>>(),
            stamps
        );
        let s = verify_segment(&path).unwrap();
        assert_eq!(
            (s.first_timestamp_ms, s.last_timestamp_ms),
            (Some(u64::MAX - 1), Some(1_700_000_000_000))
        );
    }

    /// Random damage (a few bytes anywhere, maybe a cut) in a version-3
    /// segment of random batches: the reader never panics and never yields
    /// a record that was not written, neither before the damage nor after
    /// resynchronising past it.
    #[test]
    fn random_damage_in_compact_batches_never_yields_a_wrong_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let payload = |seq: u64| -> Vec<u8> {
            let mut p = format!("cmd{seq}:").into_bytes();
            p.resize(5 + (seq * 37 % 300) as usize, b'a' + (seq % 26) as u8);
            p
        };
        let ts = |seq: u64| 1_700_000_000_000 + seq / 3;
        let mut w = SegmentWriter::create(dir.path(), 1, 1 << 16).unwrap();
        let mut seq = 1;
        while w.len() < 12_000 {
            let mut b = BatchEncoder::new();
            for _ in 0..1 + rnd() % 12 {
                b.push(ts(seq), &payload(seq));
                seq += 1;
            }
            w.append(&mut b).unwrap();
        }
        w.sync().unwrap();
        let (path, written) = (w.path().to_path_buf(), w.len() as usize);
        drop(w);
        let good = std::fs::read(&path).unwrap();
        for _ in 0..300 {
            let mut b = good.clone();
            for _ in 0..1 + rnd() % 3 {
                let at = SEGMENT_HEADER_BYTES as usize
                    + (rnd() as usize) % (written - SEGMENT_HEADER_BYTES as usize + 40);
                b[at] ^= 1 + (rnd() % 255) as u8;
            }
            let cut = if rnd() % 4 == 0 {
                (rnd() as usize) % b.len()
            } else {
                b.len()
            };
            std::fs::write(&path, &b[..cut]).unwrap();
            let Ok(mut r) = SegmentReader::open(&path) else {
                continue;
            };
            let mut next = 1;
            loop {
                match r.next_meta() {
                    Ok(Some(m)) => {
                        assert!(m.seq >= next, "seq {} after {}", m.seq, next - 1);
                        assert_eq!(m.timestamp_ms, ts(m.seq));
                        assert!(r.payload() == payload(m.seq), "payload of {}", m.seq);
                        next = m.seq + 1;
                    }
                    Ok(None) => break,
                    Err(_) => match r.resync() {
                        Ok(Some(_)) => {}
                        _ => break,
                    },
                }
            }
        }
    }
}
