//! PING, ECHO, SELECT, QUIT, INFO, DBSIZE, FLUSHALL, and enough of COMMAND,
//! CLIENT and CONFIG GET for redis-cli and redis-benchmark.

use super::{arity_error, command_names, err, glob_match, syntax_error, Action};
use crate::db::{Command, Reply};

pub fn ping(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    match args.len() {
        1 => Action::Reply(Reply::Status("PONG".into())),
        2 => Action::Reply(Reply::Bulk(args.swap_remove(1))),
        _ => arity_error("ping"),
    }
}

pub fn echo(mut args: Vec<Vec<u8>>, _now: u64) -> Action {
    Action::Reply(Reply::Bulk(args.swap_remove(1)))
}

pub fn select(args: Vec<Vec<u8>>, _now: u64) -> Action {
    if args[1] == b"0" {
        Action::Reply(Reply::Ok)
    } else {
        err("ERR DB index is out of range (this server has database 0 only)")
    }
}

pub fn quit(_args: Vec<Vec<u8>>, _now: u64) -> Action {
    Action::Quit
}

pub fn info(args: Vec<Vec<u8>>, _now: u64) -> Action {
    let section = args
        .get(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .unwrap_or_default();
    Action::Read(Box::new(move |ctx| {
        Reply::Bulk(ctx.server.info(&section, ctx.db, ctx.now_ms).into_bytes())
    }))
}

pub fn dbsize(_args: Vec<Vec<u8>>, _now: u64) -> Action {
    Action::Read(Box::new(|ctx| {
        Reply::Int(ctx.db.live_len(ctx.now_ms) as i64)
    }))
}

pub fn flushall(args: Vec<Vec<u8>>, _now: u64) -> Action {
    match args.get(1).map(|a| a.to_ascii_uppercase()) {
        None => {}
        Some(a) if args.len() == 2 && (a == b"SYNC" || a == b"ASYNC") => {}
        _ => return syntax_error(),
    }
    Action::Write(Command::FlushAll)
}

pub fn command(args: Vec<Vec<u8>>, _now: u64) -> Action {
    let sub = args.get(1).map(|a| a.to_ascii_uppercase());
    match sub.as_deref() {
        None | Some(b"DOCS") => Action::Reply(Reply::Array(vec![])),
        Some(b"COUNT") => Action::Reply(Reply::Int(command_names().count() as i64)),
        Some(b"INFO") => {
            Action::Reply(Reply::Array(args[2..].iter().map(|_| Reply::Nil).collect()))
        }
        Some(_) => err("ERR unknown subcommand of 'command' (supported: COUNT, DOCS, INFO)"),
    }
}

pub fn client(args: Vec<Vec<u8>>, _now: u64) -> Action {
    let sub = args[1].to_ascii_uppercase();
    match sub.as_slice() {
        b"SETNAME" if args.len() == 3 => {
            let name = args[2].clone();
            if name.iter().any(|b| *b <= b' ') {
                return err("ERR Client names cannot contain spaces, newlines or special characters.");
            }
            Action::Read(Box::new(move |ctx| {
                ctx.conn.name = (!name.is_empty()).then_some(name);
                Reply::Ok
            }))
        }
        b"GETNAME" if args.len() == 2 => Action::Read(Box::new(|ctx| {
            ctx.conn.name.clone().map_or(Reply::Nil, Reply::Bulk)
        })),
        b"ID" if args.len() == 2 => Action::Read(Box::new(|ctx| Reply::Int(ctx.conn.id as i64))),
        b"SETINFO" if args.len() == 4 => Action::Reply(Reply::Ok),
        b"INFO" | b"LIST" => Action::Read(Box::new(|ctx| {
            let name = ctx.conn.name.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            Reply::Bulk(format!("id={} name={} db=0\n", ctx.conn.id, name).into_bytes())
        })),
        b"SETNAME" | b"GETNAME" | b"ID" | b"SETINFO" => arity_error("client"),
        _ => err(format!(
            "ERR unknown subcommand '{}' for 'client' (supported: SETNAME, GETNAME, ID, SETINFO, INFO, LIST)",
            String::from_utf8_lossy(&args[1][..args[1].len().min(64)])
        )),
    }
}

/// What CONFIG GET reports: the engine's durability in Redis terms.
const CONFIG: &[(&str, &str)] = &[
    ("appendonly", "yes"),
    ("appendfsync", "always"),
    ("save", ""),
    ("databases", "1"),
];

pub fn config(args: Vec<Vec<u8>>, _now: u64) -> Action {
    let sub = args[1].to_ascii_uppercase();
    match sub.as_slice() {
        b"GET" if args.len() >= 3 => {
            let mut out = Vec::new();
            for (k, v) in CONFIG {
                if args[2..].iter().any(|p| glob_match(&p.to_ascii_lowercase(), k.as_bytes())) {
                    out.push(Reply::Bulk(k.as_bytes().to_vec()));
                    out.push(Reply::Bulk(v.as_bytes().to_vec()));
                }
            }
            Action::Reply(Reply::Array(out))
        }
        b"GET" => arity_error("config|get"),
        b"RESETSTAT" => Action::Reply(Reply::Ok),
        _ => err("ERR only CONFIG GET and CONFIG RESETSTAT are supported (configure the engine with its command-line flags)"),
    }
}
