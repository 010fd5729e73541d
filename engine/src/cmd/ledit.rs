//! LSET key index element, LTRIM key start stop, LREM key count element,
//! LINSERT key BEFORE|AFTER pivot element
//!
//! ```text
//!  LSET     op 26 | key:bytes | index i64 | element:bytes
//!  LTRIM    op 27 | key:bytes | start i64 | stop i64
//!  LREM     op 28 | key:bytes | count i64 | element:bytes
//!  LINSERT  op 29 | key:bytes | after u8 | pivot:bytes | element:bytes
//! ```

use super::arg::{parse_i64, upper};
use super::codec::{put_bytes, put_i64, put_u8, quote, DecodeError, Decoder};
use super::list::{check_list, index, range, ErrAfterLookup, INDEX_RANGE};
use super::{effect, not_integer, syntax_error, Action, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, List};
use crate::pubsub::class;
use crate::reply::{self, Reply};

/// Runs `f` on the list at `key` (WRONGTYPE when another type is there,
/// `missing` when absent), then removes the key if it emptied.
fn with_list(
    db: &mut Db,
    key: &[u8],
    now_ms: u64,
    missing: Reply,
    event: &'static str,
    f: impl FnOnce(&mut List) -> Reply,
) -> Reply {
    let r = match db.list_mut(key, now_ms) {
        Err(_) => return Reply::error(reply::WRONGTYPE),
        Ok(None) => return missing,
        Ok(Some(l)) => f(l),
    };
    // LREM that removed nothing, LINSERT without the pivot: no event
    if !r.is_error() && !matches!(r, Reply::Int(n) if n <= 0) {
        db.notify(class::LIST, event, key);
    }
    db.drop_if_empty_list(key);
    r
}

// ---------------------------------------------------------------- LSET

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LSet {
    pub key: Vec<u8>,
    pub index: i64,
    pub element: Vec<u8>,
}

impl Command for LSet {
    const NAME: &'static str = "lset";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<LSet>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let element = args.pop().expect("arity");
        let i = parse_i64(&args[2]);
        let key = args.swap_remove(1);
        // Redis looks the key up before it reads the index
        Ok(match i {
            Some(index) => Action::write(LSet {
                key,
                index,
                element,
            }),
            None => Action::read(ErrAfterLookup {
                key,
                missing: Reply::error(reply::NO_SUCH_KEY),
                err: not_integer(),
            }),
        })
    }
}

impl LSet {
    fn check(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        match db.get_list(&self.key, now_ms) {
            Err(e) => Some(e.into()),
            Ok(None) => Some(Reply::error(reply::NO_SUCH_KEY)),
            Ok(Some(l)) if index(l.len(), self.index).is_none() => Some(Reply::error(INDEX_RANGE)),
            Ok(Some(_)) => None,
        }
    }
}

impl Effect for LSet {
    const OP: u8 = 26;
    const NAME: &'static str = "LSET";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_i64(out, self.index);
        put_bytes(out, &self.element);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<LSet, DecodeError> {
        Ok(LSet {
            key: d.bytes()?,
            index: d.i64()?,
            element: d.bytes()?,
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
        with_list(db, &self.key, now_ms, Reply::Ok, "lset", |l| {
            if let Some(i) = index(l.len(), self.index) {
                l[i] = self.element;
            }
            Reply::Ok
        })
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.key])
    }

    fn describe(&self) -> String {
        format!(
            "LSET {} {} {}",
            quote(&self.key),
            self.index,
            quote(&self.element)
        )
    }
}

// ---------------------------------------------------------------- LTRIM

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LTrim {
    pub key: Vec<u8>,
    pub start: i64,
    pub stop: i64,
}

impl Command for LTrim {
    const NAME: &'static str = "ltrim";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<LTrim>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let (Some(start), Some(stop)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
            return Err(not_integer());
        };
        Ok(Action::write(LTrim {
            key: args.swap_remove(1),
            start,
            stop,
        }))
    }
}

