//! Redis's `long double` arithmetic of INCRBYFLOAT and HINCRBYFLOAT, in
//! software so that every machine (and every replay) computes the same
//! bytes: x87 80-bit extended precision (64-bit mantissa, round half to
//! even), parsed like `strtold` (decimal, `inf`), printed like Redis's
//! `ld2string(LD_STR_HUMAN)`: `%.17Lf` with trailing zeros removed.

use std::cmp::Ordering;

/// An x87 extended value: `m × 2^e`, `m` normalized (top bit set) or 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LDouble {
    Finite { neg: bool, m: u64, e: i32 },
    Inf { neg: bool },
    Nan,
}

/// Largest exponent `e` of a finite value (`m × 2^e < 2^16384`).
const MAX_E: i32 = 16384 - 64;
/// Smallest exponent kept (subnormals are not modelled; smaller is 0).
const MIN_E: i32 = -16445 - 63;
/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer input is refused.
const MAX_CHARS: usize = 5 * 1024;

// ------------------------------------------------------------ bignum

/// Little-endian u32 limbs, no trailing zero limbs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u128(mut v: u128) -> Big {
        let mut l = Vec::new();
        while v != 0 {
            l.push(v as u32);
            v >>= 32;
        }
        Big(l)
    }
    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }
    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }
    fn bits(&self) -> u32 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as u32 - 1) * 32 + (32 - top.leading_zeros()),
        }
    }
    fn mul_small(&mut self, k: u32) {
        let mut carry = 0u64;
        for l in &mut self.0 {
            let v = u64::from(*l) * u64::from(k) + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }
    fn add_small(&mut self, k: u32) {
        let mut carry = u64::from(k);
        for l in &mut self.0 {
            if carry == 0 {
                break;
            }
            let v = u64::from(*l) + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }
    fn pow10(n: u32) -> Big {
        let mut b = Big(vec![1]);
        for _ in 0..n / 9 {
            b.mul_small(1_000_000_000);
        }
        for _ in 0..n % 9 {
            b.mul_small(10);
        }
        b
    }
    fn mul(&self, o: &Big) -> Big {
        let mut r = vec![0u32; self.0.len() + o.0.len()];
        for (i, &a) in self.0.iter().enumerate() {
            let mut carry = 0u64;
            for (j, &b) in o.0.iter().enumerate() {
                let v = u64::from(a) * u64::from(b) + u64::from(r[i + j]) + carry;
                r[i + j] = v as u32;
                carry = v >> 32;
            }
            r[i + o.0.len()] = carry as u32;
        }
        let mut b = Big(r);
        b.trim();
        b
    }
    fn shl(&self, n: u32) -> Big {
        let (limbs, bits) = ((n / 32) as usize, n % 32);
        let mut r = vec![0u32; limbs];
        let mut carry = 0u32;
        for &l in &self.0 {
            if bits == 0 {
                r.push(l);
            } else {
                r.push((l << bits) | carry);
                carry = l >> (32 - bits);
            }
        }
        if carry != 0 {
            r.push(carry);
        }
        let mut b = Big(r);
        b.trim();
        b
    }
    fn shr1(&mut self) {
        let mut carry = 0u32;
        for l in self.0.iter_mut().rev() {
            let next = *l & 1;
            *l = (*l >> 1) | (carry << 31);
            carry = next;
        }
        self.trim();
    }
    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }
    fn sub(&mut self, o: &Big) {
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let v = i64::from(self.0[i]) - i64::from(o.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(v < 0);
            self.0[i] = (v + (borrow << 32)) as u32;
        }
        self.trim();
    }
    /// The bits `[from, from + 128)` as a number, and whether any bit
    /// below `from` is set.
    fn window(&self, from: u32) -> (u128, bool) {
        let mut v = 0u128;
        for i in 0..128 {
            let bit = from + i;
            let limb = (bit / 32) as usize;
            if limb < self.0.len() && self.0[limb] >> (bit % 32) & 1 == 1 {
                v |= 1 << i;
            }
        }
        let sticky = (0..from).any(|bit| {
            let limb = (bit / 32) as usize;
            limb < self.0.len() && self.0[limb] >> (bit % 32) & 1 == 1
        });
        (v, sticky)
    }
    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut limbs = self.0.clone();
        let mut parts = Vec::new();
        while !limbs.is_empty() {
            let mut rem = 0u64;
            for l in limbs.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*l);
                *l = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
            parts.push(rem as u32);
        }
        let mut s = parts.pop().expect("nonzero").to_string();
        for p in parts.iter().rev() {
            s.push_str(&format!("{p:09}"));
        }
        s
    }
}

// ------------------------------------------------------------ rounding

