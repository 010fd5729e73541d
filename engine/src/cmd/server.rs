//! Server commands: INFO, DBSIZE, TIME, DEBUG.

use super::{Action, Command, Flags, Read, ReadCtx};
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
    /// A verbatim string in RESP3, a bulk string in RESP2, as Redis sends.
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        Reply::Verbatim(
            "txt",
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

/// TIME: seconds and microseconds of the server clock.
pub struct Time;

impl Command for Time {
    const NAME: &'static str = "time";
    const ARITY: i64 = 1;
    const FLAGS: Flags = Flags::NONE;

    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Action::Reply(Reply::Array(vec![
            Reply::text(now.as_secs().to_string()),
            Reply::text(now.subsec_micros().to_string()),
        ])))
    }
}

/// DEBUG: refused as Redis 7 refuses it by default (`enable-debug-command
/// no`, which cannot be changed at run time).
pub struct Debug;

impl Command for Debug {
    const NAME: &'static str = "debug";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::NONE;

    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Err(Reply::error(
            "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.",
        ))
    }
}