impl Effect for LTrim {
    const OP: u8 = 27;
    const NAME: &'static str = "LTRIM";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_i64(out, self.start);
        put_i64(out, self.stop);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<LTrim, DecodeError> {
        Ok(LTrim {
            key: d.bytes()?,
            start: d.i64()?,
            stop: d.i64()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        check_list(db, &self.key, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        with_list(db, &self.key, now_ms, Reply::Ok, "ltrim", |l| {
            match range(l.len(), self.start, self.stop) {
                None => l.clear(),
                Some((a, b)) => {
                    l.truncate(b + 1);
                    l.drain(..a);
                }
            }
            Reply::Ok
        })
    }

    fn signal(&self) -> (super::Signal, Vec<&[u8]>) {
        (super::Signal::Success, vec![&self.key])
    }

    fn describe(&self) -> String {
        format!("LTRIM {} {} {}", quote(&self.key), self.start, self.stop)
    }
}

// ---------------------------------------------------------------- LREM

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LRem {
    pub key: Vec<u8>,
    pub count: i64,
    pub element: Vec<u8>,
}

impl Command for LRem {
    const NAME: &'static str = "lrem";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<LRem>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let count = parse_i64(&args[2]).ok_or_else(not_integer)?;
        let element = args.pop().expect("arity");
        Ok(Action::write(LRem {
            key: args.swap_remove(1),
            count,
            element,
        }))
    }
}

impl Effect for LRem {
    const OP: u8 = 28;
    const NAME: &'static str = "LREM";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_i64(out, self.count);
        put_bytes(out, &self.element);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<LRem, DecodeError> {
        Ok(LRem {
            key: d.bytes()?,
            count: d.i64()?,
            element: d.bytes()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        check_list(db, &self.key, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        with_list(db, &self.key, now_ms, Reply::Int(0), "lrem", |l| {
            let limit = match self.count {
                0 => usize::MAX,
                c => c.unsigned_abs().min(usize::MAX as u64) as usize,
            };
            let mut removed = 0;
            let mut kept = List::with_capacity(l.len());
            if self.count >= 0 {
                for e in l.drain(..) {
                    if removed < limit && e == self.element {
                        removed += 1;
                    } else {
                        kept.push_back(e);
                    }
                }
            } else {
                while let Some(e) = l.pop_back() {
                    if removed < limit && e == self.element {
                        removed += 1;
                    } else {
                        kept.push_front(e);
                    }
                }
            }
            *l = kept;
            Reply::Int(removed as i64)
        })
    }

    fn describe(&self) -> String {
        format!(
            "LREM {} {} {}",
            quote(&self.key),
            self.count,
            quote(&self.element)
        )
    }
}

// ---------------------------------------------------------------- LINSERT

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LInsert {
    pub key: Vec<u8>,
    pub after: bool,
    pub pivot: Vec<u8>,
    pub element: Vec<u8>,
}

impl Command for LInsert {
    const NAME: &'static str = "linsert";
    const ARITY: i64 = 5;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<LInsert>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let after = match upper(&args[2]).as_slice() {
            b"BEFORE" => false,
            b"AFTER" => true,
            _ => return Err(syntax_error()),
        };
        let element = args.pop().expect("arity");
        let pivot = args.pop().expect("arity");
        Ok(Action::write(LInsert {
            key: args.swap_remove(1),
            after,
            pivot,
            element,
        }))
    }
}

impl Effect for LInsert {
    const OP: u8 = 29;
    const NAME: &'static str = "LINSERT";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_u8(out, u8::from(self.after));
        put_bytes(out, &self.pivot);
        put_bytes(out, &self.element);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<LInsert, DecodeError> {
        Ok(LInsert {
            key: d.bytes()?,
            after: d.u8()? != 0,
            pivot: d.bytes()?,
            element: d.bytes()?,
        })
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        check_list(db, &self.key, now_ms)
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        with_list(db, &self.key, now_ms, Reply::Int(0), "linsert", |l| match l
            .iter()
            .position(|e| *e == self.pivot)
        {
            None => Reply::Int(-1),
            Some(i) => {
                l.insert(i + usize::from(self.after), self.element);
                Reply::Int(l.len() as i64)
            }
        })
    }

    fn describe(&self) -> String {
        format!(
            "LINSERT {} {} {} {}",
            quote(&self.key),
            if self.after { "AFTER" } else { "BEFORE" },
            quote(&self.pivot),
            quote(&self.element)
        )
    }
}
