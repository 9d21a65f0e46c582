#!/usr/bin/python3
"""faults.py: the fault-injection driver for Warren (Jepsen-style).

Builds a private network (netns.py): one namespace per etcd member, per
Warren node and for the clients, on a bridge in a namespace of its own.
Each trial starts fresh etcd and nodes, runs publishers with confirms and
manual-ack consumers (jepsen.py) from the client namespace, injects one
kind of fault, heals everything, drains every queue and runs the
total-queue checker. It prints one summary line per trial and a table at
the end, and removes everything it made.

    faults.py --fault single-kill                  # one node, 5 kill -9s
    faults.py --fault kill --nodes 3 --etcd 3 --trials 20
    faults.py --fault partition-halves --trials 200 --minutes 5   # soak
    faults.py --fault all                          # the CI table

Faults (see README.md): single-kill (works today), and the cluster faults
kill, pause, partition-halves, partition-leader-mirrors,
partition-leader-etcd, partition-ring, etcd-quorum, mirror-stop,
rolling-restart, divergence. A cluster fault needs nodes that report a
vhost leader (management API GET /api/vhosts/<vhost>, field "leader");
until Warren has clustering those trials end as "n/a" with the reason,
never as passed.

Exit status: 0 every trial passed; 1 a trial failed; 3 nothing failed but
some trials were not available yet; 77 not root and
WARREN_FAULTS_SKIP_NONROOT=1 (otherwise not root is status 1).
"""

import argparse
import json
import os
import random
import shutil
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jepsen  # noqa: E402
import netns  # noqa: E402
import services  # noqa: E402
from services import NotAvailable  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VHOST = "/"
SERVICE_BOUND = 30.0    # after the final heal, confirms must resume
EXIT_NA = 3


class TrialFailed(Exception):
    pass


# -- the environment ----------------------------------------------------------

class Env:
    """The run's hosts (kept across trials) and one trial's services."""

    def __init__(self, args, cluster):
        self.args = args
        self.cluster = cluster
        self.net = netns.Net(workdir=args.workdir, keep=args.keep,
                             quiet=args.quiet)
        self.client = self.net.add_host("c1")
        self.etcd_hosts = [self.net.add_host("e%d" % (i + 1))
                           for i in range(args.etcd if cluster else 0)]
        self.node_hosts = [self.net.add_host("n%d" % (i + 1))
                           for i in range(args.nodes if cluster else 1)]
        self.etcd = None
        self.nodes = []
        self.dir = None
        self.prune = None   # a passed trial's directory, removed next time

    def fresh(self, trial_dir):
        """Kills whatever ran, heals, and prepares fresh services (new data
        directories, a new etcd cluster) under trial_dir."""
        self.net.heal()
        for n in self.nodes:
            n.reset()
        if self.etcd:
            self.etcd.reset()
        if self.prune:
            shutil.rmtree(self.prune, ignore_errors=True)
            self.prune = None
        self.dir = trial_dir
        os.makedirs(trial_dir, exist_ok=True)
        if self.cluster:
            self.etcd = services.EtcdCluster(self.net, self.etcd_hosts,
                                             self.client, workdir=trial_dir)
        self.nodes = [services.WarrenNode(
            self.net, h, h.name, self.args.warren, self.client,
            etcd=self.etcd, ttl=self.args.ttl, workdir=trial_dir)
            for h in self.node_hosts]

    def start(self):
        if self.etcd:
            self.etcd.start()
        for n in self.nodes:
            n.start(wait=False)
        for n in self.nodes:
            n.wait_listening()

    @property
    def targets(self):
        return [n.amqp for n in self.nodes]

    def node_named(self, name):
        for n in self.nodes:
            if name == n.name or name.split("@")[0] == n.name:
                return n
        return None

    def leader(self, timeout=None, exclude=None):
        """The node every answering node names as the vhost's leader
        (waits, bounded); raises NotAvailable without clustering,
        TrialFailed when no agreed leader appears in time."""
        timeout = timeout if timeout is not None else self.args.ttl * 3 + 10

        def agreed():
            views = set()
            for n in self.nodes:
                if n is exclude or not n.running() or n.proc.paused:
                    continue
                views.add(n.leader(VHOST))
            if len(views) == 1:
                name = views.pop()
                node = self.node_named(name) if name else None
                if node is not None and node is not exclude:
                    return node
            return None
        try:
            return netns.wait_for(agreed, timeout, "an agreed vhost leader",
                                  0.2)
        except TimeoutError as e:
            raise TrialFailed(str(e))

    def mirrors(self, leader):
        return [n for n in self.nodes if n is not leader]

    def heal_all(self):
        """Removes every partition, resumes every paused process, starts
        every stopped etcd member and node."""
        self.net.heal()
        if self.etcd:
            for m in self.etcd.members:
                if m.proc and m.proc.paused:
                    m.proc.resume()
                if not m.running():
                    m.start()
        for n in self.nodes:
            if n.proc and n.proc.paused:
                n.resume()
        for n in self.nodes:
            if not n.running():
                n.start(wait=False)
        for n in self.nodes:
            n.wait_listening()

    def stop_all(self):
        out = {}
        for n in self.nodes:
            if n.running():
                rc, took = n.stop(10)
                out[n.name] = {"status": rc, "seconds": round(took, 3)}
        if self.etcd:
            self.etcd.stop()
        return out

    def close(self):
        self.net.close()


