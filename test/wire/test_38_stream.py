"""Stream queues (x-queue-type = stream) over AMQP 0-9-1, as RabbitMQ 3.10.

The tests without the warren_only mark pass against RabbitMQ 3.10 too
(WARREN_TEST_BROKER=127.0.0.1:5671 /usr/bin/python3 -m pytest -q
test/wire/test_38_stream.py): declaration rules and texts, the consumer
rules (prefetch, ack, global QoS, x-stream-offset), every offset spec,
the x-stream-offset header, independent consumers and credit-only acks.
The Warren-only ones restart and kill the broker, look at retention,
management and definitions, and bound the broker's memory.
"""
import datetime
import json
import os
import signal
import time
import uuid

import pika
import pytest

import rawamqp
from test_20_mgmt_api import Mgmt, http_port
from wireutil import confirm_select, publish_sync

S = {"x-queue-type": "stream"}
SANITIZED = os.environ.get("WARREN_SANITIZED") == "1"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def declare(ch, name, **args):
    a = dict(S)
    a.update(args)
    return ch.queue_declare(name, durable=True, arguments=a)


def publish(broker, name, bodies, headers=None):
    """Publishes bodies with confirms (each acked before return)."""
    c = broker.pika()
    ch = c.channel()
    ch.confirm_delivery()
    for i, b in enumerate(bodies):
        h = dict(headers or {})
        h["n"] = i
        ch.basic_publish("", name, b, pika.BasicProperties(
            headers=h, content_type="text/plain", delivery_mode=2),
            mandatory=True)
    c.close()


def bodies(prefix, n, start=0):
    return [b"%s-%d" % (prefix, start + i) for i in range(n)]


class Reader:
    """A consumer on its own connection: records (offset, body, props)."""

    def __init__(self, broker, name, offset=None, prefetch=100, ack=True):
        self.conn = broker.pika()
        self.ch = self.conn.channel()
        self.ch.basic_qos(prefetch_count=prefetch)
        self.got = []
        self.tags = []
        self.ack = ack
        args = {} if offset is None else {"x-stream-offset": offset}
        self.ctag = self.ch.basic_consume(name, self.on_msg, arguments=args)

    def on_msg(self, ch, m, p, body):
        self.got.append((p.headers["x-stream-offset"], body, p, m))
        self.tags.append(m.delivery_tag)
        if self.ack:
            ch.basic_ack(m.delivery_tag)

    def wait(self, n=None, quiet=0.5, timeout=15.0):
        """Until n messages (or, with n None, quiet seconds without one)."""
        deadline = time.monotonic() + timeout
        last, seen = time.monotonic(), len(self.got)
        while time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.05)
            if n is not None and len(self.got) >= n:
                break
            if len(self.got) != seen:
                seen, last = len(self.got), time.monotonic()
            elif n is None and time.monotonic() - last >= quiet:
                break
        return self.got

    def offsets(self):
        return [o for o, _, _, _ in self.got]

    def bodies(self):
        return [b for _, b, _, _ in self.got]

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass


def closed_with(fn, code, text):
    """Runs fn(channel) on a fresh connection, expecting a channel or
    connection close with code and text."""
    return code, text, fn


def expect_error(broker, fn, code, text):
    c = broker.pika()
    ch = c.channel()
    with pytest.raises((pika.exceptions.ChannelClosedByBroker,
                        pika.exceptions.ConnectionClosedByBroker)) as ei:
        fn(ch)
        c.process_data_events(time_limit=0.5)
        ch.queue_declare("x-sync-" + uuid.uuid4().hex, passive=True)
    assert ei.value.reply_code == code, ei.value
    assert ei.value.reply_text == text, ei.value
    if c.is_open:
        c.close()


@pytest.fixture
def stream(broker, uname):
    name = uname("stream")
    c = broker.pika()
    declare(c.channel(), name)
    c.close()
    return name


# ---------------------------------------------------------------------------
# declaration
# ---------------------------------------------------------------------------


def test_declare_properties_are_refused_with_rabbitmq_texts(broker, uname):
    name = uname("s")
    rs = "queue '%s' in vhost '/'" % name
    for kw, prop in ((dict(durable=False), "non-durable"),
                     (dict(durable=True, exclusive=True), "exclusive-owner"),
                     (dict(durable=True, auto_delete=True), "auto-delete"),
                     (dict(durable=True, exclusive=True, auto_delete=True),
                      "auto-delete"),
                     (dict(durable=False, exclusive=True),
                      "exclusive-owner")):
        expect_error(broker,
                     lambda ch: ch.queue_declare(name, arguments=S, **kw),
                     406, "PRECONDITION_FAILED - invalid property '%s' for %s"
                     % (prop, rs))
    expect_error(broker,
                 lambda ch: ch.queue_declare("", durable=True, arguments=S),
                 406, "PRECONDITION_FAILED - Cannot declare a server-named "
                 "queue for type rabbit_stream_queue")


