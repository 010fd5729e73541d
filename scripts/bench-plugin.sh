#!/usr/bin/env bash
# Benchmarks a tiered volume against Docker's `local` driver in the same run:
# one FROM-scratch busybox container per target writes N small files, each
# fsynced (dd conv=fsync), and times itself from /proc/uptime. Targets: a
# `local` volume, a tiered volume's root (primary tier) and its archived/
# (archive tier). Prints seconds per target and the tiered/local ratios.
#
#   scripts/bench-plugin.sh [--files N] [--bytes B] [--rounds R] [--plugin NAME]
#
# Without --plugin a plugin is created under a unique name with its tier
# sources in a temp dir beside /var/lib/docker's file system (/var/tmp), and
# removed at the end. Uses build/bin/tiered-plugin (scripts/build.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

files=1000 bytes=4096 rounds=3 plugin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --files) files=${2:?}; shift 2 ;;
    --bytes) bytes=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --plugin) plugin=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    *) die "unknown argument: $1 (accepted: --files N --bytes B --rounds R --plugin NAME)" ;;
  esac
done
for n in "$files" "$bytes" "$rounds"; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "not a positive number: $n"; done
ensure_docker

tmp=$(mktemp -d /var/tmp/tiered-bench-plugin.XXXXXX)
image=$(uniq_name bench):bench
vol_local=$(uniq_name local) vol_tiered=$(uniq_name tiered)
on_exit rm -rf "$tmp"
on_exit docker rmi -f "$image"
if [ -z "$plugin" ]; then
  plugin=$(uniq_name plugin)
  on_exit docker plugin rm -f "$plugin"
  "$TIERED_ROOT/scripts/plugin.sh" install --name "$plugin" \
    --primary-source "$tmp/primary" --archive-source "$tmp/archive"
fi
on_exit docker volume rm -f "$vol_local" "$vol_tiered"

mkdir -p "$tmp/image"
cp /bin/busybox "$tmp/image/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n' >"$tmp/image/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$tmp/image" >/dev/null 2>&1 || die "docker build failed"
docker volume create -d local "$vol_local" >/dev/null
docker volume create -d "$plugin" "$vol_tiered" >/dev/null

# Prints the seconds (centisecond resolution) the container took to write
# and fsync $files files of $bytes bytes into DIR of the mounted volume.
run_one() {
  local vol=$1 dir=$2
  docker run --rm -v "$vol:/v" "$image" sh -c '
    dir=$1 n=$2 b=$3
    mkdir -p "$dir/bench" && cd "$dir/bench"
    read t0 _ </proc/uptime
    i=0
    while [ $i -lt $n ]; do
      dd if=/dev/zero of=f$i bs=$b count=1 conv=fsync 2>/dev/null || exit 1
      i=$((i + 1))
    done
    read t1 _ </proc/uptime
    cd / && rm -rf "$dir/bench"
    echo "$t0 $t1" | awk "{ printf \"%.2f\", \$2 - \$1 }"
  ' sh "$dir" "$files" "$bytes"
}

declare -A total=([local]=0 [primary]=0 [archived]=0)
for r in $(seq 1 "$rounds"); do
  l=$(run_one "$vol_local" /v)
  p=$(run_one "$vol_tiered" /v)
  a=$(run_one "$vol_tiered" /v/archived)
  log "round $r: local ${l}s tiered-primary ${p}s tiered-archived ${a}s"
  total[local]=$(awk -v a="${total[local]}" -v b="$l" 'BEGIN { print a + b }')
  total[primary]=$(awk -v a="${total[primary]}" -v b="$p" 'BEGIN { print a + b }')
  total[archived]=$(awk -v a="${total[archived]}" -v b="$a" 'BEGIN { print a + b }')
done
awk -v l="${total[local]}" -v p="${total[primary]}" -v a="${total[archived]}" \
    -v n="$files" -v b="$bytes" -v r="$rounds" 'BEGIN {
  printf "bench-plugin: %d rounds of %d fsynced files of %d bytes\n", r, n, b
  printf "  local            %8.2fs  %8.0f files/s\n", l, (l > 0 ? n * r / l : 0)
  printf "  tiered primary   %8.2fs  %8.0f files/s\n", p, (p > 0 ? n * r / p : 0)
  printf "  tiered archived  %8.2fs  %8.0f files/s\n", a, (a > 0 ? n * r / a : 0)
  if (l > 0) {
    printf "ratio tiered-primary/local: %.3f\n", p / l
    printf "ratio tiered-archived/local: %.3f\n", a / l
  }
}'
