//! A test-only command, proving that a command is one file and one
//! [`super::TABLE`] line: nothing else in the engine knows about it, yet the
//! dispatcher, the log writer, recovery and `dump` all handle it.
//!
//! FAKESETREV key value: stores the value reversed; replies with its length.
//!
//! ```text
//!  op 250 | key:bytes | value:bytes
//! ```

use super::codec::{put_bytes, quote, DecodeError, Decoder};
use super::{effect, Action, Command, Effect, EffectSpec, Flags, Keys};
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    use crate::db::Value;
    use crate::recovery::{recover, RecoveryMode};
    use crate::Config;

    /// Sends `req` and reads until `want` bytes arrived.
    async fn roundtrip(s: &mut tokio::net::TcpStream, req: &[u8], want: usize) -> Vec<u8> {
        s.write_all(req).await.unwrap();
        let mut out = vec![0u8; want];
        s.read_exact(&mut out).await.unwrap();
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
            shutdown.cancel();
            running.wait().await.unwrap();
        });
        let rec = recover(dir.path(), "archived", RecoveryMode::Strict).unwrap();
        assert_eq!(rec.db.get(b"k", 0), Some(&Value::Str(b"cba".to_vec())));
        assert_eq!(rec.last_seq, 1);
        let mut out = Vec::new();
        crate::inspect::dump_dir(dir.path(), "archived", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("FAKESETREV \"k\" \"abc\""), "{text}");
    }
}
