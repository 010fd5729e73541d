//! A tiny HTTP/1.0 client (metrics and health endpoints on loopback) and
//! lookup of one series in the Prometheus text format.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// `GET path` on `addr` (`127.0.0.1:9121`): the status code and the body.
pub fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Percent-encodes a query string value (RFC 3986 unreserved characters stay).
pub fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A request over a unix socket (a plugin socket): the status code and body.
pub fn unix_request(
    socket: &std::path::Path,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok((code, body.to_owned()))
}

/// The body of `GET /metrics` if it answered 200.
pub fn scrape(addr: &str) -> std::io::Result<String> {
    match get(addr, "/metrics")? {
        (200, body) => Ok(body),
        (code, _) => Err(std::io::Error::other(format!("GET /metrics: HTTP {code}"))),
    }
}

/// The value of the series whose name (with its labels exactly as exposed,
/// e.g. `tiered_plugin_requests_total{endpoint="mount"}`) is `series`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, rest) = l.split_once(' ')?;
        (name == series).then(|| rest.split_whitespace().next()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exact_series() {
        let text = "# HELP x y\n# TYPE a gauge\na 1\na_total 2\nb{k=\"v\"} 3.5 1700000000\n";
        assert_eq!(metric(text, "a"), Some(1.0));
        assert_eq!(metric(text, "a_total"), Some(2.0));
        assert_eq!(metric(text, "b{k=\"v\"}"), Some(3.5));
        assert_eq!(metric(text, "b"), None);
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            encode_query("up{job=~\"a.*\"} == 1"),
            "up%7Bjob%3D~%22a.%2A%22%7D%20%3D%3D%201"
        );
    }

    #[test]
    fn get_from_a_local_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            // The whole request first: the client may write it in pieces.
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "request cut short: {req:?}");
                req.extend_from_slice(&buf[..n]);
            }
            assert!(req.starts_with(b"GET /healthz HTTP/1.0\r\n"));
            c.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno")
                .unwrap();
        });
        assert_eq!(get(&addr, "/healthz").unwrap(), (503, "no".to_owned()));
        t.join().unwrap();
    }
}
