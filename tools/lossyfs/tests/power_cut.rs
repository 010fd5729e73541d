//! Mounts tiered-lossyfs over a temporary directory and checks, over many
//! seeded power cuts, that synced data and names always survive and that
//! unsynced ones are sometimes kept and sometimes lost, never half-renamed.
//! Needs root and /dev/fuse; without them it says so and passes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;

struct Mounted {
    child: Child,
    mountpoint: PathBuf,
    control: PathBuf,
}

impl Mounted {
    fn start(dir: &Path) -> Mounted {
        let (backing, mountpoint) = (dir.join("backing"), dir.join("mnt"));
        fs::create_dir(&backing).unwrap();
        fs::create_dir(&mountpoint).unwrap();
        let control = dir.join("ctl.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_tiered-lossyfs"))
            .args(["mount", "--backing"])
            .arg(&backing)
            .arg("--mountpoint")
            .arg(&mountpoint)
            .arg("--control")
            .arg(&control)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let m = Mounted {
            child,
            mountpoint,
            control,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !m.ctl("status").starts_with("ok") || !is_mounted(&m.mountpoint) {
            assert!(Instant::now() < deadline, "lossyfs did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    fn ctl(&self, cmd: &str) -> String {
        tiered_lossyfs::control::send(&self.control, cmd).unwrap_or_default()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).ok();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
        if is_mounted(&self.mountpoint) {
            Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status()
                .ok();
        }
    }
}

fn is_mounted(p: &Path) -> bool {
    let p = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.to_str().unwrap()))
}

fn fsync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

fn create(p: &Path, data: &[u8], sync: bool) {
    let mut f = File::create(p).unwrap();
    f.write_all(data).unwrap();
    if sync {
        f.sync_data().unwrap();
    }
}

#[test]
fn synced_data_survives_every_power_cut_and_unsynced_data_only_sometimes() {
    if !Path::new("/dev/fuse").exists() || !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = Mounted::start(dir.path());
    let synced: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    for seed in 0..30u64 {
        let d = m.mountpoint.join(format!("it{seed}"));
        fs::create_dir(&d).unwrap();
        fsync_dir(&m.mountpoint);
        // synced data, then an unsynced append
        create(&d.join("log"), &synced, true);
        // eight synced pages, then all overwritten unsynced
        let over: Vec<u8> = (0..8 * PAGE).map(|i| 0x10 + (i / PAGE) as u8).collect();
        create(&d.join("over"), &over, true);
        // a durable file replaced by a rename that is not synced
        create(&d.join("target"), b"old", true);
        fsync_dir(&d);
        let f = OpenOptions::new().write(true).open(d.join("log")).unwrap();
        f.write_all_at(&[7u8; 9000], 10_000).unwrap();
        let f = OpenOptions::new().write(true).open(d.join("over")).unwrap();
        let new: Vec<u8> = (0..8 * PAGE).map(|i| 0x80 + (i / PAGE) as u8).collect();
        f.write_all_at(&new, 0).unwrap();
        drop(f);
        create(&d.join("unnamed"), b"data synced, name not", true);
        create(&d.join("tmp"), b"new", true);
        fs::rename(d.join("tmp"), d.join("target")).unwrap();
        assert!(m.ctl("status").starts_with("ok pages="));

        let reply = m.ctl(&format!("cut {seed}"));
        assert!(reply.starts_with("ok "), "{reply}");

        let log = fs::read(d.join("log")).unwrap();
        assert!(
            log.len() >= 10_000 && log[..10_000] == synced[..],
            "seed {seed}"
        );
        match log.len() {
            19_000 if log[10_000..].iter().all(|b| *b == 7) => {
                *seen.entry("append kept").or_default() += 1
            }
            10_000 => *seen.entry("append lost").or_default() += 1,
            _ => *seen.entry("append partly kept").or_default() += 1,
        }
        let got = fs::read(d.join("over")).unwrap();
        assert_eq!(got.len(), 8 * PAGE);
        for (i, page) in got.chunks(PAGE).enumerate() {
            let (old, new) = (0x10 + i as u8, 0x80 + i as u8);
            let kind = if page.iter().all(|b| *b == new) {
                "page kept"
            } else if page.iter().all(|b| *b == old) {
                "page old"
            } else if page.iter().all(|b| *b == 0) {
                "page zeroed"
            } else {
                let cut = page.iter().position(|b| *b != new).unwrap();
                assert!(
                    cut % 512 == 0 && page[cut..].iter().all(|b| *b == old),
                    "seed {seed}: page {i} neither new, old, zeros nor torn"
                );
                "page torn"
            };
            *seen.entry(kind).or_default() += 1;
        }
        match fs::read(d.join("unnamed")) {
            Ok(b) => {
                assert_eq!(b, b"data synced, name not");
                *seen.entry("name kept").or_default() += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
                *seen.entry("name lost").or_default() += 1;
            }
        }
        let target = fs::read(d.join("target")).unwrap();
        let tmp = fs::read(d.join("tmp")).ok();
        match (target.as_slice(), tmp.as_deref()) {
            (b"new", None) => *seen.entry("rename kept").or_default() += 1,
            (b"old", Some(b"new")) => *seen.entry("rename lost").or_default() += 1,
            (b"old", None) => *seen.entry("rename and create lost").or_default() += 1,
            other => panic!("seed {seed}: half a rename: {other:?}"),
        }
        assert_eq!(m.ctl("status"), "ok pages=0 dir_ops=0");
        // times pass through (a copy keeps its source's mtime)
        let when = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000 + seed);
        let f = OpenOptions::new().write(true).open(d.join("log")).unwrap();
        f.set_times(std::fs::FileTimes::new().set_modified(when))
            .unwrap();
        assert_eq!(
            fs::metadata(d.join("log")).unwrap().modified().unwrap(),
            when
        );
    }
    for kind in [
        "append kept",
        "append lost",
        "page kept",
        "page old",
        "name kept",
        "name lost",
        "rename kept",
        "rename lost",
    ] {
        assert!(
            seen.get(kind).is_some_and(|n| *n > 0),
            "{kind} never seen: {seen:?}"
        );
    }
}
