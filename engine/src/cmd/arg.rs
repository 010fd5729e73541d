//! Argument parsing shared by commands: integers and expiry times exactly
//! as Redis reads them.

/// Parses a Redis integer the way Redis does: optional '-', digits, no '+',
/// no spaces, no leading zeros (except "0").
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || s == "-0"
    {
        return None;
    }
    s.parse().ok()
}

/// Absolute expiry from `amount` units of `unit_ms` after `now_ms` (pass
/// `now_ms` 0 for an absolute time); `None` when invalid (<= 0 unless
/// `allow_past`, or overflowing). A past time is clamped to 0.
pub fn expire_at(amount: &[u8], unit_ms: i64, now_ms: u64, allow_past: bool) -> Option<u64> {
    let n = parse_i64(amount)?;
    if n <= 0 && !allow_past {
        return None;
    }
    let delta = n.checked_mul(unit_ms)?;
    let at = i64::try_from(now_ms).ok()?.checked_add(delta)?;
    Some(at.max(0) as u64)
}

/// Upper-cased copy of an option word.
pub fn upper(b: &[u8]) -> Vec<u8> {
    b.to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_expiry_like_redis() {
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(expire_at(b"10", 1000, 5_000, false), Some(15_000));
        assert_eq!(expire_at(b"0", 1000, 5_000, false), None);
        assert_eq!(expire_at(b"-1", 1000, 5_000, true), Some(4_000));
        assert_eq!(expire_at(b"-10", 1000, 5_000, true), Some(0));
        assert_eq!(expire_at(b"9223372036854775807", 1000, 0, false), None);
    }
}
