#!/usr/bin/python3
"""quorum_bench.py: replicated Warren against RabbitMQ 3.10 quorum queues
(issue 12, "Measure and report").

    /usr/bin/python3 test/bench/quorum_bench.py [--build build]
        [--runs 2] [--duration 8] [--port-base 5641] [--skip-rabbit]
        [--kill-json faults.json ...] [--json OUT]

Three targets, one after the other, each fresh:

  rabbit-quorum   3 RabbitMQ nodes on this machine (nodes qb<port>@localhost
                  on AMQP ports port-base .. +2, Erlang distribution ports
                  +20000, own data directories, one private Erlang cookie),
                  nodes 2 and 3 joined to node 1 with `rabbitmqctl
                  join_cluster`; one quorum queue (x-quorum-initial-group-
                  size 3) whose leader is node 1, measured on node 1.
  warren-cluster  3 Warren nodes and one etcd on loopback
                  (test/cluster/localcluster.py), fsync = always, measured
                  on the leader of "/" (confirms wait for both in-sync
                  mirrors' fdatasync).
  warren-single   one Warren node, fsync = always.

Each gets the same declaration (a durable direct exchange and one queue
declared with x-queue-type = quorum, which Warren accepts) and the same
warren-perf runs with scenario 3's arguments (1 KiB persistent, confirms,
manual multi-ack every 10, prefetch 100): `--runs` throughput runs, then a
latency run at 1,000 msg/s (publish -> confirm and publish -> delivery).
RabbitMQ quorum queues fsync their write-ahead log before confirming.

--kill-json reads faults.py --json results and prints the failover time
distribution of the kill trials (kill -9 of the leader -> next confirm of
a message published after the kill) and the graceful-stop times.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "test", "cluster"))
import localcluster  # noqa: E402

RMQ_BIN = os.environ.get("RABBITMQ_BIN_DIR", "/usr/lib/rabbitmq/bin")
QUEUE = "warren-perf-0"            # warren-perf's names with -q 1
EXCHANGE = "warren-perf.direct"
SCENARIO3 = ["-s", "1024", "--persistent", "--durable-queues", "--confirm",
             "1000", "--multi-ack-every", "10", "--prefetch", "100",
             "--drain-timeout", "30", "--predeclared"]


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(0.25)


# -- RabbitMQ: three nodes on one machine, one cluster -----------------------

class RabbitNode:
    def __init__(self, cluster, port):
        self.cluster = cluster
        self.port = port
        self.name = "qb%d@localhost" % port
        self.dir = os.path.join(cluster.workdir, "qb%d" % port)
        self.pidfile = os.path.join(self.dir, "rabbit.pid")
        self.proc = None

    def env(self):
        e = dict(self.cluster.env)
        e.update({
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.port + 20000),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir,
                                                          "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_PID_FILE": self.pidfile,
        })
        return e

    def start(self):
        os.makedirs(os.path.join(self.dir, "mnesia"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "log"), exist_ok=True)
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write("listeners.tcp.1 = 127.0.0.1:%d\n"
                    "loopback_users.guest = true\n" % self.port)
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        self.proc = subprocess.Popen(
            [os.path.join(RMQ_BIN, "rabbitmq-server")], env=self.env(),
            cwd=self.dir, stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(self.dir, "server.out"), "ab"),
            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_up(self, timeout=120):
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("RabbitMQ %s exited; see %s" % (
                    self.name, self.dir))
            return port_open(self.port)
        wait_until(up, timeout, "RabbitMQ %s on port %d" % (self.name,
                                                            self.port))

    def ctl(self, *args, timeout=120):
        r = subprocess.run([os.path.join(RMQ_BIN, "rabbitmqctl"), "-n",
                            self.name] + list(args), env=self.env(),
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("rabbitmqctl -n %s %s: %s%s" % (
                self.name, " ".join(args), r.stdout, r.stderr))
        return r.stdout

    def pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        if self.proc is None:
            return
        try:
            self.ctl("stop", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        # The node's process group (beam.smp, its port programs).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


class RabbitCluster:
    """Three RabbitMQ nodes with their own names, ports and data
    directories, one private Erlang cookie (HOME points at the work
    directory, where rabbitmq-server and rabbitmqctl look for it)."""

    def __init__(self, port_base, workdir):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        cookie = os.path.join(workdir, ".erlang.cookie")
        with open(cookie, "w") as f:
            f.write("QUORUMBENCH%d" % os.getpid())
        os.chmod(cookie, 0o400)
        self.env = dict(os.environ, HOME=workdir,
                        ERL_EPMD_ADDRESS="127.0.0.1",
                        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                            "-kernel inet_dist_use_interface {127,0,0,1}"))
        self.nodes = [RabbitNode(self, port_base + i) for i in range(3)]

    def start(self):
        for n in self.nodes:
            if port_open(n.port) or port_open(n.port + 20000):
                raise RuntimeError("port %d or %d is taken" % (
                    n.port, n.port + 20000))
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_up()
        first = self.nodes[0]
        for n in self.nodes[1:]:
            n.ctl("stop_app")
            n.ctl("join_cluster", first.name)
            n.ctl("start_app")
        status = first.ctl("cluster_status", "--formatter", "json")
        running = json.loads(status).get("running_nodes", [])
        if sorted(running) != sorted(n.name for n in self.nodes):
            raise RuntimeError("cluster not formed: %s" % status)
        return self

    def close(self):
        for n in reversed(self.nodes):
            n.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# -- the measurement ----------------------------------------------------------

def declare(port, vhost="/"):
    """The exchange, a quorum queue (3 members) and its binding, declared
    through port: RabbitMQ places the queue's leader on that node."""
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials("guest", "guest")))
    ch = conn.channel()
    ch.exchange_declare(EXCHANGE, "direct", durable=True)
    ch.queue_declare(QUEUE, durable=True, arguments={
        "x-queue-type": "quorum", "x-quorum-initial-group-size": 3})
    ch.queue_bind(QUEUE, EXCHANGE, QUEUE)
    ch.queue_purge(QUEUE)
    conn.close()


