//! RESP2 codec: requests (multibulk or inline) in, replies out.
//!
//! ```text
//!  request  *<argc>\r\n  argc × ( $<len>\r\n <len bytes> \r\n )
//!           or an inline line: words separated by spaces, ending in \n
//!  replies  +OK\r\n   -ERR msg\r\n   :42\r\n   $3\r\nfoo\r\n   $-1\r\n   *2\r\n…
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
        *partial = Partial::default();
    }
    r
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
        *st = Partial {
            argc,
            pos: eol + 2,
            total: 0,
            spans: Vec::with_capacity(argc.min(1024)),
        };
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
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return Err(ProtocolError("bulk string not terminated by CRLF".into()));
        }
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
    let Some(nl) = buf[..limit].iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE_BYTES {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let args = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_vec())
        .collect();
    Ok(Some((args, nl + 1)))
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

/// Appends the RESP2 encoding of `reply` to `out`.
pub fn encode_reply(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::Int(n) => {
            out.push(b':');
            push_int(out, *n);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Bulk(b) => {
            out.push(b'$');
            push_int(out, b.len() as i64);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Array(items) => {
            out.push(b'*');
            push_int(out, items.len() as i64);
            out.extend_from_slice(b"\r\n");
            for i in items {
                encode_reply(i, out);
            }
        }
        Reply::Status(s) => {
            out.push(b'+');
            out.extend(s.bytes().filter(|&b| b != b'\r' && b != b'\n'));
            out.extend_from_slice(b"\r\n");
        }
        Reply::Error(s) => {
            out.push(b'-');
            out.extend(s.bytes().filter(|&b| b != b'\r' && b != b'\n'));
            out.extend_from_slice(b"\r\n");
        }
    }
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
    fn malformed_and_oversized_input_is_a_protocol_error() {
        for bad in [
            &b"*x\r\n"[..],
            b"*1\r\n:1\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$3\r\nabcd\r\n",
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
            b"*8\r\n:-9223372036854775808\r\n:0\r\n+OK\r\n$-1\r\n:-3\r\n$2\r\nhi\r\n+PONG\r\n-ERR badthing\r\n".to_vec()
        );
    }
}
