#!/usr/bin/python3
"""jepsen.py: the total-queue workload and Jepsen's total-queue checker.

Clients are separate processes (pika; python3-pika), started by the driver
inside a client host's namespace; each writes a JSON-lines history:

    jepsen.py publish --id p1 --targets A:5672,B:5672 --queues q0,q1 --out F
    jepsen.py consume --id c1 --targets ... --queues ... --out F
    jepsen.py drain   --id d1 --targets ... --queues ... --out F
    jepsen.py check   FILE...          # the checker over saved histories

History events (one JSON object a line; "t" is CLOCK_MONOTONIC seconds,
the same clock in every process of the machine; "c" the client id):

    connect     node conn                  a connection is open
    disconnect  node conn code text        it closed (code: the broker's
                                           reply code, e.g. 320, or null)
    publish     id q node conn             attempted (logged before sending)
    confirm     id conn [late]             basic.ack from the broker
    nack        id conn                    basic.nack
    returned    id                         basic.return (unroutable)
    unknown     id why                     no confirm within the confirm
                                           timeout (5 s), or the connection
                                           died first: outcome unknown
    deliver     id q node conn redelivered [drain]
    ack         id conn [drain]            our basic.ack went out
    drained     q node messages            the drain found q empty
    fault/heal  what ...                   written by the driver

Publishers: confirms on, persistent messages (delivery_mode 2, mandatory)
with unique ids "<client>-<n>", a rate and a window of unconfirmed
messages; on any failure they reconnect to the next target. Consumers:
manual acks, a prefetch window, reconnect likewise. The drain reads every
queue with basic.get until every queue is empty twice in a row.

The checker (Jepsen's total-queue, knossos-free): with
    attempted = ids published, confirmed = ids the broker acked (and did
    not return), consumed = ids delivered and acked by our clients,
    delivered = ids delivered at all,
it computes
    lost        = confirmed - consumed  (a delivery we never acked must
                                         come back, or it counts as lost)
    unexpected  = delivered - attempted
    duplicates  = deliveries beyond the first of each id
    recovered   = delivered ids whose publish outcome was unknown
and availability figures: gaps between consecutive confirms, and for each
driver fault (and heal) the time to the next confirm of a message
published after it: p50/p99/max. valid = lost == 0 and unexpected == 0.
"""

import argparse
import bisect
import collections
import json
import math
import os
import random
import signal
import subprocess
import sys
import time

CONFIRM_TIMEOUT = 5.0


# -- history files ------------------------------------------------------------

class Log:
    """A client's history file: one JSON object a line, flushed each line
    (a kill -9 of the client loses at most a torn last line)."""

    def __init__(self, path, client):
        self.f = open(path, "a", buffering=1)
        self.client = client

    def __call__(self, type_, **kw):
        kw["t"] = round(time.monotonic(), 6)
        kw["c"] = self.client
        kw["type"] = type_
        self.f.write(json.dumps(kw, separators=(",", ":")) + "\n")


def read_history(path, offset=0):
    """(events, new offset) from a history file; a torn last line is left
    for the next read."""
    events = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return events, offset
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    return events, offset + end


def load(paths):
    events = []
    for p in paths:
        events += read_history(p)[0]
    events.sort(key=lambda e: e.get("t", 0))
    return events


# -- the checker --------------------------------------------------------------

