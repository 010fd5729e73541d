//! Redis's DUMP payload (an RDB object, RDB version 10 as Redis 7.0
//! writes, CRC64 Jones): written by DUMP, read by RESTORE.
//!
//! ```text
//!  type u8 | object | rdb version u16 LE | crc64 u64 LE (of everything before it)
//! ```
//!
//! The engine writes strings as type 0 (integers as RDB integers), lists as
//! type 1 (a plain list) and hashes as type 4 (a plain hash): every Redis
//! since 2.x restores them. It reads those and what Redis 7 writes: hashes
//! as listpacks (type 16), lists as quicklists of listpacks (type 18), and
//! strings compressed with LZF. Other types and encodings (sets, sorted
//! sets, streams, modules, ziplists of RDB 9 and before) are refused as a
//! bad format.

use crate::db::{Hash, List, Value};

/// The RDB version Redis 7.0 writes (payloads of later versions are refused).
pub const RDB_VERSION: u16 = 10;

const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_HASH: u8 = 4;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_LIST_QUICKLIST_2: u8 = 18;

/// Why a payload cannot be restored (Redis's two errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadError {
    /// `ERR DUMP payload version or checksum are wrong`
    VersionOrChecksum,
    /// `ERR Bad data format`
    BadFormat,
}

/// CRC-64/Jones as Redis computes it (reflected, polynomial
/// 0xad93d23594c935a9, no final xor).
pub fn crc64(data: &[u8]) -> u64 {
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let poly = 0xad93_d235_94c9_35a9u64.reverse_bits();
        let mut t = [0u64; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ poly } else { c >> 1 };
            }
            *e = c;
        }
        t
    });
    data.iter().fold(0u64, |crc, &b| {
        table[((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

// ---------------------------------------------------------------- writing

fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A string, as an RDB integer when it is the canonical text of one that
/// fits 32 bits (as Redis saves it).
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 {
        if let Some(n) = super::arg::parse_i64(s) {
            if let Ok(v) = i8::try_from(n) {
                out.extend_from_slice(&[0xc0, v as u8]);
                return;
            }
            if let Ok(v) = i16::try_from(n) {
                out.push(0xc1);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            }
            if let Ok(v) = i32::try_from(n) {
                out.push(0xc2);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            }
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The DUMP payload of `v` (None for a type this file cannot write yet).
pub fn dump(v: &Value) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match v {
        Value::Str(s) => {
            out.push(TYPE_STRING);
            put_string(&mut out, s);
        }
        Value::List(l) => {
            out.push(TYPE_LIST);
            put_len(&mut out, l.len() as u64);
            for e in l {
                put_string(&mut out, e);
            }
        }
        Value::Hash(h) => {
            out.push(TYPE_HASH);
            put_len(&mut out, h.len() as u64);
            for (f, v) in h {
                put_string(&mut out, f);
                put_string(&mut out, v);
            }
        }
        #[allow(unreachable_patterns)]
        _ => return None,
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Some(out)
}

// ---------------------------------------------------------------- reading

struct Reader<'a> {
    buf: &'a [u8],
    /// Bytes of strings decoded so far (LZF expands): bounded by
    /// [`MAX_DECODED_BYTES`].
    decoded: usize,
}

/// Most bytes of strings one payload may decode to (Redis's default
/// `proto-max-bulk-len`): a small compressed payload cannot make the
/// engine allocate without bound.
const MAX_DECODED_BYTES: usize = 512 * 1024 * 1024;

type R<T> = Result<T, PayloadError>;
const BAD: PayloadError = PayloadError::BadFormat;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.buf.len() < n {
            return Err(BAD);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    /// A length, or the special encoding (`Err` side: the 6 low bits).
    fn len_or_enc(&mut self) -> R<Result<u64, u8>> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Ok(u64::from(b & 0x3f)),
            1 => Ok(u64::from(b & 0x3f) << 8 | u64::from(self.u8()?)),
            3 => Err(b & 0x3f),
            _ => match b {
                0x80 => Ok(u64::from(u32::from_be_bytes(
                    self.take(4)?.try_into().expect("4"),
                ))),
                0x81 => Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8"))),
                _ => return Err(BAD),
            },
        })
    }

    fn len(&mut self) -> R<u64> {
        self.len_or_enc()?.map_err(|_| BAD)
    }

    fn string(&mut self) -> R<Vec<u8>> {
        let s = self.string_unbounded()?;
        self.decoded += s.len();
        if self.decoded > MAX_DECODED_BYTES {
            return Err(BAD);
        }
        Ok(s)
    }

    fn string_unbounded(&mut self) -> R<Vec<u8>> {
        match self.len_or_enc()? {
            Ok(n) => Ok(self.take(usize::try_from(n).map_err(|_| BAD)?)?.to_vec()),
            Err(0) => Ok((self.u8()? as i8).to_string().into_bytes()),
            Err(1) => Ok(i16::from_le_bytes(self.take(2)?.try_into().expect("2"))
                .to_string()
                .into_bytes()),
            Err(2) => Ok(i32::from_le_bytes(self.take(4)?.try_into().expect("4"))
                .to_string()
                .into_bytes()),
            Err(3) => {
                let clen = usize::try_from(self.len()?).map_err(|_| BAD)?;
                let len = usize::try_from(self.len()?).map_err(|_| BAD)?;
                if len > crate::db::MAX_STRING_BYTES || self.decoded + len > MAX_DECODED_BYTES {
                    return Err(BAD);
                }
                lzf_decompress(self.take(clen)?, len)
            }
            Err(_) => Err(BAD),
        }
    }
}

/// LZF decompression to exactly `len` bytes.
fn lzf_decompress(input: &[u8], len: usize) -> R<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if i + run > input.len() || out.len() + run > len {
                return Err(BAD);
            }
            out.extend_from_slice(&input[i..i + run]);
            i += run;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += usize::from(*input.get(i).ok_or(BAD)?);
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(i).ok_or(BAD)?) + 1;
            i += 1;
            if back > out.len() || out.len() + n + 2 > len {
                return Err(BAD);
            }
            let from = out.len() - back;
            for k in 0..n + 2 {
                out.push(out[from + k]);
            }
        }
    }
    if out.len() != len {
        return Err(BAD);
    }
    Ok(out)
}

