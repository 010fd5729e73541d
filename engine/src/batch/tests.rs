use super::*;
use crate::record::{MAX_RECORD_BYTES, RECORD_HEADER_BYTES};

/// xorshift64: the tests' seeded random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Recs = Vec<(u64, Vec<u8>)>;

/// A random batch: 1 to 60 records; payloads mostly small, now and then
/// past one and two varint bytes of length; timestamps that mostly stay
/// or creep forward, sometimes jump back or anywhere in u64.
fn random_records(rng: &mut Rng) -> Recs {
    let n = 1 + rng.below(60);
    let mut ts = rng.next();
    (0..n)
        .map(|_| {
            ts = match rng.below(10) {
                0..=4 => ts,
                5..=7 => ts.wrapping_add(rng.below(300)),
                8 => ts.wrapping_sub(rng.below(1 << 20)),
                _ => rng.next(),
            };
            let len = match rng.below(20) {
                0 => 128 + rng.below(20_000),
                1 => 1,
                _ => 1 + rng.below(127),
            } as usize;
            let payload = (0..len).map(|_| rng.next() as u8).collect();
            (ts, payload)
        })
        .collect()
}

fn encode(salt: u64, first_seq: u64, recs: &Recs) -> Vec<u8> {
    let mut e = BatchEncoder::new();
    for (ts, p) in recs {
        e.push(*ts, p);
    }
    e.finish(salt, first_seq).to_vec()
}

/// The records of the batch at the start of `buf`, or the first error.
fn decode(framing: Framing, salt: u64, buf: &[u8]) -> Result<(BatchHeader, Recs), DecodeError> {
    let (h, records) = decode_batch(framing, salt, buf)?;
    let mut out = Vec::new();
    for (i, r) in records.enumerate() {
        let r = r?;
        assert_eq!(r.seq, h.first_seq + i as u64);
        out.push((r.timestamp_ms, r.payload.to_vec()));
    }
    Ok((h, out))
}

#[test]
fn random_batches_round_trip() {
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..300 {
        let salt = rng.next();
        let first_seq = 1 + rng.below(1 << 40);
        let recs = random_records(&mut rng);
        let framed = encode(salt, first_seq, &recs);
        let expected_len: usize = BATCH_HEADER_BYTES
            + recs
                .iter()
                .scan(recs[0].0, |prev, (ts, p)| {
                    let n = record::framed_len(*prev, *ts, p.len());
                    *prev = *ts;
                    Some(n)
                })
                .sum::<usize>();
        assert_eq!(framed.len(), expected_len);
        let (h, got) = decode(Framing::V3, salt, &framed).unwrap();
        assert_eq!(got, recs);
        assert_eq!(
            (h.count as usize, h.first_seq, h.base_ts, h.total_len()),
            (recs.len(), first_seq, recs[0].0, framed.len() as u64)
        );
        assert!(compact_records_fit(h.count, &framed[BATCH_HEADER_BYTES..]));
        // bytes after the batch are not its business
        let mut more = framed.clone();
        more.extend_from_slice(&[0xee; 50]);
        assert_eq!(decode(Framing::V3, salt, &more).unwrap().1, recs);
        // another salt never validates
        assert!(decode(Framing::V3, salt ^ 1, &framed).is_err());
    }
}

/// The encoder is reused batch after batch: each batch starts afresh.
#[test]
fn a_reused_encoder_frames_each_batch_on_its_own() {
    let mut rng = Rng(77);
    let mut e = BatchEncoder::with_capacity(16);
    for first_seq in 1..50u64 {
        let recs = random_records(&mut rng);
        e.clear();
        for (ts, p) in &recs {
            e.push(*ts, p);
        }
        assert_eq!(e.count() as usize, recs.len());
        let framed = e.finish(9, first_seq).to_vec();
        assert_eq!(framed, encode(9, first_seq, &recs));
        assert_eq!(decode(Framing::V3, 9, &framed).unwrap().1, recs);
        e.shrink_to(1 << 10);
    }
    e.clear();
    assert!(e.is_empty());
    assert_eq!(e.framed_len(), BATCH_HEADER_BYTES);
}