class LeaderWatch:
    """Samples every node's view of the vhost leader every 0.5 s (from the
    client host, 0.4 s timeout each) into driver events "leaders"."""

    def __init__(self, env, w):
        self.env = env
        self.w = w
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def loop(self):
        while not self.stop_ev.wait(0.5):
            views = {}
            for n in self.env.nodes:
                try:
                    info = None
                    if n.running() and not n.proc.paused:
                        st, info = n.api("GET", "/api/vhosts/%2F",
                                         timeout=0.4)
                    views[n.name] = (info or {}).get("leader") \
                        if isinstance(info, dict) else None
                except Exception:
                    views[n.name] = None
            self.w.note("leaders", views=views)

    def stop(self):
        self.stop_ev.set()
        self.thread.join(5)


def confirming_leaders(events, env):
    """Moments when two nodes each claimed to lead the vhost (in their
    own management view) and confirms arrived within 1 s on client
    connections to both: a split brain that confirmed on both sides.
    Confirms relayed through a non-leader are not attributed (the relay
    hides the confirming leader); see README."""
    node_of_conn = {}
    by_addr = {n.amqp: n.name for n in env.nodes}
    confirms = []
    for e in events:
        if e["type"] == "connect" and e.get("conn") is not None:
            node_of_conn[(e["c"], e["conn"])] = by_addr.get(e.get("node"))
        elif e["type"] == "confirm":
            confirms.append((e["t"], node_of_conn.get((e["c"],
                                                       e.get("conn")))))
    bad = []
    for e in events:
        if e["type"] != "leaders":
            continue
        claim = {n for n, v in e["views"].items() if v and
                 env.node_named(v) is not None and
                 env.node_named(v).name == n}
        if len(claim) < 2:
            continue
        near = [(t, nd) for t, nd in confirms if abs(t - e["t"]) <= 1.0]
        seen = {nd for _, nd in near}
        if len(seen & claim) >= 2:
            # The evidence: each claimant's confirms in the window (first,
            # last, seconds from the sample), to tell a handover (one's
            # confirms all before the other's) from interleaved confirms.
            ev = {}
            for nd in sorted(seen & claim):
                ts = [t - e["t"] for t, x in near if x == nd]
                ev[nd] = "%d confirms %+.3f..%+.3fs" % (len(ts), min(ts),
                                                         max(ts))
            bad.append({"t": e["t"], "leaders": sorted(claim),
                        "confirms": ev})
    return bad


# -- one trial ---------------------------------------------------------------

