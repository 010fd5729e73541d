//! One command-log record: framing, checksum and bounds.
//!
//! Two framings. Inside a batch of a version-3 segment (written;
//! [`crate::batch`]) a record is framed compactly, its sequence number
//! implied by its place in the batch and its bytes covered by the batch's
//! checksum:
//!
//! ```text
//!  +==============+==================+================+
//!  | len          | ts_delta         | payload        |
//!  | varint 1..=5 | varint 1..=10    | len bytes      |
//!  +==============+==================+================+
//!
//!  varint   = LEB128: 7 bits a byte, low group first, high bit = more
//!             follows; the shortest form only (no trailing 0x00 group)
//!  len      = payload length, 1 <= len <= MAX_RECORD_BYTES
//!  ts_delta = zigzag(timestamp_ms - previous timestamp_ms, as i64,
//!             wrapping), the previous of the batch's first record being
//!             the batch header's base_ts
//!  seq      = the batch's first_seq + the record's index in the batch
//! ```
//!
//! A SET of a 16-byte key and a 64-byte value (an 85-byte payload) takes 87
//! bytes, the same command 107 in Redis's AOF.
//!
//! Segments of versions 1 and 2 (still read) frame every record with a
//! fixed header and its own checksum; version 1 as bare records after the
//! segment header, version 2 inside batches:
//!
//! ```text
//!  0        4        8                16               24
//!  +--------+--------+----------------+----------------+================+
//!  | len    | crc    | seq            | timestamp_ms   | payload        |
//!  | u32 LE | u32 LE | u64 LE         | u64 LE         | len bytes      |
//!  +--------+--------+----------------+----------------+================+
//!
//!  crc = CRC32(salt as u64 LE ‖ len ‖ seq ‖ timestamp_ms ‖ payload)
//!  1 <= len <= MAX_RECORD_BYTES
//! ```
//!
//! The salt is a random number drawn for each segment and stored in its
//! header ([`crate::segment`]), so bytes left over from another segment (a
//! reused or preallocated file) never validate. The length and the sequence
//! number are inside the checksummed bytes. A header of all zeros is never a
//! record (the length is at least 1): preallocated, never written space reads
//! as zeros. Every length is checked against [`MAX_RECORD_BYTES`] before
//! anything is allocated for it.

/// Size of the fixed record header of versions 1 and 2 (len, crc, seq,
/// timestamp).
pub const RECORD_HEADER_BYTES: usize = 24;
/// Largest payload accepted, checked before any allocation. The RESP server
/// bounds a command to the RESP command bound, which fits.
pub const MAX_RECORD_BYTES: u32 = 80 * 1024 * 1024;

/// A logged, state-changing command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Global, contiguous sequence number (the first command is 1).
    pub seq: u64,
    /// Wall-clock ms since the Unix epoch when the engine logged it; also the
    /// "now" used when the command is applied, so replay is deterministic.
    pub timestamp_ms: u64,
    /// Canonical encoding of the command ([`crate::db::Command`]).
    pub payload: Vec<u8>,
}

/// Why bytes do not decode as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("incomplete record: {needed} bytes needed, {available} available")]
    Incomplete { needed: usize, available: usize },
    #[error("all-zero record header")]
    ZeroHeader,
    #[error("record length {len} out of bounds (1..={MAX_RECORD_BYTES})")]
    BadLength { len: u32 },
    #[error("record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadChecksum { stored: u32, computed: u32 },
    #[error("no batch magic")]
    BadBatchMagic,
    #[error("batch header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadBatchHeaderChecksum { stored: u32, computed: u32 },
    #[error("batch of {count} records in {len} bytes is impossible")]
    BadBatchShape { count: u32, len: u64 },
    #[error("batch checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadBatchChecksum { stored: u32, computed: u32 },
    #[error("records do not fill their batch exactly")]
    BatchMismatch,
    #[error("malformed varint in a record header")]
    BadVarint,
}

fn checksum(salt: u64, header_tail: &[u8], len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(header_tail);
    h.update(payload);
    h.finalize()
}

/// Size of a record of versions 1 and 2 once framed.
pub fn encoded_len(payload_len: usize) -> usize {
    RECORD_HEADER_BYTES + payload_len
}

/// Appends `record` framed as in versions 1 and 2 (a 24-byte header with
/// its own checksum) to `out`: what the older writers wrote, kept so that
/// tests can write old segments ([`crate::segment::encode_v2_segment`]).
///
/// # Panics
/// If the payload is empty or longer than [`MAX_RECORD_BYTES`]; callers bound
/// commands before they reach the log.
pub fn encode(salt: u64, record: &Record, out: &mut Vec<u8>) {
    encode_parts(salt, record.seq, record.timestamp_ms, &record.payload, out)
}

