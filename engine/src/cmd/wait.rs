//! WAIT numreplicas timeout: there are no replicas, so 0 at once.

use super::arg::parse_i64;
use super::{not_integer, Action, Command, Flags};
use crate::reply::Reply;

pub struct Wait;

impl Command for Wait {
    const NAME: &'static str = "wait";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::NONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let timeout = parse_i64(&args[2])
            .ok_or_else(|| Reply::error("ERR timeout is not an integer or out of range"))?;
        if timeout < 0 {
            return Err(Reply::error("ERR timeout is negative"));
        }
        parse_i64(&args[1]).ok_or_else(not_integer)?;
        Ok(Action::Reply(Reply::Int(0)))
    }
}