/// Every single damaged byte of a batch (header or records) and every cut
/// is detected: nothing is decoded from it. The first batches get every
/// new value of every byte, the others every single-bit flip and a few
/// random values.
#[test]
fn every_damaged_byte_and_every_cut_of_a_batch_is_detected() {
    let mut rng = Rng(0xdead_beef);
    for round in 0..8 {
        let recs: Recs = match round {
            0 => vec![(1_700_000_000_000, b"SET k v".to_vec())],
            1 => vec![
                (5, vec![7; 130]),
                (3, b"x".to_vec()),
                (u64::MAX, vec![1; 20]),
            ],
            _ => random_records(&mut rng)
                .into_iter()
                .take(6)
                .map(|(ts, mut p)| {
                    p.truncate(300);
                    (ts, p)
                })
                .collect(),
        };
        let framed = encode(42, 7, &recs);
        let values: Vec<u8> = if round < 2 {
            (1..=255).collect()
        } else {
            let mut v: Vec<u8> = (0..8).map(|b| 1 << b).collect();
            v.extend((0..4).map(|_| 1 + rng.below(255) as u8));
            v
        };
        for at in 0..framed.len() {
            for &x in &values {
                let mut b = framed.clone();
                b[at] ^= x;
                assert!(
                    decode(Framing::V3, 42, &b).is_err(),
                    "round {round}: byte {at} ^ {x:#x} not detected"
                );
            }
        }
        for cut in 0..framed.len() {
            assert!(
                decode(Framing::V3, 42, &framed[..cut]).is_err(),
                "round {round}: cut at {cut}"
            );
        }
    }
}

#[test]
fn header_round_trip_and_every_flipped_bit_is_caught() {
    let framed = encode(9, 5, &vec![(1, b"p5".to_vec()); 3]);
    let h = BatchHeader::decode(Framing::V3, 9, &framed).unwrap();
    assert_eq!((h.count, h.first_seq, h.last_seq()), (3, 5, 7));
    assert_eq!(h.total_len(), framed.len() as u64);
    assert_eq!(records_crc(9, &framed[BATCH_HEADER_BYTES..]), h.crc);
    assert_eq!(h.encode(9)[..], framed[..BATCH_HEADER_BYTES]);
    for byte in 0..BATCH_HEADER_BYTES {
        for bit in 0..8 {
            let mut x = framed.clone();
            x[byte] ^= 1 << bit;
            assert!(
                BatchHeader::decode(Framing::V3, 9, &x).is_err(),
                "byte {byte} bit {bit}"
            );
        }
    }
    assert!(matches!(
        BatchHeader::decode(Framing::V3, 10, &framed),
        Err(DecodeError::BadBatchHeaderChecksum { .. })
    ));
    assert_eq!(
        BatchHeader::decode(Framing::V3, 9, &[0; BATCH_HEADER_BYTES]),
        Err(DecodeError::ZeroHeader)
    );
    assert!(matches!(
        BatchHeader::decode(Framing::V3, 9, &framed[..BATCH_HEADER_BYTES - 1]),
        Err(DecodeError::Incomplete { .. })
    ));
    // a version-2 reader does not take a version-3 batch, nor the reverse
    assert_eq!(
        BatchHeader::decode(Framing::V2, 9, &framed),
        Err(DecodeError::BadBatchMagic)
    );
    let v2 = v2_batch(9, 5, 3);
    assert_eq!(
        BatchHeader::decode(Framing::V3, 9, &v2),
        Err(DecodeError::BadBatchMagic)
    );
}

