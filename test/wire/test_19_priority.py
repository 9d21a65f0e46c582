"""x-max-priority as RabbitMQ 3.10's classic queues apply it: higher
priorities first, publish order within a priority, priorities above the
maximum count as the maximum, no priority as 0; requeued messages go back
to their place. Also: what survives a restart (Warren only)."""

import time

import pytest

import rawamqp
from wireutil import confirm_select, get, get_bodies, publish_sync

PUBLISHED = [(b"p1", 1), (b"a5", 5), (b"none", None), (b"p10", 10),
             (b"b5", 5), (b"p20", 20), (b"p0", 0)]
EXPECTED = [b"p10", b"p20", b"a5", b"b5", b"p1", b"none", b"p0"]


def publish_all(c, q, persistent=False):
    confirm_select(c, 1)
    for body, prio in PUBLISHED:
        props = {} if prio is None else {"priority": prio}
        if persistent:
            props["delivery_mode"] = 2
        publish_sync(c, 1, "", q, body, props=props)


def test_higher_priority_first(rawch, uname):
    q = uname("prio")
    rawch.call(1, "queue.declare", queue=q,
               arguments={"x-max-priority": 10})
    publish_all(rawch, q)
    assert get_bodies(rawch, 1, q) == EXPECTED


def test_requeued_goes_back_to_its_priority(rawch, uname):
    q = uname("prio")
    rawch.call(1, "queue.declare", queue=q,
               arguments={"x-max-priority": 10})
    publish_all(rawch, q)
    first = get(rawch, 1, q, no_ack=False)
    second = get(rawch, 1, q, no_ack=False)
    assert (first.content.body, second.content.body) == (b"p10", b"p20")
    rawch.send_method(1, "basic.nack", delivery_tag=second.delivery_tag,
                      multiple=True, requeue=True)
    assert get_bodies(rawch, 1, q) == EXPECTED


def test_priority_ignored_without_x_max_priority(rawch, uname):
    q = uname("fifo")
    rawch.call(1, "queue.declare", queue=q)
    publish_all(rawch, q)
    assert get_bodies(rawch, 1, q) == [b for b, _ in PUBLISHED]


def test_consumer_gets_priority_order(rawch, uname):
    q = uname("prio")
    rawch.call(1, "queue.declare", queue=q,
               arguments={"x-max-priority": 10})
    publish_all(rawch, q)
    rawch.call(1, "basic.consume", queue=q, consumer_tag="c", no_ack=True)
    got = [rawch.read_method(timeout=5).content.body for _ in EXPECTED]
    assert got == EXPECTED


@pytest.mark.warren_only
def test_priority_order_survives_kill(make_broker):
    b = make_broker()
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    c.call(1, "queue.declare", queue="prio", durable=True,
           arguments={"x-max-priority": 10})
    publish_all(c, "prio", persistent=True)
    b.kill()
    b.start("127.0.0.1:%d" % b.port)
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    assert get_bodies(c, 1, "prio") == EXPECTED


@pytest.mark.warren_only
def test_message_ttl_survives_kill(make_broker):
    """The expiration property of a recovered message still applies."""
    b = make_broker()
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    c.call(1, "queue.declare", queue="ttl", durable=True)
    confirm_select(c, 1)
    publish_sync(c, 1, "", "ttl", b"short",
                 props={"delivery_mode": 2, "expiration": "1500"})
    publish_sync(c, 1, "", "ttl", b"long", props={"delivery_mode": 2})
    b.kill()
    b.start("127.0.0.1:%d" % b.port)
    time.sleep(2.0)
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    assert get_bodies(c, 1, "ttl") == [b"long"]
