//! SCARD key, SISMEMBER key member, SMISMEMBER key member [member ...],
//! SMEMBERS key: reads of one set.

use super::sets::{max_intset_entries, members_reply};
use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::reply::Reply;

pub struct SCard {
    key: Vec<u8>,
}

impl Command for SCard {
    const NAME: &'static str = "scard";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(SCard {
            key: args.swap_remove(1),
        }))
    }
}

impl Read for SCard {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get_set(&self.key, ctx.now_ms) {
            Err(e) => e.into(),
            Ok(s) => Reply::Int(s.map_or(0, |s| s.len() as i64)),
        }
    }
}

/// SISMEMBER (one member, an integer reply) and SMISMEMBER (an array).
pub struct SIsMember {
    key: Vec<u8>,
    members: Vec<Vec<u8>>,
    many: bool,
}

fn parse_is_member(mut args: Vec<Vec<u8>>, many: bool) -> Result<Action, Reply> {
    let members = args.split_off(2);
    Ok(Action::read(SIsMember {
        key: args.swap_remove(1),
        members,
        many,
    }))
}

pub struct SIsMemberCmd;

impl Command for SIsMemberCmd {
    const NAME: &'static str = "sismember";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_is_member(args, false)
    }
}

pub struct SMIsMember;

impl Command for SMIsMember {
    const NAME: &'static str = "smismember";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_is_member(args, true)
    }
}

impl Read for SIsMember {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let set = match ctx.db.get_set(&self.key, ctx.now_ms) {
            Err(e) => return e.into(),
            Ok(s) => s,
        };
        let mut answers = self
            .members
            .iter()
            .map(|m| Reply::Int(i64::from(set.is_some_and(|s| s.contains(m)))));
        if self.many {
            Reply::Array(answers.collect())
        } else {
            answers.next().unwrap_or(Reply::Int(0))
        }
    }
}

pub struct SMembers {
    key: Vec<u8>,
}

impl Command for SMembers {
    const NAME: &'static str = "smembers";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::ONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(SMembers {
            key: args.swap_remove(1),
        }))
    }
}

impl Read for SMembers {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match ctx.db.get_set(&self.key, ctx.now_ms) {
            Err(e) => e.into(),
            Ok(None) => Reply::Set(Vec::new()),
            Ok(Some(s)) => members_reply(s, max_intset_entries(ctx.server)),
        }
    }
}
