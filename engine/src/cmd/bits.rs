//! What the bit commands (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP,
//! BITFIELD) share: bit offsets as Redis reads them, bit order (bit 0 is the
//! most significant bit of byte 0) and ranges.

use super::arg::parse_i64;
use crate::db::MAX_STRING_BYTES;
use crate::reply::{self, Reply};

/// Redis's default `proto-max-bulk-len`: a bit offset whose byte is at or
/// past it is refused as out of range (GETBIT/BITFIELD GET read such
/// offsets as zeros; writes past [`MAX_STRING_BYTES`] are refused as too
/// long, like SETRANGE).
pub const PROTO_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;

pub const BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";

/// A bit offset argument (Redis's `getBitOffsetFromArgument`): an integer,
/// or `#n` meaning n × `bits` when `bits` > 0 (BITFIELD).
pub fn parse_bit_offset(a: &[u8], bits: u32) -> Result<u64, Reply> {
    let err = || Reply::error(BIT_OFFSET);
    let (hash, digits) = match a.first() {
        Some(b'#') if bits > 0 => (true, &a[1..]),
        _ => (false, a),
    };
    let mut n = parse_i64(digits).ok_or_else(err)?;
    if hash {
        n = n.wrapping_mul(i64::from(bits));
    }
    if n < 0 || (n as u64 >> 3) >= PROTO_MAX_BULK_LEN {
        return Err(err());
    }
    Ok(n as u64)
}

/// The error a write reaching bit `last_bit` gets when the string would
/// grow past [`MAX_STRING_BYTES`].
pub fn too_long(last_bit: u64) -> bool {
    (last_bit >> 3) >= MAX_STRING_BYTES as u64
}

pub fn string_too_long() -> Reply {
    Reply::error(reply::STRING_TOO_LONG)
}

/// Bit `offset` of `s` (zero past its end).
pub fn get_bit(s: &[u8], offset: u64) -> bool {
    let byte = (offset >> 3) as usize;
    byte < s.len() && s[byte] & (0x80 >> (offset & 7)) != 0
}

/// Sets bit `offset` of `s` (long enough).
pub fn set_bit(s: &mut [u8], offset: u64, on: bool) {
    let byte = (offset >> 3) as usize;
    let mask = 0x80 >> (offset & 7);
    if on {
        s[byte] |= mask;
    } else {
        s[byte] &= !mask;
    }
}

/// `s` grown with zero bytes so that bit `last_bit` exists.
pub fn grow_to_bit(s: &mut Vec<u8>, last_bit: u64) {
    let need = (last_bit >> 3) as usize + 1;
    if s.len() < need {
        s.resize(need, 0);
    }
}

/// BYTE or BIT, the unit of BITCOUNT's and BITPOS's range.
pub fn parse_unit(a: &[u8]) -> Result<bool, Reply> {
    match a.to_ascii_uppercase().as_slice() {
        b"BIT" => Ok(true),
        b"BYTE" => Ok(false),
        _ => Err(super::syntax_error()),
    }
}

/// Redis's range arithmetic of BITCOUNT/BITPOS over `total` units (bytes,
/// or bits when `in_bits`): the inclusive range in bits, or None when empty.
pub fn bit_range(len_bytes: usize, start: i64, end: i64, in_bits: bool) -> Option<(u64, u64)> {
    let total = if in_bits {
        len_bytes as i64 * 8
    } else {
        len_bytes as i64
    };
    let (mut s, mut e) = (start, end);
    if s < 0 {
        s = s.saturating_add(total);
    }
    if e < 0 {
        e = e.saturating_add(total);
    }
    s = s.max(0);
    e = e.max(0);
    if e >= total {
        e = total - 1;
    }
    if s > e {
        return None;
    }
    if in_bits {
        Some((s as u64, e as u64))
    } else {
        Some((s as u64 * 8, e as u64 * 8 + 7))
    }
}

/// Set bits of `s` in the inclusive bit range.
pub fn count_bits(s: &[u8], first: u64, last: u64) -> u64 {
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    let mut n: u64 = s[fb..=lb].iter().map(|b| u64::from(b.count_ones())).sum();
    // bits of the edge bytes outside the range
    let head = s[fb] & !(0xffu8 >> (first & 7));
    let tail = s[lb] & (0x7fu8 >> (last & 7));
    n -= u64::from(head.count_ones()) + u64::from(tail.count_ones());
    n
}

/// The first bit equal to `bit` in the inclusive bit range of `s`.
pub fn find_bit(s: &[u8], first: u64, last: u64, bit: bool) -> Option<u64> {
    let mut i = first;
    while i <= last {
        // skip whole bytes with nothing to find
        if i & 7 == 0 && i + 7 <= last {
            let byte = s[(i >> 3) as usize];
            if (bit && byte == 0) || (!bit && byte == 0xff) {
                i += 8;
                continue;
            }
        }
        if get_bit(s, i) == bit {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_ranges_and_counts_like_redis() {
        assert_eq!(parse_bit_offset(b"7", 0), Ok(7));
        assert_eq!(parse_bit_offset(b"#2", 8), Ok(16));
        assert!(parse_bit_offset(b"#2", 0).is_err());
        assert!(parse_bit_offset(b"-1", 0).is_err());
        assert!(parse_bit_offset(b"4294967296", 0).is_err());
        assert_eq!(parse_bit_offset(b"4294967295", 0), Ok(4294967295));
        assert_eq!(bit_range(3, 0, -1, false), Some((0, 23)));
        assert_eq!(bit_range(3, 5, 12, true), Some((5, 12)));
        assert_eq!(bit_range(3, -1, -2, false), None);
        assert_eq!(bit_range(0, 0, -1, false), None);
        let s = [0xffu8, 0x0f, 0x80];
        assert_eq!(count_bits(&s, 0, 23), 13);
        assert_eq!(count_bits(&s, 3, 12), 6);
        assert_eq!(find_bit(&s, 0, 23, false), Some(8));
        assert_eq!(find_bit(&s, 9, 23, true), Some(12));
        assert_eq!(find_bit(&[0xff], 0, 7, false), None);
        let mut v = Vec::new();
        grow_to_bit(&mut v, 9);
        set_bit(&mut v, 9, true);
        assert_eq!(v, vec![0, 0x40]);
        assert!(get_bit(&v, 9) && !get_bit(&v, 100));
    }
}
