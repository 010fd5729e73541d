//! Shared harness of the integration tests: a real plugin server (`run`)
//! on a temp socket with temp tier roots, real bind mounts (the tests run
//! as root), and a real hyper client over the unix socket.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tiered_plugin::{Config, NixSyscalls, RunError, Syscalls, Tiers};

pub struct Plugin {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub primary: PathBuf,
    pub archive: PathBuf,
    pub mount_root: PathBuf,
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub open: tiered_plugin::OpenOptions,
    server: Option<Server>,
}

struct Server {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
}

impl Plugin {
    /// A plugin with fresh temp roots, not started.
    pub fn new() -> Plugin {
        let dir = tempfile::Builder::new()
            .prefix("tiered-plugin-it.")
            .tempdir()
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        Plugin {
            socket: root.join("run/tiered.sock"),
            primary: root.join("primary"),
            archive: root.join("archive"),
            mount_root: root.join("volumes"),
            metrics_listen: None,
            open: Default::default(),
            dir,
            server: None,
        }
    }

    pub fn config(&self) -> Config {
        Config {
            socket: self.socket.clone(),
            tiers: Tiers {
                primary_root: self.primary.clone(),
                archive_root: self.archive.clone(),
                mount_root: self.mount_root.clone(),
                archive_dir_name: "archived".into(),
            },
            metrics_listen: self.metrics_listen,
            open: self.open.clone(),
        }
    }

    /// Starts a plugin with fresh roots.
    pub async fn started() -> Plugin {
        let mut p = Plugin::new();
        p.start().await;
        p
    }

    pub async fn start(&mut self) {
        self.start_with(Arc::new(NixSyscalls)).await
    }

    /// Starts the server with the given system calls and waits until the
    /// socket answers.
    pub async fn start_with(&mut self, sys: Arc<dyn Syscalls>) {
        assert!(self.server.is_none(), "already started");
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tiered_plugin::run_with(self.config(), sys, async move {
            let _ = rx.await;
        }));
        for _ in 0..200 {
            if task.is_finished() {
                panic!("plugin exited: {:?}", task.await.unwrap());
            }
            if tokio::net::UnixStream::connect(&self.socket).await.is_ok() {
                self.server = Some(Server { stop, task });
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("plugin socket {} never answered", self.socket.display());
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(&mut self) {
        let s = self.server.take().expect("not started");
        let _ = s.stop.send(());
        s.task.await.unwrap().unwrap();
        assert!(!self.socket.exists(), "socket removed on shutdown");
    }

    /// POSTs `body` to `path`; returns the status and the JSON answer.
    pub async fn call(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let (status, ct, bytes) = request(&self.socket, "POST", path, body.as_bytes()).await;
        let v: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{path}: non-json answer {bytes:?}: {e}"));
        if status.is_success() || v.get("Err").is_some() {
            assert_eq!(ct, "application/vnd.docker.plugins.v1+json", "{path}");
        }
        (status, v)
    }

    /// Calls `path` and asserts success (`Err` empty or absent).
    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.call(path, &body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{path} {body}: {v}");
        assert!(
            v.get("Err").is_none_or(|e| e == ""),
            "{path} {body}: unexpected error {v}"
        );
        v
    }

    /// Calls `path` and asserts an error whose `Err` holds `needle`.
    pub async fn err(&self, path: &str, body: &str, needle: &str) -> String {
        let (status, v) = self.call(path, body).await;
        assert_ne!(status, StatusCode::OK, "{path} {body}: {v}");
        let msg = v["Err"].as_str().unwrap_or_default().to_owned();
        assert!(
            msg.contains(needle),
            "{path} {body}: error {msg:?} lacks {needle:?}"
        );
        msg
    }

    pub async fn metrics_text(&self) -> String {
        let (status, _, bytes) = request(&self.socket, "GET", "/metrics", b"").await;
        assert_eq!(status, StatusCode::OK);
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.mount_root.join(name)
    }

    /// Every file and dir under the temp roots (not following mounts'
    /// contents twice: it lists paths only), with file contents.
    pub fn tree(&self) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        for root in [&self.primary, &self.archive, &self.mount_root] {
            walk(root, &mut out);
        }
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Option<Vec<u8>>)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.push((p.clone(), None));
            walk(&p, out);
        } else {
            let content = std::fs::read(&p).ok();
            out.push((p, content));
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // Never leave a test's bind mounts behind, even when it failed.
        let root = self.dir.path().canonicalize().unwrap();
        let mut pts: Vec<PathBuf> = mounts_under(&root);
        pts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in pts {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Mount points at or under `path`, in mount-table order (one per mount).
pub fn mounts_under(path: &Path) -> Vec<PathBuf> {
    let text = std::fs::read("/proc/self/mountinfo").unwrap();
    tiered_plugin::mounts::parse_mountinfo(&text)
        .into_iter()
        .filter(|p| tiered_plugin::mounts::is_at_or_under(p, path))
        .collect()
}

/// How many mounts sit exactly at `path`.
pub fn mount_count(path: &Path) -> usize {
    mounts_under(path).iter().filter(|p| *p == path).count()
}

/// One HTTP/1 request over the unix socket with hyper's client.
pub async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> (StatusCode, String, Bytes) {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "plugin")
        .header("accept", "application/vnd.docker.plugins.v1.2+json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, bytes)
}

/// The value of the sample `name` with labels `labels` in a scrape.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name}: unexpected value {other:?}"),
        })
}