/// [`encode`] without building a [`Record`].
pub fn encode_parts(salt: u64, seq: u64, timestamp_ms: u64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        !payload.is_empty() && payload.len() <= MAX_RECORD_BYTES as usize,
        "record payload of {} bytes out of bounds",
        payload.len()
    );
    let len = payload.len() as u32;
    let mut tail = [0u8; 16];
    tail[..8].copy_from_slice(&seq.to_le_bytes());
    tail[8..].copy_from_slice(&timestamp_ms.to_le_bytes());
    let crc = checksum(salt, &tail, len, payload);
    out.reserve(encoded_len(payload.len()));
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&tail);
    out.extend_from_slice(payload);
}

/// The payload length announced by a record header, bounds-checked; used by
/// readers to know how many bytes to fetch before [`decode`].
pub fn peek_len(header: &[u8; RECORD_HEADER_BYTES]) -> Result<u32, DecodeError> {
    if header.iter().all(|&b| b == 0) {
        return Err(DecodeError::ZeroHeader);
    }
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_RECORD_BYTES {
        return Err(DecodeError::BadLength { len });
    }
    Ok(len)
}

/// Checks a record read as its header and its payload (`payload.len()` must
/// be the header's length); returns its seq and timestamp.
pub fn check_parts(
    salt: u64,
    header: &[u8; RECORD_HEADER_BYTES],
    payload: &[u8],
) -> Result<(u64, u64), DecodeError> {
    let len = peek_len(header)?;
    if payload.len() != len as usize {
        return Err(DecodeError::Incomplete {
            needed: encoded_len(len as usize),
            available: RECORD_HEADER_BYTES + payload.len(),
        });
    }
    let stored = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let computed = checksum(salt, &header[8..24], len, payload);
    if stored != computed {
        return Err(DecodeError::BadChecksum { stored, computed });
    }
    Ok((
        u64::from_le_bytes(header[8..16].try_into().expect("8 bytes")),
        u64::from_le_bytes(header[16..24].try_into().expect("8 bytes")),
    ))
}

/// Decodes the record (versions 1 and 2) at the start of `buf`; returns it
/// and its framed size.
pub fn decode(salt: u64, buf: &[u8]) -> Result<(Record, usize), DecodeError> {
    let (seq, timestamp_ms, payload, total) = decode_ref(salt, buf)?;
    Ok((
        Record {
            seq,
            timestamp_ms,
            payload: payload.to_vec(),
        },
        total,
    ))
}

/// [`decode`] in place: seq, timestamp, the payload in `buf`, framed size.
pub fn decode_ref(salt: u64, buf: &[u8]) -> Result<(u64, u64, &[u8], usize), DecodeError> {
    let header: &[u8; RECORD_HEADER_BYTES] = buf
        .get(..RECORD_HEADER_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or(DecodeError::Incomplete {
            needed: RECORD_HEADER_BYTES,
            available: buf.len(),
        })?;
    let len = peek_len(header)?;
    let total = encoded_len(len as usize);
    if buf.len() < total {
        return Err(DecodeError::Incomplete {
            needed: total,
            available: buf.len(),
        });
    }
    let payload = &buf[RECORD_HEADER_BYTES..total];
    let (seq, timestamp_ms) = check_parts(salt, header, payload)?;
    Ok((seq, timestamp_ms, payload, total))
}

/// Largest compact record header (version 3): a 5-byte length varint and a
/// 10-byte timestamp delta varint.
pub const MAX_FRAMED_HEADER_BYTES: usize = 15;
/// Smallest compact record (version 3): one byte each of length, timestamp
/// delta and payload.
pub const MIN_FRAMED_RECORD_BYTES: usize = 3;

/// A decoded compact record header (version 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramedHeader {
    /// Payload length, `1..=MAX_RECORD_BYTES`.
    pub len: u32,
    pub timestamp_ms: u64,
    /// Bytes of the header (the two varints) before the payload.
    pub header_bytes: usize,
}

