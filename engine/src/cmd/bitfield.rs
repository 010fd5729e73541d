//! BITFIELD key [GET type offset | SET type offset value | INCRBY type
//! offset increment | OVERFLOW WRAP | SAT | FAIL] ...,
//! BITFIELD_RO key [GET type offset ...]
//!
//! Integers of 1 to 64 bits (`i64` .. `i1`, `u63` .. `u1`) at any bit
//! offset (`#n`: the n-th field of that width), most significant bit first,
//! with Redis's overflow rules (WRAP, SAT, FAIL: not written, nil).
//! Without SET or INCRBY it is a read (the key is not created). With them
//! the string grows to the farthest bit written (even when every write
//! fails with OVERFLOW FAIL, as in Redis), and the operations are logged
//! in order: replaying them against the same state writes the same bits
//! and gives the same replies.
//!
//! ```text
//!  op 62 | key:bytes | n u32 | n × field
//!  field = kind u8 (0 GET, 1 SET, 2 INCRBY) | type u8 (0x80 signed | width 1..=64, unsigned <= 63)
//!        | overflow u8 (0 WRAP, 1 SAT, 2 FAIL) | offset u64 (bits) | value i64
//! ```

use super::arg::{parse_i64, upper};
use super::bits::PROTO_MAX_BULK_LEN;
use super::bits::{get_bit, grow_to_bit, parse_bit_offset, set_bit, string_too_long, too_long};
use super::codec::{put_bytes, put_i64, put_u32, put_u64, put_u8, quote, DecodeError, Decoder};
use super::{
    effect, not_integer, syntax_error, Action, Command, Effect, EffectSpec, Flags, Keys, Read,
    ReadCtx,
};
use crate::db::{Db, Entry, Value};
use crate::reply::{self, Reply};

const BAD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Get = 0,
    Set = 1,
    IncrBy = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Wrap = 0,
    Sat = 1,
    Fail = 2,
}

/// One GET, SET or INCRBY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldOp {
    pub kind: Kind,
    pub signed: bool,
    pub bits: u32,
    pub offset: u64,
    /// SET's value, INCRBY's increment (0 for GET).
    pub value: i64,
    pub overflow: Overflow,
}

impl FieldOp {
    fn last_bit(&self) -> u64 {
        self.offset + u64::from(self.bits) - 1
    }
}

/// Parses the operations after the key, in Redis's order of checks.
fn parse_ops(args: &[Vec<u8>]) -> Result<Vec<FieldOp>, Reply> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let rem = args.len() - j - 1;
        let kind = match upper(&args[j]).as_slice() {
            b"GET" if rem >= 2 => Kind::Get,
            b"SET" if rem >= 3 => Kind::Set,
            b"INCRBY" if rem >= 3 => Kind::IncrBy,
            b"OVERFLOW" if rem >= 1 => {
                overflow = match upper(&args[j + 1]).as_slice() {
                    b"WRAP" => Overflow::Wrap,
                    b"SAT" => Overflow::Sat,
                    b"FAIL" => Overflow::Fail,
                    _ => return Err(Reply::error("ERR Invalid OVERFLOW type specified")),
                };
                j += 2;
                continue;
            }
            _ => return Err(syntax_error()),
        };
        let (signed, bits) = parse_type(&args[j + 1])?;
        let offset = parse_bit_offset(&args[j + 2], bits)?;
        let mut value = 0;
        if kind != Kind::Get {
            value = parse_i64(&args[j + 3]).ok_or_else(not_integer)?;
        }
        ops.push(FieldOp {
            kind,
            signed,
            bits,
            offset,
            value,
            overflow,
        });
        j += if kind == Kind::Get { 3 } else { 4 };
    }
    Ok(ops)
}

/// `i<1..=64>` or `u<1..=63>`.
fn parse_type(a: &[u8]) -> Result<(bool, u32), Reply> {
    let err = || Reply::error(BAD_TYPE);
    let signed = match a.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    // Redis reads the width up to a NUL
    let width = super::c_str(&a[1..], usize::MAX);
    let bits = parse_i64(width).ok_or_else(err)?;
    if bits < 1 || bits > if signed { 64 } else { 63 } {
        return Err(err());
    }
    Ok((signed, bits as u32))
}

fn get_unsigned(s: &[u8], offset: u64, bits: u32) -> u64 {
    (0..u64::from(bits)).fold(0, |v, i| (v << 1) | u64::from(get_bit(s, offset + i)))
}

fn get_signed(s: &[u8], offset: u64, bits: u32) -> i64 {
    let mut v = get_unsigned(s, offset, bits);
    if bits < 64 && v & (1 << (bits - 1)) != 0 {
        v |= u64::MAX << bits;
    }
    v as i64
}

