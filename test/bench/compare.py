#!/usr/bin/python3
"""compare.py: Warren against RabbitMQ 3.10, side by side, same tools.

Runs the scenario matrix of issue 5 against a private Warren (built
binary, temp data dir, fsync = always) and a private RabbitMQ (Debian's
rabbitmq-server through shared/tools/rabbitmq-local, on a spare port,
wiped afterwards), one run after the other on this machine, alternating
which broker goes first, each run repeated --repeats times. Both brokers
are restarted before every scenario (and before every run of the memory
scenarios 9 and 10), so that RSS figures are not polluted by memory an
earlier run left in the allocator.

Two load generators, chosen with --mode (issue 13):

  batched   warren-perf (the default): pipelined publishes, batched
            writes and acks, the way a broker is pushed to its limit;
            scenarios 1-11.
  everyday  warren-everyday: rabbitmq-c, one connection per thread, one
            amqp_basic_publish per message on a TCP_NODELAY socket, acks
            as deliveries come, the way most applications talk to a
            broker; the message scenarios 1-8 with the same options, and
            the many-connection sweeps 12 (64 publishers + 64 consumers)
            and 13 (256 + 256), which raise the aggregate rate step by
            step until deliveries lag, recording the broker's CPU per
            thread at each step (Warren's event loop, RabbitMQ's
            schedulers).
  both      each scenario in each mode that has it.

It writes BENCHMARKS.md at the repo root. The batched section: per
scenario the median and spread (min-max) of both brokers, Warren's
advantage, the goal, broker CPU per message (utime + stime deltas of the
broker process, beam.smp for RabbitMQ), broker RSS, warren-perf's own CPU,
the machine, the date and the exact commands. The everyday section, right
after it: both modes side by side, broker CPU per message and per thread
(/proc/PID/task/*/stat: for Warren the loop thread and the store threads,
for RabbitMQ the scheduler threads and the rest), the many-connection
sweeps and scenario 8's latency against warren-latency-floor. Results of
scenarios (and modes) not run this time are kept from each section's
raw-results block, so `compare.py 3` refreshes batched scenario 3 only.
Text outside the generated sections is preserved.

    test/bench/compare.py                 # batched scenarios 1-10
    test/bench/compare.py 3 7             # batched scenarios 3 and 7
    test/bench/compare.py --backlog       # batched 1-11 (11 = backlog)
    test/bench/compare.py 11 --backlog-count 5000000
    test/bench/compare.py --mode everyday         # 1-8, 12, 13
    test/bench/compare.py --mode both 1 5 8       # 1, 5, 8 in both modes
    test/bench/compare.py --mode everyday 12 --sweep-rates 5000,10000
    test/bench/compare.py --render        # re-render, run nothing

Needs: a build (default <repo>/build, or --build DIR) with server/warren,
test/warren-perf and (everyday) test/warren-everyday; rabbitmq-server;
iperf3 for scenario 7's loopback reference (optional). Use /usr/bin/python3.
Another compare.py on the machine? Give this one its own --rabbit-port
(Warren listens on a port the kernel picks, its management API too).
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BEGIN = "<!-- compare.py: generated section begins; edit outside it -->"
END = "<!-- compare.py: generated section ends -->"
EBEGIN = "<!-- compare.py: everyday section begins; edit outside it -->"
EEND = "<!-- compare.py: everyday section ends -->"
LISTEN_RE = re.compile(r"listening on (\S+):(\d+) \(amqp\)")
BROKERS = ("warren", "rabbitmq")
# Scenario 11 counts as flat when the last tenths of the backlog go at
# least 1/FLAT_MAX as fast as the first ones.
FLAT_MAX = 1.25

# metric kinds: "rate" (higher is better), "latency" and "memory" (lower),
# "sweep" (rate steps). modes: which load generators run the scenario.
BOTH = ("batched", "everyday")
TOOLS = {"batched": "warren-perf", "everyday": "warren-everyday"}
SCENARIOS = {
    1: dict(title="1 publisher → 1 queue → 1 consumer, 16 B, transient, "
                  "auto-ack",
            mode="throughput", args=["-x", "1", "-y", "1", "-q", "1",
                                     "-s", "16"],
            goal="≥ 5× consume rate; broker CPU ≤ 1 µs/msg",
            need=5, cpu_max=1.0),
    2: dict(title="same, manual ack every 10, prefetch 100",
            mode="throughput", args=["-s", "16", "--multi-ack-every", "10",
                                     "--prefetch", "100"],
            goal="≥ 5×", need=5),
    3: dict(title="1 KiB, persistent, durable queue, confirms (window "
                  "1000), manual ack every 10 (prefetch 100), "
                  "fsync=always",
            mode="throughput", args=["-s", "1024", "--persistent",
                                     "--durable-queues", "--confirm", "1000",
                                     "--multi-ack-every", "10",
                                     "--prefetch", "100"],
            goal="≥ 5×", need=5, syncs=True),
    4: dict(title="fanout to 10 queues with 10 consumers, 16 B",
            mode="throughput", args=["--exchange-type", "fanout", "-q", "10",
                                     "-y", "10", "-s", "16"],
            goal="≥ 5× deliveries/s", need=5),
    5: dict(title="topic exchange with 1,000 bindings (* and # patterns), "
                  "16 B",
            mode="throughput", args=["--exchange-type", "topic",
                                     "--topic-bindings", "1000", "-s", "16"],
            goal="≥ 10×", need=10),
    6: dict(title="4 publishers, 4 consumers, 4 queues, 16 B",
            mode="throughput", args=["-x", "4", "-y", "4", "-q", "4",
                                     "-s", "16"],
            goal="≥ 5×", need=5),
    7: dict(title="64 KiB messages",
            mode="throughput", args=["-s", "65536"], metric="bytes",
            goal="≥ 1.3× bytes/s, and ≥ 80% of half of iperf3 over "
                 "loopback (2 streams)", need=1.3),
    8: dict(title="latency at a fixed 1,000 msg/s",
            mode="latency", args=["--rate", "1000"], metric="latency",
            goal="p99 ≤ 100 µs and ≤ ¼ of RabbitMQ's", need=4),
    9: dict(title="1,000 idle connections with a channel each",
            mode="connections", args=["-n", "1000", "--hold", "2"],
            metric="admin", fresh=True,
            goal="≤ 10 KB broker memory per connection; opening rate ≥ 5×",
            need=5, mem_max=10 * 1000),
    10: dict(title="10,000 queues declared",
             mode="queues", args=["-n", "10000", "--hold", "1"],
             metric="admin", fresh=True,
             goal="declare rate ≥ 20×; ≤ 1 KB broker memory per empty queue",
             need=20, mem_max=1000),
    11: dict(title="one queue with a growing backlog (count below), 16 B; "
                   "publish, then consume",
             mode="backlog", args=["-s", "16"], metric="backlog",
             goal="publish and consume cost per message flat as the "
                  "backlog grows", need=None),
    12: dict(modes=("everyday",),
             title="64 publisher connections + 64 consumers, 64 queues, "
                   "16 B, one publish per write, basic.ack per message "
                   "(prefetch 100), rising aggregate rate",
             mode="sweep", args=["-x", "64", "-y", "64", "-q", "64",
                                 "-s", "16", "--ack-every", "1",
                                 "--prefetch", "100"],
             metric="sweep", goal="where one event loop saturates",
             need=None),
    13: dict(modes=("everyday",),
             title="256 publisher connections + 256 consumers, 256 "
                   "queues, 16 B, one publish per write, basic.ack per "
                   "message (prefetch 100), rising aggregate rate",
             mode="sweep", args=["-x", "256", "-y", "256", "-q", "256",
                                 "-s", "16", "--ack-every", "1",
                                 "--prefetch", "100"],
             metric="sweep", goal="where one event loop saturates",
             need=None),
}
# The message scenarios run in both modes, the admin and backlog ones with
# warren-perf only, the sweeps (above) with warren-everyday only.
for _n in SCENARIOS:
    SCENARIOS[_n].setdefault("modes", BOTH if _n <= 8 else ("batched",))
# Aggregate msg/s of the sweeps' steps (--sweep-rates); a sweep stops at
# the first step whose deliveries lag.
SWEEP_RATES = [2000, 5000, 10000, 20000, 40000, 60000, 80000, 100000,
               130000, 160000, 200000, 250000, 300000, 400000]


def log(msg):
    print("[compare %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---- brokers ---------------------------------------------------------------

class Warren:
    name = "warren"

    def __init__(self, binary, root):
        self.binary = binary
        self.root = root
        self.proc = None
        self.port = None
        self.n = 0

    def start(self):
        self.n += 1
        work = os.path.join(self.root, "warren-%d" % self.n)
        os.makedirs(os.path.join(work, "data"))
        conf = os.path.join(work, "warren.conf")
        with open(conf, "w") as f:
            # The management API on a port of its own: another Warren on
            # the machine (another compare.py, a test) may hold 15672.
            f.write("fsync = always\nmanagement.tcp.ip = 127.0.0.1\n"
                    "management.tcp.port = 0\nprometheus.tcp.port = 0\n")
        self.stderr_path = os.path.join(work, "warren.log")
        err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [self.binary, "--config", conf, "--listen", "127.0.0.1:0",
             "--data-dir", os.path.join(work, "data")],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with open(self.stderr_path) as f:
                m = LISTEN_RE.search(f.read())
            if m:
                self.port = int(m.group(2))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("warren did not start; see %s" % self.stderr_path)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            log("warren did not exit on SIGTERM within 15 s; killing it")
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self):
        """(Re)starts on a fresh data directory."""
        self.stop()
        if self.n > 0:
            shutil.rmtree(os.path.join(self.root, "warren-%d" % self.n),
                          ignore_errors=True)
        self.start()


class Rabbit:
    name = "rabbitmq"

    def __init__(self, tool, port, root):
        self.tool = tool
        self.port = port
        self.dir = os.path.join(root, "rabbitmq")
        self.pid = None

    def _run(self, cmd):
        r = subprocess.run([self.tool, cmd, "--port", str(self.port),
                            "--mgmt-port", "0", "--dir", self.dir]
                           if cmd == "start" else
                           [self.tool, cmd, "--port", str(self.port),
                            "--dir", self.dir],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("rabbitmq-local %s failed:\n%s"
                               % (cmd, r.stdout))
        return r.stdout

    def start(self):
        self._run("start")
        with open(os.path.join(self.dir, "rabbit.pid")) as f:
            self.pid = int(f.read().strip())
        with open("/proc/%d/comm" % self.pid) as f:
            comm = f.read().strip()
        if comm != "beam.smp":
            raise RuntimeError("pid %d is %s, not beam.smp" % (self.pid, comm))

    def stop(self):
        self._run("stop")

    def restart(self):
        self.stop()
        self.start()

    def wipe(self):
        self._run("wipe")


def rabbit_version():
    try:
        return subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"],
            stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        return "?"


# ---- machine ---------------------------------------------------------------

def machine_info(build):
    cpu = "?"
    mem = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
                break
    build_type = "?"
    cache = os.path.join(build, "CMakeCache.txt")
    if os.path.exists(cache):
        with open(cache) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    build_type = line.split("=", 1)[1].strip()
                if line.startswith("WARREN_SANITIZE:") and \
                        line.split("=", 1)[1].strip():
                    build_type += " + sanitizers " + \
                        line.split("=", 1)[1].strip()
    commit = "?"
    try:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short",
                                 "HEAD"], stdout=subprocess.PIPE, text=True,
                                stderr=subprocess.DEVNULL).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain",
                                "--untracked-files=no"],
                               stdout=subprocess.PIPE, text=True,
                               stderr=subprocess.DEVNULL).stdout.strip()
        if dirty:
            commit += " (with uncommitted changes)"
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "loadavg": "%.2f %.2f %.2f" % os.getloadavg(),
        "build": build_type,
        "commit": commit,
        "rabbitmq": rabbit_version(),
        "date": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%d %H:%M UTC"),
    }


def iperf3_loopback():
    """Bytes/s iperf3 reaches over loopback with two streams, or None."""
    exe = shutil.which("iperf3")
    if exe is None:
        return None
    port = 5201 + os.getpid() % 1000
    srv = subprocess.Popen([exe, "-s", "-1", "-p", str(port)],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        r = subprocess.run([exe, "-c", "127.0.0.1", "-p", str(port), "-P",
                            "2", "-t", "5", "-J"], stdout=subprocess.PIPE,
                           text=True, timeout=60)
        data = json.loads(r.stdout)
        return data["end"]["sum_received"]["bits_per_second"] / 8
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait()


# ---- runs ------------------------------------------------------------------

def perf_args(n, sc, args, mode="batched"):
    """The load generator's arguments (warren-perf's for batched,
    warren-everyday's for everyday: the same options where both have
    them)."""
    a = [sc["mode"]] + list(sc["args"])
    if sc["mode"] in ("throughput", "latency"):
        a += ["-z", str(args.duration), "--drain-timeout", "30"]
    if sc["mode"] == "backlog":
        # RabbitMQ pauses for many seconds while it pages a backlog of
        # millions: give it a minute before counting messages as lost.
        a += ["-n", str(args.backlog_count), "--drain-timeout", "60"]
    if sc["mode"] == "sweep":
        a += ["--rates", ",".join("%g" % r for r in args.sweep_rates),
              "--step", str(args.sweep_step), "--settle",
              str(args.sweep_settle), "--drain-timeout", "60"]
    a += ["--queue-prefix", "bench-%d%s" % (n, "" if mode == "batched"
                                            else "-everyday")]
    return a


def run_timeout(sc, args):
    if sc["mode"] == "sweep":
        steps = len(args.sweep_rates)
        return steps * (args.sweep_step + args.sweep_settle) + 900
    return args.duration + 600


SYNC_EVENTS = "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync"


def start_sync_count(pid, tmp):
    """Counts the fsync and fdatasync calls of every thread of pid with
    `perf stat` (kernel tracepoints, no slowdown); None without perf."""
    exe = shutil.which("perf")
    if exe is None:
        return None
    out = os.path.join(tmp, "syncs-%d.csv" % pid)
    try:
        p = subprocess.Popen([exe, "stat", "-x", ",", "-e", SYNC_EVENTS,
                              "-p", str(pid), "-o", out],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    except OSError:
        return None
    return p, out


def stop_sync_count(h):
    """The count start_sync_count's perf saw, or None."""
    if h is None:
        return None
    p, out = h
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None
    total, seen = 0, 0
    try:
        with open(out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[2] in SYNC_EVENTS.split(","):
                    total += int(parts[0])
                    seen += 1
    except (OSError, ValueError):
        return None
    return total if seen else None


def run_once(tool, broker, n, sc, args, tmp, mode="batched"):
    out = os.path.join(tmp, "s%d-%s-%s.json" % (n, mode, broker.name))
    if os.path.exists(out):
        os.unlink(out)
    cmd = [tool] + perf_args(n, sc, args, mode) + [
        "--host", "127.0.0.1", "--port", str(broker.port),
        "--broker-pid", str(broker.pid), "--json", out, "--quiet"]
    timeout = run_timeout(sc, args)
    syncs = start_sync_count(broker.pid, tmp) if sc.get("syncs") else None
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        output, rc = r.stdout, r.returncode
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode("utf-8", "replace") \
            if isinstance(e.stdout, bytes) else (e.stdout or "")
        rc = "timeout after %ds" % timeout
    nsync = stop_sync_count(syncs)
    res = None
    if os.path.exists(out):
        with open(out) as f:
            res = json.load(f)
        if nsync is not None and res.get("elapsed_s"):
            res["fsyncs"] = nsync
            res["fsync_rate"] = nsync / res["elapsed_s"]
    ok = rc == 0 and res is not None and res.get("ok")
    if not ok:
        log("scenario %d (%s) on %s FAILED (exit %s):\n%s"
            % (n, mode, broker.name, rc, output[-3000:]))
    if sc["mode"] == "sweep" and output:
        for line in output.splitlines():
            if line.startswith("step "):
                log("  " + line)
    return {"ok": bool(ok), "exit": rc, "json": res,
            "output": None if ok else output[-3000:]}


def headline(n, sc, res):
    """The figure a scenario is judged on, from one run's JSON."""
    j = res["json"]
    if j is None:
        return None
    kind = sc.get("metric", "rate")
    if kind == "bytes":
        return j.get("bytes_rate")
    if kind == "latency":
        return j["latency_us"]["p99"]
    if kind == "admin":
        return j.get("open_rate")
    if kind == "backlog":
        steps = j.get("backlog", {}).get("publish", [])
        return steps[-1]["rate"] if steps else None
    if kind == "sweep":
        return sweep_sustained(j)
    return j.get("consume_rate")


SCHED_RE = re.compile(r"^\d+_scheduler$")


def thread_groups(name, threads, pid):
    """CPU seconds of a broker's threads by role, from a run's (or a
    step's) per-thread list: Warren's event loop ("loop", the thread whose
    id is the pid) and its other threads ("store": the store's journal
    threads); RabbitMQ's schedulers ("sched", and the busiest one,
    "sched_max"), its dirty schedulers ("dirty") and the rest ("other").
    "busiest" is the busiest single thread. None without a list."""
    if not threads:
        return None
    g = {"busiest": max(t["cpu_s"] for t in threads)}

    def add(k, v):
        g[k] = g.get(k, 0.0) + v

    for t in threads:
        if name == "warren":
            add("loop" if t["tid"] == pid else "store", t["cpu_s"])
        elif SCHED_RE.match(t["name"]):
            add("sched", t["cpu_s"])
            g["sched_max"] = max(g.get("sched_max", 0.0), t["cpu_s"])
        elif "dirty" in t["name"]:
            add("dirty", t["cpu_s"])
        else:
            add("other", t["cpu_s"])
    return g


THREAD_KEYS = ("loop", "store", "sched", "sched_max", "dirty", "other",
               "busiest")


def thread_series(name, rs):
    """Per role: CPU µs per message, and % of one core over the run."""
    per_msg = {k: [] for k in THREAD_KEYS}
    pct = {k: [] for k in THREAD_KEYS}
    for r in rs:
        j = r["json"]
        b = j.get("broker") or {}
        g = thread_groups(name, b.get("threads"), b.get("pid"))
        msgs = j.get("consumed") or j.get("published") or j.get("count")
        window = (j.get("elapsed_s") or 0) + (j.get("drain_s") or 0)
        if not g or not msgs:
            continue
        for k in THREAD_KEYS:
            if k in g:
                per_msg[k].append(g[k] * 1e6 / msgs)
                if window > 0:
                    pct[k].append(100 * g[k] / window)
    return ({k: v for k, v in per_msg.items() if v},
            {k: v for k, v in pct.items() if v})


def sweep_sustained(j):
    """The highest step rate a sweep delivered without lagging, or
    None."""
    ok = [st["target_rate"] for st in j.get("steps", [])
          if not st.get("lagging")]
    return max(ok) if ok else None


def step_busiest(name, st, pid):
    """CPU seconds of the thread that saturates first in a sweep step:
    Warren's loop, RabbitMQ's busiest scheduler; None if unknown."""
    g = thread_groups(name, st.get("threads"), pid) or {}
    return g.get("loop" if name == "warren" else "sched_max")


def sweep_first_lag(name, j):
    """The first step of a sweep run that lagged: its rate, what it
    delivered, and how busy the busiest broker thread, the broker and
    the tool were (% of one core); None when no step lagged."""
    pid = (j.get("broker") or {}).get("pid")
    for st in j.get("steps", []):
        if st.get("lagging"):
            top = step_busiest(name, st, pid)
            return {"rate": st["target_rate"],
                    "consume": st["consume_rate"],
                    "busiest_pct": 100 * top / st["seconds"]
                    if top is not None else None,
                    "broker_pct": st.get("broker_cpu_pct"),
                    "tool_pct": st.get("tool_cpu_pct")}
    return None


SWEEP_KEYS = ("consume", "publish", "cpu", "broker_pct", "busiest_us",
              "busiest_pct", "p50", "p99", "tool_pct", "lagging")


def sweep_rows(name, runs_json):
    """A sweep's steps across runs, one row per target rate: lists of the
    runs' figures. "busiest" is Warren's loop thread, RabbitMQ's busiest
    scheduler."""
    rows = {}
    for j in runs_json:
        pid = (j.get("broker") or {}).get("pid")
        for st in j.get("steps", []):
            row = rows.setdefault(st["target_rate"],
                                  {k: [] for k in SWEEP_KEYS})
            msgs = st["consume_rate"] * st["seconds"]
            top = step_busiest(name, st, pid)
            row["consume"].append(st["consume_rate"])
            row["publish"].append(st["publish_rate"])
            row["cpu"].append(st.get("broker_cpu_us_per_msg"))
            row["broker_pct"].append(st.get("broker_cpu_pct"))
            if top is not None and msgs > 0:
                row["busiest_us"].append(top * 1e6 / msgs)
                row["busiest_pct"].append(100 * top / st["seconds"])
            row["p50"].append(st["latency_us"]["p50"])
            row["p99"].append(st["latency_us"]["p99"])
            row["tool_pct"].append(st.get("tool_cpu_pct"))
            row["lagging"].append(bool(st.get("lagging")))
    out = []
    for rate in sorted(rows):
        row = {k: [v for v in vals if v is not None]
               for k, vals in rows[rate].items()}
        row["rate"] = rate
        out.append(row)
    return out


def summarize_runs(n, sc, runs):
    """Per broker: medians and spreads of the figures BENCHMARKS.md shows."""
    out = {}
    for b in BROKERS:
        rs = [r for r in runs.get(b, []) if r["json"] is not None]

        def series(f):
            vals = []
            for r in rs:
                try:
                    v = f(r["json"])
                except (KeyError, IndexError, TypeError):
                    v = None
                if v is not None:
                    vals.append(v)
            return vals

        s = {
            "runs": len(runs.get(b, [])),
            "failed": sum(1 for r in runs.get(b, []) if not r["ok"]),
            "main": series(lambda j: headline(n, sc, {"json": j})),
            "cpu": series(lambda j: j["broker"].get("cpu_us_per_msg")),
            "rss": series(lambda j: j["broker"].get("rss_kb_max")),
            "tool": series(lambda j: j.get("tool_cpu_us_per_msg")),
            "p50": series(lambda j: j["latency_us"]["p50"]),
            "p99": series(lambda j: j["latency_us"]["p99"]),
            "p999": series(lambda j: j["latency_us"]["p99_9"]),
            "pub": series(lambda j: j.get("publish_rate")),
            "mem": series(lambda j: j.get("broker_bytes_per_item")),
            "close": series(lambda j: j.get("close_rate")),
            "fsync_rate": series(lambda j: j.get("fsync_rate")),
            "per_fsync": series(lambda j: j["consumed"] / j["fsyncs"]
                                if j.get("fsyncs") else None),
            "errors": [e for r in runs.get(b, []) if r["json"]
                       for e in r["json"].get("errors", [])],
        }
        s["thr"], s["thr_pct"] = thread_series(b, rs)
        if sc.get("metric") == "backlog":
            s["backlog"] = [r["json"].get("backlog") for r in rs]
        if sc.get("metric") == "sweep":
            s["sweep"] = sweep_rows(b, [r["json"] for r in rs])
            s["lag"] = [sweep_first_lag(b, r["json"]) for r in rs]
        out[b] = s
    return out


def latency_floor(build, duration):
    """One run of warren-latency-floor at scenario 8's rate: the same
    wake-ups through a bare relay process, the best one-way latency this
    machine allows. {"p50": µs, "p99": µs, "p999": µs} or None."""
    exe = os.path.join(build, "test", "warren-latency-floor")
    if not os.access(exe, os.X_OK):
        return None
    try:
        r = subprocess.run([exe, "--rate", "1000", "-z", str(duration),
                            "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True,
                           timeout=duration + 60)
        d = json.loads(r.stdout)
        return {"p50": d["p50"], "p99": d["p99"], "p999": d.get("p999")}
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None


def run_scenario(n, args, tool, brokers, tmp, floors=None, mode="batched"):
    """Runs scenario n `repeats` times on each broker with the mode's
    tool, alternating which goes first. For the latency scenario, floors
    (a list) also gets one latency_floor() per repeat, taken between the
    brokers' runs."""
    sc = SCENARIOS[n]
    runs = {b.name: [] for b in brokers}
    for b in brokers:
        b.restart()
    for rep in range(args.repeats):
        order = brokers if rep % 2 == 0 else list(reversed(brokers))
        for b in order:
            if sc.get("fresh") and rep > 0:
                b.restart()
            log("scenario %d (%s) run %d/%d on %s" % (
                n, mode, rep + 1, args.repeats, b.name))
            r = run_once(tool, b, n, sc, args, tmp, mode)
            h = headline(n, sc, r) if r["json"] else None
            log("  -> %s %s" % (fmt_main(sc, h), "" if r["ok"] else "FAILED"))
            runs[b.name].append(r)
        if floors is not None and sc.get("metric") == "latency":
            f = latency_floor(args.build, args.duration)
            log("  machine floor (bare relay): %s" % (
                "p50 %.1f µs, p99 %.1f µs" % (f["p50"], f["p99"])
                if f else "not available"))
            if f:
                floors.append(f)
    return runs


# ---- formatting ------------------------------------------------------------

def med(vals):
    return statistics.median(vals) if vals else None


def fmt_num(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{d}f}".format(v, d=digits)


def fmt_main(sc, v):
    kind = sc.get("metric", "rate")
    if v is None:
        return "–"
    if kind == "bytes":
        return "%s MB/s" % fmt_num(v / 1e6, 1)
    if kind == "latency":
        return "%s µs" % fmt_num(v, 1)
    if kind == "admin":
        return "%s /s" % fmt_num(v)
    return "%s msg/s" % fmt_num(v)


def fmt_spread(sc, vals):
    if not vals:
        return "–"
    m = med(vals)
    s = fmt_main(sc, m)
    if len(vals) > 1:
        lo, hi = min(vals), max(vals)
        s += " (%s–%s)" % (fmt_main(sc, lo).split(" ")[0],
                           fmt_main(sc, hi).split(" ")[0])
    return s


def advantage(sc, w, r):
    """How many times better Warren is (>1: Warren ahead)."""
    if w is None or r is None or w <= 0 or r <= 0:
        return None
    if sc.get("metric") == "latency":
        return r / w
    return w / r


def goal_met(n, sc, s, iperf, floor=None):
    w = med(s["warren"]["main"])
    r = med(s["rabbitmq"]["main"])
    adv = advantage(sc, w, r)
    notes = []
    ok = adv is not None and (sc["need"] is None or adv >= sc["need"])
    if s["warren"]["failed"]:
        ok = False
        notes.append("checks failed")
    if n == 1:
        cpu = med(s["warren"]["cpu"])
        if cpu is None or cpu > sc["cpu_max"]:
            ok = False
            notes.append("CPU %s µs/msg" % fmt_num(cpu, 2))
    if n == 7:
        if iperf is None:
            notes.append("no iperf3")
        elif w is None or w < 0.8 * iperf / 2:
            ok = False
            notes.append("%s%% of iperf3/2" % fmt_num(
                100 * (w or 0) / (iperf / 2)))
    if n == 8:
        if w is None or w > 100:
            ok = False
            notes.append("p99 %s µs" % fmt_num(w, 1))
        if floor:
            notes.append("machine floor p99 %s µs" % fmt_num(
                med([f["p99"] for f in floor]), 1))
    if n in (9, 10):
        mem = med(s["warren"]["mem"])
        if mem is None or mem > sc["mem_max"]:
            ok = False
            notes.append("%s B each" % fmt_num(mem))
    if n == 11:
        return flat_verdict(s)
    return ("yes" if ok else "no") + (" (%s)" % ", ".join(notes)
                                      if notes else "")


def flat_verdict(s):
    """Scenario 11: how much slower the last tenths of the backlog went
    than the first (median of the last three rates over the first
    three's, per phase); 1.00 is flat."""
    parts = []
    for b in BROKERS:
        for phase in ("publish", "consume"):
            ratios = []
            for bl in s[b].get("backlog", []):
                rates = [x["rate"] for x in (bl or {}).get(phase) or []]
                if len(rates) >= 6 and min(rates[-3:]) > 0:
                    ratios.append(med(rates[:3]) / med(rates[-3:]))
            if ratios:
                parts.append("%s %s %.2f" % (b, phase, med(ratios)))
    if not parts:
        return "–"
    ok = all(float(p.split()[-1]) <= FLAT_MAX for p in parts
             if p.startswith("warren"))
    return "%s (slowdown, first vs last tenths: %s)" % (
        "yes" if ok else "no", ", ".join(parts))


def metric_name(sc):
    return {"bytes": "body bytes/s consumed", "latency": "one-way p99",
            "admin": "opening / declare rate",
            "backlog": "publish rate in the last tenth"}.get(
        sc.get("metric", "rate"), "consume rate (deliveries/s)")


# ---- BENCHMARKS.md ---------------------------------------------------------

PREAMBLE = """# Benchmarks

Warren against RabbitMQ 3.10 on the same machine, with the same load
generators, one broker after the other.

## How it is measured

- `warren-perf` (`test/bench/perf/`, built as `<build>/test/warren-perf`)
  is the batched load generator: `warren-perf throughput|latency|
  connections|queues|backlog [options]` (`--help` lists them). It
  pipelines publishes and batches writes and acks. Every message carries
  its producer, target queue, sequence number, send time and a checksum;
  consumers check each one, so a broker that drops, duplicates, corrupts
  or reorders messages fails the run instead of looking fast. It prints a
  line per second and a JSON summary, with its own CPU next to the
  broker's, per thread too (`--broker-pid`).
- `warren-everyday` (`test/bench/everyday/`, built when librabbitmq-dev
  is installed) drives the broker the way everyday clients do, through
  rabbitmq-c: a thread per connection, one `amqp_basic_publish` per
  message on a TCP_NODELAY socket, acks as deliveries come, confirms one
  by one or in a window. Same message checks, same JSON; its `sweep` mode
  raises the aggregate rate step by step over many connections.
- `test/bench/compare.py` starts a private Warren (the build's
  `server/warren`, a temp data directory, `fsync = always`) and a private
  RabbitMQ (Debian's package through `shared/tools/rabbitmq-local`, port
  5701 unless `--rabbit-port`, wiped afterwards), restarts both before
  every scenario, runs each scenario three times on each broker,
  alternating which goes first, and rewrites the generated sections
  below: `--mode batched` (warren-perf, the default), `everyday`
  (warren-everyday) or `both`. Text outside those sections is kept.

```sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j2
/usr/bin/python3 test/bench/compare.py          # scenarios 1-10, ~15 min
/usr/bin/python3 test/bench/compare.py 3 8      # only 3 and 8; others kept
/usr/bin/python3 test/bench/compare.py 11       # the backlog (2,000,000
                                                # messages; --backlog-count)
/usr/bin/python3 test/bench/compare.py --mode both   # 1-8 in both modes,
                                                # 9-10 batched, sweeps 12-13
```

## Optimisation log

One entry per broker optimisation: what changed, which scenarios, figures
before and after (same machine, same day).

"""


def section_data(text, begin, end):
    """The raw results stored in a generated section of text, or {}."""
    if begin not in text or end not in text:
        return {}
    gen = text.split(begin, 1)[1].split(end, 1)[0]
    m = re.search(r"```json\n(.*?)\n```", gen, re.S)
    if not m:
        return {}
    try:
        return json.loads(m.group(1))
    except ValueError:
        return {}


def load_previous(path):
    """(text, batched results, everyday results) of an existing file;
    PREAMBLE and no results for a new one."""
    if not os.path.exists(path):
        return (PREAMBLE, {}, {})
    with open(path) as f:
        text = f.read()
    return (text, section_data(text, BEGIN, END),
            section_data(text, EBEGIN, EEND))


def put_section(text, begin, end, body, after=None):
    """text with its generated section between begin and end replaced by
    body (markers included); a section not there yet goes right after
    the marker `after`, or at the end."""
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        return pre + body + rest.split(end, 1)[1]
    if after is not None and after in text:
        pre, post = text.split(after, 1)
        return pre + after + "\n\n" + body + post
    return text.rstrip("\n") + "\n\n" + body + "\n"


def table_rows(data):
    rows = []
    for key in sorted(data.get("scenarios", {}), key=int):
        e = data["scenarios"][key]
        n = int(key)
        sc = SCENARIOS[n]
        s = e["summary"]
        w = med(s["warren"]["main"])
        r = med(s["rabbitmq"]["main"])
        adv = advantage(sc, w, r)
        rows.append("| %d | %s | %s | %s | %s | %s | %s | %s |" % (
            n, sc["title"], metric_name(sc),
            fmt_spread(sc, s["warren"]["main"]),
            fmt_spread(sc, s["rabbitmq"]["main"]),
            "%.2f×" % adv if adv else "–", sc["goal"],
            goal_met(n, sc, s, e.get("iperf3"), e.get("floor"))))
    return rows


def cost_rows(data):
    rows = []
    for key in sorted(data.get("scenarios", {}), key=int):
        e = data["scenarios"][key]
        s = e["summary"]
        sc = SCENARIOS[int(key)]
        per = "connection" if int(key) == 9 else "queue"
        mem = ""
        if sc.get("metric") == "admin":
            mem = " / ".join("%s B per %s" % (fmt_num(med(s[b]["mem"])), per)
                             for b in BROKERS)

        def rss(b):
            v = med(s[b]["rss"])
            return "%s MiB" % fmt_num(v / 1024, 1) if v is not None else "–"

        rows.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            key, fmt_num(med(s["warren"]["cpu"]), 2),
            fmt_num(med(s["rabbitmq"]["cpu"]), 2), rss("warren"),
            rss("rabbitmq"),
            "%s / %s" % (fmt_num(med(s["warren"]["tool"]), 2),
                         fmt_num(med(s["rabbitmq"]["tool"]), 2)), mem))
    return rows


