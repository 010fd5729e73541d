//! BITOP AND | OR | XOR | NOT destkey key [key ...]
//!
//! Missing sources are empty strings, shorter ones are zero-padded; the
//! result replaces `destkey` (without expiry), or deletes it when every
//! source is empty. Logged as the operation and the keys: the result is a
//! function of the state.
//!
//! ```text
//!  op 61 | operation u8 (0 AND, 1 OR, 2 XOR, 3 NOT) | destkey:bytes | n u32 | n × key:bytes   (n >= 1; NOT: n == 1)
//! ```

use super::arg::upper;
use super::codec::{put_bytes, put_list, put_u8, quote, DecodeError, Decoder};
use super::{effect, syntax_error, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Value};
use crate::reply::{self, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOperation {
    And = 0,
    Or = 1,
    Xor = 2,
    Not = 3,
}

const NAMES: [&str; 4] = ["AND", "OR", "XOR", "NOT"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitOp {
    pub op: BitOperation,
    pub dest: Vec<u8>,
    pub keys: Vec<Vec<u8>>,
}

impl Command for BitOp {
    const NAME: &'static str = "bitop";
    const ARITY: i64 = -4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(2, -1, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<BitOp>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let op = match upper(&args[1]).as_slice() {
            b"AND" => BitOperation::And,
            b"OR" => BitOperation::Or,
            b"XOR" => BitOperation::Xor,
            b"NOT" => BitOperation::Not,
            _ => return Err(syntax_error()),
        };
        if op == BitOperation::Not && args.len() != 4 {
            return Err(Reply::error(
                "ERR BITOP NOT must be called with a single source key.",
            ));
        }
        let keys = args.split_off(3);
        Ok(Action::write(BitOp {
            op,
            dest: args.swap_remove(2),
            keys,
        }))
    }
}

impl BitOp {
    /// The result, or WRONGTYPE when a source is not a string.
    fn result(&self, db: &Db, now_ms: u64) -> Result<Vec<u8>, Reply> {
        let mut srcs = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            srcs.push(db.get_str(k, now_ms).map_err(Reply::from)?);
        }
        let max = srcs
            .iter()
            .map(|s| s.map_or(0, Vec::len))
            .max()
            .unwrap_or(0);
        let byte = |s: Option<&Vec<u8>>, i: usize| s.and_then(|s| s.get(i)).copied().unwrap_or(0);
        let mut out = Vec::with_capacity(max);
        for i in 0..max {
            let first = byte(srcs[0], i);
            let rest = srcs[1..].iter().map(|s| byte(*s, i));
            out.push(match self.op {
                BitOperation::And => rest.fold(first, |a, b| a & b),
                BitOperation::Or => rest.fold(first, |a, b| a | b),
                BitOperation::Xor => rest.fold(first, |a, b| a ^ b),
                BitOperation::Not => !first,
            });
        }
        Ok(out)
    }
}

impl Effect for BitOp {
    const OP: u8 = 61;
    const NAME: &'static str = "BITOP";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_u8(out, self.op as u8);
        put_bytes(out, &self.dest);
        put_list(out, &self.keys);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<BitOp, DecodeError> {
        let op = match d.u8()? {
            0 => BitOperation::And,
            1 => BitOperation::Or,
            2 => BitOperation::Xor,
            3 => BitOperation::Not,
            v => {
                return Err(DecodeError::Invalid {
                    what: "BITOP operation",
                    value: u64::from(v),
                })
            }
        };
        let dest = d.bytes()?;
        let keys = d.list()?;
        if keys.is_empty() || (op == BitOperation::Not && keys.len() != 1) {
            return Err(DecodeError::Invalid {
                what: "BITOP key count",
                value: keys.len() as u64,
            });
        }
        Ok(BitOp { op, dest, keys })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        self.keys
            .iter()
            .any(|k| db.get_str(k, now_ms).is_err())
            .then(|| Reply::error(reply::WRONGTYPE))
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let out = match self.result(db, now_ms) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let n = out.len() as i64;
        if out.is_empty() {
            db.remove(&self.dest);
        } else {
            db.insert_entry(self.dest, Entry::new(Value::Str(out)));
        }
        Reply::Int(n)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.dest])
    }

    fn describe(&self) -> String {
        let mut s = format!("BITOP {} {}", NAMES[self.op as usize], quote(&self.dest));
        for k in &self.keys {
            s.push(' ');
            s.push_str(&quote(k));
        }
        s
    }
}
