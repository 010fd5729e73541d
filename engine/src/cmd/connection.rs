//! Connection commands, which touch no state: PING, ECHO, SELECT, QUIT,
//! and enough of CLIENT for redis-cli and redis-benchmark.

use super::arg::upper;
use super::{Action, Command, Flags, Read, ReadCtx};
use crate::reply::Reply;

/// PING [message]
pub struct Ping;

impl Command for Ping {
    const NAME: &'static str = "ping";
    const ARITY: i64 = -1;
    const FLAGS: Flags = Flags::NONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        match args.len() {
            1 => Ok(Action::Reply(Reply::Status("PONG".into()))),
            2 => Ok(Action::Reply(Reply::Bulk(args.swap_remove(1)))),
            _ => Err(Reply::arity(Self::NAME)),
        }
    }
}

/// ECHO message
pub struct Echo;

impl Command for Echo {
    const NAME: &'static str = "echo";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::NONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::Reply(Reply::Bulk(args.swap_remove(1))))
    }
}

/// SELECT index (database 0 only)
pub struct Select;

impl Command for Select {
    const NAME: &'static str = "select";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::NONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        if args[1] == b"0" {
            Ok(Action::Reply(Reply::Ok))
        } else {
            Err(Reply::error(
                "ERR DB index is out of range (this server has database 0 only)",
            ))
        }
    }
}

/// QUIT
pub struct Quit;

impl Command for Quit {
    const NAME: &'static str = "quit";
    const ARITY: i64 = -1;
    const FLAGS: Flags = Flags::NONE;

    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::Quit)
    }
}

/// CLIENT SETNAME | GETNAME | ID | SETINFO | INFO | LIST
pub enum Client {
    SetName(Vec<u8>),
    GetName,
    Id,
    Info,
}

impl Command for Client {
    const NAME: &'static str = "client";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::NONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let sub = upper(&args[1]);
        let c = match sub.as_slice() {
            b"SETNAME" if args.len() == 3 => {
                let name = args[2].clone();
                if name.iter().any(|b| *b <= b' ') {
                    return Err(Reply::error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    ));
                }
                Client::SetName(name)
            }
            b"GETNAME" if args.len() == 2 => Client::GetName,
            b"ID" if args.len() == 2 => Client::Id,
            b"SETINFO" if args.len() == 4 => return Ok(Action::Reply(Reply::Ok)),
            b"INFO" | b"LIST" => Client::Info,
            b"SETNAME" | b"GETNAME" | b"ID" | b"SETINFO" => return Err(Reply::arity(Self::NAME)),
            _ => {
                return Err(Reply::Error(format!(
                "ERR unknown subcommand '{}' for 'client' (supported: SETNAME, GETNAME, ID, SETINFO, INFO, LIST)",
                String::from_utf8_lossy(&args[1][..args[1].len().min(64)])
            )))
            }
        };
        Ok(Action::read(c))
    }
}

impl Read for Client {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match *self {
            Client::SetName(name) => {
                ctx.conn.name = (!name.is_empty()).then_some(name);
                Reply::Ok
            }
            Client::GetName => ctx.conn.name.clone().map_or(Reply::Nil, Reply::Bulk),
            Client::Id => Reply::Int(ctx.conn.id as i64),
            Client::Info => {
                let name = ctx
                    .conn
                    .name
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                Reply::Bulk(format!("id={} name={} db=0\n", ctx.conn.id, name).into_bytes())
            }
        }
    }
}
