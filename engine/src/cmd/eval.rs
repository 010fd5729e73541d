//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL, FCALL_RO, SCRIPT and
//! FUNCTION: parsed here into a [`Request`] the scripting engine
//! ([`crate::script`]) runs with the execution core's state. A script's
//! writes are logged as their effects (one transaction record), so these
//! commands register no effect of their own.

use super::{Action, Command, Flags};
use crate::reply::Reply;
use crate::script::Request;

fn upper(a: &[u8]) -> Vec<u8> {
    a.to_ascii_uppercase()
}

/// `numkeys key... arg...` after the script or function name.
/// Keys, then arguments.
type KeysArgs = (Vec<Vec<u8>>, Vec<Vec<u8>>);

fn keys_and_args(mut rest: Vec<Vec<u8>>) -> Result<KeysArgs, Reply> {
    let n = std::str::from_utf8(&rest[0])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(super::not_integer)?;
    if n < 0 {
        return Err(Reply::error("ERR Number of keys can't be negative"));
    }
    if n as usize > rest.len() - 1 {
        return Err(Reply::error(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    rest.remove(0);
    let args = rest.split_off(n as usize);
    Ok((rest, args))
}

fn eval(mut args: Vec<Vec<u8>>, sha: bool, read_only: bool) -> Result<Action, Reply> {
    args.remove(0);
    let body = args.remove(0);
    let (keys, args) = keys_and_args(args)?;
    Ok(Action::Script(Request::Eval {
        body,
        sha,
        keys,
        args,
        read_only,
    }))
}

fn fcall(mut args: Vec<Vec<u8>>, read_only: bool) -> Result<Action, Reply> {
    args.remove(0);
    let name = args.remove(0);
    let (keys, args) = keys_and_args(args)?;
    Ok(Action::Script(Request::Fcall {
        name,
        keys,
        args,
        read_only,
    }))
}

pub struct Eval;
pub struct EvalSha;
pub struct EvalRo;
pub struct EvalShaRo;
pub struct FCall;
pub struct FCallRo;
pub struct Script;
pub struct Function;

impl Command for Eval {
    const NAME: &'static str = "eval";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::NONE;
    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        eval(args, false, false)
    }
}

impl Command for EvalSha {
    const NAME: &'static str = "evalsha";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::NONE;
    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        eval(args, true, false)
    }
}

impl Command for EvalRo {
    const NAME: &'static str = "eval_ro";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        eval(args, false, true)
    }
}

impl Command for EvalShaRo {
    const NAME: &'static str = "evalsha_ro";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        eval(args, true, true)
    }
}

impl Command for FCall {
    const NAME: &'static str = "fcall";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::NONE;
    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        fcall(args, false)
    }
}

impl Command for FCallRo {
    const NAME: &'static str = "fcall_ro";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::READONLY;
    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        fcall(args, true)
    }
}

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

fn wrong_args(cmd: &str, sub: &[u8]) -> Reply {
    Reply::Error(format!(
        "ERR wrong number of arguments for '{cmd}|{}' command",
        String::from_utf8_lossy(sub).to_ascii_lowercase()
    ))
}

fn flush_mode(args: &[Vec<u8>]) -> Result<(), Reply> {
    match args.len() {
        2 => Ok(()),
        3 if matches!(upper(&args[2]).as_slice(), b"ASYNC" | b"SYNC") => Ok(()),
        3 => Err(Reply::error(
            "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
        )),
        _ => Err(super::syntax_error()),
    }
}

impl Command for Script {
    const NAME: &'static str = "script";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::NONE;
    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let sub = upper(&args[1]);
        let n = args.len();
        let req = match sub.as_slice() {
            b"HELP" if n == 2 => {
                return Ok(Action::Reply(Reply::Array(
                    SCRIPT_HELP
                        .iter()
                        .map(|l| Reply::Status(l.to_string()))
                        .collect(),
                )))
            }
            b"LOAD" if n == 3 => Request::ScriptLoad(args.remove(2)),
            b"EXISTS" if n >= 3 => Request::ScriptExists(args.split_off(2)),
            b"FLUSH" => {
                flush_mode(&args)?;
                Request::ScriptFlush
            }
            b"KILL" if n == 2 => Request::NotBusy,
            b"HELP" | b"LOAD" | b"EXISTS" | b"KILL" => return Err(wrong_args("script", &sub)),
            _ => {
                return Err(Reply::Error(format!(
                    "ERR unknown subcommand '{}'. Try SCRIPT HELP.",
                    String::from_utf8_lossy(&args[1])
                )))
            }
        };
        Ok(Action::Script(req))
    }
}

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "KILL",
    "    Kill the current running function.",
    "STATS",
    "    Return information about the current function running.",
    "HELP",
    "    Prints this help.",
];

impl Command for Function {
    const NAME: &'static str = "function";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::NONE;
    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let sub = upper(&args[1]);
        let n = args.len();
        let req = match sub.as_slice() {
            b"HELP" if n == 2 => {
                return Ok(Action::Reply(Reply::Array(
                    FUNCTION_HELP
                        .iter()
                        .map(|l| Reply::Status(l.to_string()))
                        .collect(),
                )))
            }
            b"LOAD" if n >= 3 => {
                let code = args.pop().expect("n >= 3");
                let mut replace = false;
                for a in &args[2..] {
                    if upper(a) == b"REPLACE" {
                        replace = true;
                    } else {
                        return Err(Reply::Error(format!(
                            "ERR Unknown option given: {}",
                            String::from_utf8_lossy(a)
                        )));
                    }
                }
                Request::FunctionLoad { code, replace }
            }
            b"DELETE" if n == 3 => Request::FunctionDelete(args.remove(2)),
            b"FLUSH" => {
                flush_mode(&args)?;
                Request::FunctionFlush
            }
            b"KILL" if n == 2 => Request::NotBusy,
            b"STATS" if n == 2 => Request::FunctionStats,
            b"LIST" => {
                let mut pattern = None;
                let mut with_code = false;
                let mut i = 2;
                while i < n {
                    match upper(&args[i]).as_slice() {
                        b"WITHCODE" if !with_code => with_code = true,
                        b"LIBRARYNAME" if pattern.is_none() && i + 1 < n => {
                            pattern = Some(args[i + 1].clone());
                            i += 1;
                        }
                        b"LIBRARYNAME" if i + 1 >= n => {
                            return Err(Reply::error("ERR library name argument was not given"))
                        }
                        _ => {
                            return Err(Reply::Error(format!(
                                "ERR Unknown argument {}",
                                String::from_utf8_lossy(&args[i])
                            )))
                        }
                    }
                    i += 1;
                }
                Request::FunctionList { pattern, with_code }
            }
            b"DUMP" | b"RESTORE" => {
                return Err(Reply::Error(format!(
                    "ERR FUNCTION {} is not supported by this engine",
                    String::from_utf8_lossy(&sub)
                )))
            }
            b"HELP" | b"LOAD" | b"DELETE" | b"KILL" | b"STATS" => {
                return Err(wrong_args("function", &sub))
            }
            _ => {
                return Err(Reply::Error(format!(
                    "ERR unknown subcommand '{}'. Try FUNCTION HELP.",
                    String::from_utf8_lossy(&args[1])
                )))
            }
        };
        Ok(Action::Script(req))
    }
}