/// Rounds `v × 2^e` (any width, `sticky`: nonzero bits below `v`) to a
/// normalized 64-bit mantissa, half to even.
fn round(neg: bool, v: u128, e: i32, sticky: bool) -> LDouble {
    if v == 0 {
        return LDouble::Finite { neg, m: 0, e: 0 };
    }
    let bits = 128 - v.leading_zeros() as i32;
    let (mut m, mut e) = if bits <= 64 {
        ((v << (64 - bits)) as u64, e - (64 - bits))
    } else {
        let s = (bits - 64) as u32;
        let q = (v >> s) as u64;
        let rest = v & ((1u128 << s) - 1);
        let half = 1u128 << (s - 1);
        let up = rest > half || (rest == half && (sticky || q & 1 == 1));
        let (m, carry) = q.overflowing_add(u64::from(up));
        if carry {
            (1 << 63, e + s as i32 + 1)
        } else {
            (m, e + s as i32)
        }
    };
    if e > MAX_E {
        return LDouble::Inf { neg };
    }
    if e < MIN_E {
        m = 0;
        e = 0;
    }
    LDouble::Finite { neg, m, e }
}

// ------------------------------------------------------------ parse

impl LDouble {
    pub const ZERO: LDouble = LDouble::Finite {
        neg: false,
        m: 0,
        e: 0,
    };

    /// Parses like Redis's `string2ld`: `strtold` on the whole input, no
    /// leading space, no NaN, no overflow or underflow to zero. Hex floats
    /// are not accepted.
    pub fn parse(s: &[u8]) -> Option<LDouble> {
        if s.is_empty() || s.len() >= MAX_CHARS {
            return None;
        }
        let (neg, rest) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let lower = rest.to_ascii_lowercase();
        if lower == b"inf" || lower == b"infinity" {
            return Some(LDouble::Inf { neg });
        }
        let mut digits = Big(Vec::new());
        let mut ndigits = 0i64; // significant digits kept
        let mut exp10 = 0i64;
        let mut seen_digit = false;
        let mut i = 0;
        let mut dot = false;
        while i < rest.len() {
            match rest[i] {
                c @ b'0'..=b'9' => {
                    seen_digit = true;
                    if !(digits.is_zero() && c == b'0') {
                        digits.mul_small(10);
                        digits.add_small(u32::from(c - b'0'));
                        ndigits += 1;
                    }
                    if dot {
                        exp10 -= 1;
                    }
                }
                b'.' if !dot => dot = true,
                _ => break,
            }
            i += 1;
        }
        if !seen_digit {
            return None;
        }
        if i < rest.len() {
            if rest[i] | 0x20 != b'e' {
                return None;
            }
            i += 1;
            let (eneg, erest) = match rest.get(i) {
                Some(b'-') => (true, &rest[i + 1..]),
                Some(b'+') => (false, &rest[i + 1..]),
                _ => (false, &rest[i..]),
            };
            if erest.is_empty() || !erest.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let mut e: i64 = 0;
            for &c in erest {
                e = (e * 10 + i64::from(c - b'0')).min(1_000_000);
            }
            exp10 += if eneg { -e } else { e };
        }
        if digits.is_zero() {
            return Some(LDouble::Finite { neg, m: 0, e: 0 });
        }
        // magnitude ~ 10^(ndigits + exp10): out of range is ERANGE
        let mag = ndigits + exp10;
        if mag > 4934 {
            return None;
        }
        if mag < -4952 {
            return None;
        }
        let v = if exp10 >= 0 {
            let n = digits.mul(&Big::pow10(exp10 as u32));
            let bits = n.bits();
            let from = bits.saturating_sub(128);
            let (w, sticky) = n.window(from);
            round(neg, w, from as i32, sticky)
        } else {
            let den = Big::pow10((-exp10) as u32);
            // q = digits × 2^k / den with ~67 bits
            let k = 67 + den.bits() as i32 - digits.bits() as i32;
            let mut rem = if k >= 0 {
                digits.shl(k as u32)
            } else {
                let mut d = digits.clone();
                for _ in 0..-k {
                    d.shr1();
                }
                d
            };
            let mut q: u128 = 0;
            let mut b = den.shl(70);
            for i in (0..=70).rev() {
                if rem.cmp(&b) != Ordering::Less {
                    rem.sub(&b);
                    q |= 1 << i;
                }
                b.shr1();
            }
            round(neg, q, -k, !rem.is_zero())
        };
        match v {
            LDouble::Finite { m: 0, .. } => None, // underflow to zero
            LDouble::Inf { .. } => None,          // overflow
            v => Some(v),
        }
    }

    pub fn is_finite(&self) -> bool {
        matches!(self, LDouble::Finite { .. })
    }

    // -------------------------------------------------------- add