class Trial:
    def __init__(self, env, fault, number, args, rng):
        self.env = env
        self.fault = fault
        self.number = number
        self.args = args
        self.rng = rng
        self.criteria = []   # (name, ok, detail)
        self.info = {}
        self.w = None
        self.dir = os.path.join(env.net.workdir, "%s-%d" % (fault.name,
                                                            number))

    def expect(self, name, ok, detail=""):
        self.criteria.append((name, bool(ok), detail))
        return ok

    def duration(self):
        """Seconds the fault schedule repeats for (0: once)."""
        return self.args.minutes * 60 if self.args.minutes else \
            self.fault.default_seconds

    def until(self, t0):
        """True while the schedule should run another cycle."""
        return time.monotonic() - t0 < self.duration()

    def sleep(self, s):
        time.sleep(max(0.0, s))

    def run(self):
        env = self.env
        env.fresh(self.dir)
        env.start()
        if env.cluster:
            env.leader(timeout=20)   # NotAvailable without clustering
        a = self.args
        self.w = jepsen.Workload(env.client, env.targets,
                                 os.path.join(self.dir, "history"),
                                 rate=a.rate, confirm_timeout=5.0,
                                 max_seconds=self.duration() + 900)
        self.w.start(publishers=a.publishers, consumers=a.consumers)
        t0 = time.monotonic()
        if self.w.wait_confirms_after(t0 - 60, 30) is None:
            raise TrialFailed("no confirm within 30 s of the start:\n" +
                              self.w.logs_tail())
        watch = LeaderWatch(env, self.w).start() if env.cluster else None
        try:
            self.fault.run(self)
        finally:
            if watch:
                watch.stop()
        self.finish()

    def finish(self):
        env, w = self.env, self.w
        t = w.note("heal", what="final heal")
        env.heal_all()
        back = w.wait_confirms_after(t, SERVICE_BOUND)
        self.expect("service back within %.0fs of the final heal"
                    % SERVICE_BOUND, back is not None,
                    "after %s" % ("%.2fs" % back if back is not None
                                  else "never"))
        self.sleep(0.5)
        killed = w.stop("publish")
        self.sleep(0.5)
        killed += w.stop("consume")
        self.expect("clients stop when told", not killed,
                    "killed: %s" % killed)
        rc = w.drain(env.targets, timeout=60)
        self.expect("drain read every queue to empty", rc == 0,
                    "drain status %s" % rc)
        self.h = w.history()
        # The driver's own events (faults, heals, leader samples) beside
        # the clients' histories, so a kept trial can be checked again.
        with open(os.path.join(self.dir, "history", "driver.jsonl"),
                  "w") as f:
            for e in w.driver_events:
                f.write(json.dumps(e, separators=(",", ":")) + "\n")
        left = [e for e in self.h if e["type"] == "drained" and
                e.get("messages")]
        self.expect("queues empty after the drain", not left, str(left))
        self.info["stop"] = env.stop_all()
        res = jepsen.check(self.h)
        self.res = res
        self.expect("lost == 0", res["lost"] == 0, str(res["lost_ids"]))
        self.expect("unexpected == 0", res["unexpected"] == 0,
                    str(res["unexpected_ids"]))
        self.expect("confirmed > 0", res["confirmed"] > 0)
        self.fault.check(self, res)


# -- faults ----------------------------------------------------------------

class Fault:
    name = None
    cluster = True
    default_seconds = 0      # 0: the schedule runs once
    ci_trials = 1
    doc = ""

    def run(self, tr):
        raise NotImplementedError

    def check(self, tr, res):
        pass

    def recovery_within(self, tr, res, bound, what):
        f = res["fault_to_confirm"]
        tr.expect("%s: p99 from fault to the next confirm <= %.1fs"
                  % (what, bound),
                  f["never"] == 0 and f["p99"] is not None and
                  f["p99"] <= bound,
                  "p99 %s max %s never %d" % (f["p99"], f["max"],
                                              f["never"]))


class SingleKill(Fault):
    name = "single-kill"
    cluster = False
    doc = ("one node: kill -9 under load, restart on the same data, "
           "--cycles times (Warren's durability promise today)")

    def run(self, tr):
        w, node = tr.w, tr.env.nodes[0]
        t0 = time.monotonic()
        for i in range(1000):
            if i >= tr.args.cycles and not tr.until(t0):
                break
            tr.sleep(tr.rng.uniform(0.5, 1.5))
            t = w.note("fault", what="kill -9", node=node.name)
            node.kill()
            tr.sleep(tr.rng.uniform(0.1, 0.5))
            node.start()
            w.note("restarted", node=node.name)
            if w.wait_confirms_after(t, 20) is None:
                raise TrialFailed("no confirm within 20 s after kill %d:\n%s"
                                  % (i + 1, node.proc.log_text(
                                      since_start=True, tail=2000)))
        tr.info["kills"] = i

    def check(self, tr, res):
        f = res["fault_to_confirm"]
        tr.expect("a confirm after every kill", f["never"] == 0,
                  "never: %d" % f["never"])
        st = tr.info.get("stop", {}).get(tr.env.nodes[0].name, {})
        tr.expect("the node stops with status 0 on SIGTERM",
                  st.get("status") == 0, str(st))


class KillLeader(Fault):
    name = "kill"
    ci_trials = 20
    doc = ("kill -9 of the vhost leader under load; restart it after the "
           "failover; then a graceful stop (SIGTERM) of the new leader")

    def run(self, tr):
        env, w = tr.env, tr.w
        t0 = time.monotonic()
        for _ in range(1000):
            leader = env.leader()
            tr.sleep(tr.rng.uniform(1, 3))
            w.note("fault", what="kill -9 leader", node=leader.name)
            leader.kill()
            env.leader(exclude=leader)
            tr.sleep(tr.rng.uniform(1, 3))
            leader.start()
            if not tr.until(t0):
                break
        new = env.leader()
        tr.sleep(1)
        t = w.note("stop", what="SIGTERM leader", node=new.name)
        rc, took = new.stop(10)
        back = w.wait_confirms_after(t, 30)
        tr.info["graceful_stop"] = {"status": rc, "seconds": took,
                                    "next_confirm": back}
        new.start()

    def check(self, tr, res):
        self.recovery_within(tr, res, tr.args.ttl + 3, "kill -9 of the "
                             "leader")
        g = tr.info.get("graceful_stop", {})
        tr.expect("graceful stop of the leader <= 2 s",
                  g.get("status") == 0 and g.get("seconds", 99) <= 2.0,
                  str(g))


