"""Which consumer gets a message, as RabbitMQ 3.10 decides:
x-single-active-consumer (the earliest registered consumer gets every
message; when it goes, the next in line takes over, with what the first
left unacknowledged) and consumer priorities (x-priority: the highest
priority with room first, round-robin among equals)."""

import re

import pytest

import rawamqp
from test_20_mgmt_api import Mgmt, http_port
from wireutil import channel_error, confirm_select, publish_sync


def deliveries(conn, n):
    out = []
    for _ in range(n):
        m = conn.read_method(timeout=30)
        assert m.name == "basic.deliver", m
        out.append((m.consumer_tag, m.content.body, m.redelivered))
    return out


def publish(raw, q, bodies):
    p = raw()
    p.open_channel(1)
    confirm_select(p, 1)
    for b in bodies:
        publish_sync(p, 1, "", q, b)


def two_channels(raw, q, **declare):
    """A connection with channels 1 and 2 open and q declared."""
    c = raw()
    c.open_channel(1)
    c.open_channel(2)
    c.call(1, "queue.declare", queue=q, **declare)
    return c


def test_only_the_first_consumer_gets_messages(raw, uname):
    q = uname("sac")
    c = two_channels(raw, q, arguments={"x-single-active-consumer": True})
    c.call(1, "basic.consume", queue=q, consumer_tag="first", no_ack=True)
    c.call(2, "basic.consume", queue=q, consumer_tag="second", no_ack=True)
    publish(raw, q, [b"1", b"2", b"3", b"4"])
    assert [t for t, _, _ in deliveries(c, 4)] == ["first"] * 4
    c.call(1, "basic.cancel", consumer_tag="first")
    publish(raw, q, [b"5", b"6"])
    assert deliveries(c, 2) == [("second", b"5", False),
                                ("second", b"6", False)]


def test_next_consumer_takes_over_the_unacked(raw, uname):
    q = uname("sac")
    first, second = raw(), raw()
    first.open_channel(1)
    second.open_channel(1)
    first.call(1, "queue.declare", queue=q,
               arguments={"x-single-active-consumer": True})
    first.call(1, "basic.qos", prefetch_count=10)
    first.call(1, "basic.consume", queue=q, consumer_tag="first")
    second.call(1, "basic.consume", queue=q, consumer_tag="second")
    publish(raw, q, [b"a", b"b"])
    assert [b for _, b, _ in deliveries(first, 2)] == [b"a", b"b"]
    first.close_socket()  # both unacked: requeued for the next in line
    got = deliveries(second, 2)
    assert got == [("second", b"a", True), ("second", b"b", True)]


def test_consumer_priority_serves_the_highest_first(raw, uname):
    q = uname("cprio")
    c = two_channels(raw, q)
    c.call(1, "basic.consume", queue=q, consumer_tag="low", no_ack=True)
    c.call(2, "basic.consume", queue=q, consumer_tag="high", no_ack=True,
           arguments={"x-priority": 10})
    publish(raw, q, [b"1", b"2", b"3"])
    assert [t for t, _, _ in deliveries(c, 3)] == ["high"] * 3


def test_lower_priority_gets_what_the_higher_has_no_room_for(raw, uname):
    q = uname("cprio")
    c = two_channels(raw, q)
    c.call(1, "basic.consume", queue=q, consumer_tag="low", no_ack=True)
    c.call(2, "basic.qos", prefetch_count=1)
    c.call(2, "basic.consume", queue=q, consumer_tag="high",
           arguments={"x-priority": 5})
    publish(raw, q, [b"1", b"2", b"3"])
    got = sorted((t, b) for t, b, _ in deliveries(c, 3))
    assert got == [("high", b"1"), ("low", b"2"), ("low", b"3")]


def test_bad_consumer_priority_is_refused(rawch, uname):
    q = uname("cprio")
    rawch.call(1, "queue.declare", queue=q)
    m = channel_error(rawch, 1, "basic.consume", queue=q, consumer_tag="x",
                      arguments={"x-priority": "abc"})
    assert m.reply_code == 406, m
    assert m.reply_text == (
        "PRECONDITION_FAILED - invalid arg 'x-priority' for queue '%s' in "
        "vhost '/': \"expected integer, got longstr\"" % q), m.reply_text


# -- many consumers: nothing costs O(consumers) per operation (issue 10) ------

BUSY_RE = re.compile(r'warren_loop_busy_seconds_bucket\{le="([^"]+)"\} (\d+)')


def loop_busy_over(api, limit):
    """Loop iterations so far that kept the loop busy longer than limit
    seconds (the broker's own probe: /metrics)."""
    text = api.get("/metrics").body.decode()
    buckets = {m.group(1): int(m.group(2)) for m in BUSY_RE.finditer(text)}
    return buckets["+Inf"] - buckets[repr(limit)]


@pytest.mark.warren_only
def test_50000_consumers_never_stall_the_loop(make_broker):
    """50,000 consumers on one queue from one connection, then deliveries,
    cancels and the close that drops them all: no loop iteration takes
    longer than 50 ms (before: 11 s of stall)."""
    b = make_broker()
    api = Mgmt(http_port(b))
    before = loop_busy_over(api, 0.05)
    c = b.raw()
    c.open_channel(1)
    c.call(1, "basic.qos", prefetch_count=1)
    c.call(1, "queue.declare", queue="many")
    c.send(b"".join(
        rawamqp.method_frame(1, "basic.consume", queue="many",
                             consumer_tag="c%d" % i, nowait=True)
        for i in range(50000)))
    ok = c.call(1, "queue.declare", queue="many", passive=True)
    assert ok.consumer_count == 50000
    # a second connection is served meanwhile, and gets consume-ok at once
    d = b.raw()
    d.open_channel(1)
    d.call(1, "queue.declare", queue="other")
    p = b.raw()
    p.open_channel(1)
    for i in range(2000):
        p.publish(1, "", "many", b"m%d" % i)
    got = deliveries(c, 2000)
    assert len({tag for tag, _, _ in got}) == 2000  # one each: prefetch 1
    c.send(b"".join(rawamqp.method_frame(1, "basic.cancel",
                                         consumer_tag="c%d" % i, nowait=True)
                    for i in range(0, 50000, 2)))
    ok = c.call(1, "queue.declare", queue="many", passive=True)
    assert ok.consumer_count == 25000
    c.close()
    assert d.call(1, "queue.declare", queue="many",
                  passive=True).consumer_count == 0
    assert loop_busy_over(api, 0.05) == before