    /// `self + o`, rounded to 64 bits (half to even).
    pub fn plus(self, o: LDouble) -> LDouble {
        use LDouble::*;
        match (self, o) {
            (Nan, _) | (_, Nan) => Nan,
            (Inf { neg: a }, Inf { neg: b }) if a != b => Nan,
            (Inf { neg }, _) | (_, Inf { neg }) => Inf { neg },
            (Finite { m: 0, neg: na, .. }, Finite { m: 0, neg: nb, .. }) => Finite {
                neg: na && nb,
                m: 0,
                e: 0,
            },
            (Finite { m: 0, .. }, x) | (x, Finite { m: 0, .. }) => x,
            (
                Finite {
                    neg: na,
                    m: ma,
                    e: ea,
                },
                Finite {
                    neg: nb,
                    m: mb,
                    e: eb,
                },
            ) => {
                // a is the larger exponent
                let ((na, ma, ea), (nb, mb, eb)) = if ea >= eb {
                    ((na, ma, ea), (nb, mb, eb))
                } else {
                    ((nb, mb, eb), (na, ma, ea))
                };
                const G: i32 = 62; // guard bits
                let a = u128::from(ma) << G;
                let d = (ea - eb) as u32;
                let full = u128::from(mb) << G;
                let (b, sticky) = if d >= 127 {
                    (0, true)
                } else {
                    (full >> d, full & ((1u128 << d) - 1) != 0)
                };
                let e = ea - G;
                if na == nb {
                    return round(na, a + b, e, sticky);
                }
                // subtraction: a sticky borrow makes the result a bit less
                match a.cmp(&b) {
                    Ordering::Equal if !sticky => Finite {
                        neg: false,
                        m: 0,
                        e: 0,
                    },
                    Ordering::Greater | Ordering::Equal => {
                        let diff = a - b - u128::from(sticky);
                        round(na, diff, e, sticky)
                    }
                    Ordering::Less => round(nb, b - a, e, sticky),
                }
            }
        }
    }

    // -------------------------------------------------------- print

    /// Redis's `ld2string(LD_STR_HUMAN)`: `%.17Lf`, trailing zeros (and a
    /// trailing dot) removed, "-0" printed as "0". None for NaN/Inf.
    pub fn to_human(self) -> Option<String> {
        let LDouble::Finite { neg, m, e } = self else {
            return None;
        };
        // x = round_half_even(m × 2^e × 10^17)
        let scaled = u128::from(m) * 100_000_000_000_000_000u128;
        let x = if e >= 0 {
            Big::from_u128(scaled).shl(e as u32)
        } else {
            let s = (-e) as u32;
            if s >= 128 {
                Big(Vec::new())
            } else {
                let q = scaled >> s;
                let rest = scaled & ((1u128 << s) - 1);
                let half = 1u128 << (s - 1);
                let up = rest > half || (rest == half && q & 1 == 1);
                Big::from_u128(q + u128::from(up))
            }
        };
        let digits = x.to_decimal();
        let digits = format!("{digits:0>18}");
        let (int, frac) = digits.split_at(digits.len() - 17);
        let frac = frac.trim_end_matches('0');
        let mut s = String::new();
        if neg {
            s.push('-');
        }
        s.push_str(int);
        if !frac.is_empty() {
            s.push('.');
            s.push_str(frac);
        }
        if s == "-0" {
            s = "0".into();
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::LDouble;

    fn incr(a: &str, b: &str) -> Option<String> {
        LDouble::parse(a.as_bytes())?
            .plus(LDouble::parse(b.as_bytes())?)
            .to_human()
    }

    /// Replies of redis-server 7.0 on x86-64 (80-bit long double).
    #[test]
    fn sums_print_like_redis() {
        assert_eq!(incr("10.5", "0.1").as_deref(), Some("10.6"));
        assert_eq!(incr("0", "10.5").as_deref(), Some("10.5"));
        assert_eq!(incr("10", "-1.1").as_deref(), Some("8.9"));
        assert_eq!(incr("1", "0.1").as_deref(), Some("1.1"));
        assert_eq!(incr("5.0e3", "2.0e2").as_deref(), Some("5200"));
        assert_eq!(incr("17179869184", "1.5").as_deref(), Some("17179869185.5"));
        assert_eq!(
            incr("17179869184", "17179869184").as_deref(),
            Some("34359738368")
        );
        assert_eq!(incr("1", "-1").as_deref(), Some("0"));
        assert_eq!(incr("-0", "0").as_deref(), Some("0"));
        assert_eq!(incr("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(incr("1e-18", "0").as_deref(), Some("0"));
        assert_eq!(incr("3e-17", "0").as_deref(), Some("0.00000000000000003"));
        assert_eq!(LDouble::parse(b" 1"), None);
        assert_eq!(LDouble::parse(b"1 "), None);
        assert_eq!(LDouble::parse(b"nan"), None);
        assert_eq!(LDouble::parse(b""), None);
        assert_eq!(LDouble::parse(b"1e99999"), None);
        assert!(matches!(
            LDouble::parse(b"+inf"),
            Some(LDouble::Inf { neg: false })
        ));
        assert_eq!(
            LDouble::parse(b"1e4932")
                .and_then(|v| v.to_human())
                .map(|s| s.len()),
            Some(4933)
        );
    }
}