def detail_lines(data):
    lines = []
    for key in sorted(data.get("scenarios", {}), key=int):
        e = data["scenarios"][key]
        n = int(key)
        sc = SCENARIOS[n]
        s = e["summary"]
        lines.append("**%d. %s** (measured %s by `%s`, %d run%s each)  " % (
            n, sc["title"], e["machine"]["date"], e.get("command", "?"),
            e["repeats"], "" if e["repeats"] == 1 else "s"))
        lines.append("`warren-perf %s --host 127.0.0.1 --port PORT "
                     "--broker-pid PID --json OUT --quiet`  " %
                     " ".join(shlex.quote(a) for a in e["perf_args"]))
        extra = []
        if sc.get("metric") == "latency":
            for b in BROKERS:
                extra.append("%s p50 %s µs, p99 %s µs" % (
                    b, fmt_num(med(s[b]["p50"]), 1),
                    fmt_num(med(s[b]["p99"]), 1)))
        elif sc.get("metric") == "admin":
            for b in BROKERS:
                extra.append("%s close/delete %s /s" % (
                    b, fmt_num(med(s[b]["close"]))))
        elif sc.get("metric") == "backlog":
            extra.append("backlog of %s messages; per tenth of it, the "
                         "rate and the broker's CPU per message (first run "
                         "of each broker)" % fmt_num(e.get("count")))
        else:
            for b in BROKERS:
                extra.append("%s publish %s msg/s, latency p50 %s µs" % (
                    b, fmt_num(med(s[b]["pub"])),
                    fmt_num(med(s[b]["p50"]), 0)))
                if s[b].get("fsync_rate"):
                    extra.append("%s %s fsyncs/s (fsync + fdatasync, "
                                 "counted by `perf stat`), %s messages per "
                                 "fsync" % (
                                     b, fmt_num(med(s[b]["fsync_rate"])),
                                     fmt_num(med(s[b]["per_fsync"]), 1)))
        if n == 8 and e.get("floor"):
            f = e["floor"]
            extra.append("machine floor (warren-latency-floor: the same "
                         "wake-ups through a bare relay process) p50 %s µs, "
                         "p99 %s µs (%s–%s)" % (
                             fmt_num(med([x["p50"] for x in f]), 1),
                             fmt_num(med([x["p99"] for x in f]), 1),
                             fmt_num(min(x["p99"] for x in f), 1),
                             fmt_num(max(x["p99"] for x in f), 1)))
        if n == 7 and e.get("iperf3"):
            extra.append("iperf3 loopback, 2 streams: %s MB/s (half: %s "
                         "MB/s)" % (fmt_num(e["iperf3"] / 1e6, 1),
                                    fmt_num(e["iperf3"] / 2e6, 1)))
        lines.append("; ".join(extra) + "  ")
        if sc.get("metric") == "backlog":
            lines += [""] + backlog_table(s) + [""]
        for b in BROKERS:
            if s[b]["failed"]:
                lines.append("**%s: %d of %d runs FAILED**: %s  " % (
                    b, s[b]["failed"], s[b]["runs"],
                    "; ".join(sorted(set(s[b]["errors"])))[:600] or
                    "see compare.py's output"))
        lines.append("")
    return lines


