//! RESP codec: requests (multibulk or inline) in, replies out in RESP2 or
//! RESP3 ([`Protocol`], chosen per connection by HELLO).
//!
//! ```text
//!  request  *<argc>\r\n  argc × ( $<len>\r\n <len bytes> \r\n )
//!           or an inline line: words separated by spaces, ending in \n
//!  replies  +OK\r\n   -ERR msg\r\n   :42\r\n   $3\r\nfoo\r\n   $-1\r\n   *2\r\n…
//!  RESP3    _\r\n (null)   %1\r\n… (map)   ~2\r\n… (set)   ,1.5\r\n (double)
//!           #t\r\n   (123\r\n (big number)   =7\r\ntxt:abc\r\n (verbatim)   >2\r\n… (push)
//! ```
//!
//! Every count and length a client sends is bounded before anything is
//! allocated ([`MAX_ARGS`], [`MAX_BULK_BYTES`], [`MAX_COMMAND_BYTES`],
//! [`MAX_INLINE_BYTES`]); a violation is a protocol error, answered with
//! `-ERR Protocol error: …` before the connection is closed.

use crate::reply::Reply;

/// Most arguments in one command.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Largest single argument.
pub const MAX_BULK_BYTES: usize = 16 * 1024 * 1024;
/// Largest command (sum of its argument lengths). Its log record fits
/// [`crate::record::MAX_RECORD_BYTES`].
pub const MAX_COMMAND_BYTES: usize = 64 * 1024 * 1024;
/// Longest inline command line.
pub const MAX_INLINE_BYTES: usize = 64 * 1024;
/// Longest `*<n>` / `$<n>` header line.
const MAX_HEADER_LINE: usize = 32;

/// A malformed or oversized request; the connection is closed after the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

/// One parsed command: its arguments and how many bytes it took.
pub type Parsed = (Vec<Vec<u8>>, usize);

fn find_crlf(buf: &[u8], from: usize, max: usize) -> Result<Option<usize>, ()> {
    let end = buf.len().min(from + max + 2);
    match buf[from..end].windows(2).position(|w| w == b"\r\n") {
        Some(p) => Ok(Some(from + p)),
        None if buf.len() >= from + max + 2 => Err(()),
        None => Ok(None),
    }
}

fn parse_len(line: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(line).ok()?;
    if s.is_empty() || s.starts_with('+') {
        return None;
    }
    s.parse().ok()
}

/// Where parsing of a multibulk command that is not complete yet stopped,
/// so that the next call resumes there instead of walking every argument
/// header again (a client sending a command of a million small arguments
/// slowly would otherwise cost quadratic CPU). Valid while the buffer only
/// grows at its end; it is reset once a command is parsed or refused.
#[derive(Debug, Default)]
pub struct Partial {
    /// Arguments announced by the `*<argc>` line (0: not inside a command).
    argc: usize,
    /// Offset of the next argument's `$` header.
    pos: usize,
    /// Sum of the argument lengths so far.
    total: usize,
    /// (offset, length) of each complete argument.
    spans: Vec<(usize, usize)>,
}

/// Parses the first command of `buf`. `Ok(None)`: more bytes are needed.
/// An empty multibulk (`*0`) yields an empty argument list.
pub fn parse_command(buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
    parse_command_resumable(buf, &mut Partial::default())
}

/// [`parse_command`] resuming from (and recording its progress in)
/// `partial`; `buf` must be the buffer of the previous call with bytes
/// appended, and must start with the same command.
pub fn parse_command_resumable(
    buf: &[u8],
    partial: &mut Partial,
) -> Result<Option<Parsed>, ProtocolError> {
    let r = parse_multibulk(buf, partial);
    if !matches!(r, Ok(None)) {
        partial.reset();
    }
    r
}

/// Argument spans a [`Partial`] keeps allocated between commands (a
/// connection parses every command into the same `Vec`).
const KEEP_SPANS: usize = 1024;

