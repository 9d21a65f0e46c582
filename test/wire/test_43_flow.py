"""Credit flow (issue 13, Warren only): a publisher faster than the
consumers it feeds is read no more while its queue holds more than its
credit of ready messages in memory (vhost/queue.h: 8 MiB, released under
4 MiB), so the broker's memory follows the credit, not the flood; it is
read again as the queue drains, and nothing is lost. A queue that is not
draining (no consumer, or consumers that take nothing) never holds its
publishers: it takes the backlog, as RabbitMQ's queues do.

What RabbitMQ 3.10 does: its credit flow (credit_flow.erl, 400 messages
of credit per link, 200 more per 200 handled) blocks the reader of a
publishing connection, without connection.blocked (that is for alarms),
and management shows the connection as "flow"; a queue with no consumers
accepts messages until the memory alarm blocks publishers. Warren gives
the credit in bytes of the queue's in-memory backlog instead of messages
in a process's mailbox.

The tests bound memory and count messages, never speed: deadlines only
bound a failure.
"""

import base64
import json
import os
import shutil
import ssl
import struct
import subprocess
import threading
import time
import urllib.request

import pytest

import rawamqp

pytestmark = pytest.mark.warren_only

SANITIZED = os.environ.get("WARREN_SANITIZED") == "1"
MB = 1024 * 1024
KB64 = 64 * 1024
LONG = 90  # seconds: deadlines that bound a failure, never a speed
CREDIT = 8 * MB  # a queue's credit (QUEUE_CREDIT_HIGH)
# What memory may grow by while a publisher floods a queue that drains
# slowly: the credit, the consumer's output (1 MiB) and prefetch window,
# the publisher's input left in its buffer, the allocator's slack.
GROWTH = 32 * MB

needs_rss = pytest.mark.skipif(
    SANITIZED, reason="AddressSanitizer's shadow memory and quarantine "
    "make resident memory say nothing of the broker's own use")


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def body(seq, size=KB64):
    """A body that carries its sequence number."""
    return struct.pack(">I", seq) + bytes([seq % 251]) * (size - 4)


def seq_of(b):
    return struct.unpack(">I", b[:4])[0]


