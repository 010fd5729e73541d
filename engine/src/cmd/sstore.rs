//! SINTERSTORE, SUNIONSTORE, SDIFFSTORE destination key [key ...]
//!
//! Logged as the operation, not its result: the result is a deterministic
//! function of the state (replay recomputes exactly it, at the cost the
//! live command paid), and the payload stays as small as the request
//! however large the result (Redis's AOF logs these commands as sent too).
//!
//! ```text
//!  op 36 | setop u8 (0 inter, 1 union, 2 diff) | destination:bytes
//!        | n u32 (>= 1) | n × key:bytes
//! ```

use super::codec::{put_bytes, put_list, put_u8, quote, DecodeError, Decoder};
use super::sets::{combine, sets_at, SetOp};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Members, Value};
use crate::pubsub::class;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SStore {
    pub op: SetOp,
    pub destination: Vec<u8>,
    pub keys: Vec<Vec<u8>>,
}

fn parse(mut args: Vec<Vec<u8>>, op: SetOp) -> Result<Action, Reply> {
    let keys = args.split_off(2);
    Ok(Action::write(SStore {
        op,
        destination: args.swap_remove(1),
        keys,
    }))
}

macro_rules! store_command {
    ($ty:ident, $name:literal, $op:expr) => {
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = -3;
            const FLAGS: Flags = Flags::WRITE;
            const KEYS: Keys = Keys::range(1, -1, 1);
            const EFFECT: Option<EffectSpec> = Some(effect::<SStore>());

            fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
                parse(args, $op)
            }
        }
    };
}

store_command!(SInterStore, "sinterstore", SetOp::Inter);
store_command!(SUnionStore, "sunionstore", SetOp::Union);
store_command!(SDiffStore, "sdiffstore", SetOp::Diff);

impl Effect for SStore {
    const OP: u8 = 36;
    const NAME: &'static str = "SSTORE";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_u8(out, self.op.code());
        put_bytes(out, &self.destination);
        put_list(out, &self.keys);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<SStore, DecodeError> {
        let code = d.u8()?;
        let op = SetOp::from_code(code).ok_or(DecodeError::Invalid {
            what: "set operation",
            value: u64::from(code),
        })?;
        let destination = d.bytes()?;
        let keys = d.list()?;
        if keys.is_empty() {
            return Err(DecodeError::Invalid {
                what: "SSTORE key count",
                value: 0,
            });
        }
        Ok(SStore {
            op,
            destination,
            keys,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    /// Only the source keys' types matter: the destination is replaced
    /// whatever it holds.
    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        sets_at(db, &self.keys, now_ms).err().map(Reply::from)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let result: Members = match combine(db, self.op, &self.keys, now_ms, 0) {
            Err(e) => return e.into(),
            Ok(members) => members.into_iter().map(<[u8]>::to_vec).collect(),
        };
        let existed = db.remove(&self.destination).is_some();
        let n = result.len();
        if n > 0 {
            let event = match self.op {
                SetOp::Inter => "sinterstore",
                SetOp::Union => "sunionstore",
                SetOp::Diff => "sdiffstore",
            };
            db.notify(class::SET, event, &self.destination);
            db.insert_entry(self.destination, Entry::new(Value::Set(result)));
        } else if existed {
            db.notify(class::GENERIC, "del", &self.destination);
        }
        Reply::Int(n as i64)
    }

    fn describe(&self) -> String {
        let mut s = format!("{}STORE {}", self.op.name(), quote(&self.destination));
        for k in &self.keys {
            s.push(' ');
            s.push_str(&quote(k));
        }
        s
    }
}
