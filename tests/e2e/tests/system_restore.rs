//! Backup and restore round trip on the real daemon, with `scripts/restore.sh`:
//!  1. the compose deployment (plugin from the local registry on temp tiers,
//!     the two images, 256 KiB rotation) takes writes, each one acknowledged
//!     or not; the engine is stopped (it seals its log) and the snapshotter
//!     archives every log; its health check reports healthy;
//!  2. backup: the archive tier read through an `archive-of` volume mounted
//!     read-only, into a tar file on the host;
//!  3. the deployment, its volume and the volume's archive tier are destroyed;
//!  4. the backup goes into a new tiered volume's `archived/`, and
//!     `scripts/restore.sh --from THAT --into NEW` builds NEW: `archived/` and
//!     one snapshot owned 1000:1000; the source volume's files are unchanged;
//!     a second restore into NEW (which holds data now) is refused and changes
//!     nothing; a failed restore removes the volume it created;
//!  5. the deployment on NEW serves every acknowledged write.
#![cfg(feature = "docker-e2e")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tiered_e2e::env::{free_port, script};
use tiered_e2e::image::busybox_image;
use tiered_e2e::{docker, docker_ok, wait_for, Cmd, Defer, Guard, TestEnv};

/// A RESP2 connection that sends one command at a time.
struct Resp {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Resp {
    fn connect(port: u16) -> std::io::Result<Resp> {
        let w = TcpStream::connect(("127.0.0.1", port))?;
        w.set_read_timeout(Some(Duration::from_secs(10)))?;
        let r = BufReader::new(w.try_clone()?);
        Ok(Resp { w, r })
    }
    /// Sends one command; the reply's first line (`+OK`, `$5`, `-ERR …`).
    fn command(&mut self, parts: &[&[u8]]) -> std::io::Result<String> {
        let mut buf = format!("*{}\r\n", parts.len()).into_bytes();
        for p in parts {
            buf.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
            buf.extend_from_slice(p);
            buf.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&buf)?;
        self.line()
    }
    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end().to_owned())
    }
    /// GET: the value, or `None` for a nil reply.
    fn get(&mut self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        let head = self.command(&[b"GET", key.as_bytes()])?;
        let Some(len) = head.strip_prefix('$') else {
            return Err(std::io::Error::other(format!("GET {key}: {head}")));
        };
        let Ok(len) = usize::try_from(len.parse::<i64>().map_err(std::io::Error::other)?) else {
            return Ok(None);
        };
        let mut v = vec![0; len + 2];
        std::io::Read::read_exact(&mut self.r, &mut v)?;
        v.truncate(len);
        Ok(Some(v))
    }
}

fn value_for(key: &str) -> Vec<u8> {
    format!("{key}=").repeat(12).into_bytes()
}

/// SETs `prefix:i` for `secs` seconds; the keys whose SET answered `+OK`.
fn write_load(port: u16, prefix: &str, secs: u64) -> Result<Vec<String>> {
    let mut c = Resp::connect(port)?;
    let mut acked = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut i = 0u64;
    while Instant::now() < end {
        let key = format!("{prefix}:{i}");
        if c.command(&[b"SET", key.as_bytes(), &value_for(&key)])? == "+OK" {
            acked.push(key);
        }
        i += 1;
    }
    Ok(acked)
}

/// Every acknowledged key reads back with its value.
fn check_acked(port: u16, acked: &[String]) -> Result<()> {
    let mut c = Resp::connect(port)?;
    let mut bad = Vec::new();
    for key in acked {
        if c.get(key)?.as_deref() != Some(value_for(key).as_slice()) {
            bad.push(key.clone());
        }
    }
    ensure!(
        bad.is_empty(),
        "{} of {} acknowledged writes missing or wrong, e.g. {:?}",
        bad.len(),
        acked.len(),
        &bad[..bad.len().min(5)]
    );
    eprintln!("all {} acknowledged writes present", acked.len());
    Ok(())
}

fn pings(port: u16) -> bool {
    Resp::connect(port)
        .and_then(|mut c| c.command(&[b"PING"]))
        .is_ok_and(|r| r == "+PONG")
}

/// Files of `dir` (recursive) with their bytes, `volume.json` left out (the
/// plugin writes mount references there).
fn contents(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("read {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "volume.json") {
                let rel = p.strip_prefix(dir)?.display().to_string();
                out.insert(rel, std::fs::read(&p)?);
            }
        }
    }
    Ok(out)
}

fn count(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |es| {
        es.filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .count()
    })
}

