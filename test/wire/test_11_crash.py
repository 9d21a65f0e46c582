"""Crash test (Warren only): SIGKILL while a confirming publisher and a
manual-ack consumer run against durable queues, many times over.

Every cycle: a publisher sends persistent messages to three durable
queues with pipelined confirms (window of 200) and records which
sequence numbers the broker confirmed; a consumer acks what it gets and
records each ack before sending it; the broker is killed with SIGKILL at
a random moment and restarted on the same data directory. Then every
queue is read (basic.get, then the channel closes so everything goes
back) and checked:

  - every message that was confirmed and not acked is there;
  - none is corrupted (each body carries its own SHA-256);
  - the order within a queue holds (sequence numbers increase);
  - a message whose ack was sent may come back (the ack was in flight
    when the broker died): those are counted as duplicates and reported.

The counts are printed at the end (pytest -s shows them, and so does the
failure report).
"""

import hashlib
import os
import random
import socket
import threading
import time

import pytest

import rawamqp

pytestmark = pytest.mark.warren_only

QUEUES = ["crash-q0", "crash-q1", "crash-q2"]
CYCLES = int(os.environ.get("WARREN_CRASH_CYCLES", "20"))
WINDOW = 200
# Pause between windows: traffic never stops (the kill always lands in
# it) but stays bounded, so that the checks are quick.
WINDOW_PAUSE = 0.03


def make_body(queue, seq):
    payload = os.urandom(random.randint(8, 2048))
    head = b"%s:%d:" % (queue.encode(), seq)
    return head + payload + hashlib.sha256(head + payload).digest()


def check_body(body):
    """Returns (queue, seq), or raises on corruption."""
    data, digest = body[:-32], body[-32:]
    assert hashlib.sha256(data).digest() == digest, "corrupted body"
    queue, seq, _ = data.split(b":", 2)
    return queue.decode(), int(seq)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.next_seq = {q: 1 for q in QUEUES}
        self.confirmed = {q: set() for q in QUEUES}
        self.acked = {q: set() for q in QUEUES}
        self.published = 0
        self.duplicates = 0
        self.max_backlog = 0


def connect(port):
    c = rawamqp.connect("127.0.0.1", port, timeout=5.0)
    c.open_channel(1)
    return c


def publisher(port, st, stop):
    """Publishes in windows; confirms map back to (queue, seq)."""
    try:
        c = connect(port)
        c.call(1, "confirm.select")
        tag_of = {}  # delivery tag -> (queue, seq)
        tag = 0
        confirmed_upto = 0
        while not stop.wait(WINDOW_PAUSE):
            frames = []
            for _ in range(WINDOW):
                q = random.choice(QUEUES)
                with st.lock:
                    seq = st.next_seq[q]
                    st.next_seq[q] += 1
                tag += 1
                tag_of[tag] = (q, seq)
                frames.append(c.publish_frames(
                    1, "", q, make_body(q, seq), props={"delivery_mode": 2}))
            c.send(b"".join(frames))
            with st.lock:
                st.published += WINDOW
            while confirmed_upto < tag:
                m = c.read_method(timeout=10)
                if m.name not in ("basic.ack", "basic.nack"):
                    continue
                upto = m.delivery_tag
                first = confirmed_upto + 1 if m.multiple else upto
                with st.lock:
                    for t in range(first, upto + 1):
                        q, seq = tag_of.pop(t, (None, None))
                        if q is not None and m.name == "basic.ack":
                            st.confirmed[q].add(seq)
                if m.multiple or upto == confirmed_upto + 1:
                    confirmed_upto = max(confirmed_upto, upto)
                else:
                    # a single out-of-order confirm: advance over what is
                    # answered
                    while confirmed_upto + 1 not in tag_of and \
                            confirmed_upto < tag:
                        confirmed_upto += 1
    except (rawamqp.Closed, rawamqp.Timeout, OSError, ValueError):
        pass  # the broker died


def consumer(port, st, stop):
    try:
        c = connect(port)
        c.call(1, "basic.qos", prefetch_count=50)
        for q in QUEUES:
            c.send_method(1, "basic.consume", queue=q, consumer_tag=q,
                          nowait=True)
        while not stop.is_set():
            m = c.read_method(timeout=10)
            if m.name != "basic.deliver":
                continue
            q, seq = check_body(m.content.body)
            with st.lock:
                st.acked[q].add(seq)  # recorded before the ack is sent
            if random.random() < 0.3:
                c.send_method(1, "basic.ack", delivery_tag=m.delivery_tag,
                              multiple=True)
            else:
                c.send_method(1, "basic.ack", delivery_tag=m.delivery_tag)
    except (rawamqp.Closed, rawamqp.Timeout, OSError, ValueError):
        pass


def verify(port, st, cycle):
    """Reads every queue, checks it, and leaves it as it was."""
    c = connect(port)
    try:
        for q in QUEUES:
            seqs = []
            while True:
                c.send_method(1, "basic.get", queue=q)
                m = c.read_method(timeout=10)
                assert m.name in ("basic.get-ok", "basic.get-empty"), m
                if m.name == "basic.get-empty":
                    break
                mq, seq = check_body(m.content.body)
                assert mq == q, "message of %s found in %s" % (mq, q)
                seqs.append(seq)
            with st.lock:
                present = set(seqs)
                assert seqs == sorted(seqs), \
                    "cycle %d: order broken in %s: %s" % (cycle, q, seqs[:50])
                assert len(present) == len(seqs), \
                    "cycle %d: a message appears twice in %s" % (cycle, q)
                missing = st.confirmed[q] - st.acked[q] - present
                assert not missing, \
                    "cycle %d: confirmed, unacked messages lost in %s: %s" % (
                        cycle, q, sorted(missing)[:20])
                dup = present & st.acked[q]
                st.duplicates += len(dup)
                # They are back in the queue: they count as not acked again.
                st.acked[q] -= dup
                st.max_backlog = max(st.max_backlog, len(seqs))
        # Closing the channel puts everything back, in order.
        c.close_channel(1)
    finally:
        c.close()


def test_sigkill_never_loses_confirmed_messages(make_broker):
    b = make_broker()
    c = connect(b.port)
    for q in QUEUES:
        c.call(1, "queue.declare", queue=q, durable=True)
    c.close()
    st = State()
    rnd = random.Random(os.environ.get("WARREN_CRASH_SEED"))
    for cycle in range(1, CYCLES + 1):
        stop = threading.Event()
        threads = [threading.Thread(target=f, args=(b.port, st, stop),
                                    daemon=True)
                   for f in (publisher, consumer)]
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.2, 1.0))
        b.kill()  # SIGKILL
        stop.set()
        for t in threads:
            t.join(15)
            assert not t.is_alive(), "a client thread hung"
        b.start("127.0.0.1:%d" % b.port)
        verify(b.port, st, cycle)
    confirmed = sum(len(s) for s in st.confirmed.values())
    report = ("crash test: %d cycles, %d published, %d confirmed, "
              "%d duplicates (acks in flight at the kill), "
              "largest backlog %d" % (CYCLES, st.published, confirmed,
                                      st.duplicates, st.max_backlog))
    print(report)
    assert confirmed > 0, "nothing was confirmed: " + report