fn set_field(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..u64::from(bits) {
        let on = value & (1 << (u64::from(bits) - 1 - i)) != 0;
        set_bit(s, offset + i, on);
    }
}

/// Redis's `checkUnsignedBitfieldOverflow`: whether `value + incr`
/// overflows a `bits`-bit unsigned field, and the value WRAP or SAT store.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> (bool, u64) {
    let max = (1u64 << bits) - 1;
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = 0u64.wrapping_sub(value) as i64;
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX << bits);
    if value > max || (incr > 0 && incr > maxincr) {
        (true, if ow == Overflow::Sat { max } else { wrap() })
    } else if incr < 0 && incr < minincr {
        (true, if ow == Overflow::Sat { 0 } else { wrap() })
    } else {
        (false, value.wrapping_add(incr as u64))
    }
}

/// Redis's `checkSignedBitfieldOverflow`.
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> (bool, i64) {
    let max: i64 = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        (true, if ow == Overflow::Sat { max } else { wrap() })
    } else if value < min
        || (bits != 64 && incr < minincr)
        || (value < 0 && incr < 0 && incr < minincr)
    {
        (true, if ow == Overflow::Sat { min } else { wrap() })
    } else {
        (false, value.wrapping_add(incr))
    }
}

/// A GET (zeros past the end of `s`).
fn get(s: &[u8], op: &FieldOp) -> Reply {
    Reply::Int(if op.signed {
        get_signed(s, op.offset, op.bits)
    } else {
        get_unsigned(s, op.offset, op.bits) as i64
    })
}

/// Runs one operation on `s` (grown already for writes).
fn run(s: &mut [u8], op: &FieldOp) -> Reply {
    let (bits, off) = (op.bits, op.offset);
    if op.kind == Kind::Get {
        return get(s, op);
    }
    let (overflow, new, ret) = if op.signed {
        let old = get_signed(s, off, bits);
        if op.kind == Kind::IncrBy {
            let (o, v) = signed_overflow(old, op.value, bits, op.overflow);
            (o, v as u64, v)
        } else {
            let (o, v) = signed_overflow(op.value, 0, bits, op.overflow);
            (o, v as u64, old)
        }
    } else {
        let old = get_unsigned(s, off, bits);
        if op.kind == Kind::IncrBy {
            let (o, v) = unsigned_overflow(old, op.value, bits, op.overflow);
            (o, v, v as i64)
        } else {
            let (o, v) = unsigned_overflow(op.value as u64, 0, bits, op.overflow);
            (o, v, old as i64)
        }
    };
    if overflow && op.overflow == Overflow::Fail {
        return Reply::Nil;
    }
    set_field(s, off, bits, new);
    Reply::Int(ret)
}

pub struct BitFieldCmd;
pub struct BitFieldRo;

/// BITFIELD without SET or INCRBY (and BITFIELD_RO).
struct BitFieldRead {
    key: Vec<u8>,
    ops: Vec<FieldOp>,
}

impl Read for BitFieldRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let s = match ctx.db.get_str(&self.key, ctx.now_ms) {
            Err(e) => return e.into(),
            Ok(s) => s.map_or(&[][..], Vec::as_slice),
        };
        Reply::Array(self.ops.iter().map(|op| get(s, op)).collect())
    }
}

fn parse_bitfield(mut args: Vec<Vec<u8>>, ro: bool) -> Result<Action, Reply> {
    let ops = parse_ops(&args)?;
    args.truncate(2);
    let key = args.swap_remove(1);
    if ops.iter().all(|o| o.kind == Kind::Get) {
        return Ok(Action::read(BitFieldRead { key, ops }));
    }
    if ro {
        return Err(Reply::error(
            "ERR BITFIELD_RO only supports the GET subcommand",
        ));
    }
    Ok(Action::write(BitField { key, ops }))
}

impl Command for BitFieldCmd {
    const NAME: &'static str = "bitfield";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<BitField>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_bitfield(args, false)
    }
}

impl Command for BitFieldRo {
    const NAME: &'static str = "bitfield_ro";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_bitfield(args, true)
    }
}

/// A BITFIELD with at least one SET or INCRBY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitField {
    pub key: Vec<u8>,
    pub ops: Vec<FieldOp>,
}

impl BitField {
    fn last_write_bit(&self) -> u64 {
        self.ops
            .iter()
            .filter(|o| o.kind != Kind::Get)
            .map(FieldOp::last_bit)
            .max()
            .unwrap_or(0)
    }
}