def perf(build, port, argv, pid=None):
    fd, out = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = [os.path.join(build, "test", "warren-perf")] + argv + [
        "--port", str(port), "--json", out, "--quiet"]
    if pid:
        cmd += ["--broker-pid", str(pid)]
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    try:
        with open(out) as f:
            d = json.load(f)
    except (OSError, ValueError):
        raise RuntimeError("warren-perf %s failed (%s): %s" % (
            argv[0], r.returncode, r.stderr[-2000:]))
    finally:
        os.unlink(out)
    d["exit_status"] = r.returncode
    return d


def measure(label, build, port, runs, duration, pid=None):
    """Scenario 3 runs and the latency run against port; returns a dict."""
    out = {"target": label, "throughput": [], "checks_ok": True}
    for _ in range(runs):
        declare(port)
        d = perf(build, port, ["throughput"] + SCENARIO3 +
                 ["-z", str(duration)], pid)
        out["throughput"].append(round(d["confirm_rate"]))
        out["checks_ok"] &= d["exit_status"] == 0
        print("%-15s scenario 3: %8.0f confirmed msg/s%s" % (
            label, d["confirm_rate"], "" if d["exit_status"] == 0 else
            " (warren-perf status %d)" % d["exit_status"]), flush=True)
    declare(port)
    d = perf(build, port, ["latency", "--rate", "1000"] + SCENARIO3 +
             ["-z", str(duration)], pid)
    out["checks_ok"] &= d["exit_status"] == 0
    for k in ("confirm_latency_us", "latency_us"):
        x = d[k]
        out[k] = {q: x[q] for q in ("p50", "p99", "max")}
        print("%-15s %-18s at 1,000 msg/s: p50 %7.0f  p99 %7.0f  max %7.0f"
              " us" % (label, k, x["p50"], x["p99"], x["max"]), flush=True)
    return out


def run_rabbit(a, workdir):
    with RabbitCluster(a.port_base, os.path.join(workdir, "rabbit")) as rc:
        first = rc.nodes[0]
        declare(first.port)
        members = first.ctl("list_queues", "name", "type", "leader",
                            "members", "--formatter", "json")
        print("rabbit-quorum   queue: %s" % json.dumps(
            [q for q in json.loads(members) if q["name"] == QUEUE]),
            flush=True)
        return measure("rabbit-quorum", a.build, first.port, a.runs,
                       a.duration)


