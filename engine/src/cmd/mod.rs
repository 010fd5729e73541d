//! Commands: a parsed request becomes an [`Action`] by pure functions (one
//! file per command family); the server runs the action.
//!
//! - [`Action::Write`]: a state-changing [`Command`], logged before it is
//!   applied. Validation (arity, syntax, integers, expiry) happens here, so a
//!   command that fails it is never logged.
//! - [`Action::Read`]: served from the durable state only.
//! - [`Action::Reply`]: answered without the state (PING, errors).

mod hashes;
mod keys;
mod server;
mod strings;

use std::collections::{BTreeMap, VecDeque};

use crate::db::{Command, Db, Reply};

/// Context a read runs in.
pub struct ReadCtx<'a> {
    pub db: &'a Db,
    pub now_ms: u64,
    pub conn: &'a mut ConnState,
    pub server: &'a dyn ServerInfo,
}

/// A read, run against the durable state.
pub type ReadFn = Box<dyn FnOnce(&mut ReadCtx<'_>) -> Reply + Send>;

/// What to do with a request.
pub enum Action {
    Reply(Reply),
    Write(Command),
    Read(ReadFn),
    /// Reply OK and close the connection.
    Quit,
}

/// What INFO and CLIENT need from the server.
pub trait ServerInfo {
    /// INFO text for `section` (lower case, "" or "all"/"everything" = all).
    fn info(&self, section: &str, db: &Db, now_ms: u64) -> String;
}

/// Per-connection state: SCAN cursors, client name, id.
#[derive(Debug, Default)]
pub struct ConnState {
    pub id: u64,
    pub name: Option<Vec<u8>>,
    scan_cursors: BTreeMap<u64, ScanState>,
    scan_order: VecDeque<u64>,
    next_cursor: u64,
}

/// SCAN cursors kept per connection (oldest dropped first).
const MAX_SCAN_CURSORS: usize = 8;

/// Where a SCAN is: the keys alive when it started (sorted), and how many
/// were handed out. A key present for the whole scan is returned exactly
/// once; a key deleted meanwhile is skipped.
#[derive(Debug)]
pub struct ScanState {
    keys: Vec<Vec<u8>>,
    pos: usize,
}

impl ScanState {
    fn new(keys: Vec<Vec<u8>>) -> ScanState {
        ScanState { keys, pos: 0 }
    }

    /// The next (up to) `count` keys.
    fn next_keys(&mut self, count: usize) -> &[Vec<u8>] {
        let start = self.pos;
        self.pos = (self.pos + count).min(self.keys.len());
        &self.keys[start..self.pos]
    }

    fn is_done(&self) -> bool {
        self.pos >= self.keys.len()
    }
}

impl ConnState {
    pub fn new(id: u64) -> ConnState {
        ConnState {
            id,
            ..Default::default()
        }
    }

    /// Stores where a SCAN stopped; returns the cursor to hand out.
    fn save_scan(&mut self, state: ScanState) -> u64 {
        // never 0, which means "start" and "done"
        self.next_cursor += 1;
        let c = self.next_cursor;
        self.scan_cursors.insert(c, state);
        self.scan_order.push_back(c);
        while self.scan_order.len() > MAX_SCAN_CURSORS {
            if let Some(old) = self.scan_order.pop_front() {
                self.scan_cursors.remove(&old);
            }
        }
        c
    }

    fn take_scan(&mut self, c: u64) -> Option<ScanState> {
        self.scan_order.retain(|&x| x != c);
        self.scan_cursors.remove(&c)
    }
}

pub(crate) fn err(msg: impl Into<String>) -> Action {
    Action::Reply(Reply::Error(msg.into()))
}

pub(crate) fn arity_error(name: &str) -> Action {
    err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

pub(crate) fn syntax_error() -> Action {
    err("ERR syntax error")
}

pub(crate) fn not_integer() -> Action {
    err(crate::db::NOT_INTEGER)
}

/// Parses a request's arguments into an action. Returns the lower-case
/// command name for metrics ("unknown" for unknown commands, so the label
/// set stays bounded).
pub fn parse(args: Vec<Vec<u8>>, now_ms: u64) -> (&'static str, Action) {
    let Some(first) = args.first() else {
        return ("unknown", err("ERR empty command"));
    };
    let lower = first.to_ascii_lowercase();
    let Some(&(name, arity, parser)) = TABLE.iter().find(|(n, _, _)| n.as_bytes() == lower) else {
        let mut msg = format!(
            "ERR unknown command '{}', with args beginning with: ",
            String::from_utf8_lossy(&first[..first.len().min(128)])
        );
        for a in args.iter().skip(1).take(8) {
            msg.push_str(&format!(
                "'{}' ",
                String::from_utf8_lossy(&a[..a.len().min(128)])
            ));
        }
        return ("unknown", err(msg));
    };
    let n = args.len() as i64;
    if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
        return (name, arity_error(name));
    }
    (name, parser(args, now_ms))
}

type Parser = fn(Vec<Vec<u8>>, u64) -> Action;

/// name, Redis arity (n exact, -n at least n), parser.
const TABLE: &[(&str, i64, Parser)] = &[
    ("ping", -1, server::ping),
    ("echo", 2, server::echo),
    ("select", 2, server::select),
    ("quit", -1, server::quit),
    ("info", -1, server::info),
    ("dbsize", 1, server::dbsize),
    ("flushall", -1, server::flushall),
    ("command", -1, server::command),
    ("client", -2, server::client),
    ("config", -2, server::config),
    ("get", 2, strings::get),
    ("set", -3, strings::set),
    ("getdel", 2, strings::getdel),
    ("mget", -2, strings::mget),
    ("mset", -3, strings::mset),
    ("incr", 2, strings::incr),
    ("incrby", 3, strings::incrby),
    ("decr", 2, strings::decr),
    ("decrby", 3, strings::decrby),
    ("append", 3, strings::append),
    ("strlen", 2, strings::strlen),
    ("del", -2, keys::del),
    ("exists", -2, keys::exists),
    ("expire", -3, keys::expire),
    ("pexpire", -3, keys::pexpire),
    ("ttl", 2, keys::ttl),
    ("pttl", 2, keys::pttl),
    ("persist", 2, keys::persist),
    ("keys", 2, keys::keys),
    ("scan", -2, keys::scan),
    ("hset", -4, hashes::hset),
    ("hget", 3, hashes::hget),
    ("hdel", -3, hashes::hdel),
    ("hgetall", 2, hashes::hgetall),
    ("hlen", 2, hashes::hlen),
    ("hincrby", 4, hashes::hincrby),
];

/// Names of every supported command (COMMAND COUNT, INFO).
pub fn command_names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(n, _, _)| *n)
}

