//! Test-only commands, proving that a command is one file and one
//! [`super::TABLE`] line: nothing else in the engine knows about them, yet
//! the dispatcher, the log writer, recovery and `dump` all handle them.
//!
//! FAKESETREV key value: stores the value reversed; replies with its length.
//!
//! ```text
//!  op 250 | key:bytes | value:bytes
//! ```
//!
//! FAKEMULTI key value [key value ...]: one FAKESETREV per pair, logged as
//! ONE record holding their payloads (the shape of a transaction or a
//! script's effects): a replay applies all of them or, if the record is
//! damaged, none. Sub-payloads may not be batches themselves (bounded
//! decoding depth).
//!
//! ```text
//!  op 251 | n u32 | n × payload:bytes
//! ```

use super::codec::{put_bytes, quote, DecodeError, Decoder};
use super::{decode_payload, effect, Action, AnyEffect, Command, Effect, EffectSpec, Flags, Keys};
use crate::db::{Db, Entry, Value};
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSetRev {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Command for FakeSetRev {
    const NAME: &'static str = "fakesetrev";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<FakeSetRev>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let value = args.pop().expect("arity checked");
        let key = args.pop().expect("arity checked");
        Ok(Action::write(FakeSetRev { key, value }))
    }
}

impl Effect for FakeSetRev {
    const OP: u8 = 250;
    const NAME: &'static str = "FAKESETREV";

    fn encode_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.key);
        put_bytes(out, &self.value);
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<FakeSetRev, DecodeError> {
        Ok(FakeSetRev {
            key: d.bytes()?,
            value: d.bytes()?,
        })
    }

    fn apply(self, db: &mut Db, _now_ms: u64) -> Reply {
        let mut v = self.value;
        v.reverse();
        let n = v.len() as i64;
        db.insert_entry(self.key, Entry::new(Value::Str(v)));
        Reply::Int(n)
    }

    fn describe(&self) -> String {
        format!("FAKESETREV {} {}", quote(&self.key), quote(&self.value))
    }
}

#[derive(Debug)]
pub struct FakeMulti {
    pub effects: Vec<AnyEffect>,
}

impl Command for FakeMulti {
    const NAME: &'static str = "fakemulti";
    const ARITY: i64 = -3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, -1, 2);
    const EFFECT: Option<EffectSpec> = Some(effect::<FakeMulti>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        if args.len().is_multiple_of(2) {
            return Err(Reply::arity(<Self as Command>::NAME));
        }
        let mut it = args.into_iter().skip(1);
        let mut effects: Vec<AnyEffect> = Vec::new();
        while let (Some(key), Some(value)) = (it.next(), it.next()) {
            effects.push(Box::new(FakeSetRev { key, value }));
        }
        Ok(Action::write(FakeMulti { effects }))
    }
}