def backlog_table(s):
    """Scenario 11: one row per tenth of the backlog."""
    cols = []
    for b in BROKERS:
        bl = (s[b].get("backlog") or [None])[0] or {}
        for phase in ("publish", "consume"):
            cols.append(("%s %s" % (b, phase), bl.get(phase) or []))
    rows = ["| tenth | " + " | ".join("%s msg/s (µs/msg)" % name
                                      for name, _ in cols) + " |",
            "| --- |" + " --- |" * len(cols)]
    for i in range(10):
        cells = []
        for _, steps in cols:
            if i < len(steps):
                cells.append("%s (%s)" % (
                    fmt_num(steps[i]["rate"]),
                    fmt_num(steps[i]["broker_cpu_us_per_msg"], 2)))
            else:
                cells.append("–")
        rows.append("| %d | %s |" % (i + 1, " | ".join(cells)))
    return rows


def dump_data(data):
    """JSON with one line per scenario: readable diffs, short file."""
    head = {k: v for k, v in data.items() if k != "scenarios"}
    lines = ["{"]
    for k in sorted(head):
        lines.append(" %s: %s," % (json.dumps(k),
                                   json.dumps(head[k], sort_keys=True)))
    lines.append(' "scenarios": {')
    keys = sorted(data.get("scenarios", {}), key=int)
    for i, k in enumerate(keys):
        lines.append("  %s: %s%s" % (
            json.dumps(k), json.dumps(data["scenarios"][k], sort_keys=True),
            "," if i + 1 < len(keys) else ""))
    lines += [" }", "}"]
    return "\n".join(lines)


