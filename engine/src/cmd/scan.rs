//! SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
//!
//! Cursors belong to the connection that started the scan (a scan started
//! elsewhere answers `ERR invalid cursor`).

use super::arg::{parse_i64, upper};
use super::{
    glob_match, not_integer, syntax_error, Action, Command, ConnState, Flags, Read, ReadCtx,
};
use crate::reply::{self, Reply};

/// Most keys one SCAN call examines.
const MAX_SCAN_COUNT: usize = 100_000;

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

pub struct Scan {
    cursor: u64,
    pattern: Option<Vec<u8>>,
    count: usize,
    kind: Option<Vec<u8>>,
}

impl Command for Scan {
    const NAME: &'static str = "scan";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let cursor = std::str::from_utf8(&args[1])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| Reply::error(reply::INVALID_CURSOR))?;
        let mut scan = Scan {
            cursor,
            pattern: None,
            count: 10,
            kind: None,
        };
        let mut i = 2;
        while i < args.len() {
            let Some(v) = args.get(i + 1) else {
                return Err(syntax_error());
            };
            match upper(&args[i]).as_slice() {
                b"MATCH" => scan.pattern = Some(v.clone()),
                b"COUNT" => match parse_i64(v) {
                    Some(n) if n >= 1 => scan.count = (n as usize).min(MAX_SCAN_COUNT),
                    Some(_) => return Err(syntax_error()),
                    None => return Err(not_integer()),
                },
                b"TYPE" => scan.kind = Some(v.to_ascii_lowercase()),
                _ => return Err(syntax_error()),
            }
            i += 2;
        }
        Ok(Action::read(scan))
    }
}

impl Read for Scan {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        let mut state = if self.cursor == 0 {
            let keys: Vec<Vec<u8>> = ctx
                .db
                .iter_after(None, ctx.now_ms)
                .map(|(k, _)| k.clone())
                .collect();
            ScanState::new(keys)
        } else {
            match ctx.conn.take_scan(self.cursor) {
                Some(s) => s,
                None => {
                    return Reply::error(
                        "ERR invalid cursor (SCAN cursors belong to the connection that started the scan)",
                    )
                }
            }
        };
        let mut found = Vec::new();
        for k in state.next_keys(self.count) {
            let Some(e) = ctx.db.entry(k, ctx.now_ms) else {
                continue; // deleted since the scan started
            };
            let type_ok = self
                .kind
                .as_ref()
                .is_none_or(|t| t == e.value.type_name().as_bytes());
            if type_ok && self.pattern.as_ref().is_none_or(|p| glob_match(p, k)) {
                found.push(Reply::Bulk(k.clone()));
            }
        }
        let next = if state.is_done() {
            0
        } else {
            ctx.conn.save_scan(state)
        };
        Reply::Array(vec![
            Reply::Bulk(next.to_string().into_bytes()),
            Reply::Array(found),
        ])
    }
}
