//! What a command answers ([`Reply`], turned into RESP by [`crate::resp`])
//! and every error text a command answers with, in one place.

/// The reply to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok,
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
    /// A simple status string (`+PONG`).
    Status(String),
    /// An error, with its Redis prefix (`ERR …`, `WRONGTYPE …`).
    Error(String),
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

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const DECR_OVERFLOW: &str = "ERR decrement would overflow";
pub const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size";
pub const SYNTAX: &str = "ERR syntax error";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";

/// `ERR invalid expire time in '<name>' command`.
pub fn invalid_expire(name: &str) -> Reply {
    Reply::Error(format!("ERR invalid expire time in '{name}' command"))
}
