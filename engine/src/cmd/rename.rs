//! RENAME key newkey, RENAMENX key newkey (the expiry moves with the
//! value).
//!
//! ```text
//!  op 18 | nx u8 (0 RENAME, 1 RENAMENX) | key:bytes | newkey:bytes
//! ```

use super::codec::{put_bytes, put_u8, quote, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::Db;
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub key: Vec<u8>,
    pub new_key: Vec<u8>,
    pub nx: bool,
}

fn parse_rename(mut args: Vec<Vec<u8>>, nx: bool) -> Result<Action, Reply> {
    let new_key = args.swap_remove(2);
    Ok(Action::write(Rename {
        key: args.swap_remove(1),
        new_key,
        nx,
    }))
}

impl Command for Rename {
    const NAME: &'static str = "rename";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, 2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<Rename>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_rename(args, false)
    }
}

/// RENAMENX key newkey
pub struct RenameNx;

impl Command for RenameNx {
    const NAME: &'static str = "renamenx";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, 2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<Rename>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_rename(args, true)
    }
}

impl Effect for Rename {
    const OP: u8 = 18;
    const NAME: &'static str = "RENAME";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_u8(out, u8::from(self.nx));
        put_bytes(out, &self.key);
        put_bytes(out, &self.new_key);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<Rename, DecodeError> {
        let nx = match d.u8()? {
            0 => false,
            1 => true,
            v => {
                return Err(DecodeError::Invalid {
                    what: "RENAME nx",
                    value: u64::from(v),
                })
            }
        };
        Ok(Rename {
            key: d.bytes()?,
            new_key: d.bytes()?,
            nx,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        match db.entry(&self.key, now_ms) {
            None => Some(Reply::error(reply::NO_SUCH_KEY)),
            Some(_) => None,
        }
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let done = if self.nx { Reply::Int(1) } else { Reply::Ok };
        if db.live_mut(&self.key, now_ms).is_none() {
            return Reply::error(reply::NO_SUCH_KEY);
        }
        if self.key == self.new_key {
            return if self.nx { Reply::Int(0) } else { Reply::Ok };
        }
        if self.nx && db.live_mut(&self.new_key, now_ms).is_some() {
            return Reply::Int(0);
        }
        let entry = db.remove(&self.key).expect("live");
        db.notify(class::GENERIC, "rename_from", &self.key);
        db.notify(class::GENERIC, "rename_to", &self.new_key);
        db.insert_entry(self.new_key, entry);
        done
    }

    fn describe(&self) -> String {
        let name = if self.nx { "RENAMENX" } else { "RENAME" };
        format!("{name} {} {}", quote(&self.key), quote(&self.new_key))
    }
}