def render(data):
    m = data.get("machine", {})
    out = [BEGIN, "",
           "## Warren vs RabbitMQ %s, side by side" % m.get("rabbitmq", "?"),
           "",
           "Last updated by `%s` on %s; each scenario below says when and "
           "by which command it was measured. Machine: %s × %s, %s RAM, "
           "Linux %s, "
           "load average at start %s. Warren %s built %s, `fsync = always`; "
           "RabbitMQ from Debian's package, default settings, started by "
           "`rabbitmq-local` on loopback. Medians of the runs with the "
           "spread (min–max) in brackets; \"advantage\" is Warren's figure "
           "over RabbitMQ's (for latency RabbitMQ's over Warren's), so above "
           "1 means Warren is ahead. The machine is shared and noisy: trust "
           "the ratios more than the absolute numbers." % (
               data.get("command", "?"), m.get("date", "?"),
               m.get("nproc", "?"), m.get("cpu", "?"), m.get("memory", "?"),
               m.get("kernel", "?"), m.get("loadavg", "?"),
               m.get("commit", "?"), m.get("build", "?")),
           "",
           "| # | scenario | figure | Warren | RabbitMQ | advantage | goal "
           "| met |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    out += table_rows(data)
    out += ["",
            "### Broker cost",
            "",
            "Broker CPU is user + system time of the broker process "
            "(beam.smp for RabbitMQ) over the whole run, divided by the "
            "messages delivered (or connections / queues); RSS is the "
            "largest during the run (its VmHWM, reset at the start of the "
            "run; runs before 2026-12-07 took the largest of samples a "
            "second apart, which can miss a peak). warren-perf's own CPU per "
            "message is shown for each broker: it must stay below the "
            "broker's for the tool not to be the bottleneck.",
            "",
            "| # | Warren CPU µs/msg | RabbitMQ CPU µs/msg | Warren RSS | "
            "RabbitMQ RSS | warren-perf CPU µs/msg (vs Warren / vs "
            "RabbitMQ) | memory per item (Warren / RabbitMQ) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    out += cost_rows(data)
    out += ["", "### Per scenario", ""]
    out += detail_lines(data)
    out += ["<details><summary>Raw results (compare.py reads them back to "
            "merge later runs)</summary>", "", "```json",
            dump_data(data), "```", "",
            "</details>", "", END]
    return "\n".join(out)


# ---- the everyday section --------------------------------------------------

def fmt_pair(a, b, digits=0):
    return "%s / %s" % (fmt_num(a, digits), fmt_num(b, digits))


def side_rows(edata, bdata):
    """Both tools, both brokers, scenarios 1-8."""
    rows = []
    keys = set(edata.get("scenarios", {})) | set(bdata.get("scenarios", {}))
    for key in sorted(keys, key=int):
        n = int(key)
        sc = SCENARIOS[n]
        if sc["modes"] != BOTH:
            continue
        cells = []
        for d in (bdata, edata):
            e = d.get("scenarios", {}).get(key)
            if e is None:
                cells += ["–", "–", "–"]
                continue
            s = e["summary"]
            w, r = med(s["warren"]["main"]), med(s["rabbitmq"]["main"])
            adv = advantage(sc, w, r)
            cells += [fmt_spread(sc, s["warren"]["main"]),
                      fmt_spread(sc, s["rabbitmq"]["main"]),
                      "%.2f×" % adv if adv else "–"]
        rows.append("| %d | %s | %s | %s |" % (n, sc["title"], metric_name(sc),
                                               " | ".join(cells)))
    return rows


def thr(s, b, key, pct=False, digits=2):
    return fmt_num(med(s[b].get("thr_pct" if pct else "thr", {}).get(key)),
                   digits)


def cpu_rows(edata, bdata):
    """Broker CPU per message and per thread, both modes."""
    rows = []
    keys = set(edata.get("scenarios", {})) | set(bdata.get("scenarios", {}))
    for key in sorted(keys, key=int):
        if SCENARIOS[int(key)]["modes"] != BOTH:
            continue
        for mode, d in (("batched", bdata), ("everyday", edata)):
            e = d.get("scenarios", {}).get(key)
            if e is None:
                continue
            s = e["summary"]
            rows.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                        "| %s | %s |" % (
                            key, mode, fmt_num(med(s["warren"]["cpu"]), 2),
                            thr(s, "warren", "loop"),
                            thr(s, "warren", "store"),
                            thr(s, "warren", "loop", True, 0),
                            fmt_num(med(s["rabbitmq"]["cpu"]), 2),
                            thr(s, "rabbitmq", "sched"),
                            thr(s, "rabbitmq", "sched_max"),
                            fmt_num(sum(med(s["rabbitmq"].get("thr", {})
                                            .get(k)) or 0
                                        for k in ("dirty", "other")) or None,
                                    2),
                            thr(s, "rabbitmq", "sched_max", True, 0),
                            fmt_pair(med(s["warren"]["tool"]),
                                     med(s["rabbitmq"]["tool"]), 2)))
    return rows


def sweep_cell(row, key, digits=0):
    return fmt_num(med(row.get(key)), digits) if row else "–"


def machine_pct(row, nproc):
    """Broker + tool CPU as a share of the whole machine, or None."""
    b, t = med(row.get("broker_pct")), med(row.get("tool_pct"))
    if b is None or t is None or not nproc:
        return None
    return (b + t) / nproc


def sweep_table(s, b, nproc):
    """One broker's sweep: a row per step rate, medians of the runs that
    reached it."""
    warren = b == "warren"
    head = ("| rate asked (msg/s) | delivered | broker µs/msg | %s µs/msg | "
            "%s %% of a core | delivered ÷ its share | broker %% of a core "
            "| p50 / p99 µs | tool %% of a core | machine busy |" % (
                ("loop", "loop") if warren else
                ("busiest scheduler", "busiest scheduler")))
    out = [head, "| --- |" + " --- |" * 9]
    for row in s[b].get("sweep") or []:
        lag = sum(row["lagging"])
        c, p = med(row.get("consume")), med(row.get("busiest_pct"))
        busy = machine_pct(row, nproc)
        out.append("| %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            fmt_num(row["rate"]), sweep_cell(row, "consume"),
            " (lags in %d of %d)" % (lag, len(row["lagging"])) if lag else "",
            sweep_cell(row, "cpu", 2), sweep_cell(row, "busiest_us", 2),
            sweep_cell(row, "busiest_pct"),
            fmt_num(c / (p / 100)) if c and p else "–",
            sweep_cell(row, "broker_pct"),
            fmt_pair(med(row.get("p50")), med(row.get("p99")), 0),
            sweep_cell(row, "tool_pct"),
            "%s%%" % fmt_num(busy) if busy is not None else "–"))
    return out


