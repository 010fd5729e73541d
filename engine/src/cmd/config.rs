//! CONFIG GET | SET | RESETSTAT | REWRITE | HELP, over Redis 7.0's own
//! parameter table ([`super::config_params`]): every parameter Redis knows
//! is accepted, validated and reported exactly as Redis does (names,
//! aliases, glob patterns, value kinds and bounds, error texts), so that
//! clients and Redis's test suite can tune encodings freely.
//!
//! Most parameters tune Redis internals the engine does not have
//! (`*-max-listpack-*`, `activerehashing`…): their values are kept and
//! reported and change nothing. The engine's own facts are reported as they
//! are and cannot be changed: `appendonly yes`, `appendfsync always`,
//! `databases 1`, `port`, `bind`, `dir`, `maxclients` (its flags).

use std::collections::HashMap;
use std::sync::Mutex;

use super::arg::upper;
use super::config_params::PARAMS;
use super::{glob_match, Action, Command, Flags, Read, ReadCtx};
use crate::reply::{self, Reply};

/// Can only be set at start.
pub const F_IMMUTABLE: u8 = 1;
/// Left out of pattern matches (`CONFIG GET *`).
pub const F_HIDDEN: u8 = 2;
/// Refused while `enable-protected-configs` is `no` (always, here).
pub const F_PROTECTED: u8 = 4;
/// The value is a list of words.
pub const F_MULTI: u8 = 8;

/// Flags of a numeric parameter's accepted forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num {
    /// `1gb`, `100mb`, `1k`…
    Memory,
    /// `50%` (stored negative, as Redis does).
    Percent,
    /// `0777`.
    Octal,
}

/// What values a parameter takes.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `yes` / `no`.
    Bool,
    /// An integer within `min..=max` (Redis's C type bounds).
    Num {
        min: i128,
        max: i128,
        unsigned: bool,
        flags: &'static [Num],
    },
    /// One of the names (case-insensitive); several for `F_MULTI`.
    Enum(&'static [&'static str]),
    /// Free text (strings and Redis's special parameters).
    Text,
}

/// One Redis parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub flags: u8,
    pub kind: Kind,
    pub default: &'static str,
}

/// Parameters the engine reports as they are and refuses to change (they
/// describe how it works), with why.
const FIXED: &[(&str, &str)] = &[
    ("appendonly", "the engine logs every write"),
    (
        "appendfsync",
        "the engine makes every write durable before replying",
    ),
    ("port", "set the listen address with --listen"),
    ("bind", "set the listen address with --listen"),
    ("maxclients", "set the connection cap with --max-clients"),
];

/// The server's parameter values (CONFIG SET changes them for everyone).
#[derive(Debug)]
pub struct ConfigStore {
    values: Mutex<HashMap<&'static str, String>>,
}

/// An entry of the lookup table: a name or alias and its parameter.
struct Entry {
    /// The name this entry answers to (the alias for an alias entry).
    name: &'static str,
    param: &'static Param,
}

fn entries() -> &'static [Entry] {
    static E: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();
    E.get_or_init(|| {
        let mut v = Vec::new();
        for p in PARAMS {
            v.push(Entry {
                name: p.name,
                param: p,
            });
            if let Some(a) = p.alias {
                v.push(Entry { name: a, param: p });
            }
        }
        v
    })
}

/// The entry for `name` (any case).
fn lookup(name: &[u8]) -> Option<&'static Entry> {
    entries()
        .iter()
        .find(|e| e.name.as_bytes().eq_ignore_ascii_case(name))
}

impl ConfigStore {
    /// Redis's defaults with the engine's facts (`overrides`: name, value).
    pub fn new(overrides: &[(&str, String)]) -> ConfigStore {
        let mut values: HashMap<&'static str, String> = PARAMS
            .iter()
            .map(|p| (p.name, p.default.to_string()))
            .collect();
        for (k, v) in [
            ("appendonly", "yes"),
            ("appendfsync", "always"),
            ("save", ""),
            ("databases", "1"),
            ("daemonize", "no"),
        ] {
            values.insert(lookup(k.as_bytes()).expect("known").param.name, v.into());
        }
        for (k, v) in overrides {
            let e = lookup(k.as_bytes()).expect("override of a known parameter");
            values.insert(e.param.name, v.clone());
        }
        ConfigStore {
            values: Mutex::new(values),
        }
    }