class FrameReader:
    """Frames from a socket that another thread writes to: the timeout is
    set once (rawamqp changes it on every read, which would cut the other
    thread's sendall short)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def method(self):
        while True:
            if len(self.buf) >= 7:
                ftype, ch, size = struct.unpack(">BHI", self.buf[:7])
                if len(self.buf) >= 8 + size:
                    payload = bytes(self.buf[7:7 + size])
                    del self.buf[:8 + size]
                    if ftype == rawamqp.FRAME_METHOD:
                        return rawamqp.decode_method(ch, payload)
                    continue
            data = self.sock.recv(1 << 16)
            if not data:
                raise rawamqp.Closed("connection closed by server")
            self.buf += data


class Publisher:
    """A raw publisher on a confirm channel that sends `count` 64 KiB
    messages to `queue` as fast as the broker reads them, from a thread,
    while the caller follows the confirms (acked)."""

    def __init__(self, b, queue, count, batch=16, heartbeat=0):
        self.c = rawamqp.connect("127.0.0.1", b.port, heartbeat=heartbeat)
        self.c.open_channel(1)
        self.c.call(1, "confirm.select")
        self.c.sock.settimeout(LONG)
        self.queue, self.count, self.batch = queue, count, batch
        self.sent = 0
        self.acked = 0
        self.error = None
        self.reader = FrameReader(self.c.sock)
        self.thread = threading.Thread(target=self._send, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _send(self):
        try:
            for i in range(0, self.count, self.batch):
                n = min(self.batch, self.count - i)
                frames = b"".join(
                    self.c.publish_frames(1, "", self.queue, body(i + k))
                    for k in range(n))
                self.c.sock.sendall(frames)  # waits while not read
                self.sent = i + n
        except OSError as e:
            self.error = e

    def follow_confirms(self, until, on_ack=None):
        """Reads basic.acks until `until` messages are confirmed."""
        while self.acked < until:
            m = self.reader.method()
            assert m.name == "basic.ack", m
            self.acked = m.delivery_tag if m.multiple else self.acked + 1
            if on_ack:
                on_ack(self)

    def close(self):
        self.thread.join(LONG)
        assert self.error is None, self.error
        self.c.close_socket()


class Consumer:
    """A consumer (manual acks, prefetch 20) in a thread that sleeps
    `pause` seconds per delivery while `slow` is set, and checks that
    every message arrives once, in order."""

    def __init__(self, conn, queue, pause=0.002, slow_for=None):
        self.c = conn
        self.c.open_channel(1)
        self.c.call(1, "basic.qos", prefetch_count=20)
        self.c.call(1, "basic.consume", queue=queue)
        self.pause = pause
        self.slow_for = slow_for  # deliveries taken slowly; None: all
        self.slow = threading.Event()
        self.slow.set()
        self.got = 0
        self.error = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        try:
            while not self.stop.is_set():
                try:
                    m = self.c.read_method(timeout=2.0)
                except rawamqp.Timeout:
                    continue
                assert m.name == "basic.deliver", m
                assert seq_of(m.content.body) == self.got, \
                    (seq_of(m.content.body), self.got)
                assert len(m.content.body) == KB64
                self.got += 1
                if self.got == self.slow_for:
                    self.slow.clear()
                if self.slow.is_set():
                    time.sleep(self.pause)
                self.c.send_method(1, "basic.ack",
                                   delivery_tag=m.delivery_tag)
        except BaseException as e:  # reported by wait_for
            self.error = e

    def wait_for(self, n):
        deadline = time.monotonic() + LONG
        while self.got < n and self.error is None:
            assert time.monotonic() < deadline, \
                "consumer got %d of %d" % (self.got, n)
            time.sleep(0.02)
        assert self.error is None, self.error
        self.stop.set()
        self.thread.join(LONG)


class StateWatch:
    """Collects the connection states /api/connections shows, every
    50 ms, until stopped."""

    def __init__(self, b):
        line = b.wait_for_line(r"listening on \S+:\d+ \(http\)")
        assert line, b.stderr_text()
        self.url = "http://127.0.0.1:%s/api/connections" % \
            line.rsplit(":", 1)[1].split()[0]
        self.seen = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        auth = "Basic " + base64.b64encode(b"guest:guest").decode()
        while not self.done.wait(0.05):
            req = urllib.request.Request(self.url,
                                         headers={"Authorization": auth})
            with urllib.request.urlopen(req, timeout=LONG) as r:
                self.seen.update(c["state"] for c in json.load(r))

    def stop(self):
        self.done.set()
        self.thread.join(LONG)
        return self.seen


def setup_queue(b, name):
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    c.call(1, "queue.declare", queue=name)
    return c


def flood_slow_consumer(b, consumer_conn, queue, count):
    """A publisher floods `queue` with `count` 64 KiB messages while a
    consumer takes them at its slow pace; returns how much the broker's
    peak resident memory grew over what it was before."""
    setup = setup_queue(b, queue)
    before = status_kb(b.pid, "VmRSS")
    cons = Consumer(consumer_conn, queue).start()
    pub = Publisher(b, queue, count).start()
    pub.follow_confirms(count)
    cons.wait_for(count)
    pub.close()
    setup.close()
    return status_kb(b.pid, "VmHWM") - before


@needs_rss
def test_flood_into_a_slow_consumer_keeps_memory_to_the_credit(make_broker):
    """128 MiB published as fast as the broker reads into a queue whose
    consumer takes a message every 2 ms: without credit flow the queue
    would hold most of them at once."""
    b = make_broker()
    count = 2048
    grew = flood_slow_consumer(b, rawamqp.connect("127.0.0.1", b.port),
                               "flood-slow", count)
    assert grew < GROWTH, "resident memory grew by %.1f MiB" % (grew / MB)


def test_a_held_publisher_resumes_and_nothing_is_lost(make_broker):
    """While the consumer is slow, the broker confirms no more than about
    the credit ahead of it: the rest of what the publisher sent waits
    unread in its socket. Once the consumer speeds up, every message is
    confirmed and delivered once, in order."""
    b = make_broker()
    count = 2000
    setup = setup_queue(b, "held")
    cons = Consumer(rawamqp.connect("127.0.0.1", b.port), "held",
                    pause=0.005).start()
    pub = Publisher(b, "held", count).start()
    ahead = []  # (confirmed - consumed) while the consumer is slow

    def note(p):
        if cons.slow.is_set():
            ahead.append(p.acked - cons.got)

    states = StateWatch(b).start()
    # Slow for the first half: without credit flow the broker would have
    # read and confirmed nearly everything by then.
    pub.follow_confirms(count // 2, note)
    seen = states.stop()
    cons.slow.clear()
    pub.follow_confirms(count)
    cons.wait_for(count)
    pub.close()
    # Ahead of the consumer: the queue's credit and the message that
    # crossed it, the consumer's prefetch window (20), slack.
    limit = 2 * CREDIT // KB64
    assert max(ahead) < limit, (max(ahead), limit)
    m = setup.call(1, "queue.declare", queue="held", passive=True)
    assert m.message_count == 0
    setup.close()
    # Management names a held publisher's state as RabbitMQ does.
    assert "flow" in seen, seen


def test_a_held_publisher_keeps_its_heartbeat(make_broker):
    """A publisher with a 1 s heartbeat held for about 3 s (the consumer
    takes the 64 messages between the credit's marks 50 ms apart): its
    heartbeats wait unread in its socket like its publishes, and the
    broker does not count them as missed, as RabbitMQ pauses the
    heartbeat monitor of a blocked reader."""
    b = make_broker()
    count = 200
    setup = setup_queue(b, "beat")
    cons = Consumer(rawamqp.connect("127.0.0.1", b.port), "beat",
                    pause=0.05, slow_for=80).start()
    pub = Publisher(b, "beat", count, heartbeat=1).start()
    pub.follow_confirms(count)
    pub.close()  # before it is silent for 2 s: it sends no heartbeats
    cons.wait_for(count)
    setup.close()
    assert "missed heartbeats" not in b.stderr_text()


def test_a_queue_without_consumers_takes_the_flood(make_broker):
    """No consumer: nothing drains the queue, so nothing holds its
    publisher; 64 MiB (eight times the credit) are all confirmed."""
    b = make_broker()
    count = 1024
    setup = setup_queue(b, "nobody")
    pub = Publisher(b, "nobody", count).start()
    pub.follow_confirms(count)
    pub.close()
    m = setup.call(1, "queue.declare", queue="nobody", passive=True)
    assert m.message_count == count
    setup.close()


def test_a_stuck_consumer_does_not_hold_publishers_for_good(make_broker):
    """A consumer that takes its prefetch and acks nothing drains nothing:
    once the queue has delivered nothing for a second its publisher is
    read again, and the backlog builds up as in RabbitMQ."""
    b = make_broker()
    count = 1024
    setup = setup_queue(b, "stuck")
    stuck = rawamqp.connect("127.0.0.1", b.port)
    stuck.open_channel(1)
    stuck.call(1, "basic.qos", prefetch_count=1)
    stuck.call(1, "basic.consume", queue="stuck")
    pub = Publisher(b, "stuck", count).start()
    pub.follow_confirms(count)
    pub.close()
    m = setup.call(1, "queue.declare", queue="stuck", passive=True)
    assert m.message_count == count - 1
    assert m.consumer_count == 1
    stuck.close_socket()
    setup.close()


def sysctl_max(name):
    with open("/proc/sys/net/ipv4/" + name) as f:
        return int(f.read().split()[-1])


def test_a_consumer_that_does_not_read_gets_what_its_socket_holds(
        make_broker):
    """A consumer that never reads its socket gets deliveries until its
    output queue holds 1 MiB (CONN_OUT_HIGH) and the kernel's buffers are
    full, no more: the rest stays in the queue, and the publisher, held
    no more once the queue has stalled for a second, is confirmed."""
    b = make_broker()
    count = 2000
    setup = setup_queue(b, "deaf")
    deaf = rawamqp.connect("127.0.0.1", b.port)
    deaf.open_channel(1)
    deaf.call(1, "basic.consume", queue="deaf", no_ack=True)
    pub = Publisher(b, "deaf", count).start()
    pub.follow_confirms(count)
    pub.close()
    m = setup.call(1, "queue.declare", queue="deaf", passive=True)
    # what left the queue: the output queue, both ends' socket buffers
    room = MB + sysctl_max("tcp_wmem") + sysctl_max("tcp_rmem")
    assert count - m.message_count <= room // KB64 + 16, \
        (m.message_count, room // KB64)
    deaf.close_socket()
    setup.close()


def test_publisher_and_consumer_on_one_connection(make_broker):
    """A connection that consumes from the queue it publishes to is never
    held for it (its own acks, unread, would be what stops the queue):
    64 MiB go through one connection that acks as it goes."""
    b = make_broker()
    count = 1024
    setup = setup_queue(b, "loop")
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    c.open_channel(2)
    c.call(1, "basic.qos", prefetch_count=50)
    c.call(1, "basic.consume", queue="loop")
    c.sock.settimeout(LONG)
    lock = threading.Lock()  # one thread's frames at a time
    errors = []

    def publish():
        try:
            for i in range(count):
                f = c.publish_frames(2, "", "loop", body(i))
                with lock:
                    c.sock.sendall(f)
        except OSError as e:
            errors.append(e)

    sender = threading.Thread(target=publish, daemon=True)
    sender.start()
    reader = FrameReader(c.sock)
    for got in range(count):
        m = reader.method()
        assert m.name == "basic.deliver", m
        if got % 10 == 9:
            with lock:
                c.sock.sendall(rawamqp.method_frame(
                    1, "basic.ack", delivery_tag=m.delivery_tag,
                    multiple=True))
    sender.join(LONG)
    assert not errors, errors
    m = setup.call(1, "queue.declare", queue="loop", passive=True)
    assert m.message_count == 0
    c.close_socket()
    setup.close()


# ---- a slow TLS consumer ----------------------------------------------------

def make_pki(d):
    """A CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "30", "-subj", "/CN=Flow Test CA")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-set_serial", "4242", "-days", "30", "-out",
            "server.pem", "-extfile", "server.ext")


@needs_rss
@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")
def test_a_slow_tls_consumer_keeps_memory_to_the_credit(make_broker,
                                                         tmp_path):
    """The same flood, drained by a consumer over TLS: the broker's
    encryption and the consumer's pace both slow the queue down, and
    memory still follows the credit."""
    d = str(tmp_path / "pki")
    os.makedirs(d)
    make_pki(d)
    b = make_broker(extra_conf={
        "listeners.ssl.default": "127.0.0.1:0",
        "ssl_options.certfile": os.path.join(d, "server.pem"),
        "ssl_options.keyfile": os.path.join(d, "server.key"),
        "ssl_options.cacertfile": os.path.join(d, "ca.pem")})
    line = b.wait_for_line(r"listening on \S+:\d+ \(amqps\)")
    assert line, b.stderr_text()
    port = int(line.rsplit(":", 1)[1].split()[0])
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    tc = rawamqp.Connection("127.0.0.1", port)
    tc.sock = ctx.wrap_socket(tc.sock, server_hostname="localhost")
    tc.handshake()
    grew = flood_slow_consumer(b, tc, "flood-tls", 2048)
    assert grew < GROWTH, "resident memory grew by %.1f MiB" % (grew / MB)
