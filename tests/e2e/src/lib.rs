//! End-to-end tests of tiered on a real Docker daemon.
//!
//! The tests in `tests/` are compiled only with the cargo feature
//! `docker-e2e`; without it `cargo test` runs the unit tests of these helpers
//! and never touches Docker. Run them with
//! `cargo test -p tiered-e2e --features docker-e2e -- --test-threads=1`
//! after `scripts/build.sh` (the static binaries in `build/bin/`).
//!
//! # Layout
//! - [`cmd`]: run a program (`docker …`, a script) and capture its output; a
//!   failure is a [`cmd::CmdError`] carrying the command line and stderr.
//! - [`names`]: unique object names, `tiered-e2e-<pid>-<n>-<what>`.
//! - [`guard`]: RAII guards that remove plugins, volumes, containers, images,
//!   networks and temp dirs when dropped, on success, error or panic.
//! - [`lock`]: the flock on `/tmp/tiered-docker.lock` every test holds (shared;
//!   exclusive for a test that restarts dockerd).
//! - [`env`]: the repository, the binaries, a running daemon, free ports, and
//!   [`env::TestEnv`], what a test starts with.
//! - [`dockerd`]: stop and start the machine's daemon, and make sure it is back.
//! - [`plugin`]: the managed plugin laid out from `config.json` + `rootfs/` +
//!   `build/bin/tiered-plugin`, created, configured and enabled.
//! - [`image`]: a `FROM scratch` busybox image built without a pull.
//! - [`wait`]: polling with a deadline.
//! - [`http`]: a tiny HTTP/1.0 GET (metrics, health) and metric lookup.
//!
//! # Rules for tests
//! Every test is independent (no order by file or name): it takes the lock
//! through [`env::TestEnv`], names every Docker object with [`names::unique`]
//! and holds a guard for it, declared in creation order so that drops run in
//! reverse (containers before volumes before the plugin before the temp dir).

pub mod cmd;
pub mod dockerd;
pub mod env;
pub mod guard;
pub mod http;
pub mod image;
pub mod lock;
pub mod names;
pub mod plugin;
pub mod wait;

pub use cmd::{docker, docker_ok, Cmd, CmdError};
pub use env::TestEnv;
pub use guard::{Defer, Guard, TempDir};
pub use wait::{wait_for, wait_for_value};
