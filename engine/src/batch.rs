//! One group commit as one framed batch (segment format versions 2 and 3).
//!
//! Version 3 (written):
//!
//! ```text
//!  0        4        8                16               24               32       36       40
//!  +--------+--------+----------------+----------------+----------------+--------+--------+===========+
//!  | magic  | count  | first_seq      | base_ts        | len            | crc    | hcrc   | records   |
//!  | "TBA3" | u32 LE | u64 LE         | u64 LE         | u64 LE         | u32 LE | u32 LE | len bytes |
//!  +--------+--------+----------------+----------------+----------------+--------+--------+===========+
//!
//!  records = count compact records ([`crate::record`]: varint len,
//!            varint timestamp delta, payload), seqs first_seq,
//!            first_seq + 1, … implied, exactly len bytes
//!  base_ts = the timestamp the first record's delta is taken from (the
//!            first record's own timestamp, as written)
//!  crc  = CRC32(salt as u64 LE ‖ records): the only checksum over them
//!  hcrc = CRC32(salt as u64 LE ‖ bytes 0..36 of the batch header)
//!  1 <= count, count * 3 <= len, 1 <= first_seq, first_seq + count - 1 <= u64::MAX
//! ```
//!
//! Version 2 (still read): the same idea with a 32-byte header and records
//! that each carry their own header and checksum:
//!
//! ```text
//!  0        4        8                16               24       28       32
//!  +--------+--------+----------------+----------------+--------+--------+==================+
//!  | magic  | count  | first_seq      | len            | crc    | hcrc   | records          |
//!  | "TBAT" | u32 LE | u64 LE         | u64 LE         | u32 LE | u32 LE | len bytes        |
//!  +--------+--------+----------------+----------------+--------+--------+==================+
//!
//!  records = count records with 24-byte headers ([`crate::record`]),
//!            seqs first_seq, first_seq + 1, …, exactly len bytes
//!  crc  = CRC32(salt as u64 LE ‖ records)
//!  hcrc = CRC32(salt as u64 LE ‖ bytes 0..28 of the batch header)
//!  1 <= count, count * 25 <= len
//! ```
//!
//! A batch is durable only whole: a reader yields none of its records
//! before the whole batch (header and `crc` over every record byte) has
//! checked. The header has its own checksum so that a reader looking for a
//! *complete batch* after damage (to tell a torn tail from corruption, or
//! to resynchronise under `--accept-data-loss`) checks the expensive `crc`
//! only where a header with this segment's salt stands. Both checksums are
//! salted with the segment's salt: a batch left over from another segment
//! never validates. A header of all zeros is never a batch (the magic):
//! preallocated, never written space reads as zeros.
//!
//! In version 3 the `crc` is the records' only checksum: a CRC32 catches
//! every error of up to 32 consecutive bits, so every damaged byte of a
//! batch fails it, and a record is never decoded from a batch whose `crc`
//! did not hold.

use crate::record::{
    self, DecodeError, MAX_FRAMED_HEADER_BYTES, MIN_FRAMED_RECORD_BYTES, RECORD_HEADER_BYTES,
};

/// Magic bytes at the start of every version-3 batch.
pub const BATCH_MAGIC: [u8; 4] = *b"TBA3";
/// Magic bytes at the start of every version-2 batch.
pub const BATCH_MAGIC_V2: [u8; 4] = *b"TBAT";
/// Size of the version-3 batch header.
pub const BATCH_HEADER_BYTES: usize = 40;
/// Size of the version-2 batch header.
pub const BATCH_HEADER_BYTES_V2: usize = 32;
/// The largest batch header of any version.
pub const MAX_BATCH_HEADER_BYTES: usize = BATCH_HEADER_BYTES;

/// How the records of a segment are framed in batches: by the segment's
/// format version (version 1 has no batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Version 2: 32-byte batch headers, records with 24-byte headers and
    /// their own checksums.
    V2,
    /// Version 3: 40-byte batch headers, compact records.
    V3,
}

impl Framing {
    /// The framing of a segment of format `version` (`None`: no batches).
    pub fn of_version(version: u32) -> Option<Framing> {
        match version {
            2 => Some(Framing::V2),
            3 => Some(Framing::V3),
            _ => None,
        }
    }

    /// Size of a batch header.
    pub const fn header_bytes(self) -> usize {
        match self {
            Framing::V2 => BATCH_HEADER_BYTES_V2,
            Framing::V3 => BATCH_HEADER_BYTES,
        }
    }

