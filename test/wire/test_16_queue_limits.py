"""Queue length limits (x-max-length, x-max-length-bytes, x-overflow) and
queue expiry (x-expires) as RabbitMQ 3.10 applies them, and
consumer_timeout (Warren only: it needs a small timeout in the config)."""

import time

import pytest

import rawamqp
from wireutil import (confirm_select, get_bodies, publish_sync, temp_queue,
                      wait_until)


def test_max_length_drops_head(rawch):
    q = temp_queue(rawch, arguments={"x-max-length": 2})
    confirm_select(rawch, 1)
    for i in range(5):
        publish_sync(rawch, 1, "", q, b"%d" % i)
    assert get_bodies(rawch, 1, q) == [b"3", b"4"]


def test_max_length_bytes_drops_head(rawch):
    q = temp_queue(rawch, arguments={"x-max-length-bytes": 10})
    confirm_select(rawch, 1)
    for i in range(5):
        publish_sync(rawch, 1, "", q, b"%05d" % i)
    assert get_bodies(rawch, 1, q) == [b"00003", b"00004"]


def test_reject_publish_nacks(rawch):
    q = temp_queue(rawch, arguments={"x-max-length": 2,
                                     "x-overflow": "reject-publish"})
    rawch.call(1, "confirm.select")
    got = []
    for i in range(4):
        rawch.publish(1, "", q, b"%d" % i)
        m = rawch.read_method()
        got.append((m.name, m.delivery_tag))
    assert got == [("basic.ack", 1), ("basic.ack", 2), ("basic.nack", 3),
                   ("basic.nack", 4)]
    assert get_bodies(rawch, 1, q) == [b"0", b"1"]


def test_limit_counts_ready_messages_only(rawch):
    q = temp_queue(rawch, arguments={"x-max-length": 1})
    confirm_select(rawch, 1)
    publish_sync(rawch, 1, "", q, b"a")
    rawch.send_method(1, "basic.get", queue=q, no_ack=False)
    assert rawch.read_method().name == "basic.get-ok"  # "a" is unacked
    publish_sync(rawch, 1, "", q, b"b")
    m = rawch.call(1, "queue.declare", queue=q, passive=True)
    assert m.message_count == 1


@pytest.mark.warren_only
def test_consumer_timeout_closes_the_channel(make_broker):
    b = make_broker(extra_conf={"consumer_timeout": 1000})
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    q = temp_queue(c)
    confirm_select(c, 1)
    publish_sync(c, 1, "", q, b"slow")
    c.call(1, "basic.consume", queue=q, consumer_tag="t")
    assert c.read_method().name == "basic.deliver"
    t0 = time.monotonic()
    m = c.read_method(timeout=10)  # never acked
    assert m.name == "channel.close", m
    assert m.close_info[:2] == (
        406, "PRECONDITION_FAILED - delivery acknowledgement on channel 1 "
        "timed out. Timeout value used: 1000 ms. This timeout value can be "
        "configured, see consumers doc guide to learn more")
    assert 0.9 < time.monotonic() - t0 < 4
    c.send_method(1, "channel.close-ok")
    # The delivery went back to the queue.
    c.open_channel(1)
    m = c.call(1, "queue.declare", queue=q, passive=True)
    assert m.message_count == 1


def queue_exists(raw, queue):
    """One passive declare on a fresh connection: True, or False on 404."""
    c = raw()
    c.open_channel(1)
    c.send_method(1, "queue.declare", queue=queue, passive=True)
    m = c.read_method()
    c.close_socket()
    assert m.name in ("queue.declare-ok", "channel.close"), m
    if m.name == "channel.close":
        assert m.reply_code == 404, m
        return False
    return True


def test_x_expires_deletes_an_unused_queue(raw, rawch, uname):
    q = uname("exp")
    rawch.call(1, "queue.declare", queue=q, arguments={"x-expires": 500})
    confirm_select(rawch, 1)
    publish_sync(rawch, 1, "", q, b"gone with it")
    assert wait_until(lambda: not queue_exists(raw, q))


def test_x_expires_waits_for_the_last_consumer(raw, rawch, uname):
    q = uname("exp")
    rawch.call(1, "queue.declare", queue=q, arguments={"x-expires": 500})
    rawch.call(1, "basic.consume", queue=q, consumer_tag="c1")
    time.sleep(1.5)
    assert queue_exists(raw, q)
    rawch.call(1, "basic.cancel", consumer_tag="c1")
    assert wait_until(lambda: not queue_exists(raw, q))


def test_x_expires_is_renewed_by_redeclare_and_get(raw, rawch, uname):
    # Renewals every 0.5 s keep a 3 s lease alive however slow the machine
    # is within that margin; 3.6 s in all is longer than the lease.
    q = uname("exp")
    rawch.call(1, "queue.declare", queue=q, arguments={"x-expires": 3000})
    for _ in range(4):
        time.sleep(0.45)
        rawch.call(1, "queue.declare", queue=q,
                   arguments={"x-expires": 3000})
    for _ in range(4):
        time.sleep(0.45)
        rawch.send_method(1, "basic.get", queue=q, no_ack=True)
        assert rawch.read_method().name == "basic.get-empty"
    assert queue_exists(raw, q)
    assert wait_until(lambda: not queue_exists(raw, q))