class PauseLeader(Fault):
    name = "pause"
    ci_trials = 5
    doc = ("SIGSTOP the leader for 2 x TTL, then SIGCONT: its clients "
           "must get 320 and nothing may be confirmed or delivered by it "
           "after it resumes")

    def run(self, tr):
        env, w = tr.env, tr.w
        t0 = time.monotonic()
        tr.info["pauses"] = []
        for k in range(1000):
            leader = env.leader()
            # Clients pinned to the leader that do not give up during the
            # pause (no heartbeat, no abandon), to see what it does after.
            sp, sc = "sp%d" % k, "sc%d" % k
            w.add("publish", sp, targets=[leader.amqp], rate=20,
                  window=50, heartbeat=0, confirm_timeout=5,
                  abandon_after=tr.args.ttl * 6 + 30)
            w.add("consume", sc, targets=[leader.amqp], heartbeat=0)
            netns.wait_for(lambda: {sp, sc} <= w.connected(), 15,
                           "pinned clients to connect")
            tr.sleep(1)
            w.note("fault", what="SIGSTOP leader", node=leader.name)
            leader.pause()
            tr.sleep(2 * tr.args.ttl)
            # Noted before the SIGCONT: the resumed node may close its
            # connections (320) and the clients log it before this thread
            # runs again on a loaded machine.
            t_res = w.note("resumed", node=leader.name)
            leader.resume()
            tr.sleep(tr.args.ttl + 2)
            tr.info["pauses"].append({"node": leader.amqp, "resumed": t_res,
                                      "clients": [sp, sc]})
            for cid in (sp, sc):
                w.clients[cid][1].stop(10)
            if not tr.until(t0):
                break

    def check(self, tr, res):
        h = tr.h
        for p in tr.info.get("pauses", []):
            conns = {(e["c"], e["conn"]) for e in h
                     if e["type"] == "connect" and e.get("node") == p["node"]
                     and e["t"] < p["resumed"]}
            late = [e for e in h if e["type"] in ("confirm", "deliver") and
                    e["t"] > p["resumed"] and (e["c"], e.get("conn")) in conns]
            tr.expect("no confirm or delivery from the old leader after it "
                      "resumed", not late, "%d events%s" % (len(late), "".join(
                          ", first: %s %s at +%.3fs" % (
                              e["type"], e.get("id"), e["t"] - p["resumed"])
                          for e in late[:1])))
            got320 = [e for e in h if e["type"] == "disconnect" and
                      e["c"] in p["clients"] and e.get("code") == 320 and
                      e["t"] > p["resumed"]]
            tr.expect("its pinned clients get 320 after it resumes",
                      len({e["c"] for e in got320}) == 2,
                      "%d disconnects with 320" % len(got320))


class Partition(Fault):
    """A partition schedule: quiet, cut, hold, heal, repeated."""
    default_seconds = 60
    ci_trials = 2

    def grudge(self, tr):
        """Returns [(side_a, side_b), ...] of hosts to cut apart, and a
        description."""
        raise NotImplementedError

    def run(self, tr):
        env, w, rng, ttl = tr.env, tr.w, tr.rng, tr.args.ttl
        t0 = time.monotonic()
        tr.info["partitions"] = []
        for _ in range(1000):
            tr.sleep(rng.uniform(2, 4))
            cuts, what = self.grudge(tr)
            w.note("fault", what=self.name, cut=what)
            parts = [env.net.partition(a, b) for a, b in cuts]
            tr.info["partitions"].append(what)
            tr.sleep(rng.uniform(ttl + 2, 3 * ttl + 2))
            for p in parts:
                env.net.heal(p)
            w.note("heal", what=self.name)
            if not tr.until(t0):
                break

    def check(self, tr, res):
        bad = confirming_leaders(tr.h, tr.env)
        tr.expect("never two confirming leaders", not bad, str(bad[:3]))


def _names(hosts):
    return [h.name for h in hosts]


class PartitionHalves(Partition):
    name = "partition-halves"
    doc = "random halves of all nodes and etcd members"

    def grudge(self, tr):
        hosts = tr.env.node_hosts + tr.env.etcd_hosts
        tr.rng.shuffle(hosts)
        k = len(hosts) // 2 + tr.rng.choice([0, len(hosts) % 2])
        a, b = hosts[:k], hosts[k:]
        return [(a, b)], "%s | %s" % (_names(a), _names(b))


class PartitionLeaderMirrors(Partition):
    name = "partition-leader-mirrors"
    doc = "the vhost leader cut off from its mirrors (it still sees etcd)"

    def grudge(self, tr):
        leader = tr.env.leader()
        others = [n.host for n in tr.env.mirrors(leader)]
        return [([leader.host], others)], "%s | %s" % (
            leader.name, _names(others))