def sweep_verdict(s, b, nproc):
    """Where a broker stopped keeping up, in words."""
    main = s[b].get("main") or []
    lags = [x for x in s[b].get("lag") or [] if x]
    who = "Warren" if b == "warren" else "RabbitMQ"
    what = "its event loop" if b == "warren" else "its busiest scheduler"
    text = "%s delivered every step in full up to %s msg/s (median of the " \
           "runs)" % (who, fmt_num(med(main)) if main else "none")
    if not lags:
        return text + "; no step lagged."
    first = med([x["rate"] for x in lags])
    busiest = med([x["busiest_pct"] for x in lags
                   if x.get("busiest_pct") is not None])
    busy = med([(x["broker_pct"] + x["tool_pct"]) / nproc for x in lags
                if x.get("broker_pct") is not None and
                x.get("tool_pct") is not None and nproc])
    text += "; the first step that lagged asked %s msg/s (%d of %d runs " \
            "lagged), with %s at %s%% of a core and the machine %s%% busy " \
            "(broker + tool)" % (fmt_num(first), len(lags),
                                 len(s[b].get("lag") or []), what,
                                 fmt_num(busiest), fmt_num(busy))
    if busiest is not None and busiest < 90 and busy is not None and \
            busy >= 85:
        text += ": the machine ran out of CPU before %s did" % what
    return text + "."


