#!/usr/bin/python3
"""localcluster.py: a Warren cluster on loopback, for development and tests.

Starts etcd (one member, or three with --etcd 3) and N Warren nodes, each
with its own AMQP, management and node-to-node ports and its own data
directory under one work directory, prints where everything listens, and
stops it all on Ctrl-C (SIGINT) or SIGTERM:

    python3 test/cluster/localcluster.py                  # 3 nodes
    python3 test/cluster/localcluster.py --nodes 5 --etcd 3
    python3 test/cluster/localcluster.py --warren build/server/warren \\
        --dir /tmp/wc --keep                              # keep the data

Tests import it:

    with LocalCluster(nodes=3, workdir=tmp) as lc:
        lc.node(0).amqp_port, lc.node(2).mgmt_port
        lc.kill(1); lc.start(1); lc.stop(1)          # -9 / restart / TERM

Every port comes from the kernel (bound, then released just before the
process binds it), every process is killed when the cluster stops, and
every wait is bounded.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LISTEN_RE = re.compile(r"listening on (\S+):(\d+) \((amqp|http)\)")
START_TIMEOUT = 30.0


# Ports come from below the kernel's ephemeral range (32768 and up), so
# that no bind(0) elsewhere and no outgoing connection can take one
# between the choice and the server's bind (a kernel-chosen port was
# seen taken again before a node listened on it); and from another range
# than test_etcd's members (20000-32000), which ctest may run alongside.
# The start depends on the pid, so that concurrent clusters rarely meet,
# and no port is handed out twice by one process.
PORT_LOW, PORT_HIGH = 10000, 20000
_handed_out = set()


def free_port():
    span = PORT_HIGH - PORT_LOW
    start = (os.getpid() * 7919 + len(_handed_out)) % span
    for i in range(span):
        port = PORT_LOW + (start + i) % span
        if port in _handed_out:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port in [%d, %d)" % (PORT_LOW, PORT_HIGH))


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(0.05)


class Etcd:
    """One etcd member on free loopback ports."""

    def __init__(self, name, workdir):
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.dir = os.path.join(workdir, "etcd-" + name)
        self.log = os.path.join(workdir, "etcd-%s.log" % name)
        self.proc = None
        self.initial = None

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.client_port

    def start(self):
        url = "http://127.0.0.1:%d" % self.client_port
        peer = "http://127.0.0.1:%d" % self.peer_port
        args = ["etcd", "--name", self.name, "--data-dir", self.dir,
                "--listen-client-urls", url, "--advertise-client-urls", url,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", self.initial,
                "--initial-cluster-state", "new",
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--logger=zap", "--log-level=error"]
        self.proc = subprocess.Popen(args, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def healthy(self):
        try:
            with urllib.request.urlopen("http://%s/health" % self.endpoint,
                                        timeout=1) as r:
                return b'"health":"true"' in r.read()
        except OSError:
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Node:
    """One Warren node: its ports, data directory and process."""

    def __init__(self, lc, index):
        self.lc = lc
        self.index = index
        self.name = "warren%d@localhost" % (index + 1)
        self.amqp_port = free_port()
        self.mgmt_port = free_port()
        self.cluster_port = free_port()
        self.dir = os.path.join(lc.workdir, "node%d" % (index + 1))
        self.data_dir = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "warren.conf")
        self.log = os.path.join(self.dir, "warren.log")
        self.proc = None
        self.lines = []
        self.cond = threading.Condition()
        self.extra_conf = {}  # this node's own keys, on top of the cluster's
        os.makedirs(self.data_dir, exist_ok=True)

    def write_config(self, extra=None):
        conf = {
            "listeners.tcp.default": "127.0.0.1:%d" % self.amqp_port,
            "management.tcp.ip": "127.0.0.1",
            "management.tcp.port": str(self.mgmt_port),
            "prometheus.tcp.ip": "127.0.0.1",
            "prometheus.tcp.port": "0",
            "data_dir": self.data_dir,
            "cluster_formation.peer_discovery_backend": "etcd",
            "cluster_formation.etcd.key_prefix": "warren",
            "cluster_formation.etcd.cluster_name": self.lc.cluster_name,
            "cluster_formation.etcd.node_ttl": str(self.lc.ttl),
            "cluster.node_name": self.name,
            "cluster.listen": "127.0.0.1:%d" % self.cluster_port,
            "loopback_users.guest": "false",
        }
        for i, e in enumerate(self.lc.etcd):
            conf["cluster_formation.etcd.endpoints.%d" % (i + 1)] = e.endpoint
        conf.update(self.lc.extra_conf)
        conf.update(self.extra_conf)
        conf.update(extra or {})
        with open(self.config, "w") as f:
            for k, v in conf.items():
                if v is not None:
                    f.write("%s = %s\n" % (k, v))

    def _pump(self, stream):
        with open(self.log, "a") as out:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace")
                out.write(line)
                out.flush()
                with self.cond:
                    self.lines.append(line.rstrip("\n"))
                    self.cond.notify_all()

    def start(self, wait=True):
        self.write_config()
        with self.cond:
            self.lines = []
        self.proc = subprocess.Popen(
            [self.lc.warren, "--config", self.config],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True)
        threading.Thread(target=self._pump, args=(self.proc.stderr,),
                         daemon=True).start()
        if wait:
            self.wait_listening()

    def wait_for_line(self, pattern, timeout=START_TIMEOUT, start=0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if rx.search(line):
                        return line
                if self.proc.poll() is not None:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.1))

    def wait_listening(self):
        if not self.wait_for_line(r"listening on \S+ \(http\)"):
            with self.cond:
                text = "\n".join(self.lines[-30:])
            raise RuntimeError("node %s did not start:\n%s"
                               % (self.name, text))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout=15):
        """SIGTERM; returns the exit status (kills after timeout)."""
        if not self.running():
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def url(self):
        return "amqp://guest:guest@127.0.0.1:%d/" % self.amqp_port


class LocalCluster:
    def __init__(self, nodes=3, etcd=1, workdir=None, warren=None, ttl=4,
                 cluster_name="local", extra_conf=None, keep=False):
        self.workdir = workdir or tempfile.mkdtemp(prefix="warren-cluster-")
        self.own_workdir = workdir is None and not keep
        self.warren = warren or os.environ.get("WARREN_BIN") or os.path.join(
            REPO, "build", "server", "warren")
        self.ttl = ttl
        self.cluster_name = cluster_name
        self.extra_conf = dict(extra_conf or {})
        names = ["e%d" % (i + 1) for i in range(etcd)]
        self.etcd = [Etcd(n, self.workdir) for n in names]
        initial = ",".join("%s=http://127.0.0.1:%d" % (e.name, e.peer_port)
                           for e in self.etcd)
        for e in self.etcd:
            e.initial = initial
        self.nodes = [Node(self, i) for i in range(nodes)]

    def node(self, i):
        return self.nodes[i]

    def start(self):
        for e in self.etcd:
            e.start()
        wait_until(lambda: all(e.healthy() for e in self.etcd), 30,
                   "etcd to become healthy")
        for n in self.nodes:
            n.start(wait=False)
        for n in self.nodes:
            n.wait_listening()
        return self

    def kill(self, i):
        self.nodes[i].kill()

    def stop(self, i):
        return self.nodes[i].stop()

    def restart(self, i):
        self.nodes[i].start()

    def close(self):
        for n in self.nodes:
            n.kill()
        for e in self.etcd:
            e.kill()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--etcd", type=int, default=1, choices=(1, 3))
    ap.add_argument("--warren", help="the broker binary "
                    "(default: build/server/warren)")
    ap.add_argument("--dir", help="work directory (default: a temp one, "
                    "removed at the end)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory")
    ap.add_argument("--ttl", type=int, default=4, help="node lease TTL (s)")
    args = ap.parse_args()
    lc = LocalCluster(nodes=args.nodes, etcd=args.etcd, workdir=args.dir,
                      warren=args.warren, ttl=args.ttl, keep=args.keep)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        lc.start()
        print("etcd:  " + ", ".join(e.endpoint for e in lc.etcd))
        for n in lc.nodes:
            print("%s  amqp://127.0.0.1:%d  http://127.0.0.1:%d  "
                  "(cluster port %d, log %s)"
                  % (n.name, n.amqp_port, n.mgmt_port, n.cluster_port,
                     n.log))
        print("work directory: %s; Ctrl-C stops everything" % lc.workdir)
        sys.stdout.flush()
        while not stop.wait(0.5):
            for n in lc.nodes:
                if n.proc.poll() is not None and not getattr(n, "told", 0):
                    print("%s exited with status %s (log %s)"
                          % (n.name, n.proc.returncode, n.log))
                    n.told = 1
    finally:
        for n in lc.nodes:
            try:
                n.stop(10)
            except Exception:
                n.kill()
        lc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
