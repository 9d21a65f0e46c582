"""Latency of management PUTs of durable queues in a healthy 3-node
cluster on loopback (issue 12: the answer waits for the in-sync set's
DACK), next to AMQP's durable queue.declare (which waits the same way).

    WARREN_BIN=build/server/warren /usr/bin/python3 \
        test/bench/defs_wait_bench.py [N]
"""
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "wire"))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
import localcluster  # noqa: E402
import rawamqp  # noqa: E402
from test_20_mgmt_api import Mgmt  # noqa: E402
from test_31_replication import lead_of, leader_node  # noqa: E402
from wireutil import wait_until  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
wd = tempfile.mkdtemp(prefix="putlat")
c = localcluster.LocalCluster(nodes=3, workdir=wd, ttl=4,
                              warren=os.environ.get("WARREN_BIN"))
c.start()
try:
    assert wait_until(lambda: leader_node(c, "/") is not None, 20)
    L = leader_node(c, "/")
    assert wait_until(
        lambda: len((lead_of(L, "/") or {}).get("isr", [])) == 3, 30)
    api = Mgmt(L.mgmt_port)
    lat = []
    for i in range(N):
        t = time.monotonic()
        r = api.put("/api/queues/%%2F/lat-%d" % i, {"durable": True})
        lat.append(time.monotonic() - t)
        assert r.status == 201, r
    conn = rawamqp.connect("127.0.0.1", L.amqp_port)
    conn.open_channel(1)
    alat = []
    for i in range(N):
        t = time.monotonic()
        conn.call(1, "queue.declare", queue="alat-%d" % i, durable=True)
        alat.append(time.monotonic() - t)
    for name, v in (("mgmt PUT", lat), ("amqp declare", alat)):
        v.sort()
        print("%s: n=%d median %.2f ms p90 %.2f ms max %.2f ms" % (
            name, len(v), 1000 * statistics.median(v),
            1000 * v[int(0.9 * len(v))], 1000 * v[-1]))
finally:
    c.close()
