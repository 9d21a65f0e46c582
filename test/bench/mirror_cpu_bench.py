#!/usr/bin/python3
"""mirror_cpu_bench.py: a mirror's CPU per replicated message (issue 12).

    /usr/bin/python3 test/bench/mirror_cpu_bench.py [--build DIR]
        [--runs N] [--rate R] [--seconds S]

3 nodes and one etcd on loopback (test/cluster/localcluster.py), fsync =
always. Runs warren-perf scenario 3 (1 KiB persistent, confirms, manual
ack) against the leader of "/" at a fixed rate (default 20,000 msg/s, so
that the runs of two builds do the same work), N times, and reads each
mirror's user + system CPU time from /proc/<pid>/stat around each run.
Prints, per run, the confirmed messages and each mirror's CPU
microseconds per message (a message is a MSG record and an ACK record on
the mirror), then the median. Compare two builds with --build.
"""
import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "test", "cluster"))
import localcluster  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def get(n, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s"
                                 % (n.mgmt_port, path))
    req.add_header("Authorization", "Basic " + base64.b64encode(
        b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def leader_of(lc):
    for n in lc.nodes:
        try:
            name = get(n, "/api/vhosts/%2F").get("leader")
        except OSError:
            continue
        for x in lc.nodes:
            if x.name == name:
                return x
    return None


def cpu_s(node):
    with open("/proc/%d/stat" % node.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def in_sync(leader, mirrors):
    d = next(x for x in get(leader, "/api/replication")["leads"]
             if x["vhost"] == "/")
    acked = {m["node"]: m["acked"] for m in d["mirrors"]
             if m["state"] == "streaming"}
    return all(acked.get(m.name, -1) >= d["position"] for m in mirrors)


def wait(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except (OSError, StopIteration, KeyError):
            pass
        time.sleep(0.2)
    return False


def perf(build, port, rate, seconds, prefix):
    fd, f = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    subprocess.run([os.path.join(build, "test", "warren-perf"), "throughput",
                    "-s", "1024", "--persistent", "--durable-queues",
                    "--confirm", "1000", "--multi-ack-every", "10",
                    "--prefetch", "100", "-z", str(seconds), "--rate",
                    str(rate), "--drain-timeout", "30", "--queue-prefix",
                    prefix, "--port", str(port), "--json", f, "--quiet"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=600)
    with open(f) as fh:
        d = json.load(fh)
    os.unlink(f)
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=int, default=20000)
    ap.add_argument("--seconds", type=int, default=8)
    a = ap.parse_args()
    warren = os.path.join(a.build, "server", "warren")
    with localcluster.LocalCluster(nodes=3, ttl=4, warren=warren,
                                   extra_conf={"fsync": "always"}) as lc:
        assert wait(lambda: leader_of(lc) is not None, 20)
        leader = leader_of(lc)
        mirrors = [n for n in lc.nodes if n is not leader]
        assert wait(lambda: in_sync(leader, mirrors), 60)
        per = []
        for run in range(a.runs):
            before = [cpu_s(m) for m in mirrors]
            r = perf(a.build, leader.amqp_port, a.rate, a.seconds,
                     "cpu%d" % run)
            assert wait(lambda: in_sync(leader, mirrors), 60)
            after = [cpu_s(m) for m in mirrors]
            n = r["confirmed"]
            us = [(y - x) * 1e6 / n for x, y in zip(before, after)]
            per.extend(us)
            print("run %d: %d confirmed (%.0f msg/s); mirror CPU per message:"
                  " %s us" % (run + 1, n, r["confirm_rate"],
                              ", ".join("%.2f" % u for u in us)))
        print("median mirror CPU per message: %.2f us (load average %s)" % (
            statistics.median(per),
            " ".join("%.2f" % x for x in os.getloadavg())))


if __name__ == "__main__":
    main()
