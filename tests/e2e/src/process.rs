//! Programs a test runs in the background (the static binaries, Prometheus),
//! their output in a log file, stopped on drop: SIGTERM, then SIGKILL after
//! 5 s.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::wait::wait_for;

pub struct Background {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Background {
    /// Starts `program args…` with stdout and stderr in `log`.
    pub fn start<I, S>(
        name: &str,
        program: impl AsRef<Path>,
        args: I,
        log: &Path,
    ) -> std::io::Result<Background>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = std::fs::File::create(log)?;
        let child = Command::new(program.as_ref())
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Background {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if it is still alive after 5 s; reaps it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let exited = wait_for(
            Duration::from_secs(5),
            &format!("{} to exit", self.name),
            || matches!(child.try_wait(), Ok(Some(_))),
        );
        if exited.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- {} (last 30 lines of {})\n{}",
                self.name,
                self.log.display(),
                self.log_tail(30)
            );
        }
        self.stop();
    }
}
