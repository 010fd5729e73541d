//! Write load with acknowledgement tracking, and the check that follows it.
//!
//! [`write`]: `SET <prefix>:<conn>:<i> <value>` on each connection, i = 0, 1,
//! 2, … one command at a time, until the time is up or the connection fails
//! (the engine was killed). [`Acked`] records, per connection, how many SETs
//! were answered `+OK`: exactly those are acknowledged, and since keys are
//! written in order, the count says which. [`check`] reads every acknowledged
//! key back (MGET in batches) and fails if any is missing or wrong.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::resp::{Conn, Reply};

/// What one load run had acknowledged.
#[derive(Debug, Clone)]
pub struct Acked {
    pub prefix: String,
    pub value_bytes: usize,
    pub counts: Vec<usize>,
    /// Why each connection stopped early ("" if it ran to the end).
    pub errors: Vec<String>,
}

impl Acked {
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }
}

/// The value written under `key`: `key=` repeated to `size` bytes.
pub fn value_for(key: &str, size: usize) -> Vec<u8> {
    let base = format!("{key}=").into_bytes();
    base.iter().copied().cycle().take(size).collect()
}

/// Runs the load for `duration` on `connections` connections (200-byte values).
pub fn write(port: u16, prefix: &str, duration: Duration, connections: usize) -> Acked {
    let deadline = Instant::now() + duration;
    let value_bytes = 200;
    let workers: Vec<_> = (0..connections)
        .map(|c| {
            let prefix = prefix.to_owned();
            std::thread::spawn(move || -> (usize, String) {
                let mut conn = match Conn::connect(port, Duration::from_secs(10)) {
                    Ok(conn) => conn,
                    Err(e) => return (0, format!("connect: {e}")),
                };
                let mut i = 0;
                while Instant::now() < deadline {
                    let key = format!("{prefix}:{c}:{i}");
                    match conn.call(&[b"SET", key.as_bytes(), &value_for(&key, value_bytes)]) {
                        Ok(Reply::Simple(ok)) if ok == "OK" => i += 1,
                        Ok(other) => return (i, format!("SET {key}: {other:?}")),
                        Err(e) => return (i, format!("after {i} acknowledged: {e}")),
                    }
                }
                (i, String::new())
            })
        })
        .collect();
    let (counts, errors) = workers
        .into_iter()
        .map(|w| w.join().expect("load worker panicked"))
        .unzip();
    let acked = Acked {
        prefix: prefix.to_owned(),
        value_bytes,
        counts,
        errors,
    };
    eprintln!(
        "acknowledged {} writes on {connections} connections{}",
        acked.total(),
        acked
            .errors
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.is_empty())
            .map(|(c, e)| format!("; conn {c}: {e}"))
            .collect::<String>()
    );
    acked
}

/// [`write`] on a thread of its own.
pub fn spawn(
    port: u16,
    prefix: &str,
    duration: Duration,
    connections: usize,
) -> std::thread::JoinHandle<Acked> {
    let prefix = prefix.to_owned();
    std::thread::spawn(move || write(port, &prefix, duration, connections))
}

/// Every acknowledged write of `runs` reads back with its value; returns how
/// many were checked (at least one).
pub fn check(port: u16, runs: &[&Acked]) -> Result<usize> {
    let mut conn = Conn::connect(port, Duration::from_secs(30))?;
    let (mut total, mut bad) = (0, Vec::new());
    for acked in runs {
        for (c, &count) in acked.counts.iter().enumerate() {
            for start in (0..count).step_by(500) {
                let keys: Vec<String> = (start..count.min(start + 500))
                    .map(|i| format!("{}:{c}:{i}", acked.prefix))
                    .collect();
                let mut cmd: Vec<&[u8]> = vec![b"MGET"];
                cmd.extend(keys.iter().map(|k| k.as_bytes()));
                let got = match conn.call(&cmd)? {
                    Reply::Array(Some(v)) if v.len() == keys.len() => v,
                    other => bail!("MGET failed: {other:?}"),
                };
                for (k, v) in keys.iter().zip(got) {
                    total += 1;
                    if v != Reply::Bulk(Some(value_for(k, acked.value_bytes))) {
                        bad.push(k.clone());
                    }
                }
            }
        }
    }
    if !bad.is_empty() {
        bail!(
            "{} of {total} acknowledged writes lost or wrong, e.g. {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
    }
    if total == 0 {
        bail!("nothing to check: no acknowledged writes");
    }
    eprintln!("all {total} acknowledged writes present");
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_repeats_the_key() {
        assert_eq!(value_for("ab", 7), b"ab=ab=a".to_vec());
        assert_eq!(value_for("k", 0), Vec::<u8>::new());
    }
}