impl Effect for FakeMulti {
    const OP: u8 = 251;
    const NAME: &'static str = "FAKEMULTI";

    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.effects.len() as u32).to_le_bytes());
        let mut sub = Vec::new();
        for e in &self.effects {
            sub.clear();
            e.encode_into(&mut sub);
            put_bytes(out, &sub);
        }
    }

    fn decode_body(d: &mut Decoder<'_>) -> Result<FakeMulti, DecodeError> {
        let n = d.count(5)?;
        let mut effects = Vec::with_capacity(n);
        for _ in 0..n {
            let p = d.bytes()?;
            if p.first() == Some(&Self::OP) {
                return Err(DecodeError::Invalid {
                    what: "nested batch op",
                    value: u64::from(Self::OP),
                });
            }
            effects.push(decode_payload(&p)?);
        }
        Ok(FakeMulti { effects })
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
        format!("FAKEMULTI [{}]", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::cmd::apply_payload;
    use crate::recovery::{recover, RecoveryMode};
    use crate::Config;

    #[test]
    fn a_batch_of_effects_is_one_record_applied_whole_or_not_at_all() {
        let batch = FakeMulti {
            effects: vec![
                Box::new(FakeSetRev {
                    key: b"a".to_vec(),
                    value: b"12".to_vec(),
                }),
                Box::new(crate::cmd::Del {
                    keys: vec![b"gone".to_vec()],
                }),
                Box::new(FakeSetRev {
                    key: b"b".to_vec(),
                    value: b"34".to_vec(),
                }),
            ],
        };
        let p = batch.encode();
        let mut db = Db::new();
        assert_eq!(
            apply_payload(&mut db, &p, 0).unwrap(),
            Reply::Array(vec![Reply::Int(2), Reply::Int(0), Reply::Int(2)])
        );
        assert_eq!(db.get(b"b", 0), Some(&Value::Str(b"43".to_vec())));
        // any damage refuses the whole record: nothing of it is applied
        for cut in 1..p.len() {
            let mut db = Db::new();
            assert!(apply_payload(&mut db, &p[..cut], 0).is_err(), "cut {cut}");
            assert!(db.is_empty(), "cut {cut}");
        }
        // a batch inside a batch is refused
        let mut nested = vec![FakeMulti::OP];
        nested.extend_from_slice(&1u32.to_le_bytes());
        put_bytes(&mut nested, &p);
        assert!(matches!(
            apply_payload(&mut Db::new(), &nested, 0),
            Err(DecodeError::Invalid { .. })
        ));
    }

    /// Sends `req` and reads until `want` bytes arrived.
    async fn roundtrip(s: &mut tokio::net::TcpStream, req: &[u8], want: usize) -> Vec<u8> {
        s.write_all(req).await.unwrap();
        let mut out = vec![0u8; want];
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_exact(&mut out))
            .await
            .expect("reply in time")
            .unwrap();
        out
    }

    #[test]
    fn a_command_added_in_one_file_is_served_logged_recovered_and_dumped() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut cfg = Config::new(dir.path(), "127.0.0.1:0".parse::<SocketAddr>().unwrap());
            cfg.reserve_bytes = 0;
            let shutdown = CancellationToken::new();
            let running = crate::start(cfg, shutdown.clone()).await.unwrap();
            let mut s = tokio::net::TcpStream::connect(running.addr).await.unwrap();
            let r = roundtrip(
                &mut s,
                b"*3\r\n$10\r\nFAKESETREV\r\n$1\r\nk\r\n$3\r\nabc\r\n",
                4,
            )
            .await;
            assert_eq!(r, b":3\r\n");
            let r = roundtrip(&mut s, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 9).await;
            assert_eq!(r, b"$3\r\ncba\r\n");
            // the dispatcher's arity check applies to it like to any command
            let want = b"-ERR wrong number of arguments for 'fakesetrev' command\r\n";
            let r = roundtrip(
                &mut s,
                b"*2\r\n$10\r\nfakesetrev\r\n$1\r\nk\r\n",
                want.len(),
            )
            .await;
            assert_eq!(r, want.as_slice());
            let r = roundtrip(
                &mut s,
                b"*5\r\n$9\r\nFAKEMULTI\r\n$1\r\nx\r\n$2\r\n12\r\n$1\r\ny\r\n$2\r\n34\r\n",
                12,
            )
            .await;
            assert_eq!(r, b"*2\r\n:2\r\n:2\r\n");
            shutdown.cancel();
            running.wait().await.unwrap();
        });
        let rec = recover(dir.path(), "archived", RecoveryMode::Strict).unwrap();
        assert_eq!(rec.db.get(b"k", 0), Some(&Value::Str(b"cba".to_vec())));
        assert_eq!(rec.db.get(b"y", 0), Some(&Value::Str(b"43".to_vec())));
        assert_eq!(rec.last_seq, 2, "the batch is one record");
        let mut out = Vec::new();
        crate::inspect::dump_dir(dir.path(), "archived", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("FAKESETREV \"k\" \"abc\""), "{text}");
        assert!(
            text.contains("FAKEMULTI [FAKESETREV \"x\" \"12\"; FAKESETREV \"y\" \"34\"]"),
            "{text}"
        );
    }
}
