//! EXPIRE key seconds, PEXPIRE key ms, EXPIREAT key unix-s, PEXPIREAT key
//! unix-ms, each with [NX | XX | GT | LT]: logged as PEXPIREAT with the
//! absolute time (0 when already in the past: the key is deleted); with a
//! condition as [`PExpireAtIf`].
//!
//! ```text
//!  op 7 | key:bytes | at_ms u64
//! ```

use super::arg::{expire_at, parse_i64};
use super::codec::{put_bytes, put_u64, quote, DecodeError, Decoder};
use super::{effect, not_integer, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::Db;
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PExpireAt {
    pub key: Vec<u8>,
    pub at_ms: u64,
}

/// EXPIRE with NX | XX | GT | LT: the condition is checked against the
/// key's expiry when applied.
///
/// ```text
///  op 17 | key:bytes | at_ms u64 | cond u8
///  cond: 1 NX, 2 XX, 4 GT, 8 LT (NX alone; GT and LT not together)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PExpireAtIf {
    pub key: Vec<u8>,
    pub at_ms: u64,
    pub cond: u8,
}

const NX: u8 = 1;
const XX: u8 = 2;
const GT: u8 = 4;
const LT: u8 = 8;

/// Redis's `parseExtendedExpireArgumentsOrReply`.
fn parse_flags(opts: &[Vec<u8>]) -> Result<u8, Reply> {
    let mut cond = 0;
    for o in opts {
        cond |= match o.to_ascii_uppercase().as_slice() {
            b"NX" => NX,
            b"XX" => XX,
            b"GT" => GT,
            b"LT" => LT,
            _ => {
                return Err(Reply::Error(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(o)
                )))
            }
        };
    }
    if cond & NX != 0 && cond & (XX | GT | LT) != 0 {
        return Err(Reply::error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if cond & GT != 0 && cond & LT != 0 {
        return Err(Reply::error(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(cond)
}

/// `unit_ms` per unit; `relative` true: relative to now, false: absolute.
fn parse_expire(
    mut args: Vec<Vec<u8>>,
    now: u64,
    unit_ms: i64,
    relative: bool,
    name: &str,
) -> Result<Action, Reply> {
    let cond = parse_flags(&args[3..])?;
    if parse_i64(&args[2]).is_none() {
        return Err(not_integer());
    }
    let base = if relative { now } else { 0 };
    let at_ms =
        expire_at(&args[2], unit_ms, base, true).ok_or_else(|| reply::invalid_expire(name))?;
    let key = args.swap_remove(1);
    Ok(if cond == 0 {
        Action::write(PExpireAt { key, at_ms })
    } else {
        Action::write(PExpireAtIf { key, at_ms, cond })
    })
}

macro_rules! expire_command {
    ($ty:ident, $name:literal, $unit:expr, $relative:expr, $effect:ty) => {
        #[doc = concat!($name, " key time [NX | XX | GT | LT]")]
        pub struct $ty;

        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = -3;
            const FLAGS: Flags = Flags::WRITE;
            const KEYS: Keys = Keys::ONE;
            const EFFECT: Option<EffectSpec> = Some(effect::<$effect>());

            fn parse(args: Vec<Vec<u8>>, now: u64) -> Result<Action, Reply> {
                parse_expire(args, now, $unit, $relative, Self::NAME)
            }
        }
    };
}

// Every one logs either effect; each effect is registered by two lines.
expire_command!(Expire, "expire", 1000, true, PExpireAt);
expire_command!(PExpire, "pexpire", 1, true, PExpireAt);
expire_command!(ExpireAt, "expireat", 1000, false, PExpireAtIf);
expire_command!(PExpireAtCmd, "pexpireat", 1, false, PExpireAtIf);

impl Effect for PExpireAtIf {
    const OP: u8 = 17;
    const NAME: &'static str = "PEXPIREAT";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_u64(out, self.at_ms);
        out.push(self.cond);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<PExpireAtIf, DecodeError> {
        let key = d.bytes()?;
        let at_ms = d.u64()?;
        let cond = d.u8()?;
        if cond == 0 || cond & !15 != 0 {
            return Err(DecodeError::Invalid {
                what: "PEXPIREAT condition",
                value: u64::from(cond),
            });
        }
        Ok(PExpireAtIf { key, at_ms, cond })
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let Some(e) = db.live_mut(&self.key, now_ms) else {
            return Reply::Int(0);
        };
        let cur = e.expire_at_ms();
        let refused = (self.cond & NX != 0 && cur.is_some())
            || (self.cond & XX != 0 && cur.is_none())
            || (self.cond & GT != 0 && cur.is_none_or(|c| self.at_ms <= c))
            || (self.cond & LT != 0 && cur.is_some_and(|c| self.at_ms >= c));
        if refused {
            return Reply::Int(0);
        }
        PExpireAt {
            key: self.key,
            at_ms: self.at_ms,
        }
        .apply(db, now_ms)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Positive, vec![&self.key])
    }

    fn describe(&self) -> String {
        let mut s = format!("PEXPIREAT {} {}", quote(&self.key), self.at_ms);
        for (bit, word) in [(NX, " NX"), (XX, " XX"), (GT, " GT"), (LT, " LT")] {
            if self.cond & bit != 0 {
                s.push_str(word);
            }
        }
        s
    }
}

impl Effect for PExpireAt {
    const OP: u8 = 7;
    const NAME: &'static str = "PEXPIREAT";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_u64(out, self.at_ms);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<PExpireAt, DecodeError> {
        Ok(PExpireAt {
            key: d.bytes()?,
            at_ms: d.u64()?,
        })
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        if db.live_mut(&self.key, now_ms).is_none() {
            return Reply::Int(0);
        }
        if self.at_ms <= now_ms {
            db.remove(&self.key);
            db.notify(class::GENERIC, "del", &self.key);
        } else {
            db.set_expire_at(&self.key, self.at_ms);
            db.notify(class::GENERIC, "expire", &self.key);
        }
        Reply::Int(1)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Positive, vec![&self.key])
    }

    fn describe(&self) -> String {
        format!("PEXPIREAT {} {}", quote(&self.key), self.at_ms)
    }
}
