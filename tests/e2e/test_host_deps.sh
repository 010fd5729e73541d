#!/usr/bin/env bash
# The setup scripts leave the host's services alone:
#   1. apt_install_no_start (lib.sh) puts a policy-rc.d answering 101 in place
#      for the install only, and afterwards restores the host's own
#      policy-rc.d byte for byte (or removes its own when there was none),
#      also when the install fails. Checked with a stand-in apt-get and
#      dpkg-query on PATH and a policy-rc.d path in a temp dir, so nothing
#      of the host is installed or changed.
#   2. No setup script stops, disables, masks or restarts a service
#      (systemctl/service/update-rc.d/invoke-rc.d), and scripts/up.sh
#      installs none of the tests' packages.
# Needs no Docker daemon.
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

work=$(mktemp -d /tmp/tiered-t-deps.XXXXXX)
on_exit rm -rf "$work"
mkdir -p "$work/bin" "$work/sbin"

# Stand-ins: every package is missing; `apt-get install` records the policy
# in force (its content and its answer) and fails when asked to.
cat >"$work/bin/dpkg-query" <<'EOF'
#!/bin/sh
exit 1
EOF
cat >"$work/bin/apt-get" <<EOF
#!/bin/sh
case " \$* " in
  *" update "*) exit 0 ;;
esac
policy=$work/sbin/policy-rc.d
if [ -x "\$policy" ]; then "\$policy" redis-server start; echo "answer=\$?" >>"$work/seen"; else echo "answer=none" >>"$work/seen"; fi
[ -z "\${FAKE_APT_FAIL:-}" ] || exit 100
exit 0
EOF
chmod +x "$work/bin/dpkg-query" "$work/bin/apt-get"

# run [ENV=VALUE...]: apt_install_no_start redis-server in a fresh shell
# shellcheck disable=SC2016 # $1 is expanded by the inner shell
run() {
  env "$@" PATH="$work/bin:$PATH" TIERED_POLICY_RC_D="$work/sbin/policy-rc.d" TIERED_POLICY_LOCK="$work/lock" \
    bash -c 'source "$1/scripts/lib.sh"; apt_install_no_start redis-server' _ "$TIERED_ROOT"
}

# 1a. no policy-rc.d before: 101 during the install, none after.
run >/dev/null 2>&1 || fail "apt_install_no_start failed with a working apt-get"
expect_eq "$(cat "$work/seen")" "answer=101" "policy answer during the install"
[ ! -e "$work/sbin/policy-rc.d" ] || fail "the temporary policy-rc.d was left behind"

# 1b. the host's own policy-rc.d (another answer, its own mode): back as it was.
printf '#!/bin/sh\n# the host'"'"'s own\nexit 0\n' >"$work/sbin/policy-rc.d"
chmod 0750 "$work/sbin/policy-rc.d"
before=$(sha256sum <"$work/sbin/policy-rc.d")
rm -f "$work/seen"
run >/dev/null 2>&1 || fail "apt_install_no_start failed with a host policy-rc.d"
expect_eq "$(cat "$work/seen")" "answer=101" "policy answer during the install (host policy put aside)"
expect_eq "$(sha256sum <"$work/sbin/policy-rc.d")" "$before" "host policy-rc.d content after the install"
expect_eq "$(stat -c %a "$work/sbin/policy-rc.d")" 750 "host policy-rc.d mode after the install"

# 1c. a failed install: an error, and the host's policy-rc.d still restored.
rm -f "$work/seen"
if run FAKE_APT_FAIL=1 >/dev/null 2>&1; then fail "a failed apt-get install was not reported"; fi
expect_eq "$(cat "$work/seen")" "answer=101" "policy answer during the failed install"
expect_eq "$(sha256sum <"$work/sbin/policy-rc.d")" "$before" "host policy-rc.d content after a failed install"
[ -z "$(find "$work/sbin" -name '.policy-rc.d.tiered*')" ] || fail "temp files left beside policy-rc.d: $(ls -A "$work/sbin")"

# 2. nothing stops, disables or restarts a service; up.sh's packages are the
# runtime ones only.
setup=("$TIERED_ROOT/scripts/deps.sh" "$TIERED_ROOT/scripts/test-deps.sh" "$TIERED_ROOT/scripts/lib.sh"
  "$TIERED_ROOT/scripts/checks.sh" "$TIERED_ROOT/scripts/up.sh" "$TIERED_ROOT/scripts/down.sh")
if grep -nE '^[^#]*(systemctl|service|update-rc\.d|invoke-rc\.d|deb-systemd-invoke)[^#]*\b(stop|disable|mask|restart|reload)\b' "${setup[@]}"; then
  fail "a setup script stops, disables or restarts a service (above)"
fi
source "$(dirname "$0")/../../scripts/lib.sh"
for p in "${TIERED_TEST_PKGS[@]}" "${TIERED_TEST_NOSTART_PKGS[@]}"; do
  if printf '%s\n' "${TIERED_RUNTIME_PKGS[@]}" "${TIERED_RUNTIME_NOSTART_PKGS[@]}" | grep -qxF "$p"; then
    fail "test package $p is in the runtime set scripts/up.sh installs"
  fi
  grep -qw -- "$p" "$TIERED_ROOT/scripts/deps.sh" && fail "scripts/deps.sh (run by up.sh) names the test package $p"
done
log "host setup: policy-rc.d for the install only, host policy restored, no service stopped: ok"
