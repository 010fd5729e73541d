# Helpers of the bash fault tests (test_plugin_faults.sh,
# test_plugin_zz_daemon_crash.sh), until they move to the Rust crate.
# Sourced, not run. Brings in scripts/lib.sh.
# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

fail() { log "FAIL: $*"; exit 1; }
# expect_eq GOT WANT WHAT
expect_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }
# status VOLUME KEY: one field of the volume's Status in `docker volume inspect`.
status() { docker volume inspect "$1" --format "{{index .Status \"$2\"}}"; }

# busybox_image IMAGE DIR [USER]: builds IMAGE FROM scratch with Debian's
# static busybox as its entry point (no pull), in build context DIR. The
# caller removes the image (on_exit).
busybox_image() {
  local image=$1 ctx=$2 user=${3:-} out
  mkdir -p "$ctx"
  cp /bin/busybox "$ctx/busybox"
  {
    printf 'FROM scratch\nCOPY busybox /bin/busybox\n'
    [ -z "$user" ] || printf 'USER %s\n' "$user"
    printf 'ENTRYPOINT ["/bin/busybox"]\n'
  } >"$ctx/Dockerfile"
  out=$(DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" 2>&1) || die "docker build $image: $out"
}
