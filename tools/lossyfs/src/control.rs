//! The control socket: one command per connection, one line each way.
//!
//! - `cut <seed>` -> `ok <report>`: a power cut ([`crate::LossyFs::power_cut`]).
//! - `status` -> `ok pages=<n> dir_ops=<n>`: what a cut could lose now.
//!
//! Anything else -> `err <why>`.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use crate::LossyFs;

/// Answers one command line.
pub fn answer(fs: &LossyFs, line: &str) -> String {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("cut"), Some(seed), None) => match seed.parse::<u64>() {
            Ok(seed) => format!("ok {}", fs.power_cut(seed)),
            Err(_) => format!("err bad seed {seed:?}"),
        },
        (Some("status"), None, None) => {
            let (pages, ops) = fs.status();
            format!("ok pages={pages} dir_ops={ops}")
        }
        _ => format!("err unknown command {line:?}"),
    }
}

/// Serves the socket at `path` (replaced if it exists) on a thread.
pub fn serve(fs: LossyFs, path: &Path) -> io::Result<std::thread::JoinHandle<()>> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    Ok(std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut line = String::new();
            if BufReader::new(&conn).read_line(&mut line).is_err() {
                continue;
            }
            let reply = answer(&fs, line.trim());
            if let Err(e) = writeln!(conn, "{reply}") {
                tracing::warn!("lossyfs: control reply lost: {e}");
            }
        }
    }))
}

/// Sends one command to the socket at `path`; the reply line.
pub fn send(path: &Path, command: &str) -> io::Result<String> {
    let mut conn = UnixStream::connect(path)?;
    writeln!(conn, "{command}")?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_answered_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let fs = LossyFs::new(dir.path()).unwrap();
        assert_eq!(answer(&fs, "status"), "ok pages=0 dir_ops=0");
        assert!(answer(&fs, "cut 7").starts_with("ok pages_kept=0 "));
        assert!(answer(&fs, "cut seven").starts_with("err "));
        assert!(answer(&fs, "cut 1 2").starts_with("err "));
        assert!(answer(&fs, "reboot").starts_with("err "));
        let sock = dir.path().join("ctl.sock");
        serve(fs, &sock).unwrap();
        assert_eq!(send(&sock, "status").unwrap(), "ok pages=0 dir_ops=0");
        assert!(dir.path().join(crate::STASH).is_dir());
    }
}
