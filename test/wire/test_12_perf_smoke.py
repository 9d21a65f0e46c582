"""Smoke test of the bundled load generator, warren-perf (Warren only).

Runs warren-perf for about two seconds against a private Warren in three
configurations and checks its JSON summary: every message published was
delivered exactly once, uncorrupted, in order per (producer, queue)
stream, and the rates are not zero. This checks correctness, never speed:
speed targets live in test/bench/compare.py and BENCHMARKS.md.

  1. transient messages, auto-ack, direct exchange;
  2. persistent 1 KiB messages to a durable queue with publisher confirms
     (window 100) and manual acks every 10 (prefetch 50), fsync = always;
  3. fanout to three queues, one consumer each, two producers.

The publish rate is capped so that the test stays light under the
sanitizers; the broker is still exercised with pipelined publishes,
batched acks and interleaved deliveries.

The binary comes from $WARREN_PERF_BIN (default
<repo>/build/test/warren-perf, where the build puts it).
"""

import json
import os
import socket
import subprocess
import threading

import pytest

from conftest import REPO

pytestmark = pytest.mark.warren_only

DURATION = 2
TIMEOUT = 120


def perf_bin():
    path = os.environ.get("WARREN_PERF_BIN") or os.path.join(
        REPO, "build", "test", "warren-perf")
    if not os.access(path, os.X_OK):
        pytest.fail("warren-perf not found at %s (set WARREN_PERF_BIN)"
                    % path)
    return path


def run_perf(broker, tmp_path, name, args):
    """Runs warren-perf throughput with args; returns (summary, output)."""
    out = tmp_path / ("%s.json" % name)
    cmd = [perf_bin(), "throughput", "--host", broker.host, "--port",
           str(broker.port), "-z", str(DURATION), "--json", str(out),
           "--queue-prefix", "smoke-" + name, "--broker-pid",
           str(broker.pid), "--drain-timeout", "20"] + args
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=TIMEOUT)
    assert out.exists(), "no JSON summary; exit %d:\n%s" % (r.returncode,
                                                             r.stdout)
    with open(out) as f:
        summary = json.load(f)
    assert r.returncode == 0, "warren-perf exited %d:\n%s" % (r.returncode,
                                                              r.stdout)
    return summary, r.stdout


def assert_clean(s, output, deliveries_per_publish=1):
    checks = s["checks"]
    context = "\n%s" % output
    assert s["ok"] is True, context
    assert s["errors"] == [], context
    assert checks["lost"] == 0, context
    assert checks["duplicated"] == 0, context
    assert checks["corrupted"] == 0, context
    assert checks["out_of_order"] == 0, context
    assert checks["unexpected"] == 0, context
    assert s["published"] > 0, context
    assert s["publish_rate"] > 0, context
    assert s["consume_rate"] > 0, context
    assert s["expected"] == s["published"] * deliveries_per_publish, context
    assert s["consumed"] == s["expected"], context
    assert s["latency_us"]["count"] == s["consumed"], context
    # The broker's CPU was read from /proc (the pid was given).
    assert s["broker"]["cpu_s"] >= 0, context


def test_transient_auto_ack(make_broker, tmp_path):
    b = make_broker()
    s, out = run_perf(b, tmp_path, "transient",
                      ["-x", "1", "-y", "1", "-q", "1", "-s", "16",
                       "--rate", "50000"])
    assert_clean(s, out)
    assert s["config"]["multi_ack_every"] == 0


def test_persistent_confirms_manual_ack(make_broker, tmp_path):
    b = make_broker(extra_conf={"fsync": "always"})
    s, out = run_perf(b, tmp_path, "durable",
                      ["-s", "1024", "--persistent", "--durable-queues",
                       "--confirm", "100", "--multi-ack-every", "10",
                       "--prefetch", "50", "--rate", "20000"])
    assert_clean(s, out)
    assert s["confirmed"] == s["published"], out
    assert s["nacked"] == 0, out
    assert s["confirm_latency_us"]["count"] == s["published"], out
    assert s["checks"]["redelivered"] == 0, out


def test_fanout(make_broker, tmp_path):
    b = make_broker()
    s, out = run_perf(b, tmp_path, "fanout",
                      ["--exchange-type", "fanout", "-x", "2", "-q", "3",
                       "-y", "3", "-s", "100", "--rate", "10000"])
    assert_clean(s, out, deliveries_per_publish=3)