def latency_rows(e, mode):
    """Scenario 8 of one mode: both brokers and the floor measured in the
    same run."""
    s = e["summary"]
    rows = []
    for b in BROKERS:
        rows.append("| %s, %s | %s | %s | %s |" % (
            "Warren" if b == "warren" else "RabbitMQ", mode,
            fmt_num(med(s[b]["p50"]), 1), fmt_num(med(s[b]["p99"]), 1),
            fmt_num(med(s[b].get("p999")), 1)))
    f = e.get("floor") or []
    if f:
        rows.append("| machine floor (warren-latency-floor), %s run | %s "
                    "| %s | %s |" % (
                        mode, fmt_num(med([x["p50"] for x in f]), 1),
                        fmt_num(med([x["p99"] for x in f]), 1),
                        fmt_num(med([x["p999"] for x in f
                                     if x.get("p999") is not None]), 1)))
    return rows


def everyday_details(edata):
    lines = []
    for key in sorted(edata.get("scenarios", {}), key=int):
        e = edata["scenarios"][key]
        n = int(key)
        sc = SCENARIOS[n]
        s = e["summary"]
        lines.append("**%d. %s** (measured %s by `%s`, %d run%s each)  " % (
            n, sc["title"], e["machine"]["date"], e.get("command", "?"),
            e["repeats"], "" if e["repeats"] == 1 else "s"))
        lines.append("`warren-everyday %s --host 127.0.0.1 --port PORT "
                     "--broker-pid PID --json OUT --quiet`  " %
                     " ".join(shlex.quote(a) for a in e["perf_args"]))
        extra = []
        for b in BROKERS:
            if sc.get("metric") != "sweep":
                extra.append("%s publish %s msg/s, latency p50 %s µs" % (
                    b, fmt_num(med(s[b]["pub"])),
                    fmt_num(med(s[b]["p50"]), 0)))
            if s[b].get("fsync_rate"):
                extra.append("%s %s fsyncs/s, %s messages per fsync" % (
                    b, fmt_num(med(s[b]["fsync_rate"])),
                    fmt_num(med(s[b]["per_fsync"]), 1)))
        if extra:
            lines.append("; ".join(extra) + "  ")
        for b in BROKERS:
            if s[b]["failed"]:
                lines.append("**%s: %d of %d runs FAILED**: %s  " % (
                    b, s[b]["failed"], s[b]["runs"],
                    "; ".join(sorted(set(s[b]["errors"])))[:600] or
                    "see compare.py's output"))
        lines.append("")
    return lines


