#!/usr/bin/python3
"""Delayed delivery (x-delayed-message) under load: due-time lateness and RSS.

Starts a private Warren (build/server/warren, temp data dir, fsync as
shipped), declares a durable x-delayed-message exchange (x-delayed-type
direct) bound to one durable queue, and publishes --messages persistent
messages at --rate per second, each with a uniformly random x-delay in
[--min-ms, --max-ms]. Each body carries the publisher's wall clock due
time (µs), stamped just before its batch of --batch messages is written. A
consumer in its own process (auto-ack, raw frames) reads the queue and
records lateness = arrival wall clock - due time; the broker's RSS is
sampled every 0.5 s. The exchange's own account (management API:
delayed_routed, how late the broker routed each message after its due
time) is printed too: it leaves out the consumer's side. Prints p50/p99/max lateness, how many came early
(should be 0) and the RSS baseline, peak and peak growth per pending
message.

Lateness measured this way includes the publisher's write of its batch
(the broker reads a message a little after its due time was stamped: a
positive bias) and the consumer's own reading; both are small at the
default rate.

    /usr/bin/python3 test/bench/delay_bench.py --messages 1000000 \\
        --min-ms 1000 --max-ms 20000
"""

import argparse
import base64
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "test", "wire"))
import rawamqp  # noqa: E402

X, Q = "bench-delayed", "bench-delayed-q"


