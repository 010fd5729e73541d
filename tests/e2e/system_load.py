#!/usr/bin/env python3
"""Write load with acknowledgement tracking, and the check that follows it.

Used by tests/e2e/test_system_up.sh (the Rust tests have tiered_e2e::load) against the engine's Redis protocol:

  system_load.py write --port P --prefix X [--connections 4] [--seconds 10]
                       [--value-bytes 200] --out ACKED.json
      SET X:<conn>:<i> <value> on each connection, i = 0, 1, 2, ... one
      command at a time, until --seconds pass, SIGTERM/SIGINT, or the
      connection fails (the engine was killed). ACKED.json records, per
      connection, how many SETs were answered +OK: exactly those are
      acknowledged. Keys are written in order, so "count" says which.

  system_load.py check --port P ACKED.json [ACKED.json ...]
      Reads every acknowledged key back (MGET in batches) and fails, listing
      a few, if any is missing or holds another value.

Plain sockets and RESP2, no client library: the tests need to know exactly
which replies arrived.
"""

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time


def value_for(key: str, size: int) -> bytes:
    base = (key + "=").encode()
    return (base * (size // len(base) + 1))[:size]


def encode(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


class Conn:
    def __init__(self, port: int, timeout: float):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError(f"bad reply line {line!r}")

    def call(self, *parts: bytes):
        self.sock.sendall(encode(*parts))
        return self.reply()


def write(args) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    deadline = time.monotonic() + args.seconds
    counts = [0] * args.connections
    errors = [""] * args.connections

    def worker(c: int) -> None:
        try:
            conn = Conn(args.port, timeout=10)
        except OSError as e:
            errors[c] = f"connect: {e}"
            return
        i = 0
        while not stop.is_set() and time.monotonic() < deadline:
            key = f"{args.prefix}:{c}:{i}"
            try:
                r = conn.call(b"SET", key.encode(), value_for(key, args.value_bytes))
            except (OSError, ConnectionError, ValueError) as e:
                errors[c] = f"after {i} acknowledged: {e}"
                return
            if r != "OK":
                errors[c] = f"SET {key}: {r!r}"
                return
            i += 1
            counts[c] = i

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = {
        "prefix": args.prefix,
        "value_bytes": args.value_bytes,
        "counts": counts,
        "errors": errors,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, args.out)
    print(f"acknowledged {sum(counts)} writes on {args.connections} connections"
          + "".join(f"; conn {c}: {e}" for c, e in enumerate(errors) if e), file=sys.stderr)
    return 0


def check(args) -> int:
    conn = Conn(args.port, timeout=30)
    total = 0
    bad = []
    for path in args.acked:
        with open(path) as f:
            acked = json.load(f)
        for c, count in enumerate(acked["counts"]):
            for start in range(0, count, 500):
                keys = [f"{acked['prefix']}:{c}:{i}" for i in range(start, min(count, start + 500))]
                got = conn.call(b"MGET", *[k.encode() for k in keys])
                if not isinstance(got, list) or len(got) != len(keys):
                    print(f"MGET failed: {got!r}", file=sys.stderr)
                    return 1
                for k, v in zip(keys, got):
                    total += 1
                    if v != value_for(k, acked["value_bytes"]):
                        bad.append((k, v if v is None else v[:40]))
    if bad:
        print(f"{len(bad)} of {total} acknowledged writes lost or wrong, e.g. {bad[:5]}",
              file=sys.stderr)
        return 1
    if total == 0:
        print("nothing to check: no acknowledged writes", file=sys.stderr)
        return 1
    print(f"all {total} acknowledged writes present", file=sys.stderr)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--prefix", required=True)
    w.add_argument("--connections", type=int, default=4)
    w.add_argument("--seconds", type=float, default=10)
    w.add_argument("--value-bytes", type=int, default=200)
    w.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("acked", nargs="+")
    args = p.parse_args()
    return write(args) if args.cmd == "write" else check(args)


if __name__ == "__main__":
    sys.exit(main())