class PartitionLeaderEtcd(Partition):
    name = "partition-leader-etcd"
    doc = "the vhost leader cut off from etcd (it still sees its mirrors)"

    def grudge(self, tr):
        leader = tr.env.leader()
        return [([leader.host], tr.env.etcd_hosts)], "%s | %s" % (
            leader.name, _names(tr.env.etcd_hosts))


class PartitionRing(Partition):
    name = "partition-ring"
    doc = ("majority ring of the nodes: each sees a majority, no two the "
           "same one (with 3 nodes: a bridge, one node sees both others, "
           "they do not see each other)")

    def grudge(self, tr):
        hosts = list(tr.env.node_hosts)
        tr.rng.shuffle(hosts)
        n = len(hosts)
        cuts = []
        if n == 3:
            cuts = [([hosts[0]], [hosts[2]])]
        else:
            keep = ((n // 2 + 1) - 1 + 1) // 2  # neighbours kept each side
            for i in range(n):
                for j in range(i + 1, n):
                    d = min(j - i, n - (j - i))
                    if d > keep:
                        cuts.append(([hosts[i]], [hosts[j]]))
        return cuts, " ".join("%s|%s" % (a[0].name, b[0].name)
                              for a, b in cuts)


class EtcdQuorum(Fault):
    name = "etcd-quorum"
    ci_trials = 2
    doc = ("etcd loses quorum for 30 s (members cut from each other; one "
           "member: SIGSTOP): confirms stop within TTL, nothing lost, "
           "service back within 10 s of the heal")

    def run(self, tr):
        env, w = tr.env, tr.w
        t0 = time.monotonic()
        tr.info["outages"] = []
        for _ in range(1000):
            tr.sleep(tr.rng.uniform(2, 4))
            hosts = env.etcd_hosts
            t = w.note("fault", what="etcd quorum lost")
            if len(hosts) == 1:
                env.etcd.members[0].proc.pause()
                parts = []
            else:
                parts = [env.net.partition([hosts[i]], hosts[i + 1:])
                         for i in range(len(hosts) - 1)]
            tr.sleep(30)
            t_heal = w.note("heal", what="etcd quorum back")
            for p in parts:
                env.net.heal(p)
            if len(hosts) == 1:
                env.etcd.members[0].proc.resume()
            back = w.wait_confirms_after(t_heal, 30)
            tr.info["outages"].append({"fault": t, "heal": t_heal,
                                       "back": back})
            if not tr.until(t0):
                break

    def check(self, tr, res):
        h = tr.h
        ttl = tr.args.ttl
        for o in tr.info.get("outages", []):
            late = [e for e in h if e["type"] == "confirm" and
                    o["fault"] + ttl + 0.5 < e["t"] < o["heal"]]
            tr.expect("confirms stop within TTL of losing etcd quorum",
                      not late, "%d confirms later" % len(late))
            tr.expect("service back <= 10 s after etcd heals",
                      o["back"] is not None and o["back"] <= 10,
                      "after %s s" % o["back"])


def confirm_rate(events, t1, t2):
    n = sum(1 for e in events if e["type"] == "confirm" and t1 <= e["t"] < t2)
    return n / max(1e-6, t2 - t1)


class MirrorStop(Fault):
    name = "mirror-stop"
    ci_trials = 2
    doc = ("a mirror stopped (SIGTERM) for 30 s under load, then restarted: "
           "back in sync (the vhost's \"isr\" lists it again), leader "
           "throughput >= 80% meanwhile")
    PROBE_SECONDS = 4

    def run(self, tr):
        env, w = tr.env, tr.w
        t0 = time.monotonic()
        tr.info["stops"] = []
        for _ in range(1000):
            leader = env.leader()
            self.isr(leader)   # NotAvailable before spending a minute
            mirror = tr.rng.choice(env.mirrors(leader))
            # the baseline is the mean of two probes: one 4 s sample on
            # this shared machine varies by 20% and more
            b = [self.probe(tr, leader, "before-%d" % i) for i in (1, 2)]
            cap = {"before": None if None in b else round(sum(b) / 2),
                   "before_samples": b}
            tr.sleep(10)
            t = w.note("fault", what="stop mirror", node=mirror.name)
            mirror.stop(10)
            tr.sleep(10)
            cap["down"] = self.probe(tr, leader, "down")
            tr.sleep(t + 30 - time.monotonic())
            t_back = w.note("heal", what="restart mirror", node=mirror.name)
            mirror.start()
            cap["catch-up"] = self.probe(tr, leader, "catch-up")
            insync = None
            try:
                netns.wait_for(lambda: mirror.name in self.isr(leader), 60,
                               "the mirror back in the ISR", 0.5)
                insync = time.monotonic() - t_back
            except TimeoutError:
                pass
            tr.info["stops"].append({"fault": t, "heal": t_back,
                                     "in_sync_after": insync,
                                     "capacity": cap})
            if not tr.until(t0):
                break

    def probe(self, tr, leader, what):
        """The leader's capacity: confirmed msg/s of a saturating
        warren-perf (scenario 3's messages: 1 KiB persistent, confirms,
        manual acks) from the client host for a few seconds, on a queue of
        its own beside the workload's; None without warren-perf (--perf).
        The workload's publishers are rate-limited, so their confirm rate
        only says the leader kept up with them."""
        if not tr.args.perf:
            return None
        out = os.path.join(tr.dir, "probe-%s.json" % what)
        argv = [tr.args.perf, "throughput", "--host", leader.addr,
                "--port", str(services.AMQP_PORT), "-s", "1024",
                "--persistent", "--durable-queues", "--confirm", "1000",
                "--multi-ack-every", "10", "--prefetch", "100",
                "-z", str(self.PROBE_SECONDS), "--queue-prefix", "probe",
                "--drain-timeout", "10", "--quiet", "--json", out]
        tr.env.client.run(argv, timeout=self.PROBE_SECONDS + 60)
        try:
            with open(out) as f:
                return round(json.load(f)["confirm_rate"])
        except (OSError, ValueError, KeyError):
            return 0   # the probe failed: no capacity seen

    def isr(self, leader):
        info = leader.vhost_info(VHOST) or {}
        if "isr" not in info:
            raise NotAvailable("GET /api/vhosts/%2F has no \"isr\" field: "
                               "cannot tell whether a mirror is in sync")
        return [str(x).split("@")[0] for x in info["isr"] or []]

    def check(self, tr, res):
        h = tr.h
        for s in tr.info.get("stops", []):
            before = confirm_rate(h, s["fault"] - 10, s["fault"])
            during = confirm_rate(h, s["fault"] + 1, s["heal"])
            tr.expect("workload confirm rate >= 80% while a mirror is down",
                      during >= 0.8 * before,
                      "%.0f/s before, %.0f/s during" % (before, during))
            tr.expect("the mirror is back in sync",
                      s["in_sync_after"] is not None,
                      "after %s s" % s["in_sync_after"])
            cap = s["capacity"]
            if cap["before"] is None:
                continue
            for k in ("down", "catch-up"):
                tr.expect("leader capacity >= 80%% %s" % (
                    "while a mirror is down" if k == "down" else
                    "while the mirror catches up"),
                    cap[k] >= 0.8 * cap["before"],
                    "warren-perf confirmed msg/s: %s before, %s %s" % (
                        cap["before"], cap[k], k))


class RollingRestart(Fault):
    name = "rolling-restart"
    ci_trials = 2
    doc = ("every node in turn: SIGTERM, start, wait; at most 2 s without "
           "confirms per node")

    def run(self, tr):
        env, w = tr.env, tr.w
        t0 = time.monotonic()
        tr.info["restarts"] = []
        for _ in range(1000):
            for n in env.nodes:
                tr.sleep(3)
                t = w.note("fault", what="restart", node=n.name)
                rc, took = n.stop(10)
                n.start()
                t_up = w.note("restarted", node=n.name)
                env.leader()
                tr.sleep(3)
                tr.info["restarts"].append({
                    "node": n.name, "t": t, "up": t_up, "status": rc,
                    "stop_seconds": round(took, 3)})
            if not tr.until(t0):
                break

    def check(self, tr, res):
        h = tr.h
        for r in tr.info.get("restarts", []):
            ct = [e["t"] for e in h if e["type"] == "confirm" and
                  r["t"] - 1 <= e["t"] <= r["up"] + 3]
            gaps = [b - a for a, b in zip(ct, ct[1:])] or [99.0]
            tr.expect("<= 2 s without confirms while %s restarts"
                      % r["node"], max(gaps) <= 2.0,
                      "longest gap %.2fs" % max(gaps))
            tr.expect("%s stops cleanly within 2 s" % r["node"],
                      r["status"] == 0 and r["stop_seconds"] <= 2.0, str(r))


class Divergence(Fault):
    name = "divergence"
    ci_trials = 5
    doc = ("a mirror lags (SIGSTOP past TTL, then SIGCONT), the leader is "
           "killed at once, the old leader returns later: nothing lost, and "
           "no message acked before the fault reappears")

    def run(self, tr):
        env, w, ttl = tr.env, tr.w, tr.args.ttl
        t0 = time.monotonic()
        tr.info["kills"] = []
        for _ in range(1000):
            leader = env.leader()
            lag = tr.rng.choice(env.mirrors(leader))
            tr.sleep(2)
            w.note("lag", node=lag.name)
            lag.pause()
            tr.sleep(ttl + 2)
            lag.resume()
            tr.sleep(0.2)
            t = w.note("fault", what="kill -9 leader", node=leader.name)
            leader.kill()
            env.leader(exclude=leader)
            tr.sleep(5)
            leader.start()
            w.note("heal", what="old leader back", node=leader.name)
            tr.sleep(5)
            tr.info["kills"].append(t)
            if not tr.until(t0):
                break

    def check(self, tr, res):
        h = tr.h
        for t in tr.info.get("kills", []):
            back = jepsen.acked_before_delivered_after(h, t, margin=1.0)
            tr.expect("no message acked (>= 1 s) before the fault "
                      "reappears", not back, str(back[:10]))


FAULTS = {f.name: f for f in (
    SingleKill(), KillLeader(), PauseLeader(), PartitionHalves(),
    PartitionLeaderMirrors(), PartitionLeaderEtcd(), PartitionRing(),
    EtcdQuorum(), MirrorStop(), RollingRestart(), Divergence())}
CLUSTER_SUITE = ["kill", "partition-halves", "partition-leader-mirrors",
                 "partition-leader-etcd", "partition-ring", "pause",
                 "divergence", "etcd-quorum", "mirror-stop",
                 "rolling-restart"]


# -- running and reporting ----------------------------------------------------

def run_trial(env, fault, number, args, rng):
    tr = Trial(env, fault, number, args, rng)
    t0 = time.monotonic()
    out = {"fault": fault.name, "trial": number, "status": "fail"}
    try:
        tr.run()
        failed = [c for c in tr.criteria if not c[1]]
        out["status"] = "fail" if failed else "pass"
    except NotAvailable as e:
        out["status"] = "n/a"
        out["reason"] = "not available yet: %s" % e
    except (TrialFailed, TimeoutError, netns.NetError, RuntimeError) as e:
        out["reason"] = str(e)
    except Exception:
        out["reason"] = traceback.format_exc()
    out["dir"] = tr.dir
    out["criteria"] = [{"name": n, "ok": ok, "detail": d}
                       for n, ok, d in tr.criteria]
    out["info"] = tr.info
    res = getattr(tr, "res", None)
    if res is None and tr.w is not None and out["status"] != "n/a":
        try:
            res = tr.w.check()
        except Exception:
            res = None
    out["result"] = res
    if out["status"] == "fail" and tr.w is not None:
        out["client_logs"] = tr.w.logs_tail(800)
    if out["status"] == "fail":
        out["node_logs"] = {n.name: n.proc.log_text(tail=1500)
                            for n in env.nodes if n.proc}
    # Whatever happened, nothing of this trial keeps running.
    if tr.w is not None:
        tr.w.stop(timeout=3)
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def trial_line(r):
    head = "%-26s trial %-3d %-4s %6.1fs" % (r["fault"], r["trial"],
                                           r["status"].upper(), r["seconds"])
    if r["status"] == "n/a":
        return head + "  " + r["reason"]
    parts = [head]
    if r.get("result"):
        parts.append(jepsen.summary(r["result"]))
    bad = [c for c in r["criteria"] if not c["ok"]]
    if bad:
        parts.append("FAILED: " + "; ".join(
            "%s (%s)" % (c["name"], c["detail"]) for c in bad))
    if r.get("reason") and r["status"] == "fail":
        parts.append("ERROR: " + r["reason"].strip().splitlines()[-1])
    # Every pass criterion with its figure, so a passing CI log still
    # shows how close each came to its bound.
    checked = ["    %-4s %s%s" % ("ok" if c["ok"] else "FAIL", c["name"],
                                  (": " + c["detail"][:200]) if c["detail"]
                                  else "") for c in r["criteria"]]
    return "\n".join(["  ".join(parts)] + checked)


def table(results):
    rows = []
    for name in dict.fromkeys(r["fault"] for r in results):
        rs = [r for r in results if r["fault"] == name]
        tot = {k: sum((r.get("result") or {}).get(k, 0) for r in rs)
               for k in ("attempted", "confirmed", "unknown", "lost",
                         "unexpected", "duplicates", "recovered")}
        rec = []
        for r in rs:
            f = (r.get("result") or {}).get("fault_to_confirm") or {}
            if f.get("max") is not None:
                rec.append(f["max"])
        rows.append([name, len(rs),
                     sum(r["status"] == "pass" for r in rs),
                     sum(r["status"] == "fail" for r in rs),
                     sum(r["status"] == "n/a" for r in rs),
                     tot["attempted"], tot["confirmed"], tot["unknown"],
                     tot["lost"], tot["unexpected"], tot["duplicates"],
                     tot["recovered"],
                     "%.0f" % sum(r["seconds"] for r in rs),
                     "-" if not rec else "%.2f/%.2f/%.2f" % (
                         jepsen.percentile(rec, 50), jepsen.percentile(
                             rec, 99), max(rec))])
    head = ["fault", "trials", "pass", "fail", "n/a", "attempted",
            "confirmed", "unknown", "lost", "unexpected", "dups",
            "recovered", "wall s", "fault->confirm s p50/p99/max"]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(x).rjust(w) if i else str(x).ljust(w)
                       for i, (x, w) in enumerate(zip(row, widths)))
             for row in [head] + rows]
    return "\n".join(lines)


