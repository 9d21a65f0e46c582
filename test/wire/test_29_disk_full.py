"""A full disk (Warren only; issue 10, items 3 and 4).

The broker's data lives on a small file system made for the test: a tmpfs
mounted here (the test runs as root, as CI does), or, where mounting is
not allowed, the faultio shim's full-disk switch (WARREN_FAULT_NOSPACE:
writes to files fail with ENOSPC and statvfs reports no free block). The
test unmounts what it mounted, whatever happens.

Before: a write that found the disk full failed the log for good; the
publishes in flight were nacked but stayed in their queues (a publisher
that republished made a duplicate), later ones were nacked until a
restart, and a restart failed ("cannot seal ... No space left on
device"). Now: the write waits and is retried; publishes meanwhile are
nacked and go to no queue; the disk alarm holds; space coming back
clears everything without a restart; and the broker starts on a full
disk with the alarm raised, serving consumers.

No assertion depends on the machine's speed: every wait is for a log
line or a reply, with a generous deadline.
"""

import os
import subprocess

import pytest

import rawamqp
from wireutil import confirm_select, get_bodies, publish_sync, queue_count

pytestmark = pytest.mark.warren_only

PERSISTENT = {"delivery_mode": 2}
MB = 1024 * 1024
LONG = 60  # seconds: deadlines, never expected durations
BIG = b"x" * (256 * 1024)  # needs new blocks whatever is left in a page


class SmallDisk:
    """A small file system at .path for a broker's data: fill() leaves it
    no free byte, free() gives the space back."""

    def __init__(self, root):
        self.path = os.path.join(root, "disk")
        os.makedirs(self.path)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%d,mode=0755" % (24 * MB), "tmpfs",
                            self.path], capture_output=True, timeout=30)
        self.mounted = r.returncode == 0
        self.switch = os.path.join(root, "disk-is-full")
        self.filler = os.path.join(self.path, "filler")

    def environ(self, monkeypatch):
        if self.mounted:
            return
        lib = os.environ.get("WARREN_FAULTIO")
        assert lib and os.path.exists(lib), "WARREN_FAULTIO: the shim"
        monkeypatch.setenv("LD_PRELOAD", lib)
        monkeypatch.setenv("WARREN_FAULT_NOSPACE", self.switch)
        monkeypatch.setenv("ASAN_OPTIONS", os.environ.get(
            "ASAN_OPTIONS", "") + ":verify_asan_link_order=0")

    def fill(self):
        if not self.mounted:
            open(self.switch, "w").close()
            return
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (MB, 65536, 4096, 1):
                try:
                    while os.write(fd, b"\0" * size) > 0:
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free(self):
        for p in (self.filler, self.switch):
            if os.path.exists(p):
                os.unlink(p)

    def close(self):
        self.free()
        if self.mounted:
            r = subprocess.run(["umount", self.path], capture_output=True,
                               timeout=30)
            if r.returncode != 0:  # a broker left running: detach it
                subprocess.run(["umount", "-l", self.path], timeout=30)


@pytest.fixture
def disk(tmp_path, monkeypatch):
    d = SmallDisk(str(tmp_path))
    d.environ(monkeypatch)
    try:
        yield d
    finally:
        d.close()


def broker(disk, make_broker, extra=None):
    conf = {"disk_free_limit.absolute": "1MB",
            "store.segment_size": "1MiB"}
    conf.update(extra or {})
    return make_broker(conf, data_dir=os.path.join(disk.path, "data"))


def channel(b):
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    return c


def publisher(b):
    """A connection that has not published yet: even under an alarm, its
    first publish is read (the broker blocks a connection after the frame
    that published)."""
    c = channel(b)
    confirm_select(c, 1)
    return c


def name(body):
    """A body's name: what comes before the padding."""
    return body.split(b"x")[0]


def confirm_of(c, timeout=LONG):
    """The next basic.ack or basic.nack on c."""
    while True:
        m = c.read_method(timeout=timeout)
        if m.name in ("basic.ack", "basic.nack"):
            return m


