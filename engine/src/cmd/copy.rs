//! COPY source destination [DB 0] [REPLACE] (one database: DB 0 only)
//!
//! ```text
//!  op 19 | replace u8 (0 | 1) | source:bytes | destination:bytes
//! ```

use super::arg::{parse_i64, upper};
use super::codec::{put_bytes, put_u8, quote, DecodeError, Decoder};
use super::{effect, not_integer, syntax_error, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::Db;
use crate::pubsub::class;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub source: Vec<u8>,
    pub destination: Vec<u8>,
    pub replace: bool,
}

impl Command for Copy {
    const NAME: &'static str = "copy";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, 2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<Copy>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let mut replace = false;
        let mut i = 3;
        while i < args.len() {
            match upper(&args[i]).as_slice() {
                b"REPLACE" => replace = true,
                b"DB" if i + 1 < args.len() => {
                    let db = parse_i64(&args[i + 1])
                        .filter(|n| i32::try_from(*n).is_ok())
                        .ok_or_else(not_integer)?;
                    if db != 0 {
                        return Err(Reply::error("ERR DB index is out of range"));
                    }
                    i += 1;
                }
                _ => return Err(syntax_error()),
            }
            i += 1;
        }
        if args[1] == args[2] {
            return Err(Reply::error(
                "ERR source and destination objects are the same",
            ));
        }
        args.truncate(3);
        let destination = args.swap_remove(2);
        Ok(Action::write(Copy {
            source: args.swap_remove(1),
            destination,
            replace,
        }))
    }
}

impl Effect for Copy {
    const OP: u8 = 19;
    const NAME: &'static str = "COPY";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_u8(out, u8::from(self.replace));
        put_bytes(out, &self.source);
        put_bytes(out, &self.destination);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<Copy, DecodeError> {
        let replace = match d.u8()? {
            0 => false,
            1 => true,
            v => {
                return Err(DecodeError::Invalid {
                    what: "COPY replace",
                    value: u64::from(v),
                })
            }
        };
        Ok(Copy {
            source: d.bytes()?,
            destination: d.bytes()?,
            replace,
        })
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let Some(entry) = db.entry(&self.source, now_ms).cloned() else {
            return Reply::Int(0);
        };
        if db.live_mut(&self.destination, now_ms).is_some() && !self.replace {
            return Reply::Int(0);
        }
        db.notify(class::GENERIC, "copy_to", &self.destination);
        db.insert_entry(self.destination, entry);
        Reply::Int(1)
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Positive, vec![&self.destination])
    }

    fn describe(&self) -> String {
        let mut s = format!("COPY {} {}", quote(&self.source), quote(&self.destination));
        if self.replace {
            s.push_str(" REPLACE");
        }
        s
    }
}