# ---- the checks themselves: a broker that misbehaves must be caught ------

class MutatingProxy:
    """A TCP proxy in front of the broker that spoils deliveries.

    Every `every`-th basic.deliver (with its content header and body
    frames) going to a client is dropped, sent twice, sent with one body
    byte flipped, or swapped with the delivery after it. `done` counts how
    many times it did so. Only meant for auto-ack consumers (a duplicated
    or dropped delivery tag would confuse acks).
    """

    DELIVER = b"\x00\x3c\x00\x3c"  # class 60, method 60

    def __init__(self, upstream, how, every=100, first=30):
        self.upstream = upstream
        self.how = how
        self.every = every
        self.first = first
        self.done = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.sock.close()
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns += [client, server]
            threading.Thread(target=self._pipe, args=(client, server),
                             daemon=True).start()
            threading.Thread(target=self._down, args=(server, client),
                             daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _spoil(self, unit, n, held, out):
        """Appends what the client gets for delivery number n."""
        hit = n >= self.first and n % self.every == 0
        if held:
            out += unit + held.pop()  # the swap: later one first
            with self.lock:
                self.done += 1
            return
        if not hit:
            out += unit
            return
        if self.how == "reorder":
            held.append(unit)  # counted when the swap happens
            return
        with self.lock:
            self.done += 1
        if self.how == "drop":
            return
        if self.how == "duplicate":
            out += unit + unit
        elif self.how == "corrupt":
            b = bytearray(unit)
            b[-2] ^= 0x01  # last body byte (before frame-end)
            out += bytes(b)

    def _down(self, src, dst):
        buf = b""
        unit = None  # frames of the delivery being collected
        body_left = 0
        n = 0
        held = []
        src.settimeout(0.05)
        try:
            while True:
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    if held:  # nothing followed: give it back as it was
                        dst.sendall(held.pop())
                    continue
                if not data:
                    break
                buf += data
                out = bytearray()
                while len(buf) >= 7:
                    size = int.from_bytes(buf[3:7], "big")
                    if len(buf) < size + 8:
                        break
                    frame, buf = buf[:size + 8], buf[size + 8:]
                    ftype = frame[0]
                    if ftype == 1 and frame[7:11] == self.DELIVER:
                        unit, body_left = frame, None
                        continue
                    if unit is None:
                        out += frame
                        continue
                    unit += frame
                    if ftype == 2:
                        body_left = int.from_bytes(frame[11:19], "big")
                    elif ftype == 3:
                        body_left -= size
                    if body_left == 0:
                        n += 1
                        self._spoil(unit, n, held, out)
                        unit = None
                if out:
                    dst.sendall(bytes(out))
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.mark.parametrize("how,check", [
    ("drop", "lost"),
    ("duplicate", "duplicated"),
    ("corrupt", "corrupted"),
    ("reorder", "out_of_order"),
])
def test_checks_catch_a_bad_broker(make_broker, tmp_path, how, check):
    b = make_broker()
    proxy = MutatingProxy((b.host, b.port), how)
    out = tmp_path / "bad.json"
    try:
        r = subprocess.run(
            [perf_bin(), "throughput", "--host", "127.0.0.1", "--port",
             str(proxy.port), "-z", "0.5", "--rate", "6000", "-s", "64",
             "--drain-timeout", "0.5", "--queue-prefix", "smoke-bad",
             "--json", str(out), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=TIMEOUT)
    finally:
        proxy.close()
    with open(out) as f:
        s = json.load(f)
    checks = s["checks"]
    assert proxy.done > 0
    assert r.returncode == 1, r.stdout
    assert s["ok"] is False
    assert checks[check] == proxy.done, (checks, proxy.done, r.stdout)
    # A corrupted body's sequence number cannot be trusted: its message
    # also counts as lost.
    also = {"corrupted": "lost"}.get(check)
    if also:
        assert checks[also] == proxy.done, (checks, r.stdout)
    for other in ("lost", "duplicated", "corrupted", "out_of_order",
                  "unexpected"):
        if other not in (check, also):
            assert checks[other] == 0, (other, checks, r.stdout)