    fn values(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, String>> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value of `name` (a canonical name or alias).
    pub fn get(&self, name: &str) -> Option<String> {
        let e = lookup(name.as_bytes())?;
        self.values().get(e.param.name).cloned()
    }

    /// CONFIG GET: the map of every name matching one of `patterns`.
    fn get_matching(&self, patterns: &[Vec<u8>]) -> Reply {
        let values = self.values();
        let mut out: Vec<(Vec<u8>, &'static str)> = Vec::new();
        for pat in patterns {
            if !pat.iter().any(|b| matches!(b, b'[' | b'*' | b'?')) {
                // an exact name is answered under the name as typed
                if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(pat)) {
                    continue;
                }
                if let Some(e) = lookup(pat) {
                    out.push((pat.clone(), e.param.name));
                }
                continue;
            }
            let lower = pat.to_ascii_lowercase();
            for e in entries() {
                if e.param.flags & F_HIDDEN != 0
                    || out
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case(e.name.as_bytes()))
                {
                    continue;
                }
                if glob_match(&lower, e.name.as_bytes()) {
                    out.push((e.name.as_bytes().to_vec(), e.param.name));
                }
            }
        }
        Reply::Map(
            out.into_iter()
                .map(|(n, p)| (Reply::Bulk(n), Reply::text(values[p].clone())))
                .collect(),
        )
    }

