"""redis-py's PubSub, unchanged, against a server: prints what it sees, one
line per check, so that engine/tests/pubsub.rs can compare the engine's
lines with redis-server's.

Usage: redis_py_pubsub.py PORT PROTOCOL   (PROTOCOL: 2 or 3)
"""

import sys
import time

import redis

port = int(sys.argv[1])
proto = int(sys.argv[2])
r = redis.Redis(host="127.0.0.1", port=port, protocol=proto)
out = []


def show(name, value):
    out.append(f"{name}={value!r}")


def next_message(ps, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        m = ps.get_message(timeout=0.2)
        if m is not None:
            return m
    raise AssertionError("no message")


ps = r.pubsub()
ps.subscribe("news", "sport")
show("sub1", next_message(ps))
show("sub2", next_message(ps))
ps.psubscribe("w*")
show("psub", next_message(ps))
show("numsub", r.pubsub_numsub("news", "none"))
show("numpat", r.pubsub_numpat())
show("channels", sorted(r.pubsub_channels()))
show("publish", r.publish("news", "hello"))
show("msg", next_message(ps))
show("publish_pattern", r.publish("weather", "rain"))
show("pmsg", next_message(ps))
show("ping", ps.ping())
show("pong", next_message(ps))

# handlers run by a thread
got = []
ps2 = r.pubsub(ignore_subscribe_messages=True)
ps2.subscribe(**{"t": lambda m: got.append(m["data"])})
th = ps2.run_in_thread(sleep_time=0.01)
time.sleep(0.2)
for i in range(5):
    r.publish("t", f"m{i}")
end = time.time() + 5
while len(got) < 5 and time.time() < end:
    time.sleep(0.01)
th.stop()
th.join()
show("thread", got)

# keyspace notifications
r.config_set("notify-keyspace-events", "KEA")
ps3 = r.pubsub(ignore_subscribe_messages=True)
ps3.psubscribe("__keyspace@0__:*")
time.sleep(0.1)
ps3.get_message(timeout=0.1)
r.set("k", "v")
r.lpush("l", "a")
r.delete("k", "l")
show("ks", [next_message(ps3)["data"] for _ in range(4)])
r.config_set("notify-keyspace-events", "")

ps.unsubscribe()
ps.punsubscribe()
# (the order of UNSUBSCRIBE's replies, and so their counts, is Redis's dict order)
show("unsub", sorted((m["type"], m["channel"]) for m in (next_message(ps) for _ in range(3))))
show("numsub_after", r.pubsub_numsub("news"))
ps.close()
ps2.close()
ps3.close()
r.delete("k", "l")
print("\n".join(out))