def test_declare_arguments_checked_as_rabbitmq(broker, uname):
    name = uname("s")
    rs = "queue '%s' in vhost '/'" % name
    bad = [
        ({"x-max-age": "1d"}, "invalid arg 'x-max-age' for %s: invalid_max_age"),
        ({"x-max-age": "0s"}, "invalid arg 'x-max-age' for %s: invalid_max_age"),
        ({"x-max-age": "10"}, "invalid arg 'x-max-age' for %s: invalid_max_age"),
        ({"x-max-age": 10},
         "invalid arg 'x-max-age' for %s: {unacceptable_type,signedint}"),
        ({"x-max-length-bytes": -1},
         "invalid arg 'x-max-length-bytes' for %s: {value_negative,-1}"),
        ({"x-max-length-bytes": "x"},
         "invalid arg 'x-max-length-bytes' for %s: \"expected integer, got "
         "longstr\""),
        ({"x-stream-max-segment-size-bytes": -5},
         "invalid arg 'x-stream-max-segment-size-bytes' for %s: "
         "{value_negative,-5}"),
        ({"x-initial-cluster-size": 0},
         "invalid arg 'x-initial-cluster-size' for %s: {value_zero,0}"),
    ]
    for arg in ("x-max-length", "x-message-ttl", "x-expires",
                "x-dead-letter-exchange", "x-max-priority", "x-overflow",
                "x-single-active-consumer", "x-queue-mode",
                "x-delivery-limit", "x-queue-version"):
        v = {"x-single-active-consumer": True, "x-overflow": "drop-head",
             "x-queue-mode": "lazy", "x-dead-letter-exchange": "dlx"}.get(
                 arg, 5)
        bad.append(({arg: v}, "invalid arg '%s' for %%s of queue type "
                    "rabbit_stream_queue" % arg))
    for args, text in bad:
        a = dict(S)
        a.update(args)
        expect_error(broker,
                     lambda ch: ch.queue_declare(name, durable=True,
                                                 arguments=a),
                     406, "PRECONDITION_FAILED - " + text % rs)
    # the stream's own arguments on a classic queue
    for arg, v in (("x-max-age", "1h"),
                   ("x-stream-max-segment-size-bytes", 1000),
                   ("x-initial-cluster-size", 1)):
        expect_error(broker,
                     lambda ch: ch.queue_declare(name, durable=True,
                                                 arguments={arg: v}),
                     406, "PRECONDITION_FAILED - invalid arg '%s' for %s of "
                     "queue type rabbit_classic_queue" % (arg, rs))
    # the arguments RabbitMQ takes, every unit of x-max-age
    c = broker.pika()
    ch = c.channel()
    for unit in ("7D", "1h", "30m", "10s", "1Y", "1M"):
        declare(ch, name, **{"x-max-age": unit, "x-max-length-bytes": 10 ** 9,
                             "x-stream-max-segment-size-bytes": 10 ** 6,
                             "x-initial-cluster-size": 1})
        ch.queue_delete(name)
    # declare-ok counts 0 for a stream, as RabbitMQ; redeclare compares
    ok = declare(ch, name, **{"x-max-age": "1h"})
    assert ok.method.message_count == 0
    c.close()
    publish(broker, name, bodies(b"m", 3))
    c = broker.pika()
    assert declare(c.channel(), name, **{"x-max-age": "1h"}
                   ).method.message_count == 0
    c.close()
    expect_error(broker, lambda ch: ch.queue_declare(name, durable=True),
                 406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' "
                 "for %s: received none but current is the value 'stream' of "
                 "type 'longstr'" % rs)
    expect_error(broker, lambda ch: declare(ch, name, **{"x-max-age": "2h"}),
                 406, "PRECONDITION_FAILED - inequivalent arg 'x-max-age' for "
                 "%s: received '2h' but current is '1h'" % rs)


# ---------------------------------------------------------------------------
# consumers: the rules
# ---------------------------------------------------------------------------


