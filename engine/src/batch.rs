//! One group commit as one framed batch (segment format version 2).
//!
//! ```text
//!  0        4        8                16               24       28       32
//!  +--------+--------+----------------+----------------+--------+--------+==================+
//!  | magic  | count  | first_seq      | len            | crc    | hcrc   | records          |
//!  | "TBAT" | u32 LE | u64 LE         | u64 LE         | u32 LE | u32 LE | len bytes        |
//!  +--------+--------+----------------+----------------+--------+--------+==================+
//!
//!  records = count framed records ([`crate::record`]) with seqs
//!            first_seq, first_seq + 1, …, exactly len bytes
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
//! never validates. A header of all zeros is never a batch (count >= 1):
//! preallocated, never written space reads as zeros.

use crate::record::{DecodeError, RECORD_HEADER_BYTES};

/// Magic bytes at the start of every batch.
pub const BATCH_MAGIC: [u8; 4] = *b"TBAT";
/// Size of the batch header.
pub const BATCH_HEADER_BYTES: usize = 32;

/// A decoded, checked batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub count: u32,
    pub first_seq: u64,
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
        BATCH_HEADER_BYTES as u64 + self.len
    }

    /// The 32 header bytes under `salt`.
    pub fn encode(&self, salt: u64) -> [u8; BATCH_HEADER_BYTES] {
        let mut b = [0u8; BATCH_HEADER_BYTES];
        b[0..4].copy_from_slice(&BATCH_MAGIC);
        b[4..8].copy_from_slice(&self.count.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        b[24..28].copy_from_slice(&self.crc.to_le_bytes());
        let hcrc = header_crc(salt, &b[0..28]);
        b[28..32].copy_from_slice(&hcrc.to_le_bytes());
        b
    }

    /// Parses and checks 32 header bytes under `salt` (not the records).
    pub fn decode(salt: u64, b: &[u8; BATCH_HEADER_BYTES]) -> Result<BatchHeader, DecodeError> {
        if b.iter().all(|&x| x == 0) {
            return Err(DecodeError::ZeroHeader);
        }
        if b[0..4] != BATCH_MAGIC {
            return Err(DecodeError::BadBatchMagic);
        }
        let stored = u32::from_le_bytes(b[28..32].try_into().expect("4 bytes"));
        let computed = header_crc(salt, &b[0..28]);
        if stored != computed {
            return Err(DecodeError::BadBatchHeaderChecksum { stored, computed });
        }
        let h = BatchHeader {
            count: u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")),
            first_seq: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
            len: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
            crc: u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")),
        };
        let min_len = u64::from(h.count) * (RECORD_HEADER_BYTES as u64 + 1);
        if h.count == 0 || h.len < min_len || h.first_seq == 0 {
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

/// The header framing `records` (`count` framed records from `first_seq`).
pub fn header_for(salt: u64, first_seq: u64, count: u64, records: &[u8]) -> BatchHeader {
    let mut crc = BatchCrc::new(salt);
    crc.update(records);
    BatchHeader {
        count: u32::try_from(count).expect("a batch holds fewer than 2^32 records"),
        first_seq,
        len: records.len() as u64,
        crc: crc.finalize(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record;

    fn batch(salt: u64) -> Vec<u8> {
        let mut recs = Vec::new();
        for seq in 5..8 {
            record::encode_parts(salt, seq, 1, format!("p{seq}").as_bytes(), &mut recs);
        }
        let h = header_for(salt, 5, 3, &recs);
        let mut b = h.encode(salt).to_vec();
        b.extend_from_slice(&recs);
        b
    }

    #[test]
    fn header_round_trip_and_every_flipped_bit_is_caught() {
        let b = batch(9);
        let hb: [u8; BATCH_HEADER_BYTES] = b[..BATCH_HEADER_BYTES].try_into().unwrap();
        let h = BatchHeader::decode(9, &hb).unwrap();
        assert_eq!((h.count, h.first_seq, h.last_seq()), (3, 5, 7));
        assert_eq!(h.total_len(), b.len() as u64);
        let mut crc = BatchCrc::new(9);
        crc.update(&b[BATCH_HEADER_BYTES..]);
        assert_eq!(crc.finalize(), h.crc);
        for byte in 0..BATCH_HEADER_BYTES {
            for bit in 0..8 {
                let mut x = hb;
                x[byte] ^= 1 << bit;
                assert!(BatchHeader::decode(9, &x).is_err(), "byte {byte} bit {bit}");
            }
        }
        assert!(matches!(
            BatchHeader::decode(10, &hb),
            Err(DecodeError::BadBatchHeaderChecksum { .. })
        ));
        assert_eq!(
            BatchHeader::decode(9, &[0; BATCH_HEADER_BYTES]),
            Err(DecodeError::ZeroHeader)
        );
    }

    #[test]
    fn impossible_shapes_are_refused() {
        for (count, len) in [(0u32, 100u64), (3, 74), (1, 0)] {
            let h = BatchHeader {
                count,
                first_seq: 1,
                len,
                crc: 0,
            };
            assert!(matches!(
                BatchHeader::decode(1, &h.encode(1)),
                Err(DecodeError::BadBatchShape { .. })
            ));
        }
    }
}
