//! Test images built without a pull.

use std::path::Path;

use anyhow::Context;

use crate::cmd::Cmd;
use crate::guard::Guard;

/// Builds `image` FROM scratch with Debian's static busybox (`/bin/busybox`
/// from busybox-static) as its entry point, in the build context `ctx`,
/// optionally with `USER user`. The guard removes the image.
pub fn busybox_image(image: &str, ctx: &Path, user: Option<&str>) -> anyhow::Result<Guard> {
    let guard = Guard::image(image);
    std::fs::create_dir_all(ctx)?;
    std::fs::copy("/bin/busybox", ctx.join("busybox"))
        .context("copy /bin/busybox (install busybox-static: scripts/deps.sh)")?;
    let mut dockerfile = String::from("FROM scratch\nCOPY busybox /bin/busybox\n");
    if let Some(u) = user {
        dockerfile += &format!("USER {u}\n");
    }
    dockerfile += "ENTRYPOINT [\"/bin/busybox\"]\n";
    std::fs::write(ctx.join("Dockerfile"), dockerfile)?;
    Cmd::new("docker")
        .args(["build", "-q", "-t", image])
        .arg(ctx)
        .env("DOCKER_BUILDKIT", "0")
        .run()?;
    Ok(guard)
}