def run_warren_cluster(a, workdir):
    import urllib.request
    import base64
    with localcluster.LocalCluster(
            nodes=3, ttl=4, warren=os.path.join(a.build, "server", "warren"),
            workdir=os.path.join(workdir, "warren-cluster"),
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
        wait_until(leader, 30, "a leader of /")
        time.sleep(2)   # both mirrors in the in-sync set
        n = leader()
        return measure("warren-cluster", a.build, n.amqp_port, a.runs,
                       a.duration)


def run_warren_single(a, workdir):
    d = os.path.join(workdir, "warren-single")
    os.makedirs(d)
    port = localcluster.free_port()
    with open(os.path.join(d, "w.conf"), "w") as f:
        f.write("listeners.tcp.default = 127.0.0.1:%d\n"
                "data_dir = %s/data\nfsync = always\n"
                "prometheus.tcp.port = 0\n"
                "loopback_users.guest = false\n" % (port, d))
    p = subprocess.Popen([os.path.join(a.build, "server", "warren"),
                          "--config", os.path.join(d, "w.conf")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(d, "warren.log"), "ab"))
    try:
        wait_until(lambda: port_open(port), 30, "warren single")
        return measure("warren-single", a.build, port, a.runs, a.duration)
    finally:
        p.kill()
        p.wait(10)


def failover(paths):
    """Kill trials of faults.py --json files: kill -> next confirm (one
    figure per kill: the trial's max over its kills, one kill per trial
    unless --minutes) and graceful stop seconds."""
    ks, stops, trials = [], [], 0
    for p in paths:
        with open(p) as f:
            for t in json.load(f)["trials"]:
                if t["fault"] != "kill" or not t.get("result"):
                    continue
                trials += 1
                f2c = t["result"]["fault_to_confirm"]
                if f2c.get("max") is not None:
                    ks.append(f2c["max"])
                g = (t.get("info") or {}).get("graceful_stop") or {}
                if g.get("seconds") is not None:
                    stops.append(g["seconds"])
    if not ks:
        return None
    ks.sort()
    stops.sort()

    def pct(xs, p):
        return xs[min(len(xs) - 1, max(0, int(-(-p * len(xs) // 100)) - 1))]
    hist = {}
    for x in ks:
        b = "%d-%d s" % (int(x), int(x) + 1)
        hist[b] = hist.get(b, 0) + 1
    out = {"trials": trials, "kill_to_confirm_s": {
        "n": len(ks), "min": ks[0], "p50": pct(ks, 50), "p90": pct(ks, 90),
        "p99": pct(ks, 99), "max": ks[-1]}, "histogram": hist}
    if stops:
        out["graceful_stop_s"] = {"n": len(stops), "p50": pct(stops, 50),
                                  "p99": pct(stops, 99), "max": stops[-1]}
    print("failover (kill -9 of the leader -> next confirm), %d kills: "
          "min %.2f p50 %.2f p90 %.2f p99 %.2f max %.2f s; %s" % (
              len(ks), ks[0], pct(ks, 50), pct(ks, 90), pct(ks, 99), ks[-1],
              ", ".join("%s: %d" % kv for kv in sorted(hist.items()))))
    if stops:
        print("graceful stop of the leader: p50 %.2f p99 %.2f max %.2f s"
              % (pct(stops, 50), pct(stops, 99), stops[-1]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--port-base", type=int, default=5641,
                    help="RabbitMQ AMQP ports: this and the next two")
    ap.add_argument("--skip-rabbit", action="store_true")
    ap.add_argument("--skip-warren", action="store_true")
    ap.add_argument("--kill-json", nargs="*", default=[],
                    help="faults.py --json files with kill trials")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (logs)")
    a = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="quorum-bench-")
    res = {"targets": {}}
    try:
        if not a.skip_rabbit:
            res["targets"]["rabbit-quorum"] = run_rabbit(a, workdir)
        if not a.skip_warren:
            res["targets"]["warren-cluster"] = run_warren_cluster(a, workdir)
            res["targets"]["warren-single"] = run_warren_single(a, workdir)
    finally:
        if a.keep:
            print("work directory kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    best = {k: max(v["throughput"]) for k, v in res["targets"].items()}
    if "warren-cluster" in best and "rabbit-quorum" in best:
        res["cluster_vs_rabbit_quorum"] = round(
            best["warren-cluster"] / max(1, best["rabbit-quorum"]), 2)
        print("warren-cluster / rabbit-quorum: %.1fx (goal >= 5x)"
              % res["cluster_vs_rabbit_quorum"])
    if "warren-cluster" in best and "warren-single" in best:
        res["cluster_vs_single"] = round(
            best["warren-cluster"] / max(1, best["warren-single"]), 2)
        print("warren-cluster / warren-single: %.0f%% (goal >= 50%%)"
              % (100 * res["cluster_vs_single"]))
    if a.kill_json:
        res["failover"] = failover(a.kill_json)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