def test_consumer_rules_and_refused_methods(broker, stream):
    rs = "queue '%s' in vhost '/'" % stream
    publish(broker, stream, bodies(b"m", 3))

    def no_prefetch(ch):
        ch.basic_consume(stream, lambda *a: None)

    def no_ack(ch):
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume(stream, lambda *a: None, auto_ack=True)

    def global_qos(ch):
        ch.basic_qos(prefetch_count=10)
        ch.basic_qos(prefetch_count=10, global_qos=True)
        ch.basic_consume(stream, lambda *a: None)

    def bad_offset(v):
        def f(ch):
            ch.basic_qos(prefetch_count=10)
            ch.basic_consume(stream, lambda *a: None,
                             arguments={"x-stream-offset": v})
        return f

    def nack(requeue, reject=False):
        def f(ch):
            ch.basic_qos(prefetch_count=10)
            tags = []
            ch.basic_consume(stream, lambda c, m, p, b: tags.append(
                m.delivery_tag), arguments={"x-stream-offset": "first"})
            while not tags:
                ch.connection.process_data_events(time_limit=0.1)
            if reject:
                ch.basic_reject(tags[0], requeue=requeue)
            else:
                ch.basic_nack(tags[0], requeue=requeue)
        return f

    expect_error(broker, no_prefetch, 406, "PRECONDITION_FAILED - consumer "
                 "prefetch count is not set for '%s'" % rs)
    expect_error(broker, no_ack, 540, "NOT_IMPLEMENTED - automatic "
                 "acknowledgement not supported by stream queues %s" % rs)
    expect_error(broker, global_qos, 540, "NOT_IMPLEMENTED - %s does not "
                 "support global qos" % rs)
    # (RabbitMQ 3.10 fails with 541 INTERNAL_ERROR on a word it does not
    # know, "First" or "bad": Warren gives the 406 of the others)
    specs = ("5", "0s") + (("bad-offset-spec", "First")
                           if broker.target == "warren" else ())
    for v in specs:
        expect_error(broker, bad_offset(v), 406, "PRECONDITION_FAILED - "
                     "invalid arg 'x-stream-offset' for %s: "
                     "{invalid_stream_offset_arg,{longstr,<<\"%s\">>}}"
                     % (rs, v))
    expect_error(broker, lambda ch: ch.basic_get(stream), 540,
                 "NOT_IMPLEMENTED - basic.get not supported by stream queues "
                 "%s" % rs)
    expect_error(broker, lambda ch: ch.queue_purge(stream), 540,
                 "NOT_IMPLEMENTED - queue.purge not supported by stream "
                 "queues %s" % rs)
    for f in (nack(True), nack(False), nack(False, reject=True)):
        expect_error(broker, f, 540, "NOT_IMPLEMENTED - basic.nack and "
                     "basic.reject not supported by stream queues %s" % rs)


# ---------------------------------------------------------------------------
# consumers: where they start, what they get
# ---------------------------------------------------------------------------


def test_every_offset_spec(broker, stream):
    publish(broker, stream, bodies(b"a", 9))
    time.sleep(1.2)
    before_last = datetime.datetime.utcnow().replace(microsecond=0)
    time.sleep(1.2)
    # the last on its own (RabbitMQ's "last" is the last chunk)
    publish(broker, stream, [b"a-9"])
    want_all = bodies(b"a", 10)
    cases = [(None, []), ("next", []), ("first", want_all),
             (0, want_all), (-1, want_all), (3, want_all[3:]),
             (9, want_all[9:]), (10, []), ("last", [b"a-9"]),
             (datetime.datetime(2020, 1, 1), want_all),
             (before_last, [b"a-9"]), ("10m", want_all), ("1h", want_all)]
    readers = [(spec, want, Reader(broker, stream, spec))
               for spec, want in cases]
    try:
        for spec, want, r in readers:
            r.wait(len(want) or None)
            assert r.bodies() == want, spec
            first = want_all.index(want[0]) if want else None
            if want:
                assert r.offsets() == list(range(first, first + len(want)))
        # each one then follows the tail; one beyond the end waits for
        # its offset
        beyond = Reader(broker, stream, 11)
        readers.append((11, [], beyond))
        publish(broker, stream, [b"a-10"])
        time.sleep(0.3)
        assert beyond.wait(quiet=0.3) == []
        publish(broker, stream, [b"a-11"])
        assert [o for o, _, _, _ in beyond.wait(1)] == [11]
        readers.pop()
        for spec, want, r in readers:
            r.wait(len(want) + 2)
            assert r.bodies() == want + [b"a-10", b"a-11"], spec
            assert r.offsets()[-1] == 11
    finally:
        for _, _, r in readers:
            r.close()


def test_interval_counts_back_from_now(broker, stream):
    publish(broker, stream, bodies(b"old", 5))
    time.sleep(3.5)
    publish(broker, stream, bodies(b"new", 5))
    r = Reader(broker, stream, "3s")
    try:
        assert r.wait(5) and r.bodies() == bodies(b"new", 5)
        assert r.offsets() == [5, 6, 7, 8, 9]
    finally:
        r.close()


def test_delivery_keeps_properties_and_adds_the_offset_header(broker, stream):
    c = broker.pika()
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("", stream, b"body-1", pika.BasicProperties(
        headers={"x-stream-offset": "spoofed", "k": "v", "i": 7},
        content_type="application/json", correlation_id="cid",
        message_id="mid", priority=3, delivery_mode=2))
    ch.basic_publish("", stream, b"")  # no properties at all
    c.close()
    r = Reader(broker, stream, "first")
    try:
        got = r.wait(2)
        (o0, b0, p0, m0), (o1, b1, p1, m1) = got
        assert (o0, b0, o1, b1) == (0, b"body-1", 1, b"")
        assert p0.headers == {"k": "v", "i": 7, "x-stream-offset": 0}
        assert isinstance(p0.headers["x-stream-offset"], int)
        assert (p0.content_type, p0.correlation_id, p0.message_id,
                p0.priority, p0.delivery_mode) == (
                    "application/json", "cid", "mid", 3, 2)
        assert p1.headers == {"x-stream-offset": 1}
        assert (m0.exchange, m0.routing_key, m0.redelivered) == (
            "", stream, False)
    finally:
        r.close()


