#!/usr/bin/python3
"""stream_repl_bench.py: a replicated stream queue (issue 14).

    /usr/bin/python3 test/bench/stream_repl_bench.py single|cluster \
        [BUILD] [SECONDS]

single: one plain Warren node; cluster: 3 nodes and one etcd on loopback
(test/cluster/localcluster.py), measured against the leader of "/", whose
streams go to two mirrors (a stream publish is confirmed once the leader
and both in-sync mirrors have it on disk). Both fsync = always.

Prints the confirmed publish rate into one stream (warren-perf, one
producer, 100-byte bodies, confirm window 1000, SECONDS s, three runs).
In cluster mode it then kills a mirror, publishes on, restarts it and
times the snapshot: from the restart to the mirror being streaming,
synced and acked at the leader's position, with the stream's size; and
while the snapshot goes, it samples the leader's responsiveness (the
longest AMQP round trip, a passive queue.declare every 10 ms), then the
same for as long afterwards.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pika

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = sys.argv[2] if len(sys.argv) > 2 else os.path.join(REPO, "build")
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
sys.path.insert(0, os.path.join(REPO, "test", "cluster"))
import localcluster  # noqa: E402

PERF = os.path.join(BUILD, "test", "warren-perf")
WARREN = os.path.join(BUILD, "server", "warren")


def get(port, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    req.add_header("Authorization", "Basic " + base64.b64encode(
        b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def declare(port):
    c = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, credentials=pika.PlainCredentials(
            "guest", "guest")))
    ch = c.channel()
    ch.exchange_declare("sx", "direct", durable=True)
    ch.queue_declare("st-0", durable=True,
                     arguments={"x-queue-type": "stream"})
    ch.queue_bind("st-0", "sx", routing_key="st-0")
    c.close()


def fill(port, seconds):
    out = tempfile.mktemp(suffix=".json")
    subprocess.run([PERF, "throughput", "--port", str(port), "--predeclared",
                    "--exchange", "sx", "--queue-prefix", "st", "-q", "1",
                    "-s", "100", "--quiet", "--json", out, "-x", "1", "-y",
                    "0", "-z", str(seconds), "--confirm", "1000"],
                   check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=seconds + 120)
    with open(out) as f:
        d = json.load(f)
    os.unlink(out)
    return d


def rates(label, port):
    for _ in range(3):
        d = fill(port, SECONDS)
        print("%s: %d confirmed in %.0f s, %.0f msg/s" % (
            label, d["confirmed"], SECONDS, d["confirm_rate"]))


def snapshot_time(lc, leader):
    mirror = next(n for n in lc.nodes if n is not leader)
    mirror.kill()
    fill(leader.amqp_port, 3)
    st = get(leader.mgmt_port, "/api/queues/%2F/st-0")["stream"]
    worst = [0.0]
    stop = threading.Event()

    def probe():
        # an AMQP round trip the leader's loop answers itself (the
        # management API would also ask the other nodes)
        c = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", leader.amqp_port, credentials=pika.PlainCredentials(
                "guest", "guest")))
        ch = c.channel()
        while not stop.is_set():
            t = time.monotonic()
            ch.queue_declare("st-0", passive=True)
            worst[0] = max(worst[0], time.monotonic() - t)
            time.sleep(0.01)
        c.close()
    th = threading.Thread(target=probe, daemon=True)
    t0 = time.monotonic()
    mirror.start(wait=False)
    th.start()
    while time.monotonic() - t0 < 300:
        d = next(x for x in get(leader.mgmt_port, "/api/replication")["leads"]
                 if x["vhost"] == "/")
        m = next((x for x in d["mirrors"] if x["node"] == mirror.name), None)
        if m and m["state"] == "streaming" and m["acked"] == d["position"] \
                and m["acked"] > 0:
            break
        time.sleep(0.05)
    took = time.monotonic() - t0
    stop.set()
    th.join()
    during = worst[0]
    worst[0] = 0.0
    stop.clear()
    th = threading.Thread(target=probe, daemon=True)
    th.start()
    time.sleep(took)
    stop.set()
    th.join()
    logdir = os.path.join(mirror.data_dir, "replicas")
    copied = sum(os.path.getsize(os.path.join(r, f))
                 for r, _, fs in os.walk(logdir) for f in fs
                 if f.startswith("stream.") and f.endswith(".seg"))
    print("snapshot of a %d-message stream (%.1f MiB in %d segments on the "
          "leader; %.1f MiB in the mirror's copy): mirror restart -> acked "
          "at the head in %.2f s; slowest queue.declare round trip on the leader "
          "meanwhile %.0f ms (afterwards, as long: %.0f ms)" % (
              st["next_offset"] - st["first_offset"], st["bytes"] / 2**20,
              st["segments"], copied / 2**20, took, during * 1000,
              worst[0] * 1000))


def main():
    if sys.argv[1] == "single":
        d = tempfile.mkdtemp()
        port = localcluster.free_port()
        with open(d + "/w.conf", "w") as f:
            f.write("listeners.tcp.default = 127.0.0.1:%d\n"
                    "data_dir = %s/data\nfsync = always\n"
                    "prometheus.tcp.port = 0\n"
                    "loopback_users.guest = false\n" % (port, d))
        p = subprocess.Popen([WARREN, "--config", d + "/w.conf"],
                             stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            declare(port)
            rates("single", port)
        finally:
            p.kill()
            p.wait()
            shutil.rmtree(d, ignore_errors=True)
        return
    with localcluster.LocalCluster(nodes=3, ttl=4, warren=WARREN,
                                   extra_conf={"fsync": "always"}) as lc:
        time.sleep(3)
        name = get(lc.node(0).mgmt_port, "/api/vhosts/%2F")["leader"]
        leader = next(x for x in lc.nodes if x.name == name)
        declare(leader.amqp_port)
        rates("replicated", leader.amqp_port)
        snapshot_time(lc, leader)


if __name__ == "__main__":
    main()
