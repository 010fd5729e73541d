"""Drives a server with redis-py, unchanged, and checks what it answers.

Usage: redis_py_check.py PORT PROTOCOL   (PROTOCOL: default, 2 or 3)

Run by engine/tests/clients.rs against the engine and against redis-server.
Every check is an assertion (a failed one exits non-zero); values that must
be the same on both servers are printed one per line as `name=repr`, and the
Rust test compares the two outputs line by line. The database is expected
empty at the start.
"""

import sys
import threading

import redis

port = int(sys.argv[1])
proto = sys.argv[2]
kw = {} if proto == "default" else {"protocol": int(proto)}
out = []


def show(name, value):
    out.append(f"{name}={value!r}")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


pool = redis.ConnectionPool(host="127.0.0.1", port=port, max_connections=16, **kw)
r = redis.Redis(connection_pool=pool)

# the protocol redis-py negotiated (default is RESP3: HELLO 3)
want = 3 if proto == "default" else int(proto)
hello = r.execute_command("HELLO")
fields = hello if isinstance(hello, dict) else dict(zip(hello[::2], hello[1::2]))
check(fields[b"proto"] == want, f"HELLO proto {hello}")
check(isinstance(hello, dict) == (want == 3), "RESP3 answers a map, RESP2 a flat array")
show("ping", r.ping())

# strings, counters, expiry
show("set", r.set("s", "v"))
show("get", r.get("s"))
show("set_nx", r.set("s", "w", nx=True))
show("incr", r.incr("n"))
show("incrby", r.incrby("n", 41))
show("decr", r.decr("n"))
show("incrbyfloat", r.incrbyfloat("f", 1.5))
show("expire", r.expire("s", 100))
ttl = r.ttl("s")
check(95 <= ttl <= 100, f"ttl {ttl}")
pttl = r.pttl("s")
check(90_000 < pttl <= 100_000, f"pttl {pttl}")
show("persist", r.persist("s"))
show("ttl_after_persist", r.ttl("s"))
show("ttl_missing", r.ttl("missing"))
show("mset", r.mset({"a": "1", "b": "2"}))
show("mget", r.mget(["a", "b", "missing"]))
show("exists", r.exists("a", "b", "missing"))
show("delete", r.delete("a", "missing"))
show("type", r.type("b"))
try:
    r.incr("s")
    check(False, "INCR on a non-integer must fail")
except redis.ResponseError as e:
    show("incr_err", str(e))

# hashes
show("hset", r.hset("h", mapping={"f1": "v1", "f2": "v2", "f3": "3"}))
show("hgetall", sorted(r.hgetall("h").items()))
show("hget", r.hget("h", "f1"))
show("hincrby", r.hincrby("h", "f3", 4))
show("hlen", r.hlen("h"))
show("hdel", r.hdel("h", "f1", "nope"))
show("hkeys", sorted(r.hkeys("h")))
try:
    r.hgetall("s")
    check(False, "HGETALL on a string must fail")
except redis.ResponseError as e:
    show("wrongtype", str(e))

# connection naming, INFO, CONFIG GET
show("client_setname", r.client_setname("py-check"))
c = redis.Redis(host="127.0.0.1", port=port, **kw)
c.client_setname("py-named")
show("client_getname", c.client_getname())
names = [cl.get("name") for cl in c.client_list()]
check("py-named" in names, f"CLIENT LIST names {names}")
c.close()
info = r.info()
check(isinstance(info, dict) and "redis_version" in info, "INFO has redis_version")
check(isinstance(info.get("connected_clients"), int), "INFO connected_clients is a number")
check("used_memory" in r.info("memory"), "INFO memory has used_memory")
check("db0" in r.info("keyspace"), "INFO keyspace has db0")
show("dbsize", r.dbsize())
cfg = r.config_get("maxmemory")
check(set(cfg) == {"maxmemory"}, f"CONFIG GET maxmemory {cfg}")
check(cfg["maxmemory"].isdigit(), f"CONFIG GET maxmemory value {cfg}")
cfg = r.config_get("*max*")
check(isinstance(cfg, dict) and "maxmemory" in cfg, "CONFIG GET pattern")

