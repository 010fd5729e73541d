//! MULTI, EXEC, DISCARD, WATCH key [key ...], UNWATCH: parsed here into
//! [`Txn`], run by the execution core ([`crate::exec`]), which owns the
//! connection's queue of commands and its watched keys.
//!
//! A transaction's writes are logged as ONE record, [`Transaction`], holding
//! the payload each write produced when EXEC applied it (a transaction with
//! a single write logs that write's own payload): after a crash all of it
//! is recovered or none. Its reply is held until that record is durable.
//!
//! ```text
//!  op 128 | n u32 | n × payload:bytes      (no payload is a transaction)
//! ```

use super::codec::{put_bytes, put_u32, DecodeError, Decoder};
use super::{decode_payload, effect, Action, AnyEffect, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::Db;
use crate::reply::Reply;

/// A transaction command, for the execution core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    Multi,
    Exec,
    Discard,
    Watch(Vec<Vec<u8>>),
    Unwatch,
}

pub struct Multi;
pub struct Exec;
pub struct Discard;
pub struct Watch;
pub struct Unwatch;

impl Command for Multi {
    const NAME: &'static str = "multi";
    const ARITY: i64 = 1;
    const FLAGS: Flags = Flags::NONE;
    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::Txn(Txn::Multi))
    }
}

impl Command for Exec {
    const NAME: &'static str = "exec";
    const ARITY: i64 = 1;
    const FLAGS: Flags = Flags::NONE;
    /// Registers the transaction record for replay (the execution core
    /// builds it).
    const EFFECT: Option<EffectSpec> = Some(effect::<Transaction>());
    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::Txn(Txn::Exec))
    }
}

impl Command for Discard {
    const NAME: &'static str = "discard";
    const ARITY: i64 = 1;
    const FLAGS: Flags = Flags::NONE;
    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::Txn(Txn::Discard))
    }
}

impl Command for Watch {
    const NAME: &'static str = "watch";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::READONLY;
    const KEYS: Keys = Keys::range(1, -1, 1);
    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        args.remove(0);
        Ok(Action::Txn(Txn::Watch(args)))
    }
}

impl Command for Unwatch {
    const NAME: &'static str = "unwatch";
    const ARITY: i64 = 1;
    const FLAGS: Flags = Flags::NONE;
    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::Txn(Txn::Unwatch))
    }
}

/// The logged effects of one EXEC, applied together.
#[derive(Debug)]
pub struct Transaction {
    pub effects: Vec<AnyEffect>,
}

impl Transaction {
    /// The payload of a transaction whose writes logged `payloads` (the
    /// bytes [`Effect::encode`] gives for the decoded transaction).
    pub fn payload(payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + payloads.iter().map(|p| p.len() + 4).sum::<usize>());
        out.push(<Transaction as Effect>::OP);
        put_u32(&mut out, payloads.len() as u32);
        for p in payloads {
            put_bytes(&mut out, p);
        }
        out
    }
}

impl Effect for Transaction {
    const OP: u8 = 128;
    const NAME: &'static str = "EXEC";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_u32(out, self.effects.len() as u32);
        let mut sub = Vec::new();
        for e in &self.effects {
            sub.clear();
            e.encode_into(&mut sub);
            put_bytes(out, &sub);
        }
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<Transaction, DecodeError> {
        let n = d.count(5)?;
        let mut effects = Vec::with_capacity(n);
        for _ in 0..n {
            let p = d.bytes()?;
            if p.first() == Some(&Self::OP) {
                return Err(DecodeError::Invalid {
                    what: "nested transaction op",
                    value: u64::from(Self::OP),
                });
            }
            effects.push(decode_payload(&p)?);
        }
        Ok(Transaction { effects })
    }

    fn apply(self, db: &mut Db, now_ms: u64) -> Reply {
        Reply::Array(
            self.effects
                .into_iter()
                .map(|e| e.apply_boxed(db, now_ms))
                .collect(),
        )
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self.effects.iter().map(|e| e.describe()).collect();
        format!("MULTI; {}; EXEC", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{apply_payload, describe_payload, Set};

    fn set(k: &str, v: &str) -> Vec<u8> {
        Set::new(k, v).encode()
    }

    #[test]
    fn a_transaction_payload_round_trips_and_applies_whole() {
        let p = Transaction::payload(&[set("a", "1"), set("b", "2")]);
        let t = Transaction::decode(&p).unwrap();
        assert_eq!(t.encode(), p);
        let mut db = Db::new();
        let r = apply_payload(&mut db, &p, 0).unwrap();
        assert_eq!(r, Reply::Array(vec![Reply::Ok, Reply::Ok]));
        assert!(db.get(b"a", 0).is_some() && db.get(b"b", 0).is_some());
        assert!(describe_payload(&p).unwrap().starts_with("MULTI; SET"));
    }

    #[test]
    fn damaged_or_nested_transactions_are_refused_whole() {
        let inner = Transaction::payload(&[set("a", "1")]);
        let nested = Transaction::payload(&[inner]);
        assert!(matches!(
            Transaction::decode(&nested),
            Err(DecodeError::Invalid { .. })
        ));
        let mut p = Transaction::payload(&[set("a", "1"), set("b", "2")]);
        p.truncate(p.len() - 1);
        let mut db = Db::new();
        assert!(apply_payload(&mut db, &p, 0).is_err());
        assert_eq!(db.len(), 0, "nothing of a damaged transaction is applied");
    }
}
