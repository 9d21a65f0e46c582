#!/usr/bin/python3
"""cluster_bench.py: what clustering costs, measured on a local cluster.

    /usr/bin/python3 test/bench/cluster_bench.py [--build build-rel]
        [--tool batched|everyday] [--runs 3] [--duration 10]
        [--changes 1000] [--skip-defs]

Starts test/cluster/localcluster.py's cluster (one etcd, three Warren
nodes on loopback, each with its own data directory) and measures:

  relay     scenarios 1 and 3 of BENCHMARKS.md's matrix (warren-perf, the
            same arguments as compare.py) against the vhost's leader
            directly and through a node that does not lead it, which
            relays every connection to the leader. Broker CPU is user +
            system time of every node process (/proc/PID/stat) over the
            run, per message consumed: the relaying node's share counts.
  defs      a definition change (a user created through the management
            API of node i mod 3) until every node shows it: p50/p99/max
            over --changes changes, from the request's start to the last
            node's GET /api/users/NAME answering 200, and the writing
            node's reply alone (etcd's commit included). Each node is
            polled over a kept-alive HTTP connection, so the resolution
            is one GET (~0.2-0.5 ms on loopback).

Prints Markdown for BENCHMARKS.md and the raw figures as JSON (--json).
"""

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "test", "cluster"))
import localcluster  # noqa: E402

SCENARIOS = {
    1: ("1 publisher -> 1 queue -> 1 consumer, 16 B, transient, auto-ack",
        ["throughput", "-x", "1", "-y", "1", "-q", "1", "-s", "16"]),
    3: ("1 KiB, persistent, durable queue, confirms (window 1000), manual "
        "ack every 10 (prefetch 100), fsync=always",
        ["throughput", "-s", "1024", "--persistent", "--durable-queues",
         "--confirm", "1000", "--multi-ack-every", "10", "--prefetch",
         "100"]),
}
AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def log(msg):
    print("[cluster_bench %s] %s" % (time.strftime("%H:%M:%S"), msg),
          file=sys.stderr, flush=True)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Http:
    """One kept-alive connection to a node's management API."""

    def __init__(self, port):
        self.port = port
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def call(self, method, path, body=None):
        hdrs = {"Authorization": AUTH}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        for attempt in (0, 1):
            try:
                self.c.request(method, path, body=data, headers=hdrs)
                r = self.c.getresponse()
                text = r.read()
                return r.status, text
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port,
                                                    timeout=10)
                if attempt:
                    raise


def leader_of(node, vhost="%2F"):
    st, text = Http(node.mgmt_port).call("GET", "/api/vhosts/" + vhost)
    return json.loads(text).get("leader") if st == 200 else None


def perf_run(perf, port, pids, argv, duration, prefix, tmp):
    out = os.path.join(tmp, "perf.json")
    if os.path.exists(out):
        os.unlink(out)
    before = [cpu_seconds(p) for p in pids]
    cmd = [perf] + argv + ["-z", str(duration), "--drain-timeout", "30",
                           "--queue-prefix", prefix, "--host", "127.0.0.1",
                           "--port", str(port), "--json", out, "--quiet"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=duration + 300)
    after = [cpu_seconds(p) for p in pids]
    if r.returncode != 0 or not os.path.exists(out):
        raise RuntimeError("warren-perf failed (%d):\n%s"
                           % (r.returncode, r.stdout[-2000:]))
    with open(out) as f:
        j = json.load(f)
    cpu = [a - b for a, b in zip(after, before)]
    n = max(1, j.get("consumed") or 0)
    return {"rate": j.get("consume_rate"), "consumed": j.get("consumed"),
            "cpu_us_per_msg": sum(cpu) * 1e6 / n,
            "cpu_us_per_msg_by_node": [c * 1e6 / n for c in cpu]}


def relay(lc, perf, args, tmp):
    leader_name = leader_of(lc.node(0))
    leader = next(n for n in lc.nodes if n.name == leader_name)
    other = next(n for n in lc.nodes if n is not leader)
    pids = [n.proc.pid for n in lc.nodes]
    res = {}
    for sc, (title, argv) in SCENARIOS.items():
        # direct and relayed runs alternate, so that a drift of the
        # machine (or of the log) weighs on both alike
        for i in range(args.runs):
            for path, node in (("direct", leader), ("relayed", other)):
                log("scenario %d %s (via %s) run %d/%d"
                    % (sc, path, node.name, i + 1, args.runs))
                r = perf_run(perf, node.amqp_port, pids, argv, args.duration,
                             "cb%d-%s-%d" % (sc, path, i), tmp)
                res.setdefault("%d-%s" % (sc, path), []).append(r)
                log("  -> %.0f msg/s, %.2f us/msg"
                    % (r["rate"], r["cpu_us_per_msg"]))
    res["leader"], res["via"] = leader.name, other.name
    return res


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def defs(lc, args):
    apis = [Http(n.mgmt_port) for n in lc.nodes]
    visible, acked = [], []
    log("%d definition changes" % args.changes)
    for i in range(args.changes):
        name = "prop-%d" % i
        w = apis[i % len(apis)]
        t0 = time.monotonic()
        st, text = w.call("PUT", "/api/users/" + name,
                          {"password": "x", "tags": ""})
        t1 = time.monotonic()
        if st not in (201, 204):
            raise RuntimeError("PUT user: %d %s" % (st, text[:200]))
        pending = set(range(len(apis))) - {i % len(apis)}
        deadline = t0 + 10
        while pending and time.monotonic() < deadline:
            for k in list(pending):
                if apis[k].call("GET", "/api/users/" + name)[0] == 200:
                    pending.discard(k)
        if pending:
            raise RuntimeError("%s not on every node within 10 s" % name)
        visible.append((time.monotonic() - t0) * 1e3)
        acked.append((t1 - t0) * 1e3)
        if (i + 1) % 200 == 0:
            log("  %d changes, p50 %.2f ms" % (i + 1, pct(visible, 50)))
    for i in range(args.changes):
        apis[0].call("DELETE", "/api/users/prop-%d" % i)
    return {"visible_ms": visible, "acked_ms": acked}


