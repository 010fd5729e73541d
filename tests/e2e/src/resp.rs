//! A minimal RESP2 client over a plain socket: the tests need to know exactly
//! which replies arrived, so no client library sits in between.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Encodes one command as a RESP array of bulk strings.
pub fn encode(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

fn bad(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

impl Conn {
    pub fn connect(port: u16, timeout: Duration) -> std::io::Result<Conn> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    fn line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut l = Vec::new();
        self.reader.read_until(b'\n', &mut l)?;
        if !l.ends_with(b"\r\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        l.truncate(l.len() - 2);
        Ok(l)
    }

    pub fn reply(&mut self) -> std::io::Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| bad("empty reply line".into()))?;
        let text = String::from_utf8_lossy(rest).into_owned();
        let num = |t: &str| -> std::io::Result<i64> {
            t.parse().map_err(|_| bad(format!("bad number {t:?}")))
        };
        Ok(match kind {
            b'+' => Reply::Simple(text),
            b'-' => Reply::Error(text),
            b':' => Reply::Int(num(&text)?),
            b'$' => match num(&text)? {
                n if n < 0 => Reply::Bulk(None),
                n => {
                    let mut data = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(n as usize);
                    Reply::Bulk(Some(data))
                }
            },
            b'*' => match num(&text)? {
                n if n < 0 => Reply::Array(None),
                n => Reply::Array(Some(
                    (0..n).map(|_| self.reply()).collect::<Result<_, _>>()?,
                )),
            },
            _ => return Err(bad(format!("bad reply line {text:?}"))),
        })
    }

    pub fn call(&mut self, parts: &[&[u8]]) -> std::io::Result<Reply> {
        self.writer.write_all(&encode(parts))?;
        self.reply()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reply_kind() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let want = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
            let mut got = vec![0u8; want.len()];
            c.read_exact(&mut got).unwrap();
            assert_eq!(&got[..], &want[..]);
            c.write_all(b"*5\r\n+OK\r\n-ERR x\r\n:7\r\n$-1\r\n$2\r\nab\r\n")
                .unwrap();
        });
        let mut c = Conn::connect(port, Duration::from_secs(5)).unwrap();
        let r = c.call(&[b"GET", b"k"]).unwrap();
        assert_eq!(
            r,
            Reply::Array(Some(vec![
                Reply::Simple("OK".into()),
                Reply::Error("ERR x".into()),
                Reply::Int(7),
                Reply::Bulk(None),
                Reply::Bulk(Some(b"ab".to_vec())),
            ]))
        );
        t.join().unwrap();
        let err = c.reply().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