#[test]
fn backup_destroy_restore_sh_every_acknowledged_write_back() -> Result<()> {
    let t = TestEnv::shared("restore")?;
    let (primary, archive) = (t.path("primary"), t.path("archive"));
    std::fs::create_dir_all(&primary)?;
    std::fs::create_dir_all(&archive)?;
    let plugin = t.name("plugin");
    let (vol, arch_vol, src, new, failed) = (
        t.name("data"),
        t.name("archive"),
        t.name("src"),
        t.name("new"),
        t.name("failed"),
    );
    let engine_image = format!("tiered-engine:{}", t.id);
    let snapshotter_image = format!("tiered-snapshotter:{}", t.id);
    let busybox = format!("{}:e2e", t.name("bb"));

    // Guards drop in reverse: compose down, volumes, images, plugin.
    let _plugin = Guard::plugin(&plugin);
    script("registry.sh")
        .args([
            "install", "--alias", &plugin, "--repo", &t.id, "--tag", "v1",
        ])
        .arg("--primary")
        .arg(&primary)
        .arg("--archive")
        .arg(&archive)
        .run()?;
    let _images = (
        Guard::image(&engine_image),
        Guard::image(&snapshotter_image),
    );
    script("images.sh").arg(&t.id).run()?;
    let _busybox = busybox_image(&busybox, &t.path("bb"), Some("1000:1000"))?;
    let _volumes: Vec<Guard> = [&vol, &arch_vol, &src, &new, &failed]
        .into_iter()
        .map(Guard::volume)
        .collect();

    let port = free_port();
    let mut env: Vec<(String, String)> = [
        ("COMPOSE_PROJECT_NAME", t.id.clone()),
        ("TIERED_ENGINE_IMAGE", engine_image.clone()),
        ("TIERED_SNAPSHOTTER_IMAGE", snapshotter_image.clone()),
        ("TIERED_VOLUME", vol.clone()),
        ("TIERED_DRIVER", plugin.clone()),
        ("TIERED_ENGINE_PORT", port.to_string()),
        ("TIERED_ENGINE_METRICS_PORT", free_port().to_string()),
        ("TIERED_SNAPSHOTTER_METRICS_PORT", free_port().to_string()),
        ("TIERED_ROTATE_BYTES", (256 * 1024).to_string()),
        ("TIERED_ROTATE_INTERVAL", "2".into()),
        ("TIERED_RESCAN_INTERVAL_SECS", "1".into()),
        ("TIERED_KEEP_SNAPSHOTS", "2".into()),
        ("TIERED_MIN_LOGS", "1".into()),
        ("TIERED_HEALTH_INTERVAL", "1s".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let compose = |env: &[(String, String)], args: &[&str]| -> Result<String> {
        Ok(script("compose.sh")
            .envs(env.iter().cloned())
            .args(args)
            .run()?)
    };
    let down_env = env.clone();
    let _down = Defer::new(move || {
        let _ = script("compose.sh")
            .envs(down_env)
            .args(["down", "--timeout", "10"])
            .run();
    });

    // --- 1. writes; stop; everything archived -------------------------------------
    compose(&env, &["up", "-d"])?;
    wait_for(Duration::from_secs(90), "the engine to answer", || {
        pings(port)
    })?;
    let acked = write_load(port, "load", 5)?;
    ensure!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );
    check_acked(port, &acked)?;
    compose(&env, &["stop", "--timeout", "30", "engine"])?;
    let data = primary.join(&vol).join("data");
    let archived_logs = archive.join(&vol).join("logs");
    wait_for(Duration::from_secs(90), "every log archived", || {
        count(&data, "cmdlog-") == 0 && count(&archived_logs, "cmdlog-") > 0
    })?;
    let snapshotter = compose(&env, &["ps", "-q", "snapshotter"])?;
    wait_for(
        Duration::from_secs(60),
        "the snapshotter's health check",
        || {
            docker(["inspect", "-f", "{{.State.Health.Status}}", &snapshotter])
                .is_ok_and(|s| s == "healthy")
        },
    )?;

    // --- 2. backup through an archive-of volume ----------------------------------------
    docker([
        "volume",
        "create",
        "-d",
        &plugin,
        "-o",
        &format!("archive-of={vol}"),
        &arch_vol,
    ])?;
    let backup = t.path("backup");
    std::fs::create_dir_all(&backup)?;
    Cmd::new("chown").arg("1000:1000").arg(&backup).run()?;
    let ro = format!("{arch_vol}:/archive:ro");
    let bk = format!("{}:/backup", backup.display());
    docker([
        "run",
        "--rm",
        "--name",
        &t.name("backup"),
        "-v",
        &ro,
        "-v",
        &bk,
        &busybox,
        "tar",
        "-C",
        "/archive",
        "-cf",
        "/backup/archive.tar",
        "logs",
        "snapshots",
    ])?;

    // --- 3. destroy ------------------------------------------------------------------------
    docker(["volume", "rm", &arch_vol])?;
    compose(&env, &["down", "-v", "--timeout", "30"])?;
    ensure!(
        !docker_ok(["volume", "inspect", &vol]),
        "{vol} survived compose down -v"
    );
    // keep-archive=true kept the archive tier's directory: destroy it too.
    Cmd::new("rm")
        .args(["-rf", "--one-file-system"])
        .arg(archive.join(&vol))
        .run()?;
    ensure!(
        !primary.join(&vol).exists(),
        "the primary tier still holds {vol}"
    );

    // --- 4. restore ------------------------------------------------------------------------
    docker([
        "volume",
        "create",
        "-d",
        &plugin,
        "-o",
        "uid=1000",
        "-o",
        "gid=1000",
        "-o",
        "mode=0750",
        &src,
    ])?;
    let srcv = format!("{src}:/v");
    let bkro = format!("{}:/backup:ro", backup.display());
    docker([
        "run",
        "--rm",
        "--name",
        &t.name("load"),
        "-v",
        &srcv,
        "-v",
        &bkro,
        &busybox,
        "tar",
        "-C",
        "/v/archived",
        "-xf",
        "/backup/archive.tar",
    ])?;
    let src_files = || -> Result<_> {
        Ok((
            contents(&primary.join(&src))?,
            contents(&archive.join(&src))?,
        ))
    };
    let src_before = src_files()?;
    ensure!(
        !src_before.1.is_empty(),
        "the backup put nothing into {src}"
    );

    let restore = |into: &str, extra: &[&str]| {
        script("restore.sh")
            .args(["--from", &src, "--into", into])
            .args(extra)
            .env("TIERED_SNAPSHOTTER_IMAGE", &snapshotter_image)
            .run()
    };
    let out = restore(&new, &[])?;
    eprintln!("{out}");
    let new_data = primary.join(&new).join("data");
    let mut names: Vec<String> = std::fs::read_dir(&new_data)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    ensure!(
        names.len() == 2
            && names[0] == "archived"
            && names[1].starts_with("snapshot-")
            && names[1].ends_with(".snap"),
        "the new volume holds {names:?}, not archived/ and one snapshot"
    );
    let meta = std::fs::metadata(new_data.join(&names[1]))?;
    ensure!(
        (meta.uid(), meta.gid()) == (1000, 1000),
        "the restored snapshot is owned by {}:{}",
        meta.uid(),
        meta.gid()
    );
    ensure!(
        src_files()? == src_before,
        "the restore changed the source volume"
    );

    // Into a volume that holds data now: refused, nothing changes.
    let new_before = contents(&new_data)?;
    match restore(&new, &[]) {
        Ok(out) => bail!("a second restore into {new} (which holds data) went through: {out}"),
        Err(e) => ensure!(e.code() == Some(1), "restore.sh failed oddly: {e}"),
    }
    ensure!(
        contents(&new_data)? == new_before,
        "a refused restore changed {new}"
    );
    // A failed restore (beyond the history) removes the volume it created.
    match restore(&failed, &["--to-seq", "999999999999"]) {
        Ok(out) => bail!("a restore beyond the history went through: {out}"),
        Err(e) => ensure!(e.code() == Some(1), "restore.sh failed oddly: {e}"),
    }
    ensure!(
        !docker_ok(["volume", "inspect", &failed]),
        "restore.sh left the volume it created for a failed restore"
    );
    ensure!(
        src_files()? == src_before,
        "the failed restores changed the source volume"
    );

    // --- 5. serve the restored volume ----------------------------------------------------
    for (k, v) in env.iter_mut() {
        if k == "TIERED_VOLUME" {
            v.clone_from(&new);
        }
    }
    compose(&env, &["up", "-d"])?;
    wait_for(
        Duration::from_secs(120),
        "the engine on the restored volume",
        || pings(port),
    )?;
    check_acked(port, &acked)?;
    let mut c = Resp::connect(port)?;
    ensure!(
        c.command(&[b"SET", b"after-restore", b"yes"])? == "+OK",
        "the restored engine refuses writes"
    );
    compose(&env, &["down", "--timeout", "30"])?;
    Ok(())
}