impl Partial {
    /// Back to "not inside a command", keeping a small span buffer.
    fn reset(&mut self) {
        self.argc = 0;
        self.pos = 0;
        self.total = 0;
        if self.spans.capacity() > KEEP_SPANS {
            self.spans = Vec::new();
        } else {
            self.spans.clear();
        }
    }
}

fn parse_multibulk(buf: &[u8], st: &mut Partial) -> Result<Option<Parsed>, ProtocolError> {
    if st.argc == 0 {
        if buf.is_empty() {
            return Ok(None);
        }
        if buf[0] != b'*' {
            return parse_inline(buf);
        }
        let Some(eol) = find_crlf(buf, 1, MAX_HEADER_LINE)
            .map_err(|_| ProtocolError("invalid multibulk length".into()))?
        else {
            return Ok(None);
        };
        let argc = match parse_len(&buf[1..eol]) {
            Some(n) if n <= 0 => return Ok(Some((Vec::new(), eol + 2))),
            Some(n) if n as u64 <= MAX_ARGS as u64 => n as usize,
            _ => return Err(ProtocolError("invalid multibulk length".into())),
        };
        st.argc = argc;
        st.pos = eol + 2;
        st.total = 0;
        // (empty: `reset` ran after the last command)
        st.spans.reserve(argc.min(KEEP_SPANS));
    }
    // Check that the whole command is there, without copying.
    while st.spans.len() < st.argc {
        let pos = st.pos;
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError(format!(
                "expected '$', got '{}'",
                (buf[pos] as char).escape_default()
            )));
        }
        let Some(eol) = find_crlf(buf, pos + 1, MAX_HEADER_LINE)
            .map_err(|_| ProtocolError("invalid bulk length".into()))?
        else {
            return Ok(None);
        };
        let len = match parse_len(&buf[pos + 1..eol]) {
            Some(n) if n >= 0 && n as u64 <= MAX_BULK_BYTES as u64 => n as usize,
            _ => return Err(ProtocolError("invalid bulk length".into())),
        };
        let total = st.total + len;
        if total > MAX_COMMAND_BYTES {
            return Err(ProtocolError(format!(
                "command larger than {MAX_COMMAND_BYTES} bytes"
            )));
        }
        let start = eol + 2;
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        // Redis skips the two bytes after a bulk string without looking at
        // them; so does the engine, to read what Redis reads.
        st.spans.push((start, len));
        st.total = total;
        st.pos = start + len + 2;
    }
    let args = st
        .spans
        .iter()
        .map(|&(s, l)| buf[s..s + l].to_vec())
        .collect();
    Ok(Some((args, st.pos)))
}

fn parse_inline(buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
    let limit = buf.len().min(MAX_INLINE_BYTES + 1);
    // Redis looks for the newline with strchr: a NUL before it hides it
    let end = buf[..limit].iter().position(|&b| b == b'\n' || b == 0);
    let Some(nl) = end.filter(|&i| buf[i] == b'\n') else {
        if buf.len() > MAX_INLINE_BYTES {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let args =
        split_args(line).ok_or_else(|| ProtocolError("unbalanced quotes in request".into()))?;
    Ok(Some((args, nl + 1)))
}

/// Redis's `sdssplitargs`: words separated by blanks; `"…"` with `\xHH`,
/// `\n`, `\r`, `\t`, `\b`, `\a` and `\<any>` escapes; `'…'` with `\'`.
/// A closing quote must be followed by a blank or the end; an unterminated
/// quote is `None`. The line ends at a NUL byte, as a C string does.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let line = line
        .iter()
        .position(|&b| b == 0)
        .map_or(line, |n| &line[..n]);
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    // C's isspace
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Some(args);
        }
        let (mut inq, mut insq) = (false, false);
        let mut cur = Vec::new();
        loop {
            let c = at(p);
            if inq {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && hex(at(p + 2)).is_some()
                    && hex(at(p + 3)).is_some()
                {
                    cur.push(hex(at(p + 2))? * 16 + hex(at(p + 3))?);
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    cur.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        if c != 0 {
                            p += 1;
                        }
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    _ => cur.push(c),
                }
            }
            p += 1;
        }
        args.push(cur);
    }
}

