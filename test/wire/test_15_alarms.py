"""Resource alarms (Warren only): memory high watermark and disk free
limit block publishing connections with connection.blocked and release
them with connection.unblocked; consumers keep draining; many fast
publishers cannot push resident memory past the watermark plus a fixed
overhead.
"""

import os
import threading
import time

import pytest

import rawamqp
from wireutil import confirm_select, get_bodies, publish_sync

pytestmark = pytest.mark.warren_only

SANITIZED = os.environ.get("WARREN_SANITIZED") == "1"
MB = 1024 * 1024
LONG = 60  # seconds: deadlines that bound a failure, never a speed
STALL = 10  # seconds without a send getting through: publishers blocked


def channel(b):
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    return c


def read_until(c, name, timeout=LONG):
    deadline = time.monotonic() + timeout
    while True:
        m = c.read_method(timeout=max(0.05, deadline - time.monotonic()))
        if m.name == name:
            return m


def test_disk_alarm_blocks_then_unblocks(make_broker, tmp_path):
    st = os.statvfs(str(tmp_path))
    free = st.f_bavail * st.f_frsize
    # Trip the alarm by taking 300 MB, release it by giving them back.
    limit = free - 150 * MB
    b = make_broker(extra_conf={"disk_free_limit.absolute": str(limit)})
    cons = channel(b)
    cons.call(1, "queue.declare", queue="da")
    pub = channel(b)
    confirm_select(pub, 1)
    publish_sync(pub, 1, "", "da", b"before")
    assert get_bodies(cons, 1, "da") == [b"before"]
    filler = tmp_path / "filler"
    with open(filler, "wb") as f:
        for _ in range(300):
            f.write(b"\0" * MB)
        f.flush()
        os.fsync(f.fileno())
    try:
        pub.publish(1, "", "da", b"during")  # it trips a blocked publisher
        m = read_until(pub, "connection.blocked")
        assert m.reason == "low on disk"
        pub.publish(1, "", "da", b"held")
        time.sleep(0.5)
        # Consumers keep working; the held message has not been read.
        got = get_bodies(cons, 1, "da")
        assert b"held" not in got
    finally:
        os.unlink(filler)
    read_until(pub, "connection.unblocked")
    deadline = time.monotonic() + LONG
    seen = list(got)
    while b"held" not in seen and time.monotonic() < deadline:
        seen += get_bodies(cons, 1, "da")
        time.sleep(0.05)
    assert b"held" in seen
    assert b.wait_for_line("disk alarm set")
    assert b.wait_for_line("disk alarm cleared")


def test_memory_alarm_blocks_publishers(make_broker):
    # A watermark the broker is always above.
    b = make_broker(extra_conf={
        "vm_memory_high_watermark.absolute": "1MiB"})
    cons = channel(b)
    cons.call(1, "queue.declare", queue="ma")
    pub = channel(b)
    pub.publish(1, "", "ma", b"first")
    m = read_until(pub, "connection.blocked")
    assert m.reason == "low on memory"
    assert get_bodies(cons, 1, "ma") == [b"first"]
    assert b.wait_for_line("memory alarm set")


