#!/usr/bin/python3
"""truncate_bench.py: a returning mirror with a big copy, truncated in
place and caught up (KIP-101) against rebuilt by a full snapshot
(issue 12).

    /usr/bin/python3 test/bench/truncate_bench.py [--size B] [--fill-mb M]
        [--build DIR]

3 nodes and one etcd on loopback (test/cluster/localcluster.py), fsync =
always. Fills "/" with M MiB of persistent messages of B bytes (default
1024 MiB of 64 KiB, no consumer), all three in sync. Then:

  1. the divergence: one mirror ("lagging") is paused while 24 MiB more
     reach the leader and the other mirror ("ahead") only; the leader is
     killed, "ahead" stopped cleanly, "lagging" resumed: it wins, its
     copy ending before what "ahead" holds;
  2. "ahead" restarted: the time from its start until it is an in-sync
     mirror of the new leader (its copy cut back in place to where the
     old lead ended on the new leader, then the new lead's cuts);
  3. the old leader restarted: the same time for it (its own log becomes
     its copy of the lead it ended and is cut back in place the same way);
  4. for comparison, "ahead" stopped, its copy removed and restarted: a
     full snapshot of the backlog, as any copy that cannot be truncated
     gets.
"""
import argparse
import os
import re
import shutil
import signal
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "test", "cluster"))
sys.path.insert(0, os.path.dirname(__file__))
import localcluster  # noqa: E402
from catchup_bench import fill, get, in_sync, lead, leader_of, wait  # noqa

import pika  # noqa: E402


def diverge(leader, lagging, ahead):
    """24 MiB that only the leader and `ahead` get; then the leader dies
    and `ahead` stops cleanly, leaving `lagging` to win."""
    c = pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=leader.amqp_port,
        credentials=pika.PlainCredentials("guest", "guest")))
    ch = c.channel()
    lagging.signal(signal.SIGSTOP)
    try:
        for _ in range(24):
            ch.basic_publish("", "backlog", b"f" * (1 << 20),
                             pika.BasicProperties(delivery_mode=2))
        pos = None
        end = time.monotonic() + 3
        while time.monotonic() < end:
            pos = lead(leader)["position"]
            copy = next((x for x in get(ahead, "/api/replication")["copies"]
                         if x["vhost"] == "/"), {})
            if copy.get("acked") == pos:
                break
            time.sleep(0.05)
        leader.kill()
        ahead.stop()
    finally:
        lagging.signal(signal.SIGCONT)


def rejoin(new, node, what):
    mark = len(new.lines)
    t0 = time.monotonic()
    node.start()
    ok = wait(lambda: in_sync(new, node), 600, 0.1)
    took = time.monotonic() - t0
    line = new.wait_for_line(r"(catching up|snapshot of) vhost '/' .* "
                             r"(to|on) node '%s'" % re.escape(node.name), 1,
                             mark)
    print("%s: in sync %.1f s after its start (%s); %s" % (
        what, took, ok, line.split("[info] ")[-1] if line else "?"))
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--fill-mb", type=int, default=1024)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    a = ap.parse_args()
    warren = os.path.join(a.build, "server", "warren")
    with localcluster.LocalCluster(nodes=3, ttl=4, warren=warren,
                                   extra_conf={"fsync": "always"}) as lc:
        assert wait(lambda: leader_of(lc) is not None, 20)
        leader = leader_of(lc)
        lagging, ahead = [n for n in lc.nodes if n is not leader]
        t0 = time.monotonic()
        fill(leader, a.size, a.fill_mb)
        q = get(leader, "/api/queues/%2F/backlog")
        assert wait(lambda: all(in_sync(leader, m) for m in
                                (lagging, ahead)), 300)
        print("backlog: %d messages, %.0f MiB, in sync on 3 nodes after "
              "%.0f s; load average %.2f" % (
                  q["messages"], q["message_bytes"] / 2**20,
                  time.monotonic() - t0, os.getloadavg()[0]))
        diverge(leader, lagging, ahead)
        assert wait(lambda: leader_of(lc) is lagging, 30, 0.05)
        d = lead(lagging)
        print("new leader %s, previous lead ended at %s" % (
            lagging.name, d.get("previous_lead")))
        t_trunc = rejoin(lagging, ahead, "truncated in place + catch-up")
        d = lead(lagging)
        print("truncations %d, snapshots %d" % (d["truncations"],
                                                d["snapshots"]))
        t_old = rejoin(lagging, leader, "old leader, truncated in place + "
                       "catch-up")
        d = lead(lagging)
        print("truncations %d, snapshots %d" % (d["truncations"],
                                                d["snapshots"]))
        assert ahead.stop() == 0
        shutil.rmtree(os.path.join(ahead.data_dir, "replicas"))
        t_snap = rejoin(lagging, ahead, "no copy, full snapshot")
        print("snapshot / truncation: %.1fx (mirror), %.1fx (old leader); "
              "load average %.2f" % (t_snap / t_trunc, t_snap / t_old,
                                     os.getloadavg()[0]))


if __name__ == "__main__":
    main()
