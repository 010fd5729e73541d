//! OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key, OBJECT HELP
//!
//! ENCODING answers the form the value is in: a hash ([`crate::hash`]:
//! listpack while packed, hashtable once converted), a set or sorted set
//! from its packed or big form and its history, sticky as in Redis (see
//! `Members::is_intset`, `ZSet::is_listpack`); a string or list answers
//! what Redis 7.0 would use with its thresholds. IDLETIME is 0 (access
//! times are not kept), REFCOUNT is 1 (Redis's shared integers answer
//! `INT_MAX`). As in Redis, FREQ is refused unless `maxmemory-policy` is an
//! LFU policy and IDLETIME is refused when it is; FREQ then answers a new
//! key's counter (accesses are not counted).

use super::arg::{parse_i64, upper};
use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::{Members, Value};
use crate::reply::Reply;

/// Redis's `OBJ_SHARED_BULKHDR_LEN`-free rule: strings of at most 44
/// bytes are embstr, integers that fit a long are int.
pub fn encoding(v: &Value, config: &super::config::ConfigStore) -> &'static str {
    match v {
        Value::Str(s) if s.len() <= 20 && parse_i64(s).is_some() => "int",
        Value::Str(s) if s.len() <= 44 => "embstr",
        Value::Str(_) => "raw",
        Value::Hash(h) => h.encoding(),
        // Redis 7.0 keeps every list in a quicklist
        Value::List(_) => "quicklist",
        Value::Set(m) => set_encoding(
            m,
            config
                .get("set-max-intset-entries")
                .and_then(|v| v.parse().ok())
                .unwrap_or(super::sets::DEFAULT_MAX_INTSET_ENTRIES),
        ),
        Value::ZSet(z) if super::zset::is_listpack(z, config) => "listpack",
        Value::ZSet(_) => "skiplist",
    }
}

/// `intset` or `hashtable` (Redis 7.0 has no listpack sets) with
/// `set-max-intset-entries` at `max_intset`.
pub fn set_encoding(m: &Members, max_intset: u64) -> &'static str {
    if m.is_intset(max_intset) {
        "intset"
    } else {
        "hashtable"
    }
}

const HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

const NO_LFU: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

const LFU_SELECTED: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

/// Redis's `LFU_INIT_VAL`: the access counter of a new key.
const LFU_INIT_VAL: i64 = 5;

#[derive(Clone, Copy)]
enum Sub {
    Encoding,
    Freq,
    IdleTime,
    RefCount,
}

pub struct Object {
    sub: Sub,
    key: Vec<u8>,
}

impl Command for Object {
    const NAME: &'static str = "object";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::range(2, 2, 1);

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let name = upper(&args[1]);
        let sub = match name.as_slice() {
            b"HELP" if args.len() == 2 => {
                return Ok(Action::Reply(Reply::Array(
                    HELP.iter().map(|l| Reply::Status(l.to_string())).collect(),
                )))
            }
            b"ENCODING" => Sub::Encoding,
            b"FREQ" => Sub::Freq,
            b"IDLETIME" => Sub::IdleTime,
            b"REFCOUNT" => Sub::RefCount,
            b"HELP" => {
                return Err(Reply::Error(
                    "ERR wrong number of arguments for 'object|help' command".into(),
                ))
            }
            _ => return Err(crate::reply::unknown_subcommand(&args[1], "object")),
        };
        if args.len() != 3 {
            return Err(Reply::Error(format!(
                "ERR wrong number of arguments for 'object|{}' command",
                String::from_utf8_lossy(&name).to_ascii_lowercase()
            )));
        }
        Ok(Action::read(Object {
            sub,
            key: args.swap_remove(2),
        }))
    }
}

impl Read for Object {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let Some(v) = ctx.db.get(&self.key, ctx.now_ms) else {
            return Reply::Nil;
        };
        let lfu = ctx
            .server
            .config()
            .get("maxmemory-policy")
            .is_some_and(|p| p.ends_with("-lfu"));
        match self.sub {
            Sub::Encoding => Reply::Bulk(encoding(v, ctx.server.config()).as_bytes().to_vec()),
            Sub::Freq if !lfu => Reply::error(NO_LFU),
            // accesses are not counted: a key's counter as Redis starts it
            Sub::Freq => Reply::Int(LFU_INIT_VAL),
            Sub::IdleTime if lfu => Reply::error(LFU_SELECTED),
            Sub::IdleTime => Reply::Int(0),
            Sub::RefCount => match v {
                Value::Str(s) if matches!(parse_i64(s), Some(0..=9999)) => {
                    Reply::Int(i64::from(i32::MAX))
                }
                _ => Reply::Int(1),
            },
        }
    }
}