def percentile(xs, p):
    """Nearest-rank percentile of xs (None when empty)."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(math.ceil(p / 100.0 * len(s))) - 1))
    return s[k]


def stats(xs):
    return {"n": len(xs), "p50": percentile(xs, 50), "p99": percentile(xs, 99),
            "max": max(xs) if xs else None}


def _natural(i):
    """Sort key: "p1-9" before "p1-10"."""
    head, _, n = str(i).rpartition("-")
    return (head, int(n)) if n.isdigit() else (str(i), -1)


def check(events, fault_types=("fault",), heal_types=("heal",)):
    """Jepsen's total-queue over a history (a list of event dicts, any
    order). Returns a dict of counts, id samples and availability figures.
    """
    events = sorted(events, key=lambda e: e.get("t", 0))
    publish_t = {}
    confirmed_t = {}
    nacked = set()
    returned = set()
    unknown = set()
    deliveries = collections.Counter()
    first_ack_t = {}
    consumed = set()
    reappeared = set()
    drained = []
    for e in events:
        ty = e.get("type")
        i = e.get("id")
        if ty == "publish":
            publish_t.setdefault(i, e["t"])
        elif ty == "confirm":
            confirmed_t.setdefault(i, e["t"])
        elif ty == "nack":
            nacked.add(i)
        elif ty == "returned":
            returned.add(i)
        elif ty == "unknown":
            unknown.add(i)
        elif ty == "deliver":
            deliveries[i] += 1
            if i in first_ack_t:
                reappeared.add(i)
        elif ty == "ack":
            first_ack_t.setdefault(i, e["t"])
            consumed.add(i)
        elif ty == "drained":
            drained.append(e)
    attempted = set(publish_t)
    confirmed = set(confirmed_t) - returned
    delivered = set(deliveries)
    # An attempt with no outcome at all (its client died) is unknown too.
    undecided = attempted - confirmed - nacked - returned
    lost = confirmed - consumed
    unexpected = delivered - attempted
    dups = {i: n - 1 for i, n in deliveries.items() if n > 1}
    recovered = delivered & (undecided - nacked)
    res = {
        "attempted": len(attempted),
        "confirmed": len(confirmed),
        "nacked": len(nacked - set(confirmed_t)),
        "returned": len(returned),
        "unknown": len(undecided),
        "delivered": len(delivered),
        "deliveries": sum(deliveries.values()),
        "consumed": len(consumed),
        "lost": len(lost),
        "lost_but_seen": len(lost & delivered),
        "unexpected": len(unexpected),
        "unexpected_deliveries": sum(deliveries[i] for i in unexpected),
        "duplicates": sum(dups.values()),
        "duplicated_ids": len(dups),
        "reappeared_after_ack": len(reappeared),
        "recovered": len(recovered),
        "nacked_delivered": len(delivered & nacked),
        "drained_queues": len(drained),
        "lost_ids": sorted(lost, key=_natural)[:20],
        "unexpected_ids": sorted(unexpected, key=_natural)[:20],
    }
    res["valid"] = res["lost"] == 0 and res["unexpected"] == 0
    res.update(availability(events, publish_t, fault_types, heal_types))
    return res


def next_confirm_after(confirms, t):
    """Seconds from t to the first confirm of a message published at or
    after t; None if there is none. confirms: sorted (confirm time,
    publish time) pairs."""
    k = bisect.bisect_right(confirms, (t, float("inf")))
    for ct, pt in confirms[k:]:
        if pt >= t:
            return ct - t
    return None


def availability(events, publish_t, fault_types=("fault",),
                 heal_types=("heal",)):
    confirms = sorted((e["t"], publish_t.get(e.get("id"), -1.0))
                      for e in events if e.get("type") == "confirm")
    ct = [c for c, _ in confirms]
    gaps = [b - a for a, b in zip(ct, ct[1:])]
    out = {"confirm_gap": stats(gaps)}
    for key, types in (("fault_to_confirm", fault_types),
                       ("heal_to_confirm", heal_types)):
        xs = []
        never = 0
        for e in events:
            if e.get("type") in types:
                d = next_confirm_after(confirms, e["t"])
                if d is None:
                    never += 1
                else:
                    xs.append(d)
        s = stats(xs)
        s["never"] = never
        out[key] = s
    return out


def acked_before_delivered_after(events, t, margin=0.0):
    """Ids whose ack went out before t - margin and that were delivered
    again after t (a message "acked before the fault reappearing")."""
    acked = {}
    for e in events:
        if e.get("type") == "ack" and e["t"] < t - margin:
            acked.setdefault(e["id"], e["t"])
    return sorted({e["id"] for e in events
                   if e.get("type") == "deliver" and e["t"] > t and
                   e.get("id") in acked})


def _fmt_s(x):
    return "-" if x is None else "%.3fs" % x


def summary(res):
    """One line of counts and availability for a checker result."""
    f = res.get("fault_to_confirm", {})
    g = res.get("confirm_gap", {})
    line = ("attempted %(attempted)d confirmed %(confirmed)d nacked "
            "%(nacked)d unknown %(unknown)d recovered %(recovered)d "
            "consumed %(consumed)d lost %(lost)d unexpected %(unexpected)d "
            "duplicates %(duplicates)d" % res)
    line += " | confirm gaps p50 %s p99 %s max %s" % (
        _fmt_s(g.get("p50")), _fmt_s(g.get("p99")), _fmt_s(g.get("max")))
    if f.get("n") or f.get("never"):
        line += " | fault->confirm p50 %s p99 %s max %s%s" % (
            _fmt_s(f.get("p50")), _fmt_s(f.get("p99")), _fmt_s(f.get("max")),
            (" never %d" % f["never"]) if f.get("never") else "")
    return line


# -- the driver's side: client processes on a host ----------------------------

def find_python():
    """A python3 that has pika: this one, or Debian's."""
    for py in (sys.executable, "/usr/bin/python3"):
        if py and subprocess.run([py, "-c", "import pika"],
                                 capture_output=True).returncode == 0:
            return py
    raise RuntimeError("no python3 with pika (apt-get install python3-pika)")


