#!/usr/bin/env bash
# Power-loss test of the engine on a real file system that loses what was not
# synced (tools/lossyfs, see docs/testing.md "Power-loss testing"):
# each round starts the engine on the lossy mount, checks that it came up
# without flags and holds every acknowledged write, writes from several
# clients, kills the engine (-9) at a random moment and cuts the power
# (a seeded subset of the unsynced pages and directory changes is lost).
#
#   scripts/power-loss.sh [ROUNDS]     default 20; SEED=n picks the first seed
#
# Needs root and /dev/fuse. Exits 1 on the first refused start or lost write,
# naming the round's seed (a cut replays from its seed and the same history).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$TIERED_ROOT"

rounds=${1:-20}
seed0=${SEED:-$RANDOM}
if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ]; then die "needs root and /dev/fuse"; fi
apt_install fuse3 python3
log "building tiered-engine and tiered-lossyfs"
cargo build --locked -q -p tiered-engine -p tiered-lossyfs
bin="${CARGO_TARGET_DIR:-$TIERED_ROOT/target}/debug"

work=$(mktemp -d /tmp/tiered-power-loss.XXXXXX)
mkdir "$work/backing" "$work/mnt"
"$bin/tiered-lossyfs" mount --backing "$work/backing" --mountpoint "$work/mnt" \
  --control "$work/ctl.sock" 2>"$work/lossyfs.log" &
lfs=$!
on_exit "rm -rf '$work'"
on_exit "umount -l '$work/mnt'"
on_exit "kill $lfs; wait $lfs"
wait_for 20 "$bin/tiered-lossyfs" ctl "$work/ctl.sock" status || die "lossyfs did not start (see $work/lossyfs.log)"
mkdir "$work/mnt/data"
sync "$work/mnt"   # the data dir's own name, durably
port=$((20000 + RANDOM % 20000))

# A small RESP client: `client write PORT FILE PREFIX` sets keys from 8
# connections and appends "key value" to FILE for each +OK until killed;
# `client check PORT FILE...` prints how many acknowledged writes are missing.
client() {
  python3 - "$@" <<'PY'
import socket, sys, threading, os
cmd, port = sys.argv[1], int(sys.argv[2])
def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
def readline(f):
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    return line
if cmd == "write":
    path, prefix = sys.argv[3], sys.argv[4]
    lock = threading.Lock()
    out = open(path, "a")
    def writer(w):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            f = s.makefile("rb")
            i = 0
            while True:
                i += 1
                k, v = "%s-%d-%d" % (prefix, w, i), os.urandom(8 + i % 200).hex()
                s.sendall(resp("SET", k, v))
                if readline(f) == b"+OK\r\n":
                    with lock:
                        out.write("%s %s\n" % (k, v))
                        out.flush()
        except (OSError, ConnectionError):
            pass
    ts = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in ts: t.start()
    for t in ts: t.join()
else:
    want = {}
    for path in sys.argv[3:]:
        for line in open(path):
            k, v = line.split()
            want[k] = v
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    missing, keys = 0, list(want)
    for i in range(0, len(keys), 500):
        batch = keys[i:i + 500]
        s.sendall(b"".join(resp("GET", k) for k in batch))
        for k in batch:
            head = readline(f)
            if head.startswith(b"$-1"):
                missing += 1
                continue
            got = f.read(int(head[1:]) + 2)[:-2].decode()
            if got != want[k]:
                missing += 1
    print(missing)
PY
}

acked=0
for round in $(seq 1 "$rounds"); do
  seed=$((seed0 + round))
  "$bin/tiered-engine" --dir "$work/mnt/data" --listen "127.0.0.1:$port" \
    --rotate-bytes 262144 >>"$work/engine.log" 2>&1 &
  engine=$!
  if ! wait_for 30 python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))"; then
    tail -n 5 "$work/engine.log" >&2
    die "round $round: the engine did not start after the cut of seed $((seed - 1))"
  fi
  shopt -s nullglob
  files=("$work"/acked.*)
  shopt -u nullglob
  if [ ${#files[@]} -gt 0 ]; then
    lost=$(client check "$port" "${files[@]}")
    acked=$(cat "${files[@]}" | wc -l)
    [ "$lost" = 0 ] || die "round $round: $lost of $acked acknowledged writes lost (cut seed $((seed - 1)))"
  fi
  log "round $round: engine up, all $acked acknowledged writes there"
  client write "$port" "$work/acked.$round" "r$round" &
  writer=$!
  sleep "$(python3 -c "import random; print(random.Random($seed).uniform(0.3, 2.0))")"
  kill -9 "$engine"
  wait "$engine" 2>/dev/null || true
  wait "$writer" 2>/dev/null || true
  log "round $round: killed; $("$bin/tiered-lossyfs" ctl "$work/ctl.sock" status); cut $seed: $("$bin/tiered-lossyfs" ctl "$work/ctl.sock" cut "$seed")"
done
log "power-loss: $rounds rounds (seeds $((seed0 + 1))..$((seed0 + rounds))), $acked acknowledged writes, none lost, every start without flags"