def render_everyday(edata, bdata):
    m = edata.get("machine", {})
    sc_e = edata.get("scenarios", {})
    out = [EBEGIN, "",
           "## Everyday clients: warren-everyday next to warren-perf",
           "",
           "Last updated by `%s` on %s; each scenario below says when and "
           "by which command it was measured. Machine: %s × %s, %s RAM, "
           "Linux %s, load average at start %s. Warren %s built %s, "
           "`fsync = always`; RabbitMQ %s as above. warren-everyday "
           "(`test/bench/everyday/`) drives the brokers through rabbitmq-c "
           "the way applications do: one connection per thread, one "
           "`amqp_basic_publish` per message (three `send` calls, one "
           "small TCP segment, TCP_NODELAY), deliveries one at a time "
           "with `amqp_consume_message`, acks as they come, confirms "
           "waited for in the scenario's window. warren-perf pipelines and "
           "batches. Same scenarios, same message checks, same brokers. "
           "Medians of the runs, spread (min–max) in brackets." % (
               edata.get("command", "?"), m.get("date", "?"),
               m.get("nproc", "?"), m.get("cpu", "?"), m.get("memory", "?"),
               m.get("kernel", "?"), m.get("loadavg", "?"),
               m.get("commit", "?"), m.get("build", "?"),
               m.get("rabbitmq", "?")),
           "",
           "| # | scenario | figure | Warren batched | RabbitMQ batched | "
           "advantage | Warren everyday | RabbitMQ everyday | advantage |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    out += side_rows(edata, bdata)
    out += ["",
            "### Broker CPU per message, per thread",
            "",
            "CPU µs per delivered message over the whole run (publishing "
            "and draining), from `/proc/PID/task/*/stat`. Warren: the "
            "process, its event-loop thread (\"loop\", the thread whose id "
            "is the pid) and its store threads (journal writer, fsync); "
            "\"loop %\" is the loop thread's share of one core over the "
            "run. RabbitMQ: beam.smp, its scheduler threads together and "
            "the busiest one, and everything else (dirty schedulers, aux, "
            "pollers). The batched rows come from the section above and "
            "show \"–\" where they were measured before per-thread CPU was "
            "recorded.",
            "",
            "| # | mode | Warren µs/msg | loop | store | loop % | RabbitMQ "
            "µs/msg | schedulers | busiest scheduler | other threads | "
            "busiest scheduler % | tool µs/msg (vs W / vs R) |",
            "| --- |" + " --- |" * 11]
    out += cpu_rows(edata, bdata)
    for key in ("12", "13"):
        e = sc_e.get(key)
        if e is None:
            continue
        sc = SCENARIOS[int(key)]
        s = e["summary"]
        nproc = e["machine"].get("nproc")
        out += ["", "### Scenario %s: %s" % (key, sc["title"]), "",
                "Measured %s by `%s`, %d run%s per broker; each step holds "
                "its aggregate rate (spread over the publishers) for %s s, "
                "then measures for %s s; a step lags when it delivers less "
                "than 95%% of what it asked, and a run stops there. "
                "\"delivered ÷ its share\" is what the busiest thread would "
                "deliver at 100%% of a core at the step's CPU per message; "
                "where deliveries queue (p50 in milliseconds) reads and "
                "wake-ups batch behind the queue and the figure flatters. "
                "\"machine busy\": broker + tool CPU over all %s cores." % (
                    e["machine"]["date"], e.get("command", "?"),
                    e["repeats"], "" if e["repeats"] == 1 else "s",
                    fmt_num(e.get("sweep_settle"), 1),
                    fmt_num(e.get("sweep_step"), 1), nproc or "?")]
        for b in BROKERS:
            out += ["", "%s:" % ("Warren" if b == "warren" else
                                 "RabbitMQ (beam.smp)"), ""]
            out += sweep_table(s, b, nproc)
            out += ["", sweep_verdict(s, b, nproc)]
    e8 = sc_e.get("8")
    if e8 is not None:
        out += ["", "### Latency at 1,000 msg/s (scenario 8)", "",
                "One publisher at 1,000 msg/s, one auto-ack consumer; "
                "one-way latency in µs, medians of the runs; between the "
                "brokers' runs, `warren-latency-floor` does the same "
                "wake-ups through a bare relay process: the best this "
                "machine allows at that moment.", "",
                "| | p50 | p99 | p99.9 |", "| --- | --- | --- | --- |"]
        out += latency_rows(e8, "everyday")
        b8 = bdata.get("scenarios", {}).get("8")
        if b8 is not None:
            out += latency_rows(b8, "batched")
    out += ["", "### Per scenario (everyday)", ""]
    out += everyday_details(edata)
    out += ["<details><summary>Raw results of the everyday runs (compare.py "
            "reads them back to merge later runs)</summary>", "", "```json",
            dump_data(edata), "```", "", "</details>", "", EEND]
    return "\n".join(out)


def store_entry(n, mode, summary, machine, command, args, iperf, floors):
    return {
        "command": command,
        "machine": machine,
        "repeats": args.repeats,
        "duration": args.duration,
        "count": args.backlog_count if n == 11 else None,
        "perf_args": perf_args(n, SCENARIOS[n], args, mode),
        "iperf3": iperf if n == 7 else None,
        "floor": floors.get((mode, n)),
        "sweep_step": args.sweep_step if n in (12, 13) else None,
        "sweep_settle": args.sweep_settle if n in (12, 13) else None,
        "summary": summary,
    }


def write_report(path, new, machine, command, args, iperf, floors):
    """Merges the new results ({(mode, n): (runs, summary)}) into the
    file's sections and rewrites it."""
    text, data, edata = load_previous(path)
    for key, d in (("batched", data), ("everyday", edata)):
        fresh = {n: sm for (m, n), (runs, sm) in new.items() if m == key}
        if not fresh:
            continue
        d.setdefault("scenarios", {})
        for n, summary in fresh.items():
            d["scenarios"][str(n)] = store_entry(
                n, key, summary, machine, command, args, iperf, floors)
        d["machine"] = machine
        d["command"] = command
    if data.get("scenarios"):
        text = put_section(text, BEGIN, END, render(data))
    if edata.get("scenarios"):
        text = put_section(text, EBEGIN, EEND, render_everyday(edata, data),
                           after=END)
    if not text.endswith("\n"):
        text += "\n"
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


# ---- main ------------------------------------------------------------------

def rate_list(text):
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("rates: numbers separated by "
                                         "commas")
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("rates must be positive")
    return rates


def parse_args():
    p = argparse.ArgumentParser(
        description="Run the issue-5 matrix against Warren and RabbitMQ, "
                    "with warren-perf (batched) and/or warren-everyday "
                    "(everyday clients), and write BENCHMARKS.md.")
    p.add_argument("scenarios", nargs="*", type=int,
                   help="scenario numbers (default: batched 1-10, 11 with "
                        "--backlog; everyday 1-8, 12, 13)")
    p.add_argument("--mode", choices=("batched", "everyday", "both"),
                   default="batched",
                   help="load generator: warren-perf (batched, the "
                        "default), warren-everyday, or both")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--duration", type=float, default=10,
                   help="seconds of publishing per run (default 10)")
    p.add_argument("--backlog", action="store_true",
                   help="include scenario 11 in the default set")
    p.add_argument("--backlog-count", type=int, default=2000000,
                   help="scenario 11's backlog (default 2,000,000; the "
                        "issue's 10,000,000 takes RabbitMQ many minutes)")
    p.add_argument("--sweep-rates", type=rate_list, default=SWEEP_RATES,
                   help="aggregate msg/s of the steps of scenarios 12 and "
                        "13 (default %s)" % ",".join(
                            "%d" % r for r in SWEEP_RATES))
    p.add_argument("--sweep-step", type=float, default=5,
                   help="seconds measured per sweep step (default 5)")
    p.add_argument("--sweep-settle", type=float, default=2,
                   help="seconds at a step's rate before measuring "
                        "(default 2)")
    p.add_argument("--build", default=os.environ.get(
        "WARREN_BUILD", os.path.join(REPO, "build")),
        help="build directory (default <repo>/build)")
    p.add_argument("--rabbit-port", type=int, default=5701,
                   help="RabbitMQ's AMQP port (default 5701); give another "
                        "compare.py on the machine a different one")
    p.add_argument("--rabbitmq-local", default=None,
                   help="path of shared/tools/rabbitmq-local")
    p.add_argument("--only", choices=BROKERS,
                   help="run one broker only (no ratios)")
    p.add_argument("--out", default=os.path.join(REPO, "BENCHMARKS.md"))
    p.add_argument("--render", action="store_true",
                   help="run nothing: rewrite the generated sections from "
                        "their stored raw results (after a change to how "
                        "they are shown)")
    a = p.parse_args()
    a.modes = BOTH if a.mode == "both" else (a.mode,)
    if not a.scenarios:
        a.scenarios = [n for n in sorted(SCENARIOS)
                       if any(m in SCENARIOS[n]["modes"] for m in a.modes)
                       and (n != 11 or a.backlog)]
    for n in a.scenarios:
        if n not in SCENARIOS:
            p.error("no scenario %d (1-%d)" % (n, max(SCENARIOS)))
        if not any(m in SCENARIOS[n]["modes"] for m in a.modes):
            p.error("scenario %d runs in %s mode only" % (
                n, " and ".join(SCENARIOS[n]["modes"])))
    return a


