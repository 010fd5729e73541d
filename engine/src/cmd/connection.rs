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

    /// Run by the core: subscriptions, MONITOR and CLIENT REPLY end too.
    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::PubSub(crate::pubsub::Op::Reset))
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

/// SELECT index (database 0 only: others are out of range, as in a
/// Redis started with `databases 1`)
pub struct Select;

impl Command for Select {
    const NAME: &'static str = "select";
    const ARITY: i64 = 2;
    const FLAGS: Flags = Flags::NONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        match parse_i64(&args[1]) {
            Some(0) => Ok(Action::Reply(Reply::Ok)),
            Some(n) if i32::try_from(n).is_ok() => Err(Reply::error(reply::DB_OUT_OF_RANGE)),
            Some(_) => Err(Reply::error(
                "ERR value is out of range, value must between -2147483648 and 2147483647",
            )),
            None => Err(Reply::error(reply::NOT_INTEGER)),
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

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set client library name or version (kept for CLIENT LIST).",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

/// Which clients CLIENT KILL closes (Redis's filters; every field given
/// must match).
#[derive(Debug, Clone)]
pub struct ClientFilter {
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    /// TYPE: the engine's clients are all `normal`.
    pub normal_only: bool,
    pub skip_me: bool,
}

/// The client types Redis names; `Some(true)` for `normal`.
fn client_type(name: &[u8]) -> Option<bool> {
    match upper(name).as_slice() {
        b"NORMAL" => Some(true),
        b"SLAVE" | b"REPLICA" | b"PUBSUB" | b"MASTER" => Some(false),
        _ => None,
    }
}

fn unknown_client_type(name: &[u8]) -> Reply {
    let mut msg = b"ERR Unknown client type '".to_vec();
    msg.extend_from_slice(c_str(name, usize::MAX));
    msg.push(b'\'');
    Reply::error_bytes(msg)
}

/// CLIENT ID | INFO | LIST | KILL | GETNAME | SETNAME | SETINFO | NO-EVICT |
/// HELP
pub enum Client {
    SetName(Vec<u8>),
    GetName,
    Id,
    Info,
    /// Clients of these ids (all: `None`); `false`: a type that matches none.
    List(Option<Vec<u64>>, bool),
    /// The filter, and whether the old one-address form was used.
    Kill(ClientFilter, bool),
    NoEvict(bool),
    /// CLIENT UNBLOCK id [TIMEOUT|ERROR]: the id, and whether ERROR.
    Unblock(u64, bool),
}

impl Command for Client {
    const NAME: &'static str = "client";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::NONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let sub = upper(&args[1]);
        let n = args.len();
        // Redis's container-command arity per subcommand
        let arity: Option<(i64, &str)> = match sub.as_slice() {
            b"SETNAME" => Some((3, "client|setname")),
            b"GETNAME" => Some((2, "client|getname")),
            b"ID" => Some((2, "client|id")),
            b"INFO" => Some((2, "client|info")),
            b"LIST" => Some((-2, "client|list")),
            b"KILL" => Some((-3, "client|kill")),
            b"UNBLOCK" => Some((-3, "client|unblock")),
            b"NO-EVICT" => Some((3, "client|no-evict")),
            b"SETINFO" => Some((4, "client|setinfo")),
            b"REPLY" => Some((3, "client|reply")),
            b"HELP" => Some((2, "client|help")),
            _ => None,
        };
        let Some((want, full)) = arity else {
            return Err(reply::unknown_subcommand(&args[1], "client"));
        };
        if (want > 0 && n as i64 != want) || (want < 0 && (n as i64) < -want) {
            return Err(Reply::arity(full));
        }
        let c = match sub.as_slice() {
            b"HELP" => {
                return Ok(Action::Reply(Reply::Array(
                    CLIENT_HELP
                        .iter()
                        .map(|l| Reply::Status(l.to_string()))
                        .collect(),
                )))
            }
            b"SETNAME" => {
                if !valid_client_name(&args[2]) {
                    return Err(Reply::error(reply::BAD_CLIENT_NAME));
                }
                Client::SetName(args[2].clone())
            }
            b"GETNAME" => Client::GetName,
            b"ID" => Client::Id,
            b"INFO" => Client::Info,
            b"SETINFO" => {
                let opt = upper(&args[2]);
                if opt != b"LIB-NAME" && opt != b"LIB-VER" {
                    let mut msg = b"ERR Unrecognized option '".to_vec();
                    msg.extend_from_slice(c_str(&args[2], usize::MAX));
                    msg.push(b'\'');
                    return Err(Reply::error_bytes(msg));
                }
                if !valid_client_name(&args[3]) {
                    return Err(Reply::error(format!(
                        "ERR {} cannot contain spaces, newlines or special characters.",
                        String::from_utf8_lossy(&opt)
                    )));
                }
                return Ok(Action::Reply(Reply::Ok));
            }
            b"REPLY" => {
                use crate::pubsub::{Op, ReplyMode};
                let mode = match upper(&args[2]).as_slice() {
                    b"ON" => ReplyMode::On,
                    b"OFF" => ReplyMode::Off,
                    b"SKIP" => ReplyMode::Skip(2),
                    _ => return Err(Reply::error(reply::SYNTAX)),
                };
                return Ok(Action::PubSub(Op::ClientReply(mode)));
            }
            b"NO-EVICT" => match upper(&args[2]).as_slice() {
                b"ON" => Client::NoEvict(true),
                b"OFF" => Client::NoEvict(false),
                _ => return Err(Reply::error(reply::SYNTAX)),
            },
            b"LIST" => {
                if n == 2 {
                    Client::List(None, true)
                } else if n == 4 && upper(&args[2]) == b"TYPE" {
                    let normal =
                        client_type(&args[3]).ok_or_else(|| unknown_client_type(&args[3]))?;
                    Client::List(None, normal)
                } else if n > 3 && upper(&args[2]) == b"ID" {
                    let ids = args[3..]
                        .iter()
                        .map(|a| parse_i64(a).map(|i| i as u64))
                        .collect::<Option<Vec<u64>>>()
                        .ok_or_else(|| Reply::error("ERR Invalid client ID"))?;
                    Client::List(Some(ids), true)
                } else {
                    return Err(Reply::error(reply::SYNTAX));
                }
            }
            b"KILL" => {
                let mut f = ClientFilter {
                    id: None,
                    addr: None,
                    laddr: None,
                    normal_only: true,
                    skip_me: true,
                };
                if n == 3 {
                    f.addr = Some(String::from_utf8_lossy(&args[2]).into_owned());
                    f.skip_me = false;
                    return Ok(Action::read(Client::Kill(f, true)));
                }
                let mut i = 2;
                while i < n {
                    if i + 1 >= n {
                        return Err(Reply::error(reply::SYNTAX));
                    }
                    let v = &args[i + 1];
                    match upper(&args[i]).as_slice() {
                        b"ID" => match parse_i64(v) {
                            Some(id) if id >= 1 => f.id = Some(id as u64),
                            _ => {
                                return Err(Reply::error("ERR client-id should be greater than 0"))
                            }
                        },
                        b"TYPE" => {
                            f.normal_only = client_type(v).ok_or_else(|| unknown_client_type(v))?
                        }
                        b"ADDR" => f.addr = Some(String::from_utf8_lossy(v).into_owned()),
                        b"LADDR" => f.laddr = Some(String::from_utf8_lossy(v).into_owned()),
                        b"USER" => {
                            if v != b"default" {
                                let mut msg = b"ERR No such user '".to_vec();
                                msg.extend_from_slice(c_str(v, usize::MAX));
                                msg.push(b'\'');
                                return Err(Reply::error_bytes(msg));
                            }
                        }
                        b"SKIPME" => match upper(v).as_slice() {
                            b"YES" => f.skip_me = true,
                            b"NO" => f.skip_me = false,
                            _ => return Err(Reply::error(reply::SYNTAX)),
                        },
                        _ => return Err(Reply::error(reply::SYNTAX)),
                    }
                    i += 2;
                }
                Client::Kill(f, false)
            }
            b"UNBLOCK" => {
                if n > 4 {
                    let mut msg =
                        b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
                    msg.extend_from_slice(c_str(&args[1], usize::MAX));
                    msg.extend_from_slice(b"'. Try CLIENT HELP.");
                    return Err(Reply::error_bytes(msg));
                }
                let id = parse_i64(&args[2]).ok_or_else(|| Reply::error(reply::NOT_INTEGER))?;
                let error = match args.get(3).map(|a| upper(a)) {
                    None => false,
                    Some(o) if o == b"TIMEOUT" => false,
                    Some(o) if o == b"ERROR" => true,
                    _ => {
                        return Err(Reply::error(
                            "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                        ))
                    }
                };
                Client::Unblock(id as u64, error)
            }
            _ => unreachable!("every subcommand with an arity is handled"),
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
            Client::Info => Reply::Verbatim(
                "txt",
                ctx.server
                    .client_list(Some(&[ctx.conn.id]), ctx.conn.id, "client|info")
                    .into_bytes(),
            ),
            Client::List(ids, any) => {
                let text = if any {
                    ctx.server
                        .client_list(ids.as_deref(), ctx.conn.id, "client|list")
                } else {
                    String::new()
                };
                Reply::Verbatim("txt", text.into_bytes())
            }
            Client::Kill(f, old_form) => {
                let n = ctx.server.client_kill(&f, ctx.conn.id);
                match (old_form, n) {
                    (true, 0) => Reply::error("ERR No such client"),
                    (true, _) => Reply::Ok,
                    (false, n) => Reply::Int(n as i64),
                }
            }
            Client::NoEvict(on) => {
                ctx.conn.no_evict = on;
                Reply::Ok
            }
            Client::Unblock(id, error) => {
                Reply::Int(i64::from(ctx.server.client_unblock(id, error)))
            }
        }
    }
}