# pipelines without a transaction: replies in order, errors in place
p = r.pipeline(transaction=False)
p.set("p1", "x").get("p1").incr("pc").incr("pc").hset("ph", "k", "v").hgetall("ph").incr("p1")
res = p.execute(raise_on_error=False)
show("pipeline", [x if not isinstance(x, Exception) else type(x).__name__ for x in res])

# pipeline with a transaction: MULTI ... EXEC
p = r.pipeline(transaction=True)
p.set("t1", "a").incr("tc").get("t1").expire("t1", 50)
show("multi_exec", p.execute())
check(r.ttl("t1") > 0, "EXEC applied the EXPIRE")

# an error queued inside MULTI aborts EXEC (EXECABORT)
p = r.pipeline(transaction=True)
p.set("t2", "a").execute_command("NOSUCHCOMMAND")
try:
    p.execute()
    check(False, "EXECABORT expected")
except redis.ResponseError as e:
    show("execabort", type(e).__name__)
show("t2_after_abort", r.get("t2"))

# WATCH via Redis.transaction: optimistic increment from several threads
r.set("w", 0)


def watched_incr(pipe):
    v = int(pipe.get("w"))
    pipe.multi()
    pipe.set("w", v + 1)


def watcher():
    for _ in range(25):
        r.transaction(watched_incr, "w")


ts = [threading.Thread(target=watcher) for _ in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
show("watch_total", r.get("w"))

# atomicity of transaction=True across pooled connections: writers bump two
# counters in one MULTI/EXEC, readers read both in one MULTI/EXEC and must
# never see them apart
r.mset({"ta": 0, "tb": 0})
errors = []
stop = threading.Event()


def writer():
    for _ in range(200):
        p = r.pipeline(transaction=True)
        p.incr("ta").incr("tb")
        p.execute()


def reader():
    while not stop.is_set():
        p = r.pipeline(transaction=True)
        p.get("ta").get("tb")
        a, b = p.execute()
        if a != b:
            errors.append((a, b))


ws = [threading.Thread(target=writer) for _ in range(4)]
rs = [threading.Thread(target=reader) for _ in range(2)]
for t in ws + rs:
    t.start()
for t in ws:
    t.join()
stop.set()
for t in rs:
    t.join()
check(not errors, f"transaction seen half applied: {errors[:5]}")
show("txn_counters", r.mget(["ta", "tb"]))

# a pool used from several threads: plain commands and non-transactional
# pipelines
def worker(i):
    for j in range(100):
        r.incr("pool_counter")
        r.set(f"pool:{i}:{j}", j)
    p = r.pipeline(transaction=False)
    for j in range(100):
        p.get(f"pool:{i}:{j}")
    vals = p.execute()
    if vals != [str(j).encode() for j in range(100)]:
        errors.append(("pool", i))


ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
for t in ts:
    t.start()
for t in ts:
    t.join()
check(not errors, f"pool workers: {errors[:5]}")
show("pool_counter", r.get("pool_counter"))

# scan_iter across pooled connections: every thread sees every key once
# (a full iteration may repeat keys; the set must be exact)
for i in range(0, 1000, 100):
    r.mset({f"scan:{k}": k for k in range(i, i + 100)})
want = {f"scan:{k}".encode() for k in range(1000)}
results = {}


def scanner(i):
    results[i] = set(r.scan_iter(match="scan:*", count=37 + i))


ts = [threading.Thread(target=scanner, args=(i,)) for i in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
for i, got in results.items():
    check(got == want, f"scan_iter thread {i}: {len(got)} keys, missing {sorted(want - got)[:5]}")
show("scan_count", len(set(r.scan_iter(count=1000))))
show("scan_type_hash", sorted(r.scan_iter(_type="hash")))
r.hset("big", mapping={f"f{k}": k for k in range(300)})
show("hscan_iter", len(dict(r.hscan_iter("big", count=20))))

print("\n".join(out))
pool.disconnect()
