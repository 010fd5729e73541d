//! SETBIT key offset value
//!
//! Sets one bit (bit 0 is the most significant bit of the first byte),
//! growing the string with zero bytes as needed; replies the bit's old
//! value. The expiry stays.
//!
//! ```text
//!  op 60 | key:bytes | offset u64 (bits, byte < MAX_STRING_BYTES) | bit u8 (0 | 1)
//! ```

use super::arg::parse_i64;
use super::bits::{get_bit, grow_to_bit, parse_bit_offset, set_bit, string_too_long, too_long};
use super::codec::{put_bytes, put_u64, put_u8, quote, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Value};
use crate::reply::{self, Reply};

pub const BIT_VALUE: &str = "ERR bit is not an integer or out of range";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetBit {
    pub key: Vec<u8>,
    pub offset: u64,
    pub on: bool,
}

impl Command for SetBit {
    const NAME: &'static str = "setbit";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<SetBit>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let offset = parse_bit_offset(&args[2], 0)?;
        let on = match parse_i64(&args[3]) {
            Some(0) => false,
            Some(1) => true,
            _ => return Err(Reply::error(BIT_VALUE)),
        };
        Ok(Action::write(SetBit {
            key: args.swap_remove(1),
            offset,
            on,
        }))
    }
}

impl Effect for SetBit {
    const OP: u8 = 60;
    const NAME: &'static str = "SETBIT";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_u64(out, self.offset);
        put_u8(out, u8::from(self.on));
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<SetBit, DecodeError> {
        let key = d.bytes()?;
        let offset = d.u64()?;
        if too_long(offset) {
            return Err(DecodeError::Invalid {
                what: "SETBIT offset",
                value: offset,
            });
        }
        let on = match d.u8()? {
            0 => false,
            1 => true,
            v => {
                return Err(DecodeError::Invalid {
                    what: "SETBIT bit",
                    value: u64::from(v),
                })
            }
        };
        Ok(SetBit { key, offset, on })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        if db.get_str(&self.key, now_ms).is_err() {
            return Some(Reply::error(reply::WRONGTYPE));
        }
        too_long(self.offset).then(string_too_long)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        if too_long(self.offset) {
            return string_too_long();
        }
        match db.live_mut(&self.key, now_ms) {
            None => {
                let mut s = Vec::new();
                grow_to_bit(&mut s, self.offset);
                set_bit(&mut s, self.offset, self.on);
                db.insert_entry(self.key, Entry::new(Value::Str(s)));
                Reply::Int(0)
            }
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => {
                let old = get_bit(s, self.offset);
                grow_to_bit(s, self.offset);
                set_bit(s, self.offset, self.on);
                Reply::Int(i64::from(old))
            }
            Some(_) => Reply::error(reply::WRONGTYPE),
        }
    }

    fn describe(&self) -> String {
        format!(
            "SETBIT {} {} {}",
            quote(&self.key),
            self.offset,
            u8::from(self.on)
        )
    }
}
