//! The setup scripts leave the host's services alone (no Docker needed, and
//! nothing of the host is installed or changed, so this runs without the
//! `docker-e2e` feature):
//!  1. `apt_install_no_start` (scripts/lib.sh) puts a `policy-rc.d` answering
//!     101 in place for the install only, and afterwards restores the host's
//!     own `policy-rc.d` byte for byte and with its mode (or removes its own
//!     when there was none), also when the install fails. Checked with a
//!     stand-in `apt-get` and `dpkg-query` first on PATH and the policy path
//!     in a temp dir.
//!  2. No setup script stops, disables, masks or restarts a service, and the
//!     packages `scripts/up.sh` installs (scripts/deps.sh) hold none of the
//!     tests' packages.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{ensure, Result};
use tiered_e2e::env::repo_root;
use tiered_e2e::{Cmd, TempDir};

fn write_exec(path: &Path, body: &str) -> Result<()> {
    std::fs::write(path, body)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// `apt_install_no_start redis-server` in a fresh bash with the stand-ins;
/// whether it succeeded, and what the stand-in apt-get saw of the policy.
fn install(work: &Path, fail: bool) -> Result<(bool, String)> {
    let seen = work.join("seen");
    let _ = std::fs::remove_file(&seen);
    let path = format!(
        "{}:{}",
        work.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Cmd::new("bash")
        .args([
            "-c",
            "source \"$1/scripts/lib.sh\"; apt_install_no_start redis-server",
            "_",
        ])
        .arg(repo_root())
        .env("PATH", path)
        .env("TIERED_POLICY_RC_D", work.join("sbin/policy-rc.d"))
        .env("TIERED_POLICY_LOCK", work.join("lock"))
        .env("FAKE_APT_FAIL", if fail { "1" } else { "" })
        .output()?;
    Ok((
        out.status.success(),
        std::fs::read_to_string(&seen).unwrap_or_default(),
    ))
}

#[test]
fn a_policy_for_the_install_only_and_the_hosts_own_restored() -> Result<()> {
    let work = TempDir::new("tiered-e2e-deps")?;
    let work = work.path();
    std::fs::create_dir_all(work.join("bin"))?;
    std::fs::create_dir_all(work.join("sbin"))?;
    let policy = work.join("sbin/policy-rc.d");
    // Every package is missing; `apt-get install` records the answer of the
    // policy in force (as invoke-rc.d would ask it) and fails when told to.
    write_exec(&work.join("bin/dpkg-query"), "#!/bin/sh\nexit 1\n")?;
    write_exec(
        &work.join("bin/apt-get"),
        &format!(
            "#!/bin/sh\ncase \" $* \" in *\" update \"*) exit 0 ;; esac\n\
             if [ -x '{p}' ]; then '{p}' redis-server start; echo \"answer=$?\" >>'{s}'; \
             else echo answer=none >>'{s}'; fi\n\
             [ -z \"$FAKE_APT_FAIL\" ] || exit 100\nexit 0\n",
            p = policy.display(),
            s = work.join("seen").display()
        ),
    )?;

    // No policy-rc.d before: 101 during the install, none after.
    let (ok, seen) = install(work, false)?;
    ensure!(ok, "apt_install_no_start failed with a working apt-get");
    ensure!(
        seen.trim() == "answer=101",
        "policy during the install: {seen:?}"
    );
    ensure!(
        !policy.exists(),
        "the temporary policy-rc.d was left behind"
    );

    // The host's own policy-rc.d (another answer, its own mode): back as it was.
    let host_policy = "#!/bin/sh\n# the host's own\nexit 0\n";
    write_exec(&policy, host_policy)?;
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o750))?;
    let (ok, seen) = install(work, false)?;
    ensure!(ok, "apt_install_no_start failed with a host policy-rc.d");
    ensure!(
        seen.trim() == "answer=101",
        "policy during the install: {seen:?}"
    );
    ensure!(
        std::fs::read_to_string(&policy)? == host_policy,
        "host policy-rc.d content changed"
    );
    let mode = std::fs::metadata(&policy)?.permissions().mode() & 0o7777;
    ensure!(mode == 0o750, "host policy-rc.d mode is {mode:o}");

    // A failed install: an error, and the host's policy-rc.d still restored.
    let (ok, seen) = install(work, true)?;
    ensure!(!ok, "a failed apt-get install was not reported");
    ensure!(
        seen.trim() == "answer=101",
        "policy during the failed install: {seen:?}"
    );
    ensure!(
        std::fs::read_to_string(&policy)? == host_policy,
        "host policy-rc.d content changed by a failed install"
    );
    let strays: Vec<_> = std::fs::read_dir(work.join("sbin"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "policy-rc.d")
        .collect();
    ensure!(
        strays.is_empty(),
        "temp files left beside policy-rc.d: {strays:?}"
    );
    Ok(())
}

#[test]
fn no_setup_script_stops_a_service_and_up_installs_no_test_package() -> Result<()> {
    let scripts = repo_root().join("scripts");
    let service = [
        "systemctl",
        "service",
        "update-rc.d",
        "invoke-rc.d",
        "deb-systemd-invoke",
    ];
    let verbs = ["stop", "disable", "mask", "restart", "reload"];
    for name in [
        "deps.sh",
        "test-deps.sh",
        "lib.sh",
        "checks.sh",
        "up.sh",
        "down.sh",
    ] {
        let text = std::fs::read_to_string(scripts.join(name))?;
        for (n, line) in text.lines().enumerate() {
            // The code of the line, without its comment.
            let code = line.split('#').next().unwrap_or_default();
            let words: Vec<&str> = code
                .split(|c: char| c.is_whitespace() || c == ';' || c == '(' || c == ')')
                .collect();
            let stops = words.iter().any(|w| service.contains(w))
                && words.iter().any(|w| verbs.contains(w));
            ensure!(!stops, "scripts/{name}:{}: {line}", n + 1);
        }
    }
    // The runtime and test package sets, as lib.sh defines them.
    let sets = Cmd::new("bash")
        .args([
            "-c",
            "source \"$1/scripts/lib.sh\"; echo \"${TIERED_RUNTIME_PKGS[*]} ${TIERED_RUNTIME_NOSTART_PKGS[*]}\"; \
             echo \"${TIERED_TEST_PKGS[*]} ${TIERED_TEST_NOSTART_PKGS[*]}\"",
            "_",
        ])
        .arg(repo_root())
        .run()?;
    let mut lines = sets.lines();
    let runtime: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let test: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        test.contains(&"redis-server") && test.contains(&"prometheus"),
        "test packages: {test:?}"
    );
    let deps = std::fs::read_to_string(scripts.join("deps.sh"))?;
    for p in &test {
        ensure!(
            !runtime.contains(p),
            "test package {p} is in the runtime set up.sh installs"
        );
        ensure!(
            !deps.split(|c: char| c.is_whitespace()).any(|w| w == *p),
            "scripts/deps.sh (run by up.sh) names the test package {p}"
        );
    }
    Ok(())
}