def test_independent_consumers_and_credit_only_acks(broker, stream):
    publish(broker, stream, bodies(b"m", 50))
    slow = Reader(broker, stream, "first", prefetch=5, ack=False)
    fast = Reader(broker, stream, "first", prefetch=7)
    try:
        fast.wait(50)
        assert fast.offsets() == list(range(50))
        # the slow one has its window and no more until it acks
        slow.wait(quiet=0.7)
        assert slow.offsets() == list(range(5))
        slow.ch.basic_ack(slow.tags[2], multiple=True)
        slow.wait(8, quiet=0.7)
        assert slow.offsets() == list(range(8))
        slow.ack = True
        for t in slow.tags[3:]:
            slow.ch.basic_ack(t)
        slow.wait(50)
        assert slow.offsets() == list(range(50))
        # acked by everyone, still all there for a newcomer
        late = Reader(broker, stream, "first", prefetch=100)
        try:
            assert late.wait(50) and late.offsets() == list(range(50))
        finally:
            late.close()
    finally:
        slow.close()
        fast.close()


def test_two_consumers_on_one_channel_read_independently(broker, stream):
    publish(broker, stream, bodies(b"m", 20))
    c = broker.pika()
    ch = c.channel()
    ch.basic_qos(prefetch_count=4)
    got = {"a": [], "b": []}
    for tag, off in (("a", "first"), ("b", 15)):
        ch.basic_consume(stream, lambda c_, m, p, b, tag=tag: (
            got[tag].append(p.headers["x-stream-offset"]),
            c_.basic_ack(m.delivery_tag)), consumer_tag=tag,
            arguments={"x-stream-offset": off})
    deadline = time.monotonic() + 10
    while (len(got["a"]) < 20 or len(got["b"]) < 5) and \
            time.monotonic() < deadline:
        c.process_data_events(time_limit=0.05)
    assert got == {"a": list(range(20)), "b": list(range(15, 20))}
    c.close()


def test_delete_cancels_consumers_and_a_new_stream_starts_empty(broker,
                                                                 stream):
    publish(broker, stream, bodies(b"old", 10))
    r = Reader(broker, stream, "first")
    cancelled = []
    r.ch.add_on_cancel_callback(lambda m: cancelled.append(m))
    try:
        r.wait(10)
        c = broker.pika()
        assert c.channel().queue_delete(stream).method.message_count == 0
        c.close()
        deadline = time.monotonic() + 5
        while not cancelled and time.monotonic() < deadline:
            r.conn.process_data_events(time_limit=0.05)
        assert cancelled
    finally:
        r.close()
    c = broker.pika()
    declare(c.channel(), stream)
    c.close()
    publish(broker, stream, [b"new"])
    r = Reader(broker, stream, "first")
    try:
        assert [(o, b) for o, b, _, _ in r.wait(1)] == [(0, b"new")]
        assert r.wait(quiet=0.3) and len(r.got) == 1
    finally:
        r.close()


# ---------------------------------------------------------------------------
# Warren only: basic.recover, restarts, kill -9, retention, management,
# definitions, memory
# ---------------------------------------------------------------------------


@pytest.mark.warren_only
def test_recover_and_closing_return_credit_without_redelivery(broker, stream):
    # RabbitMQ 3.10 answers basic.recover on a stream consumer with 541
    # INTERNAL_ERROR; Warren returns the credit: a stream never redelivers.
    publish(broker, stream, bodies(b"m", 6))
    r = Reader(broker, stream, "first", prefetch=3, ack=False)
    try:
        r.wait(quiet=0.5)
        assert r.offsets() == [0, 1, 2]
        r.ch.basic_recover(requeue=True)
        r.wait(6)
        assert r.offsets() == list(range(6))
        assert not any(m.redelivered for _, _, _, m in r.got)
    finally:
        r.close()
    c = broker.pika()
    ok = c.channel().queue_declare(stream, passive=True)
    assert ok.method.consumer_count == 0
    c.close()


def warren(make_broker):
    return make_broker({"management.tcp.port": 0,
                        "management.tcp.ip": "127.0.0.1"})


def numbered(n, start=0, size=0):
    return [(b"%08d" % (start + i)) + b"x" * size for i in range(n)]


