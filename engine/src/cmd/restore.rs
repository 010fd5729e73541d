//! RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
//! [FREQ frequency]
//!
//! The payload is checked (footer, then the object: [`super::rdb`]) before
//! anything is logged, and logged as it came with the absolute expiry
//! (0: none): applying decodes it again. IDLETIME and FREQ are checked and
//! ignored (the engine evicts nothing). A past expiry stores nothing (and
//! with REPLACE deletes the key), as in Redis.
//!
//! ```text
//!  op 64 | key:bytes | replace u8 (0 | 1) | expire_at_ms u64 (0: none) | payload:bytes
//! ```

use super::arg::{parse_i64, upper};
use super::codec::{put_bytes, put_u64, put_u8, quote, DecodeError, Decoder};
use super::rdb::{self, PayloadError};
use super::{effect, not_integer, syntax_error, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry};
use crate::reply::Reply;

pub const BUSYKEY: &str = "BUSYKEY Target key name already exists.";

#[derive(Debug, Clone, PartialEq)]
pub struct Restore {
    pub key: Vec<u8>,
    pub replace: bool,
    pub expire_at_ms: Option<u64>,
    pub payload: Vec<u8>,
    /// A TTL or payload error, answered after the existing-key check as
    /// Redis orders them (never logged: the precheck refuses it).
    deferred: Option<Reply>,
}

fn payload_error(e: PayloadError) -> Reply {
    match e {
        PayloadError::VersionOrChecksum => {
            Reply::error("ERR DUMP payload version or checksum are wrong")
        }
        PayloadError::BadFormat => Reply::error("ERR Bad data format"),
    }
}

impl Command for Restore {
    const NAME: &'static str = "restore";
    const ARITY: i64 = -4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<Restore>());

    fn parse(mut args: Vec<Vec<u8>>, now: u64) -> Result<Action, Reply> {
        let (mut replace, mut absttl) = (false, false);
        let (mut idle, mut freq) = (false, false);
        let mut j = 4;
        while j < args.len() {
            let more = args.len() - j - 1;
            match upper(&args[j]).as_slice() {
                b"REPLACE" => replace = true,
                b"ABSTTL" => absttl = true,
                b"IDLETIME" if more >= 1 && !freq => {
                    let n = parse_i64(&args[j + 1]).ok_or_else(not_integer)?;
                    if n < 0 {
                        return Err(Reply::error("ERR Invalid IDLETIME value, must be >= 0"));
                    }
                    idle = true;
                    j += 1;
                }
                b"FREQ" if more >= 1 && !idle => {
                    let n = parse_i64(&args[j + 1]).ok_or_else(not_integer)?;
                    if !(0..=255).contains(&n) {
                        return Err(Reply::error(
                            "ERR Invalid FREQ value, must be >= 0 and <= 255",
                        ));
                    }
                    freq = true;
                    j += 1;
                }
                _ => return Err(syntax_error()),
            }
            j += 1;
        }
        let mut deferred = None;
        let mut expire_at_ms = None;
        match parse_i64(&args[2]) {
            None => deferred = Some(not_integer()),
            Some(t) if t < 0 => {
                deferred = Some(Reply::error("ERR Invalid TTL value, must be >= 0"))
            }
            Some(0) => {}
            Some(t) => {
                expire_at_ms = Some(if absttl {
                    t as u64
                } else {
                    now.saturating_add(t as u64)
                })
            }
        }
        if deferred.is_none() {
            deferred = rdb::restore(&args[3]).err().map(payload_error);
        }
        args.truncate(4);
        Ok(Action::write(Restore {
            payload: args.swap_remove(3),
            key: args.swap_remove(1),
            replace,
            expire_at_ms,
            deferred,
        }))
    }
}

impl Effect for Restore {
    const OP: u8 = 64;
    const NAME: &'static str = "RESTORE";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_u8(out, u8::from(self.replace));
        put_u64(out, self.expire_at_ms.unwrap_or(0));
        put_bytes(out, &self.payload);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<Restore, DecodeError> {
        let key = d.bytes()?;
        let replace = match d.u8()? {
            0 => false,
            1 => true,
            v => {
                return Err(DecodeError::Invalid {
                    what: "RESTORE replace",
                    value: u64::from(v),
                })
            }
        };
        let at = d.u64()?;
        let payload = d.bytes()?;
        if rdb::restore(&payload).is_err() {
            return Err(DecodeError::Invalid {
                what: "RESTORE payload of length",
                value: payload.len() as u64,
            });
        }
        Ok(Restore {
            key,
            replace,
            expire_at_ms: (at != 0).then_some(at),
            payload,
            deferred: None,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        if !self.replace && db.entry(&self.key, now_ms).is_some() {
            return Some(Reply::error(BUSYKEY));
        }
        self.deferred.clone()
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        if let Some(e) = self.deferred {
            return e;
        }
        let value = match rdb::restore(&self.payload) {
            Ok(v) => v,
            Err(e) => return payload_error(e),
        };
        if !self.replace && db.entry(&self.key, now_ms).is_some() {
            return Reply::error(BUSYKEY);
        }
        if self.replace {
            db.remove(&self.key);
        }
        if self.expire_at_ms.is_some_and(|at| at <= now_ms) {
            return Reply::Ok;
        }
        db.insert_entry(self.key, Entry::with_expiry(value, self.expire_at_ms));
        Reply::Ok
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.key])
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "RESTORE {} {} {}",
            quote(&self.key),
            self.expire_at_ms.unwrap_or(0),
            quote(&self.payload)
        );
        if self.replace {
            s.push_str(" REPLACE");
        }
        if self.expire_at_ms.is_some() {
            s.push_str(" ABSTTL");
        }
        s
    }
}