    /// CONFIG SET name value [name value …]: all or nothing.
    fn set(&self, pairs: &[Vec<u8>]) -> Reply {
        let mut new: Vec<(&'static Entry, String)> = Vec::new();
        let failed = |name: &str, err: &str| {
            Reply::error_bytes(
                format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {err}")
                    .into_bytes(),
            )
        };
        let mut first_err: Option<Reply> = None;
        for pair in pairs.chunks(2) {
            let typed = &pair[0];
            let Some(e) = lookup(typed) else {
                if first_err.is_none() {
                    let mut msg =
                        b"ERR Unknown option or number of arguments for CONFIG SET - '".to_vec();
                    msg.extend_from_slice(super::c_str(typed, usize::MAX));
                    msg.push(b'\'');
                    first_err = Some(Reply::error_bytes(msg));
                }
                continue;
            };
            if first_err.is_some() {
                continue;
            }
            let typed_s = String::from_utf8_lossy(super::c_str(typed, usize::MAX)).into_owned();
            if e.param.flags & (F_IMMUTABLE | F_PROTECTED) != 0 {
                let why = if e.param.flags & F_IMMUTABLE != 0 {
                    "can't set immutable config"
                } else {
                    "can't set protected config"
                };
                first_err = Some(failed(&typed_s, why));
                continue;
            }
            if new.iter().any(|(n, _)| n.param.name == e.param.name) {
                first_err = Some(failed(&typed_s, "duplicate parameter"));
                continue;
            }
            new.push((e, String::from_utf8_lossy(&pair[1]).into_owned()));
        }
        if let Some(e) = first_err {
            return e;
        }
        // parse every value before changing any
        let mut values = self.values();
        let mut parsed = Vec::with_capacity(new.len());
        for (e, v) in new {
            let name = e.param.name;
            let checked = if name == "notify-keyspace-events" {
                keyspace_events(&v)
            } else {
                parse_value(&e.param.kind, e.param.flags, &v)
            };
            let mut value = match checked {
                Ok(v) => v,
                Err(err) => return failed(e.name, &err),
            };
            if name == "hz" {
                // Redis clamps it (updateHZ)
                value = value
                    .parse::<i64>()
                    .map_or(value, |h| h.clamp(1, 500).to_string());
            }
            if let Some((_, why)) = FIXED.iter().find(|(n, _)| *n == name) {
                if values.get(name) != Some(&value) {
                    return failed(e.name, why);
                }
            }
            parsed.push((name, value));
        }
        for (name, value) in parsed {
            values.insert(name, value);
        }
        Reply::Ok
    }
}

/// Redis's `string2ll`: optional '-', digits, no leading zeros or '+'.
fn string2ll(s: &str) -> Option<i64> {
    super::arg::parse_i64(s.as_bytes())
}

/// Redis's `memtoull`: digits and an optional unit (b, k, kb, m, mb, g, gb).
fn memtoull(s: &str) -> Option<u64> {
    if s.starts_with('-') {
        return None;
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mul: u64 = match s[digits..].to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    // strtoull saturates; an empty number is 0
    let n = if digits == 0 {
        0
    } else {
        s[..digits].parse::<u64>().unwrap_or(u64::MAX)
    };
    Some(n.wrapping_mul(mul))
}

/// `notify-keyspace-events`: Redis's class letters, normalized as Redis
/// reports them (`A` for all of `g$lshzxetd`, which hides `n`, then `K`,
/// `E`, `m`).
fn keyspace_events(v: &str) -> Result<String, String> {
    const ALL: &str = "g$lshzxetd";
    let mut set = std::collections::BTreeSet::new();
    for c in v.chars() {
        match c {
            'A' => set.extend(ALL.chars()),
            'g' | '$' | 'l' | 's' | 'h' | 'z' | 'x' | 'e' | 'K' | 'E' | 't' | 'm' | 'd' | 'n' => {
                set.insert(c);
            }
            _ => return Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
        }
    }
    let mut out = String::new();
    if ALL.chars().all(|c| set.contains(&c)) {
        out.push('A');
    } else {
        out.extend("g$lshzxetdn".chars().filter(|c| set.contains(c)));
    }
    out.extend("KEm".chars().filter(|c| set.contains(c)));
    Ok(out)
}

/// A value as Redis stores and reports it, or Redis's error text.
fn parse_value(kind: &Kind, flags: u8, v: &str) -> Result<String, String> {
    match *kind {
        Kind::Bool => match v.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Enum(names) => {
            let words: Vec<&str> = if flags & F_MULTI != 0 {
                v.split_ascii_whitespace().collect()
            } else {
                vec![v]
            };
            let found: Option<Vec<&str>> = words
                .iter()
                .map(|w| names.iter().find(|n| n.eq_ignore_ascii_case(w)).copied())
                .collect();
            match found {
                Some(f) if !f.is_empty() => Ok(f.join(" ")),
                _ => Err(format!(
                    "argument(s) must be one of the following: {}",
                    names.join(", ")
                )),
            }
        }
        Kind::Text => Ok(v.to_string()),
        Kind::Num {
            min,
            max,
            unsigned,
            flags: nf,
        } => {
            let has = |f: Num| nf.contains(&f);
            let mut parsed: Option<i64> = None;
            if has(Num::Memory) {
                parsed = memtoull(v).map(|n| n as i64);
            }
            if parsed.is_none() && has(Num::Percent) && v.len() > 1 && v.ends_with('%') {
                parsed = string2ll(&v[..v.len() - 1]).filter(|n| *n >= 0).map(|n| -n);
            }
            if parsed.is_none() && has(Num::Octal) {
                let t = v.trim_start();
                let (neg, d) = match t.as_bytes().first() {
                    Some(b'-') => (true, &t[1..]),
                    Some(b'+') => (false, &t[1..]),
                    _ => (false, t),
                };
                if d.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    let n = if d.is_empty() {
                        Some(0)
                    } else {
                        i64::from_str_radix(d, 8).ok()
                    };
                    parsed = n.map(|n| if neg { -n } else { n });
                }
            }
            if parsed.is_none() && nf.is_empty() {
                parsed = string2ll(v);
            }
            let Some(ll) = parsed else {
                return Err(if has(Num::Memory) && has(Num::Percent) {
                    "argument must be a memory or percent value"
                } else if has(Num::Memory) {
                    "argument must be a memory value"
                } else if has(Num::Octal) {
                    "argument couldn't be parsed as an octal number"
                } else {
                    "argument couldn't be parsed into an integer"
                }
                .into());
            };
            if unsigned {
                let u = ll as u64 as i128;
                if u > max || u < min {
                    return Err(if has(Num::Octal) {
                        format!("argument must be between {min:o} and {max:o} inclusive")
                    } else {
                        format!("argument must be between {min} and {max} inclusive")
                    });
                }
            } else if has(Num::Percent) && ll < 0 {
                if (ll as i128) < min {
                    return Err(format!(
                        "percentage argument must be less or equal to {}",
                        -min
                    ));
                }
            } else if (ll as i128) > max || (ll as i128) < min {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(if has(Num::Percent) && ll < 0 {
                format!("{}%", -(ll as i128))
            } else if has(Num::Memory) || unsigned {
                (ll as u64).to_string()
            } else if has(Num::Octal) {
                format!("{ll:o}")
            } else {
                ll.to_string()
            })
        }
    }
}

const HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
];

/// CONFIG GET pattern [pattern …] | SET name value [name value …] |
/// RESETSTAT | REWRITE | HELP
pub enum Config {
    Get(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    ResetStat,
}

impl Command for Config {
    const NAME: &'static str = "config";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::NONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let sub = upper(&args[1]);
        let n = args.len();
        let arity = |name: &str| Err(Reply::arity(name));
        let c = match sub.as_slice() {
            b"GET" if n >= 3 => Config::Get(args.split_off(2)),
            b"GET" => return arity("config|get"),
            b"SET" if n >= 4 && n.is_multiple_of(2) => Config::Set(args.split_off(2)),
            b"SET" if n >= 4 => return Err(Reply::error(reply::SYNTAX)),
            b"SET" => return arity("config|set"),
            b"RESETSTAT" if n == 2 => Config::ResetStat,
            b"RESETSTAT" => return arity("config|resetstat"),
            b"REWRITE" if n == 2 => {
                return Err(Reply::error(
                    "ERR The server is running without a config file",
                ))
            }
            b"REWRITE" => return arity("config|rewrite"),
            b"HELP" if n == 2 => {
                return Ok(Action::Reply(Reply::Array(
                    HELP.iter().map(|l| Reply::Status(l.to_string())).collect(),
                )))
            }
            b"HELP" => return arity("config|help"),
            _ => return Err(reply::unknown_subcommand(&args[1], "config")),
        };
        Ok(Action::read(c))
    }
}

impl Read for Config {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match *self {
            Config::Get(patterns) => ctx.server.config().get_matching(&patterns),
            Config::Set(pairs) => ctx.server.config().set(&pairs),
            Config::ResetStat => {
                ctx.server.reset_stats();
                Reply::Ok
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(store: &ConfigStore, kv: &[&str]) -> Reply {
        let pairs: Vec<Vec<u8>> = kv.iter().map(|s| s.as_bytes().to_vec()).collect();
        store.set(&pairs)
    }

    #[test]
    fn values_are_checked_and_normalized_like_redis() {
        let s = ConfigStore::new(&[("port", "7000".into())]);
        assert_eq!(s.get("port").as_deref(), Some("7000"));
        assert_eq!(set(&s, &["maxmemory", "1mb"]), Reply::Ok);
        assert_eq!(s.get("maxmemory").as_deref(), Some("1048576"));
        assert_eq!(set(&s, &["hash-max-ziplist-entries", "7"]), Reply::Ok);
        assert_eq!(s.get("hash-max-listpack-entries").as_deref(), Some("7"));
        assert_eq!(set(&s, &["maxmemory-clients", "10%"]), Reply::Ok);
        assert_eq!(s.get("maxmemory-clients").as_deref(), Some("10%"));
        assert_eq!(set(&s, &["LOGLEVEL", "WARNING"]), Reply::Ok);
        assert_eq!(s.get("loglevel").as_deref(), Some("warning"));
        let err = |r: Reply| match r {
            Reply::Error(e) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(set(&s, &["hz", "x"])),
            "ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer"
        );
        assert_eq!(
            err(set(&s, &["list-max-ziplist-size", "9999999999"])),
            "ERR CONFIG SET failed (possibly related to argument 'list-max-ziplist-size') - argument must be between -2147483648 and 2147483647 inclusive"
        );
        assert_eq!(
            err(set(&s, &["nosuch", "1"])),
            "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
        );
        assert_eq!(
            err(set(&s, &["daemonize", "yes"])),
            "ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config"
        );
        // all or nothing
        assert!(set(&s, &["hz", "20", "activerehashing", "maybe"]).is_error());
        assert_eq!(s.get("hz").as_deref(), Some("10"));
        // the engine's facts stay
        assert!(set(&s, &["appendonly", "no"]).is_error());
        assert_eq!(set(&s, &["appendonly", "yes"]), Reply::Ok);
    }

    #[test]
    fn get_matches_names_aliases_and_patterns() {
        let s = ConfigStore::new(&[]);
        let Reply::Map(m) = s.get_matching(&[b"*max-*-entries".to_vec()]) else {
            panic!()
        };
        let names: Vec<_> = m.iter().map(|(k, _)| k.clone()).collect();
        assert!(names.contains(&Reply::text("hash-max-ziplist-entries")));
        assert!(names.contains(&Reply::text("hash-max-listpack-entries")));
        let Reply::Map(m) = s.get_matching(&[b"MAXMEMORY".to_vec(), b"maxmemory".to_vec()]) else {
            panic!()
        };
        assert_eq!(m.len(), 1, "an exact name is answered as first typed");
        assert_eq!(m[0].0, Reply::text("MAXMEMORY"));
        let Reply::Map(m) = s.get_matching(&[b"key-load-delay".to_vec(), b"key-load*".to_vec()])
        else {
            panic!()
        };
        assert_eq!(m.len(), 1, "hidden: exact name only");
    }
}