/// The entries of a listpack, as strings (integers in decimal).
fn listpack(lp: &[u8]) -> R<Vec<Vec<u8>>> {
    if lp.len() < 7 || u32::from_le_bytes(lp[..4].try_into().expect("4")) as usize != lp.len() {
        return Err(BAD);
    }
    let mut out = Vec::new();
    let mut p = 6;
    loop {
        let b = *lp.get(p).ok_or(BAD)?;
        if b == 0xff {
            break;
        }
        let rest = &lp[p..];
        let field = |start: usize, n: usize| rest.get(start..start + n).ok_or(BAD);
        let (entry, used): (Vec<u8>, usize) = if b & 0x80 == 0 {
            ((b & 0x7f).to_string().into_bytes(), 1)
        } else if b & 0xc0 == 0x80 {
            let n = usize::from(b & 0x3f);
            (field(1, n)?.to_vec(), 1 + n)
        } else if b & 0xe0 == 0xc0 {
            let v = (i64::from(b & 0x1f) << 8) | i64::from(*field(1, 1)?.first().ok_or(BAD)?);
            let v = if v >= 1 << 12 { v - (1 << 13) } else { v };
            (v.to_string().into_bytes(), 2)
        } else if b & 0xf0 == 0xe0 {
            let n = (usize::from(b & 0x0f) << 8) | usize::from(field(1, 1)?[0]);
            (field(2, n)?.to_vec(), 2 + n)
        } else {
            let int = |n: usize| -> R<i64> {
                let mut v = [0u8; 8];
                v[..n].copy_from_slice(field(1, n)?);
                let shift = 64 - 8 * n as u32;
                Ok((i64::from_le_bytes(v) << shift) >> shift)
            };
            match b {
                0xf0 => {
                    let n = u32::from_le_bytes(field(1, 4)?.try_into().expect("4")) as usize;
                    (field(5, n)?.to_vec(), 5 + n)
                }
                0xf1 => (int(2)?.to_string().into_bytes(), 3),
                0xf2 => (int(3)?.to_string().into_bytes(), 4),
                0xf3 => (int(4)?.to_string().into_bytes(), 5),
                0xf4 => (int(8)?.to_string().into_bytes(), 9),
                _ => return Err(BAD),
            }
        };
        let backlen = match used {
            0..=127 => 1,
            128..=16383 => 2,
            16384..=2097151 => 3,
            2097152..=268435455 => 4,
            _ => 5,
        };
        p += used + backlen;
        if p > lp.len() {
            return Err(BAD);
        }
        out.push(entry);
    }
    if p + 1 != lp.len() {
        return Err(BAD);
    }
    Ok(out)
}

/// Checks the footer (version, CRC) of a DUMP payload.
pub fn verify(payload: &[u8]) -> R<()> {
    if payload.len() < 10 {
        return Err(PayloadError::VersionOrChecksum);
    }
    let (body, footer) = payload.split_at(payload.len() - 8);
    let version = u16::from_le_bytes([body[body.len() - 2], body[body.len() - 1]]);
    if version > RDB_VERSION || crc64(body).to_le_bytes() != footer {
        return Err(PayloadError::VersionOrChecksum);
    }
    Ok(())
}

