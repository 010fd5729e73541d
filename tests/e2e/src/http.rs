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
    let text = String::from_utf8_lossy(&raw);
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
    fn get_from_a_local_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf).unwrap();
            c.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno")
                .unwrap();
        });
        assert_eq!(get(&addr, "/healthz").unwrap(), (503, "no".to_owned()));
        t.join().unwrap();
    }
}
