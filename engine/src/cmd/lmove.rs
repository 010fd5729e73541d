//! LMOVE source destination LEFT|RIGHT LEFT|RIGHT, RPOPLPUSH source
//! destination, LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
//!
//! ```text
//!  LMOVE  op 30 | source:bytes | destination:bytes | from_head u8 | to_head u8
//!  LMPOP  op 31 | n u32 | n × key:bytes | head u8 | count u64
//! ```

use super::codec::{put_bytes, put_list, put_u64, put_u8, quote, DecodeError, Decoder};
use super::list::{at_least_one, check_list, side};
use super::pop::pop_n;
use super::{effect, syntax_error, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, List, Value};
use crate::pubsub::class;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LMove {
    pub source: Vec<u8>,
    pub destination: Vec<u8>,
    pub from_head: bool,
    pub to_head: bool,
}

impl Command for LMove {
    const NAME: &'static str = "lmove";
    const ARITY: i64 = 5;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, 2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<LMove>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let (Some(from_head), Some(to_head)) = (side(&args[3]), side(&args[4])) else {
            return Err(syntax_error());
        };
        args.truncate(3);
        Ok(Action::write(LMove {
            destination: args.pop().expect("arity"),
            source: args.pop().expect("arity"),
            from_head,
            to_head,
        }))
    }
}

pub struct RPopLPush;

impl Command for RPopLPush {
    const NAME: &'static str = "rpoplpush";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, 2, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<LMove>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::write(LMove {
            destination: args.pop().expect("arity"),
            source: args.pop().expect("arity"),
            from_head: false,
            to_head: true,
        }))
    }
}

impl LMove {
    /// Redis checks the source, then (when the source has elements) the
    /// destination.
    fn check(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        match db.get_list(&self.source, now_ms) {
            Err(e) => Some(e.into()),
            Ok(None) => None,
            Ok(Some(_)) => check_list(db, &self.destination, now_ms),
        }
    }
}

impl Effect for LMove {
    const OP: u8 = 30;
    const NAME: &'static str = "LMOVE";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.source);
        put_bytes(out, &self.destination);
        put_u8(out, u8::from(self.from_head));
        put_u8(out, u8::from(self.to_head));
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<LMove, DecodeError> {
        Ok(LMove {
            source: d.bytes()?,
            destination: d.bytes()?,
            from_head: d.u8()? != 0,
            to_head: d.u8()? != 0,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        self.check(db, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        if let Some(e) = self.check(db, now_ms) {
            return e;
        }
        let Some(mut popped) = pop_n(db, &self.source, self.from_head, 1, now_ms) else {
            return Reply::Nil;
        };
        let Some(v) = popped.pop() else {
            return Reply::Nil;
        };
        if db.live_mut(&self.destination, now_ms).is_none() {
            db.insert_entry(
                self.destination.clone(),
                Entry::new(Value::List(List::new())),
            );
        }
        match db.list_mut(&self.destination, now_ms) {
            Ok(Some(l)) if self.to_head => l.push_front(v.clone()),
            Ok(Some(l)) => l.push_back(v.clone()),
            _ => return Reply::error(reply::WRONGTYPE),
        }
        let event = if self.to_head { "lpush" } else { "rpush" };
        db.notify(class::LIST, event, &self.destination);
        Reply::Bulk(v)
    }

    fn describe(&self) -> String {
        let s = |head| if head { "LEFT" } else { "RIGHT" };
        format!(
            "LMOVE {} {} {} {}",
            quote(&self.source),
            quote(&self.destination),
            s(self.from_head),
            s(self.to_head)
        )
    }
}

// ---------------------------------------------------------------- LMPOP

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LMPop {
    pub keys: Vec<Vec<u8>>,
    pub head: bool,
    pub count: u64,
}

impl Command for LMPop {
    const NAME: &'static str = "lmpop";
    const ARITY: i64 = -4;
    const FLAGS: Flags = Flags::WRITE;
    // movable keys: a write of LMPOP counts as touching every watched key
    const KEYS: Keys = Keys::NONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<LMPop>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::write(LMPop::parse_args(&args)?))
    }
}

impl LMPop {
    /// `numkeys key [key ...] LEFT|RIGHT [COUNT count]` from `args[1]` on
    /// (BLMPOP passes its arguments after the timeout).
    pub(crate) fn parse_args(args: &[Vec<u8>]) -> Result<LMPop, Reply> {
        let numkeys = at_least_one(&args[1], "ERR numkeys should be greater than 0")?;
        let where_at = match usize::try_from(numkeys).ok().and_then(|n| n.checked_add(2)) {
            Some(i) if i < args.len() => i,
            _ => return Err(syntax_error()),
        };
        let head = side(&args[where_at]).ok_or_else(syntax_error)?;
        let mut count = None;
        let mut j = where_at + 1;
        while j < args.len() {
            if count.is_none() && args[j].eq_ignore_ascii_case(b"COUNT") && j + 1 < args.len() {
                count = Some(at_least_one(
                    &args[j + 1],
                    "ERR count should be greater than 0",
                )?);
                j += 2;
            } else {
                return Err(syntax_error());
            }
        }
        Ok(LMPop {
            keys: args[2..where_at].to_vec(),
            head,
            count: count.unwrap_or(1),
        })
    }
}

impl LMPop {
    /// The first key holding a list with elements, or the WRONGTYPE of a
    /// key of another type met before it.
    fn first(&self, db: &Db, now_ms: u64) -> Result<Option<usize>, Reply> {
        for (i, k) in self.keys.iter().enumerate() {
            match db.get_list(k, now_ms) {
                Err(e) => return Err(e.into()),
                Ok(Some(l)) if !l.is_empty() => return Ok(Some(i)),
                Ok(_) => {}
            }
        }
        Ok(None)
    }
}

impl Effect for LMPop {
    const OP: u8 = 31;
    const NAME: &'static str = "LMPOP";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_list(out, &self.keys);
        put_u8(out, u8::from(self.head));
        put_u64(out, self.count);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<LMPop, DecodeError> {
        Ok(LMPop {
            keys: d.list()?,
            head: d.u8()? != 0,
            count: d.u64()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        self.first(db, now_ms).err()
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        let i = match self.first(db, now_ms) {
            Err(e) => return e,
            Ok(None) => return Reply::NilArray,
            Ok(Some(i)) => i,
        };
        let key = &self.keys[i];
        let popped = pop_n(db, key, self.head, self.count, now_ms).unwrap_or_default();
        Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
        ])
    }

    fn describe(&self) -> String {
        let mut s = format!("LMPOP {}", self.keys.len());
        for k in &self.keys {
            s.push(' ');
            s.push_str(&quote(k));
        }
        s.push_str(if self.head { " LEFT" } else { " RIGHT" });
        s.push_str(&format!(" COUNT {}", self.count));
        s
    }
}