def start_warren(binary, workdir, nice=0, fifo=0):
    conf = os.path.join(workdir, "warren.conf")
    with open(os.path.join(REPO, "conf", "warren.conf")) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text + "\nmanagement.tcp.port = 0\nprometheus.tcp.port = 0\n")
    data = os.path.join(workdir, "data")
    os.makedirs(data)
    prefix = ["nice", "-n", str(nice)] if nice else []
    if fifo:
        prefix = ["chrt", "-f", str(fifo)] + prefix
    p = subprocess.Popen(prefix + [binary, "--config", conf, "--listen",
                                   "127.0.0.1:0", "--data-dir", data],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rx = re.compile(rb"listening on (\S+):(\d+) \((amqp|http)\)")
    ports = {}
    while len(ports) < 2:
        line = p.stderr.readline()
        if not line:
            raise SystemExit("warren exited before listening")
        m = rx.search(line)
        if m:
            ports[m.group(3)] = int(m.group(2))
    return p, ports[b"amqp"], ports[b"http"]


def broker_side(http):
    """The exchange's own account of its lateness (management API)."""
    req = urllib.request.Request(
        "http://127.0.0.1:%d/api/exchanges/%%2F/%s" % (http, X),
        headers={"Authorization": "Basic " +
                 base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["delayed_routed"]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    """User + system CPU seconds the process has used."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def setup(port):
    c = rawamqp.connect("127.0.0.1", port, timeout=30)
    c.open_channel(1)
    c.call(1, "exchange.declare", exchange=X, type="x-delayed-message",
           durable=True, arguments={"x-delayed-type": "direct"})
    c.call(1, "queue.declare", queue=Q, durable=True)
    c.call(1, "queue.bind", queue=Q, exchange=X, routing_key="k")
    c.close()


def consumer(port, n, ready, out):
    c = rawamqp.connect("127.0.0.1", port, timeout=30)
    c.open_channel(1)
    c.call(1, "basic.consume", queue=Q, no_ack=True, consumer_tag="b")
    ready.set()
    sock = c.sock
    sock.settimeout(None)
    buf = bytearray(c.buf)
    late = []
    early = 0
    while len(late) < n:
        chunk = sock.recv(1 << 20)
        now = time.time() * 1e6
        if not chunk:
            break
        buf += chunk
        pos = 0
        while len(buf) - pos >= 7:
            ftype, _ch, size = struct.unpack_from(">BHI", buf, pos)
            if len(buf) - pos < 8 + size:
                break
            if ftype == 3:  # body: the due time
                due = struct.unpack_from(">Q", buf, pos + 7)[0]
                d = now - due
                if d < 0:
                    early += 1
                late.append(d)
            pos += 8 + size
        del buf[:pos]
    out.put((late, early))


def publish(port, n, rate, batch, lo, hi, seed):
    rnd = random.Random(seed)
    c = rawamqp.connect("127.0.0.1", port, timeout=60)
    c.open_channel(1)
    method = rawamqp.method_frame(1, "basic.publish", exchange=X,
                                  routing_key="k")
    t0 = time.time()
    sent = 0
    while sent < n:
        k = min(batch, n - sent)
        buf = bytearray()
        due = []  # (offset of the body, delay ms)
        for _ in range(k):
            d = rnd.randint(lo, hi)
            props = {"headers": {"x-delay": d}, "delivery_mode": 2}
            buf += method
            buf += rawamqp.frame(2, 1, rawamqp.content_header(8, props))
            due.append((len(buf) + 7, d))
            buf += rawamqp.frame(3, 1, bytes(8))
        # Stamp the due times last, just before the write.
        now_us = int(time.time() * 1e6)
        for off, d in due:
            struct.pack_into(">Q", buf, off, now_us + d * 1000)
        c.send(bytes(buf))
        sent += k
        ahead = sent / rate - (time.time() - t0)
        if ahead > 0:
            time.sleep(ahead)
    return time.time() - t0


def recovery(a):
    """--recovery: N pending messages (1 h delays), then a kill -9 and a
    start: how long the start takes, and RSS before and after."""
    work = tempfile.mkdtemp(prefix="delay-bench-")
    w, port, http = start_warren(a.warren, work)
    setup(port)
    base = rss_kb(w.pid)
    body = b"0123456789abcdef"
    one = (rawamqp.method_frame(1, "basic.publish", exchange=X,
                                routing_key="k")
           + rawamqp.frame(2, 1, rawamqp.content_header(
               len(body), {"headers": {"x-delay": 3600000},
                           "delivery_mode": 2}))
           + rawamqp.frame(3, 1, body))
    c = rawamqp.connect("127.0.0.1", port, timeout=120)
    c.open_channel(1)
    t0 = time.time()
    for _ in range(a.messages // 10000):
        c.send(one * 10000)
    while broker_pending(http) < a.messages:
        time.sleep(0.2)
    pub_s = time.time() - t0
    time.sleep(2)  # the last batch on disk (fsync as shipped)
    full = rss_kb(w.pid)
    w.kill()
    w.wait()
    t0 = time.time()
    conf = os.path.join(work, "warren.conf")
    data = os.path.join(work, "data")
    w = subprocess.Popen([a.warren, "--config", conf, "--listen",
                          "127.0.0.1:%d" % port, "--data-dir", data],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while True:
        line = w.stderr.readline()
        if b"(http)" in line:
            break
        if b"recovered" in line or b"pending" in line:
            sys.stdout.write("  " + line.decode(errors="replace"))
    start_s = time.time() - t0
    time.sleep(1)
    after = rss_kb(w.pid)
    print("%d pending delayed messages published in %.1f s; RSS %.1f MB "
          "(%.1f bytes each above %.1f MB)" % (
              a.messages, pub_s, full / 1024,
              (full - base) * 1024 / a.messages, base / 1024))
    print("after kill -9: start (recovery) %.1f s, RSS %.1f MB" % (
        start_s, after / 1024))
    w.terminate()
    w.wait(60)
    shutil.rmtree(work, ignore_errors=True)


def loop_busy(http):
    """warren_loop_busy_seconds from /metrics: iterations in all, and
    how many kept the loop for more than 10 ms and 50 ms (wall clock, so
    time the process waited for a CPU counts)."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http,
                                timeout=30) as r:
        text = r.read().decode()
    b = {}
    for m in re.finditer(r'warren_loop_busy_seconds_bucket\{le="([^"]+)"\} '
                         r'(\d+)', text):
        b[m.group(1)] = int(m.group(2))
    n = b["+Inf"]
    return n, n - b["0.01"], n - b["0.05"]


def broker_pending(http):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/api/exchanges/%%2F/%s" % (http, X),
        headers={"Authorization": "Basic " +
                 base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["messages_delayed"]


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=1000000)
    ap.add_argument("--min-ms", type=int, default=1000)
    ap.add_argument("--max-ms", type=int, default=60000)
    ap.add_argument("--rate", type=int, default=50000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--warren", default=os.path.join(REPO, "build", "server",
                                                     "warren"))
    ap.add_argument("--nice", type=int, default=0,
                    help="run the broker at this nice level (a negative "
                    "one shields it from other load on a shared machine)")
    ap.add_argument("--fifo", type=int, default=0,
                    help="run the broker under SCHED_FIFO at this priority "
                    "(root): tells the broker's lateness from the machine's")
    ap.add_argument("--recovery", action="store_true",
                    help="measure restart time and RSS with N pending")
    a = ap.parse_args()
    if a.recovery:
        return recovery(a)
    work = tempfile.mkdtemp(prefix="delay-bench-")
    w, port, http = start_warren(a.warren, work, a.nice, a.fifo)
    try:
        setup(port)
        time.sleep(0.5)
        base = rss_kb(w.pid)
        ready, out = mp.Event(), mp.Queue()
        cp = mp.Process(target=consumer,
                        args=(port, a.messages, ready, out))
        cp.start()
        ready.wait(10)
        pp = mp.Process(target=publish, args=(port, a.messages, a.rate,
                                              a.batch, a.min_ms, a.max_ms, 1))
        t0 = time.time()
        cpu0 = cpu_s(w.pid)
        pp.start()
        peak = base
        while cp.is_alive() and out.empty():
            peak = max(peak, rss_kb(w.pid))
            time.sleep(0.5)
            if time.time() - t0 > a.max_ms / 1000 + a.messages / a.rate + 120:
                raise SystemExit("timed out")
        late, early = out.get()
        wall, cpu = time.time() - t0, cpu_s(w.pid) - cpu0
        pp.join()
        cp.join()
        late.sort()
        ms = [x / 1000 for x in late]
        print("messages %d, delays %d-%d ms, publish rate %d/s"
              % (len(ms), a.min_ms, a.max_ms, a.rate))
        print("lateness ms: p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  "
              "(early: %d)" % (pct(ms, 0.5), pct(ms, 0.99), pct(ms, 0.999),
                               ms[-1], early))
        bs = broker_side(http)
        print("broker side: routed %d, later than 10 ms: %d, max %.2f ms"
              % (bs["messages"], bs["late_over_10ms"], bs["max_late_ms"]))
        it, over10, over50 = loop_busy(http)
        print("loop iterations %d: longer than 10 ms %d, than 50 ms %d"
              % (it, over10, over50))
        print("RSS MB: baseline %.1f  peak %.1f" % (base / 1024,
                                                     peak / 1024))
        print("broker CPU %.1f s over %.1f s (%.0f%% of one core); load "
              "average %s" % (cpu, wall, 100 * cpu / wall,
                              open("/proc/loadavg").read().split()[0]))
    finally:
        w.terminate()
        w.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
