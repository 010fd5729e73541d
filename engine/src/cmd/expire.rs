//! EXPIRE key seconds, PEXPIRE key ms: logged as PEXPIREAT with the
//! absolute time (0 when already in the past: the key is deleted).
//!
//! ```text
//!  op 7 | key:bytes | at_ms u64
//! ```

use super::arg::{expire_at, parse_i64};
use super::codec::{put_bytes, put_u64, quote, DecodeError, Decoder};
use super::{effect, not_integer, syntax_error, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::Db;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PExpireAt {
    pub key: Vec<u8>,
    pub at_ms: u64,
}

fn parse_expire(
    mut args: Vec<Vec<u8>>,
    now: u64,
    unit_ms: i64,
    name: &str,
) -> Result<Action, Reply> {
    if args.len() > 3 {
        // NX / XX / GT / LT are not supported
        return Err(syntax_error());
    }
    if parse_i64(&args[2]).is_none() {
        return Err(not_integer());
    }
    let at_ms =
        expire_at(&args[2], unit_ms, now, true).ok_or_else(|| reply::invalid_expire(name))?;
    Ok(Action::write(PExpireAt {
        key: args.swap_remove(1),
        at_ms,
    }))
}

/// EXPIRE key seconds
pub struct Expire;

impl Command for Expire {
    const NAME: &'static str = "expire";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<PExpireAt>());

    fn parse(args: Vec<Vec<u8>>, now: u64) -> Result<Action, Reply> {
        parse_expire(args, now, 1000, Self::NAME)
    }
}

/// PEXPIRE key milliseconds
pub struct PExpire;

impl Command for PExpire {
    const NAME: &'static str = "pexpire";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<PExpireAt>());

    fn parse(args: Vec<Vec<u8>>, now: u64) -> Result<Action, Reply> {
        parse_expire(args, now, 1, Self::NAME)
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
        } else {
            db.set_expire_at(&self.key, self.at_ms);
        }
        Reply::Int(1)
    }

    fn describe(&self) -> String {
        format!("PEXPIREAT {} {}", quote(&self.key), self.at_ms)
    }
}
