#!/usr/bin/python3
"""catchup_bench.py: a mirror's catch-up and snapshot under load, and the
time a new leader takes to serve a backlog (issue 12).

    /usr/bin/python3 test/bench/catchup_bench.py [--size B] [--fill-mb M]
        [--build DIR] [--window SIZE]

3 nodes and one etcd on loopback (test/cluster/localcluster.py), fsync =
always. Fills "/" with M MiB of persistent messages of B bytes (default
1024 MiB of 64 KiB: no consumer), then against the leader of "/" runs scenario 3 (warren-perf
throughput, 1 KiB persistent, confirms, manual ack, 8 s):

  1. with both mirrors in sync (the baseline);
  2. while a mirror killed with -9 gets a snapshot of the whole backlog
     (its copy holds no position): throughput, the snapshot's duration,
     and the longest slice the loop spent on it (snapshot_slice_max_ms);
  3. while a mirror stopped cleanly (SIGTERM) for 8 s of load at 5,000
     msg/s catches up from its position;
  4. kill -9 of the leader: from the kill to the new leader's first
     delivery of the backlog, and on the new leader from taking over its
     copy to serving the vhost (log timestamps);
  5. the old leader restarted: how long until it is an in-sync mirror of
     the new one (a snapshot: its copy is of an older epoch).
"""
import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "test", "cluster"))
import localcluster  # noqa: E402

import pika  # noqa: E402

S3 = ["throughput", "-s", "1024", "--persistent", "--durable-queues",
      "--confirm", "1000", "--multi-ack-every", "10", "--prefetch", "100",
      "-z", "8", "--drain-timeout", "30"]