@pytest.mark.warren_only
def test_restart_keeps_the_stream_and_its_offsets(make_broker):
    b = warren(make_broker)
    c = b.pika()
    declare(c.channel(), "s", **{"x-stream-max-segment-size-bytes": 20000})
    c.close()
    publish(b, "s", numbered(1000, size=100))
    b.restart()
    r = Reader(b, "s", 500)
    try:
        r.wait(500)
        assert r.offsets() == list(range(500, 1000))
        assert r.bodies() == numbered(500, 500, size=100)
        publish(b, "s", numbered(10, 1000))
        r.wait(510)
        assert r.offsets()[-10:] == list(range(1000, 1010))
    finally:
        r.close()
    info = Mgmt(http_port(b)).get("/api/queues/%2F/s").json
    assert info["type"] == "stream"
    assert info["messages"] == 1010
    assert info["stream"]["first_offset"] == 0
    assert info["stream"]["next_offset"] == 1010
    assert info["stream"]["segments"] > 3


@pytest.mark.warren_only
def test_kill9_consumer_resumes_at_its_offset(make_broker):
    b = warren(make_broker)
    c = b.pika()
    declare(c.channel(), "s", **{"x-stream-max-segment-size-bytes": 50000})
    c.close()
    # pipelined confirmed publishes: every acked one must survive
    rc = b.raw()
    rc.open_channel(1)
    confirm_select(rc, 1)
    rc.send(b"".join(rc.publish_frames(1, "", "s", body)
                     for body in numbered(3000, size=50)))
    acked = 0
    while acked < 3000:
        m = rc.read_method(timeout=10)
        assert m.name == "basic.ack", m
        acked = m.delivery_tag if m.multiple else acked + 1
    r = Reader(b, "s", "first", prefetch=50)
    r.wait(1234)
    resume = r.offsets()[1233] + 1
    r.close()
    rc.close_socket()
    b.kill()  # SIGKILL
    b.start("%s:%d" % (b.host, b.port))
    r = Reader(b, "s", resume, prefetch=50)
    try:
        r.wait(3000 - resume)
        assert r.offsets() == list(range(resume, 3000))
        assert r.bodies() == numbered(3000 - resume, resume, size=50)
        publish(b, "s", [b"after"])
        r.wait(3000 - resume + 1)
        assert r.got[-1][0] == 3000 and r.got[-1][1] == b"after"
    finally:
        r.close()


@pytest.mark.warren_only
def test_kill9_with_a_torn_tail(make_broker):
    b = warren(make_broker)
    c = b.pika()
    declare(c.channel(), "s")
    c.close()
    publish(b, "s", numbered(100, size=10))
    b.kill()
    segs = sorted(p for p in os.listdir(vhost_path(b))
                  if p.startswith("stream.") and p.endswith(".seg"))
    path = os.path.join(vhost_path(b), segs[-1])
    with open(path, "ab") as f:  # half a record after the last one
        f.write(b"\x40\x00\x00\x00garbage")
    b.start("%s:%d" % (b.host, b.port))
    assert b.wait_for_line(r"torn or corrupt tail", timeout=5)
    publish(b, "s", [b"next"])
    r = Reader(b, "s", "first")
    try:
        r.wait(101)
        assert r.offsets() == list(range(101))
        assert r.bodies()[-1] == b"next"
    finally:
        r.close()


def vhost_path(b):
    root = os.path.join(b.data_dir, "vhosts")
    (d,) = [os.path.join(root, x) for x in os.listdir(root)
            if not x.endswith(".trash") and
            os.path.isdir(os.path.join(root, x))]
    return d


@pytest.mark.warren_only
def test_retention_by_bytes_drops_old_segments(make_broker):
    b = warren(make_broker)
    c = b.pika()
    declare(c.channel(), "s", **{"x-stream-max-segment-size-bytes": 10000,
                                 "x-max-length-bytes": 50000})
    c.close()
    publish(b, "s", numbered(1000, size=200))
    info = Mgmt(http_port(b)).get("/api/queues/%2F/s").json
    first = info["stream"]["first_offset"]
    assert first > 700, info["stream"]
    assert info["stream"]["bytes"] <= 60000
    assert info["messages"] == 1000 - first
    r = Reader(b, "s", "first")
    try:
        r.wait(1000 - first)
        assert r.offsets() == list(range(first, 1000))
    finally:
        r.close()
    # numeric offsets below the first start at the first
    r = Reader(b, "s", 3)
    try:
        assert r.wait(1)[0][0] == first
    finally:
        r.close()


@pytest.mark.warren_only
def test_retention_by_age_drops_old_segments(make_broker):
    b = warren(make_broker)
    c = b.pika()
    declare(c.channel(), "s", **{"x-stream-max-segment-size-bytes": 2000,
                                 "x-max-age": "2s"})
    c.close()
    publish(b, "s", numbered(100, size=100))
    time.sleep(3)
    # retention runs when a segment is sealed, as RabbitMQ's
    publish(b, "s", numbered(100, 100, size=100))
    r = Reader(b, "s", "first")
    try:
        r.wait(quiet=0.7)
        offs = r.offsets()
        assert offs and offs == list(range(offs[0], 200))
        assert 80 <= offs[0] <= 100, offs[0]
    finally:
        r.close()