def write_json(args, seed, results):
    """Every trial's result so far to --json (rewritten after each trial:
    what a long run did survives its interruption)."""
    if not args.json:
        return
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"seed": seed, "args": vars(args), "trials": results},
                  f, indent=1, default=str)
    os.replace(tmp, args.json)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Faults: " + "; ".join("%s: %s" % (f.name, f.doc)
                                      for f in FAULTS.values()) +
        "; all: every cluster fault with its CI trial count.")
    ap.add_argument("--fault", required=True,
                    choices=sorted(FAULTS) + ["all"])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--etcd", type=int, default=1, choices=(1, 3))
    ap.add_argument("--warren", default=os.environ.get("WARREN_BIN") or
                    os.path.join(REPO, "build", "server", "warren"))
    ap.add_argument("--trials", type=int, default=None,
                    help="trials per fault (default 1; --fault all: the CI "
                    "counts)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="repeat each trial's fault schedule for this long "
                    "(default: once; partitions 1 minute)")
    ap.add_argument("--cycles", type=int, default=5,
                    help="single-kill: kill -9 cycles per trial")
    ap.add_argument("--json", metavar="OUT", help="write every trial's "
                    "result there")
    ap.add_argument("--perf", default=None,
                    help="warren-perf for mirror-stop's capacity probe "
                    "(default: test/warren-perf of the --warren build, if "
                    "there; 'none' to skip the probe)")
    ap.add_argument("--ttl", type=int, default=4, help="node lease TTL (s)")
    ap.add_argument("--publishers", type=int, default=3)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=100,
                    help="messages/s per publisher")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workdir", help="work directory (default: a temp one)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (logs, histories)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.perf is None:
        guess = os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(a.warren))), "test", "warren-perf")
        a.perf = guess if os.access(guess, os.X_OK) else None
    elif a.perf == "none":
        a.perf = None
    if a.nodes < 1 or (a.fault not in ("single-kill",) and a.nodes < 3):
        ap.error("cluster faults need --nodes >= 3")
    return a