def get(n, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s"
                                 % (n.mgmt_port, path))
    req.add_header("Authorization", "Basic " + base64.b64encode(
        b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def perf(build, port, argv):
    fd, f = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    subprocess.run([os.path.join(build, "test", "warren-perf")] + argv +
                   ["--port", str(port), "--json", f, "--quiet"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=600)
    with open(f) as fh:
        d = json.load(fh)
    os.unlink(f)
    return d


def leader_of(lc):
    for n in lc.nodes:
        if not n.running():
            continue
        try:
            name = get(n, "/api/vhosts/%2F").get("leader")
        except OSError:
            continue
        for x in lc.nodes:
            if x.name == name and x.running():
                return x
    return None


def lead(node):
    return next(d for d in get(node, "/api/replication")["leads"]
                if d["vhost"] == "/")


def in_sync(leader, mirror):
    d = lead(leader)
    m = next((m for m in d["mirrors"] if m["node"] == mirror.name), None)
    return m and m["state"] == "streaming" and m["acked"] >= d["position"] - 0


def wait(pred, timeout, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except (OSError, StopIteration, KeyError):
            pass
        time.sleep(step)
    return False


def stamp(line):
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()


def fill(leader, size, mb):
    """mb MiB of persistent messages into the durable queue "backlog"."""
    c = pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=leader.amqp_port,
        credentials=pika.PlainCredentials("guest", "guest")))
    ch = c.channel()
    ch.queue_declare("backlog", durable=True)
    n = mb * 2**20 // size
    body = b"b" * size
    props = pika.BasicProperties(delivery_mode=2)
    for i in range(n):
        ch.basic_publish("", "backlog", body, props)
    ch.confirm_delivery()
    ch.basic_publish("", "backlog", body, props)  # confirmed: all are in
    c.close()


def s3_during(build, leader, label, queue):
    """Scenario 3 against the leader in a thread; returns (thread, box)."""
    box = {}

    def go():
        box["r"] = perf(build, leader.amqp_port,
                        S3 + ["--queue-prefix", queue])
    t = threading.Thread(target=go)
    t.start()
    return t, box


def failover(lc, leader, mirrors):
    """4. kill -9 of the leader with the backlog: from the kill to the
    new leader's first delivery, and on the new leader from winning the
    vhost (its log line) to serving it; returns the new leader."""
    assert wait(lambda: all(in_sync(leader, x) for x in mirrors), 60)
    marks = {x.name: len(x.lines) for x in mirrors}
    t_kill = time.time()
    leader.kill()
    assert wait(lambda: leader_of(lc) in mirrors, 30, 0.05)
    new = leader_of(lc)
    first = None
    for _ in range(400):
        try:
            c = pika.BlockingConnection(pika.ConnectionParameters(
                host="127.0.0.1", port=new.amqp_port,
                credentials=pika.PlainCredentials("guest", "guest"),
                connection_attempts=1))
            got = c.channel().basic_get("backlog", auto_ack=False)
            c.close()
            if got[0] is not None:
                first = time.time()
                break
        except Exception:
            pass
        time.sleep(0.05)
    lead = new.wait_for_line(r"cluster: leading vhost '/'", 1,
                             marks[new.name])
    served = new.wait_for_line(r"vhost '/' served here", 1,
                               marks[new.name])
    won = stamp(lead) if lead else None
    print("failover with the backlog: first delivery %.2f s after the "
          "kill; won -> served: %s s; won -> first delivery: %s s" % (
              (first or float("nan")) - t_kill,
              "%.3f" % (stamp(served) - won) if served and won else "?",
              "%.3f" % (first - won) if first and won else "?"))
    with new.cond:
        for line in new.lines[marks[new.name]:]:
            if "vhost '/'" in line:
                print("  " + line)
    return new


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--fill-mb", type=int, default=1024)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--window", default=None,
                    help="replication.catchup_window (default: Warren's)")
    ap.add_argument("--failover-only", action="store_true",
                    help="fill, then only step 4 (kill -9 of the leader)")
    a = ap.parse_args()
    warren = os.path.join(a.build, "server", "warren")
    conf = {"fsync": "always"}
    if a.window:
        conf["replication.catchup_window"] = a.window
    with localcluster.LocalCluster(nodes=3, ttl=4, warren=warren,
                                   extra_conf=conf) as lc:
        assert wait(lambda: leader_of(lc) is not None, 20)
        leader = leader_of(lc)
        mirrors = [n for n in lc.nodes if n is not leader]
        fill(leader, a.size, a.fill_mb)
        q = get(leader, "/api/queues/%2F/backlog")
        print("backlog: %d messages, %.0f MiB" % (
            q["messages"], q["message_bytes"] / 2**20))
        assert wait(lambda: all(in_sync(leader, m) for m in mirrors), 120)
        if a.failover_only:
            failover(lc, leader, mirrors)
            return

        r = perf(a.build, leader.amqp_port, S3 + ["--queue-prefix", "base"])
        base = r["confirm_rate"]
        print("baseline scenario 3: %.0f confirmed msg/s" % base)

        # 2. snapshot of the whole backlog under load
        m = mirrors[0]
        m.kill()
        time.sleep(1)
        mark = len(leader.lines)
        m.start()
        t, box = s3_during(a.build, leader, "snapshot", "snap")
        t0 = time.monotonic()
        ok = wait(lambda: in_sync(leader, m), 300, 0.1)
        took = time.monotonic() - t0
        t.join()
        line = leader.wait_for_line(r"snapshot of vhost '/' .* to node '%s'"
                                    % re.escape(m.name), 1, mark)
        d = lead(leader)
        print("during a snapshot: %.0f confirmed msg/s (%.0f%% of "
              "baseline); mirror in sync after %.1f s (%s); longest "
              "slice %.1f ms; %s" % (
                  box["r"]["confirm_rate"],
                  100 * box["r"]["confirm_rate"] / base, took, ok,
                  d["snapshot_slice_max_ms"],
                  line.split("[info] ")[-1] if line else "no log line"))

        # 3. catch-up from a position under load
        m = mirrors[1]
        rc = m.stop()
        with open(os.path.join(m.data_dir, "replicas", hashlib.sha256(
                b"/").hexdigest(), "state.json")) as f:
            print("mirror stopped (status %s), its copy: %s" % (rc, f.read()))
        # 8 s at 5,000 msg/s while it is away: about 45 MB of frames, in
        # the default window (at full speed scenario 3 makes ~1 GB in 8 s)
        perf(a.build, leader.amqp_port,
             S3 + ["--queue-prefix", "away", "--rate", "5000"])
        mark = len(leader.lines)
        m.start()
        t, box = s3_during(a.build, leader, "catch-up", "cu")
        t0 = time.monotonic()
        ok = wait(lambda: in_sync(leader, m), 120, 0.1)
        took = time.monotonic() - t0
        t.join()
        line = leader.wait_for_line(r"catching up vhost '/' .* on node '%s'"
                                    % re.escape(m.name), 1, mark)
        print("during a catch-up: %.0f confirmed msg/s (%.0f%% of "
              "baseline); mirror in sync after %.1f s (%s); %s" % (
                  box["r"]["confirm_rate"],
                  100 * box["r"]["confirm_rate"] / base, took, ok,
                  line.split("[info] ")[-1] if line else "no catch-up"))
        if not line:
            print("\n".join(x for x in leader.lines[mark:]
                            if "vhost '/'" in x))
        d = lead(leader)
        print("snapshots %d, catch-ups %d" % (d["snapshots"],
                                              d["catch_ups"]))

        new = failover(lc, leader, mirrors)

        # 5. the old leader returns: its log is of an older epoch, so its
        # copy is rebuilt from a snapshot (what it alone had is dropped)
        mark = len(new.lines)
        t0 = time.monotonic()
        leader.start()
        ok = wait(lambda: in_sync(new, leader), 300, 0.1)
        line = new.wait_for_line(r"snapshot of vhost '/' .* to node '%s'"
                                 % re.escape(leader.name), 1, mark)
        print("the old leader back: in sync after %.1f s (%s); %s" % (
            time.monotonic() - t0, ok,
            line.split("[info] ")[-1] if line else "no snapshot"))


if __name__ == "__main__":
    main()
