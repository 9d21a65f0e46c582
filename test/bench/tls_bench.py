#!/usr/bin/python3
"""tls_bench.py: what TLS costs, Warren and RabbitMQ side by side.

Scenarios 1, 3 and 7 of compare.py (warren-everyday's arguments: rabbitmq-c
clients, one publish per write) over plain AMQP and over AMQPS, on one
Warren (the build's server/warren, fsync = always, one plain and one TLS
listener) and one RabbitMQ (Debian's package through
shared/tools/rabbitmq-local, with a TLS listener from a conf.d file handed
over in RABBITMQ_CONFIG_FILES). Certificates (an EC P-256 CA and server
certificate) are made with the openssl CLI in a temp directory; clients
check the server's certificate against the CA (`--tls --cacert`).

For each scenario the four cells (broker x transport) run `--runs` times
in alternating order; the script prints, per cell, the median consume rate
and broker CPU per message, and the TLS/plain ratios, as a Markdown table
for BENCHMARKS.md with the exact command of each cell.

    /usr/bin/python3 test/bench/tls_bench.py --build build-rel \\
        --rabbit-port 5615 --duration 3 --runs 3
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

SCENARIOS = {
    1: ("1 publisher → 1 queue → 1 consumer, 16 B, transient, auto-ack",
        ["-x", "1", "-y", "1", "-q", "1", "-s", "16"]),
    3: ("1 KiB, persistent, durable queue, confirms (window 1000), manual "
        "ack every 10 (prefetch 100), fsync=always",
        ["-s", "1024", "--persistent", "--durable-queues", "--confirm",
         "1000", "--multi-ack-every", "10", "--prefetch", "100"]),
    7: ("64 KiB messages", ["-s", "65536"]),
}


def log(msg):
    print("[tls_bench %s] %s" % (time.strftime("%H:%M:%S"), msg),
          file=sys.stderr, flush=True)


def openssl(d, *args):
    subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certs(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    openssl(d, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=tls_bench CA")
    openssl(d, "req", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-set_serial", "1", "-days", "2",
            "-out", "server.pem", "-extfile", "ext")
    # RabbitMQ runs as this user too; keep the files readable
    for n in ("ca.pem", "server.pem", "server.key"):
        os.chmod(os.path.join(d, n), 0o644)


class Warren:
    name = "warren"

    def __init__(self, binary, root, certs):
        self.binary, self.root, self.certs = binary, root, certs
        self.proc = None

    def start(self):
        work = tempfile.mkdtemp(prefix="warren-", dir=self.root)
        conf = os.path.join(work, "warren.conf")
        with open(conf, "w") as f:
            f.write("fsync = always\nmanagement.tcp.ip = 127.0.0.1\n"
                    "management.tcp.port = 0\n"
                    "prometheus.tcp.port = 0\n"
                    "listeners.ssl.default = 127.0.0.1:0\n"
                    "ssl_options.certfile = %s/server.pem\n"
                    "ssl_options.keyfile = %s/server.key\n"
                    % (self.certs, self.certs))
        self.log = os.path.join(work, "warren.log")
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [self.binary, "--config", conf, "--listen", "127.0.0.1:0",
                 "--data-dir", os.path.join(work, "data")],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with open(self.log) as f:
                text = f.read()
            plain = re.search(r"listening on \S+:(\d+) \(amqp\)", text)
            tls = re.search(r"listening on \S+:(\d+) \(amqps\)", text)
            if plain and tls:
                self.ports = {"plain": int(plain.group(1)),
                              "tls": int(tls.group(1))}
                self.pid = self.proc.pid
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("warren did not start: see %s" % self.log)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        self.proc = None


class Rabbit:
    name = "rabbitmq"

    def __init__(self, tool, port, root, certs):
        self.tool, self.port = tool, port
        self.dir = os.path.join(root, "rabbitmq")
        self.confd = os.path.join(root, "rabbitmq-conf.d")
        os.makedirs(self.confd, exist_ok=True)
        with open(os.path.join(self.confd, "10-tls.conf"), "w") as f:
            f.write("listeners.ssl.default = 127.0.0.1:%d\n"
                    "ssl_options.certfile = %s/server.pem\n"
                    "ssl_options.keyfile = %s/server.key\n"
                    "ssl_options.verify = verify_none\n"
                    "ssl_options.fail_if_no_peer_cert = false\n"
                    % (port + 1, certs, certs))
        self.ports = {"plain": port, "tls": port + 1}

    def _run(self, cmd):
        args = [self.tool, cmd, "--port", str(self.port), "--dir", self.dir]
        if cmd == "start":
            args += ["--mgmt-port", "0"]
        env = dict(os.environ, RABBITMQ_CONFIG_FILES=self.confd)
        r = subprocess.run(args, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("rabbitmq-local %s: %s" % (cmd, r.stdout))

    def start(self):
        self._run("start")
        with open(os.path.join(self.dir, "rabbit.pid")) as f:
            self.pid = int(f.read())

    def stop(self):
        self._run("stop")

    def wipe(self):
        self._run("wipe")


def run_cell(tool, broker, transport, n, args, certs, tmp):
    out = os.path.join(tmp, "s%d-%s-%s.json" % (n, broker.name, transport))
    cmd = [tool, "throughput"] + SCENARIOS[n][1] + [
        "-z", str(args.duration), "--drain-timeout", "30",
        "--queue-prefix", "tls-%d-%s" % (n, transport),
        "--host", "127.0.0.1", "--port", str(broker.ports[transport]),
        "--broker-pid", str(broker.pid), "--json", out, "--quiet"]
    if transport == "tls":
        cmd += ["--tls", "--cacert", os.path.join(certs, "ca.pem")]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=args.duration + 120)
    with open(out) as f:
        j = json.load(f)
    if r.returncode != 0 or not j.get("ok"):
        raise RuntimeError("scenario %d %s %s failed:\n%s"
                           % (n, broker.name, transport, r.stdout[-2000:]))
    shown = cmd[:]
    shown[shown.index("--port") + 1] = "PORT"
    shown[shown.index("--broker-pid") + 1] = "PID"
    shown[shown.index("--json") + 1] = "OUT"
    if "--cacert" in shown:
        shown[shown.index("--cacert") + 1] = "ca.pem"
    shown[0] = "warren-everyday"
    return j, " ".join(shown)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("scenarios", nargs="*", type=int, default=[1, 3, 7])
    p.add_argument("--build", default="build")
    p.add_argument("--rabbit-port", type=int, default=5615)
    p.add_argument("--rabbitmq-local",
                   default="/work/shared/tools/rabbitmq-local")
    p.add_argument("--duration", type=int, default=3)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-rabbitmq", action="store_true")
    args = p.parse_args()
    build = os.path.join(REPO, args.build)
    tool = os.path.join(build, "test", "warren-everyday")
    tmp = tempfile.mkdtemp(prefix="tls-bench-")
    certs = os.path.join(tmp, "certs")
    os.makedirs(certs)
    make_certs(certs)
    brokers = [Warren(os.path.join(build, "server", "warren"), tmp, certs)]
    if not args.no_rabbitmq:
        brokers.append(Rabbit(args.rabbitmq_local, args.rabbit_port, tmp,
                              certs))
    results = {}
    commands = {}
    try:
        for b in brokers:
            b.start()
        for n in args.scenarios:
            cells = [(b, t) for b in brokers for t in ("plain", "tls")]
            for run in range(args.runs):
                order = cells if run % 2 == 0 else cells[::-1]
                for b, t in order:
                    j, cmd = run_cell(tool, b, t, n, args, certs, tmp)
                    key = (n, b.name, t)
                    results.setdefault(key, []).append(j)
                    commands[(n, t)] = cmd
                    log("scenario %d %s %s: %.0f msg/s, broker %.2f µs/msg"
                        % (n, b.name, t, j["consume_rate"],
                           j["broker"]["cpu_us_per_msg"]))
    finally:
        for b in brokers:
            try:
                b.stop()
                if isinstance(b, Rabbit):
                    b.wipe()
            except Exception as e:  # keep stopping the others
                log("stopping %s: %s" % (b.name, e))
        shutil.rmtree(tmp, ignore_errors=True)
    report(args, brokers, results, commands)


def cell(js, f, fmt):
    """Median (min-max) of f over the runs."""
    v = sorted(f(j) for j in js)
    return "%s (%s-%s)" % (fmt(statistics.median(v)), fmt(v[0]), fmt(v[-1]))


def report(args, brokers, results, commands):
    rate = "{:,.0f}".format
    cpu = "{:.2f}".format
    print("| # | broker | plain: msg/s | TLS: msg/s | rate TLS/plain | "
          "plain: broker µs/msg | TLS: broker µs/msg | CPU TLS/plain |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in args.scenarios:
        for b in brokers:
            p, t = results[(n, b.name, "plain")], results[(n, b.name, "tls")]

            def r(j):
                return j["consume_rate"]

            def c(j):
                return j["broker"]["cpu_us_per_msg"]

            print("| %d | %s | %s | %s | %.2f | %s | %s | %.2f |"
                  % (n, b.name, cell(p, r, rate), cell(t, r, rate),
                     statistics.median(map(r, t)) /
                     statistics.median(map(r, p)),
                     cell(p, c, cpu), cell(t, c, cpu),
                     statistics.median(map(c, t)) /
                     statistics.median(map(c, p))))
    print()
    for n in args.scenarios:
        print("- %d. %s: `%s` (plain), `%s` (TLS)"
              % (n, SCENARIOS[n][0], commands[(n, "plain")],
                 commands[(n, "tls")]))


if __name__ == "__main__":
    main()
