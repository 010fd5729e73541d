//! Server commands: INFO, DBSIZE, and enough of COMMAND and CONFIG GET for
//! redis-cli and redis-benchmark.

use super::arg::upper;
use super::{command_names, glob_match, Action, Command, Flags, Read, ReadCtx};
use crate::reply::Reply;

/// INFO [section]
pub struct Info {
    section: String,
}

impl Command for Info {
    const NAME: &'static str = "info";
    const ARITY: i64 = -1;
    const FLAGS: Flags = Flags::READONLY;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let section = args
            .get(1)
            .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
            .unwrap_or_default();
        Ok(Action::read(Info { section }))
    }
}

impl Read for Info {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        Reply::Bulk(
            ctx.server
                .info(&self.section, ctx.db, ctx.now_ms)
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

/// What CONFIG GET reports: the engine's durability in Redis terms.
const CONFIG: &[(&str, &str)] = &[
    ("appendonly", "yes"),
    ("appendfsync", "always"),
    ("save", ""),
    ("databases", "1"),
];

/// CONFIG GET pattern... | RESETSTAT
pub struct Config;

impl Command for Config {
    const NAME: &'static str = "config";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::NONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let sub = upper(&args[1]);
        match sub.as_slice() {
            b"GET" if args.len() >= 3 => {
                let mut out = Vec::new();
                for (k, v) in CONFIG {
                    if args[2..]
                        .iter()
                        .any(|p| glob_match(&p.to_ascii_lowercase(), k.as_bytes()))
                    {
                        out.push(Reply::Bulk(k.as_bytes().to_vec()));
                        out.push(Reply::Bulk(v.as_bytes().to_vec()));
                    }
                }
                Ok(Action::Reply(Reply::Array(out)))
            }
            b"GET" => Err(Reply::arity("config|get")),
            b"RESETSTAT" => Ok(Action::Reply(Reply::Ok)),
            _ => Err(Reply::error("ERR only CONFIG GET and CONFIG RESETSTAT are supported (configure the engine with its command-line flags)")),
        }
    }
}
