//! FLUSHALL [ASYNC | SYNC], FLUSHDB [ASYNC | SYNC] (one database: the
//! same, logged as FLUSHALL)
//!
//! ```text
//!  op 12
//! ```

use super::arg::upper;
use super::codec::{DecodeError, Decoder};
use super::{effect, syntax_error, Action, Command, Effect, EffectSpec, Flags};
use crate::db::Db;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushAll;

impl Command for FlushAll {
    const NAME: &'static str = "flushall";
    const ARITY: i64 = -1;
    const FLAGS: Flags = Flags::WRITE;
    const EFFECT: Option<EffectSpec> = Some(effect::<FlushAll>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_flush(args)
    }
}

fn parse_flush(args: Vec<Vec<u8>>) -> Result<Action, Reply> {
    match args.get(1).map(|a| upper(a)) {
        None => {}
        Some(a) if args.len() == 2 && (a == b"SYNC" || a == b"ASYNC") => {}
        _ => return Err(syntax_error()),
    }
    Ok(Action::write(FlushAll))
}

/// FLUSHDB [ASYNC | SYNC]
pub struct FlushDb;

impl Command for FlushDb {
    const NAME: &'static str = "flushdb";
    const ARITY: i64 = -1;
    const FLAGS: Flags = Flags::WRITE;
    const EFFECT: Option<EffectSpec> = Some(effect::<FlushAll>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        parse_flush(args)
    }
}

impl Effect for FlushAll {
    const OP: u8 = 12;
    const NAME: &'static str = "FLUSHALL";

    fn encode_body(&self, _out: &mut Vec<u8>) {}

    fn decode_body(_d: &mut Decoder<'_>) -> Result<FlushAll, DecodeError> {
        Ok(FlushAll)
    }

    fn apply(self, db: &mut Db, _now_ms: u64) -> Reply {
        db.clear();
        Reply::Ok
    }

    fn describe(&self) -> String {
        "FLUSHALL".into()
    }
}