def test_publishes_on_a_full_disk_are_nacked_and_leave_no_trace(
        disk, make_broker):
    b = broker(disk, make_broker)
    c = publisher(b)
    c.call(1, "queue.declare", queue="q", durable=True)
    publish_sync(c, 1, "", "q", b"before", props=PERSISTENT)
    disk.fill()
    # The first publish finds the disk full: its record waits for space.
    waiting = publisher(b)
    waiting.publish(1, "", "q", b"waits" + BIG, props=PERSISTENT)
    assert b.wait_for_line("No space left on device", timeout=LONG)
    # Meanwhile publishes are refused with basic.nack.
    nacked = []
    for i in range(3):
        p = publisher(b)
        p.publish(1, "", "q", b"refused%d" % i, props=PERSISTENT)
        m = confirm_of(p)
        assert (m.name, m.delivery_tag) == ("basic.nack", 1), m
        nacked.append(b"refused%d" % i)
        p.close()
    assert b.wait_for_line("disk alarm set", timeout=LONG)
    # Space comes back, no restart: the waiting record is written.
    disk.free()
    m = confirm_of(waiting)
    if m.name == "basic.nack":
        nacked.append(b"waits")
    # A nacked publish is in no queue (issue 10, item 3: it stayed in the
    # in-memory queue until a restart, so a republish made a duplicate).
    cons = channel(b)
    queued = [name(x) for x in get_bodies(cons, 1, "q", no_ack=False)]
    cons.close()  # requeues them
    assert not set(nacked) & set(queued), (nacked, queued)
    assert (m.name, m.delivery_tag) == ("basic.ack", 1), m
    assert queued == [b"before", b"waits"]
    # The alarm clears and publishes are taken again.
    assert b.wait_for_line("disk alarm cleared", timeout=LONG)
    publish_sync(publisher(b), 1, "", "q", b"after", props=PERSISTENT)
    b.restart()
    bodies = get_bodies(channel(b), 1, "q")
    assert [name(x) for x in bodies] == [b"before", b"waits", b"after"]


def test_a_transaction_refused_by_a_full_disk_is_not_committed(
        disk, make_broker):
    """tx.commit never says commit-ok for a persistent message the log
    refused: the connection gets 541 INTERNAL_ERROR, and the message is in
    no queue."""
    b = broker(disk, make_broker)
    c = channel(b)
    c.call(1, "queue.declare", queue="tq", durable=True)
    disk.fill()
    waiting = publisher(b)
    waiting.publish(1, "", "tq", b"waits" + BIG, props=PERSISTENT)
    assert b.wait_for_line("No space left on device", timeout=LONG)
    t = channel(b)
    t.call(1, "tx.select")
    t.publish(1, "", "tq", b"in-tx", props=PERSISTENT)
    t.send_method(1, "tx.commit")
    m = t.expect_connection_close(timeout=LONG)
    assert m.reply_code == 541, m
    assert "transaction" in m.reply_text, m
    disk.free()
    confirm_of(waiting)
    queued = [name(x) for x in get_bodies(c, 1, "tq")]
    assert b"in-tx" not in queued, queued


def test_a_broker_stopped_on_a_full_disk_starts_with_the_disk_alarm(
        disk, make_broker):
    b = broker(disk, make_broker)
    c = publisher(b)
    c.call(1, "queue.declare", queue="q", durable=True)
    for i in range(20):
        publish_sync(c, 1, "", "q", b"%02d" % i + BIG, props=PERSISTENT)
    disk.fill()
    # A write waits for space when the broker is stopped: the newest
    # segment is left unsealed, and sealing it at start finds no space.
    waiting = publisher(b)
    waiting.publish(1, "", "q", b"never" + BIG, props=PERSISTENT)
    assert b.wait_for_line("No space left on device", timeout=LONG)
    # (blocked publishers do not answer the broker's close: it waits 3 s)
    assert b.stop(timeout=LONG) == 0
    b.start()  # before: "cannot seal ... No space left on device"
    assert b.wait_for_line("disk alarm set", timeout=LONG)
    # Consumers are served; the unconfirmed publish never was written.
    bodies = get_bodies(channel(b), 1, "q")
    assert [x[:2] for x in bodies] == [b"%02d" % i for i in range(20)]
    disk.free()
    assert b.wait_for_line("disk alarm cleared", timeout=LONG)
    publish_sync(publisher(b), 1, "", "q", b"again", props=PERSISTENT)
    # The consumers' acks reached the log once space was back.
    b.restart()
    assert get_bodies(channel(b), 1, "q") == [b"again"]
