//! SPOP key [count]
//!
//! Logged as what it did, never as "pop n at random": the members are
//! picked live ([`Effect::settle`], against the state the command runs on)
//! and the payload names them, so a replay removes exactly those and
//! answers exactly what the client got. A count that takes the whole set
//! is logged as "every member" (Redis propagates it as a DEL), so its
//! payload does not grow with the set.
//!
//! ```text
//!  op 34 | key:bytes | flags u8 | n u32 | n × member:bytes
//!  flags: bit 0 = with a count (the reply is a set, else a member or nil)
//!         bit 1 = every member: the key is removed whole (n = 0)
//!  n <= 1 without a count
//! ```
//!
//! The members one partial pop removes are bounded by [`MAX_SPOP_BYTES`]
//! (it pops fewer than asked past that, so the record stays loggable).

use super::codec::{put_bytes, put_list, put_u8, quote, DecodeError, Decoder};
use super::list::positive_count;
use super::sets::{
    at_indexes, check_set, distinct_indexes, members_reply, DEFAULT_MAX_INTSET_ENTRIES,
};
use super::{effect, syntax_error, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::Db;
use crate::pubsub::class;
use crate::reply::Reply;

/// Most member bytes (4 of framing each) one partial SPOP logs.
pub const MAX_SPOP_BYTES: usize = 48 * 1024 * 1024;

const WITH_COUNT: u8 = 1;
const EVERY_MEMBER: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SPop {
    pub key: Vec<u8>,
    /// None: `SPOP key` (one member or nil); else the count asked for.
    /// Not logged (the members are): a decoded SPOP has the count it took.
    pub count: Option<u64>,
    /// Settled live: the members removed.
    pub members: Vec<Vec<u8>>,
    /// Settled live: the count took the whole set.
    pub every: bool,
}

impl Command for SPop {
    const NAME: &'static str = "spop";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<SPop>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        if args.len() > 3 {
            return Err(syntax_error());
        }
        let count = match args.get(2) {
            Some(c) => Some(positive_count(c)?),
            None => None,
        };
        Ok(Action::write(SPop {
            key: args.swap_remove(1),
            count,
            members: Vec::new(),
            every: false,
        }))
    }
}

impl Effect for SPop {
    const OP: u8 = 34;
    const NAME: &'static str = "SPOP";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        let flags = if self.count.is_some() { WITH_COUNT } else { 0 }
            | if self.every { EVERY_MEMBER } else { 0 };
        put_u8(out, flags);
        put_list(out, &self.members);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<SPop, DecodeError> {
        let key = d.bytes()?;
        let flags = d.u8()?;
        let members = d.list()?;
        let with_count = flags & WITH_COUNT != 0;
        let every = flags & EVERY_MEMBER != 0;
        if flags > (WITH_COUNT | EVERY_MEMBER)
            || (every && (!with_count || !members.is_empty()))
            || (!with_count && members.len() > 1)
        {
            return Err(DecodeError::Invalid {
                what: "SPOP flags",
                value: u64::from(flags),
            });
        }
        Ok(SPop {
            key,
            count: with_count.then_some(if every {
                u64::MAX
            } else {
                members.len() as u64
            }),
            members,
            every,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        check_set(db, &self.key, now_ms)
    }

    fn settle(&mut self, db: &Db, now_ms: u64) {
        let Ok(Some(set)) = db.get_set(&self.key, now_ms) else {
            return;
        };
        let want = self.count.unwrap_or(1);
        if self.count.is_some() && want >= set.len() as u64 {
            self.every = true;
            return;
        }
        let picks = distinct_indexes(set.len(), want as usize);
        let mut bytes = 0;
        for m in at_indexes(set, &picks) {
            bytes += m.len() + 4;
            if bytes > MAX_SPOP_BYTES && !self.members.is_empty() {
                break;
            }
            self.members.push(m.to_vec());
        }
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        if let Some(e) = check_set(db, &self.key, now_ms) {
            return e;
        }
        let none = || match self.count {
            Some(_) => Reply::Set(Vec::new()),
            None => Reply::Nil,
        };
        let Ok(Some(set)) = db.set_mut(&self.key, now_ms) else {
            return none();
        };
        if self.every {
            let set = std::mem::take(set);
            db.remove(&self.key);
            db.notify(class::SET, "spop", &self.key);
            db.notify(class::GENERIC, "del", &self.key);
            return members_reply(&set, DEFAULT_MAX_INTSET_ENTRIES);
        }
        let removed: Vec<Vec<u8>> = self.members.into_iter().filter(|m| set.remove(m)).collect();
        let emptied = set.is_empty();
        if emptied {
            db.remove(&self.key);
        }
        if !removed.is_empty() {
            db.notify(class::SET, "spop", &self.key);
            if emptied {
                db.notify(class::GENERIC, "del", &self.key);
            }
        }
        match self.count {
            Some(_) => Reply::Set(removed.into_iter().map(Reply::Bulk).collect()),
            None => removed.into_iter().next().map_or(Reply::Nil, Reply::Bulk),
        }
    }

    fn describe(&self) -> String {
        let mut s = format!("SPOP {}", quote(&self.key));
        if self.every {
            s.push_str(" (every member)");
            return s;
        }
        if self.count.is_some() {
            s.push_str(&format!(" {}", self.members.len()));
        }
        s.push_str(" ->");
        for m in &self.members {
            s.push(' ');
            s.push_str(&quote(m));
        }
        s
    }
}
