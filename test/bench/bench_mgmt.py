#!/usr/bin/python3
"""bench_mgmt.py: the management API's figures (issue 4).

  * /api/queues with N queues (default 100,000): the time for one page
    of 100 (sorted by name, the default) and for the full list, read to
    the last byte, as a client sees them;
  * broker memory per vhost and per user: resident memory before and
    after creating M of them through the API, divided by M.

The queues are declared over one AMQP connection with pipelined
queue.declare(nowait) frames (test/wire/rawamqp.py), a few thousand per
write, then one synchronous declare to know they are all in.

Usage (a release build gives the representative figures):

    cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build build-rel -j2
    /usr/bin/python3 test/bench/bench_mgmt.py --warren build-rel/server/warren

Options: --queues N, --vhosts M, --users M, --runs R. Prints one line per
figure and a JSON summary on the last line.
"""

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "wire"))
import rawamqp  # noqa: E402

AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def start_warren(binary, workdir):
    conf = os.path.join(workdir, "warren.conf")
    with open(conf, "w") as f:
        f.write("management.tcp.port = 0\nmanagement.tcp.ip = 127.0.0.1\n"
                "prometheus.tcp.port = 0\n")
    log = open(os.path.join(workdir, "warren.log"), "w+")
    p = subprocess.Popen([binary, "--config", conf, "--listen",
                          "127.0.0.1:0", "--data-dir",
                          os.path.join(workdir, "data")],
                         stdout=log, stderr=log)
    amqp = http = None
    deadline = time.monotonic() + 15
    while (amqp is None or http is None) and time.monotonic() < deadline:
        time.sleep(0.05)
        log.seek(0)
        text = log.read()
        m = re.search(r"listening on \S+:(\d+) \(amqp\)", text)
        amqp = int(m.group(1)) if m else None
        m = re.search(r"listening on \S+:(\d+) \(http\)", text)
        http = int(m.group(1)) if m else None
    if amqp is None or http is None:
        p.kill()
        raise SystemExit("warren did not start:\n" + text)
    return p, amqp, http


def rss(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def http(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=data, method=method)
    req.add_header("Authorization", AUTH)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()


def declare_queues(port, n):
    c = rawamqp.connect("127.0.0.1", port, timeout=120)
    c.open_channel(1)
    batch = 2000
    for start in range(0, n, batch):
        frames = b"".join(
            rawamqp.method_frame(1, "queue.declare",
                                 queue="bench-q-%06d" % i, nowait=True)
            for i in range(start, min(n, start + batch)))
        c.send(frames)
    c.call(1, "queue.declare", queue="bench-q-%06d" % (n - 1), passive=True)
    c.close()


def timed(fn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times), out


def per_object(pid, port, kind, m):
    before = rss(pid)
    for i in range(m):
        if kind == "vhost":
            http(port, "PUT", "/api/vhosts/bench-vh-%05d" % i)
        else:
            http(port, "PUT", "/api/users/bench-user-%05d" % i,
                 {"password": "pw-%d" % i, "tags": "management"})
    time.sleep(0.5)
    after = rss(pid)
    return (after - before) / m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warren", default=os.path.join(
        HERE, "..", "..", "build", "server", "warren"))
    ap.add_argument("--queues", type=int, default=100000)
    ap.add_argument("--vhosts", type=int, default=1000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="warren-bench-mgmt-")
    p, amqp_port, http_port = start_warren(os.path.abspath(a.warren), work)
    summary = {}
    try:
        t0 = time.perf_counter()
        declare_queues(amqp_port, a.queues)
        summary["declare_s"] = round(time.perf_counter() - t0, 3)
        print("declared %d queues in %.2f s" % (a.queues,
                                                summary["declare_s"]))
        rss_q = rss(p.pid)
        med, lo, hi, body = timed(lambda: http(
            http_port, "GET", "/api/queues?page=1&page_size=100"), a.runs)
        page = json.loads(body)
        assert page["total_count"] == a.queues and page["item_count"] == 100
        summary["page_ms"] = round(med * 1000, 1)
        print("GET /api/queues?page=1&page_size=100: median %.1f ms "
              "(min %.1f, max %.1f)" % (med * 1000, lo * 1000, hi * 1000))
        med, lo, hi, body = timed(lambda: http(
            http_port, "GET", "/api/queues?page=%d&page_size=100&"
            "sort=name&sort_reverse=true" % (a.queues // 200)), a.runs)
        summary["page_deep_ms"] = round(med * 1000, 1)
        print("GET a middle page, reverse name sort: median %.1f ms"
              % (med * 1000))
        med, lo, hi, body = timed(lambda: http(
            http_port, "GET", "/api/queues"), max(1, a.runs // 2))
        items = json.loads(body)
        assert len(items) == a.queues
        summary["full_s"] = round(med, 3)
        summary["full_mb"] = round(len(body) / 1e6, 1)
        print("GET /api/queues (all %d, %.1f MB): median %.3f s "
              "(min %.3f, max %.3f)" % (a.queues, len(body) / 1e6, med, lo,
                                        hi))
        med, lo, hi, body = timed(lambda: http(
            http_port, "GET", "/api/queues?columns=name,messages"),
            max(1, a.runs // 2))
        summary["full_columns_s"] = round(med, 3)
        print("GET /api/queues?columns=name,messages: median %.3f s"
              % med)
        summary["rss_with_queues_mb"] = round(rss_q / 1e6, 1)
        vh = per_object(p.pid, http_port, "vhost", a.vhosts)
        summary["bytes_per_vhost"] = int(vh)
        print("memory per vhost: %.1f KiB (%d vhosts)" % (vh / 1024,
                                                          a.vhosts))
        us = per_object(p.pid, http_port, "user", a.users)
        summary["bytes_per_user"] = int(us)
        print("memory per user: %.0f bytes (%d users)" % (us, a.users))
        print(json.dumps(summary))
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