/// Redis glob matching: `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    // Two-pointer matcher with backtracking to the last '*'.
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            star = Some((p, i));
            continue;
        }
        if p < pattern.len() {
            if let Some(next) = match_one(pattern, p, s[i]) {
                p = next;
                i += 1;
                continue;
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches one pattern token at `p` against `c`; returns the next token.
fn match_one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        b'[' => {
            let mut j = p + 1;
            let negate = j < pattern.len() && pattern[j] == b'^';
            if negate {
                j += 1;
            }
            let mut matched = false;
            while j < pattern.len() && pattern[j] != b']' {
                if pattern[j] == b'\\' && j + 1 < pattern.len() {
                    matched |= pattern[j + 1] == c;
                    j += 2;
                } else if j + 2 < pattern.len() && pattern[j + 1] == b'-' && pattern[j + 2] != b']'
                {
                    let (a, b) = (
                        pattern[j].min(pattern[j + 2]),
                        pattern[j].max(pattern[j + 2]),
                    );
                    matched |= (a..=b).contains(&c);
                    j += 3;
                } else {
                    matched |= pattern[j] == c;
                    j += 1;
                }
            }
            // an unterminated class matches like Redis: up to the end
            let next = (j + 1).min(pattern.len());
            (matched != negate).then_some(next)
        }
        lit => (lit == c).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn reply_of(action: Action) -> Reply {
        match action {
            Action::Reply(r) => r,
            _ => panic!("expected an immediate reply"),
        }
    }

    #[test]
    fn arity_unknown_and_case() {
        let (name, act) = parse(a(&["get"]), 0);
        assert_eq!(name, "get");
        assert_eq!(
            reply_of(act),
            Reply::Error("ERR wrong number of arguments for 'get' command".into())
        );
        let (name, act) = parse(a(&["nosuch", "x"]), 0);
        assert_eq!(name, "unknown");
        assert!(
            matches!(reply_of(act), Reply::Error(e) if e.starts_with("ERR unknown command 'nosuch'"))
        );
        assert!(matches!(parse(a(&["GeT", "k"]), 0).1, Action::Read(_)));
        assert!(matches!(
            parse(a(&["SET", "k", "v"]), 0).1,
            Action::Write(_)
        ));
        assert!(matches!(
            parse(a(&["ping"]), 0).1,
            Action::Reply(Reply::Status(_))
        ));
        assert!(matches!(parse(vec![], 0).1, Action::Reply(Reply::Error(_))));
    }

    #[test]
    fn validation_failures_are_replies_not_writes() {
        for bad in [
            &["set", "k", "v", "EX", "0"][..],
            &["set", "k", "v", "EX", "abc"],
            &["set", "k", "v", "NX", "XX"],
            &["set", "k", "v", "EX", "1", "PX", "1"],
            &["set", "k", "v", "EX", "9223372036854775807"],
            &["set", "k", "v", "bogus"],
            &["incrby", "k", "1.5"],
            &["decrby", "k", "-9223372036854775808"],
            &["mset", "a", "1", "b"],
            &["hset", "h", "f"],
            &["hincrby", "h", "f", "x"],
            &["expire", "k", "x"],
            &["expire", "k", "9223372036854775807"],
            &["select", "1"],
        ] {
            let (_, act) = parse(a(bad), 1_000);
            assert!(matches!(act, Action::Reply(Reply::Error(_))), "{bad:?}");
        }
    }

    #[test]
    fn expiry_is_logged_as_absolute_time() {
        let (_, act) = parse(a(&["set", "k", "v", "ex", "10"]), 5_000);
        assert!(matches!(
            act,
            Action::Write(Command::Set {
                expire_at_ms: Some(15_000),
                ..
            })
        ));
        let (_, act) = parse(a(&["pexpire", "k", "250"]), 5_000);
        assert!(matches!(
            act,
            Action::Write(Command::PExpireAt { at_ms: 5_250, .. })
        ));
        let (_, act) = parse(a(&["expire", "k", "-1"]), 5_000);
        assert!(matches!(
            act,
            Action::Write(Command::PExpireAt { at_ms: 4_000, .. })
        ));
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"k?y*", b"key:1"));
        assert!(!glob_match(b"k?y", b"key:1"));
        assert!(glob_match(b"h[ae]llo", b"hello"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-f]llo", b"hello"));
        assert!(glob_match(b"a\\*b", b"a*b"));
        assert!(!glob_match(b"a\\*b", b"axb"));
        assert!(glob_match(b"*a*a*b", b"xaaaaaab"));
        assert!(!glob_match(b"*a*a*b", b"xaaaaaa"));
        assert!(glob_match(b"", b""));
    }
}
