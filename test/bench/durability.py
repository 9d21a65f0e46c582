#!/usr/bin/python3
"""Warren's durability figures (issue 3), printed as Markdown:

  1. restart time with N (default 1,000,000) persistent 1 KiB messages
     spread over 10 durable queues, after kill -9 and after a clean stop;
  2. resident memory per queued persistent message in a backlog of M
     (default 10,000,000) messages, bodies on disk (queue_memory_budget
     64 MiB), while running and after a restart;
  3. disk bytes written per persistent message, body excluded, for 1 KiB
     messages published with confirms and consumed with manual acks.

Usage: test/bench/durability.py [--build build] [--messages N]
                                 [--backlog M]
Publishing uses warren-perf (built with the project). Needs about
M x 150 bytes of free disk for the backlog. Progress goes to stderr.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "wire"))
import rawamqp  # noqa: E402

QUEUES = 10


def say(*a):
    print(*a, file=sys.stderr, flush=True)


class Broker:
    def __init__(self, binary, data_dir, conf=""):
        self.binary = binary
        self.data_dir = data_dir
        self.conf_path = os.path.join(data_dir + ".conf")
        with open(self.conf_path, "w") as f:
            f.write("fsync = always\nmanagement.tcp.port = 0\n"
                    "prometheus.tcp.port = 0\n" + conf)
        self.proc = None
        self.port = None

    def start(self):
        t0 = time.monotonic()
        port = self.port or 0
        self.proc = subprocess.Popen(
            [self.binary, "--config", self.conf_path, "--data-dir",
             self.data_dir, "--listen", "127.0.0.1:%d" % port],
            stderr=subprocess.PIPE, text=True)
        self.log = []
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"listening on [^:]+:(\d+) \(amqp\)", line)
            if m:
                self.port = int(m.group(1))
                break
        else:
            raise SystemExit("warren did not start:\n" + "".join(self.log))
        return time.monotonic() - t0

    def recovered(self):
        for line in self.log:
            m = re.search(r"recovered (\d+) messages in ([\d.]+) s", line)
            if m:
                return int(m.group(1)), float(m.group(2))
        return 0, 0.0

    def rss(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def write_bytes(self):
        """Bytes the process sent to storage (the log's writes and syncs;
        not its sockets)."""
        with open("/proc/%d/io" % self.proc.pid) as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
        return 0

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(60)
        self.proc.stderr.close()


def declare(port):
    c = rawamqp.connect("127.0.0.1", port)
    c.open_channel(1)
    c.call(1, "exchange.declare", exchange="warren-perf.direct",
           type="direct", durable=True)
    for i in range(QUEUES):
        q = "warren-perf-%d" % i
        c.call(1, "queue.declare", queue=q, durable=True)
        c.call(1, "queue.bind", queue=q, exchange="warren-perf.direct",
               routing_key=q)
    c.close()


def perf(build, port, count, size, consumers=0):
    """Publishes about `count` persistent messages with confirms; returns
    how many were published (warren-perf stops on time, so the duration
    is set from a first short measurement of the rate)."""
    binary = os.path.join(build, "test", "warren-perf")
    args = [binary, "throughput", "--port", str(port), "-x", "2", "-y",
            str(consumers), "-q", str(QUEUES), "-s", str(size),
            "--persistent", "--durable-queues", "--predeclared",
            "--confirm", "5000"]
    if consumers:
        args += ["--multi-ack-every", "50", "--prefetch", "1000"]
    published = 0
    rate = None
    while published < count:
        left = count - published
        secs = 2 if rate is None else max(1, min(60, int(left / rate) + 1))
        out = subprocess.run(args + ["-z", str(secs)], capture_output=True,
                             text=True, timeout=600).stdout
        m = re.search(r"published (\d+) in ([\d.]+) s", out)
        if not m or "FAILED" in out:
            raise SystemExit("warren-perf failed:\n" + out)
        n, t = int(m.group(1)), float(m.group(2))
        published += n
        rate = n / t
        say("  published %d / %d (%.0f msg/s)" % (published, count, rate))
    return published


def restart_figure(build, binary, root, n):
    say("1. restart time with %d persistent 1 KiB messages in %d queues"
        % (n, QUEUES))
    b = Broker(binary, os.path.join(root, "restart"))
    b.start()
    declare(b.port)
    n = perf(build, b.port, n, 1024)
    b.stop(signal.SIGKILL)
    rows = []
    for how in ("after kill -9", "after a clean stop"):
        t = b.start()
        got, rec = b.recovered()
        rows.append((how, got, t, rec, b.rss()))
        b.stop()
    shutil.rmtree(b.data_dir)
    return n, rows


def memory_figure(build, binary, root, m):
    say("2. memory per queued message, backlog of %d" % m)
    b = Broker(binary, os.path.join(root, "backlog"),
               "queue_memory_budget = 64MiB\n")
    b.start()
    declare(b.port)
    base = b.rss()
    m = perf(build, b.port, m, 100)
    live = b.rss()
    b.stop()
    b.start()
    after = b.rss()
    b.stop()
    disk = sum(os.path.getsize(os.path.join(d, f))
               for d, _, fs in os.walk(b.data_dir) for f in fs)
    shutil.rmtree(b.data_dir)
    return m, base, live, after, disk


def disk_figure(build, binary, root, n):
    say("3. disk bytes per message (%d x 1 KiB, consumed with acks)" % n)
    b = Broker(binary, os.path.join(root, "disk"))
    b.start()
    declare(b.port)
    w0 = b.write_bytes()
    n = perf(build, b.port, n, 1024, consumers=QUEUES)
    time.sleep(2)  # acks reach the log
    written = b.write_bytes() - w0
    b.stop()
    shutil.rmtree(b.data_dir)
    return n, written


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..",
                                                    "build"))
    ap.add_argument("--messages", type=int, default=1000000)
    ap.add_argument("--backlog", type=int, default=10000000)
    a = ap.parse_args()
    binary = os.path.join(a.build, "server", "warren")
    root = tempfile.mkdtemp(prefix="warren-durability-")
    try:
        n, rows = restart_figure(a.build, binary, root, a.messages)
        m, base, live, after, disk = memory_figure(a.build, binary, root,
                                                   a.backlog)
        dn, written = disk_figure(a.build, binary, root, a.messages)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("### Durability (Warren, fsync = always)\n")
    print("Command: `test/bench/durability.py --messages %d --backlog %d`\n"
          % (a.messages, a.backlog))
    print("| restart with %d persistent 1 KiB messages in %d durable "
          "queues | to listening | recovery | RSS after |" % (n, QUEUES))
    print("| --- | --- | --- | --- |")
    for how, got, t, rec, rss in rows:
        print("| %s (%d recovered) | %.2f s | %.2f s | %.0f MB |"
              % (how, got, t, rec, rss / 1e6))
    print("\n| backlog of %d persistent 100 B messages | bytes per queued "
          "message |" % m)
    print("| --- | --- |")
    print("| resident, running (queue_memory_budget 64 MiB) | %.1f |"
          % ((live - base) / m))
    print("| resident, after a restart | %.1f |" % (after / m))
    print("| on disk (body + metadata + log overhead) | %.1f |" % (disk / m))
    print("\n| %d persistent 1 KiB messages, confirmed and acked | bytes "
          "written per message beyond the body |" % dn)
    print("| --- | --- |")
    # The record's metadata: version and flags, exchange and routing key
    # (short strings), properties (flags word + delivery mode).
    meta = 2 + 1 + len("warren-perf.direct") + 1 + len("warren-perf-0") + 3
    print("| all log writes: record, the message's own metadata (%d B: "
          "exchange, routing key, properties), acks, markers, summaries | "
          "%.1f |" % (meta, written / dn - 1024))
    print("| the same without the message's metadata: the log's overhead "
          "| %.1f |" % (written / dn - 1024 - meta))


if __name__ == "__main__":
    main()
