//! LPUSH, RPUSH, LPUSHX, RPUSHX key element [element ...]
//!
//! ```text
//!  op 24 | key:bytes | flags u8 | n u32 | n × element:bytes
//!  flags: bit 0 = head (LPUSH*), bit 1 = only if the key exists (*PUSHX)
//! ```

use super::codec::{put_bytes, put_list, put_u8, quote, DecodeError, Decoder};
use super::list::check_list;
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, List, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub key: Vec<u8>,
    pub head: bool,
    pub only_existing: bool,
    pub elements: Vec<Vec<u8>>,
}

fn parse(mut args: Vec<Vec<u8>>, head: bool, only_existing: bool) -> Result<Action, Reply> {
    let elements = args.split_off(2);
    Ok(Action::write(Push {
        key: args.swap_remove(1),
        head,
        only_existing,
        elements,
    }))
}

macro_rules! push_command {
    ($ty:ident, $name:literal, $head:expr, $x:expr) => {
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = -3;
            const FLAGS: Flags = Flags::WRITE;
            const KEYS: Keys = Keys::ONE;
            const EFFECT: Option<EffectSpec> = Some(effect::<Push>());

            fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
                parse(args, $head, $x)
            }
        }
    };
}

push_command!(LPush, "lpush", true, false);
push_command!(RPush, "rpush", false, false);
push_command!(LPushX, "lpushx", true, true);
push_command!(RPushX, "rpushx", false, true);

impl Effect for Push {
    const OP: u8 = 24;
    const NAME: &'static str = "PUSH";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_u8(
            out,
            u8::from(self.head) | (u8::from(self.only_existing) << 1),
        );
        put_list(out, &self.elements);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<Push, DecodeError> {
        let key = d.bytes()?;
        let flags = d.u8()?;
        Ok(Push {
            key,
            head: flags & 1 != 0,
            only_existing: flags & 2 != 0,
            elements: d.list()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        check_list(db, &self.key, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        if let Some(e) = check_list(db, &self.key, now_ms) {
            return e;
        }
        if db.live_mut(&self.key, now_ms).is_none() {
            if self.only_existing {
                return Reply::Int(0);
            }
            db.insert_entry(self.key.clone(), Entry::new(Value::List(List::new())));
        }
        let l = match db.list_mut(&self.key, now_ms) {
            Ok(Some(l)) => l,
            _ => return Reply::error(reply::WRONGTYPE),
        };
        for e in self.elements {
            if self.head {
                l.push_front(e);
            } else {
                l.push_back(e);
            }
        }
        let n = l.len() as i64;
        db.notify(
            class::LIST,
            if self.head { "lpush" } else { "rpush" },
            &self.key,
        );
        Reply::Int(n)
    }

    fn describe(&self) -> String {
        let name = match (self.head, self.only_existing) {
            (true, false) => "LPUSH",
            (false, false) => "RPUSH",
            (true, true) => "LPUSHX",
            (false, true) => "RPUSHX",
        };
        let mut s = format!("{name} {}", quote(&self.key));
        for e in &self.elements {
            s.push(' ');
            s.push_str(&quote(e));
        }
        s
    }
}