def fmt(x, unit=""):
    return ("{:,.0f}".format(x) if x >= 100 else "%.2f" % x) + unit


def markdown(r, args, machine):
    out = []
    out.append("Measured %s by `test/bench/cluster_bench.py --build %s "
               "--tool %s --runs %d --duration %d --changes %d` (%s): one "
               "etcd and "
               "three Warren nodes on loopback, `fsync = always`; vhost `/` "
               "led by %s, relayed through %s. Medians of %d runs (min-max)."
               % (machine["date"], args.build, args.tool, args.runs,
                  args.duration,
                  args.changes, machine["desc"], r["relay"]["leader"],
                  r["relay"]["via"], args.runs))
    out.append("")
    out.append("| # | scenario | path | consume rate (deliveries/s) | "
               "broker CPU µs/msg, all nodes | of which each node |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    for sc, (title, _) in SCENARIOS.items():
        for path in ("direct", "relayed"):
            runs = r["relay"]["%d-%s" % (sc, path)]
            rates = [x["rate"] for x in runs]
            cpus = [x["cpu_us_per_msg"] for x in runs]
            med = statistics.median(cpus)
            best = min(runs, key=lambda x: abs(x["cpu_us_per_msg"] - med))
            out.append("| %d | %s | %s | %s (%s-%s) | %s (%s-%s) | %s |" % (
                sc, title, path, fmt(statistics.median(rates)),
                fmt(min(rates)), fmt(max(rates)), fmt(med), fmt(min(cpus)),
                fmt(max(cpus)),
                " / ".join("%.2f" % c
                           for c in best["cpu_us_per_msg_by_node"])))
    for sc in SCENARIOS:
        d = statistics.median(x["cpu_us_per_msg"]
                              for x in r["relay"]["%d-direct" % sc])
        v = statistics.median(x["cpu_us_per_msg"]
                              for x in r["relay"]["%d-relayed" % sc])
        dr = statistics.median(x["rate"] for x in r["relay"]["%d-direct" % sc])
        vr = statistics.median(x["rate"]
                               for x in r["relay"]["%d-relayed" % sc])
        out.append("")
        out.append("Scenario %d: relayed/direct broker CPU per message "
                   "%.2f (%+.0f%%), rate %.2f." % (sc, v / d, (v / d - 1) *
                                                   100, vr / dr))
    if not r["defs"]:
        return "\n".join(out)
    v, a = r["defs"]["visible_ms"], r["defs"]["acked_ms"]
    out.append("")
    out.append("| definition change (user PUT) | p50 | p99 | max |")
    out.append("| --- | --- | --- | --- |")
    out.append("| writing node's reply (etcd committed) | %.2f ms | %.2f ms "
               "| %.2f ms |" % (pct(a, 50), pct(a, 99), max(a)))
    out.append("| visible on every node | %.2f ms | %.2f ms | %.2f ms |"
               % (pct(v, 50), pct(v, 99), max(v)))
    return "\n".join(out)


def machine_desc():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = open("/proc/loadavg").read().split()[:3]
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "desc": "%d x %s, load average at start %s"
                    % (os.cpu_count(), cpu, " ".join(load))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build-rel")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--tool", choices=("batched", "everyday"),
                    default="batched",
                    help="load generator: warren-perf (batched, the "
                    "default) or warren-everyday (rabbitmq-c, one publish "
                    "per write)")
    ap.add_argument("--skip-defs", action="store_true",
                    help="measure the relay only")
    ap.add_argument("--json", help="write the raw figures here")
    args = ap.parse_args()
    build = os.path.join(REPO, args.build)
    warren = os.path.join(build, "server", "warren")
    perf = os.path.join(build, "test", "warren-perf" if args.tool ==
                        "batched" else "warren-everyday")
    for f in (warren, perf):
        if not os.access(f, os.X_OK):
            sys.exit("cluster_bench.py: %s not found: cmake -S . -B %s "
                     "-DCMAKE_BUILD_TYPE=Release && cmake --build %s -j2"
                     % (f, args.build, args.build))
    machine = machine_desc()
    lc = localcluster.LocalCluster(nodes=3, warren=warren, ttl=10)
    try:
        log("starting etcd and three nodes")
        lc.start()
        deadline = time.monotonic() + 30
        while not leader_of(lc.node(0)) and time.monotonic() < deadline:
            time.sleep(0.2)
        with_tmp = lc.workdir
        r = {"relay": relay(lc, perf, args, with_tmp),
             "defs": None if args.skip_defs else defs(lc, args)}
    finally:
        lc.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    print(markdown(r, args, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