@pytest.mark.warren_only
def test_policies_give_stream_limits_and_nothing_else(make_broker):
    """A policy's max-length-bytes retains a stream (max-age and
    stream-max-segment-size-bytes likewise); its classic-queue keys
    (expires, message-ttl, max-length, dead-lettering) do not apply."""
    b = warren(make_broker)
    api = Mgmt(http_port(b))
    assert api.put("/api/policies/%2F/p", {
        "pattern": "^ps$", "apply-to": "queues", "definition": {
            "max-length-bytes": 20000, "stream-max-segment-size-bytes": 4000,
            "expires": 500, "message-ttl": 1, "max-length": 3,
            "dead-letter-exchange": "amq.fanout"}}).status in (201, 204)
    c = b.pika()
    declare(c.channel(), "ps")
    c.close()
    publish(b, "ps", numbered(300, size=200))
    time.sleep(1.2)  # past expires and message-ttl
    info = api.get("/api/queues/%2F/ps").json
    assert info["policy"] == "p" and info["type"] == "stream"
    first = info["stream"]["first_offset"]
    assert 150 < first < 300 and info["stream"]["segments"] > 3, info
    r = Reader(b, "ps", "first")
    try:
        r.wait(300 - first)
        assert r.offsets() == list(range(first, 300))
    finally:
        r.close()


@pytest.mark.warren_only
def test_management_and_definitions_keep_streams(make_broker):
    b = warren(make_broker)
    api = Mgmt(http_port(b))
    args = {"x-queue-type": "stream", "x-max-age": "7D",
            "x-max-length-bytes": 10 ** 9,
            "x-stream-max-segment-size-bytes": 10 ** 6}
    assert api.put("/api/queues/%2F/s1", {"durable": True,
                                          "arguments": args}).status == 201
    publish(b, "s1", numbered(25))
    r = Reader(b, "s1", "first")
    r.wait(25)
    info = api.get("/api/queues/%2F/s1").json
    assert info["type"] == "stream"
    assert info["arguments"] == args
    assert info["messages"] == 25 and info["consumers"] == 1
    assert info["stream"]["segments"] == 1 and info["stream"]["bytes"] > 25
    r.close()
    defs = api.get("/api/definitions").json
    (qd,) = [x for x in defs["queues"] if x["name"] == "s1"]
    assert qd["arguments"] == args and qd["durable"] is True
    # into a fresh broker: a stream again
    b2 = warren(make_broker)
    api2 = Mgmt(http_port(b2))
    assert api2.post("/api/definitions", defs).status in (200, 201, 204)
    info2 = api2.get("/api/queues/%2F/s1").json
    assert info2["type"] == "stream" and info2["arguments"] == args
    c = b2.pika()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
        c.channel().basic_get("s1")


@pytest.mark.warren_only
def test_deleted_queue_and_vhost_take_their_files(make_broker):
    b = warren(make_broker)
    api = Mgmt(http_port(b))
    assert api.put("/api/vhosts/sv").status == 201
    for vh in ("%2F", "sv"):
        assert api.put("/api/queues/%s/s" % vh, {
            "durable": True, "arguments": S}).status == 201
    publish(b, "s", numbered(10))

    def files():
        root = os.path.join(b.data_dir, "vhosts")
        return sorted(f for d in os.listdir(root)
                      if os.path.isdir(os.path.join(root, d))
                      for f in os.listdir(os.path.join(root, d))
                      if f.startswith("stream."))
    assert len(files()) == 4  # two streams, a segment and an index each
    assert api.delete("/api/vhosts/sv").status == 204
    assert len(files()) == 2
    assert api.delete("/api/queues/%2F/s").status == 204
    assert files() == []
    b.restart()
    assert files() == []
    expect_error(b, lambda ch: ch.queue_declare("s", passive=True), 404,
                 "NOT_FOUND - no queue 's' in vhost '/'")


