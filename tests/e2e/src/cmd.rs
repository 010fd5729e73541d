//! Running programs: `docker …`, the repository's scripts, host tools.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A program that could not be run or did not exit 0.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program could not be started (not installed, not executable).
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// The program ran and failed; `code` is `None` when a signal ended it.
    #[error("`{command}` failed ({code:?}): {stderr}")]
    Failed {
        command: String,
        code: Option<i32>,
        stdout: String,
        stderr: String,
    },
}

impl CmdError {
    /// What the program wrote on stderr (empty for [`CmdError::Spawn`]).
    pub fn stderr(&self) -> &str {
        match self {
            CmdError::Spawn { .. } => "",
            CmdError::Failed { stderr, .. } => stderr,
        }
    }
    /// The exit code, if the program ran and exited.
    pub fn code(&self) -> Option<i32> {
        match self {
            CmdError::Spawn { .. } => None,
            CmdError::Failed { code, .. } => *code,
        }
    }
}

/// A command line with its environment, run to completion with its output
/// captured.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            stdin: None,
        }
    }
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.args.push(a.as_ref().to_owned());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }
    pub fn envs<I, K, V>(mut self, vars: I) -> Cmd
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }
    pub fn dir(mut self, d: impl Into<PathBuf>) -> Cmd {
        self.dir = Some(d.into());
        self
    }
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(data.into());
        self
    }

    /// The command line as a shell would show it (for messages).
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs it; whatever the exit status, the raw output.
    pub fn output(&self) -> Result<Output, CmdError> {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let spawn_err = |source| CmdError::Spawn {
            command: self.display(),
            source,
        };
        let mut child = c.spawn().map_err(spawn_err)?;
        if let Some(data) = &self.stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin is piped");
            // A program that exits without reading its input is not an error here.
            let _ = pipe.write_all(data);
        }
        child.wait_with_output().map_err(spawn_err)
    }

    /// Runs it and returns stdout with surrounding white space trimmed;
    /// an exit status other than 0 is [`CmdError::Failed`].
    pub fn run(&self) -> Result<String, CmdError> {
        let out = self.output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout.trim().to_owned())
        } else {
            Err(CmdError::Failed {
                command: self.display(),
                code: out.status.code(),
                stdout,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// Runs it; true if it exited 0 (output discarded).
    pub fn ok(&self) -> bool {
        self.run().is_ok()
    }
}

/// `docker ARGS…`, stdout trimmed.
pub fn docker<I, S>(args: I) -> Result<String, CmdError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Cmd::new("docker").args(args).run()
}

/// `docker ARGS…` succeeded.
pub fn docker_ok<I, S>(args: I) -> bool
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Cmd::new("docker").args(args).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_stdout_trimmed() {
        assert_eq!(Cmd::new("echo").args(["a", "b"]).run().unwrap(), "a b");
    }

    #[test]
    fn failure_carries_code_and_stderr() {
        let err = Cmd::new("sh")
            .args(["-c", "echo oops >&2; exit 3"])
            .run()
            .unwrap_err();
        assert!(matches!(err, CmdError::Failed { code: Some(3), .. }));
        assert_eq!(err.stderr(), "oops");
    }

    #[test]
    fn missing_program_is_spawn_error() {
        let err = Cmd::new("/nonexistent/tiered-e2e").run().unwrap_err();
        match err {
            CmdError::Spawn { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
            }
            other => panic!("expected Spawn, got {other:?}"),
        }
    }

    #[test]
    fn env_and_stdin_reach_the_program() {
        let out = Cmd::new("sh")
            .args(["-c", "read x; echo \"$X$x\""])
            .env("X", "1")
            .stdin("2\n")
            .run()
            .unwrap();
        assert_eq!(out, "12");
    }
}
