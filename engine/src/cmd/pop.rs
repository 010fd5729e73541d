//! LPOP, RPOP key [count]
//!
//! ```text
//!  op 25 | key:bytes | head u8 | has_count u8 | [count u64]
//! ```

use super::codec::{put_bytes, put_u64, put_u8, quote, DecodeError, Decoder};
use super::list::{check_list, positive_count};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::Db;
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop {
    pub key: Vec<u8>,
    pub head: bool,
    pub count: Option<u64>,
}

fn parse(mut args: Vec<Vec<u8>>, head: bool, name: &str) -> Result<Action, Reply> {
    if args.len() > 3 {
        return Err(Reply::arity(name));
    }
    let count = match args.get(2) {
        Some(c) => Some(positive_count(c)?),
        None => None,
    };
    Ok(Action::write(Pop {
        key: args.swap_remove(1),
        head,
        count,
    }))
}

macro_rules! pop_command {
    ($ty:ident, $name:literal, $head:expr) => {
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = -2;
            const FLAGS: Flags = Flags::WRITE;
            const KEYS: Keys = Keys::ONE;
            const EFFECT: Option<EffectSpec> = Some(effect::<Pop>());

            fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
                parse(args, $head, $name)
            }
        }
    };
}

pop_command!(LPop, "lpop", true);
pop_command!(RPop, "rpop", false);

/// Pops up to `n` elements of the list at `key` from one end (the key is
/// removed when emptied); None when there is no list there.
pub fn pop_n(db: &mut Db, key: &[u8], head: bool, n: u64, now_ms: u64) -> Option<Vec<Vec<u8>>> {
    let l = db.list_mut(key, now_ms).ok()??;
    let n = (n as usize).min(l.len());
    let out = if head {
        l.drain(..n).collect()
    } else {
        let mut v: Vec<Vec<u8>> = l.drain(l.len() - n..).collect();
        v.reverse();
        v
    };
    if n > 0 {
        db.notify(class::LIST, if head { "lpop" } else { "rpop" }, key);
    }
    db.drop_if_empty_list(key);
    Some(out)
}

impl Effect for Pop {
    const OP: u8 = 25;
    const NAME: &'static str = "POP";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_u8(out, u8::from(self.head));
        put_u8(out, u8::from(self.count.is_some()));
        if let Some(c) = self.count {
            put_u64(out, c);
        }
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<Pop, DecodeError> {
        let key = d.bytes()?;
        let head = d.u8()? != 0;
        let count = match d.u8()? {
            0 => None,
            _ => Some(d.u64()?),
        };
        Ok(Pop { key, head, count })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        check_list(db, &self.key, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        if check_list(db, &self.key, now_ms).is_some() {
            return Reply::error(reply::WRONGTYPE);
        }
        match (
            self.count,
            pop_n(db, &self.key, self.head, self.count.unwrap_or(1), now_ms),
        ) {
            (None, None) => Reply::Nil,
            (Some(_), None) => Reply::NilArray,
            (None, Some(mut v)) => v.pop().map_or(Reply::Nil, Reply::Bulk),
            (Some(_), Some(v)) => Reply::Array(v.into_iter().map(Reply::Bulk).collect()),
        }
    }

    fn describe(&self) -> String {
        let name = if self.head { "LPOP" } else { "RPOP" };
        match self.count {
            None => format!("{name} {}", quote(&self.key)),
            Some(c) => format!("{name} {} {c}", quote(&self.key)),
        }
    }
}
