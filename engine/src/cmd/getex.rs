//! GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]
//!
//! Without an option it is a read (GET). An invalid expiry is answered
//! like Redis (nil for a missing key, WRONGTYPE, then the expiry error)
//! without logging anything.
//!
//! ```text
//!  op 14 | key:bytes | mode u8 | [at_ms u64 if mode 1]
//!  mode: 0 PERSIST, 1 expire at at_ms (deleted when at_ms <= now)
//! ```

use super::codec::{put_bytes, put_u64, put_u8, quote, DecodeError, Decoder};
use super::set::{expire_ms, parse_options, OptionsOf};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys, Read, ReadCtx};
use crate::db::{Db, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetEx {
    pub key: Vec<u8>,
    /// None: PERSIST.
    pub at_ms: Option<u64>,
}

/// GETEX without options, or with an invalid expiry (`err`).
struct GetExRead {
    key: Vec<u8>,
    err: Option<Reply>,
}

impl Read for GetExRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get(&self.key, ctx.now_ms) {
            None => Reply::Nil,
            Some(Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_)) => {
                Reply::error(reply::WRONGTYPE)
            }
            Some(Value::Str(s)) => self.err.unwrap_or_else(|| Reply::Bulk(s.clone())),
        }
    }
}

impl Command for GetEx {
    const NAME: &'static str = "getex";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<GetEx>());

    fn parse(mut args: Vec<Vec<u8>>, now: u64) -> Result<Action, Reply> {
        let rest = args.split_off(2);
        let key = args.swap_remove(1);
        let opts = parse_options(&rest, OptionsOf::GetEx)?;
        if let Some((unit, amount)) = opts.expire {
            return Ok(match expire_ms(unit, amount, now, "getex") {
                Ok(at) => Action::write(GetEx {
                    key,
                    at_ms: Some(at),
                }),
                Err(e) => Action::read(GetExRead { key, err: Some(e) }),
            });
        }
        if opts.persist {
            return Ok(Action::write(GetEx { key, at_ms: None }));
        }
        Ok(Action::read(GetExRead { key, err: None }))
    }
}

impl Effect for GetEx {
    const OP: u8 = 14;
    const NAME: &'static str = "GETEX";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        match self.at_ms {
            None => put_u8(out, 0),
            Some(t) => {
                put_u8(out, 1);
                put_u64(out, t);
            }
        }
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<GetEx, DecodeError> {
        let key = d.bytes()?;
        let at_ms = match d.u8()? {
            0 => None,
            1 => Some(d.u64()?),
            m => {
                return Err(DecodeError::Invalid {
                    what: "GETEX mode",
                    value: u64::from(m),
                })
            }
        };
        Ok(GetEx { key, at_ms })
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let value = match db.live_mut(&self.key, now_ms) {
            None => return Reply::Nil,
            Some(e) => {
                let Value::Str(s) = &e.value else {
                    return Reply::error(reply::WRONGTYPE);
                };
                let s = s.clone();
                let persisted = self.at_ms.is_none() && e.take_expire_at_ms().is_some();
                if persisted {
                    db.notify(class::GENERIC, "persist", &self.key);
                }
                s
            }
        };
        match self.at_ms {
            Some(t) if t <= now_ms => {
                db.remove(&self.key);
                db.notify(class::GENERIC, "del", &self.key);
            }
            Some(t) => {
                db.set_expire_at(&self.key, t);
                db.notify(class::GENERIC, "expire", &self.key);
            }
            None => {}
        }
        Reply::Bulk(value)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        match self.at_ms {
            Some(_) => (super::Signal::OkOrBulk, vec![&self.key]),
            None => (super::Signal::Never, Vec::new()),
        }
    }

    fn describe(&self) -> String {
        match self.at_ms {
            None => format!("GETEX {} PERSIST", quote(&self.key)),
            Some(t) => format!("GETEX {} PXAT {t}", quote(&self.key)),
        }
    }
}