def main(argv=None):
    args = parse_args(argv)
    netns.require_root("faults.py")
    if not os.access(args.warren, os.X_OK):
        print("faults.py: no Warren binary at %s (--warren or WARREN_BIN)"
              % args.warren, file=sys.stderr)
        return 1
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    names = CLUSTER_SUITE if args.fault == "all" else [args.fault]
    print("faults.py: %s, seed %d, warren %s" % (", ".join(names), seed,
                                                 args.warren), flush=True)
    results = []
    envs = {}
    try:
        for name in names:
            fault = FAULTS[name]
            trials = args.trials or (fault.ci_trials if args.fault == "all"
                                     else 1)
            env = envs.get(fault.cluster)
            if env is None:
                env = envs[fault.cluster] = Env(args, fault.cluster)
                if not args.quiet:
                    print("network %s (10.77.%d.0/24), work directory %s"
                          % (env.net.prefix, env.net.run_no,
                             env.net.workdir), flush=True)
            for k in range(1, trials + 1):
                r = run_trial(env, fault, k, args, rng)
                results.append(r)
                if r["status"] == "pass" and not args.keep:
                    env.prune = r["dir"]   # keep only failures' logs
                print(trial_line(r), flush=True)
                write_json(args, seed, results)   # a soak can be cut short
                if r["status"] == "fail" and not args.quiet:
                    for n, text in (r.get("node_logs") or {}).items():
                        print("--- %s log (tail)\n%s" % (n, text))
                    if r.get("client_logs"):
                        print(r["client_logs"])
                if r["status"] == "n/a":
                    break  # the next trials would say the same
    finally:
        for env in envs.values():
            env.close()
    print()
    print(table(results))
    write_json(args, seed, results)
    if any(r["status"] == "fail" for r in results):
        return 1
    if any(r["status"] == "n/a" for r in results):
        print("\nnot available yet: %d fault(s) need clustering; nothing "
              "was counted as passed for them" % sum(
                  r["status"] == "n/a" for r in results))
        return EXIT_NA
    return 0


if __name__ == "__main__":
    sys.exit(main())