@pytest.mark.warren_only
def test_offset_tracking_by_consumer_name(make_broker):
    """x-warren-offset-tracking: the broker keeps, per name, the offset
    after the last one acked; a consumer of that name without
    x-stream-offset resumes there, across a restart and a kill -9."""
    b = warren(make_broker)
    c = b.pika()
    declare(c.channel(), "s")
    c.close()
    publish(b, "s", numbered(100))
    track = {"x-warren-offset-tracking": "app"}

    def reader(extra=None, prefetch=100, ack=True):
        r = Reader(b, "s", None, prefetch=prefetch, ack=ack)
        r.ch.basic_cancel(r.ctag)
        args = dict(track)
        args.update(extra or {})
        r.ctag = r.ch.basic_consume("s", r.on_msg, arguments=args)
        return r

    # acks up to offset 29 of the 50 it got
    r = reader({"x-stream-offset": "first"}, prefetch=50, ack=False)
    r.wait(50)
    r.ch.basic_ack(r.tags[29], multiple=True)
    r.wait(quiet=0.5)
    r.close()
    r = reader()
    assert r.wait(70)[0][0] == 30
    assert r.offsets() == list(range(30, 100))
    r.close()  # acked everything: next time from 100
    b.restart()
    publish(b, "s", numbered(5, 100))
    r = reader()
    assert r.wait(5) and r.offsets() == list(range(100, 105))
    r.close()
    time.sleep(1.0)  # written within 200 ms
    b.kill()
    b.start("%s:%d" % (b.host, b.port))
    publish(b, "s", numbered(3, 105))
    r = reader()
    assert r.wait(3) and r.offsets() == [105, 106, 107]
    r.close()
    # an explicit offset wins; another name starts at next
    r = reader({"x-stream-offset": 98})
    assert r.wait(10) and r.offsets() == list(range(98, 108))
    r.close()
    r = Reader(b, "s", None, prefetch=10)
    r.ch.basic_cancel(r.ctag)
    r.ctag = r.ch.basic_consume("s", r.on_msg, arguments={
        "x-warren-offset-tracking": "other"})
    assert r.wait(quiet=0.5) == []
    r.close()
    rs = "queue 's' in vhost '/'"

    def bad(v):
        def f(ch):
            ch.basic_qos(prefetch_count=10)
            ch.basic_consume("s", lambda *a: None,
                             arguments={"x-warren-offset-tracking": v})
        return f
    expect_error(b, bad(5), 406, "PRECONDITION_FAILED - invalid arg "
                 "'x-warren-offset-tracking' for %s: signedint" % rs)
    expect_error(b, bad(""), 406, "PRECONDITION_FAILED - invalid arg "
                 "'x-warren-offset-tracking' for %s: a name of 1 to 255 "
                 "bytes" % rs)


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.mark.warren_only
def test_two_million_messages_cost_no_memory_per_message(make_broker):
    """2,000,000 small messages into a stream, then a consumer from the
    first reading with a window of 1000 that stops acking: the broker's
    resident memory grows by less than 64 MB over the empty broker."""
    b = warren(make_broker)
    c = b.pika()
    declare(c.channel(), "big")
    c.close()
    base = rss(b.pid)
    n, batch = 2000000, 20000
    rc = b.raw()
    rc.open_channel(1)
    confirm_select(rc, 1)
    frames = b"".join(rc.publish_frames(1, "", "big", b"%016d" % i)
                      for i in range(batch))
    peak = 0
    acked = 0
    for k in range(n // batch):
        rc.send(frames)
        while acked < (k + 1) * batch:
            m = rc.read_method(timeout=30)
            assert m.name == "basic.ack", m
            acked = m.delivery_tag if m.multiple else acked + 1
        if k % 10 == 0:
            peak = max(peak, rss(b.pid))
    peak = max(peak, rss(b.pid))
    rc.close_socket()
    # a consumer far behind: its window, not the stream
    r = Reader(b, "big", "first", prefetch=1000, ack=False)
    r.wait(1000)
    peak = max(peak, rss(b.pid))
    assert len(r.got) == 1000
    r.close()
    info = Mgmt(http_port(b)).get("/api/queues/%2F/big").json
    assert info["messages"] == n
    print("stream of %d: rss %d -> peak %d (+%.1f MB), %d bytes in %d segments"
          % (n, base, peak, (peak - base) / 2 ** 20, info["stream"]["bytes"],
             info["stream"]["segments"]))
    if not SANITIZED:
        assert peak - base < 64 * 1024 * 1024, (base, peak)


# ---------------------------------------------------------------------------
# durability: stream confirms follow the fsync policy (Warren only), seen
# through the LD_PRELOAD shim test/wire/faultio.c
# ---------------------------------------------------------------------------


def shimmed(make_broker, tmp_path, monkeypatch, extra=None):
    """A broker whose fdatasync() goes through faultio: returns it and the
    shim's files (hold, trigger, synclog)."""
    lib = os.environ.get("WARREN_FAULTIO")
    assert lib and os.path.exists(lib), "WARREN_FAULTIO: the sync-fault shim"
    files = {k: tmp_path / k for k in ("hold", "trigger", "synclog")}
    monkeypatch.setenv("LD_PRELOAD", lib)
    monkeypatch.setenv("WARREN_FAULT_HOLD", str(files["hold"]))
    monkeypatch.setenv("WARREN_FAULT_TRIGGER", str(files["trigger"]))
    monkeypatch.setenv("WARREN_FAULT_SYNCLOG", str(files["synclog"]))
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                       ":verify_asan_link_order=0")
    b = make_broker(extra)
    monkeypatch.delenv("LD_PRELOAD")
    return b, files


