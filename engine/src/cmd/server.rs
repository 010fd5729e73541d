//! Server commands: INFO, DBSIZE, and enough of COMMAND for redis-cli and
//! redis-benchmark.

use super::arg::upper;
use super::{command_names, Action, Command, Flags, Read, ReadCtx};
use crate::reply::Reply;

/// INFO [section …]
pub struct Info {
    sections: Vec<String>,
}

impl Command for Info {
    const NAME: &'static str = "info";
    const ARITY: i64 = -1;
    const FLAGS: Flags = Flags::READONLY;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let sections = args[1..]
            .iter()
            .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
            .collect();
        Ok(Action::read(Info { sections }))
    }
}

impl Read for Info {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        Reply::Bulk(
            ctx.server
                .info(&self.sections, ctx.db, ctx.now_ms)
                .into_bytes(),
        )
    }
}

/// DBSIZE (expired keys not counted)
pub struct DbSize;

impl Command for DbSize {
    const NAME: &'static str = "dbsize";
    const ARITY: i64 = 1;
    const FLAGS: Flags = Flags::READONLY;

    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(DbSize))
    }
}

impl Read for DbSize {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        Reply::Int(ctx.db.live_len(ctx.now_ms) as i64)
    }
}

/// COMMAND [COUNT | DOCS | INFO name...]
pub struct CommandCmd;

impl Command for CommandCmd {
    const NAME: &'static str = "command";
    const ARITY: i64 = -1;
    const FLAGS: Flags = Flags::NONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let sub = args.get(1).map(|a| upper(a));
        let reply = match sub.as_deref() {
            None | Some(b"DOCS") => Reply::Array(vec![]),
            Some(b"COUNT") => Reply::Int(command_names().count() as i64),
            Some(b"INFO") => Reply::Array(args[2..].iter().map(|_| Reply::Nil).collect()),
            Some(_) => {
                return Err(Reply::error(
                    "ERR unknown subcommand of 'command' (supported: COUNT, DOCS, INFO)",
                ))
            }
        };
        Ok(Action::Reply(reply))
    }
}