class Workload:
    """The clients of one trial, as processes on a client host.

        w = Workload(client_host, ["10.77.5.1:5672", ...], workdir)
        w.start(publishers=3, consumers=2)
        w.note("fault", what="kill", node="n1")   # driver events
        w.wait_confirms_after(t, timeout)         # live progress
        w.stop(); w.drain(); res = w.check()
    """

    def __init__(self, host, targets, workdir, queues=("q0", "q1", "q2"),
                 vhost="/", rate=150, window=100,
                 confirm_timeout=CONFIRM_TIMEOUT,
                 python=None, max_seconds=3600):
        self.host = host
        self.targets = list(targets)
        self.workdir = workdir
        self.queues = list(queues)
        self.vhost = vhost
        self.rate = rate
        self.window = window
        self.confirm_timeout = confirm_timeout
        self.python = python or find_python()
        self.max_seconds = max_seconds
        self.script = os.path.abspath(__file__)
        self.clients = {}  # id -> (role, Proc, out path)
        self.driver_events = []
        self._offsets = {}
        self._confirm_ts = []   # confirm times read so far (live progress)
        self._connected = set()
        os.makedirs(workdir, exist_ok=True)

    def _argv(self, role, cid, targets, out, extra):
        return [self.python, self.script, role, "--id", cid,
                "--targets", ",".join(targets), "--queues",
                ",".join(self.queues), "--vhost", self.vhost, "--out", out,
                "--max-seconds", str(self.max_seconds)] + list(extra)

    def add(self, role, cid, targets=None, start_index=0, **opts):
        """Starts one client process; opts become --key value options."""
        assert cid not in self.clients, cid
        out = os.path.join(self.workdir, "%s.jsonl" % cid)
        extra = ["--start", str(start_index)]
        for k, v in opts.items():
            extra += ["--" + k.replace("_", "-"), str(v)]
        argv = self._argv(role, cid, targets or self.targets, out, extra)
        proc = self.host.spawn(argv, name=cid, log=os.path.join(
            self.workdir, "%s.log" % cid))
        self.clients[cid] = (role, proc, out)
        return proc

    def start(self, publishers=3, consumers=2, **opts):
        for i in range(publishers):
            self.add("publish", "p%d" % (i + 1), start_index=i,
                     rate=self.rate, window=self.window,
                     confirm_timeout=self.confirm_timeout, **opts)
        for i in range(consumers):
            self.add("consume", "c%d" % (i + 1), start_index=i + 1, **opts)

    def note(self, type_, **kw):
        """Records a driver event (fault, heal, ...) at the current time."""
        kw["type"] = type_
        kw["t"] = time.monotonic()
        kw["c"] = "driver"
        self.driver_events.append(kw)
        return kw["t"]

    def poll(self):
        """Reads what the clients wrote since the last poll; keeps only what
        live progress needs (confirm times, connected clients)."""
        for cid, (_, _, out) in self.clients.items():
            evs, self._offsets[out] = read_history(out,
                                                   self._offsets.get(out, 0))
            for e in evs:
                if e["type"] == "confirm":
                    self._confirm_ts.append(e["t"])
                elif e["type"] == "connect":
                    self._connected.add(e["c"])

    def connected(self):
        """Ids of the clients that have opened a connection so far."""
        self.poll()
        return set(self._connected)

    def confirms_after(self, t):
        self.poll()
        return sum(1 for x in self._confirm_ts if x > t)

    def last_confirm(self):
        self.poll()
        return max(self._confirm_ts) if self._confirm_ts else None

    def wait_confirms_after(self, t, timeout, n=1):
        """Waits (bounded) until n confirms arrived after t; returns the
        seconds from t to the first of them, or None."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 2):
            self.poll()
            ts = sorted(x for x in self._confirm_ts if x > t)
            if len(ts) >= n:
                return ts[0] - t
            if time.monotonic() >= deadline:
                return None
            self._check_alive()
            time.sleep(0.05)
        return None

    def _check_alive(self):
        for cid, (role, proc, _) in self.clients.items():
            if role != "drain" and not proc.running() and \
                    proc.popen.returncode not in (0, None):
                raise RuntimeError("client %s exited with %s:\n%s" % (
                    cid, proc.popen.returncode, proc.log_text(tail=3000)))

    def stop(self, role=None, timeout=None):
        """SIGTERM to the clients (publishers finish waiting for their
        confirms, at most the confirm timeout); bounded wait, then kill.
        Returns the ids that had to be killed."""
        timeout = timeout or self.confirm_timeout + 5
        procs = [(cid, p) for cid, (r, p, _) in self.clients.items()
                 if p.running() and (role is None or r == role)]
        for _, p in procs:
            p._signal_group(signal.SIGTERM)
        killed = []
        deadline = time.monotonic() + timeout
        for cid, p in procs:
            if p.wait(max(0.1, deadline - time.monotonic())) is None:
                p.kill()
                killed.append(cid)
        return killed

    def drain(self, targets=None, timeout=60.0, cid=None):
        """Runs the drain client to completion (bounded); returns its exit
        status (0: every queue read to empty)."""
        cid = cid or "d%d" % (1 + sum(1 for r, _, _ in self.clients.values()
                                      if r == "drain"))
        p = self.add("drain", cid, targets=targets,
                     max_seconds_drain=int(timeout))
        rc = p.wait(timeout + 10)
        if rc is None:
            p.kill()
        return rc

    def history(self):
        evs = []
        for _, _, out in self.clients.values():
            evs += read_history(out)[0]
        return sorted(evs + self.driver_events, key=lambda e: e["t"])

    def check(self):
        return check(self.history())

    def logs_tail(self, n=1500):
        parts = []
        for cid, (_, p, _) in self.clients.items():
            t = p.log_text(tail=n).strip()
            if t:
                parts.append("--- %s\n%s" % (cid, t))
        return "\n".join(parts)


# -- the client processes -----------------------------------------------------

def _targets(spec):
    out = []
    for t in spec.split(","):
        host, _, port = t.rpartition(":")
        out.append((host, int(port)))
    return out


class Client:
    """What publishers and consumers share: the reconnect loop over the
    targets, one pika SelectConnection per session, and stopping on
    SIGTERM."""

    def __init__(self, a):
        import pika
        self.pika = pika
        self.a = a
        self.log = Log(a.out, a.id)
        self.targets = _targets(a.targets)
        self.stop_requested = False
        self.stop_t = None
        self.conn_no = 0
        self.conn = None
        self.node = None
        self.deadline = time.monotonic() + a.max_seconds
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)

    def _on_term(self, *_):
        if not self.stop_requested:
            self.stop_requested = True
            self.stop_t = time.monotonic()

    def params(self, host, port):
        p = self.pika
        return p.ConnectionParameters(
            host=host, port=port, virtual_host=self.a.vhost,
            credentials=p.PlainCredentials("guest", "guest"),
            heartbeat=self.a.heartbeat, connection_attempts=1, retry_delay=0,
            socket_timeout=2, stack_timeout=5, blocked_connection_timeout=30)

    def run(self):
        i = self.a.start
        for _ in range(1000000):
            if self.stop_requested or time.monotonic() > self.deadline:
                break
            host, port = self.targets[i % len(self.targets)]
            i += 1
            self.session(host, port)
            if self.stop_requested:
                break
            self._sleep(random.uniform(0.1, 0.3))
        self.log("exit")
        return 0

    def _sleep(self, s):
        end = time.monotonic() + s
        while not self.stop_requested and time.monotonic() < end:
            time.sleep(0.02)

    def session(self, host, port):
        self.conn_no += 1
        self.node = "%s:%d" % (host, port)
        self.opened = False
        self.closing = False
        self.reset_session()
        conn = self.pika.SelectConnection(
            self.params(host, port), on_open_callback=self.on_open,
            on_open_error_callback=self.on_open_error,
            on_close_callback=self.on_closed)
        self.conn = conn
        conn.ioloop.call_later(0.02, self._tick)
        try:
            conn.ioloop.start()
        finally:
            self.end_session("session over")
            try:
                conn.ioloop.close()
            except Exception:
                pass
            self.conn = None

    def _tick(self):
        if self.conn is None:
            return
        if time.monotonic() > self.deadline:
            self._on_term()   # --max-seconds: this client ends on its own
        try:
            self.tick()
        finally:
            if self.conn is not None and not self.conn.is_closed:
                self.conn.ioloop.call_later(0.02, self._tick)

    def on_open(self, conn):
        self.opened = True
        self.log("connect", node=self.node, conn=self.conn_no)
        conn.channel(on_open_callback=self.on_channel)

    def on_open_error(self, conn, err):
        self.log("connect_failed", node=self.node, conn=self.conn_no,
                 error=repr(err)[:200])
        conn.ioloop.stop()

    def on_closed(self, conn, reason):
        code = getattr(reason, "reply_code", None)
        text = getattr(reason, "reply_text", None)
        self.log("disconnect", node=self.node, conn=self.conn_no, code=code,
                 text=(text if text is not None else repr(reason))[:200])
        conn.ioloop.stop()

    def on_channel(self, ch):
        self.ch = ch
        ch.add_on_close_callback(self.on_channel_closed)
        self.channel_ready(ch)

    def on_channel_closed(self, ch, reason):
        self.log("channel_closed", node=self.node, conn=self.conn_no,
                 code=getattr(reason, "reply_code", None),
                 text=str(getattr(reason, "reply_text", reason))[:200])
        self.close("channel closed")

    def declare_all(self, ch, then):
        qs = list(self.a.queues.split(","))

        def next_(_=None):
            if not qs:
                then()
                return
            ch.queue_declare(qs.pop(0), durable=True, callback=next_)
        next_()

    def close(self, why):
        """Graceful close, bounded: aborts the socket after 2 s."""
        if self.closing or self.conn is None:
            return
        self.closing = True
        conn = self.conn
        try:
            if conn.is_open:
                conn.close()
        except Exception:
            pass
        conn.ioloop.call_later(2.0, lambda: self.abort(why + ", close hung"))

    def abort(self, why):
        """Drops the connection at once (no AMQP close)."""
        conn = self.conn
        if conn is None or conn.is_closed:
            return
        self.log("abandon", node=self.node, conn=self.conn_no, why=why)
        try:
            conn._terminate_stream(
                self.pika.exceptions.StreamLostError(why))
        except Exception:
            pass
        conn.ioloop.call_later(1.0, conn.ioloop.stop)

    # hooks
    def reset_session(self):
        pass

    def end_session(self, why):
        pass

    def channel_ready(self, ch):
        pass

    def tick(self):
        if self.stop_requested:
            self.close("stopping")


class Publisher(Client):
    def __init__(self, a):
        super().__init__(a)
        self.seq = 0
        self.pad = b"." * max(0, a.size)
        self.queues = a.queues.split(",")

    def reset_session(self):
        self.ready = False
        self.next_tag = 1
        self.outstanding = collections.OrderedDict()  # tag -> (id, t)
        self.timed_out = {}  # tag -> (id, t): unknown, a confirm may come
        self.credit = 0.0
        self.credit_t = time.monotonic()

    def end_session(self, why):
        for tag, (mid, _) in self.outstanding.items():
            self.log("unknown", id=mid, why=why)
        self.outstanding.clear()
        self.timed_out.clear()
        self.ready = False

    def on_closed(self, conn, reason):
        self.end_session("connection closed: %r" % (reason,))
        super().on_closed(conn, reason)

    def channel_ready(self, ch):
        ch.add_on_return_callback(self.on_return)
        ch.confirm_delivery(ack_nack_callback=self.on_confirm,
                            callback=lambda _: self.declare_all(
                                ch, self.on_ready))

    def on_ready(self):
        self.ready = True
        self.credit_t = time.monotonic()

    def on_return(self, ch, method, props, body):
        self.log("returned", id=props.message_id, code=method.reply_code)

    def on_confirm(self, frame):
        m = frame.method
        kind = "confirm" if m.NAME == "Basic.Ack" else "nack"
        if m.multiple:
            tags = [t for t in list(self.outstanding) if t <= m.delivery_tag]
            tags += [t for t in list(self.timed_out) if t <= m.delivery_tag]
        else:
            tags = [m.delivery_tag]
        for tag in tags:
            if tag in self.outstanding:
                mid, _ = self.outstanding.pop(tag)
                self.log(kind, id=mid, conn=self.conn_no)
            elif tag in self.timed_out:
                mid, _ = self.timed_out.pop(tag)
                self.log(kind, id=mid, conn=self.conn_no, late=True)

    def tick(self):
        now = time.monotonic()
        to = self.a.confirm_timeout
        # Unconfirmed for longer than the confirm timeout: unknown.
        while self.outstanding:
            tag, (mid, t) = next(iter(self.outstanding.items()))
            if now - t < to:
                break
            self.outstanding.popitem(last=False)
            self.timed_out[tag] = (mid, t)
            self.log("unknown", id=mid, why="no confirm within %.1fs" % to)
        if self.timed_out and not self.closing:
            oldest = min(t for _, t in self.timed_out.values())
            if now - oldest >= self.a.abandon_after:
                self.abort("no confirm within %.1fs" % self.a.abandon_after)
                return
        if self.stop_requested:
            if not self.closing and (not self.outstanding or
                                     now - self.stop_t >= to):
                self.end_session("stopping")
                self.close("stopping")
            return
        if self.ready and not self.closing:
            self.publish_some(now)

    def publish_some(self, now):
        rate = self.a.rate
        self.credit = min(self.credit + (now - self.credit_t) * rate,
                          max(1.0, rate * 0.1))
        self.credit_t = now
        props = self.pika.BasicProperties
        while self.credit >= 1 and \
                len(self.outstanding) + len(self.timed_out) < self.a.window:
            self.credit -= 1
            self.seq += 1
            mid = "%s-%d" % (self.a.id, self.seq)
            q = random.choice(self.queues)
            self.log("publish", id=mid, q=q, node=self.node,
                     conn=self.conn_no)
            self.outstanding[self.next_tag] = (mid, time.monotonic())
            self.next_tag += 1
            try:
                self.ch.basic_publish(
                    "", q, mid.encode() + b" " + self.pad,
                    properties=props(delivery_mode=2, message_id=mid),
                    mandatory=True)
            except Exception as e:
                self.close("publish failed: %r" % e)
                return


class Consumer(Client):
    def channel_ready(self, ch):
        ch.basic_qos(prefetch_count=self.a.prefetch,
                     callback=lambda _: self.declare_all(ch, self.consume))

    def consume(self):
        for q in self.a.queues.split(","):
            self.ch.basic_consume(q, self.on_message, auto_ack=False)

    def on_message(self, ch, method, props, body):
        mid = props.message_id or body.split(b" ", 1)[0].decode("utf-8",
                                                                "replace")
        self.log("deliver", id=mid, q=method.routing_key, node=self.node,
                 conn=self.conn_no, redelivered=bool(method.redelivered))
        if self.closing:
            return
        try:
            ch.basic_ack(method.delivery_tag)
        except Exception:
            return
        self.log("ack", id=mid, conn=self.conn_no)


def drain(a):
    """Reads every queue to empty through the targets (reconnecting on
    failure); returns 0 once every queue was empty in two passes 0.5 s
    apart, 1 when that did not happen within --max-seconds-drain."""
    import pika
    log = Log(a.out, a.id)
    targets = _targets(a.targets)
    queues = a.queues.split(",")
    limit = a.max_seconds_drain
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(1))
    signal.alarm(int(limit) + 1)
    deadline = time.monotonic() + limit
    i = a.start
    for attempt in range(1000):
        if time.monotonic() > deadline:
            break
        host, port = targets[i % len(targets)]
        i += 1
        node = "%s:%d" % (host, port)
        try:
            conn = pika.BlockingConnection(pika.ConnectionParameters(
                host=host, port=port, virtual_host=a.vhost,
                credentials=pika.PlainCredentials("guest", "guest"),
                heartbeat=0, connection_attempts=1, socket_timeout=3,
                stack_timeout=5))
        except Exception as e:
            log("connect_failed", node=node, error=repr(e)[:200])
            time.sleep(0.5)
            continue
        log("connect", node=node, conn=attempt + 1)
        try:
            ch = conn.channel()
            empty_passes = 0
            for _ in range(10000):
                got = 0
                for q in queues:
                    ch.queue_declare(q, durable=True)
                    for _ in range(10000000):
                        m, props, body = ch.basic_get(q, auto_ack=False)
                        if m is None:
                            break
                        mid = props.message_id or body.split(b" ", 1)[
                            0].decode("utf-8", "replace")
                        log("deliver", id=mid, q=q, node=node,
                            conn=attempt + 1, redelivered=m.redelivered,
                            drain=True)
                        ch.basic_ack(m.delivery_tag)
                        log("ack", id=mid, conn=attempt + 1, drain=True)
                        got += 1
                empty_passes = empty_passes + 1 if got == 0 else 0
                if empty_passes >= 2:
                    for q in queues:
                        n = ch.queue_declare(q, durable=True, passive=True)
                        log("drained", q=q, node=node,
                            messages=n.method.message_count)
                    conn.close()
                    log("exit", ok=True)
                    return 0
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        except Exception as e:
            log("disconnect", node=node, conn=attempt + 1, code=getattr(
                e, "reply_code", None), text=repr(e)[:200])
            try:
                conn.close()
            except Exception:
                pass
            time.sleep(0.5)
    log("exit", ok=False)
    return 1


def client_main(argv):
    ap = argparse.ArgumentParser(prog="jepsen.py " + argv[0])
    ap.add_argument("--id", required=True)
    ap.add_argument("--targets", required=True, help="HOST:PORT,...")
    ap.add_argument("--queues", default="q0,q1,q2")
    ap.add_argument("--vhost", default="/")
    ap.add_argument("--out", required=True)
    ap.add_argument("--start", type=int, default=0,
                    help="index of the first target")
    ap.add_argument("--max-seconds", type=float, default=3600)
    ap.add_argument("--heartbeat", type=int, default=5)
    ap.add_argument("--rate", type=float, default=150)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--confirm-timeout", type=float, default=CONFIRM_TIMEOUT)
    ap.add_argument("--abandon-after", type=float, default=None,
                    help="drop a connection whose oldest unconfirmed "
                    "message is this old (default: the confirm timeout)")
    ap.add_argument("--prefetch", type=int, default=50)
    ap.add_argument("--max-seconds-drain", type=float, default=60)
    a = ap.parse_args(argv[1:])
    if a.abandon_after is None:
        a.abandon_after = a.confirm_timeout
    role = argv[0]
    if role == "publish":
        return Publisher(a).run()
    if role == "consume":
        return Consumer(a).run()
    return drain(a)


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("publish", "consume", "drain"):
        return client_main(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", choices=["check"])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = check(load(a.files))
    print(json.dumps(res, indent=1) if a.json else summary(res))
    return 0 if res["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
