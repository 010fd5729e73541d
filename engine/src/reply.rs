//! What a command answers ([`Reply`], turned into RESP2 or RESP3 by
//! [`crate::resp`] for the connection's protocol) and every error text a
//! command answers with, in one place.

/// The reply to a command. The RESP3 types are downgraded for RESP2
/// connections exactly as Redis 7 does (see [`crate::resp::encode`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok,
    /// The null bulk string: RESP2 `$-1`, RESP3 `_` (Redis's `addReplyNull`).
    Nil,
    /// The null array: RESP2 `*-1`, RESP3 `_` (Redis's `addReplyNullArray`).
    NilArray,
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
    /// RESP3 `%` map; RESP2: a flat array key, value, key, value…
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `~` set; RESP2: an array.
    Set(Vec<Reply>),
    /// Pairs Redis sends as an array of 2-element arrays in RESP3 and as one
    /// flat array in RESP2 (HRANDFIELD … WITHVALUES, ZRANGE … WITHSCORES).
    Pairs(Vec<(Reply, Reply)>),
    /// RESP3 `,` double; RESP2: a bulk string (`%.17g`, `inf`, `-inf`).
    Double(f64),
    /// RESP3 `#t`/`#f`; RESP2: `:1`/`:0`.
    Bool(bool),
    /// RESP3 `(` big number (decimal digits); RESP2: a bulk string.
    BigNumber(String),
    /// RESP3 `=` verbatim string with its 3-letter format (`txt`, `mkd`);
    /// RESP2: a bulk string of the text.
    Verbatim(&'static str, Vec<u8>),
    /// RESP3 `>` push (out-of-band data); RESP2: an array.
    Push(Vec<Reply>),
    /// A simple status string (`+PONG`).
    Status(String),
    /// An error, with its Redis prefix (`ERR …`, `WRONGTYPE …`).
    Error(String),
    /// An error echoing bytes a client sent that are not UTF-8 (Redis
    /// echoes them raw); built by [`Reply::error_bytes`].
    ErrorBytes(Vec<u8>),
}

impl Reply {
    /// An error reply.
    pub fn error(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }

    /// Redis's arity error for `name` (lower case, as Redis words it).
    pub fn arity(name: &str) -> Reply {
        Reply::Error(format!(
            "ERR wrong number of arguments for '{name}' command"
        ))
    }

    /// An error whose text holds client bytes: [`Reply::Error`] when they
    /// are UTF-8, else [`Reply::ErrorBytes`]. CR and LF become spaces, as
    /// Redis maps them.
    pub fn error_bytes(mut msg: Vec<u8>) -> Reply {
        for b in msg.iter_mut() {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
        match String::from_utf8(msg) {
            Ok(s) => Reply::Error(s),
            Err(e) => Reply::ErrorBytes(e.into_bytes()),
        }
    }

    /// A bulk string from text.
    pub fn text(s: impl Into<String>) -> Reply {
        Reply::Bulk(s.into().into_bytes())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_) | Reply::ErrorBytes(_))
    }
}

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const DECR_OVERFLOW: &str = "ERR decrement would overflow";
pub const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const OFFSET_RANGE: &str = "ERR offset is out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const NAN_OR_INFINITY: &str = "ERR increment would produce NaN or Infinity";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const SYNTAX: &str = "ERR syntax error";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";
pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
pub const PROTOVER_NOT_INTEGER: &str = "ERR Protocol version is not an integer or out of range";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const AUTH_NOT_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
pub const BAD_CLIENT_NAME: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";
pub const DB_OUT_OF_RANGE: &str = "ERR DB index is out of range";

/// `ERR invalid expire time in '<name>' command`.
pub fn invalid_expire(name: &str) -> Reply {
    Reply::Error(format!("ERR invalid expire time in '{name}' command"))
}

/// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.` (the subcommand as
/// sent, 128 bytes at most, cut at a NUL, as Redis prints it).
pub fn unknown_subcommand(sub: &[u8], cmd: &str) -> Reply {
    let sub = &sub[..sub.len().min(128)];
    let sub = sub.iter().position(|&b| b == 0).map_or(sub, |n| &sub[..n]);
    let mut msg = b"ERR unknown subcommand '".to_vec();
    msg.extend_from_slice(sub);
    msg.extend_from_slice(format!("'. Try {} HELP.", cmd.to_ascii_uppercase()).as_bytes());
    Reply::error_bytes(msg)
}
