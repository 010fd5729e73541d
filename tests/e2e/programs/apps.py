"""Real programs on the engine, written as people write them with redis-py
(unchanged, default settings: RESP3 when the library defaults to it, a
connection pool, automatic reconnects), each recording what the engine
acknowledged, so that a test can kill the engine in the middle and check
afterwards that every acknowledged effect is there and nothing is half
applied.

    apps.py PORT lock|script|producer|consumer|leaderboard OUT SECONDS
    apps.py PORT verify OUTDIR

Each worker appends one line per acknowledged operation to OUT (flushed at
once) and keeps going through connection errors until SECONDS have passed.
`verify` reads every OUT in OUTDIR and checks the invariants against the
engine; it prints what it checked and exits 1 on a violation.
"""

import os
import sys
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError, TimeoutError as RedisTimeoutError

FAILURES = (RedisConnectionError, RedisTimeoutError, LockError, ConnectionResetError, OSError)


def client(port, retries=True):
    """redis-py's defaults (RESP3 in redis-py 8, a pool), except that a
    worker does not let the library resend a command after a connection
    error: a resent LPUSH or INCR whose first send was applied would count
    twice, and the checks below count what was acknowledged exactly."""
    if retries:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5,
                       retry=Retry(NoBackoff(), 0))


def run(port, mode, out, seconds):
    r = client(port, retries=False)
    deadline = time.time() + seconds
    errors = 0
    i = 0
    script = r.register_script(
        "redis.call('INCR', KEYS[1]); redis.call('INCRBY', KEYS[2], ARGV[1]); return 1")
    with open(out, "a", buffering=1) as log:
        while time.time() < deadline:
            i += 1
            try:
                if mode == "lock":
                    # redis.lock.Lock: SET NX PX to acquire, EVALSHA to release/extend
                    # read-modify-write that only the lock makes safe
                    with r.lock("app:lock", timeout=3, blocking_timeout=5):
                        v = int(r.get("app:locked") or 0) + 1
                        r.set("app:locked", v)
                        log.write(f"incr {v}\n")
                elif mode == "script":
                    # two writes in one script: both or neither after a crash
                    script(keys=["app:script:a", "app:script:b"], args=[2])
                    log.write("script\n")
                elif mode == "producer":
                    r.lpush("app:queue", f"job-{os.getpid()}-{i}")
                    log.write(f"push job-{os.getpid()}-{i}\n")
                elif mode == "consumer":
                    got = r.brpop(["app:queue"], timeout=1)
                    if got is not None:
                        log.write(f"pop {got[1].decode()}\n")
                elif mode == "leaderboard":
                    # a MULTI/EXEC transaction: score and total move together
                    player = f"player-{i % 17}"
                    pts = 1 + i % 5
                    p = r.pipeline(transaction=True)
                    p.zincrby("app:board", pts, player)
                    p.incrby("app:board:total", pts)
                    p.execute()
                    log.write(f"score {pts}\n")
                    if i % 25 == 0:
                        top = r.zrevrange("app:board", 0, 2, withscores=True)
                        assert len(top) <= 3 and all(isinstance(s, float) for _, s in top)
                else:
                    sys.exit(f"unknown mode {mode}")
            except FAILURES as e:
                errors += 1
                log.write(f"error {type(e).__name__}\n")
                time.sleep(0.2)
    print(f"{mode}: {i} operations, {errors} errors")


def lines(outdir, mode):
    out = []
    for name in sorted(os.listdir(outdir)):
        if name.startswith(mode + "."):
            with open(os.path.join(outdir, name)) as f:
                out += [line.rstrip("\n") for line in f]
    return out


def verify(port, outdir):
    r = client(port)
    bad = []

    incrs = [int(x.split()[1]) for x in lines(outdir, "lock") if x.startswith("incr ")]
    locked = int(r.get("app:locked") or 0)
    if not incrs or locked < max(incrs):
        bad.append(f"lock: counter {locked}, acknowledged up to {max(incrs, default=None)}")
    if len(incrs) != len(set(incrs)):
        bad.append("lock: two holders wrote the same counter value (the lock did not exclude)")
    print(f"lock: {len(incrs)} acknowledged increments under the lock, counter {locked}")

    scripts = sum(1 for x in lines(outdir, "script") if x == "script")
    a = int(r.get("app:script:a") or 0)
    b = int(r.get("app:script:b") or 0)
    if b != 2 * a:
        bad.append(f"script half applied: a={a} b={b} (b must be 2a)")
    if a < scripts:
        bad.append(f"script: {scripts} acknowledged, a={a}")
    print(f"script: {scripts} acknowledged, a={a} b={b}")

    pushed = [x.split()[1] for x in lines(outdir, "producer") if x.startswith("push ")]
    popped = [x.split()[1] for x in lines(outdir, "consumer") if x.startswith("pop ")]
    consumer_errors = sum(1 for x in lines(outdir, "consumer") if x.startswith("error "))
    remaining = [v.decode() for v in r.lrange("app:queue", 0, -1)]
    if len(popped) != len(set(popped)):
        bad.append("queue: a job was delivered twice")
    lost = set(pushed) - set(popped) - set(remaining)
    # a pop served and made durable whose reply the kill cut off is gone,
    # as in Redis: at most one per failed consumer call
    if len(lost) > consumer_errors:
        bad.append(f"queue: {len(lost)} acknowledged jobs lost (consumer errors {consumer_errors}): {sorted(lost)[:5]}")
    print(f"queue: {len(pushed)} pushed, {len(popped)} popped, {len(remaining)} left, {len(lost)} lost in flight")

    scores = [int(x.split()[1]) for x in lines(outdir, "leaderboard") if x.startswith("score ")]
    board = r.zrange("app:board", 0, -1, withscores=True)
    total = int(r.get("app:board:total") or 0)
    if int(sum(s for _, s in board)) != total:
        bad.append(f"leaderboard: scores sum to {sum(s for _, s in board)}, total {total} (half a transaction)")
    if total < sum(scores):
        bad.append(f"leaderboard: total {total} < acknowledged {sum(scores)}")
    print(f"leaderboard: {len(scores)} acknowledged transactions, total {total}, {len(board)} players")

    for b_ in bad:
        print("VIOLATION:", b_, file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    port = int(sys.argv[1])
    if sys.argv[2] == "verify":
        verify(port, sys.argv[3])
    else:
        run(port, sys.argv[2], sys.argv[3], float(sys.argv[4]))
