//! RAII cleanup: each guard removes its object when dropped, whether the test
//! passed, returned an error or panicked. Declare guards in the order the
//! objects are created; Rust drops locals in reverse, which is the order
//! Docker needs (containers, then volumes, then the plugin, then the dirs).

use std::path::{Path, PathBuf};

use crate::cmd::Cmd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `docker plugin disable -f` + `docker plugin rm -f`.
    Plugin,
    /// `docker volume rm -f`.
    Volume,
    /// `docker rm -fv`.
    Container,
    /// `docker image rm -f`.
    Image,
    /// `docker network rm`.
    Network,
}

/// Removes one Docker object on drop. Removing it earlier in the test is fine:
/// the drop then finds nothing and stays quiet.
#[derive(Debug)]
#[must_use = "the object is removed when the guard is dropped"]
pub struct Guard {
    kind: Kind,
    name: String,
}

impl Guard {
    pub fn new(kind: Kind, name: impl Into<String>) -> Guard {
        Guard {
            kind,
            name: name.into(),
        }
    }
    pub fn plugin(name: impl Into<String>) -> Guard {
        Guard::new(Kind::Plugin, name)
    }
    pub fn volume(name: impl Into<String>) -> Guard {
        Guard::new(Kind::Volume, name)
    }
    pub fn container(name: impl Into<String>) -> Guard {
        Guard::new(Kind::Container, name)
    }
    pub fn image(name: impl Into<String>) -> Guard {
        Guard::new(Kind::Image, name)
    }
    pub fn network(name: impl Into<String>) -> Guard {
        Guard::new(Kind::Network, name)
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// Removes the object now (the drop then has nothing left to do).
    pub fn remove(&self) {
        let n = self.name.as_str();
        let cmds: Vec<Vec<&str>> = match self.kind {
            Kind::Plugin => vec![
                vec!["plugin", "disable", "-f", n],
                vec!["plugin", "rm", "-f", n],
            ],
            Kind::Volume => vec![vec!["volume", "rm", "-f", n]],
            Kind::Container => vec![vec!["rm", "-fv", n]],
            Kind::Image => vec![vec!["image", "rm", "-f", n]],
            Kind::Network => vec![vec!["network", "rm", n]],
        };
        let last = cmds.len() - 1;
        for (i, args) in cmds.into_iter().enumerate() {
            if let Err(e) = Cmd::new("docker").args(&args).run() {
                // Only the removal itself matters (disable of a plugin
                // that is already disabled fails and is fine).
                if i == last && !is_absent(e.stderr()) {
                    eprintln!("cleanup: {e}");
                }
            }
        }
    }
}

/// Docker's ways of saying the object is already gone.
fn is_absent(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("no such") || s.contains("not found") || s.is_empty()
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Runs a closure on drop (stop a process, restore a setting, print
/// diagnostics).
#[must_use = "the closure runs when the guard is dropped"]
pub struct Defer<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Defer<F> {
    pub fn new(f: F) -> Defer<F> {
        Defer(Some(f))
    }
    /// Drops the guard without running the closure.
    pub fn cancel(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for Defer<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// A directory under `/tmp` removed on drop with `rm -rf --one-file-system`:
/// a mount left behind inside it (a failed test's bind mount) is never
/// crossed.
#[derive(Debug)]
#[must_use = "the directory is removed when the guard is dropped"]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// `/tmp/<prefix>.XXXXXX`, mode 0755 (containers running as another user
    /// must be able to reach what the test puts inside).
    pub fn new(prefix: &str) -> std::io::Result<TempDir> {
        let template = format!("/tmp/{prefix}.XXXXXX");
        let path = nix::unistd::mkdtemp(template.as_str()).map_err(std::io::Error::from)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(TempDir { path, keep: false })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
    /// Leave the directory on drop (to look at it after a failure).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep || std::env::var_os("TIERED_E2E_KEEP").is_some() {
            eprintln!("keeping {}", self.path.display());
            return;
        }
        if let Err(e) = Cmd::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&self.path)
            .run()
        {
            eprintln!("cleanup: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dir_is_removed_on_drop_and_on_panic() {
        let t = TempDir::new("tiered-e2e-unit").unwrap();
        let p = t.path().to_owned();
        std::fs::create_dir_all(t.join("a/b")).unwrap();
        std::fs::write(t.join("a/b/f"), "x").unwrap();
        assert!(p.is_dir());
        drop(t);
        assert!(!p.exists());

        let p2 = std::panic::catch_unwind(|| {
            let t = TempDir::new("tiered-e2e-unit").unwrap();
            let p = t.path().to_owned();
            std::panic::panic_any(p);
        })
        .unwrap_err()
        .downcast::<PathBuf>()
        .unwrap();
        assert!(!p2.exists());
    }

    #[test]
    fn defer_runs_unless_cancelled() {
        let hit = std::cell::Cell::new(0);
        drop(Defer::new(|| hit.set(hit.get() + 1)));
        Defer::new(|| hit.set(hit.get() + 10)).cancel();
        assert_eq!(hit.get(), 1);
    }
}