impl FramedHeader {
    /// Header and payload bytes.
    pub fn total_len(&self) -> usize {
        self.header_bytes + self.len as usize
    }
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    // 1 + floor(log2(v) / 7), 1 for 0
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The varint at the start of `buf`, at most `max_bytes` long: its value and
/// length. Refuses a form longer than needed (a last group of zero, or bits
/// past 64), so every value has exactly one encoding.
#[inline]
fn get_varint(buf: &[u8], max_bytes: usize) -> Result<(u64, usize), DecodeError> {
    match buf.first() {
        Some(&b) if b < 0x80 => Ok((u64::from(b), 1)),
        Some(_) => get_varint_slow(buf, max_bytes),
        None => Err(DecodeError::Incomplete {
            needed: 1,
            available: 0,
        }),
    }
}

#[cold]
fn get_varint_slow(buf: &[u8], max_bytes: usize) -> Result<(u64, usize), DecodeError> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().take(max_bytes).enumerate() {
        let group = u64::from(b & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && group > 1 {
            return Err(DecodeError::BadVarint);
        }
        v |= group << shift;
        if b < 0x80 {
            if i > 0 && b == 0 {
                return Err(DecodeError::BadVarint);
            }
            return Ok((v, i + 1));
        }
    }
    if buf.len() < max_bytes {
        Err(DecodeError::Incomplete {
            needed: buf.len() + 1,
            available: buf.len(),
        })
    } else {
        Err(DecodeError::BadVarint)
    }
}

fn zigzag(delta: u64) -> u64 {
    let d = delta as i64;
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(z: u64) -> u64 {
    (z >> 1) ^ (z & 1).wrapping_neg()
}

/// Size of a compact record (version 3) once framed.
pub fn framed_len(prev_ts: u64, timestamp_ms: u64, payload_len: usize) -> usize {
    varint_len(payload_len as u64)
        + varint_len(zigzag(timestamp_ms.wrapping_sub(prev_ts)))
        + payload_len
}

/// Appends a compact record (version 3) to `out`; `prev_ts` is the
/// timestamp of the record before it in its batch (of the first: the
/// batch's base timestamp).
///
/// # Panics
/// If the payload is empty or longer than [`MAX_RECORD_BYTES`]; callers bound
/// commands before they reach the log.
pub fn encode_framed(prev_ts: u64, timestamp_ms: u64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        !payload.is_empty() && payload.len() <= MAX_RECORD_BYTES as usize,
        "record payload of {} bytes out of bounds",
        payload.len()
    );
    out.reserve(MAX_FRAMED_HEADER_BYTES + payload.len());
    put_varint(payload.len() as u64, out);
    put_varint(zigzag(timestamp_ms.wrapping_sub(prev_ts)), out);
    out.extend_from_slice(payload);
}

/// Decodes the compact record header (version 3) at the start of `buf`
/// (which may hold more bytes; at most [`MAX_FRAMED_HEADER_BYTES`] are
/// looked at). The payload's length is bounds-checked here; whether the
/// payload fits what is left of the batch is the caller's check.
#[inline]
pub fn decode_framed_header(prev_ts: u64, buf: &[u8]) -> Result<FramedHeader, DecodeError> {
    let (len, a) = get_varint(buf, 5)?;
    if len == 0 || len > u64::from(MAX_RECORD_BYTES) {
        return Err(DecodeError::BadLength {
            len: u32::try_from(len).unwrap_or(u32::MAX),
        });
    }
    let (delta, b) = get_varint(&buf[a..], 10)?;
    Ok(FramedHeader {
        len: len as u32,
        timestamp_ms: prev_ts.wrapping_add(unzigzag(delta)),
        header_bytes: a + b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> Record {
        Record {
            seq,
            timestamp_ms: 1_700_000_000_000 + seq,
            payload: format!("payload-{seq}").into_bytes(),
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode(42, &rec(1), &mut buf);
        encode(42, &rec(2), &mut buf);
        let (r1, n1) = decode(42, &buf).unwrap();
        assert_eq!(r1, rec(1));
        let (r2, n2) = decode(42, &buf[n1..]).unwrap();
        assert_eq!(r2, rec(2));
        assert_eq!(n1 + n2, buf.len());
        // the same check on a header and a payload read separately
        let header: [u8; RECORD_HEADER_BYTES] = buf[..RECORD_HEADER_BYTES].try_into().unwrap();
        let payload = &buf[RECORD_HEADER_BYTES..n1];
        assert_eq!(
            check_parts(42, &header, payload),
            Ok((1, rec(1).timestamp_ms))
        );
        assert!(check_parts(43, &header, payload).is_err());
        assert!(check_parts(42, &header, &payload[1..]).is_err());
        let mut flipped = payload.to_vec();
        flipped[0] ^= 1;
        assert!(matches!(
            check_parts(42, &header, &flipped),
            Err(DecodeError::BadChecksum { .. })
        ));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let mut buf = Vec::new();
        encode(7, &rec(3), &mut buf);
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                assert!(decode(7, &b).is_err(), "flip at byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn truncation_is_incomplete() {
        let mut buf = Vec::new();
        encode(7, &rec(3), &mut buf);
        for cut in 0..buf.len() {
            assert!(matches!(
                decode(7, &buf[..cut]),
                Err(DecodeError::Incomplete { .. })
            ));
        }
    }

    #[test]
    fn another_salt_never_validates() {
        let mut buf = Vec::new();
        encode(7, &rec(3), &mut buf);
        assert!(matches!(
            decode(8, &buf),
            Err(DecodeError::BadChecksum { .. })
        ));
    }

    #[test]
    fn zero_and_oversized_lengths_are_refused_before_allocating() {
        let zeros = [0u8; 64];
        assert_eq!(decode(1, &zeros), Err(DecodeError::ZeroHeader));
        let mut buf = vec![0u8; RECORD_HEADER_BYTES];
        buf[0..4].copy_from_slice(&(MAX_RECORD_BYTES + 1).to_le_bytes());
        assert_eq!(
            decode(1, &buf),
            Err(DecodeError::BadLength {
                len: MAX_RECORD_BYTES + 1
            })
        );
        buf[0..4].copy_from_slice(&0u32.to_le_bytes());
        buf[5] = 1;
        assert_eq!(decode(1, &buf), Err(DecodeError::BadLength { len: 0 }));
    }

    #[test]
    fn compact_headers_round_trip_at_the_edges() {
        let lens = [1u32, 127, 128, 16_383, 16_384, MAX_RECORD_BYTES];
        let stamps = [
            (0u64, 0u64),
            (1_700_000_000_000, 1_700_000_000_000),
            (1_700_000_000_000, 1_700_000_000_063),
            (1_700_000_000_000, 1_700_000_000_064),
            (1_700_000_000_000, 1_699_999_999_999),
            (0, u64::MAX),
            (u64::MAX, 0),
            (1 << 63, (1 << 63) - 1),
            (0, 1 << 63),
        ];
        for &len in &lens {
            for &(prev, ts) in &stamps {
                let mut out = Vec::new();
                // the header alone: encode_framed with a payload of `len`
                // would allocate 80 MiB for the largest
                put_varint(u64::from(len), &mut out);
                put_varint(zigzag(ts.wrapping_sub(prev)), &mut out);
                assert_eq!(out.len() + len as usize, framed_len(prev, ts, len as usize));
                assert!(out.len() <= MAX_FRAMED_HEADER_BYTES);
                out.extend_from_slice(&[0xab; 4]);
                let h = decode_framed_header(prev, &out).unwrap();
                assert_eq!((h.len, h.timestamp_ms), (len, ts), "{len} {prev} {ts}");
                assert_eq!(h.header_bytes + 4, out.len());
                // every cut of the header is incomplete
                for cut in 0..h.header_bytes {
                    assert!(
                        matches!(
                            decode_framed_header(prev, &out[..cut]),
                            Err(DecodeError::Incomplete { .. })
                        ),
                        "{len} {prev} {ts} cut {cut}"
                    );
                }
            }
        }
        // a SET of a 16-byte key and a 64-byte value: 2 bytes of framing
        let mut out = Vec::new();
        encode_framed(7, 7, &[b'x'; 85], &mut out);
        assert_eq!(out.len(), 87);
        assert_eq!((out[0], out[1]), (85, 0));
    }

    #[test]
    fn bad_compact_headers_are_refused() {
        let cases: [(&[u8], DecodeError); 7] = [
            (&[0, 0], DecodeError::BadLength { len: 0 }),
            // 80 MiB + 1
            (
                &[0x81, 0x80, 0x80, 0x28, 0],
                DecodeError::BadLength {
                    len: MAX_RECORD_BYTES + 1,
                },
            ),
            // a length longer than 5 bytes
            (
                &[0x81, 0x80, 0x80, 0x80, 0x80, 0x00],
                DecodeError::BadVarint,
            ),
            // not the shortest form: 1 as two bytes
            (&[0x81, 0x00, 0], DecodeError::BadVarint),
            (&[1, 0x80, 0x00], DecodeError::BadVarint),
            // a delta past 64 bits
            (
                &[
                    1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
                DecodeError::BadVarint,
            ),
            (
                &[
                    1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                DecodeError::BadVarint,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode_framed_header(0, bytes), Err(want), "{bytes:02x?}");
        }
        // the largest delta is fine
        let max = [
            1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        let h = decode_framed_header(0, &max).unwrap();
        assert_eq!((h.len, h.header_bytes), (1, 11));
        assert!(matches!(
            decode_framed_header(0, &[]),
            Err(DecodeError::Incomplete { .. })
        ));
    }
}