/// The value a DUMP payload holds (footer checked first).
pub fn restore(payload: &[u8]) -> R<Value> {
    verify(payload)?;
    let mut r = Reader {
        buf: &payload[..payload.len() - 10],
        decoded: 0,
    };
    let count = |r: &mut Reader<'_>| -> R<usize> {
        let n = r.len()?;
        // every item takes at least one byte
        if n == 0 || n > r.buf.len() as u64 {
            return Err(BAD);
        }
        Ok(n as usize)
    };
    let v = match r.u8()? {
        TYPE_STRING => Value::Str(r.string()?),
        TYPE_LIST => {
            let n = count(&mut r)?;
            let mut l = List::with_capacity(n);
            for _ in 0..n {
                l.push_back(r.string()?);
            }
            Value::List(l)
        }
        TYPE_HASH => {
            let n = count(&mut r)?;
            let mut h = Hash::new();
            for _ in 0..n {
                let f = r.string()?;
                if !h.insert(f, r.string()?) {
                    return Err(BAD);
                }
            }
            Value::Hash(h)
        }
        TYPE_HASH_LISTPACK => {
            let items = listpack(&r.string()?)?;
            if items.is_empty() || items.len() % 2 != 0 {
                return Err(BAD);
            }
            let mut h = Hash::new();
            let mut it = items.into_iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                if !h.insert(f, v) {
                    return Err(BAD);
                }
            }
            Value::Hash(h)
        }
        TYPE_LIST_QUICKLIST_2 => {
            let n = count(&mut r)?;
            let mut l = List::new();
            for _ in 0..n {
                match r.len()? {
                    1 => l.push_back(r.string()?),
                    2 => l.extend(listpack(&r.string()?)?),
                    _ => return Err(BAD),
                }
            }
            if l.is_empty() {
                return Err(BAD);
            }
            Value::List(l)
        }
        _ => return Err(BAD),
    };
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn crc_and_round_trips() {
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        let mut h = Hash::new();
        h.insert(b"a".to_vec(), b"1".to_vec());
        h.insert(b"b".to_vec(), vec![b'x'; 70_000]);
        let vals = [
            Value::Str(b"12".to_vec()),
            Value::Str(b"-70000".to_vec()),
            Value::Str(b"012".to_vec()),
            Value::Str(vec![0; 300]),
            Value::List(List::from(vec![b"a".to_vec(), b"-5".to_vec()])),
            Value::Hash(h),
        ];
        for v in vals {
            let p = dump(&v).unwrap();
            assert_eq!(restore(&p), Ok(v));
            let mut bad = p.clone();
            bad[1] ^= 1;
            assert_eq!(restore(&bad), Err(PayloadError::VersionOrChecksum));
        }
        assert_eq!(
            dump(&Value::Str(b"12".to_vec())).unwrap(),
            unhex("00c00c0a003c2af8515c04bcd5")
        );
    }

    #[test]
    fn payloads_of_redis_7_are_read() {
        // DUMP of redis-server 7.0.15: HSET h a 1 b hello; RPUSH l a 1000 -5;
        // SET big <40 x> (LZF)
        let h = unhex("101616000000040081610201018162028568656c6c6f06ff0a00e8c5fe99ee07955d");
        let mut hash = Hash::new();
        hash.insert(b"a".to_vec(), b"1".to_vec());
        hash.insert(b"b".to_vec(), b"hello".to_vec());
        assert_eq!(restore(&h), Ok(Value::Hash(hash)));
        let l = unhex("12010210100000000300816102c3e802dffb02ff0a008ac7d88dcd2b3414");
        assert_eq!(
            restore(&l),
            Ok(Value::List(List::from(vec![
                b"a".to_vec(),
                b"1000".to_vec(),
                b"-5".to_vec()
            ])))
        );
        let big = unhex("00c30928017878e01b000178780a007a1d6ccea5401333");
        assert_eq!(restore(&big), Ok(Value::Str(vec![b'x'; 40])));
    }

    #[test]
    fn random_payloads_with_a_valid_footer_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let types = [0u8, 1, 4, 16, 18, 2, 14];
        // some structure: valid prefixes of real payloads, then noise
        let seeds = [
            unhex("101616000000040081610201018162028568656c6c6f06ff"),
            unhex("12010210100000000300816102c3e802dffb02ff"),
            unhex("00c30928017878e01b00017878"),
        ];
        for i in 0..30_000 {
            let mut body = if i % 2 == 0 {
                let s = &seeds[(rnd() % 3) as usize];
                let mut b = s[..(rnd() as usize % (s.len() + 1))].to_vec();
                if !b.is_empty() && rnd() % 2 == 0 {
                    let at = rnd() as usize % b.len();
                    b[at] = rnd() as u8;
                }
                b
            } else {
                let n = (rnd() % 40) as usize;
                let mut b: Vec<u8> = (0..n).map(|_| rnd() as u8).collect();
                if let Some(f) = b.first_mut() {
                    *f = types[(rnd() % 7) as usize];
                }
                b
            };
            body.extend_from_slice(&RDB_VERSION.to_le_bytes());
            let crc = crc64(&body);
            body.extend_from_slice(&crc.to_le_bytes());
            if let Ok(v) = restore(&body) {
                // whatever decodes is a value the engine can hold and dump
                let again = dump(&v).unwrap();
                assert_eq!(restore(&again), Ok(v));
            }
        }
    }
}
