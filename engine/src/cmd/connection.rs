//! Connection commands, which touch no state: PING, ECHO, SELECT, QUIT,
//! HELLO, AUTH, RESET and CLIENT.

use super::arg::{parse_i64, upper};
use super::{c_str, Action, Command, Flags, Protocol, Read, ReadCtx, REDIS_VERSION};
use crate::reply::{self, Reply};

/// Redis's rule for client names (CLIENT SETNAME, HELLO SETNAME): bytes
/// `!`..=`~` only; empty clears the name.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// `AUTH`/`HELLO AUTH` against Redis's default ACL (user `default`, no
/// password): the user `default` with any password succeeds, any other
/// user fails.
fn authenticate(user: &[u8]) -> bool {
    user == b"default"
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
pub struct Hello {
    args: Vec<Vec<u8>>,
}

impl Command for Hello {
    const NAME: &'static str = "hello";
    const ARITY: i64 = -1;
    const FLAGS: Flags = Flags::NONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(Hello { args }))
    }
}

impl Read for Hello {
    /// Options apply left to right as Redis applies them: a SETNAME before
    /// a bad option stays set; the protocol switches only when all pass.
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let args = self.args;
        let mut proto = None;
        if let Some(v) = args.get(1) {
            match parse_i64(v) {
                Some(2) => proto = Some(Protocol::Resp2),
                Some(3) => proto = Some(Protocol::Resp3),
                Some(_) => return Reply::error(reply::NOPROTO),
                None => return Reply::error(reply::PROTOVER_NOT_INTEGER),
            }
        }
        let mut j = 2;
        while j < args.len() {
            let more = args.len() - 1 - j;
            let opt = upper(&args[j]);
            if opt == b"AUTH" && more >= 2 {
                if !authenticate(&args[j + 1]) {
                    return Reply::error(reply::WRONGPASS);
                }
                j += 3;
            } else if opt == b"SETNAME" && more >= 1 {
                let name = &args[j + 1];
                if !valid_client_name(name) {
                    return Reply::error(reply::BAD_CLIENT_NAME);
                }
                ctx.conn.name = (!name.is_empty()).then(|| name.clone());
                j += 2;
            } else {
                let mut msg = b"ERR Syntax error in HELLO option '".to_vec();
                msg.extend_from_slice(c_str(&args[j], usize::MAX));
                msg.push(b'\'');
                return Reply::error_bytes(msg);
            }
        }
        if let Some(p) = proto {
            ctx.conn.proto = p;
        }
        Reply::Map(vec![
            (Reply::text("server"), Reply::text("redis")),
            (Reply::text("version"), Reply::text(REDIS_VERSION)),
            (Reply::text("proto"), Reply::Int(ctx.conn.proto.version())),
            (Reply::text("id"), Reply::Int(ctx.conn.id as i64)),
            (Reply::text("mode"), Reply::text("standalone")),
            (Reply::text("role"), Reply::text("master")),
            (Reply::text("modules"), Reply::Array(vec![])),
        ])
    }
}

/// AUTH [username] password
pub struct Auth;

impl Command for Auth {
    const NAME: &'static str = "auth";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::NONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        match args.len() {
            2 => Err(Reply::error(reply::AUTH_NOT_CONFIGURED)),
            3 if authenticate(&args[1]) => Ok(Action::Reply(Reply::Ok)),
            3 => Err(Reply::error(reply::WRONGPASS)),
            _ => Err(Reply::error(reply::SYNTAX)),
        }
    }
}

/// RESET: the connection back to a new client's state (RESP2, no name).
pub struct Reset;

impl Command for Reset {
    const NAME: &'static str = "reset";
    const ARITY: i64 = 1;
    const FLAGS: Flags = Flags::NONE;

    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::read(Reset))
    }
}

impl Read for Reset {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        ctx.conn.reset();
        Reply::Status("RESET".into())
    }
}

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
                if !valid_client_name(&name) {
                    return Err(Reply::error(reply::BAD_CLIENT_NAME));
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