    /// The magic a batch header starts with.
    pub const fn magic(self) -> [u8; 4] {
        match self {
            Framing::V2 => BATCH_MAGIC_V2,
            Framing::V3 => BATCH_MAGIC,
        }
    }

    /// The fewest bytes a framed record takes.
    pub const fn min_record_bytes(self) -> u64 {
        match self {
            Framing::V2 => RECORD_HEADER_BYTES as u64 + 1,
            Framing::V3 => MIN_FRAMED_RECORD_BYTES as u64,
        }
    }
}

/// A decoded, checked batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub framing: Framing,
    pub count: u32,
    pub first_seq: u64,
    /// Version 3: the timestamp the first record's delta is taken from
    /// (version 2: 0, every record carries its own).
    pub base_ts: u64,
    /// Bytes of records after the header.
    pub len: u64,
    /// CRC32 of the salt and the record bytes.
    pub crc: u32,
}

impl BatchHeader {
    /// Seq of the batch's last record.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count) - 1
    }

    /// Bytes of header and records.
    pub fn total_len(&self) -> u64 {
        self.framing.header_bytes() as u64 + self.len
    }

    /// The 40 header bytes of a version-3 batch under `salt`.
    ///
    /// # Panics
    /// If the header is not a version-3 one.
    pub fn encode(&self, salt: u64) -> [u8; BATCH_HEADER_BYTES] {
        assert_eq!(self.framing, Framing::V3, "encode frames version 3");
        let mut b = [0u8; BATCH_HEADER_BYTES];
        b[0..4].copy_from_slice(&BATCH_MAGIC);
        b[4..8].copy_from_slice(&self.count.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.base_ts.to_le_bytes());
        b[24..32].copy_from_slice(&self.len.to_le_bytes());
        b[32..36].copy_from_slice(&self.crc.to_le_bytes());
        let hcrc = header_crc(salt, &b[0..36]);
        b[36..40].copy_from_slice(&hcrc.to_le_bytes());
        b
    }

    /// The 32 header bytes of a version-2 batch under `salt`: what the
    /// version-2 writer wrote, kept so that tests can write old segments.
    ///
    /// # Panics
    /// If the header is not a version-2 one.
    pub fn encode_v2(&self, salt: u64) -> [u8; BATCH_HEADER_BYTES_V2] {
        assert_eq!(self.framing, Framing::V2, "encode_v2 frames version 2");
        let mut b = [0u8; BATCH_HEADER_BYTES_V2];
        b[0..4].copy_from_slice(&BATCH_MAGIC_V2);
        b[4..8].copy_from_slice(&self.count.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        b[24..28].copy_from_slice(&self.crc.to_le_bytes());
        let hcrc = header_crc(salt, &b[0..28]);
        b[28..32].copy_from_slice(&hcrc.to_le_bytes());
        b
    }

    /// Parses and checks a batch header of `framing` under `salt` (not the
    /// records). `b` holds at least [`Framing::header_bytes`] bytes; the
    /// rest is ignored.
    pub fn decode(framing: Framing, salt: u64, b: &[u8]) -> Result<BatchHeader, DecodeError> {
        let n = framing.header_bytes();
        let Some(b) = b.get(..n) else {
            return Err(DecodeError::Incomplete {
                needed: n,
                available: b.len(),
            });
        };
        if b.iter().all(|&x| x == 0) {
            return Err(DecodeError::ZeroHeader);
        }
        if b[0..4] != framing.magic() {
            return Err(DecodeError::BadBatchMagic);
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let stored = u32_at(n - 4);
        let computed = header_crc(salt, &b[..n - 4]);
        if stored != computed {
            return Err(DecodeError::BadBatchHeaderChecksum { stored, computed });
        }
        let h = match framing {
            Framing::V2 => BatchHeader {
                framing,
                count: u32_at(4),
                first_seq: u64_at(8),
                base_ts: 0,
                len: u64_at(16),
                crc: u32_at(24),
            },
            Framing::V3 => BatchHeader {
                framing,
                count: u32_at(4),
                first_seq: u64_at(8),
                base_ts: u64_at(16),
                len: u64_at(24),
                crc: u32_at(32),
            },
        };
        let min_len = u64::from(h.count) * framing.min_record_bytes();
        let seqs_fit = h
            .first_seq
            .checked_add(u64::from(h.count).saturating_sub(1))
            .is_some();
        if h.count == 0 || h.len < min_len || h.first_seq == 0 || !seqs_fit {
            return Err(DecodeError::BadBatchShape {
                count: h.count,
                len: h.len,
            });
        }
        Ok(h)
    }
}

fn header_crc(salt: u64, bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(bytes);
    h.finalize()
}

/// A running checksum over a batch's record bytes.
#[derive(Debug, Clone)]
pub struct BatchCrc(crc32fast::Hasher);

impl BatchCrc {
    pub fn new(salt: u64) -> BatchCrc {
        let mut h = crc32fast::Hasher::new();
        h.update(&salt.to_le_bytes());
        BatchCrc(h)
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finalize(self) -> u32 {
        self.0.finalize()
    }
}

/// The checksum of a batch's record bytes under `salt`.
pub fn records_crc(salt: u64, records: &[u8]) -> u32 {
    let mut crc = BatchCrc::new(salt);
    crc.update(records);
    crc.finalize()
}

/// The version-2 header framing `records` (`count` records with 24-byte
/// headers from `first_seq`): the version-2 writer's, kept for tests.
pub fn header_for_v2(salt: u64, first_seq: u64, count: u64, records: &[u8]) -> BatchHeader {
    BatchHeader {
        framing: Framing::V2,
        count: u32::try_from(count).expect("a batch holds fewer than 2^32 records"),
        first_seq,
        base_ts: 0,
        len: records.len() as u64,
        crc: records_crc(salt, records),
    }
}

/// A version-3 batch being framed, record by record, in one buffer that
/// starts with room for its header, so that it is written with one `write`
/// and no copy ([`BatchEncoder::finish`]). Kept and reused between batches.
#[derive(Debug, Clone)]
pub struct BatchEncoder {
    /// The header's room, then the records.
    buf: Vec<u8>,
    count: u32,
    base_ts: u64,
    prev_ts: u64,
}

impl Default for BatchEncoder {
    fn default() -> Self {
        BatchEncoder::new()
    }
}

impl BatchEncoder {
    pub fn new() -> BatchEncoder {
        BatchEncoder::with_capacity(0)
    }

    /// An encoder with room for `bytes` of records.
    pub fn with_capacity(bytes: usize) -> BatchEncoder {
        let mut buf = Vec::with_capacity(BATCH_HEADER_BYTES + bytes);
        buf.resize(BATCH_HEADER_BYTES, 0);
        BatchEncoder {
            buf,
            count: 0,
            base_ts: 0,
            prev_ts: 0,
        }
    }

    /// Forgets the records (keeps the buffer).
    pub fn clear(&mut self) {
        self.buf.truncate(BATCH_HEADER_BYTES);
        self.count = 0;
    }

    /// Drops the buffer when it grew past `keep_bytes` (after a batch of
    /// big records).
    pub fn shrink_to(&mut self, keep_bytes: usize) {
        if self.buf.capacity() > keep_bytes.max(BATCH_HEADER_BYTES) {
            *self = BatchEncoder::new();
        }
    }

    /// Appends a record.
    ///
    /// # Panics
    /// If the payload is empty or longer than
    /// [`record::MAX_RECORD_BYTES`], or the batch holds `u32::MAX` records.
    pub fn push(&mut self, timestamp_ms: u64, payload: &[u8]) {
        if self.count == 0 {
            self.base_ts = timestamp_ms;
            self.prev_ts = timestamp_ms;
        }
        self.count = self
            .count
            .checked_add(1)
            .expect("a batch holds fewer than 2^32 records");
        record::encode_framed(self.prev_ts, timestamp_ms, payload, &mut self.buf);
        self.prev_ts = timestamp_ms;
    }

    /// Records pushed since the last [`BatchEncoder::clear`].
    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The framed records (without the header).
    pub fn records(&self) -> &[u8] {
        &self.buf[BATCH_HEADER_BYTES..]
    }

    /// Bytes of the batch once framed (header and records).
    pub fn framed_len(&self) -> usize {
        self.buf.len()
    }

    /// The header of these records as the batch from `first_seq` under `salt`.
    pub fn header(&self, salt: u64, first_seq: u64) -> BatchHeader {
        BatchHeader {
            framing: Framing::V3,
            count: self.count,
            first_seq,
            base_ts: self.base_ts,
            len: self.records().len() as u64,
            crc: records_crc(salt, self.records()),
        }
    }

    /// Frames the records as the batch from `first_seq` under `salt`: fills
    /// in the header and returns the whole batch, ready to be written.
    ///
    /// # Panics
    /// If the batch is empty.
    pub fn finish(&mut self, salt: u64, first_seq: u64) -> &[u8] {
        assert!(self.count > 0, "framing an empty batch");
        let header = self.header(salt, first_seq).encode(salt);
        self.buf[..BATCH_HEADER_BYTES].copy_from_slice(&header);
        &self.buf
    }
}

/// A record decoded in place from a batch in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub seq: u64,
    pub timestamp_ms: u64,
    pub payload: &'a [u8],
}

/// The records of a whole, checked batch held in memory
/// ([`decode_batch`]), decoded one at a time without a copy. An error ends
/// it: the records do not fill the batch exactly (it was written wrong).
#[derive(Debug, Clone)]
pub struct BatchRecords<'a> {
    salt: u64,
    framing: Framing,
    rest: &'a [u8],
    seq: u64,
    prev_ts: u64,
    remaining: u32,
    failed: bool,
}

