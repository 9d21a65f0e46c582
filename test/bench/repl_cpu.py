#!/usr/bin/python3
"""repl_cpu.py: where replicated scenario 3's CPU goes (issue 12).

    /usr/bin/python3 test/bench/repl_cpu.py [--build build] [--runs 2]
        [--duration 5] [--single] [--stat] [--perf DIR]

Scenario 3 (quorum_bench.py's arguments: 1 KiB persistent, confirms with
a window of 1,000, manual multi-ack every 10, prefetch 100, fsync =
always) against the leader of "/" on 3 nodes and one etcd on loopback
(or, --single, one plain node). Besides the confirmed msg/s it prints,
per broker process, the CPU it spent per confirmed message (utime +
stime from /proc, all its threads) and its cores, its busiest threads,
warren-perf's own CPU per message and the machine's busy and iowait
share over the run (the other work on the machine shows there).

--stat: perf stat of each broker (write/read/fdatasync syscalls, context
switches, page faults) into DIR/stat-<role>.txt (DIR: /tmp). --perf DIR:
perf record -g (dwarf) of each broker into DIR/<role>.data.
"""

import argparse
import base64
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "test", "cluster"))
sys.path.insert(0, os.path.join(REPO, "test", "bench"))
import localcluster  # noqa: E402
import quorum_bench as qb  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
STAT_EVENTS = ("syscalls:sys_enter_write,syscalls:sys_enter_read,"
               "syscalls:sys_enter_writev,syscalls:sys_enter_fdatasync,"
               "context-switches,page-faults")


def ticks(path):
    with open(path) as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) / HZ


def threads(pid):
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            out[t] = ticks("/proc/%d/task/%s/stat" % (pid, t))
        except OSError:
            pass
    return out


def machine():
    with open("/proc/stat") as f:
        x = [int(v) for v in f.readline().split()[1:]]
    return x[3] + x[4], x[4], sum(x)   # idle + iowait, iowait, all


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def profilers(a, roles, pids):
    ps = []
    for role, pid in zip(roles, pids):
        if a.perf:
            ps.append(subprocess.Popen(
                ["perf", "record", "--call-graph", "dwarf,16384", "-F", "499",
                 "-p", str(pid), "-o", os.path.join(a.perf, role + ".data")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if a.stat:
            ps.append(subprocess.Popen(
                ["perf", "stat", "-e", STAT_EVENTS, "-p", str(pid), "-o",
                 os.path.join(a.stat_dir, "stat-%s.txt" % role)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    if ps:
        time.sleep(0.5)
    return ps


def run(a, port, roles, pids):
    for _ in range(a.runs):
        qb.declare(port)
        ps = profilers(a, roles, pids)
        t0 = [threads(p) for p in pids]
        m0, c0, w0 = machine(), children_cpu(), time.time()
        d = qb.perf(a.build, port, ["throughput"] + qb.SCENARIO3 +
                    ["-z", str(a.duration)])
        el = time.time() - w0
        m1, c1 = machine(), children_cpu()
        t1 = [threads(p) for p in pids]
        for p in ps:
            p.send_signal(signal.SIGINT)
            p.wait()
        n = max(1, d["confirmed"])
        per, cores, busiest = [], [], []
        for role, a0, a1 in zip(roles, t0, t1):
            used = {t: v - a0.get(t, 0) for t, v in a1.items()}
            per.append("%s %.2f" % (role, sum(used.values()) * 1e6 / n))
            cores.append("%s %.2f" % (role, sum(used.values()) / el))
            busiest.append("%s %s" % (role, "/".join(
                "%.2f" % (v / el) for v in
                sorted(used.values(), reverse=True)[:2])))
        all_ = max(1, m1[2] - m0[2])
        print("%-7s %8.0f confirmed msg/s | CPU us/msg: %s | perf %.2f | "
              "cores: %s | busiest threads: %s | machine busy %.0f%% "
              "iowait %.0f%% load %.1f" % (
                  "single" if a.single else "cluster", d["confirm_rate"],
                  ", ".join(per), (c1 - c0) * 1e6 / n, ", ".join(cores),
                  ", ".join(busiest), 100 * (1 - (m1[0] - m0[0]) / all_),
                  100 * (m1[1] - m0[1]) / all_, os.getloadavg()[0]),
              flush=True)


def single(a, work):
    port = localcluster.free_port()
    conf = os.path.join(work, "w.conf")
    with open(conf, "w") as f:
        f.write("listeners.tcp.default = 127.0.0.1:%d\ndata_dir = %s/data\n"
                "fsync = always\nprometheus.tcp.port = 0\n"
                "loopback_users.guest = false\n" % (port, work))
    p = subprocess.Popen([os.path.join(a.build, "server", "warren"),
                          "--config", conf], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        qb.wait_until(lambda: qb.port_open(port), 30, "warren single")
        run(a, port, ["single"], [p.pid])
    finally:
        p.kill()
        p.wait(10)


def cluster(a, work):
    with localcluster.LocalCluster(
            nodes=3, ttl=4, warren=os.path.join(a.build, "server", "warren"),
            workdir=os.path.join(work, "c"),
            extra_conf={"fsync": "always"}) as lc:
        def leader():
            req = urllib.request.Request(
                "http://127.0.0.1:%d/api/vhosts/%%2F" % lc.node(0).mgmt_port)
            req.add_header("Authorization", "Basic " + base64.b64encode(
                b"guest:guest").decode())
            try:
                with urllib.request.urlopen(req, timeout=2) as r:
                    name = json.load(r).get("leader")
            except OSError:
                return None
            return next((n for n in lc.nodes if n.name == name), None)
        qb.wait_until(leader, 30, "a leader of /")
        time.sleep(2)   # both mirrors in the in-sync set
        n = leader()
        mirrors = [m for m in lc.nodes if m is not n]
        run(a, n.amqp_port, ["leader", "mirror1", "mirror2"],
            [n.proc.pid] + [m.proc.pid for m in mirrors])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--single", action="store_true")
    ap.add_argument("--stat", action="store_true")
    ap.add_argument("--stat-dir", default="/tmp")
    ap.add_argument("--perf", help="perf record each broker into this dir")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    work = tempfile.mkdtemp(prefix="repl-cpu-")
    try:
        (single if a.single else cluster)(a, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