def stream_syncs(files):
    """The shim's log lines about stream segment files."""
    try:
        text = files["synclog"].read_text()
    except FileNotFoundError:
        return []
    return [ln for ln in text.splitlines()
            if "/stream." in ln and ".seg " in ln]


def raw_stream(b, name):
    rc = b.raw()
    rc.open_channel(1)
    rc.call(1, "queue.declare", queue=name, durable=True,
            arguments={"x-queue-type": "stream"})
    confirm_select(rc, 1)
    return rc


@pytest.mark.warren_only
def test_fsync_always_confirms_a_stream_publish_after_its_fdatasync(
        make_broker, tmp_path, monkeypatch):
    """fsync = always (the default): the confirm of a stream publish waits
    until the segment's fdatasync returned, and the loop is not blocked
    meanwhile."""
    b, files = shimmed(make_broker, tmp_path, monkeypatch)
    rc = raw_stream(b, "s")
    files["hold"].touch()  # fdatasync waits from now on
    rc.publish(1, "", "s", b"m1", props={"delivery_mode": 2})
    with pytest.raises(Exception):
        m = rc.read_method(timeout=0.8)
        pytest.fail("confirmed before its fdatasync returned: %r" % (m,))
    assert stream_syncs(files) == []
    # the loop serves others while the sync thread waits
    other = b.raw()
    other.open_channel(1)
    other.call(1, "queue.declare", queue="", exclusive=True)
    other.close_socket()
    rc2 = b.raw()  # the first connection's reads timed out: a fresh one
    rc2.open_channel(1)
    confirm_select(rc2, 1)
    files["hold"].unlink()
    rc2.publish(1, "", "s", b"m2", props={"delivery_mode": 2})
    m = rc2.read_method(timeout=10)
    assert (m.name, m.delivery_tag) == ("basic.ack", 1), m
    syncs = stream_syncs(files)
    assert syncs and all(ln.endswith(" ok") for ln in syncs), syncs
    rc2.close_socket()
    r = Reader(b, "s", "first")
    try:
        r.wait(2)
        assert r.bodies() == [b"m1", b"m2"]
    finally:
        r.close()


@pytest.mark.warren_only
def test_a_failed_stream_fdatasync_nacks_and_refuses_stream_publishes(
        make_broker, tmp_path, monkeypatch):
    b, files = shimmed(make_broker, tmp_path, monkeypatch)
    rc = raw_stream(b, "s")
    publish_sync(rc, 1, "", "s", b"safe", props={"delivery_mode": 2})
    files["trigger"].touch()  # every fdatasync fails with EIO from now on
    rc.publish(1, "", "s", b"at risk", props={"delivery_mode": 2})
    m = rc.read_method(timeout=10)
    assert (m.name, m.delivery_tag) == ("basic.nack", 2), m
    assert b.wait_for_line("the stream sync failed.*Input/output error")
    # sticky: never retried, even once the disk looks fine again
    files["trigger"].unlink()
    rc.publish(1, "", "s", b"refused", props={"delivery_mode": 2})
    m = rc.read_method(timeout=10)
    assert (m.name, m.delivery_tag) == ("basic.nack", 3), m
    # classic queues are not affected
    rc.call(1, "queue.declare", queue="mem")
    rc.publish(1, "", "mem", b"transient")
    m = rc.read_method(timeout=10)
    assert (m.name, m.delivery_tag) == ("basic.ack", 4), m
    assert b.stop() == 0


@pytest.mark.warren_only
def test_fsync_interval_confirms_after_the_write_and_syncs_later(
        make_broker, tmp_path, monkeypatch):
    b, files = shimmed(make_broker, tmp_path, monkeypatch,
                       {"fsync": "interval", "fsync_interval": 100})
    rc = raw_stream(b, "s")
    files["hold"].touch()
    # confirmed while every fdatasync is held: after the write only
    publish_sync(rc, 1, "", "s", b"m1", props={"delivery_mode": 2})
    assert stream_syncs(files) == []
    files["hold"].unlink()
    deadline = time.monotonic() + 5
    while not stream_syncs(files) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stream_syncs(files), "the interval sync of the stream never came"
    rc.close_socket()


@pytest.mark.warren_only
def test_tx_commit_to_a_stream_waits_for_its_fdatasync(
        make_broker, tmp_path, monkeypatch):
    b, files = shimmed(make_broker, tmp_path, monkeypatch)
    rc = b.raw()
    rc.open_channel(1)
    rc.call(1, "queue.declare", queue="s", durable=True,
            arguments={"x-queue-type": "stream"})
    rc.call(1, "tx.select")
    rc.publish(1, "", "s", b"m1", props={"delivery_mode": 2})
    files["hold"].touch()
    rc.send_method(1, "tx.commit")
    time.sleep(0.5)
    assert stream_syncs(files) == []
    files["hold"].unlink()
    m = rc.read_method(timeout=10)
    assert m.name == "tx.commit-ok", m
    assert stream_syncs(files)
    rc.close_socket()