impl<'a> Iterator for BatchRecords<'a> {
    type Item = Result<RecordRef<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.rest.is_empty() {
                return None;
            }
            self.failed = true;
            return Some(Err(DecodeError::BatchMismatch));
        }
        let r = match self.framing {
            Framing::V3 => record::decode_framed_header(self.prev_ts, self.rest)
                .ok()
                .filter(|h| h.total_len() <= self.rest.len())
                .map(|h| {
                    let payload = &self.rest[h.header_bytes..h.total_len()];
                    (h.timestamp_ms, payload, h.total_len())
                }),
            Framing::V2 => record::decode_ref(self.salt, self.rest)
                .ok()
                .filter(|(seq, ..)| *seq == self.seq)
                .map(|(_, ts, payload, n)| (ts, payload, n)),
        };
        let Some((timestamp_ms, payload, n)) = r else {
            self.failed = true;
            return Some(Err(DecodeError::BatchMismatch));
        };
        let rec = RecordRef {
            seq: self.seq,
            timestamp_ms,
            payload,
        };
        self.rest = &self.rest[n..];
        self.seq += 1;
        self.prev_ts = timestamp_ms;
        self.remaining -= 1;
        Some(Ok(rec))
    }
}

/// Decodes the whole batch at the start of `buf`: checks its header and its
/// checksum and returns the header and its records (nothing is yielded
/// from a batch whose checksum fails). Bytes after the batch are ignored.
pub fn decode_batch(
    framing: Framing,
    salt: u64,
    buf: &[u8],
) -> Result<(BatchHeader, BatchRecords<'_>), DecodeError> {
    let h = BatchHeader::decode(framing, salt, buf)?;
    let start = framing.header_bytes();
    let available = buf.len() - start;
    if h.len > available as u64 {
        return Err(DecodeError::Incomplete {
            needed: usize::try_from(h.total_len()).unwrap_or(usize::MAX),
            available: buf.len(),
        });
    }
    let records = &buf[start..start + h.len as usize];
    let computed = records_crc(salt, records);
    if computed != h.crc {
        return Err(DecodeError::BadBatchChecksum {
            stored: h.crc,
            computed,
        });
    }
    Ok((
        h,
        BatchRecords {
            salt,
            framing,
            rest: records,
            seq: h.first_seq,
            prev_ts: h.base_ts,
            remaining: h.count,
            failed: false,
        },
    ))
}

/// True when `records` are exactly `count` compact records (version 3):
/// every length fits, and the last record ends where the bytes do.
pub fn compact_records_fit(count: u32, records: &[u8]) -> bool {
    let mut rest = records;
    for _ in 0..count {
        match record::decode_framed_header(0, rest) {
            Ok(h) if h.total_len() <= rest.len() => rest = &rest[h.total_len()..],
            _ => return false,
        }
    }
    rest.is_empty()
}

/// Bytes a reader asks for to decode the next compact record header: up to
/// [`MAX_FRAMED_HEADER_BYTES`], no more than what is left of the batch.
pub fn framed_header_window(left_in_batch: u64) -> usize {
    left_in_batch.min(MAX_FRAMED_HEADER_BYTES as u64) as usize
}

#[cfg(test)]
mod tests;