def test_watermark_zero_blocks_every_publisher(make_broker):
    # conf/warren.conf: "0 blocks all publishing" (RabbitMQ's meaning).
    b = make_broker(extra_conf={"vm_memory_high_watermark.relative": "0"})
    assert b.wait_for_line("memory alarm set")
    cons = channel(b)
    cons.call(1, "queue.declare", queue="wz")
    for i in range(2):
        pub = channel(b)
        pub.publish(1, "", "wz", b"first")
        m = read_until(pub, "connection.blocked")
        assert m.reason == "low on memory"
        pub.publish(1, "", "wz", b"held")
    time.sleep(0.5)
    # Each got its first message through, none the second; consumers work.
    assert get_bodies(cons, 1, "wz") == [b"first", b"first"]
    time.sleep(1.5)
    assert get_bodies(cons, 1, "wz") == []


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def test_fast_publishers_stay_under_the_watermark(make_broker):
    """Eight publishers (four persistent, four transient) send as fast as
    they can until they have sent twice the watermark, or until the
    broker has stopped reading them all (an alarm or flow control: no
    send got through for STALL seconds); resident memory stays under the
    watermark plus a fixed overhead all along. How fast they send is the
    machine's business: the deadline only bounds a failure (issue 10,
    item 15: the test required 256 MiB in 6 s)."""
    watermark = 128 * MB
    b = make_broker(extra_conf={
        "vm_memory_high_watermark.absolute": str(watermark)})
    setup = channel(b)
    setup.call(1, "queue.declare", queue="flood")
    setup.call(1, "queue.declare", queue="dflood", durable=True)
    stop = threading.Event()
    sent = [0]
    progress = [time.monotonic()]  # when a send last got through

    def flood(queue, props):
        body = os.urandom(64 * 1024)
        try:
            c = channel(b)
            frames = b"".join(c.publish_frames(1, "", queue, body,
                                               props=props)
                              for _ in range(16))
            while not stop.is_set():
                c.send(frames)  # blocks once the broker stops reading
                sent[0] += 16
                progress[0] = time.monotonic()
        except (OSError, rawamqp.Closed, rawamqp.Timeout):
            pass

    threads = [threading.Thread(target=flood, args=args, daemon=True)
               for args in [("flood", None)] * 4 +
               [("dflood", {"delivery_mode": 2})] * 4]
    for t in threads:
        t.start()
    peak = 0
    deadline = time.monotonic() + 180
    while sent[0] * 64 * 1024 < 2 * watermark and \
            time.monotonic() - progress[0] < STALL:
        assert time.monotonic() < deadline, \
            "publishers neither sent %d MiB nor were blocked in 180 s " \
            "(sent %d MiB)" % (2 * watermark // MB, sent[0] // 16)
        peak = max(peak, rss(b.pid))
        time.sleep(0.05)
    stop.set()
    peak = max(peak, rss(b.pid))
    if not SANITIZED:
        assert peak < watermark + 96 * MB, (peak, sent[0])
    # The publishers' connections may be blocked: the broker still serves
    # others.
    c = channel(b)
    m = c.call(1, "queue.declare", queue="flood", passive=True)
    assert m.message_count > 0


def test_node_connection_limit(make_broker):
    b = make_broker(extra_conf={"connection_max": 2})
    held = [rawamqp.connect("127.0.0.1", b.port) for _ in range(2)]
    c = rawamqp.Connection("127.0.0.1", b.port, 5.0)
    with pytest.raises((rawamqp.Closed, OSError)):
        c.begin()
        c.login()
    assert b.wait_for_line(r"connection_max \(2\) reached")
    held[0].close()
    # A slot is free once the broker has seen that close: retry until then.
    deadline = time.monotonic() + LONG
    while True:
        try:
            rawamqp.connect("127.0.0.1", b.port).close()
            break
        except (rawamqp.Closed, OSError):
            assert time.monotonic() < deadline, "the freed slot never came"
            time.sleep(0.05)


@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer's shadow memory and "
                    "quarantine make resident memory say nothing of the "
                    "broker's own use")
def test_memory_overshoot_stays_under_ten_percent(make_broker):
    """Eight publishers flood 64 KiB messages (half persistent) with no
    consumer: the memory alarm trips on the allocation path, so resident
    memory never goes more than 10% past the watermark (it went 50-63%
    past when the alarm was only checked on a timer). The publishers send
    until they are blocked; no speed is assumed."""
    watermark = 160 * MB
    b = make_broker(extra_conf={
        "vm_memory_high_watermark.absolute": str(watermark)})
    setup = channel(b)
    setup.call(1, "queue.declare", queue="flood")
    setup.call(1, "queue.declare", queue="dflood", durable=True)
    stop = threading.Event()

    def flood(queue, props):
        body = os.urandom(64 * 1024)
        try:
            c = channel(b)
            frames = b"".join(c.publish_frames(1, "", queue, body,
                                               props=props)
                              for _ in range(16))
            while not stop.is_set():
                c.send(frames)  # blocks once the broker stops reading
        except (OSError, rawamqp.Closed, rawamqp.Timeout):
            pass

    threads = [threading.Thread(target=flood, args=args, daemon=True)
               for args in [("flood", None)] * 4 +
               [("dflood", {"delivery_mode": 2})] * 4]
    for t in threads:
        t.start()
    peak, tripped_at = 0, None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            peak = max(peak, rss(b.pid))
            if tripped_at is None and any("memory alarm set" in line
                                          for line in b.stderr_lines()):
                tripped_at = time.monotonic()
            if tripped_at and time.monotonic() - tripped_at > 3:
                break
            time.sleep(0.01)
    finally:
        stop.set()
    print("peak resident %.1f MiB against a watermark of %.0f MiB"
          % (peak / MB, watermark / MB))
    assert tripped_at, "the publishers never reached the watermark"
    assert peak < watermark * 1.10, (peak / MB, watermark / MB)