impl Effect for BitField {
    const OP: u8 = 62;
    const NAME: &'static str = "BITFIELD";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_u32(out, self.ops.len() as u32);
        for o in &self.ops {
            put_u8(out, o.kind as u8);
            put_u8(out, (u8::from(o.signed) << 7) | o.bits as u8);
            put_u8(out, o.overflow as u8);
            put_u64(out, o.offset);
            put_i64(out, o.value);
        }
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<BitField, DecodeError> {
        let key = d.bytes()?;
        let n = d.count(19)?;
        let mut ops = Vec::with_capacity(n);
        let bad = |what, value: u64| DecodeError::Invalid { what, value };
        for _ in 0..n {
            let kind = match d.u8()? {
                0 => Kind::Get,
                1 => Kind::Set,
                2 => Kind::IncrBy,
                v => return Err(bad("BITFIELD kind", u64::from(v))),
            };
            let ty = d.u8()?;
            let (signed, bits) = (ty & 0x80 != 0, u32::from(ty & 0x7f));
            if bits < 1 || bits > if signed { 64 } else { 63 } {
                return Err(bad("BITFIELD type", u64::from(ty)));
            }
            let overflow = match d.u8()? {
                0 => Overflow::Wrap,
                1 => Overflow::Sat,
                2 => Overflow::Fail,
                v => return Err(bad("BITFIELD overflow", u64::from(v))),
            };
            let offset = d.u64()?;
            let value = d.i64()?;
            if (offset >> 3) >= PROTO_MAX_BULK_LEN || (kind == Kind::Get && value != 0) {
                return Err(bad("BITFIELD offset", offset));
            }
            ops.push(FieldOp {
                kind,
                signed,
                bits,
                offset,
                value,
                overflow,
            });
        }
        if ops.iter().all(|o| o.kind == Kind::Get) {
            return Err(bad("BITFIELD without writes", n as u64));
        }
        Ok(BitField { key, ops })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        if db.get_str(&self.key, now_ms).is_err() {
            return Some(Reply::error(reply::WRONGTYPE));
        }
        too_long(self.last_write_bit()).then(string_too_long)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let last = self.last_write_bit();
        if too_long(last) {
            return string_too_long();
        }
        let s = match db.live_mut(&self.key, now_ms) {
            None => {
                db.insert_entry(self.key.clone(), Entry::new(Value::Str(Vec::new())));
                match db.live_mut(&self.key, now_ms) {
                    Some(Entry {
                        value: Value::Str(s),
                        ..
                    }) => s,
                    _ => unreachable!("just inserted"),
                }
            }
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => s,
            Some(_) => return Reply::error(reply::WRONGTYPE),
        };
        grow_to_bit(s, last);
        Reply::Array(self.ops.iter().map(|op| run(s, op)).collect())
    }

    fn describe(&self) -> String {
        let mut s = format!("BITFIELD {}", quote(&self.key));
        let mut ow = Overflow::Wrap;
        for o in &self.ops {
            if o.overflow != ow {
                ow = o.overflow;
                s.push_str([" OVERFLOW WRAP", " OVERFLOW SAT", " OVERFLOW FAIL"][ow as usize]);
            }
            let ty = format!("{}{}", if o.signed { 'i' } else { 'u' }, o.bits);
            match o.kind {
                Kind::Get => s.push_str(&format!(" GET {ty} {}", o.offset)),
                Kind::Set => s.push_str(&format!(" SET {ty} {} {}", o.offset, o.value)),
                Kind::IncrBy => s.push_str(&format!(" INCRBY {ty} {} {}", o.offset, o.value)),
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_rules_like_redis() {
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Wrap), (true, 4));
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Sat), (true, 255));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Sat), (true, 0));
        assert_eq!(
            unsigned_overflow(u64::MAX, 0, 8, Overflow::Wrap),
            (true, 255)
        );
        assert_eq!(
            unsigned_overflow(u64::MAX, 0, 8, Overflow::Sat),
            (true, 255)
        );
        assert_eq!(signed_overflow(120, 10, 8, Overflow::Wrap), (true, -126));
        assert_eq!(signed_overflow(120, 10, 8, Overflow::Sat), (true, 127));
        assert_eq!(signed_overflow(-120, -10, 8, Overflow::Sat), (true, -128));
        assert_eq!(
            signed_overflow(i64::MAX, 1, 64, Overflow::Wrap),
            (true, i64::MIN)
        );
        assert_eq!(signed_overflow(3, 4, 4, Overflow::Wrap), (false, 7));
        let mut s = vec![0u8; 2];
        set_field(&mut s, 4, 8, 0xab);
        assert_eq!(s, vec![0x0a, 0xb0]);
        assert_eq!(get_unsigned(&s, 4, 8), 0xab);
        assert_eq!(get_signed(&s, 4, 8), 0xab_u8 as i8 as i64);
        assert_eq!(parse_type(b"u64"), Err(Reply::error(BAD_TYPE)));
        assert_eq!(parse_type(b"i64"), Ok((true, 64)));
    }
}