#[test]
fn impossible_shapes_are_refused() {
    let shapes = [
        (0u32, 1u64, 100u64),
        (3, 1, 8),
        (1, 1, 0),
        (1, 0, 3),
        (2, u64::MAX, 6),
    ];
    for (count, first_seq, len) in shapes {
        let h = BatchHeader {
            framing: Framing::V3,
            count,
            first_seq,
            base_ts: 0,
            len,
            crc: 0,
        };
        assert!(
            matches!(
                BatchHeader::decode(Framing::V3, 1, &h.encode(1)),
                Err(DecodeError::BadBatchShape { .. })
            ),
            "{count} {first_seq} {len}"
        );
    }
    for (count, len) in [(0u32, 100u64), (3, 74), (1, 0)] {
        let h = BatchHeader {
            framing: Framing::V2,
            count,
            first_seq: 1,
            base_ts: 0,
            len,
            crc: 0,
        };
        assert!(matches!(
            BatchHeader::decode(Framing::V2, 1, &h.encode_v2(1)),
            Err(DecodeError::BadBatchShape { .. })
        ));
    }
}

/// A batch whose checksum holds but whose records do not fill it exactly
/// (a writer bug, or a checksum collision) yields an error, never a record
/// cut out of the wrong bytes.
#[test]
fn records_that_do_not_fill_their_batch_are_refused() {
    let salt = 3;
    let mut records = Vec::new();
    record::encode_framed(5, 5, b"abc", &mut records);
    record::encode_framed(5, 6, b"defg", &mut records);
    let frame = |count: u32, records: &[u8]| {
        let h = BatchHeader {
            framing: Framing::V3,
            count,
            first_seq: 1,
            base_ts: 5,
            len: records.len() as u64,
            crc: records_crc(salt, records),
        };
        let mut b = h.encode(salt).to_vec();
        b.extend_from_slice(records);
        b
    };
    assert_eq!(
        decode(Framing::V3, salt, &frame(2, &records))
            .unwrap()
            .1
            .len(),
        2
    );
    assert!(compact_records_fit(2, &records));
    // one record too many announced, or too few
    for (count, bytes) in [(3, &records[..]), (1, &records[..])] {
        assert!(!compact_records_fit(count, bytes));
        assert_eq!(
            decode(Framing::V3, salt, &frame(count, bytes)).map(|_| ()),
            Err(DecodeError::BatchMismatch)
        );
    }
    // the last length runs past the end
    let mut long = records.clone();
    long[5] = 9;
    assert!(!compact_records_fit(2, &long));
    assert_eq!(
        decode(Framing::V3, salt, &frame(2, &long)).map(|_| ()),
        Err(DecodeError::BatchMismatch)
    );
}

/// A version-2 batch of `count` records `p{seq}` from `first_seq`.
fn v2_batch(salt: u64, first_seq: u64, count: u64) -> Vec<u8> {
    let mut recs = Vec::new();
    for seq in first_seq..first_seq + count {
        record::encode_parts(
            salt,
            seq,
            1000 + seq,
            format!("p{seq}").as_bytes(),
            &mut recs,
        );
    }
    let h = header_for_v2(salt, first_seq, count, &recs);
    let mut b = h.encode_v2(salt).to_vec();
    b.extend_from_slice(&recs);
    b
}

#[test]
fn version_2_batches_still_decode() {
    let b = v2_batch(9, 5, 3);
    let (h, recs) = decode(Framing::V2, 9, &b).unwrap();
    assert_eq!(
        (h.count, h.first_seq, h.base_ts, h.total_len()),
        (3, 5, 0, b.len() as u64)
    );
    assert_eq!(
        recs,
        (5..8)
            .map(|s| (1000 + s, format!("p{s}").into_bytes()))
            .collect::<Recs>()
    );
    assert_eq!(
        BATCH_HEADER_BYTES_V2 + 3 * (RECORD_HEADER_BYTES + 2),
        b.len()
    );
    for at in 0..b.len() {
        let mut x = b.clone();
        x[at] ^= 0x20;
        assert!(decode(Framing::V2, 9, &x).is_err(), "byte {at}");
    }
}

#[test]
#[should_panic(expected = "out of bounds")]
fn an_empty_payload_is_never_framed() {
    BatchEncoder::new().push(1, b"");
}

#[test]
fn bounds_are_the_record_bounds() {
    assert_eq!(Framing::V3.min_record_bytes(), 3);
    assert!(
        u64::from(MAX_RECORD_BYTES) < 1 << 35,
        "a length fits 5 varint bytes"
    );
}