/// Appends the decimal digits of `n` without allocating.
fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// The protocol a connection speaks (`HELLO 2|3`); replies are encoded
/// for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    /// The number HELLO reports.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// Formats a double as C's `printf("%.17g")` does (what Redis sends for
/// doubles), `inf`/`-inf` for infinities.
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.into();
    }
    const P: i32 = 17;
    let sci = format!("{:.*e}", (P - 1) as usize, d);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    fn trim(s: &str) -> &str {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        }
    }
    if !(-4..P).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", trim(mantissa), sign, exp.abs())
    } else {
        trim(&format!("{:.*}", (P - 1 - exp) as usize, d)).to_string()
    }
}

fn push_line(out: &mut Vec<u8>, kind: u8, n: i64) {
    out.push(kind);
    push_int(out, n);
    out.extend_from_slice(b"\r\n");
}

fn push_bulk(out: &mut Vec<u8>, b: &[u8]) {
    push_line(out, b'$', b.len() as i64);
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Appends the RESP2 encoding of `reply` to `out`.
pub fn encode_reply(reply: &Reply, out: &mut Vec<u8>) {
    encode(reply, Protocol::Resp2, out)
}

/// Appends the encoding of `reply` for `proto` to `out`. RESP2 gets the
/// RESP3 types as Redis 7 downgrades them: a map as a flat array, a set and
/// a push as an array, a double, big number and verbatim string as a bulk
/// string, a boolean as `:1`/`:0`, the nulls as `$-1` / `*-1`.
pub fn encode(reply: &Reply, proto: Protocol, out: &mut Vec<u8>) {
    let v3 = proto == Protocol::Resp3;
    match reply {
        Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
        Reply::Nil if v3 => out.extend_from_slice(b"_\r\n"),
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::NilArray if v3 => out.extend_from_slice(b"_\r\n"),
        Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Reply::Int(n) => push_line(out, b':', *n),
        Reply::Bulk(b) => push_bulk(out, b),
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            let kind = match reply {
                Reply::Set(_) if v3 => b'~',
                Reply::Push(_) if v3 => b'>',
                _ => b'*',
            };
            push_line(out, kind, items.len() as i64);
            for i in items {
                encode(i, proto, out);
            }
        }
        Reply::Map(pairs) => {
            if v3 {
                push_line(out, b'%', pairs.len() as i64);
            } else {
                push_line(out, b'*', 2 * pairs.len() as i64);
            }
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Reply::Pairs(pairs) => {
            if v3 {
                push_line(out, b'*', pairs.len() as i64);
            } else {
                push_line(out, b'*', 2 * pairs.len() as i64);
            }
            for (k, v) in pairs {
                if v3 {
                    push_line(out, b'*', 2);
                }
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Reply::Double(d) => {
            let s = format_double(*d);
            if v3 {
                out.push(b',');
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            } else {
                push_bulk(out, s.as_bytes());
            }
        }
        Reply::Bool(b) if v3 => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Reply::Bool(b) => push_line(out, b':', *b as i64),
        Reply::BigNumber(n) if v3 => {
            out.push(b'(');
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::BigNumber(n) => push_bulk(out, n.as_bytes()),
        Reply::Verbatim(format, text) if v3 => {
            push_line(out, b'=', text.len() as i64 + 4);
            let f = format.as_bytes();
            for i in 0..3 {
                out.push(f.get(i).copied().unwrap_or(b' '));
            }
            out.push(b':');
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Verbatim(_, text) => push_bulk(out, text),
        Reply::Status(s) => {
            out.push(b'+');
            out.extend(s.bytes().filter(|&b| b != b'\r' && b != b'\n'));
            out.extend_from_slice(b"\r\n");
        }
        Reply::Error(s) => push_error(out, s.as_bytes()),
        Reply::ErrorBytes(s) => push_error(out, s),
    }
}

/// `-<msg>\r\n`, CR and LF inside mapped to spaces as Redis does.
fn push_error(out: &mut Vec<u8>, msg: &[u8]) {
    out.push(b'-');
    out.extend(
        msg.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_and_inline_and_partial() {
        let req = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
        let (a, n) = parse_command(req).unwrap().unwrap();
        assert_eq!(a, args(&["GET", "k"]));
        let (b, m) = parse_command(&req[n..]).unwrap().unwrap();
        assert_eq!(b, args(&["PING"]));
        assert_eq!(n + m, req.len());
        for cut in 0..n {
            assert_eq!(parse_command(&req[..cut]).unwrap(), None, "cut {cut}");
        }
        assert_eq!(
            parse_command(b"set  a b\r\n").unwrap().unwrap(),
            (args(&["set", "a", "b"]), 10)
        );
        assert_eq!(parse_command(b"*0\r\n").unwrap().unwrap(), (vec![], 4));
        assert_eq!(
            parse_command(b"*1\r\n$0\r\n\r\n").unwrap().unwrap(),
            (vec![vec![]], 10)
        );
    }

    /// The span buffer is reused from command to command, and dropped after
    /// a command with more arguments than [`KEEP_SPANS`].
    #[test]
    fn the_span_buffer_is_kept_between_commands_but_not_a_huge_one() {
        let mut p = Partial::default();
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        assert_eq!(
            parse_command_resumable(set, &mut p).unwrap().unwrap().0,
            args(&["SET", "k", "v"])
        );
        let kept = p.spans.capacity();
        assert!(kept >= 3);
        assert_eq!(
            parse_command_resumable(set, &mut p).unwrap().unwrap().1,
            set.len()
        );
        assert_eq!(p.spans.capacity(), kept);
        let n = KEEP_SPANS * 3;
        let mut big = format!("*{n}\r\n").into_bytes();
        for _ in 0..n {
            big.extend_from_slice(b"$1\r\nx\r\n");
        }
        assert_eq!(
            parse_command_resumable(&big, &mut p)
                .unwrap()
                .unwrap()
                .0
                .len(),
            n
        );
        assert_eq!(p.spans.capacity(), 0);
        assert_eq!(
            parse_command_resumable(set, &mut p).unwrap().unwrap().0,
            args(&["SET", "k", "v"])
        );
    }

    /// Parsing a command that arrives in pieces resumes where it stopped:
    /// the argument headers already checked are not read again (a bytes
    /// flip in them after the first pass goes unnoticed), and the result is
    /// the one-shot parse.
    #[test]
    fn a_command_arriving_in_pieces_is_parsed_where_it_stopped() {
        let mut req = b"*1000\r\n".to_vec();
        for i in 0..1000 {
            let a = format!("a{i}");
            req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        req.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let whole = parse_command(&req).unwrap().unwrap();
        let mut p = Partial::default();
        let mut got = None;
        for end in (0..=req.len()).step_by(7) {
            if let Some(r) = parse_command_resumable(&req[..end], &mut p).unwrap() {
                got = Some(r);
                break;
            }
        }
        let got = match got {
            Some(g) => g,
            None => parse_command_resumable(&req, &mut p).unwrap().unwrap(),
        };
        assert_eq!(got, whole);
        // the state was reset: the next command parses from its start
        let (next, _) = parse_command_resumable(&req[whole.1..], &mut p)
            .unwrap()
            .unwrap();
        assert_eq!(next, args(&["PING"]));

        // resumption does not walk the first headers again
        let mut p = Partial::default();
        let half = req.len() / 2;
        assert_eq!(parse_command_resumable(&req[..half], &mut p).unwrap(), None);
        let mut changed = req.clone();
        changed[8] = b'#'; // the first argument's length
        assert!(parse_command(&changed).is_err());
        let (a, _) = parse_command_resumable(&changed, &mut p).unwrap().unwrap();
        assert_eq!(a.len(), 1000);
        // a protocol error resets the state too
        let mut p = Partial::default();
        assert_eq!(parse_command_resumable(&req[..half], &mut p).unwrap(), None);
        let mut bad = req[..half].to_vec();
        bad.extend_from_slice(b"!garbage\r\n");
        let _ = parse_command_resumable(&bad, &mut p);
        assert_eq!(
            parse_command_resumable(b"PING\r\n", &mut p).unwrap(),
            Some((args(&["PING"]), 6))
        );
    }

    #[test]
    fn the_two_bytes_after_a_bulk_string_are_skipped_as_redis_does() {
        assert_eq!(
            parse_command(b"*1\r\n$4\r\nPINGxx*1").unwrap(),
            Some((args(&["PING"]), 14))
        );
        assert_eq!(
            parse_command(b"*1\r\n$3\r\nabcd\r\n").unwrap(),
            Some((args(&["abc"]), 13))
        );
    }

    #[test]
    fn malformed_and_oversized_input_is_a_protocol_error() {
        for bad in [
            &b"*x\r\n"[..],
            b"*1\r\n:1\r\n",
            b"*1\r\n$-5\r\n",
            b"*99999999999\r\n",
            b"*1\r\n$99999999999\r\n",
            b"*1\r\n$+3\r\nabc\r\n",
            b"*1234567890123456789012345678901234567890",
        ] {
            assert!(
                parse_command(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = format!("*1\r\n${}\r\n", MAX_BULK_BYTES + 1);
        assert!(parse_command(big.as_bytes()).is_err());
        let mut many = String::from("*5\r\n");
        for _ in 0..5 {
            many.push_str(&format!("${MAX_BULK_BYTES}\r\n"));
            many.push_str(&"x".repeat(MAX_BULK_BYTES));
            many.push_str("\r\n");
        }
        assert!(parse_command(many.as_bytes()).is_err(), "total bound");
        assert!(parse_command(&vec![b'a'; MAX_INLINE_BYTES + 2]).is_err());
    }

    /// Random bytes (from an alphabet that often forms near-valid RESP) and
    /// damaged valid requests never panic; valid requests round-trip and a
    /// cut one is incomplete.
    #[test]
    fn fuzzed_input_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"*$\r\n0123456789-+:abcGETS ";
        for _ in 0..20_000 {
            let len = (rnd() % 64) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| alphabet[(rnd() % alphabet.len() as u64) as usize])
                .collect();
            if let Ok(Some((_, used))) = parse_command(&buf) {
                assert!(used <= buf.len());
            }
        }
        for _ in 0..2_000 {
            let argc = 1 + rnd() % 5;
            let args: Vec<Vec<u8>> = (0..argc)
                .map(|_| (0..rnd() % 20).map(|_| rnd() as u8).collect())
                .collect();
            let mut req = format!("*{argc}\r\n").into_bytes();
            for a in &args {
                req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                req.extend_from_slice(a);
                req.extend_from_slice(b"\r\n");
            }
            assert_eq!(
                parse_command(&req).unwrap(),
                Some((args.clone(), req.len()))
            );
            let cut = (rnd() as usize) % req.len();
            assert_eq!(parse_command(&req[..cut]).unwrap(), None);
            let mut bad = req.clone();
            let at = (rnd() as usize) % bad.len();
            bad[at] = rnd() as u8;
            // RESP has no checksum: a flipped byte may still parse (as
            // something else); it must never panic or overrun.
            if let Ok(Some((_, used))) = parse_command(&bad) {
                assert!(used <= bad.len());
            }
        }
    }

    #[test]
    fn replies_encode() {
        let mut out = Vec::new();
        encode_reply(
            &Reply::Array(vec![
                Reply::Int(i64::MIN),
                Reply::Int(0),
                Reply::Ok,
                Reply::Nil,
                Reply::Int(-3),
                Reply::Bulk(b"hi".to_vec()),
                Reply::Status("PONG".into()),
                Reply::Error("ERR bad\r\nthing".into()),
            ]),
            &mut out,
        );
        assert_eq!(
            out,
            b"*8\r\n:-9223372036854775808\r\n:0\r\n+OK\r\n$-1\r\n:-3\r\n$2\r\nhi\r\n+PONG\r\n-ERR bad  thing\r\n".to_vec()
        );
    }

    #[test]
    fn doubles_format_like_printf_17g() {
        for (d, want) in [
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (3.0, "3"),
            (-2.25, "-2.25"),
            (1e17, "1e+17"),
            (1e16, "10000000000000000"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (1e-300, "1e-300"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (0.0, "0"),
            (-0.0, "-0"),
        ] {
            assert_eq!(format_double(d), want, "{d:e}");
        }
    }

    #[test]
    fn resp3_types_and_their_resp2_downgrade() {
        let reply = Reply::Array(vec![
            Reply::Map(vec![(Reply::text("a"), Reply::Int(1))]),
            Reply::Set(vec![Reply::text("x")]),
            Reply::Double(1.5),
            Reply::Double(f64::NEG_INFINITY),
            Reply::Bool(true),
            Reply::Bool(false),
            Reply::BigNumber("12345678901234567890".into()),
            Reply::Verbatim("txt", b"hi".to_vec()),
            Reply::Push(vec![Reply::text("m")]),
            Reply::Nil,
            Reply::NilArray,
        ]);
        let mut v3 = Vec::new();
        encode(&reply, Protocol::Resp3, &mut v3);
        assert_eq!(
            String::from_utf8(v3).unwrap(),
            "*11\r\n%1\r\n$1\r\na\r\n:1\r\n~1\r\n$1\r\nx\r\n,1.5\r\n,-inf\r\n#t\r\n#f\r\n\
             (12345678901234567890\r\n=6\r\ntxt:hi\r\n>1\r\n$1\r\nm\r\n_\r\n_\r\n"
        );
        let mut v2 = Vec::new();
        encode(&reply, Protocol::Resp2, &mut v2);
        assert_eq!(
            String::from_utf8(v2).unwrap(),
            "*11\r\n*2\r\n$1\r\na\r\n:1\r\n*1\r\n$1\r\nx\r\n$3\r\n1.5\r\n$4\r\n-inf\r\n:1\r\n:0\r\n\
             $20\r\n12345678901234567890\r\n$2\r\nhi\r\n*1\r\n$1\r\nm\r\n$-1\r\n*-1\r\n"
        );
        let mut e = Vec::new();
        encode(
            &Reply::error_bytes(b"ERR x\xff\ny".to_vec()),
            Protocol::Resp3,
            &mut e,
        );
        assert_eq!(e, b"-ERR x\xff y\r\n".to_vec());
    }

    #[test]
    fn inline_quoting_like_sdssplitargs() {
        let ok = |line: &str, want: &[&[u8]]| {
            let got = split_args(line.as_bytes()).unwrap();
            let want: Vec<Vec<u8>> = want.iter().map(|w| w.to_vec()).collect();
            assert_eq!(got, want, "{line:?}");
        };
        ok("set a b", &[b"set", b"a", b"b"]);
        ok("  set \"a b\"  'c d' ", &[b"set", b"a b", b"c d"]);
        ok("x \"\\x41\\x4a\\n\\q\\\"\"", &[b"x", b"AJ\nq\""]);
        ok("x '\\'' '\\x41'", &[b"x", b"'", b"\\x41"]);
        ok("x \"\"", &[b"x", b""]);
        ok("a\x0bb", &[b"a\x0bb"]);
        ok("ab\"c d\"", &[b"abc d"]);
        ok("a \0 b", &[b"a"]);
        for bad in [
            "set \"\"\"test-key\"\"\" v",
            "a \"b",
            "a 'b",
            "a \"b\"c",
            "a 'b'c",
        ] {
            assert_eq!(split_args(bad.as_bytes()), None, "{bad:?}");
        }
        assert!(parse_command(b"set \"a\r\n").is_err());
        assert_eq!(parse_command(b"ping\0\n").unwrap(), None);
    }
}