def find_rabbitmq_local(arg):
    for c in (arg, os.path.join(REPO, "..", "shared", "tools",
                                "rabbitmq-local"),
              "/work/shared/tools/rabbitmq-local"):
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    sys.exit("compare.py: rabbitmq-local not found (--rabbitmq-local)")


def tool_paths(args):
    """{mode: load generator binary} for the modes asked; exits when one
    is missing."""
    tools = {}
    for mode in args.modes:
        tools[mode] = os.path.join(args.build, "test", TOOLS[mode])
    for f in [os.path.join(args.build, "server", "warren")] + \
            list(tools.values()):
        if not os.access(f, os.X_OK):
            sys.exit("compare.py: %s not found; build first (cmake --build "
                     "%s; warren-everyday needs librabbitmq-dev) or pass "
                     "--build" % (f, args.build))
    return tools


def main():
    args = parse_args()
    if args.render:
        write_report(args.out, {}, None, None, args, None, {})
        log("rewrote %s from its stored results" % args.out)
        return 0
    warren_bin = os.path.join(args.build, "server", "warren")
    tools = tool_paths(args)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    command = "test/bench/compare.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    machine = machine_info(args.build)
    tmp = tempfile.mkdtemp(prefix="warren-compare-")
    brokers = []
    if args.only != "rabbitmq":
        brokers.append(Warren(warren_bin, tmp))
    if args.only != "warren":
        brokers.append(Rabbit(find_rabbitmq_local(args.rabbitmq_local),
                              args.rabbit_port, tmp))
    iperf = None
    if 7 in args.scenarios:
        iperf = iperf3_loopback()
        log("iperf3 over loopback, 2 streams: %s" % (
            "%.1f MB/s" % (iperf / 1e6) if iperf else "not available"))
    new = {}
    floors = {}
    t0 = time.monotonic()
    try:
        for n in args.scenarios:
            for mode in args.modes:
                if mode not in SCENARIOS[n]["modes"]:
                    continue
                floors[(mode, n)] = []
                runs = run_scenario(n, args, tools[mode], brokers, tmp,
                                    floors[(mode, n)], mode)
                new[(mode, n)] = (runs, summarize_runs(n, SCENARIOS[n],
                                                       runs))
                write_report(args.out, new, machine, command, args, iperf,
                             floors)
    finally:
        for b in brokers:
            try:
                b.wipe() if isinstance(b, Rabbit) else b.stop()
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                log("stopping %s: %s" % (b.name, e))
        shutil.rmtree(tmp, ignore_errors=True)
    log("done in %.0f s; wrote %s" % (time.monotonic() - t0, args.out))
    failed = ["%d (%s)" % (n, mode) for (mode, n), (runs, s) in new.items()
              if any(s[b]["failed"] for b in s)]
    if failed:
        log("scenarios with failed runs: %s" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
