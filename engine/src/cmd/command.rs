//! COMMAND [COUNT | LIST | INFO [name …] | DOCS [name …] | GETKEYS cmd … |
//! HELP]: the command table as Redis 7 describes its own, for clients
//! that introspect (redis-cli, redis-py's cluster client).

use super::arg::upper;
use super::{lookup, Action, Command, Flags, Spec, TABLE};
use crate::reply::{self, Reply};

const HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "HELP",
    "    Prints this help.",
];

/// Redis's COMMAND INFO entry: name, arity, flags, first key, last key,
/// key step, ACL categories, tips, key specs, subcommands.
fn info(s: &Spec) -> Reply {
    let mut flags = Vec::new();
    if s.flags.contains(Flags::WRITE) {
        flags.push(Reply::Status("write".into()));
    }
    if s.flags.contains(Flags::READONLY) {
        flags.push(Reply::Status("readonly".into()));
    }
    if s.flags.contains(Flags::NO_MULTI) {
        flags.push(Reply::Status("no_multi".into()));
    }
    if s.flags.contains(Flags::MOVABLE_KEYS) {
        flags.push(Reply::Status("movablekeys".into()));
    }
    let (first, last, step) = if s.keys.first == 0 {
        (0, 0, 0)
    } else {
        (s.keys.first as i64, s.keys.last, s.keys.step as i64)
    };
    Reply::Array(vec![
        Reply::text(s.name),
        Reply::Int(s.arity),
        Reply::Set(flags),
        Reply::Int(first),
        Reply::Int(last),
        Reply::Int(step),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

pub struct CommandCmd;

impl Command for CommandCmd {
    const NAME: &'static str = "command";
    const ARITY: i64 = -1;
    const FLAGS: Flags = Flags::NONE;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let Some(sub) = args.get(1).map(|a| upper(a)) else {
            return Ok(Action::Reply(Reply::Array(
                TABLE.iter().map(info).collect(),
            )));
        };
        let n = args.len();
        let arity: Option<(i64, &str)> = match sub.as_slice() {
            b"COUNT" => Some((2, "command|count")),
            b"LIST" => Some((-2, "command|list")),
            b"INFO" => Some((-2, "command|info")),
            b"DOCS" => Some((-2, "command|docs")),
            b"GETKEYS" => Some((-4, "command|getkeys")),
            b"HELP" => Some((2, "command|help")),
            _ => None,
        };
        let Some((want, full)) = arity else {
            return Err(reply::unknown_subcommand(&args[1], "command"));
        };
        if (want > 0 && n as i64 != want) || (want < 0 && (n as i64) < -want) {
            return Err(Reply::arity(full));
        }
        let names = || TABLE.iter().map(|s| Reply::text(s.name));
        let reply = match sub.as_slice() {
            b"COUNT" => Reply::Int(TABLE.len() as i64),
            b"LIST" if n == 2 => Reply::Array(names().collect()),
            // FILTERBY MODULE|ACLCAT|PATTERN
            b"LIST" => return Err(Reply::error(reply::SYNTAX)),
            b"INFO" if n == 2 => Reply::Array(TABLE.iter().map(info).collect()),
            b"INFO" => Reply::Array(
                args[2..]
                    .iter()
                    .map(|a| lookup(a).map_or(Reply::Nil, info))
                    .collect(),
            ),
            // no documentation is bundled: every command maps to its group
            b"DOCS" => {
                let specs: Vec<&Spec> = if n == 2 {
                    TABLE.iter().collect()
                } else {
                    args[2..].iter().filter_map(|a| lookup(a)).collect()
                };
                Reply::Map(
                    specs
                        .into_iter()
                        .map(|s| (Reply::text(s.name), Reply::Map(vec![])))
                        .collect(),
                )
            }
            b"GETKEYS" => {
                let cmd = &args[2..];
                let Some(s) = lookup(&cmd[0]) else {
                    return Err(Reply::error("ERR Invalid command specified"));
                };
                if s.keys.first == 0 {
                    return Err(Reply::error("ERR The command has no key arguments"));
                }
                let c = cmd.len() as i64;
                if (s.arity > 0 && s.arity != c) || c < -s.arity {
                    return Err(Reply::error(
                        "ERR Invalid number of arguments specified for command",
                    ));
                }
                Reply::Array(s.keys.of(cmd).map(|k| Reply::Bulk(k.to_vec())).collect())
            }
            _ => Reply::Array(HELP.iter().map(|l| Reply::Status(l.to_string())).collect()),
        };
        Ok(Action::Reply(reply))
    }
}
