#!/usr/bin/python3
"""repl_bench.py: replicated scenario 3 and confirm latency (issue 12).

    /usr/bin/python3 test/bench/repl_bench.py single|cluster [BUILD]

single: one plain Warren node (no clustering); cluster: 3 nodes and one
etcd on loopback (test/cluster/localcluster.py), measured against the
leader of "/", whose log is replicated to two mirrors (confirms wait for
the in-sync set). Both fsync = always. Prints scenario 3's confirmed
msg/s twice (warren-perf throughput, 8 s) and the latency run at 1,000
msg/s (publish->delivery and publish->confirm, microseconds).
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = sys.argv[2] if len(sys.argv) > 2 else os.path.join(REPO, "build")
sys.path.insert(0, os.path.join(REPO, "test", "cluster"))
import localcluster  # noqa: E402

PERF = os.path.join(BUILD, "test", "warren-perf")
WARREN = os.path.join(BUILD, "server", "warren")
COMMON = ["-s", "1024", "--persistent", "--durable-queues", "--confirm",
          "1000", "--multi-ack-every", "10", "--prefetch", "100", "-z", "8",
          "--drain-timeout", "30"]
S3 = ["throughput"] + COMMON
LAT = ["latency", "--rate", "1000"] + COMMON


def get(n, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s"
                                 % (n.mgmt_port, path))
    req.add_header("Authorization", "Basic " + base64.b64encode(
        b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def run(port, argv):
    fd, f = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    subprocess.run([PERF] + argv + ["--port", str(port), "--json", f],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)
    with open(f) as fh:
        d = json.load(fh)
    os.unlink(f)
    return d


def measure(label, port):
    for _ in range(2):
        r = run(port, S3)
        print("%s scenario 3: %.0f confirmed msg/s" % (label,
                                                       r["confirm_rate"]))
    r = run(port, LAT)
    for k in ("latency_us", "confirm_latency_us"):
        x = r[k]
        print("%s %s at 1000 msg/s: p50 %.0f p99 %.0f max %.0f"
              % (label, k, x["p50"], x["p99"], x["max"]))


def main():
    mode = sys.argv[1]
    if mode == "single":
        d = tempfile.mkdtemp()
        port = localcluster.free_port()
        with open(d + "/w.conf", "w") as f:
            f.write("listeners.tcp.default = 127.0.0.1:%d\n"
                    "data_dir = %s/data\nfsync = always\n"
                    "loopback_users.guest = false\n" % (port, d))
        p = subprocess.Popen([WARREN, "--config", d + "/w.conf"],
                             stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            measure("single", port)
        finally:
            p.kill()
            p.wait()
            shutil.rmtree(d, ignore_errors=True)
        return
    with localcluster.LocalCluster(nodes=3, ttl=4, warren=WARREN,
                                   extra_conf={"fsync": "always"}) as lc:
        time.sleep(3)
        name = get(lc.node(0), "/api/vhosts/%2F")["leader"]
        leader = next(x for x in lc.nodes if x.name == name)
        measure("replicated", leader.amqp_port)
        print(json.dumps(get(leader, "/api/replication")))


if __name__ == "__main__":
    main()
