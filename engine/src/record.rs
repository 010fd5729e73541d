//! One command-log record: framing, checksum and bounds.
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
//! as zeros.

/// Size of the fixed record header (len, crc, seq, timestamp).
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
}

fn checksum(salt: u64, header_tail: &[u8], len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(header_tail);
    h.update(payload);
    h.finalize()
}

/// Size of `record` once framed.
pub fn encoded_len(payload_len: usize) -> usize {
    RECORD_HEADER_BYTES + payload_len
}

/// Appends the framed `record` to `out`.
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

/// Decodes the record at the start of `buf`; returns it and its framed size.
pub fn decode(salt: u64, buf: &[u8]) -> Result<(Record, usize), DecodeError> {
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
    let stored = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let payload = &buf[RECORD_HEADER_BYTES..total];
    let computed = checksum(salt, &buf[8..24], len, payload);
    if stored != computed {
        return Err(DecodeError::BadChecksum { stored, computed });
    }
    let seq = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    let timestamp_ms = u64::from_le_bytes(buf[16..24].try_into().expect("8 bytes"));
    Ok((
        Record {
            seq,
            timestamp_ms,
            payload: payload.to_vec(),
        },
        total,
    ))
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
}
