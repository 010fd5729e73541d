//! Building blocks of log payloads: every payload is `op u8 | body`, with
//! integers little endian and `bytes` = `len u32 | data`. Each command's
//! file draws its own body next to its `encode_body`/`decode_body`.
//!
//! Decoding checks every length against what is left before allocating, and
//! refuses trailing bytes: anything that decodes is canonical.

use crate::db::Pairs;

/// Why a payload cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty payload")]
    Empty,
    #[error("unknown op {0}")]
    UnknownOp(u8),
    #[error("op {found} where op {expected} was expected")]
    WrongOp { expected: u8, found: u8 },
    #[error("needs {need} more bytes, {left} left")]
    Truncated { need: usize, left: usize },
    #[error("count {count} larger than the payload")]
    Count { count: usize },
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("bad {what} {value:#x}")]
    Invalid { what: &'static str, value: u64 },
}

pub fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// `len u32 | data`.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

/// `n u32 | n × bytes`.
pub fn put_list(out: &mut Vec<u8>, items: &[Vec<u8>]) {
    put_u32(out, items.len() as u32);
    for item in items {
        put_bytes(out, item);
    }
}

/// `n u32 | n × (bytes bytes)`.
pub fn put_pairs(out: &mut Vec<u8>, pairs: &[(Vec<u8>, Vec<u8>)]) {
    put_u32(out, pairs.len() as u32);
    for (k, v) in pairs {
        put_bytes(out, k);
        put_bytes(out, v);
    }
}

/// Reads a payload body front to back.
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                need: n,
                left: self.buf.len(),
            });
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(self.u64()? as i64)
    }

    pub fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        Ok(self.bytes_ref()?.to_vec())
    }

    /// `bytes` borrowed from the payload (no allocation: replay's fast
    /// paths).
    pub fn bytes_ref(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// A count whose items take at least `min_item` bytes each: bounded by
    /// what is left before anything is allocated.
    pub fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.buf.len() {
            return Err(DecodeError::Count { count: n });
        }
        Ok(n)
    }

    pub fn pairs(&mut self) -> Result<Pairs, DecodeError> {
        let n = self.count(8)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.bytes()?;
            v.push((k, self.bytes()?));
        }
        Ok(v)
    }

    pub fn list(&mut self) -> Result<Vec<Vec<u8>>, DecodeError> {
        let n = self.count(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.bytes()?);
        }
        Ok(v)
    }

    /// Refuses trailing bytes.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

/// `b` quoted like redis-cli prints it (`"k\n"`, `"\x00"`): for dumps.
pub fn quote(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// `NAME "a" "b" …` for dumps.
pub fn describe_words<'a>(name: &str, words: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut s = name.to_string();
    for w in words {
        s.push(' ');
        s.push_str(&quote(w));
    }
    s
}
