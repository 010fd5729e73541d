//! SAVE, SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]: both refused inside
//! MULTI, as Redis refuses them.
//!
//! SAVE replies OK at once: every acknowledged write is durable in the log
//! already (snapshots are the snapshotter's, outside the engine). SHUTDOWN
//! stops the engine cleanly (what connections have read is finished, the
//! log is closed); NOSAVE/SAVE/NOW/FORCE change nothing, since nothing is
//! lost either way.

use super::arg::upper;
use super::{syntax_error, Action, Command, Flags, Read, ReadCtx};
use crate::reply::Reply;

pub struct Save;

impl Command for Save {
    const NAME: &'static str = "save";
    const ARITY: i64 = 1;
    const FLAGS: Flags = Flags::NONE.with(Flags::NO_MULTI);

    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::Reply(Reply::Ok))
    }
}

pub struct Shutdown;

struct ShutdownNow;

impl Command for Shutdown {
    const NAME: &'static str = "shutdown";
    const ARITY: i64 = -1;
    const FLAGS: Flags = Flags::NONE.with(Flags::NO_MULTI);

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let (mut save, mut nosave, mut abort) = (false, false, false);
        for a in &args[1..] {
            match upper(a).as_slice() {
                b"NOSAVE" => nosave = true,
                b"SAVE" => save = true,
                b"NOW" | b"FORCE" => {}
                b"ABORT" => abort = true,
                _ => return Err(syntax_error()),
            }
        }
        if (save && nosave) || (abort && args.len() > 2) {
            return Err(syntax_error());
        }
        if abort {
            return Err(Reply::error("ERR No shutdown in progress."));
        }
        Ok(Action::read(ShutdownNow))
    }
}

impl Read for ShutdownNow {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        if ctx.server.shutdown() {
            Reply::Ok
        } else {
            Reply::error("ERR Errors trying to SHUTDOWN. Check logs.")
        }
    }
}
